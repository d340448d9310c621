//! The orchestrator: rebuilds `analytics/server.duckdb`, one master view per exposed
//! table, from every extract (spec §1.5 steps 2–8; the BigQuery pre-pass belongs to the
//! BigQuery connector).
//!
//! The new file is built beside the old one and renamed over it, so readers holding the
//! old file keep a consistent view. A source or row that fails is recorded in the report
//! and skipped; it never stops the others. Unlike the original, the orchestrator never
//! touches sync state: publishing records that, per table, when data actually changes.

use crate::extract::{read_meta_attached, read_remote_attach_attached, RemoteAttach};
use crate::fsutil::{commit_rename, remove_if_exists};
use crate::{DataLayout, EngineError, Result};
use agnes_core::ident::{is_strict_identifier, quote_ident, quote_literal};
use duckdb::Connection;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Catalog names DuckDB reserves; a source directory may not use them.
const RESERVED_CATALOGS: &[&str] = &["memory", "system", "temp", "main"];

/// Which `_remote_attach` rows may be applied (spec §1.3).
#[derive(Debug, Clone)]
pub struct RemotePolicy {
    pub extensions: BTreeSet<String>,
    pub token_envs: BTreeSet<String>,
}

impl Default for RemotePolicy {
    fn default() -> Self {
        RemotePolicy {
            extensions: ["keboola", "bigquery"].into_iter().map(String::from).collect(),
            token_envs: ["KBC_TOKEN", "KBC_STORAGE_TOKEN", "KEBOOLA_STORAGE_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"]
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }
}

impl RemotePolicy {
    /// Why a row may not be applied, or `None` when it may.
    pub fn refusal(&self, r: &RemoteAttach) -> Option<String> {
        if !is_strict_identifier(&r.alias) || !is_strict_identifier(&r.extension) {
            return Some(format!("invalid alias or extension name {:?}/{:?}", r.alias, r.extension));
        }
        if !self.extensions.contains(&r.extension) {
            return Some(format!("extension '{}' is not in the allowlist", r.extension));
        }
        if !r.token_env.is_empty() && (!valid_env_name(&r.token_env) || !self.token_envs.contains(&r.token_env)) {
            return Some(format!("token_env '{}' is not in the allowlist", r.token_env));
        }
        None
    }
}

fn valid_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_uppercase()
        && b.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

/// What the caller knows that the extracts do not.
#[derive(Debug, Clone, Default)]
pub struct RebuildInput {
    /// Stored view ownership: view name → source.
    pub ownership: BTreeMap<String, String>,
    /// `(source, table)` pairs registered as materialized for that source: their
    /// `data/<table>.parquet` is exposed even without a `_meta` row.
    pub fallback: BTreeSet<(String, String)>,
    pub remote_policy: RemotePolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposedTable {
    pub name: String,
    pub rows: i64,
    pub size_bytes: i64,
    pub query_mode: String,
    /// Exposed from `data/<name>.parquet` by the filesystem fallback.
    pub from_fallback: bool,
}

/// A source or row that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub source: String,
    pub table: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    /// source → tables exposed from it.
    pub exposed: BTreeMap<String, Vec<ExposedTable>>,
    /// Names claimed for the first time in this rebuild: view → source.
    pub new_claims: BTreeMap<String, String>,
    /// Every `(source, table)` found in a `_meta`, or `None` when some source could not
    /// be read (then stale ownership must not be reconciled).
    pub present: Option<BTreeSet<(String, String)>>,
    pub problems: Vec<Problem>,
    pub duration: Duration,
}

impl RebuildReport {
    pub fn table_count(&self) -> usize {
        self.exposed.values().map(Vec::len).sum()
    }
}

/// Serializes rebuilds: one at a time per data directory.
pub struct Orchestrator {
    layout: DataLayout,
    lock: Mutex<()>,
}

struct Source {
    name: String,
    extract: Option<PathBuf>,
    data_dir: PathBuf,
}

impl Orchestrator {
    pub fn new(layout: DataLayout) -> Self {
        Orchestrator { layout, lock: Mutex::new(()) }
    }

    pub fn layout(&self) -> &DataLayout {
        &self.layout
    }

    pub fn rebuild(&self, input: &RebuildInput) -> Result<RebuildReport> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let mut report = RebuildReport::default();
        let sources = self.scan_sources(&mut report)?;

