//! Turning a `keboola` registry row into published parquet (spec §8.1): an async export
//! with the row's filter, its slices downloaded in parallel, read by DuckDB with the
//! column types of Keboola's metadata, published atomically (whole, or as the delta of a
//! layered table for `incremental`).

use super::client::{KbcTable, StorageClient};
use super::config::{resolve_filters, unix, ExportQuery, FileType, KeboolaSource, KeboolaTableOptions};
use crate::{Connector, ConnectorError, InvalidField, Publication, SyncContext, SyncedTable};
use agnes_core::ident::{quote_ident, quote_literal};
use agnes_core::{PartitionGranularity, QueryMode, SourceType, SyncStrategy, TableSpec};
use agnes_engine::confined::open_confined;
use agnes_engine::fsutil::temp_path_for;
use agnes_engine::publish::{
    describe, describe_layered, merge_partitioned, publish_layered, publish_written, PublishedPart,
};
use agnes_engine::table_data::TableData;
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub struct KeboolaConnector {
    source: KeboolaSource,
    source_name: String,
}

/// The DuckDB type a column's `KBC.datatype.basetype` (and `length`) stands for. A base
/// type agnes does not know stays text.
pub fn duckdb_type(basetype: Option<&str>, length: Option<&str>) -> String {
    match basetype.map(str::to_ascii_uppercase).as_deref() {
        Some("INTEGER") => "BIGINT".into(),
        Some("FLOAT") => "DOUBLE".into(),
        Some("BOOLEAN") => "BOOLEAN".into(),
        Some("DATE") => "DATE".into(),
        Some("TIMESTAMP") => "TIMESTAMP".into(),
        Some("NUMERIC") => {
            let parsed = length.and_then(|l| {
                let (p, s) = l.split_once(',').unwrap_or((l, "0"));
                Some((p.trim().parse::<u32>().ok()?, s.trim().parse::<u32>().ok()?))
            });
            match parsed {
                Some((p, s)) if (1..=38).contains(&p) && s <= p => format!("DECIMAL({p},{s})"),
                // Unbounded or wider than DuckDB's DECIMAL: exact to 9 places, as PostgreSQL's
                // unbounded numeric is mapped.
                _ => "DECIMAL(38,9)".into(),
            }
        }
        _ => "VARCHAR".into(),
    }
}

/// The columns of `table` (or the chosen ones) with their DuckDB types.
fn typed_columns(table: &KbcTable, chosen: &[String]) -> Result<Vec<(String, String)>, ConnectorError> {
    let names: Vec<String> = if chosen.is_empty() { table.columns.clone() } else { chosen.to_vec() };
    names
        .into_iter()
        .map(|c| {
            if !table.columns.contains(&c) {
                return Err(ConnectorError::Config(format!("column '{c}' is not a column of {}", table.id)));
            }
            let ty = duckdb_type(
                table.column_meta(&c, "KBC.datatype.basetype").as_deref(),
                table.column_meta(&c, "KBC.datatype.length").as_deref(),
            );
            Ok((c, ty))
        })
        .collect()
}

impl KeboolaConnector {
    pub fn new(source: KeboolaSource) -> KeboolaConnector {
        let source_name = source.source_name();
        KeboolaConnector { source, source_name }
    }

    pub fn source(&self) -> &KeboolaSource {
        &self.source
    }

    fn table_id(table: &TableSpec) -> Result<String, ConnectorError> {
        match (table.bucket.as_deref(), table.source_table.as_deref()) {
            (Some(b), Some(t)) if !b.trim().is_empty() && !t.trim().is_empty() => Ok(format!("{b}.{t}")),
            _ => Err(ConnectorError::Config(format!(
                "keboola table '{}' needs bucket (e.g. in.c-shop) and source_table (the table's name)",
                table.id
            ))),
        }
    }

