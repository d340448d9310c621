//! What the company knows: business metric definitions and corporate memory.
mod memory;
mod metric_definitions;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(metric_definitions::routes()).merge(memory::routes())
}