        let target = self.layout.analytics_db();
        std::fs::create_dir_all(self.layout.analytics_dir())
            .map_err(EngineError::io("create directory", self.layout.analytics_dir()))?;
        let tmp = target.with_file_name("server.duckdb.tmp");
        let tmp_wal = target.with_file_name("server.duckdb.tmp.wal");
        remove_if_exists(&tmp)?;
        remove_if_exists(&tmp_wal)?;

        let result = self.build(&tmp, &sources, input, &mut report);
        if let Err(e) = result {
            let _ = remove_if_exists(&tmp);
            let _ = remove_if_exists(&tmp_wal);
            return Err(e);
        }
        remove_if_exists(&target.with_file_name("server.duckdb.wal"))?;
        commit_rename(&tmp, &target)?;
        remove_if_exists(&tmp_wal)?;
        report.duration = started.elapsed();
        for p in &report.problems {
            tracing::warn!(source = %p.source, table = ?p.table, "orchestrator skipped: {}", p.message);
        }
        tracing::info!(tables = report.table_count(), ms = report.duration.as_millis() as u64, "analytics rebuilt");
        Ok(report)
    }

    /// Subdirectories of `extracts/` in sorted order; invalid names are reported.
    fn scan_sources(&self, report: &mut RebuildReport) -> Result<Vec<Source>> {
        let dir = self.layout.extracts_dir();
        let mut names = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        names.push(entry.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(EngineError::Io { action: "list", path: dir, source: e }),
        }
        names.sort();
        let mut sources = Vec::new();
        for name in names {
            if name.starts_with('.') {
                continue;
            }
            if !is_strict_identifier(&name) || RESERVED_CATALOGS.contains(&name.to_lowercase().as_str()) {
                report.problems.push(Problem {
                    source: name,
                    table: None,
                    message: "invalid source directory name".into(),
                });
                continue;
            }
            let extract = self.layout.extract_db(&name);
            sources.push(Source {
                extract: extract.is_file().then_some(extract),
                data_dir: self.layout.source_data_dir(&name),
                name,
            });
        }
        Ok(sources)
    }

