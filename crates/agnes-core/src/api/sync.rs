//! The manifest clients pull by, and the sync controls.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `GET /api/sync/manifest`: every table the caller may pull, by name. Fields the
/// original server may leave out are optional, so its manifests read too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Manifest {
    pub tables: std::collections::BTreeMap<String, ManifestEntry>,
    #[serde(default)]
    pub server_time: Option<String>,
}

/// One table of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManifestEntry {
    /// The registry id (downloads take it); absent from the original's manifests.
    #[serde(default)]
    pub id: Option<String>,
    /// MD5 of the published file, `""` while nothing is published.
    #[serde(default)]
    pub hash: String,
    /// XXH3-128 of the file, which clients verify while the bytes arrive.
    #[serde(default)]
    pub checksum: Option<String>,
    /// When the table was last synced.
    #[serde(default)]
    pub updated: Option<String>,
    #[serde(default)]
    pub size_bytes: i64,
    #[serde(default)]
    pub rows: i64,
    /// `local`, `materialized` or `remote`.
    #[serde(default)]
    pub query_mode: Option<String>,
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub overdue: bool,
    /// The parts of a partitioned table (one per period) or of an incrementally synced
    /// one (`base` and `delta`), each pulled on its own.
    #[serde(default)]
    pub parts: Option<Vec<ManifestPart>>,
    /// For an incrementally synced table: the key its parts are merged on when read (a
    /// `delta` row replaces the `base` row with the same key). Ours, not the original's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_key: Option<Vec<String>>,
}

/// One part (one period's parquet) of a partitioned table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManifestPart {
    pub part: String,
    /// Where to download it.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub hash: String,
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default)]
    pub size_bytes: i64,
    #[serde(default)]
    pub rows: i64,
}

/// How fresh a table is: when it was last synced, when it falls due, whether the
/// scheduler is late with it, and its failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Freshness {
    pub id: String,
    pub name: String,
    /// The schedule in force: the table's own, or the default of materialized tables.
    pub schedule: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_sync: Option<DateTime<Utc>>,
    /// When the table became or becomes due; `None` for tables no connector syncs here.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub due_at: Option<DateTime<Utc>>,
    /// When the scheduler will next try it: the due time, or later while a failure's
    /// backoff lasts.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub next_sync_at: Option<DateTime<Utc>>,
    /// Due for longer than two ticks (the scheduler should have synced it by then), or
    /// never synced.
    pub overdue: bool,
    pub status: Option<String>,
    pub last_error: Option<String>,
    pub failures: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub retry_at: Option<DateTime<Utc>>,
}

/// `GET /api/admin/scheduler`: the in-server scheduler's jobs and every table's schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchedulerStatus {
    pub enabled: bool,
    pub tick_seconds: u64,
    pub sync_running: bool,
    pub jobs: Vec<JobView>,
    pub tables: Vec<Freshness>,
}

/// One scheduler job: its last run and the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobView {
    pub name: String,
    pub running: bool,
    pub running_since: Option<String>,
    pub last_started_at: Option<String>,
    pub last_finished_at: Option<String>,
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    pub last_duration_ms: Option<i64>,
    pub runs: i64,
    pub next_run_at: Option<String>,
}

/// `POST /api/sync/trigger`: the sync started in the background.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncTriggered {
    /// Always `triggered`.
    pub status: String,
    pub tables: SyncSelection,
    pub message: String,
}

/// Which tables a sync covers: `"all"` that are due, or the named ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum SyncSelection {
    All(String),
    Named(Vec<String>),
}

/// `GET /api/sync/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncLock {
    /// A sync is running, or was triggered less than 30 s ago.
    pub locked: bool,
}

/// The body of `POST /api/sync/trigger`, in the shapes the original accepted: a list of
/// table names or ids, `{"tables": [...]}`, or nothing / `null` for whatever is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum SyncRequest {
    Tables(Vec<String>),
    Object(SyncTables),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncTables {
    pub tables: Option<Vec<String>>,
}

/// `GET /api/admin/registry/{table_id}/history`: the table's sync runs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncHistory {
    pub table_id: String,
    pub runs: Vec<SyncRun>,
}

/// One sync of a table: when, how long, what it published or why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncRun {
    pub synced_at: String,
    /// `ok` or `error`.
    pub status: String,
    pub rows: Option<i64>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    /// Whether the data changed (a sync that found the source as it was publishes nothing).
    pub changed: Option<bool>,
}
