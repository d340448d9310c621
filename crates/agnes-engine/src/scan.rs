//! Filtered scans of one table (`/api/v2/scan`, spec §3.6): a projection, a WHERE, an
//! ORDER BY and a LIMIT, checked against the table's columns, estimated, and streamed as
//! Arrow IPC.
//!
//! The WHERE text is checked on DuckDB's own parse tree of the exact statement that will
//! run: one SELECT of this table's view, no clause but the ones built here, and a
//! predicate made only of column references, constants, operators and scalar functions.
//! It runs in the caller's sandbox besides, so even a gap in the check reaches nothing
//! the caller may not read.

use crate::sandbox::{guarded, Sandbox};
use crate::{EngineError, Result};
use agnes_core::ident::quote_ident;
use duckdb::Connection;
use serde_json::Value as Json;
use std::io::Write;
use std::time::Duration;

/// What a caller asks of one table.
#[derive(Debug, Clone, Default)]
pub struct ScanRequest {
    /// The table's view name in the sandbox.
    pub table: String,
    /// Columns to return; empty = all.
    pub select: Vec<String>,
    pub filter: Option<String>,
    /// `col` or `col ASC|DESC`.
    pub order_by: Vec<String>,
    pub limit: Option<u64>,
}

/// A checked scan, ready to estimate or run.
#[derive(Debug, Clone)]
pub struct ScanPlan {
    pub sql: String,
    /// The returned columns with their DuckDB types.
    columns: Vec<(String, String)>,
    /// The same rows without ORDER BY, for counting.
    unordered: String,
}

/// Rows and Arrow bytes a scan would answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub rows: u64,
    pub bytes: u64,
}

/// What a finished scan sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOutcome {
    pub rows: u64,
    pub bytes: u64,
}

/// Expression classes a predicate may use. Anything else (subqueries, window functions,
/// `*`, parameters, positional references) is refused.
const ALLOWED: &[&str] = &[
    "COLUMN_REF",
    "CONSTANT",
    "COMPARISON",
    "CONJUNCTION",
    "OPERATOR",
    "BETWEEN",
    "CASE",
    "CAST",
    "TYPE",
    "FUNCTION",
    "COLLATE",
];

/// Scalar functions that describe the server rather than the data.
const SERVER_FUNCTIONS: &[&str] = &["getenv", "current_setting", "current_database", "current_schema", "version"];

fn is_column_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn rejected(kind: &'static str, details: impl Into<String>) -> EngineError {
    EngineError::Rejected { kind, details: details.into() }
}

impl Sandbox {
    /// The columns of one of the sandbox's tables, with their types.
    pub fn columns(&self, table: &str) -> Result<Vec<(String, String)>> {
        let conn = self.connection()?;
        let mut stmt =
            conn.prepare(&format!("SELECT column_name, column_type FROM (DESCRIBE {})", quote_ident(table)))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Check `req` against the table and build the statement it runs.
    pub fn plan_scan(&self, req: &ScanRequest) -> Result<ScanPlan> {
        let columns = self.columns(&req.table)?;
        let find = |name: &str| columns.iter().find(|(c, _)| c.eq_ignore_ascii_case(name));
        let mut unknown = Vec::new();
        let mut selected = Vec::new();
        for name in &req.select {
            match find(name).filter(|_| is_column_name(name)) {
                Some(c) => selected.push(c.clone()),
                None => unknown.push(name.clone()),
            }
        }
        let mut order = Vec::new();
        for entry in &req.order_by {
            let mut words = entry.split_whitespace();
            let (name, direction) = (words.next().unwrap_or_default(), words.next());
            let direction = match direction.map(str::to_ascii_uppercase).as_deref() {
                None => "",
                Some("ASC") => " ASC",
                Some("DESC") => " DESC",
                Some(_) => {
                    return Err(EngineError::InvalidRequest(format!(
                        "invalid order_by entry {entry:?}: use \"col\", \"col ASC\" or \"col DESC\""
                    )))
                }
            };
            if words.next().is_some() {
                return Err(EngineError::InvalidRequest(format!(
                    "invalid order_by entry {entry:?}: use \"col\", \"col ASC\" or \"col DESC\""
                )));
            }
            match find(name).filter(|_| is_column_name(name)) {
                Some((c, _)) => order.push(format!("{}{direction}", quote_ident(c))),
                None => unknown.push(name.to_string()),
            }
        }
        if !unknown.is_empty() {
            return Err(EngineError::InvalidRequest(format!("unknown columns: {unknown:?}")));
        }
        if selected.is_empty() {
            selected = columns.clone();
        }
        let projection: Vec<String> = selected.iter().map(|(c, _)| quote_ident(c)).collect();
        let mut base = format!("SELECT {} FROM {}", projection.join(", "), quote_ident(&req.table));
        if let Some(filter) = req.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            // The newline ends a trailing `--` comment, which would otherwise swallow the parenthesis.
            base.push_str(&format!(" WHERE ({filter}\n)"));
        }
        let limit = req.limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let order_clause = if order.is_empty() { String::new() } else { format!(" ORDER BY {}", order.join(", ")) };
        let plan = ScanPlan {
            sql: format!("{base}{order_clause}{limit}"),
            unordered: format!("{base}{limit}"),
            columns: selected,
        };
        let conn = self.connection()?;
        let modifiers = usize::from(!order.is_empty()) + usize::from(req.limit.is_some());
        check_shape(&conn, &plan.sql, &req.table, projection.len(), modifiers, &columns)?;
        Ok(plan)
    }

