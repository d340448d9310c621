//! Wire types of the HTTP contract that more than one crate needs.

use serde::{Deserialize, Serialize};

/// `GET /api/health` (spec §3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// `ok` or `unhealthy`.
    pub status: String,
    /// `ok`, `mismatch` or `unreachable`.
    pub db_schema: String,
    pub current: i64,
    pub expected: i64,
}

/// `GET /api/version` (spec §3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionResponse {
    pub version: String,
    pub channel: String,
    pub image_tag: Option<String>,
    pub deployed_at: Option<String>,
}

/// The original's error body: `{"detail": <string or object>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub detail: serde_json::Value,
}
