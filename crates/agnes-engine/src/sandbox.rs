//! The query sandbox (DESIGN decision 7): a caller's SQL runs in a DuckDB instance that
//! can reach only the tables that caller may read.
//!
//! Safety comes from how the instance is built, not from reading the SQL: its catalog
//! holds one view per granted table and nothing else; DuckDB may open exactly those
//! tables' parquet files (`allowed_paths`, `allowed_directories` for partitioned tables)
//! and no other file, URL or extension; the configuration is locked. A reference to
//! anything else fails inside DuckDB, whatever its spelling.
//!
//! On top of that: the text must be exactly one query statement, as DuckDB's own parser
//! sees it (`json_serialize_sql` serializes only SELECT-type statements and lists each
//! statement it found); a watchdog interrupts a query at its time limit; memory, threads
//! and spill space are capped per instance; rows and result bytes are capped per query.

use crate::local::{collect, QueryOutput};
use crate::table_data::{absolute, TableData};
use crate::{EngineError, Result};
use agnes_core::ident::{quote_ident, quote_literal};
use duckdb::Connection;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// One table a sandbox shows, under the name callers use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SandboxTable {
    pub name: String,
    pub data: TableData,
}

/// The limits every query in a sandbox runs under.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    pub timeout: Duration,
    /// DuckDB `memory_limit` of the instance, e.g. `"1GB"`.
    pub memory_limit: String,
    pub threads: usize,
    /// Spill directory and how much it may hold (`max_temp_directory_size`).
    pub temp_directory: Option<PathBuf>,
    pub max_temp_size: String,
    /// Largest result a query may answer, in bytes (JSON text or Arrow IPC).
    pub max_result_bytes: usize,
    /// Where the catalogs of views are kept (see [`catalog_file`]); without one, each
    /// sandbox binds its views itself.
    pub catalog_dir: Option<PathBuf>,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            timeout: Duration::from_secs(30),
            memory_limit: "1GB".into(),
            threads: 2,
            temp_directory: None,
            max_temp_size: "2GB".into(),
            max_result_bytes: 64 << 20,
            catalog_dir: None,
        }
    }
}

/// A confined DuckDB instance with views of a fixed set of tables. Queries run on clones
/// of one connection, so any number may run at once. Finished connections wait in `idle`
/// for the next query, with the statements they prepared: planning a statement again
/// costs more than running a point query.
pub struct Sandbox {
    id: u64,
    base: Mutex<Connection>,
    idle: Mutex<Vec<Connection>>,
    limits: SandboxLimits,
    /// Whether the views live in an attached catalog, which each new connection must `USE`.
    attached: bool,
}

/// Idle connections kept per sandbox, the statements each keeps prepared, and the largest
/// answer after which a connection is kept (see [`Sandbox::run`]).
const IDLE_CONNECTIONS: usize = 4;
const STATEMENTS_PER_CONNECTION: usize = 8;
const SMALL_ANSWER: usize = 64 << 10;

/// A query's result as an Arrow IPC stream.
pub struct ArrowOutput {
    pub ipc: Vec<u8>,
    pub rows: usize,
    pub truncated: bool,
}

