//! The `bigquery` connector: a native client of BigQuery's REST API (spec §8.2), signing
//! in with a service-account key, the GCE metadata server or application-default
//! credentials.
//!
//! * `agnes admin source test` (project, billing project, location, principal, whether
//!   queries may run) and discovery of the data project's tables with DuckDB types;
//! * `query_mode = remote`: nothing is copied; `/api/query`, scans and hybrid queries run
//!   in BigQuery after the parse-tree check, a dry run and the scan cap (`remote`);
//! * `query_mode = materialized`: the admin's SQL runs as a job under the cost cap and its
//!   result is published as parquet (`extract`).

pub mod client;
mod config;
mod extract;
pub mod remote;
#[cfg(test)]
mod tests;

pub use client::{duckdb_type, BqClient, BqFailure, BqTable};
pub use config::{BigQueryConfig, BigQuerySource};
pub use extract::{BigQueryConnector, SOURCE_NAME};
