//! Remote tables: the data stays in PostgreSQL and the caller's SQL runs there.
//!
//! A query is checked on PostgreSQL's own grammar (sqlparser's parse tree, never text
//! matching) before it is sent: one SELECT; every relation it reads is a remote table the
//! caller may read (rewritten to its schema-qualified name) or a CTE of the query; every
//! function is on an allowlist of functions that read nothing but their arguments (so
//! `query_to_xml`, `pg_read_file`, `dblink`, `set_config`, `lo_import` and the like are
//! refused). It then runs in a `READ ONLY` transaction with `statement_timeout` and an empty
//! `search_path`, so a name the check let through as a CTE can never resolve to a table.

use super::client::{connect, source_error};
use super::config::PgSource;
use crate::remote::sql::{self, Flavour, Scan};
pub use crate::remote::{Refusal, RemoteAnswer, RemoteError, RemoteLimits};
use crate::ConnectorError;
use sqlparser::ast::{Ident, ObjectName, ObjectNamePart, Query};
use sqlparser::dialect::{Dialect, PostgreSqlDialect};
use std::collections::BTreeSet;
use std::time::Duration;

/// Functions that compute from their arguments only: aggregates, window functions,
/// arithmetic, text, date/time, JSON construction and access, arrays.
const FUNCTIONS: &[&str] = &[
    // aggregates
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "bool_and",
    "bool_or",
    "every",
    "string_agg",
    "array_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_slope",
    "regr_intercept",
    "regr_r2",
    "regr_count",
    "bit_and",
    "bit_or",
    "any_value",
    // window
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // numbers
    "abs",
    "ceil",
    "ceiling",
    "floor",
    "round",
    "trunc",
    "sign",
    "sqrt",
    "cbrt",
    "exp",
    "ln",
    "log",
    "log10",
    "power",
    "pow",
    "mod",
    "div",
    "greatest",
    "least",
    "width_bucket",
    "pi",
    "degrees",
    "radians",
    "random",
    "scale",
    "gcd",
    "lcm",
    "factorial",
    // conditionals
    "coalesce",
    "nullif",
    // text
    "lower",
    "upper",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "bit_length",
    "substr",
    "substring",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "lpad",
    "rpad",
    "replace",
    "concat",
    "concat_ws",
    "left",
    "right",
    "strpos",
    "position",
    "split_part",
    "initcap",
    "repeat",
    "reverse",
    "starts_with",
    "format",
    "regexp_replace",
    "regexp_match",
    "regexp_like",
    "regexp_count",
    "regexp_substr",
    "regexp_split_to_array",
    "md5",
    "translate",
    "to_char",
    "to_number",
    "to_date",
    "to_timestamp",
    "ascii",
    "chr",
    "quote_ident",
    "quote_literal",
    "encode",
    "decode",
    "string_to_array",
    "array_to_string",
    // date and time
    "now",
    "current_date",
    "current_timestamp",
    "localtimestamp",
    "date_trunc",
    "date_part",
    "extract",
    "age",
    "make_date",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "make_interval",
    "date_bin",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "timezone",
    "isfinite",
    "to_timestamp",
    // JSON
    "to_json",
    "to_jsonb",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "json_extract_path",
    "json_extract_path_text",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "json_array_length",
    "jsonb_array_length",
    "json_typeof",
    "jsonb_typeof",
    "jsonb_path_exists",
    "jsonb_path_query_first",
    // arrays
    "array_length",
    "cardinality",
    "array_position",
    "array_positions",
    "array_append",
    "array_prepend",
    "array_cat",
    "array_remove",
    "array_replace",
    "array_lower",
    "array_upper",
    "array_dims",
];

/// Functions allowed in FROM.
const TABLE_FUNCTIONS: &[&str] = &["unnest", "generate_series", "jsonb_array_elements", "json_array_elements"];

/// How PostgreSQL folds an identifier: unquoted to lower case.
fn fold(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The single identifier of an unqualified name, folded.
fn single(name: &ObjectName) -> Option<String> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(i)] => Some(fold(i)),
        _ => None,
    }
}

/// A function name the allowlist admits: `f` or `pg_catalog.f`.
fn allowed(name: &ObjectName, list: &[&str]) -> Result<(), Refusal> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Ok(fold(i)),
            ObjectNamePart::Function(_) => Err(Refusal::Function(name.to_string())),
        })
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [f] | [_, f] if (parts.len() == 1 || parts[0] == "pg_catalog") && list.contains(&f.as_str()) => Ok(()),
        _ => Err(Refusal::Function(name.to_string())),
    }
}

/// PostgreSQL's SQL, for the shared check.
struct Pg;

impl Flavour for Pg {
    type Name = String;

    fn dialect(&self) -> &dyn Dialect {
        &PostgreSqlDialect {}
    }

