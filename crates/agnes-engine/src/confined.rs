//! DuckDB connections that can reach only the directories they are given.
//!
//! Confinement is DuckDB's own: `allowed_directories` is set first (DuckDB refuses it
//! afterwards), then external access is disabled and the configuration locked, so SQL
//! run on the connection cannot widen its own reach, whatever its spelling.

use crate::{EngineError, Result};
use agnes_core::ident::quote_literal;
use duckdb::Connection;
use std::path::{Path, PathBuf};

/// Resource limits of one DuckDB instance.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// DuckDB `memory_limit`, e.g. `"2GB"`; `None` keeps DuckDB's default (80% of RAM).
    pub memory_limit: Option<String>,
    /// Worker threads; `None` keeps DuckDB's default (all cores).
    pub threads: Option<usize>,
    /// Spill directory for out-of-core operators.
    pub temp_directory: Option<PathBuf>,
    /// Results may come out in any order: DuckDB then writes a COPY as its threads
    /// produce rows instead of holding them back to keep the input's order, which bounds
    /// its memory (for sources whose exports have no order to keep).
    pub any_order: bool,
}

/// Open an in-memory DuckDB that may read and write only under `dirs`.
pub fn open_confined(dirs: &[&Path], limits: &Limits) -> Result<Connection> {
    let conn = crate::duck::open_in_memory()?;
    let list = dirs
        .iter()
        .map(|d| {
            let abs = std::path::absolute(d).map_err(EngineError::io("resolve", *d))?;
            let mut s = abs.to_string_lossy().into_owned();
            if !s.ends_with('/') {
                s.push('/');
            }
            Ok(quote_literal(&s))
        })
        .collect::<Result<Vec<_>>>()?
        .join(", ");
    let mut sql = format!("SET allowed_directories = [{list}];");
    apply_limits(&mut sql, limits);
    sql.push_str(" SET enable_external_access = false; SET lock_configuration = true;");
    conn.execute_batch(&sql)?;
    Ok(conn)
}

/// Open an in-memory DuckDB with limits but no confinement (trusted server-side work).
pub fn open_with_limits(limits: &Limits) -> Result<Connection> {
    let conn = crate::duck::open_in_memory()?;
    let mut sql = String::new();
    apply_limits(&mut sql, limits);
    conn.execute_batch(&sql)?;
    Ok(conn)
}

fn apply_limits(sql: &mut String, limits: &Limits) {
    if let Some(m) = &limits.memory_limit {
        sql.push_str(&format!(" SET memory_limit = {};", quote_literal(m)));
    }
    if let Some(t) = limits.threads {
        sql.push_str(&format!(" SET threads = {};", t.max(1)));
    }
    if let Some(dir) = &limits.temp_directory {
        sql.push_str(&format!(" SET temp_directory = {};", quote_literal(&dir.to_string_lossy())));
    }
    if limits.any_order {
        sql.push_str(" SET preserve_insertion_order = false;");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confined_connection_reads_inside_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("in");
        let outside = dir.path().join("out");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(inside.join("a.csv"), "x\n1\n2\n").unwrap();
        std::fs::write(outside.join("b.csv"), "x\n3\n").unwrap();
        let conn = open_confined(&[&inside], &Limits::default()).unwrap();

        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM read_csv('{}')", inside.join("a.csv").display()), [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 2);
        for escape in [
            format!("SELECT * FROM read_csv('{}')", outside.join("b.csv").display()),
            format!("SELECT * FROM read_csv('{}/../out/b.csv')", inside.display()),
            "SELECT * FROM read_text('/etc/passwd')".to_string(),
            "SET enable_external_access = true".to_string(),
        ] {
            assert!(conn.execute_batch(&escape).is_err(), "must fail: {escape}");
        }
    }
}
