//! Source connectors: one folder per source with the same file names
//! (`config.rs`, `client.rs`, `extract.rs`, `tests.rs`) and one trait.
//! `testing` (feature `testing`) holds what tests need of real sources: a throw-away
//! PostgreSQL cluster.
//!
//! A connector turns one registry row into published parquet under
//! `extracts/<source>/data/`. Everything else of a sync (choosing due tables, writing
//! `_meta`, rebuilding the analytics DB, recording state) is shared and lives in the
//! server's sync service, so every connector gets it for free.

pub mod bigquery;
mod error;
pub mod files;
pub mod google;
pub mod jira;
pub mod keboola;
pub mod postgres;
pub mod remote;
#[cfg(test)]
mod test_rows;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use agnes_core::{QueryMode, SourceType, TableSpec};
use agnes_engine::confined::Limits;
use agnes_engine::publish::{PublishedFile, PublishedLayers, PublishedPart};
use agnes_engine::DataLayout;

pub use error::ConnectorError;

/// What a sync needs from its surroundings.
pub struct SyncContext<'a> {
    pub layout: &'a DataLayout,
    pub limits: &'a Limits,
    /// When this table last synced successfully (sources that ask for changes since then).
    pub last_sync: Option<chrono::DateTime<chrono::Utc>>,
    /// The source's version of the table at that sync (see [`SyncedTable::source_version`]).
    pub source_version: Option<&'a str>,
}

/// What one table's sync published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    Single(PublishedFile),
    /// A partitioned table: one part per period.
    Parts(Vec<PublishedPart>),
    /// An incrementally synced table: base and delta, merged on read.
    Layered(PublishedLayers),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedTable {
    pub publication: Publication,
    /// What the source calls this version of the table (Keboola's `lastImportDate`): the
    /// next sync, finding the same, need not read it again.
    pub source_version: Option<String>,
}

impl SyncedTable {
    pub fn rows(&self) -> i64 {
        match &self.publication {
            Publication::Single(f) => f.rows,
            Publication::Parts(p) => p.iter().map(|p| p.file.rows).sum(),
            Publication::Layered(l) => l.rows,
        }
    }

    /// The parts, for tables published in parts.
    pub fn parts(&self) -> &[PublishedPart] {
        match &self.publication {
            Publication::Single(_) => &[],
            Publication::Parts(p) => p,
            Publication::Layered(l) => &l.parts,
        }
    }

    pub fn size_bytes(&self) -> i64 {
        match &self.publication {
            Publication::Single(f) => f.size_bytes,
            Publication::Parts(_) | Publication::Layered(_) => self.parts().iter().map(|p| p.file.size_bytes).sum(),
        }
    }
}

/// A registry field a connector cannot take as given, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    /// `source_options`, `where_filters` or `source_query`.
    pub field: &'static str,
    pub message: String,
}

impl InvalidField {
    pub fn source_options(e: ConnectorError) -> InvalidField {
        InvalidField { field: "source_options", message: e.to_string() }
    }
}

/// An HTTP client error as a person can act on it: reqwest's message and its causes
/// ("error sending request: … Connection refused"), without the URL, which for a signed
/// link carries its signature.
pub(crate) fn http_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// A connector's `source_options` (absent: the defaults). An unknown key or a value of
/// the wrong type is an error naming the key.
pub(crate) fn parse_options<T: serde::de::DeserializeOwned + Default>(
    v: Option<&serde_json::Value>,
) -> Result<T, ConnectorError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(T::default()),
        Some(v) => serde_path_to_error::deserialize(v.clone()).map_err(|e| {
            let at = e.path().to_string();
            let at = if at == "." { String::new() } else { format!("{at}: ") };
            ConnectorError::Config(format!("invalid source_options: {at}{}", e.inner()))
        }),
    }
}

/// The connector among `connectors` that serves rows of `source_type` naming
/// `connection`: the one reading that connection, or, for a row that names none, the only
/// connector of the type.
pub fn connector_for<'a>(
    connectors: &'a [std::sync::Arc<dyn Connector>],
    source_type: SourceType,
    connection: Option<&str>,
) -> Option<&'a std::sync::Arc<dyn Connector>> {
    let mut of_type = connectors.iter().filter(|c| c.source_type() == source_type);
    match connection {
        Some(name) => of_type.find(|c| c.connection() == Some(name)),
        None => {
            let first = of_type.next()?;
            of_type.next().is_none().then_some(first)
        }
    }
}

/// A source of tables.
pub trait Connector: Send + Sync {
    /// The extract directory name (`extracts/<source_name>`), also the DuckDB catalog alias.
    fn source_name(&self) -> &str;
    /// The registry `source_type` this connector serves.
    fn source_type(&self) -> SourceType;
    /// The named connection it reads (`data_source.<type>.<name>`), for source types that
    /// have several; a registry row names it in `connection`.
    fn connection(&self) -> Option<&str> {
        None
    }
    /// Whether this connector syncs rows of this query mode.
    fn syncs(&self, mode: QueryMode) -> bool;
    /// Reach the source and say what answered, as whom, and what an admin should change
    /// (`agnes admin source test`). Blocking.
    fn probe(&self) -> Result<agnes_core::api::SourceTest, ConnectorError>;
    /// What the source holds that could be registered: files under the root, or a
    /// database's tables and views with their columns, keys and estimates. Blocking.
    fn discover(&self) -> Result<Vec<agnes_core::api::DiscoveredTable>, ConnectorError>;
    /// Whether the row's settings for this connector are valid: its `source_options`, and
    /// for a source that exports with a filter, `where_filters` and a JSON `source_query`.
    /// An unknown key, a wrong type, operator or placeholder is named (400 at
    /// registration, with the code `invalid_<field>`).
    fn check_options(&self, table: &TableSpec) -> Result<(), InvalidField>;
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
