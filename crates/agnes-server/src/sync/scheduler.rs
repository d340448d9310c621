//! The scheduler inside the server (the original ran a separate process that called the
//! server over HTTP). Every tick it syncs the tables that are due through the one sync
//! path, so it never overlaps a manual trigger: both need the sync service's single run.
//!
//! What it knows lives in the state DB: each job's last run, whether one is in flight (a
//! run cut off by a stop is recorded as interrupted at the next start; the tables it did
//! not finish are still due, those it finished are not, so nothing is lost or repeated),
//! and the backoff of tables whose sync failed: such a table waits `base × 2^(failures−1)`,
//! at most `max`, give or take a quarter, while the others go on.

use super::{Selection, SyncError, SyncReport, SyncService};
use rand::Rng;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The job that keeps data fresh.
pub const DATA_REFRESH: &str = "data-refresh";

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Time between ticks; zero switches the scheduler off.
    pub tick: Duration,
    /// Wait after start-up before the first tick.
    pub grace: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How often a table without a schedule of its own is refreshed (the original's
    /// data-refresh job interval).
    pub refresh: Duration,
}

impl SchedulerConfig {
    pub fn load(instance: &Value) -> Result<SchedulerConfig, String> {
        let seconds = |env: &str, key: &str, default: u64| -> Result<Duration, String> {
            crate::settings::setting(instance, env, &["scheduler", key], default).map(Duration::from_secs)
        };
        Ok(SchedulerConfig {
            tick: seconds("AGNES_SCHEDULER_TICK_SECONDS", "tick_seconds", 30)?,
            grace: seconds("AGNES_SCHEDULER_STARTUP_GRACE_SECONDS", "startup_grace_seconds", 30)?,
            retry_base: seconds("AGNES_SYNC_RETRY_BASE_SECONDS", "retry_base_seconds", 60)?,
            retry_max: seconds("AGNES_SYNC_RETRY_MAX_SECONDS", "retry_max_seconds", 3600)?,
            refresh: seconds("SCHEDULER_DATA_REFRESH_INTERVAL", "data_refresh_seconds", 900)?,
        })
    }
}

/// How long a table that failed `failures` times in a row waits, before jitter.
pub fn backoff(failures: i64, base: Duration, max: Duration) -> Duration {
    let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base.saturating_mul(1u32 << doublings).min(max)
}

/// What one tick did.
#[derive(Debug)]
pub enum Tick {
    /// Nothing was due.
    Idle,
    /// Another run (a manual trigger) held the sync service.
    Skipped,
    Ran(SyncReport),
}

impl SyncService {
    /// The tables due now that are not waiting out a failure's backoff. A table without a
    /// schedule of its own is due every `refresh`.
    pub async fn due_now(&self, refresh: Duration) -> Result<Vec<String>, SyncError> {
        let now = chrono::Utc::now();
        let (due, _) = self.select(&Selection::Due).await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let last_syncs: HashMap<String, chrono::DateTime<chrono::Utc>> = self
            .inner
            .store
            .sync_state()
            .list()
            .await?
            .into_iter()
            .filter_map(|s| Some((s.table_id, s.last_sync?)))
            .collect();
        let refresh = chrono::Duration::from_std(refresh).unwrap_or(chrono::Duration::MAX);
        let due = due.into_iter().filter(|(t, _)| {
            t.effective_schedule(&self.inner.default_schedule).is_some()
                || last_syncs.get(&t.id).is_none_or(|last| now - *last >= refresh)
        });
        let waiting: HashMap<String, String> =
            self.inner.store.scheduler().backoffs().await?.into_iter().map(|b| (b.table_id, b.retry_at)).collect();
        let waits = |id: &str| {
            waiting.get(id).and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok()).is_some_and(|at| at > now)
        };
        Ok(due.map(|(t, _)| t.id).filter(|id| !waits(id)).collect())
    }

    /// Sync what is due, and record the run and each failure's backoff.
    pub async fn tick(&self, config: &SchedulerConfig) -> Result<Tick, SyncError> {
        let due = self.due_now(config.refresh).await?;
        if due.is_empty() {
            return Ok(Tick::Idle);
        }
        let jobs = self.inner.store.scheduler();
        jobs.started(DATA_REFRESH, chrono::Utc::now()).await?;
        let started = Instant::now();
        let result = self.run(Selection::Tables(due), None).await;
        let ms = started.elapsed().as_millis() as i64;
        let report = match result {
            Ok(report) => report,
            Err(SyncError::InProgress) => {
                jobs.finished(DATA_REFRESH, "skipped", Some("another sync was running"), ms).await?;
                return Ok(Tick::Skipped);
            }
            Err(e) => {
                jobs.finished(DATA_REFRESH, "error", Some(&e.to_string()), ms).await?;
                return Err(e);
            }
        };
        let mut errors = Vec::new();
        for failed in report.failed() {
            let failures = jobs.failures(&failed.id).await? + 1;
            let wait = backoff(failures, config.retry_base, config.retry_max)
                .mul_f64(rand::thread_rng().gen_range(0.75..1.25));
            let retry_at = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
            let error = failed.error.clone().unwrap_or_default();
            jobs.failed(&failed.id, retry_at, &error).await?;
            errors.push(format!("{}: {error}", failed.id));
        }
        let status = match errors.len() {
            0 => "ok",
            n if n == report.tables.len() => "error",
            _ => "partial",
        };
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        jobs.finished(DATA_REFRESH, status, error.as_deref(), ms).await?;
        Ok(Tick::Ran(report))
    }

    /// Start ticking in the background until shutdown. A run cut off by the last stop is
    /// recorded first.
    pub async fn start_scheduler(&self, config: SchedulerConfig) -> Result<(), SyncError> {
        for job in self.inner.store.scheduler().mark_interrupted().await? {
            tracing::warn!(job, "the last run of this job was cut off by a stop; what it did not finish is still due");
        }
        if config.tick.is_zero() {
            tracing::info!("scheduler off (AGNES_SCHEDULER_TICK_SECONDS=0)");
            return Ok(());
        }
        let this = self.clone();
        let handle = tokio::spawn(async move {
            let mut wait = config.grace;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = this.inner.stop.notified() => return,
                }
                if this.is_stopping() {
                    return;
                }
                match this.tick(&config).await {
                    Ok(Tick::Ran(report)) => {
                        tracing::info!(
                            tables = report.tables.len(),
                            failed = report.failed().count(),
                            "scheduled sync done"
                        )
                    }
                    Ok(Tick::Idle | Tick::Skipped) => {}
                    Err(e) => tracing::error!("scheduled sync failed: {e}"),
                }
                wait = config.tick;
            }
        });
        self.keep(handle);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let (base, max) = (Duration::from_secs(60), Duration::from_secs(3600));
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n, base, max).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(1000, base, max), max, "no overflow");
    }
}
