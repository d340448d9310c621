//! The server data directory (DESIGN.md, "Server data directory"):
//!
//! ```text
//! DATA_DIR/
//!   state/system.db                 state (SQLite)
//!   extracts/<source>/extract.duckdb _meta (+ _remote_attach) + one view per table
//!   extracts/<source>/data/<table>.parquet  or data/<table>/<part>.parquet
//!   analytics/server.duckdb         master views over every extract
//!   sources/                        default root of the files connector
//!   tmp/                            DuckDB spill space
//! ```

use crate::{EngineError, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct DataLayout {
    root: PathBuf,
    state_dir: Option<PathBuf>,
}

impl DataLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataLayout { root: root.into(), state_dir: None }
    }

    /// Keep state somewhere other than `DATA_DIR/state` (the `STATE_DIR` variable).
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Create every directory of the layout (idempotent), readable by the server's user
    /// alone: the root and each directory 0700, the state DB, its WAL and shared-memory
    /// files and the signing secret 0600, also when an older agnes created them wider.
    pub fn create(&self) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dirs = [
            self.root.clone(),
            self.state_dir(),
            self.extracts_dir(),
            self.analytics_dir(),
            self.default_files_root(),
            self.tmp_dir(),
        ];
        for dir in dirs {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(EngineError::io("create directory", &dir))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(EngineError::io("restrict directory", &dir))?;
        }
        let state_db = self.state_db();
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", state_db.display()));
            restrict_file(&file)?;
        }
        restrict_file(&self.state_dir().join(".jwt_secret"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| self.root.join("state"))
    }
    pub fn state_db(&self) -> PathBuf {
        self.state_dir().join("system.db")
    }
    pub fn extracts_dir(&self) -> PathBuf {
        self.root.join("extracts")
    }
    pub fn source_dir(&self, source: &str) -> PathBuf {
        self.extracts_dir().join(source)
    }
    pub fn extract_db(&self, source: &str) -> PathBuf {
        self.source_dir(source).join("extract.duckdb")
    }
    pub fn source_data_dir(&self, source: &str) -> PathBuf {
        self.source_dir(source).join("data")
    }
    /// `data/<table>.parquet` of a single-file table.
    pub fn table_file(&self, source: &str, table: &str) -> PathBuf {
        self.source_data_dir(source).join(format!("{table}.parquet"))
    }
    /// `data/<table>/` of a partitioned table.
    pub fn table_part_dir(&self, source: &str, table: &str) -> PathBuf {
        self.source_data_dir(source).join(table)
    }
    pub fn analytics_dir(&self) -> PathBuf {
        self.root.join("analytics")
    }
    pub fn analytics_db(&self) -> PathBuf {
        self.analytics_dir().join("server.duckdb")
    }
    pub fn default_files_root(&self) -> PathBuf {
        self.root.join("sources")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where analysts' uploaded session transcripts are kept, one directory per user.
    pub fn user_sessions_dir(&self, user_id: &str) -> PathBuf {
        self.root.join("user_sessions").join(user_id)
    }
    /// Where analysts' uploaded `CLAUDE.local.md` files are kept.
    pub fn user_local_md_dir(&self) -> PathBuf {
        self.root.join("user_local_md")
    }

    /// Remove temporary files an interrupted write may have left behind (`.*.tmp` files
    /// and `.*.tmpdir` directories under `extracts/`, `analytics/server.duckdb.tmp*`).
    /// None of them is ever visible to readers; this only reclaims space. Returns how many
    /// entries were removed.
    pub fn sweep_temporaries(&self) -> Result<usize> {
        let mut removed = 0;
        let mut stack = vec![self.extracts_dir(), self.analytics_dir()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                if crate::fsutil::is_temporary_name(&name) {
                    let r = if is_dir { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                    r.map_err(EngineError::io("remove temporary", &path))?;
                    removed += 1;
                } else if is_dir {
                    stack.push(path);
                }
            }
        }
        Ok(removed)
    }
}

/// Mode 0600 for a file that exists; nothing for one that does not (yet).
fn restrict_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.map_err(EngineError::io("restrict file", path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn create_makes_everything_private_even_when_it_was_not() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataLayout::new(dir.path().join("data"));
        std::fs::create_dir_all(layout.state_dir()).unwrap();
        std::fs::set_permissions(layout.state_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(layout.state_db(), b"").unwrap();
        std::fs::set_permissions(layout.state_db(), std::fs::Permissions::from_mode(0o644)).unwrap();
        layout.create().unwrap();
        for d in [layout.root().to_path_buf(), layout.state_dir(), layout.extracts_dir(), layout.tmp_dir()] {
            assert_eq!(mode(&d), 0o700, "{}", d.display());
        }
        assert_eq!(mode(&layout.state_db()), 0o600);
    }
}
