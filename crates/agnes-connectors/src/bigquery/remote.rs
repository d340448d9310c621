//! Remote BigQuery tables: the rows stay in BigQuery and the caller's SQL runs there.
//!
//! A query is checked on BigQuery's own grammar (sqlparser's parse tree, never text
//! matching) before anything is sent: one SELECT; every relation is a CTE of the query or
//! a remote table the caller may read, named by its registry name or by its path
//! (`dataset.table`, `` `project.dataset.table` ``), and rewritten to its backticked
//! path; no table functions, no `EXTERNAL_QUERY`, no function of a dataset (a persistent
//! UDF may read tables). Then a free dry run says how many bytes it would scan: over the
//! cap it is refused without running. The real run carries the cap again as
//! `maximumBytesBilled`, labels naming the agnes user, and the time limit, at which the
//! job is cancelled at BigQuery.

use super::client::{BqClient, BqFailure, BqTable, JobDone};
use super::config::BigQuerySource;
use super::extract::{decode_row, read_rows};
use crate::remote::sql::{self, Flavour, Scan};
pub use crate::remote::{Refusal, RemoteAnswer, RemoteError, RemoteLimits};
use crate::ConnectorError;
use agnes_core::ident::quote_literal;
use agnes_core::TableSpec;
use serde_json::{json, Value};
use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};
use sqlparser::dialect::{BigQueryDialect, Dialect};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The BigQuery table a registry row reads, `project.dataset.table`: its `bq_fqn`, else
/// `bucket` (the dataset) and `source_table` in the data project.
pub fn table_path(spec: &TableSpec, project: &str) -> Result<String, String> {
    let valid =
        |s: &str, extra: &[char]| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(&c));
    if let Some(fqn) = spec.bq_fqn.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        let fqn = fqn.trim_matches('`');
        return match fqn.split('.').collect::<Vec<_>>().as_slice() {
            [p, d, t] if valid(p, &['-']) && valid(d, &['_']) && valid(t, &['_', '-']) => Ok(fqn.to_string()),
            _ => Err(format!(
                "bq_fqn {fqn:?} must be project.dataset.table (project: letters, digits, -; dataset: letters, \
                 digits, _; table: letters, digits, _, -)"
            )),
        };
    }
    match (spec.bucket.as_deref().map(str::trim), spec.source_table.as_deref().map(str::trim)) {
        (Some(d), Some(t)) if valid(d, &['_']) && valid(t, &['_', '-']) => Ok(format!("{project}.{d}.{t}")),
        (Some(d), Some(t)) if !d.is_empty() && !t.is_empty() => {
            Err(format!("bucket {d:?} and source_table {t:?} must be a BigQuery dataset and table name"))
        }
        _ => Err("a remote BigQuery table needs bq_fqn (project.dataset.table), or bucket (the dataset) and \
                  source_table"
            .into()),
    }
}

/// The BigQuery source as remote queries use it: one client, connected at first use and
/// kept, so its access token is cached across requests.
pub struct BqRemote {
    source: BigQuerySource,
    client: Mutex<Option<Arc<BqClient>>>,
}

impl BqRemote {
    pub fn new(source: BigQuerySource) -> BqRemote {
        BqRemote { source, client: Mutex::new(None) }
    }

    pub fn source(&self) -> &BigQuerySource {
        &self.source
    }

    /// The client; a failure to connect (no credentials) is not kept, so fixing it needs
    /// no restart.
    pub fn client(&self) -> Result<Arc<BqClient>, ConnectorError> {
        let mut held = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        let client = Arc::new(BqClient::connect(&self.source)?);
        *held = Some(client.clone());
        Ok(client)
    }

    /// What BigQuery says of the table at `path`: its kind, columns, partitioning,
    /// clustering, rows and bytes. A kind agnes cannot query in place (an external table,
    /// a snapshot, a clone…) is refused with the reason.
    pub fn describe(&self, path: &str) -> Result<BqTable, ConnectorError> {
        let parts: Vec<&str> = path.split('.').collect();
        let [project, dataset, table] = parts.as_slice() else {
            return Err(ConnectorError::Config(format!("{path:?} is not project.dataset.table")));
        };
        let found = self.client()?.table(Some(project), dataset, table)?;
        match found.entity_type() {
            Some(_) => Ok(found),
            None => Err(ConnectorError::Config(format!(
                "{path} is a {} in BigQuery: only tables (BASE TABLE), views and materialized views can be remote \
                 tables; register it as materialized with a source_query instead",
                found.kind
            ))),
        }
    }

