//! The `keboola` connector: tables of a Keboola project through the Storage API (spec
//! §8.1), over the original's single `data_source.keboola` or named connections.
//!
//! Every sync is an async table export (`whereFilters`, `columns`, `changedSince`…) whose
//! sliced files are downloaded in parallel and read by DuckDB with the column types of
//! the table's Keboola metadata. `full_refresh` publishes the whole table; `incremental`
//! asks for rows changed since the last sync (less `incremental_window_days`) and merges
//! them on `primary_key` as a layered table; `materialized` rows carry their export
//! filter as JSON in `source_query`. There is no remote mode: the data is always copied.

pub mod client;
mod config;
mod extract;
mod sigv4;
#[cfg(test)]
mod tests;

pub use client::{KbcTable, StorageClient, TokenFacts};
pub use config::{ExportQuery, FileType, KeboolaConnectionConfig, KeboolaSource, KeboolaTableOptions};
pub use extract::{duckdb_type, KeboolaConnector};
