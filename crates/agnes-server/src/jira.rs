//! The Jira service: from an accepted webhook delivery to republished tables, off the
//! request path and durably (spec §8.3, with its flaws fixed).
//!
//! A delivery is logged to the raw store and queued in the state DB before it is
//! answered, so an accepted event survives a restart. The worker takes what is due,
//! keeps the newest event of each issue (Jira is asked for the issue as it is now, so
//! duplicate and out-of-order deliveries converge on the same rows), refreshes the raw
//! JSON of each (a few at once), records the changes in the journal and syncs the six
//! tables through the sync service, waiting its turn. An event leaves the queue only when
//! its issue reached the tables; a failure waits with backoff and is tried again.
//!
//! Beside it, the jobs loop runs backfills (Jira's search paged, each issue found
//! queued; resumable from the page it reached) and the reconcile, which asks Jira what
//! changed since the last one so a missed delivery is caught.

use crate::sync::{Selection, SyncService};
use agnes_connectors::jira::{refresh, JiraClient, JiraSource, RawStore};
use agnes_core::{QueryMode, SourceType, SyncStrategy, TableSpec};
use agnes_store::jira::{JiraEvent, JiraJob};
use agnes_store::Store;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Issues refreshed at once (Jira's burst limits are per account; four is polite).
const PARALLEL: usize = 4;
/// Events taken per round.
const BATCH: i64 = 1000;
/// Failed attempts after which an event waits an hour between tries.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct JiraService {
    inner: Arc<Inner>,
}

struct Inner {
    source: JiraSource,
    raw: RawStore,
    store: Store,
    sync: SyncService,
    wake: tokio::sync::Notify,
    jobs: tokio::sync::Notify,
    stopping: AtomicBool,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The first retry's wait (doubled per failed attempt).
    retry: Duration,
}

/// What the health answer says of the queue and the reconcile.
pub struct Health {
    pub configured: bool,
    pub webhook_secret_set: bool,
    pub queue: agnes_store::jira::QueueState,
    pub last_reconcile_at: Option<String>,
}