impl Sandbox {
    pub fn open(tables: &[SandboxTable], limits: &SandboxLimits) -> Result<Sandbox> {
        let conn = fresh_instance(limits)?;
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        for t in tables {
            match &t.data {
                TableData::File(p) => files.push(quote_literal(&absolute(p)?)),
                TableData::Parts(d) | TableData::Layered { dir: d, .. } => {
                    dirs.push(quote_literal(&format!("{}/", absolute(d)?)))
                }
            }
        }
        // The order matters: DuckDB accepts allowed paths, and attaches the catalog, only
        // while external access is on.
        conn.execute_batch(&format!(
            "SET allowed_paths = [{}]; SET allowed_directories = [{}];",
            files.join(", "),
            dirs.join(", "),
        ))?;
        let attached = match &limits.catalog_dir {
            Some(dir) => {
                attach_catalog(&conn, dir, tables)?;
                true
            }
            None => false,
        };
        conn.execute_batch("SET enable_external_access = false;")?;
        if !attached {
            conn.execute_batch(&views_sql(tables)?)?;
        }
        conn.execute_batch("SET lock_configuration = true;")?;
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Sandbox { id, base: Mutex::new(conn), idle: Mutex::default(), limits: limits.clone(), attached })
    }

    /// Unique in this process: a key for anything derived from this sandbox's data.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Run `sql` and keep at most `limit` rows as values.
    pub fn query(&self, sql: &str, limit: usize) -> Result<QueryOutput> {
        let cap = self.limits.max_result_bytes;
        self.run(sql, limit, |conn, wrapped| {
            let mut bytes = 0usize;
            let out = collect(conn, wrapped, limit, |values| {
                bytes += values.iter().map(crate::values::approximate_json_len).sum::<usize>() + values.len() + 2;
                if bytes > cap {
                    return Err(EngineError::ResultTooLarge { limit_bytes: cap });
                }
                Ok(())
            })?;
            Ok((out, bytes))
        })
    }

    /// Run `sql` and answer at most `limit` rows as an Arrow IPC stream.
    pub fn query_arrow(&self, sql: &str, limit: usize) -> Result<ArrowOutput> {
        self.run(sql, limit, |conn, wrapped| {
            let mut stmt = conn.prepare_cached(wrapped)?;
            let batches: Vec<_> = stmt.query_arrow([])?.collect();
            let schema = stmt.schema();
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema).map_err(arrow_error)?;
            let (mut rows, mut truncated) = (0usize, false);
            for batch in batches {
                let keep = batch.num_rows().min(limit - rows);
                if keep < batch.num_rows() {
                    truncated = true;
                }
                if keep > 0 {
                    writer.write(&batch.slice(0, keep)).map_err(arrow_error)?;
                    rows += keep;
                }
                if writer.get_ref().len() > self.limits.max_result_bytes {
                    return Err(EngineError::ResultTooLarge { limit_bytes: self.limits.max_result_bytes });
                }
            }
            writer.finish().map_err(arrow_error)?;
            let ipc = writer.into_inner().map_err(arrow_error)?;
            let size = ipc.len();
            Ok((ArrowOutput { ipc, rows, truncated }, size))
        })
    }

    /// Check `sql`, wrap it so at most `limit + 1` rows are produced, and run `f` under the
    /// time limit on an idle connection or a new one. `f` answers its result and its size.
    ///
    /// A prepared statement keeps its last result in the instance's memory until it runs
    /// again, so a connection goes back to `idle` only after a small answer; after a large
    /// one, an error or an interrupt it is closed, which frees everything it held.
    fn run<T>(&self, sql: &str, limit: usize, f: impl FnOnce(&Connection, &str) -> Result<(T, usize)>) -> Result<T> {
        let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = self.connection()?;
                c.set_prepared_statement_cache_capacity(STATEMENTS_PER_CONNECTION);
                c
            }
        };
        check_remembered(&conn, sql)?;
        // The newline ends a trailing `--` comment before the closing parenthesis.
        let wrapped = format!("SELECT * FROM (\n{}\n) LIMIT {}", without_terminator(sql), limit.saturating_add(1));
        let (result, interrupted) = watched(&conn, self.limits.timeout, |conn| f(conn, &wrapped));
        match result {
            Ok((out, size)) => {
                if !interrupted && size <= SMALL_ANSWER {
                    let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                    if idle.len() < IDLE_CONNECTIONS {
                        idle.push(conn);
                    }
                }
                Ok(out)
            }
            Err(e) => Err(e),
        }
    }

    /// A new connection to the instance; queries on separate connections run side by side.
    pub(crate) fn connection(&self) -> Result<Connection> {
        let conn = self.base.lock().unwrap_or_else(|e| e.into_inner()).try_clone()?;
        if self.attached {
            conn.execute_batch(&format!("USE {CATALOG};"))?;
        }
        Ok(conn)
    }

    pub(crate) fn limits(&self) -> &SandboxLimits {
        &self.limits
    }
}