    /// Rows and Arrow bytes the scan would answer, counted by running its filter.
    pub fn estimate_scan(&self, plan: &ScanPlan) -> Result<Estimate> {
        let mut fixed = 0u64;
        let mut variable = Vec::new();
        for (name, ty) in &plan.columns {
            match fixed_width(ty) {
                Some(w) => fixed += w,
                // Offsets are 4 bytes a value; the text is measured.
                None => {
                    fixed += 4;
                    let length = if ty == "BLOB" { "octet_length" } else { "strlen" };
                    let cast = if ty == "BLOB" { "BLOB" } else { "VARCHAR" };
                    variable.push(format!("coalesce(sum({length}(CAST({} AS {cast}))), 0)", quote_ident(name)));
                }
            }
        }
        let measured = if variable.is_empty() { "0".to_string() } else { variable.join(" + ") };
        let sql = format!("SELECT count(*), ({measured})::UBIGINT FROM ({}) AS scan", plan.unordered);
        let conn = self.connection()?;
        let (rows, text): (u64, u64) =
            guarded(
                &conn,
                self.limits().timeout,
                |conn| Ok(conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?),
            )?;
        Ok(Estimate { rows, bytes: rows * fixed + text })
    }

    /// Run the scan and write it to `out` as an Arrow IPC stream, batch by batch. More than
    /// `max_bytes` of IPC is an error: the stream stops without its end marker, so a
    /// reader never mistakes a cut answer for a whole one.
    pub fn scan_ipc(&self, plan: &ScanPlan, timeout: Duration, max_bytes: u64, out: impl Write) -> Result<ScanOutcome> {
        let conn = self.connection()?;
        guarded(&conn, timeout, |conn| {
            let (rows, bytes) = write_ipc(conn, &plan.sql, max_bytes, out)?;
            Ok(ScanOutcome { rows, bytes })
        })
    }
}

/// Run `sql` on `conn` and write its result to `out` as an Arrow IPC stream, batch by
/// batch: the rows and bytes written. More than `max_bytes` of IPC is an error, and the
/// stream then stops without its end marker.
pub fn write_ipc(conn: &duckdb::Connection, sql: &str, max_bytes: u64, out: impl Write) -> Result<(u64, u64)> {
    let mut stmt = conn.prepare(sql)?;
    let batches = stmt.stream_arrow([])?;
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(Counting { inner: out, bytes: 0 }, &batches.get_schema())
        .map_err(arrow_error)?;
    let mut rows = 0u64;
    for batch in batches {
        let batch = batch?;
        writer.write(&batch).map_err(arrow_error)?;
        rows += batch.num_rows() as u64;
        if writer.get_ref().bytes > max_bytes {
            return Err(EngineError::ResultTooLarge { limit_bytes: max_bytes as usize });
        }
    }
    writer.finish().map_err(arrow_error)?;
    let counting = writer.into_inner().map_err(arrow_error)?;
    Ok((rows, counting.bytes))
}

fn arrow_error(e: impl std::fmt::Display) -> EngineError {
    match e.to_string() {
        m if m.contains("Broken pipe") || m.contains("closed") => EngineError::Invalid("the client went away".into()),
        m => EngineError::Invalid(format!("cannot send the result as Arrow IPC: {m}")),
    }
}

/// A writer that counts what passes through.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Arrow bytes per value of a fixed-width DuckDB type; `None` for variable-width types.
fn fixed_width(ty: &str) -> Option<u64> {
    if ty.starts_with("DECIMAL") {
        return Some(16);
    }
    Some(match ty {
        "BOOLEAN" | "TINYINT" | "UTINYINT" => 1,
        "SMALLINT" | "USMALLINT" => 2,
        "INTEGER" | "UINTEGER" | "FLOAT" | "DATE" => 4,
        "BIGINT"
        | "UBIGINT"
        | "DOUBLE"
        | "TIME"
        | "TIMESTAMP"
        | "TIMESTAMP WITH TIME ZONE"
        | "TIMESTAMP_S"
        | "TIMESTAMP_MS"
        | "TIMESTAMP_NS" => 8,
        "HUGEINT" | "UHUGEINT" | "UUID" | "INTERVAL" => 16,
        _ => return None,
    })
}

