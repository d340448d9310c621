//! `GET /api/health` and `GET /api/version` (spec §3.1), both public.

use crate::state::AppState;
use agnes_core::api::{
    DataHealth, DbSchemaHealth, HealthDetail, HealthResponse, HealthServices, SchedulerHealth, UsersHealth,
    VersionResponse,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(detailed)).routes(routes!(version))
}

/// The state of each part of the server (spec §3.1), for signed-in users: `degraded` while
/// some table is overdue for its schedule (listed in `stale_tables`) or its last sync failed.
/// A non-admin sees only the tables they may read (names, counts and rows alike), and no
/// user count.
#[utoipa::path(get, path = "/api/health/detailed", tag = "meta",
    responses((status = 200, body = HealthDetail)))]
async fn detailed(
    State(state): State<AppState>,
    caller: crate::auth::access::Caller,
) -> Result<Json<HealthDetail>, crate::error::ApiError> {
    let schema = state.store.schema_status().await?;
    let readable = crate::routes::tables::readable_ids(&state, &caller).await?;
    let states: crate::sync::States = state
        .store
        .sync_state()
        .list()
        .await?
        .into_iter()
        .filter(|s| crate::routes::tables::may_read(&readable, &s.table_id))
        .map(|s| (s.table_id.clone(), s))
        .collect();
    let total_rows: i64 = states.values().map(|s| s.rows).sum();
    let mut registered = state.store.snapshot().await?.registry.clone();
    registered.retain(|t| crate::routes::tables::may_read(&readable, &t.id));
    let tables = state
        .sync
        .freshness_of(&registered, &states, &state.config.scheduler)
        .await
        .map_err(crate::error::ApiError::internal)?;
    let stale: Vec<String> = tables.iter().filter(|t| t.overdue).map(|t| t.id.clone()).collect();
    let failing: Vec<String> =
        tables.iter().filter(|t| t.status.as_deref() == Some("error")).map(|t| t.id.clone()).collect();
    let count = if caller.is_admin { Some(state.store.identity().list_users().await?.len()) } else { None };
    let data_ok = stale.is_empty() && failing.is_empty();
    let status = match (schema.is_current(), data_ok) {
        (false, _) => "unhealthy",
        (true, false) => "degraded",
        (true, true) => "healthy",
    };
    Ok(Json(HealthDetail {
        status: status.into(),
        version: agnes_core::VERSION.into(),
        schema_version: schema.current,
        deployed_at: state.started_at.to_rfc3339(),
        timestamp: chrono::Utc::now().to_rfc3339(),
        services: HealthServices {
            data: DataHealth {
                status: if data_ok { "ok" } else { "degraded" }.into(),
                tables: tables.len(),
                total_rows,
                stale_tables: stale,
                failing_tables: failing,
            },
            users: UsersHealth { status: "ok".into(), count },
            scheduler: SchedulerHealth {
                status: if state.config.scheduler.tick.is_zero() { "off" } else { "ok" }.into(),
                tick_seconds: state.config.scheduler.tick.as_secs(),
            },
            db_schema: DbSchemaHealth {
                status: if schema.is_current() { "ok" } else { "mismatch" }.into(),
                current: schema.current,
                expected: agnes_store::LATEST_SCHEMA_VERSION,
            },
        },
    }))
}

/// 200 when the state DB answers at the expected schema version, else 503 with the same
/// body shape saying what is wrong.
#[utoipa::path(get, path = "/api/health", tag = "meta", security(()), responses((status = 200, body = HealthResponse), (status = 503, body = HealthResponse)))]
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
#[utoipa::path(get, path = "/api/version", tag = "meta", security(()), responses((status = 200, body = VersionResponse)))]
async fn version(State(state): State<AppState>) -> Json<VersionResponse> {
    Json(VersionResponse {
        version: agnes_core::VERSION.to_string(),
        channel: std::env::var("AGNES_CHANNEL").unwrap_or_else(|_| "stable".into()),
        image_tag: std::env::var("AGNES_IMAGE_TAG").ok(),
        deployed_at: Some(state.started_at.to_rfc3339()),
    })
}