/// One view per table, all in one transaction. Creating a view binds it, which reads the
/// parquet footer, and registers it in the catalog: about half a millisecond each.
/// (Splitting the views over several connections was measured no faster: DuckDB
/// serializes catalog changes.)
fn views_sql(tables: &[SandboxTable]) -> Result<String> {
    let mut sql = String::from("BEGIN TRANSACTION;");
    for t in tables {
        sql.push_str(&format!("CREATE VIEW {} AS {};", quote_ident(&t.name), t.data.select_sql()?));
    }
    sql.push_str("COMMIT;");
    Ok(sql)
}

/// The name the attached catalog of views goes by in a sandbox.
const CATALOG: &str = "granted";

/// Attach to `conn`, read-only, the catalog of views of `tables`: a DuckDB file under `dir`
/// named by the hash of its views' SQL, built in `conn` the first time that set of names
/// and files is asked for. Attaching loads the views as stored, without binding them
/// again, which is most of what setting up a sandbox costs. The views name files, not
/// contents, so a sync does not call for a new catalog, and DuckDB binds a view again
/// when it is queried, so a changed schema shows.
///
/// The file appears by rename once it is complete. It is not fsynced: the directory is a
/// cache the server empties when it starts ([`clear_catalogs`]), so a crash cannot leave a
/// torn catalog behind for later.
fn attach_catalog(conn: &Connection, dir: &Path, tables: &[SandboxTable]) -> Result<()> {
    let sql = views_sql(tables)?;
    let target = dir.join(format!("views-{:032x}.duckdb", xxhash_rust::xxh3::xxh3_128(sql.as_bytes())));
    if !target.is_file() {
        std::fs::create_dir_all(dir).map_err(EngineError::io("create", dir))?;
        let tmp = crate::fsutil::temp_path_for(&target);
        let built = conn
            .execute_batch(&format!(
                "ATTACH {} AS {CATALOG}; USE {CATALOG}; {sql} CHECKPOINT; USE memory; DETACH {CATALOG};",
                quote_literal(&absolute(&tmp)?)
            ))
            .map_err(EngineError::from)
            .and_then(|()| std::fs::rename(&tmp, &target).map_err(EngineError::io("rename into place", &target)));
        if let Err(e) = built {
            let _ = conn.execute_batch(&format!("USE memory; DETACH DATABASE IF EXISTS {CATALOG};"));
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(tmp.with_extension("tmp.wal"));
            return Err(e);
        }
    }
    conn.execute_batch(&format!(
        "ATTACH {} AS {CATALOG} (READ_ONLY); USE {CATALOG};",
        quote_literal(&absolute(&target)?)
    ))?;
    Ok(())
}

/// Empty the catalog cache of [`attach_catalog`]: at start-up, so no catalog outlives the
/// process that wrote it.
pub fn clear_catalogs(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(EngineError::io("remove", dir)(e)),
        _ => Ok(()),
    }
}

/// Run `f` on `conn`, interrupting it at `timeout`: an error after the interrupt is a
/// [`EngineError::Timeout`].
pub(crate) fn guarded<T>(conn: &Connection, timeout: Duration, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    watched(conn, timeout, f).0
}

/// [`guarded`], also saying whether the interrupt was sent (even if `f` finished first).
fn watched<T>(conn: &Connection, timeout: Duration, f: impl FnOnce(&Connection) -> Result<T>) -> (Result<T>, bool) {
    let ticket = crate::watchdog::arm(timeout, conn.interrupt_handle());
    let result = f(conn);
    let fired = ticket.disarm();
    match result {
        Err(_) if fired => (Err(EngineError::Timeout { seconds: timeout.as_secs_f64() }), true),
        other => (other, fired),
    }
}

