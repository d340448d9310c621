//! How a published table lies on disk, and the one SELECT every reader (the query
//! sandbox, the orchestrator's views, profiles, the catalog, the analyst's DuckDB) reads
//! it with.
//!
//! An incrementally synced table is *layered* (merge on read): `base.parquet` holds every
//! row as of the last compaction and `delta.parquet` the rows changed since, each delta
//! row replacing the base row with the same key. A sync then writes only the delta, and
//! an analyst's pull downloads only the delta; the base is rewritten (compacted) only
//! when the delta has grown to a fraction of it (see `publish::publish_layered`).

use crate::{DataLayout, EngineError, Result};
use agnes_core::ident::{quote_ident, quote_literal};
use agnes_core::{SyncStrategy, TableSpec};
use std::path::{Path, PathBuf};

/// The part names of a layered table (also their file stems and their names in the
/// manifest and the download URLs).
pub const BASE_PART: &str = "base";
pub const DELTA_PART: &str = "delta";

/// Where a table's parquet is, and how its files make up the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableData {
    /// One parquet file.
    File(PathBuf),
    /// A partitioned table: every `*.parquet` in the directory, one per period.
    Parts(PathBuf),
    /// An incrementally synced table: `base.parquet` and `delta.parquet` in the directory,
    /// merged on `key` when read.
    Layered { dir: PathBuf, key: Vec<String> },
}

impl TableData {
    /// Where `table`, published by the source `source`, lies under `layout`.
    pub fn locate(layout: &DataLayout, source: &str, table: &TableSpec) -> TableData {
        Self::of(layout, source, &table.name, table.sync_strategy, &table.primary_key)
    }

    /// [`Self::locate`] from the registry fields it depends on.
    pub fn of(layout: &DataLayout, source: &str, name: &str, strategy: SyncStrategy, key: &[String]) -> TableData {
        match strategy {
            SyncStrategy::FullRefresh => TableData::File(layout.table_file(source, name)),
            SyncStrategy::Partitioned => TableData::Parts(layout.table_part_dir(source, name)),
            SyncStrategy::Incremental => {
                TableData::Layered { dir: layout.table_part_dir(source, name), key: key.to_vec() }
            }
        }
    }

    /// The file, or the directory of parts.
    pub fn location(&self) -> &Path {
        match self {
            TableData::File(p) => p,
            TableData::Parts(d) | TableData::Layered { dir: d, .. } => d,
        }
    }

    /// Whether this table was published from files whose parts are pulled one by one.
    pub fn has_parts(&self) -> bool {
        !matches!(self, TableData::File(_))
    }

    /// Whether a complete publication is on disk.
    pub fn exists(&self) -> bool {
        match self {
            TableData::File(p) => p.is_file(),
            TableData::Parts(d) => d.is_dir(),
            TableData::Layered { dir, .. } => layer(dir, BASE_PART).is_file() && layer(dir, DELTA_PART).is_file(),
        }
    }

    /// The parquet files that make up the table now.
    pub fn files(&self) -> Vec<PathBuf> {
        match self {
            TableData::File(p) => vec![p.clone()],
            TableData::Parts(d) => std::fs::read_dir(d)
                .map(|entries| {
                    let mut files: Vec<PathBuf> = entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
                        .collect();
                    files.sort();
                    files
                })
                .unwrap_or_default(),
            TableData::Layered { dir, .. } => vec![layer(dir, BASE_PART), layer(dir, DELTA_PART)],
        }
    }

    /// Bytes of parquet on disk (what a scan of the whole table reads at most).
    pub fn size_bytes(&self) -> u64 {
        self.files().iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
    }

    /// The SELECT that reads the whole table, with absolute paths.
    pub fn select_sql(&self) -> Result<String> {
        Ok(match self {
            TableData::File(p) => format!("SELECT * FROM read_parquet({})", quote_literal(&absolute(p)?)),
            TableData::Parts(d) => format!(
                "SELECT * FROM read_parquet({}, union_by_name = true)",
                quote_literal(&format!("{}/*.parquet", absolute(d)?))
            ),
            TableData::Layered { dir, key } => {
                layered_select(&absolute(&layer(dir, BASE_PART))?, &absolute(&layer(dir, DELTA_PART))?, key)?
            }
        })
    }
}

/// The file of one layer of a layered table.
pub fn layer(dir: &Path, part: &str) -> PathBuf {
    dir.join(format!("{part}.parquet"))
}

/// Base rows whose key no delta row has, then the delta rows. DuckDB plans the NOT
/// EXISTS as a hash anti-join with the delta on the build side, and pushes a query's
/// filters into both scans. `IS NOT DISTINCT FROM`, so a NULL in a key column matches
/// itself and such a row is not counted twice.
pub fn layered_select(base: &str, delta: &str, key: &[String]) -> Result<String> {
    if key.is_empty() {
        return Err(EngineError::Invalid("a layered table needs a primary key to merge on".into()));
    }
    let same_key = key
        .iter()
        .map(|k| format!("d.{0} IS NOT DISTINCT FROM b.{0}", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let (base, delta) = (quote_literal(base), quote_literal(delta));
    Ok(format!(
        "SELECT b.* FROM read_parquet({base}) AS b WHERE NOT EXISTS (SELECT 1 FROM read_parquet({delta}) AS d WHERE {same_key}) \
         UNION ALL BY NAME SELECT * FROM read_parquet({delta})"
    ))
}

pub(crate) fn absolute(p: &Path) -> Result<String> {
    Ok(std::path::absolute(p).map_err(EngineError::io("resolve", p))?.to_string_lossy().into_owned())
}
