//! Turning a `files` registry row into published parquet.

use super::client::resolve;
use super::config::{FileFormat, FilesConfig, ReaderOptions};
use crate::{Connector, ConnectorError, Publication, SyncContext, SyncedTable};
use agnes_core::ident::{is_strict_identifier, quote_ident, quote_literal};
use agnes_core::{PartitionGranularity, QueryMode, SourceType, SyncStrategy, TableSpec};
use agnes_engine::confined::open_confined;
use agnes_engine::publish::{publish_partitioned, publish_query};
use std::path::Path;

pub const SOURCE_NAME: &str = "files";

pub struct FilesConnector {
    config: FilesConfig,
}

impl FilesConnector {
    pub fn new(config: FilesConfig) -> Self {
        FilesConnector { config }
    }

    pub fn root(&self) -> &Path {
        &self.config.root
    }

    /// The SELECT that reads a table's files with its reader options.
    pub fn reader_sql(&self, table: &TableSpec) -> Result<String, ConnectorError> {
        let pattern = table.source_table.as_deref().ok_or_else(|| {
            ConnectorError::Config(format!("table '{}' has no source_table (the file path or glob)", table.id))
        })?;
        let options = ReaderOptions::from_json(table.source_options.as_ref())?;
        let files = resolve(&self.config.root, pattern)?;
        let format = match options.format {
            Some(f) => f,
            None => FileFormat::from_path(pattern).ok_or_else(|| {
                ConnectorError::Config(format!(
                    "cannot tell the format of {pattern:?} from its extension; set source_options.format to csv, tsv, json or parquet"
                ))
            })?,
        };
        let list = files.iter().map(|p| quote_literal(&p.to_string_lossy())).collect::<Vec<_>>().join(", ");
        Ok(match format {
            FileFormat::Csv | FileFormat::Tsv => {
                let mut args = vec![format!("[{list}]"), "union_by_name = true".to_string()];
                let nulls = options.null_markers.iter().map(|s| quote_literal(s)).collect::<Vec<_>>().join(", ");
                args.push(format!("nullstr = [{nulls}]"));
                match (&options.delimiter, format) {
                    (Some(d), _) => args.push(format!("delim = {}", quote_literal(d))),
                    (None, FileFormat::Tsv) => args.push("delim = '\\t'".to_string()),
                    _ => {}
                }
                if let Some(h) = options.header {
                    args.push(format!("header = {h}"));
                }
                if let Some(q) = &options.quote {
                    args.push(format!("quote = {}", quote_literal(q)));
                }
                if !options.types.is_empty() {
                    let types = options
                        .types
                        .iter()
                        .map(|(c, t)| format!("{}: {}", quote_literal(c), quote_literal(t)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    args.push(format!("types = {{{types}}}"));
                }
                format!("SELECT * FROM read_csv({})", args.join(", "))
            }
            FileFormat::Json => format!("SELECT * FROM read_json([{list}], union_by_name = true)"),
            FileFormat::Parquet => {
                format!("SELECT * FROM read_parquet([{list}], union_by_name = true)")
            }
        })
    }

    fn select_sql(&self, table: &TableSpec) -> Result<String, ConnectorError> {
        match table.query_mode {
            QueryMode::Local => self.reader_sql(table),
            QueryMode::Materialized => {
                let q = table.source_query.as_deref().map(str::trim).unwrap_or_default();
                if q.is_empty() {
                    return Err(ConnectorError::Config(format!(
                        "materialized table '{}' has no source_query",
                        table.id
                    )));
                }
                Ok(q.trim_end_matches(';').to_string())
            }
            other => Err(ConnectorError::Config(format!("the files connector does not sync query_mode '{other}'"))),
        }
    }
}

impl FilesConnector {
    /// A DuckDB that can read only the root and write only the output and spill
    /// directories, with `source_path()` for root-relative paths.
    fn confined(&self, ctx: &SyncContext<'_>) -> Result<agnes_engine::duckdb::Connection, ConnectorError> {
        let data_dir = ctx.layout.source_data_dir(SOURCE_NAME);
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| ConnectorError::Source(format!("cannot create {}: {e}", data_dir.display())))?;
        let root = std::path::absolute(&self.config.root).map_err(|e| ConnectorError::Config(e.to_string()))?;
        let tmp = ctx.layout.tmp_dir();
        let conn = open_confined(&[&root, &data_dir, &tmp], ctx.limits)?;
        let mut root_prefix = root.to_string_lossy().into_owned();
        if !root_prefix.ends_with('/') {
            root_prefix.push('/');
        }
        conn.execute_batch(&format!("CREATE MACRO source_path(p) AS {} || p", quote_literal(&root_prefix)))
            .map_err(agnes_engine::EngineError::from)?;
        Ok(conn)
    }
}

/// DuckDB's errors while reading a source are the source's problem, told concisely.
fn read_error(e: agnes_engine::EngineError) -> ConnectorError {
    match e {
        agnes_engine::EngineError::DuckDb(d) => ConnectorError::Source(concise(&d.to_string())),
        other => ConnectorError::Engine(other),
    }
}

impl Connector for FilesConnector {
    fn source_name(&self) -> &str {
        SOURCE_NAME
    }