    /// The scan cap of remote queries and scans (`max_scan_bytes`; `None`: no cap).
    pub fn scan_cap(&self) -> Option<u64> {
        self.source.max_scan_bytes()
    }
}

/// A relation as the caller's SQL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// One name: a registry name, folded to lower case.
    Name(String),
    /// A path as written: `dataset.table` or `project.dataset.table`.
    Path(String),
}

/// A relation name's segments: `` `p.d.t` ``, `p.d.t` and `` `p`.`d`.`t` `` alike.
fn reference(name: &ObjectName) -> Option<Reference> {
    let mut segments = Vec::new();
    for part in &name.0 {
        match part {
            ObjectNamePart::Identifier(i) => segments.extend(i.value.split('.').map(String::from)),
            ObjectNamePart::Function(_) => return None,
        }
    }
    match segments.as_slice() {
        [one] => Some(Reference::Name(one.to_lowercase())),
        _ => Some(Reference::Path(segments.join("."))),
    }
}

/// Function namespaces of BigQuery's own functions; any other qualified function is a
/// routine of some dataset.
const NAMESPACES: &[&str] = &["safe", "net", "hll_count", "keys", "aead", "kll_quantiles"];

/// BigQuery's SQL, for the shared check.
struct Bq;

impl Flavour for Bq {
    type Name = Reference;

    fn dialect(&self) -> &dyn Dialect {
        &BigQueryDialect {}
    }

    fn fold(&self, ident: &Ident) -> String {
        ident.value.to_lowercase()
    }

    fn name(&self, name: &ObjectName) -> Option<Reference> {
        reference(name)
    }

    fn cte_name<'a>(&self, name: &'a Reference) -> Option<&'a str> {
        match name {
            Reference::Name(n) => Some(n),
            Reference::Path(_) => None,
        }
    }

    /// None: `EXTERNAL_QUERY`, `ML.…` and a dataset's table functions all read beyond the
    /// query's relations.
    fn table_function(&self, name: &ObjectName) -> Result<(), Refusal> {
        Err(Refusal::Function(name.to_string()))
    }

    fn function(&self, name: &ObjectName) -> Result<(), Refusal> {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => i.value.to_lowercase(),
                ObjectNamePart::Function(_) => String::new(),
            })
            .collect();
        let refused = match parts.as_slice() {
            [name] => name == "external_query" || name.contains('.'),
            [namespace, _] => !NAMESPACES.contains(&namespace.as_str()),
            _ => true,
        };
        if refused {
            Err(Refusal::Function(name.to_string()))
        } else {
            Ok(())
        }
    }

    /// The path as the caller wrote it: theirs to know.
    fn unknown(&self, name: &Reference) -> Refusal {
        Refusal::Path(match name {
            Reference::Name(n) | Reference::Path(n) => n.clone(),
        })
    }
}

/// The relations a BigQuery statement reads (CTEs left out); `None` when it does not
/// parse as BigQuery SQL.
pub fn relations(sql: &str) -> Option<Vec<Reference>> {
    sql::relations(&Bq, sql)
}

/// `sql` checked and rewritten for BigQuery: every relation that is not a CTE must be a
/// remote table `resolve` knows (the caller's readable remote tables, by registry name or
/// path), and becomes its backticked `project.dataset.table`. The first that is not is
/// refused with its path as written.
pub fn rewrite(sql: &str, resolve: &dyn Fn(&Reference) -> Option<String>) -> Result<String, Refusal> {
    sql::rewrite(&Bq, sql, resolve, &|path| ObjectName::from(vec![Ident::with_quote('`', path)]))
}

/// The name a scan's SQL calls its table before it is rewritten to the table's path.
const SCANNED: &str = "__agnes_scanned";

