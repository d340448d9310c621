//! The agnes state store: migrations and one repository per table family.
//!
//! State lives in SQLite in WAL mode (DESIGN decision 2). Only this crate writes SQL for
//! state; every query is runtime-checked portable SQL so a PostgreSQL backend can follow.

/// Rows whose wire shape (in `agnes_core::api`) has the same fields: `From` the row.
macro_rules! into_wire {
    ($($name:ident { $($field:ident),+ }),+) => {$(
        impl From<$name> for agnes_core::api::$name {
            fn from(r: $name) -> Self {
                agnes_core::api::$name { $($field: r.$field),+ }
            }
        }
    )+};
}

mod access;
pub mod audit;
pub mod bq_metadata;
mod db;
mod error;
pub mod identity;
pub mod jira;
pub mod memory;
pub mod metric_definitions;
mod migrate;
pub mod profiles;
pub mod prompt_templates;
pub mod quotas;
pub mod registry;
pub mod scheduler;
pub mod snapshot;
pub mod sync_state;
pub mod view_ownership;

pub use db::Store;
pub use error::{Result, StoreError};
pub use migrate::{SchemaStatus, LATEST_SCHEMA_VERSION};

/// Timestamps are stored as RFC 3339 text in UTC.
pub(crate) fn now_text() -> String {
    ts_text(chrono::Utc::now())
}

pub(crate) fn ts_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(crate) fn parse_ts(s: Option<String>) -> Option<chrono::DateTime<chrono::Utc>> {
    s.and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok()).map(|t| t.with_timezone(&chrono::Utc))
}

/// A transaction that takes SQLite's write lock when it starts. A deferred one that reads
/// first fails at its first write with "database is locked" (`SQLITE_BUSY_SNAPSHOT`) when
/// another connection committed in between, and no busy timeout helps; an immediate one
/// waits its turn instead.
pub(crate) async fn write_tx(pool: &sqlx::SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}
