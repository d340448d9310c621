//! Health, version, Prometheus metrics, the OpenAPI document, and the admin's views of
//! the audit log and the disk.
mod audit_log;
mod health;
pub(super) mod openapi;
mod prometheus;
mod storage;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::routes())
        .merge(prometheus::routes())
        .merge(openapi::routes())
        .merge(audit_log::routes())
        .merge(storage::routes())
}
