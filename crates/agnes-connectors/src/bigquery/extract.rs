//! The `bigquery` connector on the connector contract: reaching BigQuery (`probe`), what
//! its data project holds (`discover`), and materialized tables: an admin's SQL run as a
//! job after a free dry run under the cost cap, its rows paged in and written as parquet.

use super::client::{duckdb_type, BqClient};
use super::config::BigQuerySource;
use super::remote::{fetch_rows, label, Run};
use crate::{Connector, ConnectorError, InvalidField, Publication, SyncContext, SyncedTable};
use agnes_core::ident::{quote_ident, quote_literal};
use agnes_core::{QueryMode, SourceType, SyncStrategy, TableSpec};
use agnes_engine::confined::open_confined;
use agnes_engine::fsutil::{remove_if_exists, temp_path_for};
use agnes_engine::publish::publish_query;
use serde_json::{json, Value};

pub struct BigQueryConnector {
    source: BigQuerySource,
}

/// Where `bigquery` lives under `extracts/`.
pub const SOURCE_NAME: &str = "bigquery";

impl BigQueryConnector {
    pub fn new(source: BigQuerySource) -> BigQueryConnector {
        BigQueryConnector { source }
    }

    pub fn source(&self) -> &BigQuerySource {
        &self.source
    }
}

impl BigQueryConnector {
    /// Dry-run the table's SQL (free) and refuse it over the cap; run it with the cap as
    /// `maximumBytesBilled`; page its rows into newline-delimited JSON; let DuckDB type
    /// them by the result's schema into parquet, published atomically.
    fn materialize(&self, table: &TableSpec, ctx: &SyncContext<'_>) -> Result<SyncedTable, ConnectorError> {
        let sql = table.source_query.as_deref().unwrap_or_default().trim().trim_end_matches(';');
        let client = BqClient::connect(&self.source)?;
        let cap = self.source.max_bytes_per_materialize();
        let bytes = client.dry_run(sql)?;
        if let Some(cap) = cap.filter(|c| bytes > *c) {
            return Err(ConnectorError::Config(format!(
                "the source_query would scan {bytes} bytes (BigQuery's dry run), over max_bytes_per_materialize of \
                 {cap}: filter or aggregate more, or raise the cap"
            )));
        }
        let data_dir = ctx.layout.source_data_dir(SOURCE_NAME);
        let tmp_dir = ctx.layout.tmp_dir();
        for dir in [&data_dir, &tmp_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| ConnectorError::Source(format!("cannot create {}: {e}", dir.display())))?;
        }
        let rows_file = temp_path_for(&tmp_dir.join(format!("bigquery-{}.ndjson", table.name)));
        let run =
            Run { scan_cap: cap, labels: json!({"agnes_table": label(&table.id)}), timeout: self.source.job_timeout() };
        let result = (|| -> Result<Publication, ConnectorError> {
            let (schema, _) = fetch_rows(&client, sql, &run, None, &rows_file)?;
            let duck = open_confined(&[&data_dir, &tmp_dir], ctx.limits)?;
            let target = ctx.layout.table_file(SOURCE_NAME, &table.name);
            Ok(Publication::Single(publish_query(&duck, &read_rows(&rows_file, &schema), &target)?))
        })();
        let _ = remove_if_exists(&rows_file);
        Ok(SyncedTable { publication: result?, source_version: None })
    }
}

/// One row in BigQuery's encoding as a JSON object DuckDB reads into the schema's types.
pub(super) fn decode_row(fields: &[Value], row: &Value) -> Value {
    let cells = row.get("f").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    Value::Object(
        fields
            .iter()
            .zip(cells)
            .map(|(f, c)| {
                (f.get("name").and_then(Value::as_str).unwrap_or_default().to_string(), decode(f, c.get("v")))
            })
            .collect(),
    )
}

fn decode(field: &Value, v: Option<&Value>) -> Value {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Value::Null };
    if field.get("mode").and_then(Value::as_str) == Some("REPEATED") {
        let mut single = field.clone();
        single["mode"] = json!("NULLABLE");
        let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
        return Value::Array(items.iter().map(|i| decode(&single, i.get("v"))).collect());
    }
    match field.get("type").and_then(Value::as_str).unwrap_or_default() {
        "RECORD" | "STRUCT" => {
            let fields = field.get("fields").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            decode_row(fields, v)
        }
        // Microseconds since the epoch (useInt64Timestamp), as ISO text DuckDB reads.
        "TIMESTAMP" => v
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(chrono::DateTime::from_timestamp_micros)
            .map(|t| json!(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()))
            .unwrap_or_else(|| v.clone()),
        _ => v.clone(),
    }
}

