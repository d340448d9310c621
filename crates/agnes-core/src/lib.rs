//! Domain types and rules of agnes, with no IO.
//!
//! Everything here is pure: identifiers, table specs, the schedule grammar, metric
//! definitions and the wire types of the HTTP contract. Crates that do IO depend on this one, never the reverse.

pub mod api;
pub mod ident;
pub mod metric;
pub mod schedule;
pub mod table;

pub use ident::{is_bq_project, is_quoted_identifier, is_strict_identifier, registry_id_for_name};
pub use schedule::Schedule;
pub use table::{PartitionGranularity, QueryMode, SourceType, SyncStrategy, TableSpec};

/// The version of this build, shared by the server's `/api/version` and the CLI.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
