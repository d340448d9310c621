//! The `postgres` connector: tables of a PostgreSQL database, over named connections
//! (`data_source.postgres.<name>`).
//!
//! * `query_mode = local`: `bucket.source_table` (schema and table or view) is copied to
//!   parquet on the server (`full_refresh`, `incremental` on `incremental_column` merged on
//!   `primary_key`, or `partitioned` by `partition_by`) and pulled by analysts.
//! * `query_mode = remote`: nothing is copied; `/api/query` runs the caller's SQL in
//!   PostgreSQL after checking it on a parse tree (`remote`).
//! * `query_mode = materialized`: `source_query` runs in PostgreSQL, read-only, under a
//!   statement timeout and a planner-estimate cost cap; its result is published.
//!
//! Every read is one `REPEATABLE READ READ ONLY` transaction; rows arrive as binary COPY
//! and become Arrow batches (`types`), then parquet.

pub mod client;
mod config;
mod extract;
pub mod remote;
#[cfg(test)]
mod tests;
pub mod types;

pub use client::{connect, discover, server_facts, PgColumn, PgRelation, ServerFacts};
pub use config::{PgConnectionConfig, PgSource, PgTableOptions, SslMode};
pub use extract::{qualified_name, PostgresConnector};