/// A scan of one remote table, `SELECT cols FROM path [WHERE filter] [ORDER BY …]
/// [LIMIT n]`. Columns and order keys must be columns of the table (`columns`, from the
/// metadata cache); the filter is exactly one boolean expression in BigQuery's SQL
/// (parsed alone, so it cannot close the statement or add clauses) whose column
/// references are the table's; the whole goes through [`rewrite`] with this table only,
/// so the filter reads no other relation and calls no routine.
pub fn scan_sql(
    path: &str,
    columns: &[String],
    select: &[String],
    filter: Option<&str>,
    order_by: &[String],
    limit: Option<u64>,
) -> Result<String, Refusal> {
    let known = |c: &str| columns.iter().find(|k| k.eq_ignore_ascii_case(c.trim())).cloned();
    let quote = |c: &str| format!("`{}`", c.replace('\\', "\\\\").replace('`', "\\`"));
    let scan = Scan { from: SCANNED, select, filter, order_by, limit, column: &known, quote: &quote };
    let sql = scan.sql(&Bq)?;
    rewrite(&sql, &|r| (*r == Reference::Name(SCANNED.into())).then(|| path.to_string()))
}

/// How to run one remote BigQuery statement.
#[derive(Debug, Clone)]
pub struct Run {
    /// Refuse, from the dry run, a statement that would scan more (`None`: no cap); also
    /// the job's `maximumBytesBilled`.
    pub scan_cap: Option<u64>,
    /// Job labels, e.g. the agnes user.
    pub labels: Value,
    /// The job is cancelled at BigQuery when it runs longer.
    pub timeout: Duration,
}

/// A label value as BigQuery allows one: lower-case letters, digits, `-` and `_`, at most
/// 63 characters.
pub fn label(value: &str) -> String {
    value
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(63)
        .collect()
}

/// A BigQuery failure of a remote statement: its SQL refused is the caller's to fix.
fn failed(e: BqFailure) -> RemoteError {
    match e {
        BqFailure::Api { status: 400, reason, message } if reason == "invalidQuery" || reason == "invalid" => {
            RemoteError::Sql(message)
        }
        BqFailure::Api { status: 400, reason, message } if reason == "bytesBilledLimitExceeded" => {
            RemoteError::Sql(format!("{message} (maximumBytesBilled)"))
        }
        BqFailure::Timeout(t) => RemoteError::Timeout(t),
        other => RemoteError::Source(other.into()),
    }
}

/// The bytes `sql` would scan, by a dry run (free: nothing runs).
pub fn estimate(client: &BqClient, sql: &str) -> Result<u64, RemoteError> {
    client.dry_run(sql).map_err(failed)
}

/// Dry-run `sql` and refuse it over the cap; the bytes it would scan.
fn within_cap(client: &BqClient, sql: &str, run: &Run) -> Result<u64, RemoteError> {
    let scan_bytes = estimate(client, sql)?;
    match run.scan_cap {
        Some(limit_bytes) if scan_bytes > limit_bytes => Err(RemoteError::ScanTooLarge { scan_bytes, limit_bytes }),
        _ => Ok(scan_bytes),
    }
}

/// Run a rewritten statement and answer at most `limits.max_rows` rows as JSON values:
/// integers as numbers, NUMERIC and BIGNUMERIC as exact decimal text, TIMESTAMP as ISO
/// time in UTC, DATE, DATETIME, TIME and GEOGRAPHY (WKT) as BigQuery writes them, BYTES
/// as hex (as local answers show blobs), REPEATED as arrays and STRUCT as objects.
pub fn run_json(client: &BqClient, sql: &str, run: &Run, limits: RemoteLimits) -> Result<RemoteAnswer, RemoteError> {
    within_cap(client, sql, run)?;
    let (mut columns, mut rows, mut bytes, mut truncated) = (Vec::new(), Vec::new(), 0usize, false);
    let done = client
        .query(sql, run.scan_cap, &run.labels, limits.timeout, |fields, page| {
            if columns.is_empty() {
                columns = fields.iter().map(|f| text(f, "name")).collect();
            }
            for row in page {
                if rows.len() == limits.max_rows {
                    truncated = true;
                    return Ok(false);
                }
                let cells = row.get("f").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                let values: Vec<Value> = fields.iter().zip(cells).map(|(f, c)| answer_value(f, c.get("v"))).collect();
                bytes += values.iter().map(approximate_len).sum::<usize>() + values.len() + 2;
                if bytes > limits.max_bytes {
                    return Err(ConnectorError::Source(TOO_LARGE.into()).into());
                }
                rows.push(values);
            }
            Ok(true)
        })
        .map_err(|e| match e {
            BqFailure::Other(ConnectorError::Source(m)) if m == TOO_LARGE => RemoteError::TooLarge(limits.max_bytes),
            other => failed(other),
        })?;
    Ok(RemoteAnswer { columns, rows, truncated, bytes, billed_bytes: done.billed_bytes })
}

