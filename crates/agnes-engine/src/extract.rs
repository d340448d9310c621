//! The extract contract (spec §1): `extract.duckdb` holds `_meta` (one row per table),
//! an optional `_remote_attach`, and one inner view per table.
//!
//! Writers rebuild the whole file under a temporary name and rename it into place, so
//! the orchestrator and readers attached to the old file are never disturbed.

use crate::fsutil::{commit_rename, remove_if_exists, temp_path_for};
use crate::table_data::TableData;
use crate::{EngineError, Result};
use agnes_core::ident::{is_strict_identifier, quote_ident, quote_literal};
use chrono::{DateTime, Utc};
use duckdb::{params, Connection};
use std::path::Path;

/// One `_meta` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaRow {
    pub table_name: String,
    pub description: Option<String>,
    pub rows: i64,
    pub size_bytes: i64,
    pub extracted_at: Option<DateTime<Utc>>,
    pub query_mode: String,
}

/// One `_remote_attach` row: how readers attach an external catalog. `token_env` names
/// an environment variable; the token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAttach {
    pub alias: String,
    pub extension: String,
    pub url: String,
    pub token_env: String,
}

/// A table of an extract: its `_meta` row and the body of its inner view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractTable {
    pub meta: MetaRow,
    pub view_sql: String,
}

impl ExtractTable {
    /// A table whose inner view reads its published parquet.
    pub fn over(meta: MetaRow, data: &TableData) -> Result<ExtractTable> {
        Ok(ExtractTable { view_sql: data.select_sql()?, meta })
    }
}

/// Write `extract.duckdb` at `path` with exactly these tables, replacing any previous
/// file atomically. Every name is validated before anything is written.
pub fn write_extract(path: &Path, tables: &[ExtractTable], remote: &[RemoteAttach]) -> Result<()> {
    for t in tables {
        if !is_strict_identifier(&t.meta.table_name) {
            return Err(EngineError::InvalidIdentifier(t.meta.table_name.clone()));
        }
    }
    for r in remote {
        for v in [&r.alias, &r.extension] {
            if !is_strict_identifier(v) {
                return Err(EngineError::InvalidIdentifier(v.clone()));
            }
        }
    }
    let dir = path.parent().ok_or_else(|| EngineError::Invalid(format!("no parent: {}", path.display())))?;
    std::fs::create_dir_all(dir).map_err(EngineError::io("create directory", dir))?;
    let tmp = temp_path_for(path);
    let wal = tmp.with_file_name(format!("{}.wal", tmp.file_name().unwrap_or_default().to_string_lossy()));
    let result = build(&tmp, tables, remote).and_then(|()| commit_rename(&tmp, path));
    let _ = remove_if_exists(&wal);
    if result.is_err() {
        let _ = remove_if_exists(&tmp);
    }
    result
}

fn build(tmp: &Path, tables: &[ExtractTable], remote: &[RemoteAttach]) -> Result<()> {
    let conn = crate::duck::open(tmp)?;
    conn.execute_batch(
        "CREATE TABLE _meta (table_name VARCHAR NOT NULL, description VARCHAR, rows BIGINT, \
         size_bytes BIGINT, extracted_at TIMESTAMP, query_mode VARCHAR DEFAULT 'local')",
    )?;
    {
        let mut insert = conn.prepare("INSERT INTO _meta VALUES (?, ?, ?, ?, CAST(? AS TIMESTAMP), ?)")?;
        for t in tables {
            let m = &t.meta;
            let at = m.extracted_at.map(|t| t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string());
            insert.execute(params![m.table_name, m.description, m.rows, m.size_bytes, at, m.query_mode])?;
        }
    }
    if !remote.is_empty() {
        conn.execute_batch(
            "CREATE TABLE _remote_attach (alias VARCHAR, extension VARCHAR, url VARCHAR, token_env VARCHAR)",
        )?;
        let mut insert = conn.prepare("INSERT INTO _remote_attach VALUES (?, ?, ?, ?)")?;
        for r in remote {
            insert.execute(params![r.alias, r.extension, r.url, r.token_env])?;
        }
    }
    for t in tables {
        conn.execute_batch(&format!("CREATE VIEW {} AS {}", quote_ident(&t.meta.table_name), t.view_sql))?;
    }
    conn.execute_batch("CHECKPOINT")?;
    drop(conn);
    Ok(())
}

