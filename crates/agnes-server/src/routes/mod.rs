//! The HTTP surface. Each module owns one family of routes.

mod health;
mod prometheus;

use crate::state::AppState;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The minimum CLI version this server works with (`X-Agnes-Min-Version`).
pub const MIN_CLIENT_VERSION: &str = "0.0.0";

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(prometheus::routes())
        .layer(middleware::from_fn(version_headers))
        .layer(middleware::from_fn(crate::metrics::track))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
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