const TOO_LARGE: &str = "the answer is larger than the limit";

fn text(field: &Value, key: &str) -> String {
    field.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn approximate_len(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items.iter().map(approximate_len).sum::<usize>() + items.len() + 2,
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + 4 + approximate_len(v)).sum::<usize>() + 2,
        _ => 8,
    }
}

/// One cell of BigQuery's encoding as an answer value (see [`run_json`]).
fn answer_value(field: &Value, v: Option<&Value>) -> Value {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Value::Null };
    if field.get("mode").and_then(Value::as_str) == Some("REPEATED") {
        let mut single = field.clone();
        single["mode"] = json!("NULLABLE");
        let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
        return Value::Array(items.iter().map(|i| answer_value(&single, i.get("v"))).collect());
    }
    let s = v.as_str().unwrap_or_default();
    match field.get("type").and_then(Value::as_str).unwrap_or_default() {
        "INTEGER" | "INT64" => s.parse::<i64>().map(Value::from).unwrap_or_else(|_| v.clone()),
        // NaN and the infinities have no JSON number, as in local answers.
        "FLOAT" | "FLOAT64" => {
            s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or(Value::Null)
        }
        "BOOLEAN" | "BOOL" => json!(s == "true"),
        "TIMESTAMP" => s
            .parse::<i64>()
            .ok()
            .and_then(chrono::DateTime::from_timestamp_micros)
            .map(|t| json!(t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string()))
            .unwrap_or_else(|| v.clone()),
        "BYTES" => {
            use base64::Engine;
            match base64::engine::general_purpose::STANDARD.decode(s) {
                Ok(b) => json!(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
                Err(_) => v.clone(),
            }
        }
        "RECORD" | "STRUCT" => {
            let fields = field.get("fields").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let cells = v.get("f").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            Value::Object(
                fields.iter().zip(cells).map(|(f, c)| (text(f, "name"), answer_value(f, c.get("v")))).collect(),
            )
        }
        _ => v.clone(),
    }
}

/// Run a statement and write its rows as newline-delimited JSON DuckDB reads typed (see
/// [`read_rows`]) to `file`, at most `max_bytes` of them. The result's schema and what the
/// job did. Used by materialization, Arrow answers, scans and hybrid queries alike.
pub fn fetch_rows(
    client: &BqClient,
    sql: &str,
    run: &Run,
    max_bytes: Option<u64>,
    file: &Path,
) -> Result<(Vec<Value>, JobDone), RemoteError> {
    let io = |e: std::io::Error| ConnectorError::Source(format!("cannot write {}: {e}", file.display()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).map_err(io)?);
    let mut schema: Vec<Value> = Vec::new();
    let mut written = 0u64;
    let done = client
        .query(sql, run.scan_cap, &run.labels, run.timeout, |fields, rows| {
            if schema.is_empty() {
                schema = fields.to_vec();
            }
            for row in rows {
                let line = serde_json::to_vec(&decode_row(fields, row)).map_err(|e| io(e.into()))?;
                written += line.len() as u64 + 1;
                if max_bytes.is_some_and(|m| written > m) {
                    return Err(ConnectorError::Source(TOO_LARGE.into()).into());
                }
                out.write_all(&line).map_err(io)?;
                out.write_all(b"\n").map_err(io)?;
            }
            Ok(true)
        })
        .map_err(|e| match e {
            BqFailure::Other(ConnectorError::Source(m)) if m == TOO_LARGE => {
                RemoteError::TooLarge(max_bytes.unwrap_or_default() as usize)
            }
            other => failed(other),
        })?;
    out.flush().map_err(io)?;
    Ok((schema, done))
}

