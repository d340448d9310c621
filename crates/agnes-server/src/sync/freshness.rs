//! How fresh each table is: when it was last synced, when it falls due, and whether the
//! scheduler is late with it. One computation for the scheduler view, the catalog and the
//! detailed health check.

use super::{SchedulerConfig, SyncError, SyncService};
use agnes_core::schedule::Schedule;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

pub use agnes_core::api::Freshness;

/// Sync state by registry id.
pub type States = HashMap<String, agnes_store::sync_state::SyncState>;

impl SyncService {
    /// Every registered table's freshness.
    pub async fn freshness(&self, config: &SchedulerConfig) -> Result<Vec<Freshness>, SyncError> {
        // The kept snapshot of the registry and states: decoded once per change, not per ask.
        let snapshot = self.inner.store.snapshot().await?;
        let states: States = snapshot.states.iter().map(|s| (s.table_id.clone(), s.clone())).collect();
        self.freshness_of(&snapshot.registry, &states, config).await
    }

    /// The ids of the overdue tables as a JSON array, for the manifest. Worked out at most
    /// every few seconds: every pull asks, and for 1,000 tables the computation costs more
    /// than the manifest itself. A sync run forgets it.
    pub async fn overdue_ids(&self, config: &SchedulerConfig) -> Result<Arc<str>, SyncError> {
        const KEEP: std::time::Duration = std::time::Duration::from_secs(5);
        if let Some((at, ids)) = self.inner.overdue.lock().as_ref() {
            if at.elapsed() < KEEP {
                return Ok(ids.clone());
            }
        }
        let ids: Vec<String> = self.freshness(config).await?.into_iter().filter(|f| f.overdue).map(|f| f.id).collect();
        let ids: Arc<str> = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()).into();
        *self.inner.overdue.lock() = Some((Instant::now(), ids.clone()));
        Ok(ids)
    }

    pub(super) fn forget_overdue(&self) {
        *self.inner.overdue.lock() = None;
    }

    /// The freshness of `tables`, from sync state the caller has already read.
    pub async fn freshness_of(
        &self,
        tables: impl IntoIterator<Item = &agnes_core::TableSpec>,
        states: &States,
        config: &SchedulerConfig,
    ) -> Result<Vec<Freshness>, SyncError> {
        let store = &self.inner.store;
        let now = Utc::now();
        let backoffs: HashMap<String, agnes_store::scheduler::Backoff> =
            store.scheduler().backoffs().await?.into_iter().map(|b| (b.table_id.clone(), b)).collect();
        let refresh = chrono::Duration::from_std(config.refresh).unwrap_or(chrono::Duration::MAX);
        let grace = chrono::Duration::from_std(config.tick * 2).unwrap_or(chrono::Duration::MAX);
        let mut out = Vec::new();
        for t in tables {
            let state = states.get(&t.id);
            let last = state.and_then(|s| s.last_sync);
            let schedule = t.effective_schedule(&self.inner.default_schedule).map(String::from);
            let syncable = self.connector_for(t).is_some();
            let due_at = match (syncable, last) {
                (false, _) => None,
                (true, None) => Some(now),
                (true, Some(l)) => Some(match schedule.as_deref().and_then(|s| s.parse::<Schedule>().ok()) {
                    // The first moment after the last sync at which the schedule says "due".
                    Some(parsed) => parsed.next_due(Some(l), l),
                    None => l + refresh,
                }),
            };
            let backoff = backoffs.get(&t.id);
            let retry_at = backoff.and_then(|b| DateTime::parse_from_rfc3339(&b.retry_at).ok()).map(|d| d.to_utc());
            let next_sync_at = due_at.map(|d| retry_at.map_or(d, |r| r.max(d)).max(now));
            let overdue = syncable && (last.is_none() || due_at.is_some_and(|d| now - d > grace));
            out.push(Freshness {
                id: t.id.clone(),
                name: t.name.clone(),
                schedule,
                last_sync: last,
                due_at,
                next_sync_at,
                overdue,
                status: state.map(|s| s.status.clone()),
                last_error: state.and_then(|s| s.error.clone()),
                failures: backoff.map_or(0, |b| b.failures),
                retry_at,
            });
        }
        Ok(out)
    }
}
