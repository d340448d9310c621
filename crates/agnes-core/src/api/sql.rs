//! Queries and scans.

use serde::{Deserialize, Serialize};

/// `POST /api/query`: one SELECT over the tables the caller may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    /// Rows to answer at most; default 1,000, or the server's maximum when that is lower.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Run only on this remote source (`bigquery`, or a PostgreSQL connection's name), or
    /// be refused: a hybrid query's part says where it must run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `POST /api/query/hybrid`: remote parts, each run on its source under the remote
/// query's gate and caps and kept as a view named by its key, then `sql` over those views
/// and the caller's local tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HybridRequest {
    pub sql: String,
    /// View name → BigQuery SQL.
    #[serde(default)]
    pub register_bq: std::collections::BTreeMap<String, String>,
    /// View name → `SOURCE:SQL`, for any remote source (`postgres_crm:SELECT …`).
    #[serde(default)]
    pub register: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// One user's remote queries of one source on one UTC day (the cost ledger).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageRow {
    pub day: String,
    pub user_id: String,
    pub email: Option<String>,
    pub source: String,
    pub queries: i64,
    pub billed_bytes: i64,
    /// At the source's configured price (BigQuery's `price_per_tib_usd`).
    pub cost_usd: f64,
}

/// `GET /api/admin/usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    pub since: String,
    pub rows: Vec<UsageRow>,
}

/// The JSON answer of `POST /api/query` (the Arrow IPC answer carries the same in headers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueryResponse {
    pub columns: Vec<String>,
    /// Each row's values in column order, as JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<Object>>))]
    pub rows: Vec<Vec<serde_json::Value>>,
    pub row_count: usize,
    /// More rows existed than `limit`.
    pub truncated: bool,
}

/// `POST /api/v2/scan` and `/api/v2/scan/estimate`: rows of one table, filtered on the
/// server in the caller's sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    pub table_id: String,
    /// Columns to answer; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Vec<String>>,
    /// A SQL boolean expression over the table's columns.
    #[serde(rename = "where", default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by: Option<Vec<String>>,
    /// The snapshot name the client will save under; audited only.
    #[serde(rename = "as", default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// `POST /api/v2/scan/estimate`: what a scan would read and answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScanEstimate {
    pub table_id: String,
    pub estimated_scan_bytes: u64,
    pub estimated_result_rows: u64,
    pub estimated_result_bytes: u64,
    /// What BigQuery would bill for the scan; 0 for sources that do not bill by bytes.
    pub bq_cost_estimate_usd: f64,
}
