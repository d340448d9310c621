//! Everything DuckDB: the extract contract, atomic publish, the orchestrator and the
//! confined connections connectors run in, and the query sandbox.
//!
//! This is the only crate that links DuckDB. All functions here are blocking; async
//! callers run them on `spawn_blocking` (DESIGN decision 3).

pub mod confined;
pub mod demo_data;
pub mod duck;
mod error;
pub mod extract;
pub mod fsutil;
pub mod inspect;
pub mod layout;
pub mod local;
pub mod orchestrator;
pub mod profile;
pub mod publish;
pub mod sandbox;
pub mod scan;
pub mod snapshot;
pub mod sql_refs;
pub mod table_data;
pub mod values;
mod watchdog;

pub use error::EngineError;
pub use layout::DataLayout;

/// DuckDB, re-exported for crates that must name its types in signatures (tests, bench).
pub use duckdb;

pub type Result<T> = std::result::Result<T, EngineError>;
