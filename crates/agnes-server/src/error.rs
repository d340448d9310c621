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

/// An error answered to an HTTP client: the original's `{"detail": …}` body, plus a
/// stable `code` naming the kind of failure (clients and tests tell a refusal from a
/// mistake by it, never by the wording of `detail`).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: serde_json::Value,
}

/// The code of an error no more specific code was given for.
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        413 => "too_large",
        422 => "invalid_request",
        429 => "too_many_requests",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError { status, code: code_of(status), detail: serde_json::Value::String(detail.into()) }
    }

    /// A source (a database, an API) that failed to answer: its fault, told as 502.
    pub fn source_unavailable(e: agnes_connectors::ConnectorError) -> Self {
        ApiError::coded(StatusCode::BAD_GATEWAY, "source_unavailable", e.to_string())
    }

    /// The detail as one line of text.
    pub fn detail_text(&self) -> String {
        match &self.detail {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// An error with a specific code and any JSON detail.
    pub fn coded(status: StatusCode, code: &'static str, detail: impl Into<serde_json::Value>) -> Self {
        ApiError { status, code, detail: detail.into() }
    }

    /// A failure of ours: logged in full, answered without internal text (the response
    /// carries the request id to find the log line by).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }
}

impl From<agnes_engine::EngineError> for ApiError {
    /// How a failure of the caller's own SQL (a query or a scan) is answered: the caller's
    /// mistakes and the server's limits are 400s that say which (by `code`); failures of
    /// ours are 500s without DuckDB's internal text.
    fn from(e: agnes_engine::EngineError) -> Self {
        use agnes_engine::EngineError as E;
        let code = e.code();
        let bad = |detail: serde_json::Value| ApiError::coded(StatusCode::BAD_REQUEST, code, detail);
        match e {
            other if code == "internal" => ApiError::internal(other),
            E::Rejected { kind, details } => {
                bad(serde_json::json!({"error": "validator_rejected", "kind": kind, "details": details}))
            }
            E::Timeout { seconds } => bad(serde_json::json!({"reason": "query_timeout", "limit_seconds": seconds,
                "hint": "the query was stopped at the server's time limit: filter or aggregate more, or pull the table and query it locally"})),
            E::ResultTooLarge { limit_bytes } => {
                bad(serde_json::json!({"reason": "result_too_large", "limit_bytes": limit_bytes,
                "hint": "select fewer columns, filter more, or lower the limit"}))
            }
            E::DuckDb(err) => bad(format!("Query error: {err}").into()),
            E::InvalidIdentifier(_) => bad(format!("Query error: {e}").into()),
            other => bad(other.to_string().into()),
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
    /// The `{"detail": …, "code": …}` body; a 429 whose detail says
    /// `retry_after_seconds` also carries it as `Retry-After`.
    fn into_response(self) -> Response {
        let retry_after = (self.status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| self.detail.get("retry_after_seconds").and_then(serde_json::Value::as_u64))
            .flatten();
        let body =
            agnes_core::api::ErrorBody { detail: self.detail, code: Some(self.code.to_string()), request_id: None };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
