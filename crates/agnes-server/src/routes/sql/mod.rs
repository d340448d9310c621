//! SQL on the server: queries (local, remote, hybrid), filtered scans of one table, and
//! what remote sources billed.
mod hybrid;
mod query;
mod remote;
mod scan;
mod usage;

pub use remote::{run_bigquery, BqPlan};

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(query::routes()).merge(hybrid::routes()).merge(scan::routes()).merge(usage::routes())
}