    /// The export's filter: the materialized row's `source_query`, or the row's
    /// `where_filters` and `source_options`.
    fn export_query(table: &TableSpec) -> Result<ExportQuery, ConnectorError> {
        let options = KeboolaTableOptions::from_json(table.source_options.as_ref())?;
        let mut query = match table.query_mode {
            QueryMode::Materialized => match table.source_query.as_deref().map(str::trim) {
                Some(q) if !q.is_empty() => ExportQuery::parse(q)?,
                _ => ExportQuery::default(),
            },
            _ => ExportQuery::default(),
        };
        if let Some(filters) = &table.where_filters {
            let parsed: Vec<super::config::WhereFilter> = serde_json::from_value(filters.clone())
                .map_err(|e| ConnectorError::Config(format!("where_filters: {e}")))?;
            query.where_filters.extend(parsed);
        }
        if query.columns.is_empty() {
            query.columns = options.columns.unwrap_or_default();
        }
        if query.file_type.is_none() {
            query.file_type = options.file_type;
        }
        Ok(query)
    }
}

/// The SELECT reading downloaded slices with Keboola's column types: text as exported
/// (an empty string stays one), every other type cast from its text with an empty value
/// as NULL. No slices with bytes: the typed columns and no rows.
fn read_slices(slices: &[PathBuf], file_type: FileType, gzip: bool, columns: &[(String, String)]) -> String {
    let cast = |c: &str, ty: &str| {
        if ty == "VARCHAR" {
            format!("CAST({0} AS VARCHAR) AS {0}", quote_ident(c))
        } else {
            format!("CAST(NULLIF(CAST({0} AS VARCHAR), '') AS {ty}) AS {0}", quote_ident(c))
        }
    };
    let list = columns.iter().map(|(c, ty)| cast(c, ty)).collect::<Vec<_>>().join(", ");
    let with_bytes: Vec<&PathBuf> =
        slices.iter().filter(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false)).collect();
    if with_bytes.is_empty() {
        let nulls = columns
            .iter()
            .map(|(c, ty)| format!("CAST(NULL AS {ty}) AS {}", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        return format!("SELECT {nulls} WHERE false");
    }
    let files = with_bytes.iter().map(|p| quote_literal(&p.to_string_lossy())).collect::<Vec<_>>().join(", ");
    match file_type {
        FileType::Parquet => format!("SELECT {list} FROM read_parquet([{files}], union_by_name = true)"),
        FileType::Csv => {
            let names =
                columns.iter().map(|(c, _)| format!("{}: 'VARCHAR'", quote_literal(c))).collect::<Vec<_>>().join(", ");
            format!(
                "SELECT {list} FROM read_csv([{files}], header = false, auto_detect = false, delim = ',', quote = '\"', \
                 escape = '\"', allow_quoted_nulls = false, max_line_size = 67108864, compression = '{}', columns = {{{names}}})",
                if gzip { "gzip" } else { "none" }
            )
        }
    }
}

/// What is published for a table now, described (digests of files this process
/// published are remembered, not read again).
fn published_now(duck: &agnes_engine::duckdb::Connection, data: &TableData) -> Result<Publication, ConnectorError> {
    Ok(match data {
        TableData::File(p) => Publication::Single(describe(duck, p)?),
        TableData::Layered { dir, key } => Publication::Layered(describe_layered(duck, dir, key)?),
        TableData::Parts(_) => Publication::Parts(
            data.files()
                .iter()
                .map(|f| {
                    let key = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    Ok(PublishedPart { key, file: describe(duck, f)? })
                })
                .collect::<Result<Vec<_>, ConnectorError>>()?,
        ),
    })
}

/// How downloaded slices are read: the columns with their DuckDB types, and the format.
struct Read {
    columns: Vec<(String, String)>,
    file_type: FileType,
}

/// One table's exports, each turned into a parquet file of typed rows.
struct Export<'a> {
    client: &'a StorageClient,
    table_id: &'a str,
    read: &'a Read,
    duck: &'a agnes_engine::duckdb::Connection,
    tmp_dir: &'a Path,
}