    fn source_type(&self) -> SourceType {
        SourceType::Files
    }

    fn syncs(&self, mode: QueryMode) -> bool {
        matches!(mode, QueryMode::Local | QueryMode::Materialized)
    }

    fn probe(&self) -> Result<agnes_core::api::SourceTest, ConnectorError> {
        let root = &self.config.root;
        if !root.is_dir() {
            return Err(ConnectorError::Config(format!("the files root {} is not a directory", root.display())));
        }
        let found = super::client::discover(root).len() as i64;
        Ok(agnes_core::api::SourceTest {
            name: SOURCE_NAME.into(),
            source_type: SourceType::Files,
            server_version: format!("files under {}", root.display()),
            role: String::new(),
            superuser: false,
            tables_visible: found,
            expires: None,
            warnings: if found == 0 { vec!["no data file under the root yet".into()] } else { Vec::new() },
        })
    }

    fn discover(&self) -> Result<Vec<agnes_core::api::DiscoveredTable>, ConnectorError> {
        Ok(super::client::discover(&self.config.root)
            .into_iter()
            .map(|f| agnes_core::api::DiscoveredTable {
                path: f.path,
                format: f.format.to_string(),
                size_bytes: Some(f.size_bytes),
                bucket: None,
                source_table: None,
                columns: Vec::new(),
                primary_key: Vec::new(),
                estimated_rows: None,
                last_import: None,
                last_change: None,
                registered_as: None,
            })
            .collect())
    }

    fn check_options(&self, table: &TableSpec) -> Result<(), crate::InvalidField> {
        ReaderOptions::from_json(table.source_options.as_ref()).map(|_| ()).map_err(crate::InvalidField::source_options)
    }

    /// Files are republished whole (or per partition) on every sync: there is no
    /// change-tracking to make `incremental` mean anything, and a file has no export filter.
    fn unsupported(&self, table: &TableSpec) -> Option<String> {
        if table.sync_strategy == SyncStrategy::Incremental {
            return Some(
                "the files connector does not support sync_strategy 'incremental': files are republished whole; \
                 use 'full_refresh', or 'partitioned' to write one parquet per period"
                    .into(),
            );
        }
        if table.has_where_filters() {
            return Some(
                "the files connector does not support where_filters; filter in a materialized source_query instead"
                    .into(),
            );
        }
        None
    }

    fn preview(
        &self,
        table: &TableSpec,
        ctx: &SyncContext<'_>,
    ) -> Result<Vec<agnes_engine::inspect::Column>, ConnectorError> {
        let select = self.select_sql(table)?;
        let conn = self.confined(ctx)?;
        agnes_engine::inspect::describe_query(&conn, &select).map_err(read_error)
    }

    fn sync_table(&self, table: &TableSpec, ctx: &SyncContext<'_>) -> Result<SyncedTable, ConnectorError> {
        if !is_strict_identifier(&table.name) {
            return Err(ConnectorError::Config(format!(
                "table name {:?} is not a valid identifier (it is the view and file name): use letters, digits and _",
                table.name
            )));
        }
        let select = self.select_sql(table)?;
        let conn = self.confined(ctx)?;
        match table.sync_strategy {
            SyncStrategy::Partitioned => {
                let column = table.partition_by.as_deref().ok_or_else(|| {
                    ConnectorError::Config(format!(
                        "partitioned table '{}' needs partition_by (a date or timestamp column)",
                        table.id
                    ))
                })?;
                let granularity = table.partition_granularity.unwrap_or(PartitionGranularity::Month);
                let expr = format!(
                    "strftime(CAST({} AS TIMESTAMP), '{}')",
                    quote_ident(column),
                    granularity.strftime_pattern()
                );
                let dir = ctx.layout.table_part_dir(SOURCE_NAME, &table.name);
                let parts = publish_partitioned(&conn, &select, &expr, &dir).map_err(read_error)?;
                Ok(SyncedTable { publication: Publication::Parts(parts), source_version: None })
            }
            SyncStrategy::FullRefresh | SyncStrategy::Incremental => {
                let target = ctx.layout.table_file(SOURCE_NAME, &table.name);
                let file = publish_query(&conn, &select, &target).map_err(read_error)?;
                Ok(SyncedTable { publication: Publication::Single(file), source_version: None })
            }
        }
    }
}

/// DuckDB's reader errors span many lines (sniffer settings, hints). Keep the part that
/// says what and where: the text up to the first blank line plus the `file = …` line.
pub(crate) fn concise(message: &str) -> String {
    let mut head: Vec<&str> = message.lines().take_while(|l| !l.trim().is_empty()).collect();
    if let Some(file) = message.lines().map(str::trim).find(|l| l.starts_with("file = ")) {
        head.push(file);
    }
    head.join(" | ")
}
