//! Source connectors: one folder per source with the same file names
//! (`config.rs`, `client.rs`, `extract.rs`, `tests.rs`) and one trait.
//!
//! A connector turns one registry row into published parquet under
//! `extracts/<source>/data/`. Everything else of a sync (choosing due tables, writing
//! `_meta`, rebuilding the analytics DB, recording state) is shared and lives in the
//! server's sync service, so every connector gets it for free.

mod error;
pub mod files;

use agnes_core::{QueryMode, SourceType, TableSpec};
use agnes_engine::confined::Limits;
use agnes_engine::publish::{PublishedFile, PublishedPart};
use agnes_engine::DataLayout;
use std::path::PathBuf;

pub use error::ConnectorError;

/// What a sync needs from its surroundings.
pub struct SyncContext<'a> {
    pub layout: &'a DataLayout,
    pub limits: &'a Limits,
}

/// What one table's sync published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    Single(PublishedFile),
    Parts(Vec<PublishedPart>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedTable {
    pub publication: Publication,
    /// The path (or glob, for parts) the extract's inner view reads.
    pub view_path: PathBuf,
}

impl SyncedTable {
    pub fn rows(&self) -> i64 {
        match &self.publication {
            Publication::Single(f) => f.rows,
            Publication::Parts(p) => p.iter().map(|p| p.file.rows).sum(),
        }
    }

    pub fn size_bytes(&self) -> i64 {
        match &self.publication {
            Publication::Single(f) => f.size_bytes,
            Publication::Parts(p) => p.iter().map(|p| p.file.size_bytes).sum(),
        }
    }
}

/// A source of tables.
pub trait Connector: Send + Sync {
    /// The extract directory name (`extracts/<source_name>`), also the DuckDB catalog alias.
    fn source_name(&self) -> &'static str;
    /// The registry `source_type` this connector serves.
    fn source_type(&self) -> SourceType;
    /// Whether this connector syncs rows of this query mode.
    fn syncs(&self, mode: QueryMode) -> bool;
    /// Why this connector cannot sync `table` as registered (an option it does not
    /// implement), checked at registration so that nothing is silently ignored at sync.
    fn unsupported(&self, table: &TableSpec) -> Option<String>;
    /// Extract and publish one table. Blocking: call from a blocking thread.
    fn sync_table(&self, table: &TableSpec, ctx: &SyncContext<'_>) -> Result<SyncedTable, ConnectorError>;
    /// The columns a sync of `table` would publish, read from the source without
    /// publishing anything (registration precheck). Blocking.
    fn preview(
        &self,
        table: &TableSpec,
        ctx: &SyncContext<'_>,
    ) -> Result<Vec<agnes_engine::inspect::Column>, ConnectorError>;
}