    fn fold(&self, ident: &Ident) -> String {
        fold(ident)
    }

    /// Registry names only: a qualified name (`public.flights`, `pg_catalog.pg_class`)
    /// is no remote table.
    fn name(&self, name: &ObjectName) -> Option<String> {
        single(name)
    }

    fn cte_name<'a>(&self, name: &'a String) -> Option<&'a str> {
        Some(name)
    }

    fn table_function(&self, name: &ObjectName) -> Result<(), Refusal> {
        allowed(name, TABLE_FUNCTIONS)
    }

    fn function(&self, name: &ObjectName) -> Result<(), Refusal> {
        allowed(name, FUNCTIONS)
    }

    fn query(&self, query: &Query) -> Result<(), Refusal> {
        match query.with.iter().flat_map(|w| &w.cte_tables).find(|c| fold(&c.alias.name).starts_with("pg_")) {
            // Catalog relations are all named pg_…: a CTE may not take such a name.
            Some(cte) => Err(Refusal::NotSelect(format!("a CTE named {}", cte.alias.name))),
            None => Ok(()),
        }
    }

    fn unknown(&self, _name: &String) -> Refusal {
        Refusal::Relation
    }
}

/// The relations a statement reads, folded, its CTE names left out; `None` when it is not
/// PostgreSQL SQL (it is then no remote query).
pub fn relations(sql: &str) -> Option<BTreeSet<String>> {
    sql::relations(&Pg, sql).map(|found| found.into_iter().collect())
}

/// `sql` checked and rewritten for PostgreSQL: every relation that is not a CTE must be a
/// remote table `resolve` knows (the caller's readable remote tables, by registry name),
/// and becomes its `"schema"."table"`.
pub fn rewrite(sql: &str, resolve: &dyn Fn(&str) -> Option<(String, String)>) -> Result<String, Refusal> {
    sql::rewrite(&Pg, sql, &|n: &String| resolve(n), &|(schema, table)| {
        ObjectName::from(vec![Ident::with_quote('"', schema), Ident::with_quote('"', table)])
    })
}

/// Run a rewritten query in a read-only transaction and answer its rows as JSON values.
pub fn run_json(source: &PgSource, sql: &str, limits: RemoteLimits) -> Result<RemoteAnswer, RemoteError> {
    let mut client = connect(source).map_err(RemoteError::Source)?;
    client
        .batch_execute(&format!(
            "BEGIN READ ONLY; SET LOCAL statement_timeout = {}; SET LOCAL search_path = '';",
            limits.timeout.as_millis().max(1)
        ))
        .map_err(|e| RemoteError::Source(source_error("cannot start a read-only transaction", e)))?;
    let sql_error = |e: postgres::Error| sql_error(e, limits.timeout);
    let statement = client.prepare(sql).map_err(sql_error)?;
    let columns: Vec<String> = statement.columns().iter().map(|c| c.name().to_string()).collect();
    // Each row as one JSON array, built by PostgreSQL (exact numbers, ISO times): the
    // select's columns renamed c0…cN so duplicates and unnamed ones survive.
    let aliases: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
    let wrapped = if columns.is_empty() {
        format!("SELECT '{{}}'::text FROM ({sql}) AS __agnes_q LIMIT {}", limits.max_rows + 1)
    } else {
        format!(
            "SELECT row_to_json(__agnes_q)::text FROM ({sql}) AS __agnes_q({}) LIMIT {}",
            aliases.join(", "),
            limits.max_rows + 1
        )
    };
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    let mut it = client.query_raw(wrapped.as_str(), std::iter::empty::<&str>()).map_err(sql_error)?;
    use postgres::fallible_iterator::FallibleIterator;
    while let Some(row) = it.next().map_err(sql_error)? {
        if rows.len() == limits.max_rows {
            truncated = true;
            break;
        }
        let text: &str = row.get(0);
        bytes += text.len();
        if bytes > limits.max_bytes {
            return Err(RemoteError::TooLarge(limits.max_bytes));
        }
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| RemoteError::Source(ConnectorError::Source(format!("a row is not JSON: {e}"))))?;
        rows.push(aliases.iter().map(|a| object.get(a).cloned().unwrap_or(serde_json::Value::Null)).collect());
    }
    Ok(RemoteAnswer { columns, rows, truncated, bytes, billed_bytes: 0 })
}

/// Run a rewritten query read-only and write its rows to the parquet file `target` (a
/// hybrid query's part), typed again by DuckDB from the JSON [`run_json`] answers. The
/// rows written; a result cut at `limits.max_rows` is refused rather than kept short.
pub fn run_parquet(
    source: &PgSource,
    sql: &str,
    limits: RemoteLimits,
    target: &std::path::Path,
) -> Result<u64, RemoteError> {
    let answer = run_json(source, sql, limits)?;
    if answer.truncated {
        return Err(RemoteError::Sql(format!(
            "the result has more than {} rows: aggregate or filter it in PostgreSQL",
            limits.max_rows
        )));
    }
    agnes_engine::snapshot::json_rows_to_parquet(&answer.columns, &answer.rows, target)
        .map_err(|e| RemoteError::Source(e.into()))
}

