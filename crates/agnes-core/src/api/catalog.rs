//! What analysts and agents browse: the catalog, schemas, samples, profiles, the welcome.

use crate::{QueryMode, SourceType, SyncStrategy};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `GET /api/v2/catalog`: every table the caller may use, with how to fetch it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Catalog {
    pub tables: Vec<CatalogTable>,
    pub server_time: String,
    /// Tables matching `q` before `offset` and `limit` (all the caller may use without them).
    #[serde(default)]
    pub total: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogTable {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub source_type: Option<SourceType>,
    pub query_mode: QueryMode,
    /// The SQL dialect of `--where` filters: `duckdb`, or `bigquery` for remote BigQuery.
    pub sql_flavor: String,
    pub where_examples: Vec<String>,
    /// How to get the data: already local, a snapshot command, or when it will be.
    pub fetch_via: String,
    /// `small` (≤ 100 MiB), `medium` (≤ 1 GiB), `large` (≤ 10 GiB) or `very_large`.
    pub rough_size_hint: Option<String>,
    pub rows: Option<i64>,
    pub size_bytes: Option<i64>,
    pub partition_by: Option<String>,
    pub clustered_by: Vec<String>,
    /// `BASE TABLE`, `VIEW`…, for remote tables whose source says.
    pub entity_type: Option<String>,
    /// `fresh`, `stale` or `not_applicable` (tables without cached remote metadata).
    pub metadata_freshness: String,
    pub last_sync: Option<String>,
    pub schedule: Option<String>,
    pub next_sync_at: Option<String>,
    pub overdue: bool,
    pub folder: Option<String>,
}

/// `GET /api/v2/schema/{table}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableSchema {
    pub table_id: String,
    pub source_type: Option<SourceType>,
    pub sql_flavor: String,
    pub columns: Vec<ColumnInfo>,
    pub partition_by: Option<String>,
    pub clustered_by: Vec<String>,
    /// Dialect notes for `--where` filters, by topic.
    pub where_dialect_hints: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ColumnInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: String,
    pub nullable: bool,
    pub description: String,
}

/// `GET /api/v2/sample/{table}`: a few rows, each an object by column name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sample {
    pub table_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub rows: Vec<Map<String, Value>>,
    /// Where the rows were read: `parquet`, or the remote source.
    pub source: String,
}

/// `GET /api/catalog/tables`, the original's table list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LegacyTables {
    pub count: usize,
    pub tables: Vec<LegacyTable>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LegacyTable {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub source_type: Option<SourceType>,
    pub sync_strategy: SyncStrategy,
    pub query_mode: QueryMode,
}

/// `GET /api/welcome`: the CLAUDE.md a workspace starts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Welcome {
    pub content: String,
}

/// `POST /api/catalog/profile/{table}/refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProfileRefreshed {
    pub status: String,
    pub table: String,
    pub columns: usize,
}

/// `GET /api/catalog/profile/{table}` (spec §7): what the data looks like, computed on the
/// server after a sync so analysts need not scan it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableProfile {
    pub table_id: String,
    pub description: Option<String>,
    pub primary_key: Vec<String>,
    pub sync_strategy: String,
    pub row_count: i64,
    pub column_count: usize,
    pub file_size_mb: f64,
    /// Mean of the columns' completeness, in percent.
    pub avg_completeness: f64,
    pub missing_cells: i64,
    pub missing_cells_pct: f64,
    /// Rows sharing a primary key with another; absent without a primary key.
    pub duplicate_rows: Option<i64>,
    /// How many columns of each type category (`NUMERIC`, `STRING`, `DATE`…).
    pub variable_types: BTreeMap<String, u64>,
    /// The span of the first date or timestamp column.
    pub date_range: Option<DateRange>,
    pub alerts: Vec<ProfileAlert>,
    /// Statistics come from a sample of the rows (counts stay exact).
    pub sampled: bool,
    pub columns: Vec<ColumnProfile>,
    /// The first rows, every value as text.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub sample_rows: Vec<Map<String, Value>>,
    #[serde(default)]
    pub last_sync: Option<String>,
    #[serde(default)]
    pub profiled_at: Option<String>,
    /// The business metrics that read this table (looked up when asked).
    #[serde(default)]
    pub used_by_metrics: Vec<MetricRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DateRange {
    pub column: String,
    pub earliest: Option<String>,
    pub latest: Option<String>,
}

/// Something worth knowing about a column: `constant`, `unique`, `missing`,
/// `high_missing`, `zeros`, `imbalance`, `high_cardinality`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProfileAlert {
    pub column: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ColumnProfile {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: String,
    /// `NUMERIC`, `STRING`, `DATE`, `TIMESTAMP` or `BOOLEAN`.
    pub type_category: String,
    pub completeness_pct: f64,
    pub null_count: i64,
    pub unique_count: i64,
    pub unique_pct: f64,
    pub sample_values: Vec<Option<String>>,
    pub is_primary_key: bool,
    /// The kinds of this column's alerts.
    pub alerts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric_stats: Option<NumericStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_stats: Option<StringStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_stats: Option<DateStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boolean_stats: Option<BooleanStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NumericStats {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    pub stddev: Option<f64>,
    pub p5: Option<f64>,
    pub p25: Option<f64>,
    pub p75: Option<f64>,
    pub p95: Option<f64>,
    pub zeros: i64,
    pub zeros_pct: f64,
    pub negative: i64,
    pub negative_pct: f64,
    pub histogram: Histogram,
}

/// Equal-width bins (numbers) or quarters (dates), each labelled, with their counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Histogram {
    pub bins: Vec<String>,
    pub counts: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StringStats {
    pub min_length: Option<i64>,
    pub max_length: Option<i64>,
    pub avg_length: Option<f64>,
    /// The most common values, for columns with few distinct values.
    pub top_values: Vec<TopValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopValue {
    pub value: Option<String>,
    pub count: i64,
    pub pct: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DateStats {
    pub earliest: Option<String>,
    pub latest: Option<String>,
    pub span_days: Option<i64>,
    pub histogram: Histogram,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BooleanStats {
    pub true_count: i64,
    pub false_count: i64,
    pub true_pct: f64,
}

/// A metric by id and names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricRef {
    pub id: String,
    pub name: String,
    pub display_name: String,
}

/// One remote table's entry in the metadata cache (`GET /api/v2/metadata-cache/status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetadataCacheEntry {
    pub table_id: String,
    /// `project.dataset.table`.
    pub path: String,
    pub entity_type: Option<String>,
    pub rows: Option<i64>,
    pub size_bytes: Option<i64>,
    pub partition_by: Option<String>,
    pub clustered_by: Vec<String>,
    pub columns: usize,
    pub refreshed_at: Option<String>,
    pub error_at: Option<String>,
    pub error: Option<String>,
    /// `fresh` (refreshed within two intervals), `stale`, `error` (never refreshed, only
    /// failed) or `never_fetched`.
    pub metadata_freshness: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetadataCacheStatus {
    pub refresh_interval_seconds: u64,
    pub tables: Vec<MetadataCacheEntry>,
}

/// What a metadata refresh did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetadataRefreshed {
    pub refreshed: Vec<String>,
    /// `{table, error}` of each table BigQuery could not describe.
    pub errors: Vec<BTreeMap<String, String>>,
}