/// An in-memory DuckDB with the instance limits set and nothing else yet. Starting an
/// instance takes about 15 ms, most of a sandbox's set-up, so one is kept ready: taking it
/// starts the next in the background.
fn fresh_instance(limits: &SandboxLimits) -> Result<Connection> {
    static SPARE: Mutex<Option<(String, Connection)>> = Mutex::new(None);
    static EXIT_HOOK: std::sync::Once = std::sync::Once::new();
    EXIT_HOOK.call_once(|| {
        // At exit, C++ static destructors and atexit handlers run in reverse order of
        // registration. Building one instance first creates the statics a build touches
        // (ICU's time-zone table among them), so the handler registered after them runs
        // before they are destroyed, while a spare build may still be reading them.
        drop(new_instance(limits));
        // SAFETY: registers a plain function with no arguments, as atexit requires.
        unsafe { libc::atexit(wait_for_spare) };
    });
    let key = format!("{limits:?}");
    let spare = SPARE.lock().unwrap_or_else(|e| e.into_inner()).take();
    let next = limits.clone();
    std::thread::spawn(move || {
        let exiting = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
        if *exiting {
            return;
        }
        if let Ok(conn) = new_instance(&next) {
            *SPARE.lock().unwrap_or_else(|e| e.into_inner()) = Some((format!("{next:?}"), conn));
        }
    });
    match spare {
        Some((k, conn)) if k == key => Ok(conn),
        _ => new_instance(limits),
    }
}

/// Held while a spare instance is built; `true` once the process is exiting. DuckDB's own
/// static destructors run at exit, and a build in flight at that moment crashed the
/// process, so an exit handler waits for the build and stops any further one.
static BUILDING: Mutex<bool> = Mutex::new(false);

extern "C" fn wait_for_spare() {
    *BUILDING.lock().unwrap_or_else(|e| e.into_inner()) = true;
}

fn new_instance(limits: &SandboxLimits) -> Result<Connection> {
    let conn = crate::duck::open_in_memory()?;
    let mut setup = format!(
        "SET memory_limit = {}; SET threads = {}; SET max_temp_directory_size = {}; \
         SET parquet_metadata_cache = true; SET GLOBAL TimeZone = 'UTC';",
        quote_literal(&limits.memory_limit),
        limits.threads.max(1),
        quote_literal(&limits.max_temp_size),
    );
    if let Some(dir) = &limits.temp_directory {
        setup.push_str(&format!(" SET temp_directory = {};", quote_literal(&dir.to_string_lossy())));
    }
    conn.execute_batch(&setup)?;
    Ok(conn)
}

fn arrow_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("cannot encode the result as Arrow IPC: {e}"))
}

