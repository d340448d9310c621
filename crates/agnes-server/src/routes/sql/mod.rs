//! SQL on the server: queries and filtered scans of one table.
mod query;
mod remote;
mod scan;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(query::routes()).merge(scan::routes())
}