impl Export<'_> {
    /// Export with `params`, download the slices, and write their rows, typed, to `out`;
    /// the rows written. The slices are removed whatever happens, and `out` on failure.
    fn to_parquet(&self, params: &Value, out: &Path) -> Result<i64, ConnectorError> {
        let slices_dir = temp_path_for(&self.tmp_dir.join("keboola-slices"));
        std::fs::create_dir_all(&slices_dir)
            .map_err(|e| ConnectorError::Source(format!("cannot create {}: {e}", slices_dir.display())))?;
        let result = (|| -> Result<i64, ConnectorError> {
            let job = self.client.export(self.table_id, params)?;
            let file = self.client.file(self.client.wait(job)?)?;
            let slices = self.client.download(&file, &slices_dir)?;
            let gzip = params.get("gzip").and_then(Value::as_bool).unwrap_or(false);
            let select = read_slices(&slices, self.read.file_type, gzip, &self.read.columns);
            self.duck
                .execute_batch(&format!(
                    "COPY ({select}) TO {} (FORMAT PARQUET)",
                    quote_literal(&out.to_string_lossy())
                ))
                .map_err(|e| {
                    ConnectorError::Source(format!(
                        "reading {}'s export with the column types of its Keboola metadata: {e}",
                        self.table_id
                    ))
                })?;
            Ok(self
                .duck
                .query_row(
                    &format!("SELECT count(*) FROM read_parquet({})", quote_literal(&out.to_string_lossy())),
                    [],
                    |r| r.get(0),
                )
                .map_err(agnes_engine::EngineError::from)?)
        })();
        let _ = std::fs::remove_dir_all(&slices_dir);
        if result.is_err() {
            let _ = std::fs::remove_file(out);
        }
        result
    }
}

/// The first sync of a partitioned table, in chunks of `initial_load_chunk_days` (30) of
/// its `partition_by` column walking back from today, each overlapping the next by a day,
/// until two chunks in a row are empty (at most 120 chunks). The newest chunk has no upper
/// bound, so rows dated in the future are not lost.
fn initial_load(
    table: &TableSpec,
    column: &str,
    params: &Value,
    today: chrono::NaiveDate,
    mut merge: impl FnMut(&Value) -> Result<i64, ConnectorError>,
) -> Result<(), ConnectorError> {
    let days = table.initial_load_chunk_days.unwrap_or(30).max(1);
    let mut empty_in_a_row = 0;
    for i in 0..120 {
        let upper = today + Duration::days(1) - Duration::days(i * days);
        let lower = upper - Duration::days(days + 1);
        let mut chunk = params.clone();
        let filters = chunk["whereFilters"].as_array_mut().expect("whereFilters is a list");
        filters.push(json!({"column": column, "operator": "ge", "values": [lower.format("%Y-%m-%d").to_string()]}));
        if i > 0 {
            filters.push(json!({"column": column, "operator": "lt", "values": [upper.format("%Y-%m-%d").to_string()]}));
        }
        if merge(&chunk)? == 0 {
            empty_in_a_row += 1;
            if empty_in_a_row == 2 {
                break;
            }
        } else {
            empty_in_a_row = 0;
        }
    }
    Ok(())
}

impl Connector for KeboolaConnector {
    fn source_name(&self) -> &str {
        &self.source_name
    }

    fn source_type(&self) -> SourceType {
        SourceType::Keboola
    }

    fn connection(&self) -> Option<&str> {
        self.source.name.as_deref()
    }

    fn syncs(&self, mode: QueryMode) -> bool {
        matches!(mode, QueryMode::Local | QueryMode::Materialized)
    }

    fn probe(&self) -> Result<agnes_core::api::SourceTest, ConnectorError> {
        let client = StorageClient::connect(&self.source)?;
        let facts = client.verify()?;
        let tables = client.tables()?.len() as i64;
        let mut warnings = Vec::new();
        if facts.is_master {
            warnings.push(
                "this is a master token: give agnes a token that can only read the buckets it serves".to_string(),
            );
        }
        if tables == 0 {
            warnings.push("the token can read no table: give it read access to the buckets agnes serves".into());
        }
        Ok(agnes_core::api::SourceTest {
            name: self.source.name.clone().unwrap_or_else(|| self.source_name.clone()),
            source_type: SourceType::Keboola,
            server_version: format!("Keboola project '{}'", facts.project),
            role: facts.description,
            superuser: facts.is_master,
            tables_visible: tables,
            expires: facts.expires,
            warnings,
        })
    }