    fn build(&self, tmp: &Path, sources: &[Source], input: &RebuildInput, report: &mut RebuildReport) -> Result<()> {
        let conn = crate::duck::open(tmp)?;

        // Pass 1: attach every extract read-only and read its _meta.
        let mut metas = BTreeMap::new();
        let mut clean = true;
        let mut present = BTreeSet::new();
        for s in sources {
            let Some(extract) = &s.extract else { continue };
            match attach_and_read(&conn, s, extract, &input.remote_policy, report) {
                Ok((meta, inner)) => {
                    for m in &meta {
                        present.insert((s.name.clone(), m.table_name.clone()));
                    }
                    metas.insert(s.name.clone(), (meta, inner));
                }
                Err(e) => {
                    clean = false;
                    report.problems.push(Problem { source: s.name.clone(), table: None, message: e.to_string() });
                    let _ = conn.execute_batch(&format!("DETACH DATABASE IF EXISTS {}", quote_ident(&s.name)));
                }
            }
        }
        // Only a fully readable set of sources may release names (spec §1.5 step 2).
        let mut ownership = input.ownership.clone();
        if clean {
            ownership.retain(|view, source| present.contains(&(source.clone(), view.clone())));
        }
        report.present = clean.then_some(present);

        // Pass 2: one master view per _meta row, then the filesystem fallback. Views are
        // validated by preparing their SELECT and created together in one transaction:
        // DuckDB commits (and syncs its WAL) per statement otherwise.
        let mut views = PendingViews::default();
        let mut exposed_names: HashSet<String> = HashSet::new();
        for s in sources {
            let mut exposed = Vec::new();
            if let Some((meta, inner)) = metas.get(&s.name) {
                for m in meta {
                    let problem = |msg: String| Problem {
                        source: s.name.clone(),
                        table: Some(m.table_name.clone()),
                        message: msg,
                    };
                    if !is_strict_identifier(&m.table_name) {
                        report.problems.push(problem("invalid table name".into()));
                        continue;
                    }
                    if !inner.contains(&m.table_name) {
                        report.problems.push(problem("no inner view or table of that name in the extract".into()));
                        continue;
                    }
                    if let Err(msg) =
                        claim(&mut ownership, &mut report.new_claims, &exposed_names, &m.table_name, &s.name)
                    {
                        report.problems.push(problem(msg));
                        continue;
                    }
                    let select = format!("SELECT * FROM {}.main.{}", quote_ident(&s.name), quote_ident(&m.table_name));
                    if let Err(e) = conn.prepare(&select) {
                        report.problems.push(problem(format!("view cannot be read: {e}")));
                        continue;
                    }
                    exposed_names.insert(m.table_name.clone());
                    views.push(&s.name, &m.table_name, select);
                    exposed.push(ExposedTable {
                        name: m.table_name.clone(),
                        rows: m.rows,
                        size_bytes: m.size_bytes,
                        query_mode: m.query_mode.clone(),
                        from_fallback: false,
                    });
                }
            }
            self.fallback(&conn, s, input, &mut ownership, &mut exposed_names, &mut exposed, &mut views, report);
            if !exposed.is_empty() {
                report.exposed.insert(s.name.clone(), exposed);
            }
        }
        for (source, view, message) in views.create_all(&conn) {
            report.problems.push(Problem { source: source.clone(), table: Some(view.clone()), message });
            if let Some(list) = report.exposed.get_mut(&source) {
                list.retain(|t| t.name != view);
            }
        }
        report.exposed.retain(|_, list| !list.is_empty());
        conn.execute_batch("CHECKPOINT")?;
        drop(conn);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn fallback(
        &self,
        conn: &Connection,
        s: &Source,
        input: &RebuildInput,
        ownership: &mut BTreeMap<String, String>,
        exposed_names: &mut HashSet<String>,
        exposed: &mut Vec<ExposedTable>,
        views: &mut PendingViews,
        report: &mut RebuildReport,
    ) {
        let Ok(entries) = std::fs::read_dir(&s.data_dir) else {
            return;
        };
        let mut files: Vec<(String, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                let stem = path.file_stem()?.to_string_lossy().into_owned();
                (path.extension()? == "parquet" && path.is_file()).then_some((stem, path))
            })
            .collect();
        files.sort();
        for (stem, path) in files {
            if !is_strict_identifier(&stem)
                || exposed_names.contains(&stem)
                || !input.fallback.contains(&(s.name.clone(), stem.clone()))
            {
                continue;
            }
            let problem = |msg: String| Problem { source: s.name.clone(), table: Some(stem.clone()), message: msg };
            if let Err(msg) = claim(ownership, &mut report.new_claims, exposed_names, &stem, &s.name) {
                report.problems.push(problem(msg));
                continue;
            }
            let literal = quote_literal(&path.to_string_lossy());
            let select = format!("SELECT * FROM read_parquet({literal})");
            let checked = conn.prepare(&select).and_then(|_| {
                conn.query_row(
                    &format!("SELECT COALESCE(SUM(num_rows), 0)::BIGINT FROM parquet_file_metadata({literal})"),
                    [],
                    |r| r.get::<_, i64>(0),
                )
            });
            match checked {
                Ok(rows) => {
                    exposed_names.insert(stem.clone());
                    views.push(&s.name, &stem, select);
                    let size_bytes = std::fs::metadata(&path).map(|m| m.len() as i64).unwrap_or(0);
                    exposed.push(ExposedTable {
                        name: stem.clone(),
                        rows,
                        size_bytes,
                        query_mode: "materialized".into(),
                        from_fallback: true,
                    });
                }
                Err(e) => report.problems.push(problem(format!("fallback view failed: {e}"))),
            }
        }
    }
}

/// Master views waiting to be created: `(source, view, select)`.
#[derive(Default)]
struct PendingViews(Vec<(String, String, String)>);

impl PendingViews {
    fn push(&mut self, source: &str, view: &str, select: String) {
        self.0.push((source.to_string(), view.to_string(), select));
    }

    /// Create every view in one transaction; if that fails, one by one so a single bad
    /// view cannot take the others down. Returns the views that failed, and why.
    fn create_all(self, conn: &Connection) -> Vec<(String, String, String)> {
        let ddl = |view: &str, select: &str| format!("CREATE OR REPLACE VIEW {} AS {select};", quote_ident(view));
        let batch: String = self.0.iter().map(|(_, v, s)| ddl(v, s)).collect();
        if conn.execute_batch(&format!("BEGIN TRANSACTION; {batch} COMMIT;")).is_ok() {
            return Vec::new();
        }
        let _ = conn.execute_batch("ROLLBACK");
        let mut failed = Vec::new();
        for (source, view, select) in self.0 {
            if let Err(e) = conn.execute_batch(&ddl(&view, &select)) {
                failed.push((source, view, format!("view creation failed: {e}")));
            }
        }
        failed
    }
}

