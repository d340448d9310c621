//! Health, version and errors.

use serde::{Deserialize, Serialize};

/// `GET /api/health` (spec §3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionResponse {
    pub version: String,
    pub channel: String,
    pub image_tag: Option<String>,
    pub deployed_at: Option<String>,
}

/// Every error answer: the original's `{"detail": <string or object>}`, plus a stable
/// machine-readable `code` and, for failures of the server's own, the request id to quote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An answer that only says how it went: `{"status": "ok"}`, `{"status": "logged_out"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusReply {
    pub status: String,
}

impl StatusReply {
    pub fn new(status: &str) -> StatusReply {
        StatusReply { status: status.to_string() }
    }
}

/// `GET /api/health/detailed`: each service's state, filtered to what the caller may read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthDetail {
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: String,
    pub version: String,
    pub schema_version: i64,
    pub deployed_at: String,
    pub timestamp: String,
    pub services: HealthServices,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthServices {
    pub data: DataHealth,
    pub users: UsersHealth,
    pub scheduler: SchedulerHealth,
    pub db_schema: DbSchemaHealth,
}

/// The tables the caller may read: how many, how many rows, which are stale or failing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DataHealth {
    /// `ok` or `degraded`.
    pub status: String,
    pub tables: usize,
    pub total_rows: i64,
    pub stale_tables: Vec<String>,
    pub failing_tables: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsersHealth {
    pub status: String,
    /// How many users exist; shown to admins only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchedulerHealth {
    /// `ok`, or `off` when the in-server scheduler is disabled.
    pub status: String,
    pub tick_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DbSchemaHealth {
    /// `ok` or `mismatch`.
    pub status: String,
    pub current: i64,
    pub expected: i64,
}

/// `GET /api/admin/audit`: the newest audit records first, one page of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// The `before` that fetches the next (older) page; `None` on the last.
    pub next_before: Option<String>,
}

/// One audit record, with the e-mail of its user where it has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    pub id: String,
    pub timestamp: String,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub action: String,
    pub resource: Option<String>,
    pub result: Option<String>,
    pub duration_ms: Option<i64>,
    pub client_ip: Option<String>,
    pub client_kind: Option<String>,
}

/// `GET /api/admin/storage`: what the data directory holds and what room is left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StorageUse {
    /// The published parquet of every table, as the sync state records it.
    pub tables_bytes: i64,
    /// The state database with its write-ahead log.
    pub state_db_bytes: i64,
    /// Free and total space of the file system the data directory is on.
    pub free_bytes: u64,
    pub total_bytes: u64,
}
