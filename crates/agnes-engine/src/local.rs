//! The analyst's local DuckDB (`user/duckdb/analytics.duckdb`): one view per pulled table,
//! rebuilt on every pull, while snapshot views and the analyst's own tables survive
//! (the original dropped every view: spec §12 quirk 1).
//!
//! Views agnes manages are listed in `_agnes_views` with their kind (`server` for pulled
//! tables, `snapshot` for snapshots); nothing else in the file is ever touched.

use crate::table_data::TableData;
use crate::{EngineError, Result};
use agnes_core::ident::{is_strict_identifier, quote_ident, quote_literal};
use duckdb::types::Value;
use duckdb::Connection;
use std::path::Path;

const REGISTRY: &str = "CREATE TABLE IF NOT EXISTS _agnes_views (name VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, target VARCHAR NOT NULL)";

/// Replace the `server` views with one view per pulled table. A name taken by one of the
/// analyst's tables or by a snapshot is left alone and returned.
pub fn sync_server_views(db: &Path, tables: &[(String, TableData)]) -> Result<Vec<String>> {
    // A view is recorded with the SELECT it runs: the same SELECT, the same view.
    let tables: Vec<(String, String)> =
        tables.iter().map(|(n, d)| Ok((n.clone(), d.select_sql()?))).collect::<Result<_>>()?;
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir).map_err(EngineError::io("create directory", dir))?;
    }
    // A view over read_parquet('<file>') reads the file at query time, so a pull that only
    // replaced files needs no DDL at all; only added, removed or re-targeted views do.
    if db.is_file() {
        let conn = open_read_only(db)?;
        let views: Vec<String> = {
            let mut stmt = conn.prepare(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_type = 'VIEW'",
            )?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let all_views = tables.iter().all(|(n, _)| views.contains(n));
        if let Ok(current) = managed_views(&conn).map(|c| if all_views { c } else { Vec::new() }) {
            let mut wanted: Vec<(String, String, String)> =
                tables.iter().map(|(n, t)| (n.clone(), "server".to_string(), t.clone())).collect();
            wanted.sort();
            let mut servers: Vec<(String, String, String)> =
                current.iter().filter(|v| v.1 == "server").cloned().collect();
            servers.sort();
            if servers == wanted {
                return Ok(Vec::new());
            }
        }
    }
    let conn = crate::duck::open(db)?;
    conn.execute_batch(REGISTRY)?;
    let taken: Vec<(String, String)> = {
        let mut stmt = conn.prepare(
            "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'main' AND table_name <> '_agnes_views'",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    let managed = managed_views(&conn)?;
    let snapshots: Vec<&str> = managed.iter().filter(|(_, k, _)| k == "snapshot").map(|(n, _, _)| n.as_str()).collect();
    let mut sql = String::from("BEGIN TRANSACTION;");
    let is_view = |name: &str| taken.iter().any(|(t, k)| t == name && k == "VIEW");
    for (name, kind, target) in &managed {
        let unchanged = tables.iter().any(|(n, t)| n == name && t == target) && is_view(name);
        if kind == "server" && !unchanged {
            // The analyst may have replaced our view with a table of their own: keep it.
            if taken.iter().any(|(t, k)| t == name && k == "VIEW") {
                sql.push_str(&format!("DROP VIEW {};", quote_ident(name)));
            }
            sql.push_str(&format!("DELETE FROM _agnes_views WHERE name = {};", quote_literal(name)));
        }
    }
    let mut skipped = Vec::new();
    for (name, target) in &tables {
        if managed.iter().any(|(n, k, t)| n == name && k == "server" && t == target) && is_view(name) {
            continue;
        }
        let user_table = taken.iter().any(|(t, kind)| t == name && kind == "BASE TABLE");
        if !is_strict_identifier(name) || user_table || snapshots.contains(&name.as_str()) {
            skipped.push(name.clone());
            continue;
        }
        sql.push_str(&format!(
            "CREATE OR REPLACE VIEW {} AS {target}; INSERT INTO _agnes_views VALUES ({}, 'server', {});",
            quote_ident(name),
            quote_literal(name),
            quote_literal(target)
        ));
    }
    sql.push_str("COMMIT; CHECKPOINT;");
    conn.execute_batch(&sql)?;
    Ok(skipped)
}

/// Point the snapshot view `name` at `target` (a parquet file). A pulled table's view of
/// the same name gives way to it (pulls leave snapshot names alone); one of the analyst's
/// own tables or views does not.
pub fn register_snapshot(db: &Path, name: &str, target: &Path) -> Result<()> {
    if !is_strict_identifier(name) {
        return Err(EngineError::InvalidIdentifier(name.to_string()));
    }
    let conn = crate::duck::open(db)?;
    conn.execute_batch(REGISTRY)?;
    let ours = managed_views(&conn)?.into_iter().any(|(n, _, _)| n == name);
    let taken: i64 = conn.query_row(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?",
        [name],
        |r| r.get(0),
    )?;
    if taken > 0 && !ours {
        return Err(EngineError::Invalid(format!(
            "{name} is one of your own tables or views in the local DuckDB: pick another snapshot name"
        )));
    }
    let target = target.to_string_lossy();
    conn.execute_batch(&format!(
        "BEGIN TRANSACTION; CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet({path}); \
         DELETE FROM _agnes_views WHERE name = {name}; INSERT INTO _agnes_views VALUES ({name}, 'snapshot', {path}); \
         COMMIT; CHECKPOINT;",
        view = quote_ident(name),
        path = quote_literal(&target),
        name = quote_literal(name),
    ))?;
    Ok(())
}

/// Remove the snapshot view `name`, if there is one.
pub fn drop_snapshot(db: &Path, name: &str) -> Result<()> {
    if !db.is_file() {
        return Ok(());
    }
    let conn = crate::duck::open(db)?;
    if !managed_views(&conn)?.iter().any(|(n, k, _)| n == name && k == "snapshot") {
        return Ok(());
    }
    conn.execute_batch(&format!(
        "BEGIN TRANSACTION; DROP VIEW IF EXISTS {}; DELETE FROM _agnes_views WHERE name = {}; COMMIT; CHECKPOINT;",
        quote_ident(name),
        quote_literal(name)
    ))?;
    Ok(())
}

/// `(name, kind, target)` of every view agnes manages.
fn managed_views(conn: &Connection) -> Result<Vec<(String, String, String)>> {
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = '_agnes_views'",
        [],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare("SELECT name, kind, target FROM _agnes_views")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// The names of every table and view a query can use.
pub fn relation_names(db: &Path) -> Result<Vec<String>> {
    let conn = open_read_only(db)?;
    let mut stmt =
        conn.prepare("SELECT table_name FROM information_schema.tables WHERE table_name <> '_agnes_views' ORDER BY 1")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

fn open_read_only(db: &Path) -> Result<Connection> {
    Ok(crate::duck::open_read_only(db)?)
}

/// A query's result: column names, at most `limit` rows, and whether more existed.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub truncated: bool,
}

/// Run `sql` on the local DuckDB, read-only, keeping at most `limit` rows.
pub fn query(db: &Path, sql: &str, limit: usize) -> Result<QueryOutput> {
    let conn = open_read_only(db)?;
    collect(&conn, sql, limit, |_| Ok(()))
}

/// The local DuckDB opened read-only and kept: a long-lived reader (`agnes mcp`) pays the
/// opening once, and opens again when a pull replaced the file.
pub struct KeptReader {
    db: std::path::PathBuf,
    open: std::sync::Mutex<Option<(std::time::SystemTime, Connection)>>,
}

impl KeptReader {
    pub fn new(db: std::path::PathBuf) -> KeptReader {
        KeptReader { db, open: std::sync::Mutex::new(None) }
    }

    /// [`query`] on the kept connection.
    pub fn query(&self, sql: &str, limit: usize) -> Result<QueryOutput> {
        let modified =
            std::fs::metadata(&self.db).and_then(|m| m.modified()).map_err(EngineError::io("stat", &self.db))?;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.as_ref().is_none_or(|(at, _)| *at != modified) {
            *open = Some((modified, open_read_only(&self.db)?));
        }
        let (_, conn) = open.as_ref().expect("opened above");
        collect(conn, sql, limit, |_| Ok(()))
    }

    /// Let go of the database, for a writer in this process: DuckDB's file lock does not
    /// keep two connections of one process apart. The next query opens it again.
    pub fn close(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Run `sql` on the local DuckDB, read-only, with each of `parts` (name, parquet file) as
/// a temporary view beside the local tables: a hybrid query's remote parts. A part named
/// like a local table hides it for this query only.
pub fn query_with_parts(
    db: &Path,
    parts: &[(String, std::path::PathBuf)],
    sql: &str,
    limit: usize,
) -> Result<QueryOutput> {
    let conn = open_read_only(db)?;
    for (name, file) in parts {
        conn.execute_batch(&format!(
            "CREATE TEMP VIEW {} AS SELECT * FROM read_parquet({})",
            quote_ident(name),
            quote_literal(&file.to_string_lossy())
        ))?;
    }
    collect(&conn, sql, limit, |_| Ok(()))
}

/// Run `sql` and keep at most `limit` rows; `check` sees each kept row first and may
/// stop the query with an error (the sandbox's byte cap).
pub(crate) fn collect(
    conn: &Connection,
    sql: &str,
    limit: usize,
    mut check: impl FnMut(&[Value]) -> Result<()>,
) -> Result<QueryOutput> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut out = Vec::new();
    let mut columns = Vec::new();
    let mut truncated = false;
    {
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            if columns.is_empty() {
                columns = row.as_ref().column_names();
            }
            if out.len() == limit {
                truncated = true;
                break;
            }
            let n = row.as_ref().column_count();
            let values = (0..n).map(|i| read_value(row, i)).collect::<Result<Vec<_>>>()?;
            check(&values)?;
            out.push(values);
        }
    }
    if columns.is_empty() {
        columns = stmt.column_names();
    }
    Ok(QueryOutput { columns, rows: out, truncated })
}

/// One value of a result row. duckdb-rs panics on column types it does not map (a bare
/// `NULL` column, for one); those are answered here, and any other panic becomes an error
/// naming the column, so no query can crash the caller.
fn read_value(row: &duckdb::Row<'_>, i: usize) -> Result<Value> {
    use duckdb::arrow::datatypes::DataType;
    let stmt = row.as_ref();
    let data_type = stmt.column_type(i);
    if data_type == DataType::Null {
        return Ok(Value::Null);
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| row.get::<_, Value>(i))) {
        Ok(v) => Ok(v?),
        Err(_) => Err(EngineError::Invalid(format!(
            "column '{}' has a type agnes cannot display ({data_type}); CAST it to VARCHAR",
            stmt.column_name(i).map(String::as_str).unwrap_or("?")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_views_replace_each_other_but_spare_user_tables_and_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("user/duckdb/analytics.duckdb");
        let a = dir.path().join("a.parquet");
        let c = crate::duck::open_in_memory().unwrap();
        c.execute_batch(&format!("COPY (SELECT range AS x FROM range(3)) TO '{}'", a.display())).unwrap();
        drop(c);
        let target = TableData::File(a);
        assert!(sync_server_views(&db, &[("orders".into(), target.clone()), ("mine".into(), target.clone())])
            .unwrap()
            .is_empty());
        {
            let conn = crate::duck::open(&db).unwrap();
            conn.execute_batch(
                "CREATE TABLE notes AS SELECT 1 AS n; CREATE VIEW snap AS SELECT 42 AS s; INSERT INTO _agnes_views VALUES ('snap', 'snapshot', 'x'); DROP VIEW mine; CREATE TABLE mine AS SELECT 7 AS m;"
            )
            .unwrap();
        }
        // Next pull: `orders` is gone (revoked), `customers` is new, `mine` is now the analyst's table.
        let skipped = sync_server_views(
            &db,
            &[("customers".into(), target.clone()), ("mine".into(), target.clone()), ("snap".into(), target)],
        )
        .unwrap();
        assert_eq!(skipped, ["mine", "snap"]);
        let names = relation_names(&db).unwrap();
        assert_eq!(names, ["customers", "mine", "notes", "snap"]);
        let out = query(&db, "SELECT s FROM snap", 10).unwrap();
        assert_eq!(out.rows, vec![vec![Value::Int(42)]], "the snapshot view survives");
        let out = query(&db, "SELECT x FROM customers ORDER BY x", 2).unwrap();
        assert_eq!((out.columns.clone(), out.rows.len(), out.truncated), (vec!["x".to_string()], 2, true));
        let nulls = query(&db, "SELECT NULL AS nothing", 2).unwrap();
        assert_eq!(nulls.rows[0][0], Value::Null, "a NULL-typed column does not panic");
        let err = query(&db, "SELECT [NULL] AS list", 2).unwrap_err().to_string();
        assert!(
            err.contains("column 'list'") && err.contains("CAST"),
            "an unmappable type is an error, not a crash: {err}"
        );
        let empty = query(&db, "SELECT x FROM customers WHERE false", 2).unwrap();
        assert_eq!((empty.columns, empty.rows.len()), (vec!["x".to_string()], 0));
    }
}
