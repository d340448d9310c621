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
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "detail": self.detail }))).into_response()
    }
}