/// A scan of one remote table ([`Scan`]), through [`rewrite`] with this table only, so the
/// filter's functions are on the allowlist and it reads no other relation. Columns are not
/// checked here (PostgreSQL does, when it plans the statement).
pub fn scan_sql(
    table: &str,
    qualified: (&str, &str),
    select: &[String],
    filter: Option<&str>,
    order_by: &[String],
    limit: Option<u64>,
) -> Result<String, Refusal> {
    let quote = |c: &str| format!("\"{}\"", c.trim().replace('"', "\"\""));
    let from = quote(table);
    let column = |c: &str| Some(c.trim().to_string());
    let scan = Scan { from: &from, select, filter, order_by, limit, column: &column, quote: &quote };
    let sql = scan.sql(&Pg)?;
    let (schema, name) = (qualified.0.to_string(), qualified.1.to_string());
    let folded = table.to_string();
    rewrite(&sql, &|n: &str| (n == folded).then(|| (schema.clone(), name.clone())))
}

/// What a scan would answer, by the planner's estimate (nothing runs): rows, bytes
/// (rows × row width), and the bytes the relation holds on disk.
pub fn estimate(source: &PgSource, sql: &str, qualified: (&str, &str)) -> Result<(u64, u64, u64), RemoteError> {
    let mut client = connect(source).map_err(RemoteError::Source)?;
    let (rows, width) =
        super::client::plan_estimate(&mut client, sql).map_err(|e| sql_error(e, source.statement_timeout()))?;
    let relation = format!("\"{}\".\"{}\"", qualified.0.replace('"', "\"\""), qualified.1.replace('"', "\"\""));
    let on_disk: i64 = client
        .query_one("SELECT pg_total_relation_size($1::text::regclass)", &[&relation])
        .map_err(|e| sql_error(e, source.statement_timeout()))?
        .get(0);
    Ok((rows as u64, (rows * width) as u64, on_disk.max(0) as u64))
}

/// PostgreSQL's refusal of a statement, as the caller's mistake or a timeout; anything
/// else is the source's failure.
fn sql_error(e: postgres::Error, timeout: Duration) -> RemoteError {
    match e.as_db_error() {
        Some(db) if db.code() == &postgres::error::SqlState::QUERY_CANCELED => RemoteError::Timeout(timeout),
        Some(db) => RemoteError::Sql(format!("{}: {}", db.code().code(), db.message())),
        None => RemoteError::Source(source_error("the remote query failed", e)),
    }
}