/// Refuse `sql` unless DuckDB parses it as exactly the scan that was built: one SELECT of
/// `table` with `projection` columns, `modifiers` ORDER BY/LIMIT clauses, nothing else,
/// and a WHERE made of allowed expressions over the table's own columns.
fn check_shape(
    conn: &Connection,
    sql: &str,
    table: &str,
    projection: usize,
    modifiers: usize,
    columns: &[(String, String)],
) -> Result<()> {
    let text: String = conn.query_row("SELECT json_serialize_sql(?::VARCHAR)", [sql], |r| r.get(0))?;
    let tree: Json =
        serde_json::from_str(&text).map_err(|e| EngineError::Invalid(format!("cannot read the parse tree: {e}")))?;
    if tree["error"].as_bool() == Some(true) {
        let message = tree["error_message"].as_str().unwrap_or("the WHERE does not parse");
        if message.starts_with("Only SELECT") {
            return Err(rejected("not_a_predicate", "the WHERE must be one expression, not statements"));
        }
        return Err(rejected("parse_error", message));
    }
    let statements = tree["statements"].as_array().map(Vec::as_slice).unwrap_or_default();
    let [statement] = statements else {
        return Err(rejected("not_a_predicate", "the WHERE must be one expression, not several statements"));
    };
    let node = &statement["node"];
    let from = &node["from_table"];
    let empty = |v: &Json| v.is_null() || v.as_array().is_some_and(Vec::is_empty);
    let plain = node["type"] == "SELECT_NODE"
        && from["type"] == "BASE_TABLE"
        && from["table_name"].as_str() == Some(table)
        && from["schema_name"].as_str().unwrap_or_default().is_empty()
        && from["catalog_name"].as_str().unwrap_or_default().is_empty()
        && node["select_list"].as_array().map(Vec::len) == Some(projection)
        && node["modifiers"].as_array().map(Vec::len).unwrap_or_default() == modifiers
        && empty(&node["cte_map"]["map"])
        && empty(&node["group_expressions"])
        && empty(&node["group_sets"])
        && node["having"].is_null()
        && node["qualify"].is_null()
        && node["sample"].is_null();
    if !plain {
        return Err(rejected(
            "not_a_predicate",
            "the WHERE must be one boolean expression; it may not close the clause",
        ));
    }
    check_expression(&node["where_clause"], columns)
}

