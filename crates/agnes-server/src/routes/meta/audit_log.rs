//! `GET /api/admin/audit`: the audit log for admins, newest first, a page at a time.

use crate::auth::authenticate::Admin;
use crate::error::ApiError;
use crate::state::AppState;
use agnes_core::api::{AuditEvent, AuditPage};
use agnes_store::audit::AuditFilter;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit_page))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
struct AuditQuery {
    /// Records per page, 1 to 500 (50 by default).
    limit: Option<i64>,
    /// The `next_before` of the previous page.
    before: Option<String>,
    /// One action (`user.create`) or a family of them (`query` for `query.*`).
    action: Option<String>,
    /// A user's id or e-mail.
    user: Option<String>,
}

/// The cursor of a page: the timestamp and id of its last record.
fn cursor(e: &AuditEvent) -> String {
    format!("{}|{}", e.timestamp, e.id)
}

#[utoipa::path(get, path = "/api/admin/audit", tag = "meta", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400)))]
async fn audit_page(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "limit must be between 1 and 500"));
    }
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => match b.split_once('|') {
            Some((ts, id)) => Some((ts.to_string(), id.to_string())),
            None => return Err(ApiError::new(StatusCode::BAD_REQUEST, "before is the next_before of a previous page")),
        },
    };
    let nonempty = |s: Option<String>| s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let filter = AuditFilter { before, action: nonempty(q.action), user: nonempty(q.user) };
    // One more than asked says whether an older page exists.
    let mut rows = state.store.audit().page(&filter, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let events: Vec<AuditEvent> = rows.into_iter().map(Into::into).collect();
    let next_before = if more { events.last().map(cursor) } else { None };
    Ok(Json(AuditPage { events, next_before }))
}