/// The SELECT reading the rows file with the result's column types; BYTES arrive as
/// base64 text and are decoded.
pub(super) fn read_rows(file: &std::path::Path, fields: &[Value]) -> String {
    let name = |f: &Value| f.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    let bytes = |f: &Value| {
        f.get("type").and_then(Value::as_str) == Some("BYTES")
            && f.get("mode").and_then(Value::as_str) != Some("REPEATED")
    };
    if fields.is_empty() {
        return "SELECT NULL WHERE false".into();
    }
    let columns = fields
        .iter()
        .map(|f| {
            format!(
                "{}: {}",
                quote_literal(&name(f)),
                quote_literal(&if bytes(f) { "VARCHAR".into() } else { duckdb_type(f) })
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let list = fields
        .iter()
        .map(|f| {
            let n = quote_ident(&name(f));
            if bytes(f) {
                format!("from_base64({n}) AS {n}")
            } else {
                n
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {list} FROM read_json({}, format = 'newline_delimited', columns = {{{columns}}})",
        quote_literal(&file.to_string_lossy())
    )
}

impl Connector for BigQueryConnector {
    fn source_name(&self) -> &str {
        SOURCE_NAME
    }

    fn source_type(&self) -> SourceType {
        SourceType::Bigquery
    }

    /// Remote rows are not synced: their metadata cache is refreshed instead (`remote`).
    fn syncs(&self, mode: QueryMode) -> bool {
        mode == QueryMode::Materialized
    }

    fn probe(&self) -> Result<agnes_core::api::SourceTest, ConnectorError> {
        let client = BqClient::connect(&self.source)?;
        let datasets = client.datasets()?;
        let mut tables = 0i64;
        for d in &datasets {
            tables += client.tables(d)?.len() as i64;
        }
        let mut warnings = Vec::new();
        // A dry run is free and runs nothing: it shows whether jobs may run where they are billed.
        if let Err(e) = client.dry_run("SELECT 1") {
            warnings.push(format!("queries cannot run in the billing project {}: {e}", client.billing()));
        }
        if tables == 0 {
            warnings.push(format!("{} holds no table these credentials can list", client.project()));
        }
        Ok(agnes_core::api::SourceTest {
            name: SOURCE_NAME.into(),
            source_type: SourceType::Bigquery,
            server_version: format!(
                "BigQuery project {} (jobs billed to {}{})",
                client.project(),
                client.billing(),
                self.source.config.location.as_deref().map(|l| format!(", location {l}")).unwrap_or_default()
            ),
            role: client.principal(),
            superuser: false,
            tables_visible: tables,
            expires: None,
            warnings,
        })
    }

    fn discover(&self) -> Result<Vec<agnes_core::api::DiscoveredTable>, ConnectorError> {
        let client = BqClient::connect(&self.source)?;
        let mut found = Vec::new();
        for dataset in client.datasets()? {
            for name in client.tables(&dataset)? {
                let t = client.table(None, &dataset, &name)?;
                found.push(agnes_core::api::DiscoveredTable {
                    path: t.fqn.clone(),
                    format: t.entity_type().unwrap_or(t.kind.as_str()).to_string(),
                    size_bytes: t.bytes,
                    bucket: Some(t.dataset.clone()),
                    source_table: Some(t.name.clone()),
                    columns: t
                        .columns
                        .iter()
                        .map(|(name, ty)| agnes_core::api::SourceColumn {
                            name: name.clone(),
                            column_type: ty.clone(),
                            nullable: true,
                        })
                        .collect(),
                    primary_key: Vec::new(),
                    estimated_rows: t.rows.map(|r| r as i64),
                    last_import: None,
                    last_change: None,
                    registered_as: None,
                });
            }
        }
        Ok(found)
    }

    fn check_options(&self, table: &TableSpec) -> Result<(), InvalidField> {
        match &table.source_options {
            None => Ok(()),
            Some(v) if v.as_object().is_some_and(|o| o.is_empty()) => Ok(()),
            Some(_) => Err(InvalidField {
                field: "source_options",
                message: "the bigquery connector takes no source_options".into(),
            }),
        }
    }

    fn unsupported(&self, table: &TableSpec) -> Option<String> {
        if table.source_query.as_deref().is_none_or(|q| q.trim().is_empty()) {
            return Some("a materialized BigQuery table needs source_query (BigQuery SQL)".into());
        }
        if table.sync_strategy != SyncStrategy::FullRefresh {
            return Some("a materialized BigQuery table is refreshed whole: sync_strategy full_refresh".into());
        }
        None
    }

    fn sync_table(&self, table: &TableSpec, ctx: &SyncContext<'_>) -> Result<SyncedTable, ConnectorError> {
        if let Some(why) = self.unsupported(table) {
            return Err(ConnectorError::Config(why));
        }
        self.materialize(table, ctx)
    }

    fn preview(
        &self,
        table: &TableSpec,
        _ctx: &SyncContext<'_>,
    ) -> Result<Vec<agnes_engine::inspect::Column>, ConnectorError> {
        Err(ConnectorError::Config(
            self.unsupported(table)
                .unwrap_or_else(|| "a materialized BigQuery table's columns are known once it is synced".into()),
        ))
    }
}