/// What a remote statement answered as Arrow or parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// Rows written.
    pub rows: u64,
    /// Rows BigQuery answered (more than written when cut at `max_rows`).
    pub source_rows: u64,
    pub bytes: u64,
    pub billed_bytes: u64,
}

/// Run a checked statement under its cap and write at most `max_rows` of its rows as an
/// Arrow IPC stream, typed by its schema as materialized tables are. The rows pass through
/// `tmp_dir` as newline-delimited JSON, removed afterwards.
#[allow(clippy::too_many_arguments)]
pub fn run_ipc(
    client: &BqClient,
    sql: &str,
    run: &Run,
    max_rows: Option<u64>,
    max_bytes: u64,
    tmp_dir: &Path,
    limits: &agnes_engine::confined::Limits,
    out: &mut dyn Write,
) -> Result<Fetched, RemoteError> {
    within_cap(client, sql, run)?;
    let file = agnes_engine::fsutil::temp_path_for(&tmp_dir.join("bigquery-answer.ndjson"));
    let result = (|| {
        let (schema, done) = fetch_rows(client, sql, run, Some(max_bytes), &file)?;
        let duck = agnes_engine::confined::open_confined(&[tmp_dir], limits).map_err(ConnectorError::from)?;
        let mut select = read_rows(&file, &schema);
        if let Some(n) = max_rows {
            select.push_str(&format!(" LIMIT {n}"));
        }
        let (rows, bytes) = agnes_engine::scan::write_ipc(&duck, &select, max_bytes, out).map_err(|e| match e {
            agnes_engine::EngineError::ResultTooLarge { limit_bytes } => RemoteError::TooLarge(limit_bytes),
            other => RemoteError::Source(other.into()),
        })?;
        Ok(Fetched { rows, source_rows: done.rows, bytes, billed_bytes: done.billed_bytes })
    })();
    let _ = agnes_engine::fsutil::remove_if_exists(&file);
    result
}

