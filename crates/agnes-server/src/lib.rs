//! The agnes server: HTTP routes, the sync service, metrics and the serve loop.
//!
//! Only this crate knows HTTP routes. Handlers stay thin: they resolve the caller and the
//! resource, then call the store, the engine or the sync service.

mod audit_queue;
pub mod auth;
pub mod config;
mod error;
mod jira;
pub mod mcp;
pub mod metric_import;
pub mod metrics;
pub mod query;
mod remote_metadata;
mod routes;
mod serve;
mod settings;
pub mod state;
pub mod sync;

pub use config::ServerConfig;
pub use error::{ApiError, ServerError};
pub use routes::openapi_document;
pub use serve::{prepare, serve, shutdown_signal, Server};
pub use state::AppState;
