//! Deliveries from the sources that push: Jira's webhook, its health, and backfills.
mod jira;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    jira::routes()
}
