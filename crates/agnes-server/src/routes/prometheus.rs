//! `GET /metrics`: Prometheus exposition.
//!
//! Not part of the original contract. With `AGNES_METRICS_TOKEN` set it requires that
//! bearer token; without it, only loopback clients are answered, so a server bound to a
//! public address never exposes its metrics by accident.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::net::SocketAddr;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus exposition: no user credential, but loopback clients only unless
/// `AGNES_METRICS_TOKEN` is set (then that bearer token).
#[utoipa::path(get, path = "/metrics", tag = "meta", security(()), responses((status = 200, description = "text/plain; version=0.0.4"), (status = 401), (status = 403)))]
async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    match std::env::var("AGNES_METRICS_TOKEN").ok().filter(|t| !t.is_empty()) {
        Some(token) => {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes())) {
                return Err(ApiError::new(StatusCode::UNAUTHORIZED, "Missing or invalid Authorization header"));
            }
        }
        None if !peer.ip().is_loopback() => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Metrics are served to loopback clients only; set AGNES_METRICS_TOKEN",
            ));
        }
        None => {}
    }
    let body = state.metrics.render(&state.store).await;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