fn retry_from_env() -> Duration {
    let secs = std::env::var("AGNES_JIRA_RETRY_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(5.0);
    Duration::from_secs_f64(secs.max(0.01))
}

/// The JQL of a backfill: the admin's restriction, updated since a day or time, or
/// (Jira refuses an unbounded search) every issue ever created; oldest first.
pub fn backfill_jql(jql: Option<&str>, since: Option<&str>) -> Result<String, String> {
    let mut clauses = Vec::new();
    if let Some(j) = jql.map(str::trim).filter(|j| !j.is_empty()) {
        if j.to_lowercase().contains("order by") {
            return Err("--jql takes a restriction only; the backfill orders by creation".into());
        }
        clauses.push(format!("({j})"));
    }
    if let Some(s) = since.map(str::trim).filter(|s| !s.is_empty()) {
        let day = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok();
        let minute = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").is_ok();
        if !day && !minute {
            return Err(format!("--since '{s}' is not a day (2024-01-31) or a time (2024-01-31 08:00)"));
        }
        clauses.push(format!("updated >= \"{s}\""));
    }
    if clauses.is_empty() {
        clauses.push("created >= \"1970-01-01\"".into());
    }
    Ok(format!("{} ORDER BY created ASC", clauses.join(" AND ")))
}

impl JiraService {
    pub fn new(source: JiraSource, raw: RawStore, store: Store, sync: SyncService) -> JiraService {
        JiraService {
            inner: Arc::new(Inner {
                source,
                raw,
                store,
                sync,
                wake: tokio::sync::Notify::new(),
                jobs: tokio::sync::Notify::new(),
                stopping: AtomicBool::new(false),
                tasks: Mutex::new(Vec::new()),
                retry: retry_from_env(),
            }),
        }
    }

    pub fn source(&self) -> &JiraSource {
        &self.inner.source
    }

    /// Register the six tables that are not registered yet (by `source_table`), named as
    /// the contract names them, or `jira_<name>` when another source took the name.
    pub async fn ensure_registered(&self) -> Result<Vec<String>, agnes_store::StoreError> {
        let registry = self.inner.store.registry();
        let tables = registry.list().await?;
        let mut added = Vec::new();
        for entity in agnes_connectors::jira::extract::ENTITIES {
            let present = tables
                .iter()
                .any(|t| t.source_type == Some(SourceType::Jira) && t.source_table.as_deref() == Some(entity.name));
            if present {
                continue;
            }
            let taken = |name: &str| tables.iter().any(|t| t.id == agnes_core::registry_id_for_name(name));
            let name = if taken(entity.name) { format!("jira_{}", entity.name) } else { entity.name.to_string() };
            if taken(&name) {
                tracing::warn!(
                    "the Jira table {} is not registered: the names {} and {name} are taken",
                    entity.name,
                    entity.name
                );
                continue;
            }
            let mut spec = TableSpec::new(&name, SourceType::Jira, QueryMode::Local, chrono::Utc::now());
            spec.source_table = Some(entity.name.into());
            spec.sync_strategy = SyncStrategy::Partitioned;
            spec.registered_by = Some("jira".into());
            // Republished every few seconds while deliveries arrive: a profile after each
            // would cost more than the change; an admin may turn it on.
            spec.profile_after_sync = false;
            spec.description = Some(format!("Jira {}, one part per month of the issue's creation", entity.name));
            registry.insert(&spec).await?;
            added.push(spec.id);
        }
        Ok(added)
    }

    /// Start the worker and the jobs loop.
    pub fn start(&self) {
        let (worker, jobs) = (self.clone(), self.clone());
        let mut tasks = self.inner.tasks.lock();
        tasks.push(tokio::spawn(async move { worker.work().await }));
        tasks.push(tokio::spawn(async move { jobs.run_jobs().await }));
    }

    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.wake.notify_waiters();
        self.inner.jobs.notify_waiters();
        let tasks: Vec<_> = std::mem::take(&mut *self.inner.tasks.lock());
        for t in tasks {
            let _ = t.await;
        }
    }

    fn stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Keep an accepted delivery: logged as received, queued durably, the worker woken.
    pub async fn accept(&self, key: &str, event: &str, body: Vec<u8>) -> Result<(), String> {
        let (raw, name) = (self.inner.raw.clone(), event.to_string());
        tokio::task::spawn_blocking(move || raw.log_event(&name, &body))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.inner.store.jira().enqueue(&[key.to_string()], event).await.map_err(|e| e.to_string())?;
        self.inner.wake.notify_one();
        Ok(())
    }

    pub async fn health(&self) -> Result<Health, agnes_store::StoreError> {
        let jira = self.inner.store.jira();
        Ok(Health {
            configured: self.inner.source.credentials().is_some(),
            webhook_secret_set: self.inner.source.webhook_secret().is_some(),
            queue: jira.queue_state().await?,
            last_reconcile_at: jira.job("reconcile").await?.and_then(|j| j.started_at),
        })
    }

    /// Start a backfill (one at a time); its progress is [`Self::backfill`].
    pub async fn start_backfill(&self, jql: Option<&str>, since: Option<&str>) -> Result<JiraJob, BackfillRefusal> {
        let jql = backfill_jql(jql, since).map_err(BackfillRefusal::Invalid)?;
        let jira = self.inner.store.jira();
        let last = jira.job("backfill").await?;
        if last.as_ref().is_some_and(|j| j.state == "running") {
            return Err(BackfillRefusal::Running);
        }
        let job = match last {
            // A failed backfill of the same search resumes from the page it reached.
            Some(j) if j.state == "failed" && j.jql.as_deref() == Some(jql.as_str()) => {
                JiraJob { state: "running".into(), error: None, finished_at: None, ..j }
            }
            _ => JiraJob {
                name: "backfill".into(),
                state: "running".into(),
                jql: Some(jql),
                started_at: Some(chrono::Utc::now().to_rfc3339()),
                ..Default::default()
            },
        };
        jira.save_job(&job).await?;
        self.inner.jobs.notify_one();
        Ok(job)
    }

    pub async fn backfill(&self) -> Result<Option<JiraJob>, agnes_store::StoreError> {
        self.inner.store.jira().job("backfill").await
    }

    pub async fn pending(&self) -> Result<i64, agnes_store::StoreError> {
        Ok(self.inner.store.jira().queue_state().await?.pending)
    }

    /// The worker: take what is due, bring it to the tables, sleep until more is.
    async fn work(&self) {
        while !self.stopping() {
            let due = match self.inner.store.jira().due(chrono::Utc::now(), BATCH).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!("the Jira queue cannot be read: {e}");
                    Vec::new()
                }
            };
            if due.is_empty() {
                let next = self.inner.store.jira().next_due().await.ok().flatten();
                let wait = next
                    .map(|at| (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO))
                    .unwrap_or(Duration::from_secs(30))
                    .clamp(Duration::from_millis(50), Duration::from_secs(30));
                tokio::select! {
                    _ = self.inner.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            if let Err(e) = self.apply(due).await {
                tracing::error!("applying Jira events failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Refresh the issues of `due`, sync the tables, and settle each event.
    async fn apply(&self, due: Vec<JiraEvent>) -> Result<(), String> {
        // The newest event of each issue says whether it was deleted; all its ids settle.
        let mut issues: BTreeMap<String, (bool, Vec<JiraEvent>)> = BTreeMap::new();
        for e in due {
            let entry = issues.entry(e.issue_key.clone()).or_default();
            entry.0 = e.event.contains("deleted");
            entry.1.push(e);
        }
        let (source, raw) = (self.inner.source.clone(), self.inner.raw.clone());
        let work: Vec<(String, bool)> = issues.iter().map(|(k, (deleted, _))| (k.clone(), *deleted)).collect();
        let outcomes =
            tokio::task::spawn_blocking(move || refresh_all(&source, &raw, &work)).await.map_err(|e| e.to_string())?;
        let jira = self.inner.store.jira();
        let (mut reached, mut failed): (Vec<JiraEvent>, Vec<(JiraEvent, String)>) = (Vec::new(), Vec::new());
        for (key, outcome) in outcomes {
            let events = issues.remove(&key).map(|(_, e)| e).unwrap_or_default();
            match outcome {
                Ok(()) => reached.extend(events),
                Err(e) => failed.extend(events.into_iter().map(|ev| (ev, e.clone()))),
            }
        }
        if !reached.is_empty() {
            if let Err(e) = self.sync_tables().await {
                failed.extend(reached.drain(..).map(|ev| (ev, e.clone())));
            }
        }
        if !reached.is_empty() {
            let now = chrono::Utc::now();
            for ev in &reached {
                if let Ok(received) = chrono::DateTime::parse_from_rfc3339(&ev.received_at) {
                    let seconds = (now - received.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0;
                    metrics::histogram!(crate::metrics::JIRA_EVENT_SECONDS).record(seconds.max(0.0));
                }
            }
            metrics::counter!(crate::metrics::JIRA_EVENTS, "outcome" => "applied").increment(reached.len() as u64);
            jira.done(&reached.iter().map(|e| e.id).collect::<Vec<_>>()).await.map_err(|e| e.to_string())?;
        }
        for (ev, error) in failed {
            let wait = self.inner.retry.saturating_mul(1 << ev.attempts.clamp(0, 16) as u32).min(MAX_BACKOFF);
            let at = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
            tracing::warn!(issue = %ev.issue_key, attempts = ev.attempts + 1, "a Jira event failed, tried again later: {error}");
            metrics::counter!(crate::metrics::JIRA_EVENTS, "outcome" => "failed").increment(1);
            jira.failed(&[ev.id], &error, at).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Sync the Jira tables (waiting for a run in progress); an error if any failed.
    async fn sync_tables(&self) -> Result<(), String> {
        let ids: Vec<String> = self
            .inner
            .store
            .registry()
            .list()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|t| t.source_type == Some(SourceType::Jira))
            .map(|t| t.id)
            .collect();
        if ids.is_empty() {
            return Err("no Jira table is registered".into());
        }
        let report = self.inner.sync.run_when_free(Selection::Tables(ids.clone())).await.map_err(|e| e.to_string())?;
        let failed = report
            .failed()
            .next()
            .map(|t| format!("syncing {} failed: {}", t.name, t.error.clone().unwrap_or_default()));
        failed.map_or(Ok(()), Err)?;
        self.compact_journal(&ids).await;
        Ok(())
    }

    /// Drop the journal entries every Jira table has applied, so each sync reads only what
    /// some table still lacks (the journal would otherwise grow by every delivery).
    async fn compact_journal(&self, tables: &[String]) {
        let states = self.inner.store.sync_state();
        let mut applied = u64::MAX;
        for id in tables {
            match states.get(id).await.ok().flatten().and_then(|s| s.source_version?.parse::<u64>().ok()) {
                Some(v) => applied = applied.min(v),
                // A table never synced builds from the raw store, not the journal; but a
                // version unknown here is a reason to keep everything.
                None => return,
            }
        }
        let raw = self.inner.raw.clone();
        match tokio::task::spawn_blocking(move || raw.compact(applied)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("the Jira journal was not compacted: {e}"),
            Err(e) => tracing::warn!("the Jira journal compaction failed: {e}"),
        }
    }

    /// Backfill pages while one runs; the reconcile when it is due.
    async fn run_jobs(&self) {
        while !self.stopping() {
            let worked = match self.backfill_page().await {
                Ok(more) => more,
                Err(e) => {
                    tracing::warn!("the Jira backfill failed a page, tried again: {e}");
                    false
                }
            };
            if worked {
                continue;
            }
            if let Err(e) = self.reconcile_if_due().await {
                tracing::warn!("the Jira reconcile failed, tried again later: {e}");
            }
            let nap = self.inner.source.reconcile_interval().unwrap_or(Duration::MAX).min(Duration::from_secs(30));
            tokio::select! {
                _ = self.inner.jobs.notified() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    /// One page of a running backfill: its issues queued, the page remembered. Answers
    /// whether more pages follow.
    async fn backfill_page(&self) -> Result<bool, String> {
        let jira = self.inner.store.jira();
        let Some(mut job) = jira.job("backfill").await.map_err(|e| e.to_string())?.filter(|j| j.state == "running")
        else {
            return Ok(false);
        };
        let (source, jql, token) =
            (self.inner.source.clone(), job.jql.clone().unwrap_or_default(), job.next_page_token.clone());
        let page = tokio::task::spawn_blocking(move || JiraClient::connect(&source)?.search(&jql, token.as_deref()))
            .await
            .map_err(|e| e.to_string())?;
        match page {
            Ok((keys, next)) => {
                jira.enqueue(&keys, "backfill").await.map_err(|e| e.to_string())?;
                self.inner.wake.notify_one();
                job.pages += 1;
                job.issues += keys.len() as i64;
                job.error = None;
                job.next_page_token = next.clone();
                if next.is_none() {
                    job.state = "done".into();
                    job.finished_at = Some(chrono::Utc::now().to_rfc3339());
                }
                jira.save_job(&job).await.map_err(|e| e.to_string())?;
                Ok(next.is_some())
            }
            Err(e) => {
                // The client retried what was transient: this needs a person. Started again
                // with the same search, the backfill resumes from this page.
                tracing::warn!("the Jira backfill stopped: {e}");
                job.state = "failed".into();
                job.error = Some(e.to_string());
                job.finished_at = Some(chrono::Utc::now().to_rfc3339());
                jira.save_job(&job).await.map_err(|e| e.to_string())?;
                Ok(false)
            }
        }
    }

    /// When the reconcile interval has passed: queue every issue Jira says changed since
    /// the last reconcile (a margin of ten minutes more). The first run only starts the
    /// clock: what came before is a backfill's job.
    async fn reconcile_if_due(&self) -> Result<(), String> {
        let Some(interval) = self.inner.source.reconcile_interval() else { return Ok(()) };
        if self.inner.source.credentials().is_none() {
            return Ok(());
        }
        let jira = self.inner.store.jira();
        let now = chrono::Utc::now();
        let last = jira.job("reconcile").await.map_err(|e| e.to_string())?;
        let since = last
            .as_ref()
            .and_then(|j| j.started_at.as_deref())
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        let mut job = JiraJob {
            name: "reconcile".into(),
            state: "done".into(),
            started_at: Some(now.to_rfc3339()),
            ..Default::default()
        };
        let Some(since) = since else {
            return jira.save_job(&job).await.map_err(|e| e.to_string());
        };
        let elapsed = (now - since.with_timezone(&chrono::Utc)).to_std().unwrap_or_default();
        if elapsed < interval {
            return Ok(());
        }
        // Relative JQL (`-N m`) is read in no time zone, unlike a date.
        let minutes = elapsed.as_secs() / 60 + 10;
        let jql = format!("updated >= -{minutes}m ORDER BY updated ASC");
        let source = self.inner.source.clone();
        let keys = tokio::task::spawn_blocking(move || -> Result<Vec<String>, agnes_connectors::ConnectorError> {
            let client = JiraClient::connect(&source)?;
            let (mut keys, mut page) = (Vec::new(), None);
            loop {
                let (found, next) = client.search(&jql, page.as_deref())?;
                keys.extend(found);
                match next {
                    Some(n) => page = Some(n),
                    None => return Ok(keys),
                }
            }
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        jira.enqueue(&keys, "reconcile").await.map_err(|e| e.to_string())?;
        self.inner.wake.notify_one();
        job.issues = keys.len() as i64;
        job.finished_at = Some(chrono::Utc::now().to_rfc3339());
        jira.save_job(&job).await.map_err(|e| e.to_string())?;
        tracing::info!(issues = keys.len(), "Jira reconcile queued what changed");
        Ok(())
    }
}

/// Why a backfill did not start.
#[derive(Debug, thiserror::Error)]
pub enum BackfillRefusal {
    #[error("{0}")]
    Invalid(String),
    #[error("a backfill is already running")]
    Running,
    #[error(transparent)]
    Store(#[from] agnes_store::StoreError),
}

/// Refresh each issue's raw JSON (`PARALLEL` at once) and journal the changes; each
/// key's outcome.
fn refresh_all(source: &JiraSource, raw: &RawStore, work: &[(String, bool)]) -> Vec<(String, Result<(), String>)> {
    let client = match JiraClient::connect(source) {
        Ok(c) => c,
        Err(e) => return work.iter().map(|(k, _)| (k.clone(), Err(e.to_string()))).collect(),
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(work.len()));
    let changed = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL.min(work.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((key, deleted)) = work.get(i) else { break };
                let outcome = refresh(&client, source, raw, key, *deleted).map(|done| {
                    for w in &done.warnings {
                        tracing::warn!("{w}");
                    }
                    changed.lock().extend(done.keys);
                });
                results.lock().push((key.clone(), outcome.map_err(|e| e.to_string())));
            });
        }
    });
    let mut results = results.into_inner();
    if let Err(e) = raw.record_changes(&changed.into_inner()) {
        // Saved but not journaled: the tables would not see it; the events stay queued.
        for r in results.iter_mut() {
            r.1 = Err(format!("the Jira journal cannot be written: {e}"));
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::backfill_jql;

    #[test]
    fn backfills_search_bounded_jql_oldest_first() {
        assert_eq!(backfill_jql(None, None).unwrap(), "created >= \"1970-01-01\" ORDER BY created ASC");
        assert_eq!(
            backfill_jql(Some("project = SUP"), Some("2024-01-31")).unwrap(),
            "(project = SUP) AND updated >= \"2024-01-31\" ORDER BY created ASC"
        );
        assert!(backfill_jql(None, Some("2024-01-31 08:00")).is_ok());
        assert!(backfill_jql(None, Some("yesterday")).unwrap_err().contains("--since"));
        assert!(backfill_jql(Some("project = X ORDER BY key"), None).is_err());
    }
}
