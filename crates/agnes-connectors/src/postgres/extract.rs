//! Turning a `postgres` registry row into published parquet: rows stream out of
//! PostgreSQL as binary COPY inside one read-only snapshot, are decoded batch by batch into
//! Arrow and written as parquet (memory bounded by one batch), then published atomically.

use super::client::{columns_of, connect, source_error, Raw, SourceColumn};
use super::config::{PgSource, PgTableOptions};
use super::types::append;
use crate::{Connector, ConnectorError, Publication, SyncContext, SyncedTable};
use agnes_core::ident::{is_strict_identifier, quote_ident, quote_literal};
use agnes_core::{PartitionGranularity, QueryMode, SourceType, SyncStrategy, TableSpec};
use agnes_engine::confined::open_confined;
use agnes_engine::fsutil::{remove_if_exists, temp_path_for};
use agnes_engine::publish::{describe_layered, publish_layered, publish_partitioned, publish_written};
use agnes_engine::table_data::TableData;
use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use postgres::binary_copy::BinaryCopyOutIter;
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;
use std::path::Path;
use std::sync::Arc;

pub struct PostgresConnector {
    source: PgSource,
    source_name: String,
}

impl PostgresConnector {
    pub fn new(source: PgSource) -> Self {
        PostgresConnector { source_name: source.source_name(), source }
    }

    pub fn source(&self) -> &PgSource {
        &self.source
    }
}

/// `"schema"."table"` of a local or remote row: `bucket` is the schema (default
/// `public`), `source_table` the table or view.
pub fn qualified_name(table: &TableSpec) -> Result<(String, String), ConnectorError> {
    let name = table.source_table.as_deref().map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| {
        ConnectorError::Config(format!("table '{}' needs source_table (the PostgreSQL table or view)", table.id))
    })?;
    let schema = table.bucket.as_deref().map(str::trim).filter(|s| !s.is_empty()).unwrap_or("public");
    Ok((schema.to_string(), name.to_string()))
}

fn relation_sql(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// A read-only snapshot: every query of one sync sees the same data, and nothing can
/// be written through it.
pub(crate) fn begin_read_only(client: &mut Client, timeout: Option<std::time::Duration>) -> Result<(), ConnectorError> {
    let mut sql = String::from("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;");
    if let Some(t) = timeout {
        sql.push_str(&format!(" SET LOCAL statement_timeout = {};", t.as_millis()));
    }
    client.batch_execute(&sql).map_err(|e| source_error("cannot start a read-only transaction", e))
}

/// Stream `select` (whose columns are `columns`) into a parquet file at `dest`; the rows
/// written. On failure `dest` is removed.
pub fn copy_to_parquet(
    client: &mut Client,
    select: &str,
    columns: &[SourceColumn],
    batch_rows: usize,
    dest: &Path,
) -> Result<i64, ConnectorError> {
    let result = write_parquet(client, select, columns, batch_rows, dest);
    if result.is_err() {
        let _ = remove_if_exists(dest);
    }
    result
}

fn write_parquet(
    client: &mut Client,
    select: &str,
    columns: &[SourceColumn],
    batch_rows: usize,
    dest: &Path,
) -> Result<i64, ConnectorError> {
    let file = std::fs::File::create(dest)
        .map_err(|e| ConnectorError::Source(format!("cannot create {}: {e}", dest.display())))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(batch_rows))
        .build();
    let write_err = |e: parquet::errors::ParquetError| ConnectorError::Source(format!("cannot write parquet: {e}"));
    let mut writer = ArrowWriter::try_new(file, schema_of(columns), Some(props)).map_err(write_err)?;
    // Decoding the COPY stream and encoding parquet run on two threads, a batch or two
    // apart: the sync takes as long as the slower of the two, not their sum.
    let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
    std::thread::scope(|scope| {
        let encoder = scope.spawn(move || -> Result<(), ConnectorError> {
            for batch in rx {
                writer.write(&batch).map_err(write_err)?;
            }
            writer.close().map_err(write_err)?;
            Ok(())
        });
        let rows = for_each_batch(client, select, columns, batch_rows, |batch| {
            tx.send(batch).map_err(|_| ConnectorError::Source("the parquet writer stopped".into()))
        });
        drop(tx);
        let encoded =
            encoder.join().unwrap_or_else(|_| Err(ConnectorError::Source("the parquet writer failed".into())));
        // The writer's own error says more than the reader's "writer stopped".
        encoded?;
        rows
    })
}

/// The Arrow schema of `columns`: every field nullable (PostgreSQL's NOT NULL is a
/// property of the source, not of the published copy).
pub fn schema_of(columns: &[SourceColumn]) -> Arc<Schema> {
    Arc::new(Schema::new(columns.iter().map(|c| Field::new(&c.name, c.kind.data_type(), true)).collect::<Vec<_>>()))
}