    fn discover(&self) -> Result<Vec<agnes_core::api::DiscoveredTable>, ConnectorError> {
        let client = StorageClient::connect(&self.source)?;
        client
            .tables()?
            .into_iter()
            .map(|t| {
                let columns = typed_columns(&t, &[])?
                    .into_iter()
                    .map(|(name, ty)| agnes_core::api::SourceColumn { name, column_type: ty, nullable: true })
                    .collect();
                Ok(agnes_core::api::DiscoveredTable {
                    path: t.id.clone(),
                    format: "table".into(),
                    size_bytes: t.data_size_bytes,
                    bucket: Some(t.bucket_id().to_string()),
                    source_table: Some(t.name.clone()),
                    columns,
                    primary_key: t.primary_key.clone(),
                    estimated_rows: t.rows_count.map(|r| r as i64),
                    last_import: t.last_import_date.clone(),
                    last_change: t.last_change_date.clone(),
                    registered_as: None,
                })
            })
            .collect()
    }

    fn check_options(&self, table: &TableSpec) -> Result<(), InvalidField> {
        KeboolaTableOptions::from_json(table.source_options.as_ref()).map_err(InvalidField::source_options)?;
        let today = Utc::now().date_naive();
        if table.query_mode == QueryMode::Materialized {
            if let Some(q) = table.source_query.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
                let invalid = |e: ConnectorError| InvalidField { field: "source_query", message: e.to_string() };
                let query = ExportQuery::parse(q).map_err(invalid)?;
                resolve_filters(&query.where_filters, today).map_err(invalid)?;
            }
        }
        if let Some(filters) = &table.where_filters {
            let invalid = |message: String| InvalidField { field: "where_filters", message };
            let parsed: Vec<super::config::WhereFilter> =
                serde_json::from_value(filters.clone()).map_err(|e| invalid(format!("where_filters: {e}")))?;
            resolve_filters(&parsed, today).map_err(|e| invalid(e.to_string()))?;
        }
        Ok(())
    }

    fn unsupported(&self, table: &TableSpec) -> Option<String> {
        if !self.syncs(table.query_mode) {
            return Some(format!(
                "the keboola connector copies tables (query_mode local or materialized), not '{}'",
                table.query_mode
            ));
        }
        if let Err(e) = Self::table_id(table) {
            return Some(e.to_string());
        }
        if table.incremental_column.as_deref().is_some_and(|c| !c.trim().is_empty()) {
            return Some(
                "the keboola connector finds changed rows by Keboola's import time (changedSince), not by a column: \
                 leave incremental_column unset"
                    .into(),
            );
        }
        match table.sync_strategy {
            SyncStrategy::Partitioned if table.partition_by.as_deref().is_none_or(|c| c.trim().is_empty()) => {
                Some("sync_strategy 'partitioned' needs partition_by (a date or timestamp column)".into())
            }
            SyncStrategy::Incremental | SyncStrategy::Partitioned if table.primary_key.is_empty() => Some(format!(
                "sync_strategy '{}' of a keboola table needs primary_key (changed rows are merged on it)",
                table.sync_strategy
            )),
            _ => None,
        }
    }

    fn sync_table(&self, table: &TableSpec, ctx: &SyncContext<'_>) -> Result<SyncedTable, ConnectorError> {
        let table_id = Self::table_id(table)?;
        let query = Self::export_query(table)?;
        let client = StorageClient::connect(&self.source)?;
        let described = client.table(&table_id)?;
        let file_type = query.file_type.unwrap_or(if table.query_mode == QueryMode::Materialized {
            FileType::Parquet
        } else {
            FileType::Csv
        });
        let read = Read { columns: typed_columns(&described, &query.columns)?, file_type };
        let data = TableData::locate(ctx.layout, &self.source_name, table);
        let version = described.last_import_date.clone();
        let data_dir = ctx.layout.source_data_dir(&self.source_name);
        let tmp_dir = ctx.layout.tmp_dir();
        for dir in [&data_dir, &tmp_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| ConnectorError::Source(format!("cannot create {}: {e}", dir.display())))?;
        }
        // A Keboola export's slices have no order (the warehouse unloads them in
        // parallel), so DuckDB need not keep one, and streams.
        let limits = agnes_engine::confined::Limits { any_order: true, ..ctx.limits.clone() };
        let duck = open_confined(&[&data_dir, &tmp_dir], &limits)?;
        // Nothing imported into the table since the data on disk was read: no export.
        if version.is_some() && version.as_deref() == ctx.source_version && data.exists() {
            return Ok(SyncedTable { publication: published_now(&duck, &data)?, source_version: version });
        }
        let now = Utc::now();
        let mut params = json!({
            "fileType": file_type.as_str(),
            "gzip": file_type == FileType::Csv,
            "whereFilters": resolve_filters(&query.where_filters, now.date_naive())?,
        });
        if !query.columns.is_empty() {
            params["columns"] = json!(query.columns.join(","));
        }
        if let Some(since) = &query.changed_since {
            params["changedSince"] = json!(since);
        }
        if let Some(until) = &query.changed_until {
            params["changedUntil"] = json!(until);
        }
        if let Some(limit) = query.limit {
            params["limit"] = json!(limit);
        }
        // Changes since the last sync less the window (7 days unless set); the first sync
        // of an incremental table bounded by max_history_days when set.
        let since_last = ctx
            .last_sync
            .filter(|_| data.exists())
            .map(|last| unix(last - Duration::days(table.incremental_window_days.unwrap_or(7))));

        let export = Export { client: &client, table_id: &table_id, read: &read, duck: &duck, tmp_dir: &tmp_dir };
        let publication = match &data {
            TableData::File(target) => {
                let staged = temp_path_for(target);
                export.to_parquet(&params, &staged)?;
                Publication::Single(publish_written(&duck, &staged, target)?)
            }
            TableData::Layered { dir, key } => {
                let first_bound = || table.max_history_days.map(|d| unix(now - Duration::days(d)));
                if let Some(since) = since_last.clone().or_else(first_bound) {
                    params["changedSince"] = json!(since);
                }
                let changes = temp_path_for(&tmp_dir.join(format!("keboola-{}.changes.parquet", table.name)));
                let rows = export.to_parquet(&params, &changes)?;
                if rows == 0 && data.exists() {
                    let _ = std::fs::remove_file(&changes);
                    Publication::Layered(describe_layered(&duck, dir, key)?)
                } else {
                    Publication::Layered(publish_layered(&duck, &changes, dir, key)?)
                }
            }
            TableData::Parts(dir) => {
                let column = table.partition_by.as_deref().unwrap_or_default();
                let granularity = table.partition_granularity.unwrap_or(PartitionGranularity::Month);
                let expr = format!(
                    "strftime(CAST({} AS TIMESTAMP), '{}')",
                    quote_ident(column),
                    granularity.strftime_pattern()
                );
                let merge = |params: &Value| -> Result<i64, ConnectorError> {
                    let changes = temp_path_for(&tmp_dir.join(format!("keboola-{}.changes.parquet", table.name)));
                    let rows = export.to_parquet(params, &changes)?;
                    let merged = if rows > 0 {
                        let select =
                            format!("SELECT * FROM read_parquet({})", quote_literal(&changes.to_string_lossy()));
                        merge_partitioned(&duck, &select, &expr, dir, &table.primary_key).map(|_| ())
                    } else {
                        Ok(())
                    };
                    let _ = std::fs::remove_file(&changes);
                    merged?;
                    Ok(rows)
                };
                match since_last {
                    Some(since) => {
                        params["changedSince"] = json!(since);
                        merge(&params)?;
                    }
                    None => initial_load(table, column, &params, now.date_naive(), merge)?,
                }
                published_now(&duck, &data)?
            }
        };
        Ok(SyncedTable { publication, source_version: version })
    }

    fn preview(
        &self,
        table: &TableSpec,
        _ctx: &SyncContext<'_>,
    ) -> Result<Vec<agnes_engine::inspect::Column>, ConnectorError> {
        let query = Self::export_query(table)?;
        let described = StorageClient::connect(&self.source)?.table(&Self::table_id(table)?)?;
        Ok(typed_columns(&described, &query.columns)?
            .into_iter()
            .map(|(name, column_type)| agnes_engine::inspect::Column { name, column_type, nullable: true })
            .collect())
    }
}