/// Walk a predicate's parse tree; every node must be an allowed expression.
fn check_expression(node: &Json, columns: &[(String, String)]) -> Result<()> {
    match node {
        Json::Array(items) => items.iter().try_for_each(|n| check_expression(n, columns)),
        Json::Object(map) => {
            if let Some(class) = map.get("class").and_then(Json::as_str) {
                match class {
                    "SUBQUERY" => return Err(rejected("subquery", "subqueries are not allowed in a scan's WHERE")),
                    "WINDOW" => return Err(rejected("window_function", "window functions are not allowed in a WHERE")),
                    c if !ALLOWED.contains(&c) => {
                        return Err(rejected("forbidden_expression", format!("{c} expressions are not allowed")))
                    }
                    "COLUMN_REF" => {
                        let names: Vec<&str> =
                            map["column_names"].as_array().into_iter().flatten().filter_map(Json::as_str).collect();
                        let [name] = names.as_slice() else {
                            return Err(rejected(
                                "qualified_column",
                                format!("use the bare column name, not {}", names.join(".")),
                            ));
                        };
                        if !columns.iter().any(|(c, _)| c.eq_ignore_ascii_case(name)) {
                            return Err(rejected("unknown_column", format!("no column {name:?} in this table")));
                        }
                    }
                    "FUNCTION" => {
                        let name = map["function_name"].as_str().unwrap_or_default().to_ascii_lowercase();
                        let qualified = !map["schema"].as_str().unwrap_or_default().is_empty()
                            || !map["catalog"].as_str().unwrap_or_default().is_empty();
                        if qualified || SERVER_FUNCTIONS.contains(&name.as_str()) {
                            return Err(rejected("forbidden_function", format!("{name}() is not allowed in a WHERE")));
                        }
                    }
                    _ => {}
                }
            }
            map.values().try_for_each(|v| check_expression(v, columns))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{SandboxLimits, SandboxTable};
    use crate::table_data::TableData;

    fn fixture() -> (tempfile::TempDir, Sandbox) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("flights.parquet");
        crate::duck::open_in_memory()
            .unwrap()
            .execute_batch(&format!(
                "COPY (SELECT range AS id, ['AA','UA','DL'][range % 3 + 1] AS carrier, range * 1.5 AS dist, \
                 DATE '2013-01-01' + (range % 365)::INTEGER AS day FROM range(1000)) TO '{}'",
                p.display()
            ))
            .unwrap();
        let tables = [SandboxTable { name: "flights".into(), data: TableData::File(p) }];
        let sb = Sandbox::open(&tables, &SandboxLimits::default()).unwrap();
        (dir, sb)
    }

    fn req(filter: &str) -> ScanRequest {
        ScanRequest { table: "flights".into(), filter: Some(filter.into()), ..Default::default() }
    }

    fn kind(sb: &Sandbox, filter: &str) -> String {
        match sb.plan_scan(&req(filter)) {
            Err(EngineError::Rejected { kind, .. }) => kind.to_string(),
            Err(e) => format!("error: {e}"),
            Ok(_) => "ok".into(),
        }
    }

    #[test]
    fn predicates_over_the_tables_columns_pass() {
        let (_d, sb) = fixture();
        for ok in [
            "carrier = 'UA'",
            "carrier IN ('AA', 'DL') AND dist BETWEEN 10 AND 100",
            "day >= DATE '2013-06-01' OR id IS NULL",
            "lower(CARRIER) LIKE 'u%' -- a comment",
            "CASE WHEN id % 2 = 0 THEN true ELSE false END",
            "CAST(dist AS INTEGER) > 5 AND regexp_matches(carrier, '^[AU]')",
        ] {
            assert_eq!(kind(&sb, ok), "ok", "{ok}");
        }
    }

    #[test]
    fn anything_but_a_predicate_is_rejected_with_its_kind() {
        let (_d, sb) = fixture();
        for (bad, want) in [
            ("id IN (SELECT 1)", "subquery"),
            ("EXISTS (SELECT * FROM read_csv('/etc/passwd'))", "subquery"),
            ("1=1) UNION ALL SELECT * FROM flights WHERE (1=1", "not_a_predicate"),
            ("true) ORDER BY (id", "not_a_predicate"),
            ("true); DROP TABLE x; SELECT (1", "not_a_predicate"),
            ("true) GROUP BY ALL HAVING (true", "not_a_predicate"),
            ("secret.x = 1", "qualified_column"),
            ("nope = 1", "unknown_column"),
            ("getenv('HOME') = 'x'", "forbidden_function"),
            ("main.lower(carrier) = 'x'", "forbidden_function"),
            ("row_number() OVER () < 5", "window_function"),
            ("id = ?", "forbidden_expression"),
            ("carrier = 'x' AND", "parse_error"),
        ] {
            assert_eq!(kind(&sb, bad), want, "{bad}");
        }
    }

    #[test]
    fn projection_and_order_are_checked_against_the_schema() {
        let (_d, sb) = fixture();
        let r = ScanRequest { table: "flights".into(), select: vec!["ID".into(), "x".into()], ..Default::default() };
        assert_eq!(sb.plan_scan(&r).unwrap_err().to_string(), "unknown columns: [\"x\"]");
        let r = ScanRequest { table: "flights".into(), order_by: vec!["id SIDEWAYS".into()], ..Default::default() };
        assert!(sb.plan_scan(&r).unwrap_err().to_string().starts_with("invalid order_by"));
        let r = ScanRequest { table: "flights".into(), select: vec!["id; DROP".into()], ..Default::default() };
        assert!(matches!(sb.plan_scan(&r), Err(EngineError::InvalidRequest(_))));
    }

    #[test]
    fn the_estimate_is_close_to_the_scan() {
        let (_d, sb) = fixture();
        let r = ScanRequest {
            table: "flights".into(),
            select: vec!["id".into(), "carrier".into()],
            filter: Some("carrier = 'UA'".into()),
            order_by: vec!["id DESC".into()],
            limit: Some(200),
        };
        let plan = sb.plan_scan(&r).unwrap();
        let est = sb.estimate_scan(&plan).unwrap();
        let mut ipc = Vec::new();
        let out = sb.scan_ipc(&plan, Duration::from_secs(10), 1 << 30, &mut ipc).unwrap();
        assert_eq!((est.rows, out.rows, out.bytes), (200, 200, ipc.len() as u64));
        let ratio = est.bytes as f64 / out.bytes as f64;
        assert!((0.5..=2.0).contains(&ratio), "estimate {} vs IPC {} bytes", est.bytes, out.bytes);
        let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None).unwrap();
        let batches: Vec<_> = reader.collect::<std::result::Result<_, _>>().unwrap();
        let first = batches[0].column(0).as_any().downcast_ref::<duckdb::arrow::array::Int64Array>().unwrap();
        assert_eq!(first.value(0), 997, "ordered by id descending, filtered to UA");
        let err = sb.scan_ipc(&plan, Duration::from_secs(10), 100, Vec::new()).unwrap_err();
        assert!(matches!(err, EngineError::ResultTooLarge { .. }), "{err}");
    }
}