/// Run a checked statement under its cap and write its result to the parquet file
/// `target` (a hybrid query's part, a view in the caller's sandbox).
pub fn run_parquet(
    client: &BqClient,
    sql: &str,
    run: &Run,
    max_bytes: u64,
    target: &Path,
    limits: &agnes_engine::confined::Limits,
) -> Result<Fetched, RemoteError> {
    within_cap(client, sql, run)?;
    let dir = target.parent().unwrap_or(Path::new("."));
    let file = agnes_engine::fsutil::temp_path_for(&target.with_extension("ndjson"));
    let result = (|| {
        let (schema, done) = fetch_rows(client, sql, run, Some(max_bytes), &file)?;
        let duck = agnes_engine::confined::open_confined(&[dir], limits).map_err(ConnectorError::from)?;
        let rows = duck
            .execute(
                &format!(
                    "COPY ({}) TO {} (FORMAT PARQUET)",
                    read_rows(&file, &schema),
                    quote_literal(&target.to_string_lossy())
                ),
                [],
            )
            .map_err(|e| {
                RemoteError::Source(ConnectorError::Source(format!("cannot write {}: {e}", target.display())))
            })?;
        let bytes = std::fs::metadata(target).map(|m| m.len()).unwrap_or(0);
        Ok(Fetched { rows: rows as u64, source_rows: done.rows, bytes, billed_bytes: done.billed_bytes })
    })();
    let _ = agnes_engine::fsutil::remove_if_exists(&file);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(r: &Reference) -> Option<String> {
        match r {
            Reference::Name(n) if n == "sessions" => Some("acme-data.web.sessions".into()),
            Reference::Path(p) if p == "acme-data.web.sessions" || p == "web.sessions" => {
                Some("acme-data.web.sessions".into())
            }
            _ => None,
        }
    }

    #[test]
    fn names_and_paths_become_backticked_paths() {
        let sql = rewrite(
            "WITH s AS (SELECT * FROM Sessions) SELECT count(*) FROM s JOIN `acme-data.web.sessions` t ON true \
             JOIN web.sessions u ON true",
            &tables,
        )
        .unwrap();
        assert_eq!(
            sql,
            "WITH s AS (SELECT * FROM `acme-data.web.sessions`) SELECT count(*) FROM s JOIN `acme-data.web.sessions` \
             t ON true JOIN `acme-data.web.sessions` u ON true"
        );
        assert_eq!(relations("SELECT * FROM `x.y.z`, sessions").unwrap().len(), 2);
    }

    #[test]
    fn refusals_name_the_path_as_written() {
        let refuse = |sql: &str| rewrite(sql, &tables).unwrap_err();
        assert_eq!(refuse("SELECT * FROM `acme-data.hr.salaries`"), Refusal::Path("acme-data.hr.salaries".into()));
        assert_eq!(refuse("SELECT * FROM hr.salaries"), Refusal::Path("hr.salaries".into()));
        assert_eq!(refuse("SELECT * FROM salaries"), Refusal::Path("salaries".into()));
        assert_eq!(
            refuse("SELECT * FROM `acme-data.web.INFORMATION_SCHEMA.TABLES`"),
            Refusal::Path("acme-data.web.INFORMATION_SCHEMA.TABLES".into())
        );
        assert!(matches!(refuse("SELECT * FROM sessions WHERE id IN (SELECT id FROM other)"), Refusal::Path(_)));
        assert!(matches!(refuse("DELETE FROM sessions WHERE true"), Refusal::NotSelect(_)));
        assert!(matches!(refuse("SELECT 1; SELECT 2"), Refusal::NotSelect(_)));
        assert!(matches!(
            refuse("SELECT * FROM EXTERNAL_QUERY('conn', 'select * from secrets')"),
            Refusal::Function(_) | Refusal::Invalid(_)
        ));
        assert!(matches!(refuse("SELECT EXTERNAL_QUERY('c', 'q')"), Refusal::Function(_)));
        assert!(matches!(refuse("SELECT hr.read_salaries(id) FROM sessions"), Refusal::Function(_)));
        assert!(rewrite("SELECT SAFE.PARSE_DATE('%Y', '2024'), NET.HOST('http://a') FROM sessions", &tables).is_ok());
        assert!(matches!(refuse("SELEC 1"), Refusal::Invalid(_)));
    }

    #[test]
    fn scans_take_one_expression_over_the_tables_columns() {
        let columns = vec!["id".to_string(), "started".to_string(), "country".to_string()];
        let path = "acme-data.web.sessions";
        let sql = scan_sql(
            path,
            &columns,
            &["ID".into(), "started".into()],
            Some("started >= TIMESTAMP '2025-01-02' AND country = 'CZ'"),
            &["started desc".into()],
            Some(10),
        )
        .unwrap();
        assert_eq!(
            sql,
            "SELECT `id`, `started` FROM `acme-data.web.sessions` WHERE started >= TIMESTAMP '2025-01-02' AND \
             country = 'CZ' ORDER BY `started` DESC LIMIT 10"
        );
        let refuse = |w: &str| scan_sql(path, &columns, &[], Some(w), &[], None).unwrap_err();
        assert!(matches!(
            refuse("true) UNION ALL SELECT * FROM `acme-data.hr.salaries` --"),
            Refusal::NotSelect(_) | Refusal::Invalid(_)
        ));
        assert!(matches!(refuse("id IN (SELECT id FROM `acme-data.hr.salaries`)"), Refusal::Path(_)));
        assert_eq!(refuse("salary > 0"), Refusal::Invalid("where: unknown column \"salary\"".into()));
        assert!(matches!(scan_sql(path, &columns, &["salary".into()], None, &[], None), Err(Refusal::Invalid(_))));
        let spec = |fqn: Option<&str>, bucket: Option<&str>| {
            let mut t = TableSpec::new(
                "t",
                agnes_core::SourceType::Bigquery,
                agnes_core::QueryMode::Remote,
                Default::default(),
            );
            t.bq_fqn = fqn.map(String::from);
            t.bucket = bucket.map(String::from);
            t.source_table = Some("events".into());
            t
        };
        assert_eq!(table_path(&spec(Some("other-proj.logs.events"), None), "p"), Ok("other-proj.logs.events".into()));
        assert_eq!(table_path(&spec(None, Some("logs")), "acme"), Ok("acme.logs.events".into()));
        assert!(table_path(&spec(Some("a.b"), None), "p").is_err());
        assert!(table_path(&spec(Some("a.b.c; DROP"), None), "p").is_err());
        assert!(table_path(&spec(None, None), "p").is_err());
    }
}