/// Stream `select` as binary COPY and hand it to `sink` in batches of `batch_rows` (at
/// least one batch, empty for no rows); the rows read.
pub fn for_each_batch(
    client: &mut Client,
    select: &str,
    columns: &[SourceColumn],
    batch_rows: usize,
    mut sink: impl FnMut(RecordBatch) -> Result<(), ConnectorError>,
) -> Result<i64, ConnectorError> {
    let schema = schema_of(columns);
    let reader = client
        .copy_out(&format!("COPY ({select}) TO STDOUT (FORMAT binary)"))
        .map_err(|e| source_error("cannot read the source", e))?;
    let types: Vec<_> = columns.iter().map(|c| c.pg_type.clone()).collect();
    let mut rows = BinaryCopyOutIter::new(reader, &types);
    let mut builders: Vec<_> = columns.iter().map(|c| c.kind.builder(batch_rows)).collect();
    let mut pending = 0usize;
    let mut total = 0i64;
    let mut flush = |builders: &mut Vec<Box<dyn arrow_array::builder::ArrayBuilder>>| -> Result<(), ConnectorError> {
        let arrays = builders.iter_mut().map(|b| b.finish()).collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| ConnectorError::Source(format!("cannot assemble a batch: {e}")))?;
        sink(batch)
    };
    while let Some(row) = rows.next().map_err(|e| source_error("reading the source failed", e))? {
        for (i, column) in columns.iter().enumerate() {
            let raw: Option<Raw> = row.try_get(i).map_err(|e| source_error(&format!("column {}", column.name), e))?;
            append(&column.kind, builders[i].as_mut(), raw.map(|r| r.0)).map_err(|e| {
                ConnectorError::Source(format!(
                    "column {} holds {}, which its parquet type ({}) cannot represent; cast it in a materialized \
                     source_query",
                    column.name,
                    e.0,
                    column.kind.duckdb_type()
                ))
            })?;
        }
        pending += 1;
        total += 1;
        if pending == batch_rows {
            flush(&mut builders)?;
            pending = 0;
        }
    }
    if pending > 0 || total == 0 {
        flush(&mut builders)?;
    }
    Ok(total)
}

impl PostgresConnector {
    /// The SELECT a sync reads, the relation it reads whole (for column modifiers), and
    /// the columns.
    fn plan(&self, client: &mut Client, table: &TableSpec) -> Result<(String, Vec<SourceColumn>), ConnectorError> {
        match table.query_mode {
            QueryMode::Local => {
                let (schema, name) = qualified_name(table)?;
                let probe = format!("SELECT * FROM {}", relation_sql(&schema, &name));
                let columns = columns_of(client, &probe, Some((&schema, &name)))?;
                let list = columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ");
                Ok((format!("SELECT {list} FROM {}", relation_sql(&schema, &name)), columns))
            }
            QueryMode::Materialized => {
                let sql = table.source_query.as_deref().map(str::trim).unwrap_or_default().trim_end_matches(';');
                if sql.is_empty() {
                    return Err(ConnectorError::Config(format!(
                        "materialized table '{}' has no source_query",
                        table.id
                    )));
                }
                self.check_cost(client, sql)?;
                let columns = columns_of(client, sql, None)?;
                Ok((sql.to_string(), columns))
            }
            other => Err(ConnectorError::Config(format!("the postgres connector does not sync query_mode '{other}'"))),
        }
    }

    /// Refuse a materialization whose planner estimate (rows × row width) is over the
    /// connection's cap, before it runs.
    fn check_cost(&self, client: &mut Client, sql: &str) -> Result<(), ConnectorError> {
        let (rows, width) =
            super::client::plan_estimate(client, sql).map_err(|e| source_error("the source_query does not plan", e))?;
        let bytes = rows * width;
        let cap = self.source.max_materialize_bytes();
        if bytes > cap as f64 {
            return Err(ConnectorError::Config(format!(
                "the source_query would produce about {} bytes (the planner's estimate), over this connection's \
                 max_materialize_bytes of {cap}: filter or aggregate more, or raise the cap",
                bytes as u64
            )));
        }
        Ok(())
    }

