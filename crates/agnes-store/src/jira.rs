//! The Jira source's durable work: issues waiting to reach the tables (from webhook
//! deliveries, the reconcile and backfills) and the resumable jobs' cursors.

use crate::error::Result;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

/// An issue waiting to be fetched and republished.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JiraEvent {
    pub id: i64,
    pub issue_key: String,
    pub event: String,
    pub received_at: String,
    pub attempts: i64,
}

/// The queue at a glance, for the health answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueState {
    pub pending: i64,
    /// Events whose last attempt failed.
    pub failing: i64,
    pub oldest_received_at: Option<String>,
    pub last_error: Option<String>,
}

/// A resumable job: `backfill` or `reconcile`.
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct JiraJob {
    pub name: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    pub jql: Option<String>,
    pub next_page_token: Option<String>,
    pub pages: i64,
    pub issues: i64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

pub struct JiraRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> JiraRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        JiraRepo { pool }
    }

    /// Queue issues (in order) as of `event`; the answer is durable when this returns.
    pub async fn enqueue(&self, keys: &[String], event: &str) -> Result<()> {
        let mut tx = crate::write_tx(self.pool).await?;
        let now = crate::now_text();
        for key in keys {
            sqlx::query("INSERT INTO jira_events (issue_key, event, received_at) VALUES (?, ?, ?)")
                .bind(key)
                .bind(event)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` events due at `now`, oldest first.
    pub async fn due(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<JiraEvent>> {
        Ok(sqlx::query_as(
            "SELECT id, issue_key, event, received_at, attempts FROM jira_events \
             WHERE retry_at IS NULL OR retry_at <= ? ORDER BY id LIMIT ?",
        )
        .bind(crate::ts_text(now))
        .bind(limit)
        .fetch_all(self.pool)
        .await?)
    }

    /// The events that have reached the tables go.
    pub async fn done(&self, ids: &[i64]) -> Result<()> {
        let mut tx = crate::write_tx(self.pool).await?;
        for id in ids {
            sqlx::query("DELETE FROM jira_events WHERE id = ?").bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The events failed: tried again from `retry_at`.
    pub async fn failed(&self, ids: &[i64], error: &str, retry_at: DateTime<Utc>) -> Result<()> {
        let mut tx = crate::write_tx(self.pool).await?;
        for id in ids {
            sqlx::query("UPDATE jira_events SET attempts = attempts + 1, last_error = ?, retry_at = ? WHERE id = ?")
                .bind(error)
                .bind(crate::ts_text(retry_at))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// When the earliest waiting event is due (none waiting: `None`).
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let (next,): (Option<String>,) =
            sqlx::query_as("SELECT MIN(COALESCE(retry_at, received_at)) FROM jira_events").fetch_one(self.pool).await?;
        Ok(crate::parse_ts(next))
    }

    pub async fn queue_state(&self) -> Result<QueueState> {
        let (pending, failing, oldest): (i64, i64, Option<String>) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(attempts > 0), 0), MIN(received_at) FROM jira_events")
                .fetch_one(self.pool)
                .await?;
        let last_error: Option<(Option<String>,)> =
            sqlx::query_as("SELECT last_error FROM jira_events WHERE last_error IS NOT NULL ORDER BY id DESC LIMIT 1")
                .fetch_optional(self.pool)
                .await?;
        Ok(QueueState { pending, failing, oldest_received_at: oldest, last_error: last_error.and_then(|r| r.0) })
    }

    pub async fn job(&self, name: &str) -> Result<Option<JiraJob>> {
        Ok(sqlx::query_as(
            "SELECT name, state, jql, next_page_token, pages, issues, started_at, finished_at, error \
             FROM jira_jobs WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(self.pool)
        .await?)
    }

    pub async fn save_job(&self, job: &JiraJob) -> Result<()> {
        sqlx::query(
            "INSERT INTO jira_jobs (name, state, jql, next_page_token, pages, issues, started_at, finished_at, error) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET state = excluded.state, \
             jql = excluded.jql, next_page_token = excluded.next_page_token, pages = excluded.pages, \
             issues = excluded.issues, started_at = excluded.started_at, finished_at = excluded.finished_at, \
             error = excluded.error",
        )
        .bind(&job.name)
        .bind(&job.state)
        .bind(&job.jql)
        .bind(&job.next_page_token)
        .bind(job.pages)
        .bind(job.issues)
        .bind(&job.started_at)
        .bind(&job.finished_at)
        .bind(&job.error)
        .execute(self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[tokio::test]
    async fn events_wait_in_order_and_failures_wait_their_turn() {
        let store = Store::open_in_memory().await.unwrap();
        let jira = store.jira();
        jira.enqueue(&["SUP-1".into(), "SUP-2".into()], "jira:issue_updated").await.unwrap();
        jira.enqueue(&["SUP-1".into()], "jira:issue_deleted").await.unwrap();
        let now = chrono::Utc::now();
        let due = jira.due(now, 10).await.unwrap();
        let keys: Vec<(&str, &str)> = due.iter().map(|e| (e.issue_key.as_str(), e.event.as_str())).collect();
        assert_eq!(
            keys,
            [("SUP-1", "jira:issue_updated"), ("SUP-2", "jira:issue_updated"), ("SUP-1", "jira:issue_deleted")]
        );

        let later = now + chrono::Duration::seconds(30);
        jira.failed(&[due[1].id], "Jira answered 503", later).await.unwrap();
        assert_eq!(jira.due(now, 10).await.unwrap().len(), 2, "the failed one waits");
        assert_eq!(jira.due(later, 10).await.unwrap().len(), 3);
        let state = jira.queue_state().await.unwrap();
        assert_eq!((state.pending, state.failing, state.last_error.as_deref()), (3, 1, Some("Jira answered 503")));

        jira.done(&[due[0].id, due[2].id]).await.unwrap();
        let left = jira.due(later, 10).await.unwrap();
        assert_eq!((left.len(), left[0].issue_key.as_str(), left[0].attempts), (1, "SUP-2", 1));
        assert!(jira.next_due().await.unwrap().is_some());
        jira.done(&[left[0].id]).await.unwrap();
        assert_eq!(jira.next_due().await.unwrap(), None);
    }
}
