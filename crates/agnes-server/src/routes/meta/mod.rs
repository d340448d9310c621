//! Health, version, Prometheus metrics and the OpenAPI document.
mod health;
pub(super) mod openapi;
mod prometheus;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(health::routes()).merge(prometheus::routes()).merge(openapi::routes())
}
