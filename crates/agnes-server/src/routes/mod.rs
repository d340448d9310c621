//! The HTTP surface, one folder per domain: `meta`, `identity`, `distribution`, `sql`,
//! `knowledge`, `workspace`; `audit`, `json` and `tables` are the helpers they share.

mod audit;
mod distribution;
pub(crate) mod identity;
pub(crate) mod inprocess;
mod json;
mod knowledge;
mod mcp;
mod meta;
mod sql;
mod tables;
mod web;
mod webhooks;
mod workspace;

use crate::auth::authenticate::{authenticate, AuthContext};
use crate::state::AppState;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

/// The minimum CLI version this server works with (`X-Agnes-Min-Version`).
pub const MIN_CLIENT_VERSION: &str = "0.0.0";

/// Every route, each with its OpenAPI operation. Routes are added here and only here, so
/// the document is the route table.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(meta::routes())
        .merge(identity::routes())
        .merge(distribution::routes())
        .merge(sql::routes())
        .merge(knowledge::routes())
        .merge(workspace::routes())
        .merge(webhooks::routes())
}

/// The OpenAPI document of [`api`], finished as served.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    meta::openapi::finish(api().split_for_parts().1)
}

pub fn router(state: AppState) -> Router {
    let (routes, doc) = api().split_for_parts();
    let doc = meta::openapi::finish(doc);
    // Pages let anonymous visitors through to answer them themselves (the login page, or a
    // redirect to it); what a page shows comes from the routes above, as its viewer.
    let mut public = meta::openapi::public_operations(&doc);
    public.extend(web::public_routes());
    let auth = Arc::new(AuthContext::new(
        state.store.clone(),
        state.auth.secret.clone(),
        state.auth.dev_user.clone(),
        public,
        state.auth.trusted_proxies.clone(),
    ));
    routes
        .route_service("/mcp", mcp::service(state.clone()))
        .merge(web::routes(&state))
        .layer(middleware::from_fn_with_state(auth, authenticate))
        .layer(middleware::from_fn(version_headers))
        .layer(middleware::from_fn(crate::metrics::track))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(middleware::from_fn(internal_errors))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Failures of ours are answered alike: a handler (or middleware) that panics, and any
/// other 500, gets the JSON body `{"detail": "Internal server error", "code": "internal",
/// "request_id": …}`, so a user can quote the id and an operator find the log line. The
/// connection and the worker carry on (without this, hyper drops the connection on a
/// panic and the client sees a reset with nothing to report).
async fn internal_errors(req: Request, next: Next) -> Response {
    use futures::FutureExt;
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
    let internal = || {
        let body = agnes_core::api::ErrorBody {
            detail: "Internal server error".into(),
            code: Some("internal".into()),
            request_id: Some(request_id.clone()),
        };
        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
    };
    match std::panic::AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(response) if response.status() == axum::http::StatusCode::INTERNAL_SERVER_ERROR => internal(),
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            tracing::error!(request_id = %request_id, "request handler panicked: {message}");
            metrics::counter!("agnes_http_panics_total").increment(1);
            internal()
        }
    }
}

/// Every `/api/*` response says which server version answered and which CLI it needs.
async fn version_headers(req: Request, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    let mut response = next.run(req).await;
    if is_api {
        let h = response.headers_mut();
        h.insert("x-agnes-latest-version", HeaderValue::from_static(agnes_core::VERSION));
        h.insert("x-agnes-min-version", HeaderValue::from_static(MIN_CLIENT_VERSION));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn failures_of_ours_answer_500_with_the_request_id() {
        let app = Router::new()
            .route("/boom", get(|| async { panic!("handler bug") as &'static str }))
            .route("/fine", get(|| async { "ok" }))
            .route("/failed", get(|| async { crate::error::ApiError::internal("disk on fire: /secret/path") }))
            .layer(middleware::from_fn(internal_errors))
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));
        let boom = app.clone().oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(boom.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(boom.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!((body["detail"].as_str(), body["code"].as_str()), (Some("Internal server error"), Some("internal")));
        assert_eq!(body["request_id"].as_str().unwrap().len(), 36, "{body}");
        // An ordinary 500 says the same, with its request id and no internal text.
        let failed = app.clone().oneshot(Request::get("/failed").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(failed.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(failed.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(body["request_id"].as_str().is_some_and(|id| id.len() == 36) && !body.to_string().contains("fire"));
        // The same service keeps answering.
        let fine = app.oneshot(Request::get("/fine").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(fine.status(), axum::http::StatusCode::OK);
    }
}
