//! The HTTP surface. Each module owns one family of routes.

mod audit;
mod auth;
mod catalog;
mod data;
mod groups;
mod health;
mod json;
mod me;
mod metric_definitions;
mod openapi;
mod prometheus;
mod query;
mod ranges;
mod registry;
mod scan;
mod sync;
mod tables;
mod upload;
mod users;

use crate::auth::authenticate::{authenticate, AuthContext};
use crate::state::AppState;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
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
        .merge(health::routes())
        .merge(prometheus::routes())
        .merge(openapi::routes())
        .merge(auth::routes())
        .merge(me::routes())
        .merge(users::routes())
        .merge(groups::routes())
        .merge(registry::routes())
        .merge(sync::routes())
        .merge(data::routes())
        .merge(catalog::routes())
        .merge(upload::routes())
        .merge(query::routes())
        .merge(scan::routes())
        .merge(metric_definitions::routes())
}

/// The OpenAPI document of [`api`], finished as served.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::finish(api().split_for_parts().1)
}

pub fn router(state: AppState) -> Router {
    let (routes, doc) = api().split_for_parts();
    let doc = openapi::finish(doc);
    let auth = Arc::new(AuthContext::new(
        state.store.clone(),
        state.auth.secret.clone(),
        state.auth.dev_user.clone(),
        openapi::public_operations(&doc),
        state.auth.trusted_proxies.clone(),
    ));
    routes
        .layer(middleware::from_fn_with_state(auth, authenticate))
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
