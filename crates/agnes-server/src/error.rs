//! Errors of the server crate and their one mapping to HTTP status and JSON body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use thiserror::Error;

/// Failures while starting or running the server.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] agnes_store::StoreError),
    #[error(transparent)]
    Engine(#[from] agnes_engine::EngineError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// An error answered to an HTTP client, in the original's `{"detail": …}` shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: serde_json::Value,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError { status, detail: serde_json::Value::String(detail.into()) }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }
}

impl From<agnes_engine::EngineError> for ApiError {
    /// How a failure of the caller's own SQL (a query or a scan) is answered: the caller's
    /// mistakes and the server's limits are 400s that say which; the rest is internal.
    fn from(e: agnes_engine::EngineError) -> Self {
        use agnes_engine::EngineError as E;
        let bad = |detail: serde_json::Value| ApiError { status: StatusCode::BAD_REQUEST, detail };
        match e {
            E::NotAllowed(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            E::Rejected { kind, details } => {
                bad(serde_json::json!({"error": "validator_rejected", "kind": kind, "details": details}))
            }
            E::Timeout { seconds } => bad(serde_json::json!({"reason": "query_timeout", "limit_seconds": seconds,
                "hint": "the query was stopped at the server's time limit: filter or aggregate more, or pull the table and query it locally"})),
            E::ResultTooLarge { limit_bytes } => {
                bad(serde_json::json!({"reason": "result_too_large", "limit_bytes": limit_bytes,
                "hint": "select fewer columns, filter more, or lower the limit"}))
            }
            E::DuckDb(err) => ApiError::new(StatusCode::BAD_REQUEST, format!("Query error: {err}")),
            other @ (E::Invalid(_) | E::InvalidIdentifier(_)) => {
                ApiError::new(StatusCode::BAD_REQUEST, format!("Query error: {other}"))
            }
            other @ E::Io { .. } => ApiError::internal(other),
        }
    }
}

impl From<agnes_store::StoreError> for ApiError {
    fn from(e: agnes_store::StoreError) -> Self {
        use agnes_store::StoreError as E;
        match e {
            E::NotFound(what) => ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found")),
            E::Conflict(msg) => ApiError::new(StatusCode::CONFLICT, msg),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    /// The `{"detail": …}` body; a 429 whose detail says `retry_after_seconds` also
    /// carries it as `Retry-After`.
    fn into_response(self) -> Response {
        let retry_after = (self.status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| self.detail.get("retry_after_seconds").and_then(serde_json::Value::as_u64))
            .flatten();
        let mut response = (self.status, Json(serde_json::json!({ "detail": self.detail }))).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
