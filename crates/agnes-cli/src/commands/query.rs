//! `agnes query` (spec §4.3): SQL on the workspace's DuckDB, read-only, or with
//! `--remote` in the caller's sandbox on the server (`POST /api/query`).

use crate::client::workspace::Workspace;
use agnes_core::api::{QueryRequest, QueryResponse};
use agnes_engine::local::QueryOutput;
use agnes_engine::values::{to_json, to_text};
use anyhow::{bail, Context};
use serde_json::{Map, Value};
use std::io::{IsTerminal, Read};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(clap::Args)]
pub struct QueryArgs {
    /// The SQL to run (or use --sql / --stdin).
    sql: Option<String>,
    #[arg(long = "sql", conflicts_with = "sql")]
    sql_flag: Option<String>,
    /// Read `{"sql": "…"}` from standard input, with hybrid parts if any:
    /// `{"sql": "…", "register_bq": {"NAME": "SQL"}, "register": {"NAME": "SOURCE:SQL"}}`.
    #[arg(long)]
    stdin: bool,
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// At most this many rows.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Run on the server, over every table you may read there (nothing is pulled).
    #[arg(long)]
    remote: bool,
    /// Run BigQuery SQL on the server first (through its gate, dry run and caps) and use
    /// the result here as the view NAME. Repeatable.
    #[arg(long = "register-bq", value_name = "NAME=SQL")]
    register_bq: Vec<String>,
    /// The same for any remote source: NAME=SOURCE:SQL (e.g. crm=postgres_crm:SELECT …).
    #[arg(long = "register", value_name = "NAME=SOURCE:SQL")]
    register: Vec<String>,
    /// At most this many rows per remote part; a part with more is refused, not cut.
    #[arg(long, default_value_t = 100_000)]
    part_limit: usize,
}

/// What `--stdin` reads.
#[derive(serde::Deserialize)]
struct StdinQuery {
    sql: String,
    #[serde(default)]
    register_bq: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    register: std::collections::BTreeMap<String, String>,
}

/// The SQL, and the hybrid parts (`NAME=SQL` for BigQuery, `NAME=SOURCE:SQL`) if any.
fn sql_of(args: &QueryArgs) -> anyhow::Result<(String, Vec<super::hybrid::Part>)> {
    let sources = [args.sql.is_some(), args.sql_flag.is_some(), args.stdin].iter().filter(|x| **x).count();
    if sources != 1 {
        bail!("give the SQL exactly one way: as an argument, with --sql, or with --stdin");
    }
    let (mut register_bq, mut register) = (args.register_bq.clone(), args.register.clone());
    let sql = if args.stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        let q: StdinQuery = serde_json::from_str(&text).context(
            "--stdin expects JSON like {\"sql\": \"SELECT 1\"} (hybrid: with \"register_bq\": {\"NAME\": \"SQL\"})",
        )?;
        register_bq.extend(q.register_bq.into_iter().map(|(n, sql)| format!("{n}={sql}")));
        register.extend(q.register.into_iter().map(|(n, spec)| format!("{n}={spec}")));
        q.sql
    } else {
        args.sql.clone().or_else(|| args.sql_flag.clone()).unwrap_or_default()
    };
    Ok((sql, super::hybrid::parse(&register_bq, &register)?))
}

pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    // A malformed request is bad usage, exit 2 as clap's own refusals.
    let (sql, parts) = sql_of(&args).map_err(|e| crate::exit::Coded::wrap(2, e))?;
    let out = match (parts.is_empty(), args.remote) {
        (true, true) => remote(&sql, args.limit).await?,
        (true, false) => local(sql, args.limit).await?,
        (false, true) => super::hybrid::remote(&parts, sql, args.limit).await?,
        (false, false) => super::hybrid::local(&parts, sql, args.limit, args.part_limit).await?,
    };
    match args.format {
        Format::Json => crate::client::output::json(&Value::Array(as_objects(&out))),
        Format::Csv => print!("{}", to_csv(&out)),
        Format::Table => print_table(&out),
    }
    if out.truncated {
        eprintln!("(truncated at {} rows)", out.rows.len());
    }
    Ok(())
}

/// `POST /api/query`; an error answer is shown in full (typed details, hint) and exits 1.
async fn remote(sql: &str, limit: usize) -> anyhow::Result<QueryOutput> {
    use crate::client::api::{render_error, Api, ApiFailure};
    let api = Api::from_config();
    if !api.has_token() {
        return Err(ApiFailure::NotLoggedIn.into());
    }
    let body = serde_json::to_value(QueryRequest { sql: sql.to_string(), limit: Some(limit as i64), source: None })?;
    let answer = match api.call(reqwest::Method::POST, "/api/query", Some(body)).await {
        Ok(v) => v,
        Err(ApiFailure::Http { status, detail, .. }) => bail!("{}", render_error(status, &detail)),
        Err(e) => return Err(e.into()),
    };
    output_of(answer)
}

