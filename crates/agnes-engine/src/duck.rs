//! Every DuckDB database agnes opens, on the server and on an analyst's laptop, is opened
//! here, so each has the same start: extensions are never installed or loaded at run time.
//! The ones agnes needs (core_functions, parquet, json, and icu for time zones) are
//! compiled into the binary; anything else is a clear error, never a download.
//! (`clippy.toml` refuses DuckDB's own constructors everywhere else.)
#![allow(clippy::disallowed_methods)]

use duckdb::{AccessMode, Config, Connection};
use std::path::Path;

fn config() -> duckdb::Result<Config> {
    Config::default().with("autoinstall_known_extensions", "false")?.with("autoload_known_extensions", "false")
}

/// A database file, created if missing.
pub fn open(path: impl AsRef<Path>) -> duckdb::Result<Connection> {
    Connection::open_with_flags(path, config()?)
}

/// A database file, read-only.
pub fn open_read_only(path: impl AsRef<Path>) -> duckdb::Result<Connection> {
    Connection::open_with_flags(path, config()?.access_mode(AccessMode::ReadOnly)?)
}

/// A database in memory.
pub fn open_in_memory() -> duckdb::Result<Connection> {
    Connection::open_in_memory_with_flags(config()?)
}

#[cfg(test)]
mod tests {
    /// The extensions agnes relies on are compiled in and loaded; none is installable.
    #[test]
    fn extensions_are_built_in_and_nothing_is_fetched() {
        let conn = super::open_in_memory().unwrap();
        let mut stmt = conn.prepare("SELECT extension_name FROM duckdb_extensions() WHERE loaded ORDER BY 1").unwrap();
        let loaded: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        for wanted in ["core_functions", "icu", "json", "parquet"] {
            assert!(loaded.iter().any(|l| l == wanted), "{wanted} not loaded: {loaded:?}");
        }
        let setting = |name: &str| -> String {
            conn.query_row(&format!("SELECT current_setting('{name}')::VARCHAR"), [], |r| r.get(0)).unwrap()
        };
        assert_eq!(setting("autoinstall_known_extensions"), "false");
        assert_eq!(setting("autoload_known_extensions"), "false");
        // An extension that is not compiled in is a catalog error at once, no download tried.
        let err = conn.execute_batch("SELECT * FROM read_xlsx('x.xlsx')").unwrap_err().to_string();
        assert!(err.starts_with("Catalog Error") && err.contains("excel extension"), "{err}");
    }
}
