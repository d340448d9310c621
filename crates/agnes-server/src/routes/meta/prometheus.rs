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
            if !presented.is_some_and(|p| same_secret(p, &token)) {
                return Err(ApiError::new(StatusCode::UNAUTHORIZED, "Missing or invalid Authorization header"));
            }
        }
        None if !is_local_client(peer, &headers) => {
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

/// A client on this host talking to us directly. A reverse proxy on loopback forwards
/// remote clients, so a request that carries any forwarding header is not local, whoever
/// the peer is.
fn is_local_client(peer: SocketAddr, headers: &HeaderMap) -> bool {
    const FORWARDING: [&str; 4] = ["forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host"];
    peer.ip().is_loopback() && !FORWARDING.iter().any(|h| headers.contains_key(*h))
}

/// Compare secrets in time independent of where they differ (and of their lengths: both
/// sides are hashed to 32 bytes first).
fn same_secret(presented: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes())).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_requests_are_not_local() {
        let loopback: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        assert!(is_local_client(loopback, &HeaderMap::new()));
        assert!(!is_local_client(remote, &HeaderMap::new()));
        for h in ["x-forwarded-for", "forwarded", "x-real-ip"] {
            let mut headers = HeaderMap::new();
            headers.insert(h, "203.0.113.9".parse().unwrap());
            assert!(!is_local_client(loopback, &headers), "{h}");
        }
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("s3cret-token", "s3cret-token"));
        assert!(!same_secret("s3cret-toke", "s3cret-token"));
        assert!(!same_secret("", "s3cret-token"));
    }
}
