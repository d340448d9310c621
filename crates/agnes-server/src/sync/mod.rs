//! The sync service: the one path every connector's data takes to analysts.
//!
//! pick tables (due ones, or those asked for) → extract and publish each through its
//! connector → record state and history → rewrite the source's `_meta` → rebuild the
//! analytics DB. One run at a time; a table that fails is recorded and the others go on.

mod extracts;
mod freshness;
mod profiling;
mod scheduler;

pub use freshness::{Freshness, States};

pub use scheduler::{backoff, SchedulerConfig, Tick, DATA_REFRESH};

use crate::metrics as m;
use agnes_connectors::{Connector, Publication, SyncContext, SyncedTable};
use agnes_core::schedule::filter_due;
use agnes_core::{SourceType, TableSpec};
use agnes_engine::confined::Limits;
use agnes_engine::orchestrator::{Orchestrator, RebuildInput, RemotePolicy};
use agnes_engine::DataLayout;
use agnes_store::sync_state::{PartState, Published};
use agnes_store::Store;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which tables a run syncs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every table whose schedule says it is due.
    Due,
    /// These tables (ids or names), regardless of schedule.
    Tables(Vec<String>),
}

/// How one table's sync ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableOutcome {
    pub id: String,
    pub name: String,
    /// `ok` or `error`.
    pub status: &'static str,
    pub rows: Option<i64>,
    pub size_bytes: Option<i64>,
    /// Whether the published content differs from the previous sync.
    pub changed: Option<bool>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SyncReport {
    pub tables: Vec<TableOutcome>,
    /// Whether the analytics DB was rebuilt.
    pub rebuilt: bool,
    pub exposed_tables: usize,
    /// Sources and rows the orchestrator skipped, as text.
    pub problems: Vec<String>,
    /// Shutdown was requested; the remaining tables were left for the next run.
    pub stopped_early: bool,
}

