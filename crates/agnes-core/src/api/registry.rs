//! The table registry, for admins (spec §3.8).

use crate::{SourceType, TableSpec};
use serde::{Deserialize, Serialize};

/// `POST /api/admin/register-table` (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Registered {
    pub id: String,
    pub name: String,
    /// Always `registered`: the data is published on the next sync.
    pub status: String,
}

/// `POST /api/admin/register-table/precheck`: the registration is valid, and what the
/// source has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Precheck {
    pub ok: bool,
    pub table: PrecheckTable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrecheckTable {
    pub name: String,
    pub source_type: Option<SourceType>,
    pub bucket: Option<String>,
    pub source_table: Option<String>,
    /// Rows and bytes, where the source can tell without reading everything.
    pub rows: Option<i64>,
    pub size_bytes: Option<i64>,
    pub columns: Vec<SourceColumn>,
    pub note: String,
}

/// A column as a source describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: String,
    pub nullable: bool,
}

/// `GET /api/admin/registry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegistryList {
    pub count: usize,
    pub tables: Vec<RegistryRow>,
}

/// A registry row and why its last sync failed, if it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegistryRow {
    #[serde(flatten)]
    pub spec: TableSpec,
    pub last_sync_error: Option<String>,
}

/// `PUT /api/admin/registry/{table_id}`: the fields that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableUpdated {
    pub id: String,
    pub updated: Vec<String>,
}

/// `GET /api/admin/discover-tables`: what a source has that could be registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Discovered {
    pub count: usize,
    pub tables: Vec<DiscoveredTable>,
    /// The source type searched.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoveredTable {
    /// The path (files) or `schema.table` (databases) to register as `source_table`.
    pub path: String,
    pub format: String,
    pub size_bytes: Option<u64>,
}

/// The body of `POST /api/admin/register-table` (`name` required) and
/// `PUT /api/admin/registry/{table_id}`: the registry fields to set. An absent field is
/// kept (or defaulted); on update an explicit `null` clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TableRegistration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_strategy: Option<String>,
    /// A list, or (as the original accepted) one comma-separated string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_after_sync: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental_window_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_history_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub where_filters: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_granularity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_load_chunk_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bq_fqn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub source_options: Option<serde_json::Value>,
}
