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
