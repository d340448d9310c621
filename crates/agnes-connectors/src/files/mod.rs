//! The `files` connector (alias `csv`): tables from CSV/TSV, JSON/NDJSON or Parquet files
//! under a configured root.
//!
//! * `query_mode = local`: the file(s) named by `source_table` (a path or glob relative
//!   to the root) are copied into one parquet, or one per partition.
//! * `query_mode = materialized`: `source_query` is DuckDB SQL; `source_path('rel/path')`
//!   turns a root-relative path into one its readers accept.
//!
//! Every read runs in a DuckDB confined to the root and the output directory, so no path
//! can escape the root, however it is written.

pub(crate) mod client;
mod config;
mod extract;
#[cfg(test)]
mod tests;

pub use config::{FileFormat, FilesConfig, ReaderOptions};
pub use extract::{FilesConnector, SOURCE_NAME};