    fn publish(&self, table: &TableSpec, ctx: &SyncContext<'_>) -> Result<SyncedTable, ConnectorError> {
        let options = PgTableOptions::from_json(table.source_options.as_ref())?;
        let mut client = connect(&self.source)?;
        let timeout = (table.query_mode == QueryMode::Materialized).then(|| self.source.statement_timeout());
        begin_read_only(&mut client, timeout)?;
        let (select, columns) = self.plan(&mut client, table)?;
        let data_dir = ctx.layout.source_data_dir(&self.source_name);
        let tmp_dir = ctx.layout.tmp_dir();
        for dir in [&data_dir, &tmp_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| ConnectorError::Source(format!("cannot create {}: {e}", dir.display())))?;
        }
        let duck = open_confined(&[&data_dir, &tmp_dir], ctx.limits)?;
        let target = ctx.layout.table_file(&self.source_name, &table.name);
        match table.sync_strategy {
            SyncStrategy::FullRefresh => {
                let tmp = temp_path_for(&target);
                copy_to_parquet(&mut client, &select, &columns, options.batch_rows(), &tmp)?;
                let file = publish_written(&duck, &tmp, &target)?;
                Ok(SyncedTable { publication: Publication::Single(file), source_version: None })
            }
            SyncStrategy::Incremental => self.incremental(&mut client, &duck, table, &select, &columns, &options, ctx),
            SyncStrategy::Partitioned => {
                let column = table.partition_by.as_deref().unwrap_or_default();
                let granularity = table.partition_granularity.unwrap_or(PartitionGranularity::Month);
                let staged = tmp_dir.join(format!("pg-{}-{}.parquet", table.name, std::process::id()));
                copy_to_parquet(&mut client, &select, &columns, options.batch_rows(), &staged)?;
                let expr = format!(
                    "strftime(CAST({} AS TIMESTAMP), '{}')",
                    quote_ident(column),
                    granularity.strftime_pattern()
                );
                let dir = ctx.layout.table_part_dir(&self.source_name, &table.name);
                let read = format!("SELECT * FROM read_parquet({})", quote_literal(&staged.to_string_lossy()));
                let parts = publish_partitioned(&duck, &read, &expr, &dir);
                let _ = remove_if_exists(&staged);
                Ok(SyncedTable { publication: Publication::Parts(parts?), source_version: None })
            }
        }
    }

    /// Rows past the high-water mark (the greatest `incremental_column` published, less
    /// `incremental_window_days` for dates and timestamps), merged on `primary_key` into
    /// the table's layers, the newer row winning (see `agnes_engine::table_data`): a sync
    /// writes only the delta. Rows deleted at the source stay until the next full refresh
    /// (a change column cannot see deletes). No new rows: nothing is written, so no hash
    /// changes.
    #[allow(clippy::too_many_arguments)]
    fn incremental(
        &self,
        client: &mut Client,
        duck: &agnes_engine::duckdb::Connection,
        table: &TableSpec,
        select: &str,
        columns: &[SourceColumn],
        options: &PgTableOptions,
        ctx: &SyncContext<'_>,
    ) -> Result<SyncedTable, ConnectorError> {
        let data = TableData::locate(ctx.layout, &self.source_name, table);
        let dir = data.location().to_path_buf();
        let key = &table.primary_key;
        let column = table.incremental_column.as_deref().unwrap_or_default();
        let source_column = columns.iter().find(|c| c.name == column).ok_or_else(|| {
            ConnectorError::Config(format!("incremental_column '{column}' is not a column of the source"))
        })?;
        let changes = temp_path_for(&ctx.layout.tmp_dir().join(format!("pg-{}.changes.parquet", table.name)));
        if !data.exists() {
            copy_to_parquet(client, select, columns, options.batch_rows(), &changes)?;
            let layers = publish_layered(duck, &changes, &dir, key)?;
            // Published as one file before tables synced this way were layered: gone now.
            remove_if_exists(&ctx.layout.table_file(&self.source_name, &table.name))?;
            return Ok(SyncedTable { publication: Publication::Layered(layers), source_version: None });
        }
        let published = format!(
            "read_parquet([{}], union_by_name = true)",
            data.files().iter().map(|f| quote_literal(&f.to_string_lossy())).collect::<Vec<_>>().join(", ")
        );
        let mark: Option<String> = duck
            .query_row(&format!("SELECT max({})::VARCHAR FROM {published}", quote_ident(column)), [], |r| r.get(0))
            .map_err(agnes_engine::EngineError::from)?;
        let filter = match mark {
            None => String::new(),
            Some(mark) => {
                let pg_type = source_column.pg_type.name();
                let windowed = matches!(pg_type, "date" | "timestamp" | "timestamptz")
                    && table.incremental_window_days.unwrap_or(0) > 0;
                let bound = if windowed {
                    format!(
                        "{}::{pg_type} - interval '{} days'",
                        quote_literal(&mark),
                        table.incremental_window_days.unwrap_or(0)
                    )
                } else {
                    format!("{}::{pg_type}", quote_literal(&mark))
                };
                format!(" WHERE {} > {bound}", quote_ident(column))
            }
        };
        let rows = copy_to_parquet(
            client,
            &format!("SELECT * FROM ({select}) AS t{filter}"),
            columns,
            options.batch_rows(),
            &changes,
        )?;
        let layers = if rows == 0 {
            let _ = remove_if_exists(&changes);
            describe_layered(duck, &dir, key)?
        } else {
            publish_layered(duck, &changes, &dir, key)?
        };
        Ok(SyncedTable { publication: Publication::Layered(layers), source_version: None })
    }
}