/// Read `_meta` of the extract at `path` (opened read-only).
pub fn read_meta(path: &Path) -> Result<Vec<MetaRow>> {
    let conn = crate::duck::open_in_memory()?;
    conn.execute_batch(&format!("ATTACH {} AS ex (READ_ONLY)", quote_literal(&path.to_string_lossy())))?;
    read_meta_attached(&conn, "ex")
}

/// Read `_meta` of an extract attached under `alias`.
pub fn read_meta_attached(conn: &Connection, alias: &str) -> Result<Vec<MetaRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT table_name, description, COALESCE(rows, 0)::BIGINT, COALESCE(size_bytes, 0)::BIGINT, \
         CAST(extracted_at AS VARCHAR), COALESCE(query_mode, 'local') FROM {}._meta",
        quote_ident(alias)
    ))?;
    let rows = stmt.query_map([], |r| {
        let at: Option<String> = r.get(4)?;
        Ok(MetaRow {
            table_name: r.get(0)?,
            description: r.get(1)?,
            rows: r.get(2)?,
            size_bytes: r.get(3)?,
            extracted_at: at.and_then(|s| {
                chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f").ok().map(|n| n.and_utc())
            }),
            query_mode: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Read `_remote_attach` of an extract attached under `alias`; absent table = no rows.
pub fn read_remote_attach_attached(conn: &Connection, alias: &str) -> Result<Vec<RemoteAttach>> {
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? AND table_name = '_remote_attach'",
        [alias],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT alias, extension, COALESCE(url, ''), COALESCE(token_env, '') FROM {}._remote_attach",
        quote_ident(alias)
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok(RemoteAttach { alias: r.get(0)?, extension: r.get(1)?, url: r.get(2)?, token_env: r.get(3)? })
    })?;
    Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, rows: i64) -> MetaRow {
        MetaRow {
            table_name: name.into(),
            description: Some("d".into()),
            rows,
            size_bytes: 10,
            extracted_at: Some(Utc::now()),
            query_mode: "local".into(),
        }
    }

    #[test]
    fn round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extract.duckdb");
        let t = ExtractTable { meta: meta("orders", 3), view_sql: "SELECT 1 AS a".into() };
        let remote = RemoteAttach {
            alias: "kbc".into(),
            extension: "keboola".into(),
            url: "https://x".into(),
            token_env: "KBC_TOKEN".into(),
        };
        write_extract(&path, std::slice::from_ref(&t), std::slice::from_ref(&remote)).unwrap();
        let got = read_meta(&path).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].table_name, "orders");
        assert_eq!(got[0].rows, 3);
        assert!(got[0].extracted_at.is_some());

        let conn = crate::duck::open_in_memory().unwrap();
        conn.execute_batch(&format!("ATTACH '{}' AS s (READ_ONLY)", path.display())).unwrap();
        assert_eq!(read_remote_attach_attached(&conn, "s").unwrap(), vec![remote]);
        let a: i64 = conn.query_row("SELECT a FROM s.orders", [], |r| r.get(0)).unwrap();
        assert_eq!(a, 1);
        drop(conn);

        write_extract(&path, &[ExtractTable { meta: meta("customers", 5), view_sql: "SELECT 2 AS b".into() }], &[])
            .unwrap();
        let got = read_meta(&path).unwrap();
        assert_eq!(got.iter().map(|m| m.table_name.as_str()).collect::<Vec<_>>(), ["customers"]);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 1, "no temporaries left: {names:?}");
    }

    #[test]
    fn invalid_names_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extract.duckdb");
        let bad = ExtractTable { meta: meta("x\"; DROP TABLE y; --", 1), view_sql: "SELECT 1".into() };
        assert!(matches!(write_extract(&path, &[bad], &[]), Err(EngineError::InvalidIdentifier(_))));
        assert!(!path.exists());
    }
}