/// The statement without its terminating `;` (and anything after it), so it can be
/// wrapped. Called only on text DuckDB parsed as exactly one statement, so the first `;`
/// outside strings, quoted names and comments ends it. A misreading here could only make
/// the wrapped query fail to parse: the sandbox, not this function, is what confines it.
fn without_terminator(sql: &str) -> &str {
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b';' => return &sql[..i],
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != quote {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'$' => {
                // A dollar-quoted string: `$tag$ … $tag$`.
                if let Some(len) = sql[i + 1..]
                    .find('$')
                    .filter(|n| sql[i + 1..i + 1 + n].bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'))
                {
                    let tag = &sql[i..i + len + 2];
                    match sql[i + tag.len()..].find(tag) {
                        Some(end) => i += tag.len() + end + tag.len() - 1,
                        None => return sql,
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    sql
}

/// Functions (and keywords parsed as names) whose value changes from one run to the next.
const VOLATILE: &[&str] = &[
    "random",
    "setseed",
    "uuid",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "now",
    "today",
    "current_date",
    "current_time",
    "current_timestamp",
    "get_current_time",
    "get_current_timestamp",
    "transaction_timestamp",
    "localtime",
    "localtimestamp",
    "current_localtime",
    "current_localtimestamp",
    "nextval",
    "currval",
];

/// Whether a parsed statement gives the same answer every time over the same data: no
/// volatile function and no sampling.
fn repeatable(tree: &serde_json::Value) -> bool {
    use serde_json::Value;
    let volatile = |v: &Value| v.as_str().is_some_and(|n| VOLATILE.contains(&n.to_ascii_lowercase().as_str()));
    match tree {
        Value::Array(items) => items.iter().all(repeatable),
        Value::Object(map) => map.iter().all(|(k, v)| match k.as_str() {
            "function_name" => !volatile(v),
            "column_names" => !v.as_array().is_some_and(|names| names.iter().any(volatile)),
            "sample" if !v.is_null() => false,
            _ => repeatable(v),
        }),
        _ => true,
    }
}

/// What the statement check concluded about one text: refused (why), or allowed and
/// whether its answer may be reused.
type Verdict = std::result::Result<bool, String>;

static VERDICTS: Mutex<Option<std::collections::HashMap<String, Verdict>>> = Mutex::new(None);

/// [`check_single_query`], remembering verdicts: the check is a pure function of the text,
/// and agents send the same statements again and again.
fn check_remembered(conn: &Connection, sql: &str) -> Result<()> {
    const ENTRIES: usize = 4096;
    const LONGEST: usize = 8192;
    if sql.len() > LONGEST {
        return check_single_query(conn, sql).map(|_| ());
    }
    if let Some(verdict) = VERDICTS.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|m| m.get(sql)) {
        return verdict.clone().map(|_| ()).map_err(EngineError::NotAllowed);
    }
    let verdict = match check_single_query(conn, sql) {
        Ok(repeatable) => Ok(repeatable),
        Err(EngineError::NotAllowed(m)) => Err(m),
        Err(other) => return Err(other),
    };
    let mut guard = VERDICTS.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(Default::default);
    if map.len() >= ENTRIES {
        map.clear();
    }
    map.insert(sql.to_string(), verdict.clone());
    verdict.map(|_| ()).map_err(EngineError::NotAllowed)
}

/// Whether `sql`, already checked, answers the same every time over the same data, so
/// its result may be kept for the next identical query.
pub fn is_repeatable(sql: &str) -> bool {
    VERDICTS.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|m| m.get(sql)).is_some_and(|v| v == &Ok(true))
}

/// Refuse anything but exactly one query statement, as DuckDB's parser sees the text;
/// answer whether that statement is [`repeatable`].
pub fn check_single_query(conn: &Connection, sql: &str) -> Result<bool> {
    let text: String = conn.query_row("SELECT json_serialize_sql(?::VARCHAR)", [sql], |r| r.get(0))?;
    let parsed: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| EngineError::Invalid(format!("cannot read the parse tree: {e}")))?;
    if parsed["error"].as_bool() == Some(true) {
        let message = parsed["error_message"].as_str().unwrap_or_default();
        return Err(if message.starts_with("Only SELECT") {
            EngineError::NotAllowed("Only single SELECT queries are allowed".into())
        } else {
            EngineError::InvalidSql(message.to_string())
        });
    }
    match parsed["statements"].as_array().map(Vec::len) {
        Some(1) => Ok(repeatable(&parsed["statements"])),
        Some(0) => Err(EngineError::NotAllowed("Query must start with SELECT or WITH".into())),
        _ => Err(EngineError::NotAllowed("Only single SELECT queries are allowed".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duckdb::types::Value;

    fn parquet(dir: &std::path::Path, name: &str, sql: &str) -> PathBuf {
        let p = dir.join(format!("{name}.parquet"));
        let c = crate::duck::open_in_memory().unwrap();
        c.execute_batch(&format!("COPY ({sql}) TO '{}'", p.display())).unwrap();
        p
    }

    fn fixture() -> (tempfile::TempDir, Sandbox) {
        let dir = tempfile::tempdir().unwrap();
        let a = parquet(dir.path(), "a", "SELECT range AS id, 'x' || range AS s FROM range(10)");
        parquet(dir.path(), "secret", "SELECT 42 AS answer");
        let parts = dir.path().join("p");
        std::fs::create_dir_all(&parts).unwrap();
        parquet(&parts, "2024_01", "SELECT 1 AS m");
        parquet(&parts, "2024_02", "SELECT 2 AS m");
        let tables = vec![
            SandboxTable { name: "a".into(), data: TableData::File(a) },
            SandboxTable { name: "p".into(), data: TableData::Parts(parts) },
        ];
        // The server's way: the views in a kept catalog file.
        let limits = SandboxLimits {
            timeout: Duration::from_millis(500),
            catalog_dir: Some(dir.path().join("catalogs")),
            ..Default::default()
        };
        let sandbox = Sandbox::open(&tables, &limits).unwrap();
        (dir, sandbox)
    }

    fn names(sb: &Sandbox, sql: &str) -> Vec<String> {
        sb.query(sql, 100).unwrap().rows.iter().map(|r| format!("{:?}", r[0])).collect()
    }

    #[test]
    fn a_kept_catalog_serves_later_sandboxes_and_shows_schema_changes() {
        let dir = tempfile::tempdir().unwrap();
        let a = parquet(dir.path(), "a", "SELECT 1 AS id");
        let secret = parquet(dir.path(), "secret", "SELECT 42 AS answer");
        let tables = vec![SandboxTable { name: "a".into(), data: TableData::File(a) }];
        let catalogs = dir.path().join("catalogs");
        let limits = SandboxLimits { catalog_dir: Some(catalogs.clone()), ..Default::default() };
        let count = || std::fs::read_dir(&catalogs).unwrap().count();
        let first = Sandbox::open(&tables, &limits).unwrap();
        assert_eq!(first.query("SELECT * FROM a", 10).unwrap().columns, ["id"]);
        assert_eq!(count(), 1, "one catalog file, nothing temporary left");
        parquet(dir.path(), "a", "SELECT 2 AS id, 'x' AS extra");
        let second = Sandbox::open(&tables, &limits).unwrap();
        assert_eq!(count(), 1, "the same names and files reuse the catalog");
        let out = second.query("SELECT * FROM a", 10).unwrap();
        assert_eq!(
            (out.columns.as_slice(), &out.rows[0][0]),
            (&["id".to_string(), "extra".to_string()][..], &Value::Int(2))
        );
        assert_eq!(names(&second, "SELECT table_name FROM information_schema.tables"), [r#"Text("a")"#]);
        // A connection opened later finds the views too.
        let conn = second.connection().unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM a", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
        let path = quote_literal(&secret.display().to_string());
        for sql in [format!("SELECT * FROM read_parquet({path})"), "SELECT * FROM memory.main.a".into()] {
            assert!(second.query(&sql, 10).is_err(), "{sql}");
        }
        let other = vec![SandboxTable { name: "b".into(), data: TableData::File(secret) }];
        Sandbox::open(&other, &limits).unwrap();
        assert_eq!(count(), 2, "another set of tables has its own catalog");
        clear_catalogs(&catalogs).unwrap();
        assert!(!catalogs.exists());
        clear_catalogs(&catalogs).unwrap();
        assert_eq!(names(&Sandbox::open(&tables, &limits).unwrap(), "SELECT id FROM a"), ["Int(2)"], "built again");
    }

    #[test]
    fn views_bound_in_the_instance_answer_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let a = parquet(dir.path(), "a", "SELECT range AS id FROM range(3)");
        let tables = vec![SandboxTable { name: "a".into(), data: TableData::File(a) }];
        let sb = Sandbox::open(&tables, &SandboxLimits::default()).unwrap();
        assert_eq!(names(&sb, "SELECT count(*) FROM a"), ["BigInt(3)"]);
        assert_eq!(names(&sb, "SELECT table_name FROM information_schema.tables"), [r#"Text("a")"#]);
    }

    #[test]
    fn granted_tables_answer_and_rows_are_capped() {
        let (_dir, sb) = fixture();
        let out = sb.query("SELECT id FROM a ORDER BY id", 3).unwrap();
        assert_eq!(out.rows, vec![vec![Value::BigInt(0)], vec![Value::BigInt(1)], vec![Value::BigInt(2)]]);
        assert!(out.truncated);
        let out = sb.query("SELECT sum(m) AS total FROM p -- parts", 10).unwrap();
        assert_eq!(
            (out.columns, out.rows, out.truncated),
            (vec!["total".into()], vec![vec![Value::HugeInt(3)]], false)
        );
        let arrow = sb.query_arrow("FROM a", 4).unwrap();
        assert_eq!((arrow.rows, arrow.truncated), (4, true));
        assert_eq!(&arrow.ipc[..4], &[0xff, 0xff, 0xff, 0xff], "an IPC stream starts with a continuation marker");
    }

    #[test]
    fn everything_else_fails_inside_duckdb() {
        let (dir, sb) = fixture();
        let secret = dir.path().join("secret.parquet");
        for (sql, code) in [
            (format!("SELECT * FROM read_parquet('{}')", secret.display()), "file_access_denied"),
            (format!("SELECT * FROM '{}'", secret.display()), "file_access_denied"),
            ("SELECT * FROM read_text('/etc/passwd')".into(), "file_access_denied"),
            (format!("SELECT * FROM glob('{}/*')", dir.path().display()), "file_access_denied"),
            ("SELECT * FROM secret".into(), "table_not_found"),
            ("SELECT * FROM query('ATTACH '':memory:'' AS m')".into(), "invalid_sql"),
        ] {
            let err = sb.query(&sql, 10).expect_err(&sql);
            assert_eq!(err.code(), code, "{sql}: {err}");
        }
    }

    #[test]
    fn only_one_query_statement_passes() {
        let (_dir, sb) = fixture();
        for sql in ["SELECT 1; SELECT 2", "CREATE TABLE t AS SELECT 1", "SET threads = 8", "ATTACH ':memory:' AS m", ""]
        {
            assert!(matches!(sb.query(sql, 10), Err(EngineError::NotAllowed(_))), "must be refused: {sql:?}");
        }
        for sql in ["FROM a", "TABLE a", "VALUES (1)", "WITH x AS (SELECT 1 AS v) SELECT v FROM x", "SELECT 1 -- c"] {
            assert!(sb.query(sql, 10).is_ok(), "must run: {sql}");
        }
    }

    #[test]
    fn volatile_statements_are_not_repeatable() {
        let (_dir, sb) = fixture();
        for (sql, want) in [
            ("SELECT count(*) FROM a", true),
            ("SELECT id FROM a WHERE s = 'random'", true),
            ("SELECT random() FROM a", false),
            ("SELECT CURRENT_DATE", false),
            ("SELECT * FROM a USING SAMPLE 50%", false),
            ("WITH x AS (SELECT now() AS t) SELECT t FROM x", false),
        ] {
            // CURRENT_DATE needs ICU, which is not built in: the verdict is reached before running.
            let _ = sb.query(sql, 10);
            assert_eq!(is_repeatable(sql), want, "{sql}");
        }
        assert!(!is_repeatable("SELECT 'never checked'"));
    }

    #[test]
    fn the_terminator_is_found_outside_strings_names_and_comments() {
        for (sql, want) in [
            ("SELECT 1", "SELECT 1"),
            ("SELECT 1;", "SELECT 1"),
            ("SELECT 1; -- done", "SELECT 1"),
            ("SELECT ';' AS s;", "SELECT ';' AS s"),
            ("SELECT 'it''s;' AS s;;", "SELECT 'it''s;' AS s"),
            ("SELECT 1 AS \"a;b\" /* ; */;", "SELECT 1 AS \"a;b\" /* ; */"),
            ("SELECT 1 -- ;\n;", "SELECT 1 -- ;\n"),
            ("SELECT $x$;$x$ AS s;", "SELECT $x$;$x$ AS s"),
        ] {
            assert_eq!(without_terminator(sql), want, "{sql}");
        }
    }

    #[test]
    fn a_runaway_query_is_interrupted_at_its_limit() {
        let (_dir, sb) = fixture();
        let started = std::time::Instant::now();
        let err = sb
            .query("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r", 10)
            .unwrap_err();
        assert!(matches!(err, EngineError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10), "stopped soon after its limit");
    }

    #[test]
    fn an_oversized_result_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let limits = SandboxLimits { max_result_bytes: 1000, ..Default::default() };
        let sb = Sandbox::open(&[], &limits).unwrap();
        let err = sb.query("SELECT repeat('x', 100) AS s FROM range(100)", 1000).unwrap_err();
        assert!(matches!(err, EngineError::ResultTooLarge { limit_bytes: 1000 }), "{err}");
        let err = sb.query_arrow("SELECT repeat('x', 100) AS s FROM range(100)", 1000).err().unwrap();
        assert!(matches!(err, EngineError::ResultTooLarge { .. }), "{err}");
        drop(dir);
    }
}
