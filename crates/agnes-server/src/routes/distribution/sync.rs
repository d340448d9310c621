//! `/api/sync/trigger`, `/api/sync/status`, `/api/sync/manifest` (spec §3.3).

use crate::auth::access::Caller;
use crate::auth::authenticate::{Admin, ClientInfo};
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::state::AppState;
use crate::sync::{Selection, SyncError};
use agnes_core::api::{JobView, SchedulerStatus, SyncLock, SyncRequest, SyncSelection, SyncTables, SyncTriggered};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(trigger))
        .routes(routes!(status))
        .routes(routes!(manifest))
        .routes(routes!(scheduler))
}

/// The scheduler's jobs and every table's schedule: last sync, next due time, backoff and
/// last error (admin).
#[utoipa::path(get, path = "/api/admin/scheduler", tag = "sync",
    responses((status = 200, body = SchedulerStatus), (status = 403)))]
async fn scheduler(State(state): State<AppState>, Admin(_caller): Admin) -> Result<Json<SchedulerStatus>, ApiError> {
    let store = &state.store;
    let config = &state.config.scheduler;
    let tables = state.sync.freshness(config).await.map_err(ApiError::internal)?;
    let next_run = tables.iter().filter_map(|t| t.next_sync_at).min().map(|d| d.to_rfc3339());
    let mut known = store.scheduler().jobs().await?;
    if !known.iter().any(|j| j.name == crate::sync::DATA_REFRESH) {
        known.push(agnes_store::scheduler::JobState {
            name: crate::sync::DATA_REFRESH.into(),
            running_since: None,
            last_started_at: None,
            last_finished_at: None,
            last_status: None,
            last_error: None,
            last_duration_ms: None,
            runs: 0,
        });
    }
    let jobs = known
        .into_iter()
        .map(|j| JobView {
            running: j.running_since.is_some(),
            name: j.name,
            running_since: j.running_since,
            last_started_at: j.last_started_at,
            last_finished_at: j.last_finished_at,
            last_status: j.last_status,
            last_error: j.last_error,
            last_duration_ms: j.last_duration_ms,
            runs: j.runs,
            next_run_at: next_run.clone(),
        })
        .collect();
    Ok(Json(SchedulerStatus {
        enabled: !config.tick.is_zero(),
        tick_seconds: config.tick.as_secs(),
        sync_running: state.sync.is_locked(),
        jobs,
        tables,
    }))
}

/// The three body shapes the original accepted: an array of names or ids,
/// `{"tables": [...]}`, or nothing / `null` for "whatever is due".
fn selection(body: &[u8]) -> Result<Selection, ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body must be a list of table names or ids, {\"tables\": [...]}, or empty",
        )
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Selection::Due);
    }
    Ok(match serde_json::from_slice::<Option<SyncRequest>>(body).map_err(|_| bad())? {
        Some(SyncRequest::Tables(names)) | Some(SyncRequest::Object(SyncTables { tables: Some(names) })) => {
            Selection::Tables(names)
        }
        None | Some(SyncRequest::Object(SyncTables { tables: None })) => Selection::Due,
    })
}

/// Start a sync in the background (admin): the named tables, or every table that is due.
#[utoipa::path(post, path = "/api/sync/trigger", tag = "sync", request_body = SyncRequest,
    responses((status = 200, body = SyncTriggered), (status = 409, description = "{\"detail\": \"sync_already_in_progress\"}"), (status = 422)))]
async fn trigger(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    body: Bytes,
) -> Result<Json<SyncTriggered>, ApiError> {
    let selection = selection(&body)?;
    let audit = Audit::of(&state, &caller, &client);
    let tables = match &selection {
        Selection::Due => SyncSelection::All("all".into()),
        Selection::Tables(t) => SyncSelection::Named(t.clone()),
    };
    match state.sync.trigger(selection) {
        Ok(()) => {
            audit.record("sync.trigger", None, Some(json!({"tables": tables})), "success").await;
            Ok(Json(SyncTriggered {
                status: "triggered".into(),
                tables,
                message: "sync started in the background; GET /api/sync/status shows when it is done".into(),
            }))
        }
        Err(SyncError::InProgress) => {
            audit.record("sync.trigger", None, Some(json!({"tables": tables})), "error.in_progress").await;
            Err(ApiError::new(StatusCode::CONFLICT, "sync_already_in_progress"))
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Whether a sync is running (or was triggered less than 30 s ago).
#[utoipa::path(get, path = "/api/sync/status", tag = "sync", security(()), responses((status = 200, body = SyncLock)))]
async fn status(State(state): State<AppState>) -> Json<SyncLock> {
    Json(SyncLock { locked: state.sync.is_locked() })
}

/// What the caller may pull: one entry per readable table with published data, keyed by
/// name, with its content hash (and its parts, for partitioned tables). Built from stored
/// state: nothing is hashed at request time.
#[utoipa::path(get, path = "/api/sync/manifest", tag = "sync", responses((status = 200, body = agnes_core::api::Manifest)))]
async fn manifest(State(state): State<AppState>, caller: Caller, client: ClientInfo) -> Result<Response, ApiError> {
    let overdue = state.sync.overdue_ids(&state.config.scheduler).await.map_err(ApiError::internal)?;
    let (tables, count) = state.store.sync_state().manifest_json(caller.is_admin, &caller.group_ids, &overdue).await?;
    if state.auth.recent_pulls.due(&caller.user.id) {
        if let Err(e) = state.store.identity().touch_last_pull(&caller.user.id).await {
            tracing::warn!("cannot record last_pull_at: {e}");
        }
    }
    Audit::of(&state, &caller, &client).record("manifest.fetch", None, Some(json!({"tables": count})), "success").await;
    // The tables object is already JSON, built by the state DB: splice it in as it is.
    let body = format!("{{\"tables\":{tables},\"server_time\":\"{}\"}}", chrono::Utc::now().to_rfc3339());
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shapes() {
        assert_eq!(selection(b"").unwrap(), Selection::Due);
        assert_eq!(selection(b"null").unwrap(), Selection::Due);
        assert_eq!(selection(br#"["a","b"]"#).unwrap(), Selection::Tables(vec!["a".into(), "b".into()]));
        assert_eq!(selection(br#"{"tables":["a"]}"#).unwrap(), Selection::Tables(vec!["a".into()]));
        for bad in [&br#"{"table":["a"]}"#[..], br#"[1]"#, br#""a""#, br#"{"#] {
            assert_eq!(selection(bad).unwrap_err().status, StatusCode::UNPROCESSABLE_ENTITY);
        }
    }
}
