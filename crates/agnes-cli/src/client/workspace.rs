//! The analyst workspace: `AGNES_LOCAL_DIR` or the current directory.
//!
//! ```text
//! <workspace>/server/parquet/<table>.parquet          pulled single-file tables
//! <workspace>/server/parquet/<table>/<part>.parquet   pulled parts of partitioned tables
//! <workspace>/server/.agnes-pull-state.json           what was pulled (hashes)
//! <workspace>/user/duckdb/analytics.duckdb            the local DuckDB
//! ```
//!
//! The pull state lives in the workspace, not in the user's config directory as in the
//! original, where two workspaces of one user shared it and skipped each other's tables.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone)]
pub struct Workspace {
    root: PathBuf,
}

/// What a pull recorded about one table.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PulledTable {
    pub id: String,
    pub hash: String,
    pub rows: i64,
    pub size_bytes: i64,
    /// For tables published in parts (partitioned or layered): part → hash.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parts: BTreeMap<String, String>,
    /// For a layered table: the key its `base` and `delta` parts are merged on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge_key: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PullState {
    pub tables: BTreeMap<String, PulledTable>,
    pub last_sync: Option<String>,
}

impl Workspace {
    pub fn at(root: PathBuf) -> Workspace {
        Workspace { root }
    }

    pub fn current() -> anyhow::Result<Workspace> {
        let root = match std::env::var_os("AGNES_LOCAL_DIR").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => std::env::current_dir().context("cannot read the current directory")?,
        };
        Ok(Workspace { root })
    }

    pub fn parquet_dir(&self) -> PathBuf {
        self.root.join("server").join("parquet")
    }
    pub fn table_file(&self, name: &str) -> PathBuf {
        self.parquet_dir().join(format!("{name}.parquet"))
    }
    pub fn part_dir(&self, name: &str) -> PathBuf {
        self.parquet_dir().join(name)
    }
    pub fn duckdb(&self) -> PathBuf {
        self.root.join("user").join("duckdb").join("analytics.duckdb")
    }
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("user").join("snapshots")
    }
    pub fn init_sentinel(&self) -> PathBuf {
        self.root.join(".claude").join("init-complete")
    }
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
    fn state_file(&self) -> PathBuf {
        self.root.join("server").join(".agnes-pull-state.json")
    }

    pub fn load_state(&self) -> PullState {
        std::fs::read_to_string(self.state_file()).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }

    /// Write the state atomically.
    pub fn save_state(&self, state: &PullState) -> anyhow::Result<()> {
        let path = self.state_file();
        std::fs::create_dir_all(path.parent().expect("state file has a parent"))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// Hold the workspace for one pull at a time; released when the file is dropped.
    pub fn lock(&self) -> anyhow::Result<std::fs::File> {
        self.try_lock_named(".pull.lock")?
            .with_context(|| format!("another agnes pull is running in {}", self.root.display()))
    }

    /// An exclusive lock on `server/<name>`, or `None` when another process holds it.
    pub fn try_lock_named(&self, name: &str) -> anyhow::Result<Option<std::fs::File>> {
        flock(&self.root.join("server").join(name), false)
    }

    /// The snapshots' lock (`user/snapshots/.lock`), waiting for whoever holds it.
    pub fn lock_snapshots(&self) -> anyhow::Result<std::fs::File> {
        flock(&self.snapshots_dir().join(".lock"), true)?.context("cannot lock the snapshots directory")
    }
}

/// An exclusive `flock` on `path` (created with its directory), released when the file is
/// dropped. Without `wait`, `None` when another process holds it.
fn flock(path: &std::path::Path, wait: bool) -> anyhow::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    let dir = path.parent().expect("a lock file has a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    let mode = if wait { libc::LOCK_EX } else { libc::LOCK_EX | libc::LOCK_NB };
    if unsafe { libc::flock(f.as_raw_fd(), mode) } != 0 {
        return Ok(None);
    }
    Ok(Some(f))
}
