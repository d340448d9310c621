//! What the in-server scheduler remembers across restarts: each job's last run and whether
//! one is in flight, and the backoff of tables whose sync failed.

use crate::error::Result;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct JobState {
    pub name: String,
    pub running_since: Option<String>,
    pub last_started_at: Option<String>,
    pub last_finished_at: Option<String>,
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    pub last_duration_ms: Option<i64>,
    pub runs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Backoff {
    pub table_id: String,
    pub failures: i64,
    pub retry_at: String,
    pub last_error: Option<String>,
}

pub struct SchedulerRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> SchedulerRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        SchedulerRepo { pool }
    }

    /// Mark `job` as running since `at`.
    pub async fn started(&self, job: &str, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO scheduler_jobs (name, running_since, last_started_at) VALUES (?1, ?2, ?2) \
             ON CONFLICT (name) DO UPDATE SET running_since = ?2, last_started_at = ?2",
        )
        .bind(job)
        .bind(crate::ts_text(at))
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Record how a run of `job` ended; it is no longer running.
    pub async fn finished(&self, job: &str, status: &str, error: Option<&str>, duration_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO scheduler_jobs (name, last_finished_at, last_status, last_error, last_duration_ms, runs) \
             VALUES (?1, ?2, ?3, ?4, ?5, 1) \
             ON CONFLICT (name) DO UPDATE SET running_since = NULL, last_finished_at = ?2, last_status = ?3, \
             last_error = ?4, last_duration_ms = ?5, runs = runs + 1",
        )
        .bind(job)
        .bind(crate::now_text())
        .bind(status)
        .bind(error)
        .bind(duration_ms)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// At start-up: runs that were in flight when the process stopped are recorded as
    /// interrupted. Answers their names.
    pub async fn mark_interrupted(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "UPDATE scheduler_jobs SET running_since = NULL, last_status = 'interrupted', \
             last_error = 'the server stopped during this run', last_finished_at = ?1 \
             WHERE running_since IS NOT NULL RETURNING name",
        )
        .bind(crate::now_text())
        .fetch_all(self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub async fn jobs(&self) -> Result<Vec<JobState>> {
        Ok(sqlx::query_as("SELECT * FROM scheduler_jobs ORDER BY name").fetch_all(self.pool).await?)
    }

    /// A failed sync of `table_id`: count it and wait until `retry_at`.
    pub async fn failed(&self, table_id: &str, retry_at: DateTime<Utc>, error: &str) -> Result<i64> {
        let (failures,): (i64,) = sqlx::query_as(
            "INSERT INTO sync_backoff (table_id, failures, retry_at, last_error) VALUES (?1, 1, ?2, ?3) \
             ON CONFLICT (table_id) DO UPDATE SET failures = failures + 1, retry_at = ?2, last_error = ?3 \
             RETURNING failures",
        )
        .bind(table_id)
        .bind(crate::ts_text(retry_at))
        .bind(error)
        .fetch_one(self.pool)
        .await?;
        Ok(failures)
    }

    /// How many times in a row `table_id` has failed (0 if it has not).
    pub async fn failures(&self, table_id: &str) -> Result<i64> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT failures FROM sync_backoff WHERE table_id = ?")
            .bind(table_id)
            .fetch_optional(self.pool)
            .await?;
        Ok(row.map_or(0, |r| r.0))
    }

    pub async fn succeeded(&self, table_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM sync_backoff WHERE table_id = ?").bind(table_id).execute(self.pool).await?;
        Ok(())
    }

    pub async fn backoffs(&self) -> Result<Vec<Backoff>> {
        Ok(sqlx::query_as("SELECT * FROM sync_backoff ORDER BY table_id").fetch_all(self.pool).await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[tokio::test]
    async fn runs_and_backoffs_are_remembered() {
        let store = Store::open_in_memory().await.unwrap();
        let s = store.scheduler();
        s.started("data-refresh", chrono::Utc::now()).await.unwrap();
        assert!(s.jobs().await.unwrap()[0].running_since.is_some());
        assert_eq!(s.mark_interrupted().await.unwrap(), ["data-refresh"], "a run cut off by a stop");
        let job = &s.jobs().await.unwrap()[0];
        assert_eq!((job.running_since.as_deref(), job.last_status.as_deref()), (None, Some("interrupted")));
        s.started("data-refresh", chrono::Utc::now()).await.unwrap();
        s.finished("data-refresh", "ok", None, 12).await.unwrap();
        let job = &s.jobs().await.unwrap()[0];
        assert_eq!((job.last_status.as_deref(), job.runs, job.running_since.as_deref()), (Some("ok"), 1, None));
        assert!(s.mark_interrupted().await.unwrap().is_empty());

        let later = chrono::Utc::now() + chrono::Duration::minutes(5);
        assert_eq!(s.failed("orders", later, "boom").await.unwrap(), 1);
        assert_eq!(s.failed("orders", later, "boom again").await.unwrap(), 2);
        assert_eq!(s.failures("orders").await.unwrap(), 2);
        assert_eq!(s.backoffs().await.unwrap()[0].last_error.as_deref(), Some("boom again"));
        s.succeeded("orders").await.unwrap();
        assert_eq!(s.failures("orders").await.unwrap(), 0);
    }
}