impl Connector for PostgresConnector {
    fn source_name(&self) -> &str {
        &self.source_name
    }

    fn source_type(&self) -> SourceType {
        SourceType::Postgres
    }

    fn connection(&self) -> Option<&str> {
        Some(&self.source.name)
    }

    fn syncs(&self, mode: QueryMode) -> bool {
        matches!(mode, QueryMode::Local | QueryMode::Materialized)
    }

    fn probe(&self) -> Result<agnes_core::api::SourceTest, ConnectorError> {
        let facts = super::client::server_facts(&mut connect(&self.source)?)?;
        let mut warnings = Vec::new();
        if facts.superuser {
            warnings.push(format!(
                "role '{}' is a superuser: give agnes a role that can only read the tables it serves (remote queries run as it)",
                facts.role
            ));
        }
        if facts.tables_visible == 0 {
            warnings.push(format!("role '{}' can read no table: GRANT SELECT to it", facts.role));
        }
        Ok(agnes_core::api::SourceTest {
            name: self.source.name.clone(),
            source_type: SourceType::Postgres,
            server_version: format!("PostgreSQL {}", facts.server_version),
            role: facts.role,
            superuser: facts.superuser,
            tables_visible: facts.tables_visible,
            expires: None,
            warnings,
        })
    }

    fn discover(&self) -> Result<Vec<agnes_core::api::DiscoveredTable>, ConnectorError> {
        let mut client = connect(&self.source)?;
        Ok(super::client::discover(&mut client)?
            .into_iter()
            .map(|r| agnes_core::api::DiscoveredTable {
                path: format!("{}.{}", r.schema, r.name),
                format: r.kind.to_string(),
                size_bytes: r.estimated_bytes.map(|b| b.max(0) as u64),
                columns: r
                    .columns
                    .into_iter()
                    .map(|c| agnes_core::api::SourceColumn {
                        name: c.name,
                        column_type: c.type_name,
                        nullable: c.nullable,
                    })
                    .collect(),
                primary_key: r.primary_key,
                estimated_rows: r.estimated_rows,
                last_import: None,
                last_change: None,
                registered_as: None,
                bucket: Some(r.schema),
                source_table: Some(r.name),
            })
            .collect())
    }

    fn check_options(&self, table: &TableSpec) -> Result<(), crate::InvalidField> {
        PgTableOptions::from_json(table.source_options.as_ref())
            .map(|_| ())
            .map_err(crate::InvalidField::source_options)
    }

    fn unsupported(&self, table: &TableSpec) -> Option<String> {
        if table.has_where_filters() {
            return Some(
                "the postgres connector does not take where_filters: filter in a materialized source_query".into(),
            );
        }
        if table.query_mode != QueryMode::Materialized {
            if let Err(e) = qualified_name(table) {
                return Some(e.to_string());
            }
        }
        if table.sync_strategy == SyncStrategy::Incremental {
            if table.incremental_column.as_deref().is_none_or(|c| c.trim().is_empty()) {
                return Some("sync_strategy 'incremental' needs incremental_column (a growing column)".into());
            }
            if table.primary_key.is_empty() {
                return Some("sync_strategy 'incremental' needs primary_key (rows are merged on it)".into());
            }
        }
        None
    }

    fn preview(
        &self,
        table: &TableSpec,
        _ctx: &SyncContext<'_>,
    ) -> Result<Vec<agnes_engine::inspect::Column>, ConnectorError> {
        let mut client = connect(&self.source)?;
        begin_read_only(&mut client, Some(std::time::Duration::from_secs(30)))?;
        let (_, columns) = self.plan(&mut client, table)?;
        Ok(columns
            .into_iter()
            .map(|c| agnes_engine::inspect::Column { name: c.name, column_type: c.kind.duckdb_type(), nullable: true })
            .collect())
    }

    fn sync_table(&self, table: &TableSpec, ctx: &SyncContext<'_>) -> Result<SyncedTable, ConnectorError> {
        if !is_strict_identifier(&table.name) {
            return Err(ConnectorError::Config(format!(
                "table name {:?} is not a valid identifier (it is the view and file name): use letters, digits and _",
                table.name
            )));
        }
        self.publish(table, ctx)
    }
}
