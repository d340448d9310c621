//! `POST /webhooks/jira` (public: a signature proves the sender), `GET
//! /webhooks/jira/health` and `GET|POST /api/admin/jira/backfill` (admins).
//!
//! A delivery is checked in the contract's order: the secret configured (else 503), the
//! HMAC-SHA256 of the raw body in `X-Hub-Signature-256` or `X-Hub-Signature` (`sha256=<hex>`
//! or bare hex, compared in constant time; else 401), a JSON body (400) naming an issue
//! key of the contract's pattern (400), Jira's account configured (503). Then it is
//! logged and queued durably and answered 200; the tables follow within seconds.

use crate::auth::authenticate::Admin;
use crate::error::ApiError;
use crate::state::AppState;
use agnes_core::api::{JiraBackfill, JiraBackfillRequest, JiraHealth, JiraWebhookAccepted, JiraWebhookDelivery};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use hmac::Mac;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The largest delivery taken: Jira sends whole issues, never near this.
const MAX_BODY: usize = 10 * 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(webhook))
        .routes(routes!(health))
        .routes(routes!(backfill_status, start_backfill))
}

fn jira(state: &AppState) -> Result<&crate::jira::JiraService, ApiError> {
    state.jira.as_ref().ok_or_else(|| {
        ApiError::coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "jira_not_configured",
            "Jira is not configured on this server (data_source.jira or JIRA_DOMAIN)",
        )
    })
}

/// Whether `header` (`sha256=<hex>` or bare hex) is the HMAC-SHA256 of `body` under `secret`.
fn signed(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(given) = header.map(|h| h.trim()) else { return false };
    let hex_digest = given.strip_prefix("sha256=").unwrap_or(given);
    let Ok(digest) = hex::decode(hex_digest) else { return false };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

#[utoipa::path(post, path = "/webhooks/jira", tag = "jira", security(()), request_body = JiraWebhookDelivery,
    responses((status = 200, body = JiraWebhookAccepted), (status = 400), (status = 401), (status = 413), (status = 500), (status = 503)))]
async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<JiraWebhookAccepted>, ApiError> {
    let unavailable = |code, m: &str| ApiError::coded(StatusCode::SERVICE_UNAVAILABLE, code, m.to_string());
    let service = jira(&state)?;
    let source = service.source();
    let Some(secret) = source.webhook_secret() else {
        return Err(unavailable(
            "webhook_secret_not_set",
            &format!("{} is not set: deliveries cannot be verified", source.webhook_secret_env()),
        ));
    };
    let too_large = || {
        ApiError::coded(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("a delivery is at most {MAX_BODY} bytes"))
    };
    // Refused on its announced length before a byte is read; a chunked one when it passes.
    let announced =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| too_large())?;
    let header =
        headers.get("x-hub-signature-256").or_else(|| headers.get("x-hub-signature")).and_then(|v| v.to_str().ok());
    if !signed(&secret, &body, header) {
        return Err(ApiError::coded(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "missing or invalid X-Hub-Signature",
        ));
    }
    let bad = |code, m: &str| ApiError::coded(StatusCode::BAD_REQUEST, code, m.to_string());
    if body.is_empty() {
        return Err(bad("invalid_payload", "the delivery is empty"));
    }
    let payload: Value =
        serde_json::from_slice(&body).map_err(|e| bad("invalid_payload", &format!("the delivery is not JSON: {e}")))?;
    let key = payload
        .pointer("/issue/key")
        .or_else(|| payload.get("issue_key"))
        .and_then(Value::as_str)
        .ok_or_else(|| bad("invalid_issue_key", "the delivery names no issue (issue.key or issue_key)"))?;
    if !agnes_connectors::jira::is_issue_key(key) {
        return Err(bad(
            "invalid_issue_key",
            &format!("'{}' is not an issue key", key.chars().take(40).collect::<String>()),
        ));
    }
    if source.credentials().is_none() {
        return Err(unavailable(
            "jira_not_configured",
            &format!("set {} and {} so agnes can read the issue", source.email_env(), source.api_token_env()),
        ));
    }
    let event = payload.get("webhookEvent").and_then(Value::as_str).unwrap_or("unknown").to_string();
    service.accept(key, &event, body.to_vec()).await.map_err(ApiError::internal)?;
    Ok(Json(JiraWebhookAccepted { status: "ok".into(), event, issue: key.to_string() }))
}

#[utoipa::path(get, path = "/webhooks/jira/health", tag = "jira", responses((status = 200, body = JiraHealth), (status = 503)))]
async fn health(State(state): State<AppState>, _admin: Admin) -> Result<Json<JiraHealth>, ApiError> {
    let h = jira(&state)?.health().await?;
    let ok = h.configured && h.webhook_secret_set && h.queue.failing == 0;
    Ok(Json(JiraHealth {
        status: if ok { "ok" } else { "degraded" }.into(),
        configured: h.configured,
        webhook_secret_set: h.webhook_secret_set,
        pending: h.queue.pending,
        failing: h.queue.failing,
        oldest_pending_at: h.queue.oldest_received_at,
        last_error: h.queue.last_error,
        last_reconcile_at: h.last_reconcile_at,
    }))
}

async fn progress(service: &crate::jira::JiraService) -> Result<JiraBackfill, ApiError> {
    let pending = service.pending().await?;
    Ok(match service.backfill().await? {
        None => JiraBackfill {
            state: "none".into(),
            jql: None,
            pages: 0,
            issues: 0,
            pending,
            started_at: None,
            finished_at: None,
            error: None,
        },
        Some(j) => JiraBackfill {
            state: j.state,
            jql: j.jql,
            pages: j.pages,
            issues: j.issues,
            pending,
            started_at: j.started_at,
            finished_at: j.finished_at,
            error: j.error,
        },
    })
}

#[utoipa::path(get, path = "/api/admin/jira/backfill", tag = "jira", responses((status = 200, body = JiraBackfill), (status = 503)))]
async fn backfill_status(State(state): State<AppState>, _admin: Admin) -> Result<Json<JiraBackfill>, ApiError> {
    Ok(Json(progress(jira(&state)?).await?))
}

#[utoipa::path(post, path = "/api/admin/jira/backfill", tag = "jira", request_body = JiraBackfillRequest,
    responses((status = 202, body = JiraBackfill), (status = 400), (status = 409), (status = 503)))]
async fn start_backfill(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: crate::auth::authenticate::ClientInfo,
    crate::routes::json::ApiJson(body): crate::routes::json::ApiJson<JiraBackfillRequest>,
) -> Result<(StatusCode, Json<JiraBackfill>), ApiError> {
    let service = jira(&state)?;
    if service.source().credentials().is_none() {
        return Err(ApiError::coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "jira_not_configured",
            "Jira's account is not configured",
        ));
    }
    service.start_backfill(body.jql.as_deref(), body.since.as_deref()).await.map_err(|e| match e {
        crate::jira::BackfillRefusal::Invalid(m) => ApiError::coded(StatusCode::BAD_REQUEST, "invalid_request", m),
        crate::jira::BackfillRefusal::Running => {
            ApiError::coded(StatusCode::CONFLICT, "backfill_running", e.to_string())
        }
        crate::jira::BackfillRefusal::Store(s) => ApiError::from(s),
    })?;
    crate::routes::audit::Audit::of(&state, &caller, &client)
        .record("jira_backfill", None, Some(serde_json::json!({"jql": body.jql, "since": body.since})), "success")
        .await;
    Ok((StatusCode::ACCEPTED, Json(progress(service).await?)))
}
