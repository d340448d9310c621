//! The analyst side: local configuration, the HTTP client, and output formatting.

pub mod api;
pub mod config;
pub mod output;
pub mod workspace;
