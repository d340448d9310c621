//! `GET /api/health` and `GET /api/version` (spec §3.1), both public.

use crate::state::AppState;
use agnes_core::api::{HealthResponse, VersionResponse};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(version))
}

/// 200 when the state DB answers at the expected schema version, else 503 with the same
/// body shape saying what is wrong.
#[utoipa::path(get, path = "/api/health", tag = "meta", security(()), responses((status = 200, description = "{status, db_schema, current, expected}"), (status = 503)))]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let expected = agnes_store::LATEST_SCHEMA_VERSION;
    match state.store.schema_status().await {
        Ok(s) if s.is_current() => (
            StatusCode::OK,
            Json(HealthResponse { status: "ok".into(), db_schema: "ok".into(), current: s.current, expected }),
        ),
        Ok(s) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthResponse {
                status: "unhealthy".into(),
                db_schema: "mismatch".into(),
                current: s.current,
                expected,
            }),
        ),
        Err(e) => {
            tracing::error!("health check cannot read the state DB: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(HealthResponse {
                    status: "unhealthy".into(),
                    db_schema: "unreachable".into(),
                    current: 0,
                    expected,
                }),
            )
        }
    }
}

/// The server's version.
#[utoipa::path(get, path = "/api/version", tag = "meta", security(()), responses((status = 200, description = "{version, channel, image_tag, deployed_at}")))]
async fn version(State(state): State<AppState>) -> Json<VersionResponse> {
    Json(VersionResponse {
        version: agnes_core::VERSION.to_string(),
        channel: std::env::var("AGNES_CHANNEL").unwrap_or_else(|_| "stable".into()),
        image_tag: std::env::var("AGNES_IMAGE_TAG").ok(),
        deployed_at: Some(state.started_at.to_rfc3339()),
    })
}