impl SyncReport {
    pub fn failed(&self) -> impl Iterator<Item = &TableOutcome> {
        self.tables.iter().filter(|t| t.status == "error")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync_already_in_progress")]
    InProgress,
    #[error(transparent)]
    Store(#[from] agnes_store::StoreError),
    #[error(transparent)]
    Engine(#[from] agnes_engine::EngineError),
    #[error("background task failed: {0}")]
    Task(String),
}

/// Progress of a run, for interactive callers such as `agnes demo`.
pub enum Progress<'a> {
    Started { table: &'a TableSpec, index: usize, total: usize },
    Finished(&'a TableOutcome),
    Rebuilding,
}

/// How long `/api/sync/status` reports `locked` after a trigger, even before the
/// background run takes the lock (the original's hold window).
const TRIGGER_HOLD: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct SyncService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    layout: DataLayout,
    orchestrator: Orchestrator,
    connectors: Vec<Arc<dyn Connector>>,
    limits: Limits,
    default_schedule: String,
    remote_policy: RemotePolicy,
    running: tokio::sync::Mutex<()>,
    last_trigger: Mutex<Option<Instant>>,
    stopping: AtomicBool,
    /// Wakes the scheduler's sleep at shutdown.
    stop: tokio::sync::Notify,
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The overdue tables' ids as a JSON array, and when they were worked out.
    overdue: Mutex<Option<(Instant, Arc<str>)>>,
}

impl SyncService {
    pub fn new(
        store: Store,
        layout: DataLayout,
        connectors: Vec<Arc<dyn Connector>>,
        limits: Limits,
        default_schedule: String,
    ) -> Self {
        SyncService {
            inner: Arc::new(Inner {
                orchestrator: Orchestrator::new(layout.clone()),
                store,
                layout,
                connectors,
                limits,
                default_schedule,
                remote_policy: remote_policy_from_env(),
                running: tokio::sync::Mutex::new(()),
                last_trigger: Mutex::new(None),
                stopping: AtomicBool::new(false),
                stop: tokio::sync::Notify::new(),
                background: Mutex::new(Vec::new()),
                overdue: Mutex::new(None),
            }),
        }
    }

    /// True while a run holds the lock, or within the hold window after a trigger.
    pub fn is_locked(&self) -> bool {
        let recent = self.inner.last_trigger.lock().is_some_and(|t| t.elapsed() < TRIGGER_HOLD);
        recent || self.inner.running.try_lock().is_err()
    }

    /// Start a run in the background; refused while one is running.
    pub fn trigger(&self, selection: Selection) -> Result<(), SyncError> {
        if self.inner.running.try_lock().is_err() {
            return Err(SyncError::InProgress);
        }
        *self.inner.last_trigger.lock() = Some(Instant::now());
        let this = self.clone();
        let handle = tokio::spawn(async move {
            match this.run(selection, None).await {
                Ok(report) => tracing::info!(
                    tables = report.tables.len(),
                    failed = report.failed().count(),
                    "background sync finished"
                ),
                Err(SyncError::InProgress) => {
                    tracing::info!("background sync skipped: another run is in progress")
                }
                Err(e) => tracing::error!("background sync failed: {e}"),
            }
        });
        self.keep(handle);
        Ok(())
    }

    fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Remember a background task so shutdown can wait for it.
    fn keep(&self, handle: tokio::task::JoinHandle<()>) {
        let mut tasks = self.inner.background.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    /// Ask a running sync to stop after its current table, and wait for background work.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.stop.notify_waiters();
        let tasks: Vec<_> = std::mem::take(&mut *self.inner.background.lock());
        for t in tasks {
            let _ = t.await;
        }
        let _ = self.inner.running.lock().await;
    }

    /// Run a sync now and report on every table; refused while another run is going.
    pub async fn run(
        &self,
        selection: Selection,
        observer: Option<&(dyn Fn(Progress<'_>) + Sync)>,
    ) -> Result<SyncReport, SyncError> {
        let guard = self.inner.running.try_lock().map_err(|_| SyncError::InProgress)?;
        self.run_holding(guard, selection, observer).await
    }

    /// Run a sync as soon as the one going (if any) ends: for work that must not be
    /// dropped, such as applying accepted webhook deliveries.
    pub async fn run_when_free(&self, selection: Selection) -> Result<SyncReport, SyncError> {
        let guard = self.inner.running.lock().await;
        self.run_holding(guard, selection, None).await
    }

    async fn run_holding(
        &self,
        _guard: tokio::sync::MutexGuard<'_, ()>,
        selection: Selection,
        observer: Option<&(dyn Fn(Progress<'_>) + Sync)>,
    ) -> Result<SyncReport, SyncError> {
        metrics::counter!(m::SYNC_RUNS).increment(1);
        let mut report = SyncReport::default();
        let (work, unknown) = self.select(&selection).await?;
        report.tables.extend(unknown);
        let total = work.len();
        let mut synced_sources = BTreeSet::new();
        for (index, (table, connector)) in work.into_iter().enumerate() {
            if self.inner.stopping.load(Ordering::SeqCst) {
                report.stopped_early = true;
                break;
            }
            if let Some(o) = observer {
                o(Progress::Started { table: &table, index, total });
            }
            let outcome = self.sync_one(&table, connector.clone()).await?;
            if outcome.status == "ok" {
                synced_sources.insert(connector.source_name().to_string());
            }
            if let Some(o) = observer {
                o(Progress::Finished(&outcome));
            }
            report.tables.push(outcome);
        }
        self.forget_overdue();
        let needs_rebuild = !synced_sources.is_empty() || !self.inner.layout.analytics_db().is_file();
        for connector in self.inner.connectors.iter().filter(|c| synced_sources.contains(c.source_name())) {
            extracts::write_source_extract(
                &self.inner.store,
                &self.inner.layout,
                &self.inner.connectors,
                connector.as_ref(),
            )
            .await?;
        }
        if needs_rebuild {
            if let Some(o) = observer {
                o(Progress::Rebuilding);
            }
            let rebuild = self.rebuild().await?;
            report.rebuilt = true;
            self.profile_changed(
                report.tables.iter().filter(|t| t.changed == Some(true)).map(|t| t.id.clone()).collect(),
            );
            report.exposed_tables = rebuild.table_count();
            report.problems = rebuild
                .problems
                .iter()
                .map(|p| {
                    format!(
                        "{}{}: {}",
                        p.source,
                        p.table.as_ref().map(|t| format!(".{t}")).unwrap_or_default(),
                        p.message
                    )
                })
                .collect();
        }
        Ok(report)
    }

    /// Rebuild the analytics DB from the extracts as they are, recording view ownership.
    pub async fn rebuild(&self) -> Result<agnes_engine::orchestrator::RebuildReport, SyncError> {
        let store = &self.inner.store;
        let ownership = store.view_ownership().load().await?;
        let fallback = store
            .registry()
            .list()
            .await?
            .into_iter()
            .filter(|t| t.query_mode == agnes_core::QueryMode::Materialized)
            .filter_map(|t| Some((self.source_name_for(&t)?, t.name)))
            .collect();
        let input = RebuildInput { ownership, fallback, remote_policy: self.inner.remote_policy.clone() };
        let inner = self.inner.clone();
        let report = tokio::task::spawn_blocking(move || inner.orchestrator.rebuild(&input))
            .await
            .map_err(|e| SyncError::Task(e.to_string()))??;
        metrics::histogram!(m::REBUILD_SECONDS).record(report.duration.as_secs_f64());
        store.view_ownership().apply(&report.new_claims, report.present.as_ref()).await?;
        Ok(report)
    }

    /// The source types some connector serves.
    pub fn source_types(&self) -> Vec<agnes_core::SourceType> {
        self.inner.connectors.iter().map(|c| c.source_type()).collect()
    }

    /// The columns a sync of `spec` would publish (registration precheck).
    pub async fn preview(&self, spec: &TableSpec) -> Result<Vec<agnes_engine::inspect::Column>, String> {
        let connector =
            self.connector_for(spec).ok_or_else(|| format!("no connector syncs query_mode '{}'", spec.query_mode))?;
        let (layout, limits, spec) = (self.inner.layout.clone(), self.inner.limits.clone(), spec.clone());
        tokio::task::spawn_blocking(move || {
            connector.preview(
                &spec,
                &SyncContext { layout: &layout, limits: &limits, last_sync: None, source_version: None },
            )
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    }

    /// Remove what was published for `spec` (its files, its sync state) and rebuild, in
    /// the background and never during a sync run: after an unregister, a rename or a
    /// change of layout. The next sync publishes the table anew if it still exists.
    pub async fn forget_published(&self, spec: &TableSpec) {
        let this = self.clone();
        let spec = spec.clone();
        let handle = tokio::spawn(async move {
            let _guard = this.inner.running.lock().await;
            if let Err(e) = this.forget_now(&spec).await {
                tracing::error!(table = %spec.id, "cannot remove the published data: {e}");
            }
        });
        self.keep(handle);
    }

    async fn forget_now(&self, spec: &TableSpec) -> Result<(), SyncError> {
        self.inner.store.sync_state().forget(&spec.id).await?;
        if let Some(source) = self.source_name_for(spec) {
            let file = self.inner.layout.table_file(&source, &spec.name);
            let dir = self.inner.layout.table_part_dir(&source, &spec.name);
            agnes_engine::fsutil::remove_if_exists(&file)?;
            if dir.is_dir() {
                std::fs::remove_dir_all(&dir).map_err(agnes_engine::EngineError::io("remove", &dir))?;
            }
        }
        if let Some(connector) = self.connector_for(spec) {
            extracts::write_source_extract(
                &self.inner.store,
                &self.inner.layout,
                &self.inner.connectors,
                connector.as_ref(),
            )
            .await?;
        }
        self.rebuild().await?;
        Ok(())
    }

    /// The extract directory a table's data lives in (`extracts/<source>`).
    pub fn source_name_for(&self, t: &TableSpec) -> Option<String> {
        Some(self.source_name_of(t.source_type?, t.connection.as_deref()))
    }

    /// The extract directory name of a source type's connection.
    pub fn source_name_of(&self, st: SourceType, connection: Option<&str>) -> String {
        agnes_connectors::connector_for(&self.inner.connectors, st, connection)
            .map(|c| c.source_name().to_string())
            .unwrap_or_else(|| st.as_str().to_string())
    }

    /// Why `spec`'s `connection` names no configured connection, if it does not: unknown,
    /// or left out while its source type has several.
    pub fn connection_problem(&self, spec: &TableSpec) -> Option<String> {
        let st = spec.source_type?;
        let names: Vec<&str> =
            self.inner.connectors.iter().filter(|c| c.source_type() == st).filter_map(|c| c.connection()).collect();
        match spec.connection.as_deref() {
            Some(name) if names.contains(&name) => None,
            Some(name) if names.is_empty() => {
                Some(format!("source_type '{st}' has no named connections; leave connection out (it was '{name}')"))
            }
            Some(name) => Some(format!(
                "connection '{name}' is not configured for source_type '{st}' (configured: {})",
                names.join(", ")
            )),
            None if names.len() > 1 => {
                Some(format!("several {st} connections are configured ({}): name one in connection", names.join(", ")))
            }
            None => None,
        }
    }

    /// The connector of a configured source by the name `connection` and `?source=` use:
    /// `files`, or a named connection.
    pub fn connector_named(&self, name: &str) -> Option<Arc<dyn Connector>> {
        self.inner
            .connectors
            .iter()
            .find(|c| match c.connection() {
                Some(connection) => connection == name,
                None => c.source_name() == name,
            })
            .cloned()
    }

    /// What is wrong with `spec`'s `source_options`, for its connector.
    pub fn options_problem(&self, spec: &TableSpec) -> Option<agnes_connectors::InvalidField> {
        self.connector_for(spec).and_then(|c| c.check_options(spec).err())
    }

    /// Why the connector of `spec` cannot sync it as registered, if it cannot.
    pub fn unsupported(&self, spec: &TableSpec) -> Option<String> {
        self.connector_for(spec).and_then(|c| c.unsupported(spec))
    }

    fn connector_for(&self, t: &TableSpec) -> Option<Arc<dyn Connector>> {
        agnes_connectors::connector_for(&self.inner.connectors, t.source_type?, t.connection.as_deref())
            .filter(|c| c.syncs(t.query_mode))
            .cloned()
    }

    /// The tables to sync with their connectors, and outcomes for references that name
    /// no syncable table.
    async fn select(
        &self,
        selection: &Selection,
    ) -> Result<(Vec<(TableSpec, Arc<dyn Connector>)>, Vec<TableOutcome>), SyncError> {
        let registry = self.inner.store.registry();
        let mut work = Vec::new();
        let mut unknown = Vec::new();
        match selection {
            Selection::Tables(refs) => {
                let mut seen = BTreeSet::new();
                for r in refs {
                    match registry.resolve(r).await? {
                        Some(t) => match self.connector_for(&t) {
                            Some(c) if seen.insert(t.id.clone()) => work.push((t, c)),
                            Some(_) => {}
                            None => unknown.push(not_syncable(
                                &t.id,
                                &t.name,
                                format!(
                                    "no connector syncs source_type '{}' with query_mode '{}'",
                                    t.source_type.map(|s| s.as_str()).unwrap_or("none"),
                                    t.query_mode
                                ),
                            )),
                        },
                        None => unknown.push(not_syncable(r, r, format!("table '{r}' is not registered"))),
                    }
                }
            }
            Selection::Due => {
                let now = chrono::Utc::now();
                let states: std::collections::HashMap<_, _> =
                    self.inner.store.sync_state().list().await?.into_iter().map(|s| (s.table_id.clone(), s)).collect();
                for t in registry.list().await? {
                    let Some(c) = self.connector_for(&t) else {
                        continue;
                    };
                    let last = states.get(&t.id).and_then(|s| s.last_sync);
                    if filter_due(t.effective_schedule(&self.inner.default_schedule), last, now) {
                        work.push((t, c));
                    }
                }
            }
        }
        Ok((work, unknown))
    }

    async fn sync_one(&self, table: &TableSpec, connector: Arc<dyn Connector>) -> Result<TableOutcome, SyncError> {
        let started = Instant::now();
        let before = self.inner.store.sync_state().get(&table.id).await?;
        let last_sync = before.as_ref().and_then(|s| s.last_sync);
        let version = before.and_then(|s| s.source_version);
        let (layout, limits, spec) = (self.inner.layout.clone(), self.inner.limits.clone(), table.clone());
        let result = tokio::task::spawn_blocking(move || {
            let ctx = SyncContext { layout: &layout, limits: &limits, last_sync, source_version: version.as_deref() };
            connector.sync_table(&spec, &ctx)
        })
        .await;
        let duration_ms = started.elapsed().as_millis() as i64;
        let source_name = self.source_name_for(table).unwrap_or_default();
        let states = self.inner.store.sync_state();
        let mut outcome = TableOutcome {
            id: table.id.clone(),
            name: table.name.clone(),
            status: "ok",
            rows: None,
            size_bytes: None,
            changed: None,
            error: None,
            duration_ms,
        };
        let error = match result {
            Ok(Ok(synced)) => {
                let published = published(&source_name, &synced);
                let changed = states.record_success(&table.id, &published, duration_ms).await?;
                self.inner.store.scheduler().succeeded(&table.id).await?;
                metrics::counter!(m::SYNC_TABLES, "status" => "ok").increment(1);
                metrics::counter!(m::PUBLISHED_ROWS).increment(published.rows.max(0) as u64);
                metrics::counter!(m::PUBLISHED_BYTES).increment(published.size_bytes.max(0) as u64);
                tracing::info!(table = %table.id, rows = published.rows, bytes = published.size_bytes, changed, ms = duration_ms, "table synced");
                outcome.rows = Some(published.rows);
                outcome.size_bytes = Some(published.size_bytes);
                outcome.changed = Some(changed);
                return Ok(outcome);
            }
            Ok(Err(e)) => e.to_string(),
            Err(join) => format!("sync task failed: {join}"),
        };
        states.record_error(&table.id, &source_name, &error, duration_ms).await?;
        metrics::counter!(m::SYNC_TABLES, "status" => "error").increment(1);
        metrics::counter!(m::SYNC_TABLE_FAILURES, "table" => table.id.clone()).increment(1);
        tracing::warn!(table = %table.id, ms = duration_ms, "table sync failed: {error}");
        outcome.status = "error";
        outcome.error = Some(error);
        Ok(outcome)
    }
}

fn not_syncable(id: &str, name: &str, error: String) -> TableOutcome {
    TableOutcome {
        id: id.to_string(),
        name: name.to_string(),
        status: "error",
        rows: None,
        size_bytes: None,
        changed: None,
        error: Some(error),
        duration_ms: 0,
    }
}

fn published(source_name: &str, synced: &SyncedTable) -> Published {
    match &synced.publication {
        Publication::Single(f) => Published {
            source_name: source_name.to_string(),
            rows: f.rows,
            size_bytes: f.size_bytes,
            hash: f.md5.clone(),
            checksum: f.checksum.clone(),
            parts: Vec::new(),
            source_version: synced.source_version.clone(),
        },
        Publication::Parts(_) | Publication::Layered(_) => {
            // A table in parts changes exactly when some part changes.
            use md5::Digest;
            let parts = synced.parts();
            let mut h = md5::Md5::new();
            for p in parts {
                h.update(format!("{}:{}\n", p.key, p.file.md5));
            }
            Published {
                source_name: source_name.to_string(),
                rows: synced.rows(),
                size_bytes: synced.size_bytes(),
                hash: hex::encode(h.finalize()),
                checksum: String::new(),
                parts: parts
                    .iter()
                    .map(|p| PartState {
                        part: p.key.clone(),
                        hash: p.file.md5.clone(),
                        checksum: p.file.checksum.clone(),
                        rows: p.file.rows,
                        size_bytes: p.file.size_bytes,
                    })
                    .collect(),
                source_version: synced.source_version.clone(),
            }
        }
    }
}

/// `AGNES_REMOTE_ATTACH_EXTENSIONS` / `AGNES_REMOTE_ATTACH_TOKEN_ENVS` replace the
/// default allowlists (comma-separated).
fn remote_policy_from_env() -> RemotePolicy {
    let mut policy = RemotePolicy::default();
    let list = |v: String| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if let Ok(v) = std::env::var("AGNES_REMOTE_ATTACH_EXTENSIONS") {
        policy.extensions = list(v);
    }
    if let Ok(v) = std::env::var("AGNES_REMOTE_ATTACH_TOKEN_ENVS") {
        policy.token_envs = list(v);
    }
    policy
}

#[cfg(test)]
mod tests;
