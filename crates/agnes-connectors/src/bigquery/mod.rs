//! The `bigquery` connector: a native client of BigQuery's REST API (spec §8.2), signing
//! in with a service-account key, the GCE metadata server or application-default
//! credentials. Built so far: `agnes admin source test` (project, billing project,
//! location, principal, whether queries may run) and discovery of the data project's
//! datasets, tables and views with their DuckDB types, rows and bytes. Remote and
//! materialized tables come next; registering a BigQuery row says so.

mod auth;
pub mod client;
mod config;
mod extract;
#[cfg(test)]
mod tests;

pub use client::{duckdb_type, BqClient, BqTable};
pub use config::{BigQueryConfig, BigQuerySource};
pub use extract::{BigQueryConnector, SOURCE_NAME};