/// Claim `view` for `source`: allowed when unowned or already owned by `source`, and not
/// yet exposed by another source in this rebuild.
fn claim(
    ownership: &mut BTreeMap<String, String>,
    new_claims: &mut BTreeMap<String, String>,
    exposed: &HashSet<String>,
    view: &str,
    source: &str,
) -> std::result::Result<(), String> {
    match ownership.get(view) {
        Some(owner) if owner != source => Err(format!("view name is owned by source '{owner}'")),
        Some(_) => Ok(()),
        None if exposed.contains(view) => Err("view name already exposed by another source".into()),
        None => {
            ownership.insert(view.to_string(), source.to_string());
            new_claims.insert(view.to_string(), source.to_string());
            Ok(())
        }
    }
}

type AttachedMeta = (Vec<crate::extract::MetaRow>, HashSet<String>);

fn attach_and_read(
    conn: &Connection,
    s: &Source,
    extract: &Path,
    policy: &RemotePolicy,
    report: &mut RebuildReport,
) -> Result<AttachedMeta> {
    conn.execute_batch(&format!(
        "ATTACH {} AS {} (READ_ONLY)",
        quote_literal(&extract.to_string_lossy()),
        quote_ident(&s.name)
    ))?;
    apply_remote_attach(conn, &s.name, policy, report)?;
    let meta = read_meta_attached(conn, &s.name)?;
    let mut stmt = conn.prepare("SELECT table_name FROM information_schema.tables WHERE table_catalog = ?")?;
    let inner =
        stmt.query_map([&s.name], |r| r.get::<_, String>(0))?.collect::<std::result::Result<HashSet<_>, _>>()?;
    Ok((meta, inner))
}

/// Attach the external catalogs a source's views need. Extensions are only LOADed,
/// never installed: agnes runs offline, and a missing extension is a per-row problem.
fn apply_remote_attach(
    conn: &Connection,
    source: &str,
    policy: &RemotePolicy,
    report: &mut RebuildReport,
) -> Result<()> {
    for r in read_remote_attach_attached(conn, source)? {
        let problem = |msg: String| Problem {
            source: source.to_string(),
            table: None,
            message: format!("_remote_attach {}: {msg}", r.alias),
        };
        if let Some(why) = policy.refusal(&r) {
            report.problems.push(problem(why));
            continue;
        }
        let token = if r.token_env.is_empty() {
            None
        } else {
            match std::env::var(&r.token_env) {
                Ok(t) if !t.is_empty() => Some(t),
                _ => {
                    report.problems.push(problem(format!("environment variable {} is not set", r.token_env)));
                    continue;
                }
            }
        };
        let attached: i64 =
            conn.query_row("SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [&r.alias], |row| {
                row.get(0)
            })?;
        if attached > 0 {
            continue;
        }
        let options = match &token {
            Some(t) => format!("TYPE {}, READ_ONLY, TOKEN {}", r.extension, quote_literal(t)),
            None => format!("TYPE {}, READ_ONLY", r.extension),
        };
        let sql =
            format!("LOAD {}; ATTACH {} AS {} ({options})", r.extension, quote_literal(&r.url), quote_ident(&r.alias));
        if let Err(e) = conn.execute_batch(&sql) {
            report.problems.push(problem(format!("attach failed: {e}")));
        }
    }
    Ok(())
}

/// Open the analytics DB for reading: `server.duckdb` read-only with every valid extract
/// attached read-only under its source name. Before the first rebuild, an empty
/// in-memory DB with external access disabled.
pub fn open_analytics_reader(layout: &DataLayout) -> Result<Connection> {
    let path = layout.analytics_db();
    if !path.is_file() {
        let conn = crate::duck::open_in_memory()?;
        conn.execute_batch("SET enable_external_access = false")?;
        return Ok(conn);
    }
    let conn = crate::duck::open_read_only(&path)?;
    let mut names: Vec<String> = std::fs::read_dir(layout.extracts_dir())
        .map(|it| it.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    for name in names {
        let extract = layout.extract_db(&name);
        if is_strict_identifier(&name)
            && !RESERVED_CATALOGS.contains(&name.to_lowercase().as_str())
            && extract.is_file()
        {
            let sql =
                format!("ATTACH {} AS {} (READ_ONLY)", quote_literal(&extract.to_string_lossy()), quote_ident(&name));
            if let Err(e) = conn.execute_batch(&sql) {
                tracing::warn!(source = %name, "cannot attach extract for reading: {e}");
            }
        }
    }
    Ok(conn)
}

#[cfg(test)]
mod tests;