/// A `QueryResponse` from the server as local output.
pub fn output_of(answer: Value) -> anyhow::Result<QueryOutput> {
    let shown = answer.to_string().chars().take(200).collect::<String>();
    let Ok(answer) = serde_json::from_value::<QueryResponse>(answer) else {
        bail!("the server's answer has no columns and rows: {shown}")
    };
    let rows = answer.rows.iter().map(|r| r.iter().map(from_json).collect()).collect();
    Ok(QueryOutput { columns: answer.columns, rows, truncated: answer.truncated })
}

/// A JSON value from the server as a value the formatters show the same way.
fn from_json(v: &Value) -> agnes_engine::duckdb::types::Value {
    use agnes_engine::duckdb::types::Value as V;
    match v {
        Value::Null => V::Null,
        Value::Bool(b) => V::Boolean(*b),
        Value::Number(n) => n.as_i64().map(V::BigInt).or_else(|| n.as_f64().map(V::Double)).unwrap_or(V::Null),
        Value::String(s) => V::Text(s.clone()),
        other => V::Text(other.to_string()),
    }
}

async fn local(sql: String, limit: usize) -> anyhow::Result<QueryOutput> {
    let ws = Workspace::current()?;
    let db = ws.duckdb();
    if !db.is_file() {
        bail!("Local DuckDB not found at {}. Run: agnes pull", db.display());
    }
    let db2 = db.clone();
    let result = tokio::task::spawn_blocking(move || agnes_engine::local::query(&db2, &sql, limit)).await?;
    result.or_else(|e| {
        let message = e.to_string();
        let hint = missing_table_hint(&db, &message);
        bail!("Query error: {message}{}", hint.map(|h| format!("\nhint: {h}")).unwrap_or_default())
    })
}

fn as_objects(out: &QueryOutput) -> Vec<Value> {
    out.rows
        .iter()
        .map(|r| Value::Object(out.columns.iter().cloned().zip(r.iter().map(to_json)).collect::<Map<_, _>>()))
        .collect()
}

/// RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled; CRLF.
pub fn to_csv(out: &QueryOutput) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let mut text = out.columns.iter().map(|c| field(c)).collect::<Vec<_>>().join(",");
    text.push_str("\r\n");
    for r in &out.rows {
        text.push_str(&r.iter().map(|v| field(&to_text(v))).collect::<Vec<_>>().join(","));
        text.push_str("\r\n");
    }
    text
}

fn print_table(out: &QueryOutput) {
    let width = terminal_width();
    if out.columns.len() * 6 > width {
        // Too many columns to read side by side: one block per row.
        for (i, r) in out.rows.iter().enumerate() {
            println!("─── row {} ───", i + 1);
            let pad = out.columns.iter().map(|c| c.chars().count()).max().unwrap_or(0);
            for (c, v) in out.columns.iter().zip(r) {
                println!("{c:>pad$}: {}", display(v));
            }
        }
        return;
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_width(width as u16);
    t.set_header(&out.columns);
    for r in &out.rows {
        t.add_row(r.iter().map(display));
    }
    println!("{t}");
    println!("({} row{})", out.rows.len(), if out.rows.len() == 1 { "" } else { "s" });
}

fn display(v: &agnes_engine::duckdb::types::Value) -> String {
    match v {
        agnes_engine::duckdb::types::Value::Null => "NULL".into(),
        other => to_text(other),
    }
}

fn terminal_width() -> usize {
    if let Some(w) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return w;
    }
    if std::io::stdout().is_terminal() {
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
            return ws.ws_col as usize;
        }
    }
    120
}

/// For "Table with name X does not exist": the closest names, and what else it could be.
fn missing_table_hint(db: &std::path::Path, message: &str) -> Option<String> {
    let name = message
        .split("Table with name ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
    let known = agnes_engine::local::relation_names(db).unwrap_or_default();
    let mut close: Vec<(usize, &String)> =
        known.iter().map(|k| (distance(&name.to_lowercase(), &k.to_lowercase()), k)).filter(|(d, _)| *d <= 3).collect();
    close.sort();
    let mut hint = String::new();
    if !close.is_empty() {
        hint.push_str(&format!(
            "did you mean {}? ",
            close.iter().take(3).map(|(_, k)| k.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    hint.push_str(&format!("'{name}' may not be pulled yet (agnes pull), may be remote (agnes catalog; query it with --remote or a snapshot), or you may not be granted it."));
    Some(hint)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use agnes_engine::duckdb::types::Value as V;

    #[test]
    fn csv_quoting() {
        let out = QueryOutput {
            columns: vec!["a".into(), "b,c".into()],
            rows: vec![vec![V::Text("x\"y".into()), V::Null], vec![V::Int(1), V::Text("line\nbreak".into())]],
            truncated: false,
        };
        assert_eq!(to_csv(&out), "a,\"b,c\"\r\n\"x\"\"y\",\r\n1,\"line\nbreak\"\r\n");
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance("flihgts", "flights"), 2);
        assert_eq!(distance("", "abc"), 3);
    }
}
