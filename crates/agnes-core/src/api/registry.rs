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
    /// Rows in this answer.
    pub count: usize,
    /// Rows matching `q` before `offset` and `limit` (all rows without them).
    #[serde(default)]
    pub total: usize,
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
    /// The path under the files root, or `schema.table` of a database.
    pub path: String,
    /// A file's format (`csv`, `parquet`…), or a relation's kind (`table`, `view`,
    /// `materialized_view`, `partitioned_table`, `foreign_table`).
    pub format: String,
    pub size_bytes: Option<u64>,
    /// Databases: the schema (a registration's `bucket`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Databases: the table or view (a registration's `source_table`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_table: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<SourceColumn>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
    /// The planner's row estimate, where the source keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_rows: Option<i64>,
    /// When data was last imported into the table, where the source says (Keboola).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_import: Option<String>,
    /// When the table last changed, where the source says (Keboola).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<String>,
    /// The registry id of the table that already reads it, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_as: Option<String>,
}

/// `GET /api/admin/sources`: a configured source, with its settings but never a secret
/// (environment variable names only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceInfo {
    /// What `connection` and `?source=` name (`files` for the files root).
    pub name: String,
    pub source_type: SourceType,
    /// Non-secret settings: host, port, database, user, sslmode, the environment variable
    /// names of the password or URL; the root of the files connector.
    pub settings: std::collections::BTreeMap<String, String>,
    /// Registry rows reading it.
    pub tables: usize,
}

/// `POST /api/admin/sources/{name}/test`: the source answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceTest {
    pub name: String,
    pub source_type: SourceType,
    /// What answered: `PostgreSQL 15.18`, `Keboola project 'Shop'`.
    pub server_version: String,
    /// Who agnes signs in as: a PostgreSQL role, a Keboola token's description.
    pub role: String,
    /// A superuser role or a Keboola master token: more power than reading needs.
    pub superuser: bool,
    /// Tables and views the role may read.
    pub tables_visible: i64,
    /// When the credentials expire, where the source says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// What an admin should change (a superuser role for remote queries…).
    pub warnings: Vec<String>,
}

/// The body of `POST /api/admin/discover-and-register`: register tables of a source in
/// one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DiscoverAndRegister {
    /// The source (`GET /api/admin/sources`).
    pub source: String,
    /// Paths as discovery lists them (`schema.table`, or file paths); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<String>>,
    /// `local` (default) or `remote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_schedule: Option<String>,
    /// Every table's `sync_strategy` (default `full_refresh`); a table that cannot take it
    /// (no primary key for `incremental`) is skipped, saying why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_strategy: Option<String>,
    /// Report what would be registered, register nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What `POST /api/admin/discover-and-register` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoveryRegistered {
    pub dry_run: bool,
    pub registered: Vec<Registered>,
    pub skipped: Vec<DiscoverySkipped>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoverySkipped {
    pub path: String,
    pub reason: String,
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
    /// The named connection (`data_source.<type>.<name>`) of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
}