/// Run a scan's SQL read-only and write its rows to `out` as an Arrow IPC stream; the rows
/// and bytes written. Past `max_bytes` it stops with [`RemoteError::TooLarge`] (the
/// stream then has no end marker, so no reader takes it for whole).
pub fn stream_ipc(
    source: &PgSource,
    sql: &str,
    timeout: Duration,
    max_bytes: u64,
    out: &mut dyn std::io::Write,
) -> Result<(u64, u64), RemoteError> {
    let mut client = connect(source).map_err(RemoteError::Source)?;
    super::extract::begin_read_only(&mut client, Some(timeout)).map_err(RemoteError::Source)?;
    client.batch_execute("SET LOCAL search_path = ''").map_err(|e| sql_error(e, timeout))?;
    let columns = super::client::columns_of(&mut client, sql, None).map_err(RemoteError::Source)?;
    struct Counting<'a> {
        out: &'a mut dyn std::io::Write,
        bytes: u64,
    }
    impl std::io::Write for Counting<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.out.write(buf)?;
            self.bytes += n as u64;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.out.flush()
        }
    }
    let mut counting = Counting { out, bytes: 0 };
    let schema = super::extract::schema_of(&columns);
    let ipc = |e: arrow_schema::ArrowError| RemoteError::Source(ConnectorError::Source(format!("Arrow IPC: {e}")));
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut counting, &schema).map_err(ipc)?;
    let mut too_large = false;
    let rows = super::extract::for_each_batch(&mut client, sql, &columns, 65_536, |batch| {
        writer.write(&batch).map_err(|e| ConnectorError::Source(format!("Arrow IPC: {e}")))?;
        if writer.get_ref().bytes > max_bytes {
            too_large = true;
            return Err(ConnectorError::Source("too large".into()));
        }
        Ok(())
    });
    if too_large {
        return Err(RemoteError::TooLarge(max_bytes as usize));
    }
    let rows = rows.map_err(|e| match e {
        ConnectorError::Source(m) if m.contains("57014") => RemoteError::Timeout(timeout),
        other => RemoteError::Source(other),
    })?;
    writer.finish().map_err(ipc)?;
    drop(writer);
    Ok((rows.max(0) as u64, counting.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(name: &str) -> Option<(String, String)> {
        match name {
            "flights" => Some(("public".into(), "flights".into())),
            "Big Orders" => Some(("sales".into(), "orders 2024".into())),
            _ => None,
        }
    }

    #[test]
    fn tables_are_qualified_and_ctes_left_alone() {
        let sql =
            rewrite("WITH f AS (SELECT * FROM Flights) SELECT count(*) FROM f JOIN \"Big Orders\" o ON true", &tables)
                .unwrap();
        assert_eq!(
            sql,
            "WITH f AS (SELECT * FROM \"public\".\"flights\") SELECT count(*) FROM f JOIN \"sales\".\"orders 2024\" o ON true"
        );
        assert_eq!(relations("SELECT * FROM flights, (SELECT 1 FROM salaries) s").unwrap().len(), 2);
    }

    #[test]
    fn refusals_say_why_without_naming_tables() {
        let refuse = |sql: &str| rewrite(sql, &tables).unwrap_err();
        assert_eq!(refuse("SELECT * FROM salaries"), Refusal::Relation);
        assert_eq!(refuse("SELECT * FROM public.flights"), Refusal::Relation, "only registry names");
        assert_eq!(refuse("SELECT * FROM pg_catalog.pg_class"), Refusal::Relation);
        assert!(matches!(refuse("SELECT pg_read_file('/etc/passwd')"), Refusal::Function(_)));
        assert!(matches!(
            refuse("SELECT query_to_xml('select * from salaries', true, true, '')"),
            Refusal::Function(_)
        ));
        assert!(matches!(refuse("SELECT set_config('statement_timeout', '0', true)"), Refusal::Function(_)));
        assert!(matches!(refuse("DELETE FROM flights"), Refusal::NotSelect(_)));
        assert!(matches!(refuse("WITH d AS (DELETE FROM flights RETURNING *) SELECT * FROM d"), Refusal::NotSelect(_)));
        assert!(matches!(refuse("SELECT 1; SELECT 2"), Refusal::NotSelect(_)));
        assert!(matches!(refuse("SELECT * INTO copy FROM flights"), Refusal::NotSelect(_)));
        assert!(matches!(refuse("WITH pg_user AS (SELECT 1) SELECT * FROM pg_user"), Refusal::NotSelect(_)));
        let table = rewrite("TABLE flights", &tables);
        assert!(matches!(table, Err(Refusal::NotSelect(_) | Refusal::Invalid(_))), "{table:?}");
        assert!(matches!(refuse("SELECT * FROM dblink('x', 'select 1') AS t(a int)"), Refusal::Function(_)));
        assert!(matches!(refuse("SELEC 1"), Refusal::Invalid(_)));
        assert!(rewrite("SELECT x FROM generate_series(1, 3) AS g(x)", &tables).is_ok());
        assert!(rewrite("SELECT date_trunc('month', time_hour), count(*) FROM flights GROUP BY 1", &tables).is_ok());
    }

    #[test]
    fn scans_take_one_expression_and_column_names() {
        let q = ("public", "flights");
        let sql = scan_sql(
            "flights",
            q,
            &["carrier".into(), "dep_delay".into()],
            Some("dep_delay > 60 AND origin = 'JFK'"),
            &["dep_delay desc".into()],
            Some(10),
        )
        .unwrap();
        assert_eq!(
            sql,
            "SELECT \"carrier\", \"dep_delay\" FROM \"public\".\"flights\" WHERE dep_delay > 60 AND origin = 'JFK' ORDER BY \"dep_delay\" DESC LIMIT 10"
        );
        let refuse = |w: &str| scan_sql("flights", q, &[], Some(w), &[], None).unwrap_err();
        assert!(matches!(refuse("true) UNION SELECT * FROM salaries --"), Refusal::NotSelect(_) | Refusal::Invalid(_)));
        assert_eq!(refuse("carrier IN (SELECT name FROM salaries)"), Refusal::Relation);
        assert!(matches!(refuse("pg_read_file('/etc/passwd') <> ''"), Refusal::Function(_)));
        assert!(matches!(refuse("true; DROP TABLE flights"), Refusal::NotSelect(_) | Refusal::Invalid(_)));
        let evil_column = scan_sql("flights", q, &["x\" FROM salaries --".into()], None, &[], None).unwrap();
        assert!(
            evil_column.starts_with("SELECT \"x\"\" FROM salaries --\" FROM"),
            "a column name stays a name: {evil_column}"
        );
    }
}
