//! What the company knows: business metric definitions, corporate memory, and the texts
//! agnes gives agents.
mod memory;
mod metric_definitions;
mod prompts;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(metric_definitions::routes()).merge(memory::routes()).merge(prompts::routes())
}
