//! Per-user concurrency slots and daily byte budgets for user SQL (spec §5.2), kept in the
//! state DB so they hold across restarts and across every endpoint that runs user SQL.
//!
//! A slot is taken by one INSERT that counts the user's live slots in the same statement:
//! SQLite takes the write lock before the statement reads, so two requests can never both
//! take the last slot. Slots older than `stale_after` are not counted (a process that died
//! holding one); the server also clears every slot when it starts.

use crate::error::Result;
use chrono::{DateTime, Duration, Utc};
use sqlx::SqlitePool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Queries one user may run at once; 0 or less = unlimited.
    pub max_concurrent: i64,
    /// Bytes one user may receive per UTC day; 0 or less = unlimited.
    pub max_daily_bytes: i64,
    /// A slot held longer than this no longer counts.
    pub stale_after: Duration,
}

/// Why a request may not run now: the body of a 429.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaDenied {
    /// `daily_bytes`, or the concurrency kind the caller named (`concurrent_queries`,
    /// `concurrent_scans`).
    pub kind: &'static str,
    pub current: i64,
    pub limit: i64,
    pub retry_after_seconds: i64,
}

/// A slot taken, with the access generation read in the same statement (see
/// migration 0006): what the caller may read cannot have changed while it stays the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    pub slot: String,
    pub access_generation: i64,
}

pub struct QuotaRepo<'a> {
    pool: &'a SqlitePool,
}

/// One user's remote queries of one source on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BilledUsage {
    pub user_id: String,
    pub day: String,
    pub source: String,
    pub queries: i64,
    pub billed_bytes: i64,
}

fn day(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%d").to_string()
}

fn seconds_to_midnight(now: DateTime<Utc>) -> i64 {
    let midnight = (now.date_naive() + chrono::Days::new(1)).and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    (midnight - now).num_seconds().max(1)
}

impl<'a> QuotaRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        QuotaRepo { pool }
    }

    /// Take a slot for `user_id`, or say which limit stands in the way. Queries and scans
    /// share the slots; `concurrency_kind` names them in a refusal.
    pub async fn acquire(
        &self,
        user_id: &str,
        limits: &QuotaLimits,
        concurrency_kind: &'static str,
    ) -> Result<std::result::Result<Acquired, QuotaDenied>> {
        let now = Utc::now();
        let id = uuid::Uuid::new_v4().to_string();
        let live_since = crate::ts_text(now - limits.stale_after);
        let cap = if limits.max_concurrent > 0 { limits.max_concurrent } else { i64::MAX };
        let budget = if limits.max_daily_bytes > 0 { limits.max_daily_bytes } else { i64::MAX };
        // Both limits in the one statement that takes the slot: a single round trip on the
        // path of every query. Only a refusal reads again, to say which limit it was.
        let taken: Option<i64> = sqlx::query_scalar(
            "INSERT INTO quota_slots (id, user_id, acquired_at) SELECT ?1, ?2, ?3 \
             WHERE (SELECT count(*) FROM quota_slots WHERE user_id = ?2 AND acquired_at > ?4) < ?5 \
             AND coalesce((SELECT bytes FROM quota_usage WHERE user_id = ?2 AND day = ?6), 0) < ?7 \
             RETURNING (SELECT n FROM access_generation)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(crate::ts_text(now))
        .bind(&live_since)
        .bind(cap)
        .bind(day(now))
        .bind(budget)
        .fetch_optional(self.pool)
        .await?;
        if let Some(access_generation) = taken {
            return Ok(Ok(Acquired { slot: id, access_generation }));
        }
        let used = self.used_today(user_id).await?;
        if used >= budget {
            return Ok(Err(QuotaDenied {
                kind: "daily_bytes",
                current: used,
                limit: limits.max_daily_bytes,
                retry_after_seconds: seconds_to_midnight(now),
            }));
        }
        let (current,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM quota_slots WHERE user_id = ? AND acquired_at > ?")
                .bind(user_id)
                .bind(&live_since)
                .fetch_one(self.pool)
                .await?;
        Ok(Err(QuotaDenied { kind: concurrency_kind, current, limit: limits.max_concurrent, retry_after_seconds: 1 }))
    }

    /// Give the slot back and add what the request answered to today's usage.
    pub async fn release(&self, slot: &str, user_id: &str, bytes: i64) -> Result<()> {
        // One call, two statements, as one implicit transaction per statement; if the
        // process dies between them the slot expires on its own.
        sqlx::query(
            "DELETE FROM quota_slots WHERE id = ?1; \
             INSERT INTO quota_usage (user_id, day, bytes) SELECT ?2, ?3, ?4 WHERE ?4 > 0 \
             ON CONFLICT (user_id, day) DO UPDATE SET bytes = bytes + excluded.bytes",
        )
        .bind(slot)
        .bind(user_id)
        .bind(day(Utc::now()))
        .bind(bytes)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Record what a remote source billed for one of the user's queries: in the cost
    /// ledger, and against the user's daily budget, in one transaction.
    pub async fn record_billed(&self, user_id: &str, source: &str, billed_bytes: i64) -> Result<()> {
        let today = day(Utc::now());
        let mut tx = crate::write_tx(self.pool).await?;
        sqlx::query(
            "INSERT INTO remote_usage (user_id, day, source, queries, billed_bytes) VALUES (?1, ?2, ?3, 1, ?4) \
             ON CONFLICT (user_id, day, source) DO UPDATE SET queries = queries + 1, \
             billed_bytes = billed_bytes + excluded.billed_bytes",
        )
        .bind(user_id)
        .bind(&today)
        .bind(source)
        .bind(billed_bytes)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO quota_usage (user_id, day, bytes) SELECT ?1, ?2, ?3 WHERE ?3 > 0 \
             ON CONFLICT (user_id, day) DO UPDATE SET bytes = bytes + excluded.bytes",
        )
        .bind(user_id)
        .bind(&today)
        .bind(billed_bytes)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The cost ledger from `since` (a UTC day, `YYYY-MM-DD`) on, newest day first.
    pub async fn billed_since(&self, since: chrono::NaiveDate) -> Result<Vec<BilledUsage>> {
        let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT user_id, day, source, queries, billed_bytes FROM remote_usage WHERE day >= ? \
             ORDER BY day DESC, billed_bytes DESC",
        )
        .bind(since.format("%Y-%m-%d").to_string())
        .fetch_all(self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(user_id, day, source, queries, billed_bytes)| BilledUsage {
                user_id,
                day,
                source,
                queries,
                billed_bytes,
            })
            .collect())
    }

    pub async fn used_today(&self, user_id: &str) -> Result<i64> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT bytes FROM quota_usage WHERE user_id = ? AND day = ?")
            .bind(user_id)
            .bind(day(Utc::now()))
            .fetch_optional(self.pool)
            .await?;
        Ok(row.map(|r| r.0).unwrap_or(0))
    }

    /// Forget every slot: at start-up no request is running.
    pub async fn clear_slots(&self) -> Result<()> {
        sqlx::query("DELETE FROM quota_slots").execute(self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    use super::*;

    fn limits(concurrent: i64, daily: i64) -> QuotaLimits {
        QuotaLimits { max_concurrent: concurrent, max_daily_bytes: daily, stale_after: Duration::hours(1) }
    }

    #[tokio::test]
    async fn slots_are_capped_per_user_and_come_back() {
        let store = Store::open_in_memory().await.unwrap();
        let q = store.quotas();
        let l = limits(2, 0);
        let a = q.acquire("u1", &l, "concurrent_queries").await.unwrap().unwrap();
        let _b = q.acquire("u1", &l, "concurrent_queries").await.unwrap().unwrap();
        let denied = q.acquire("u1", &l, "concurrent_queries").await.unwrap().unwrap_err();
        assert_eq!((denied.kind, denied.current, denied.limit), ("concurrent_queries", 2, 2));
        assert!(q.acquire("u2", &l, "concurrent_queries").await.unwrap().is_ok(), "another user has their own slots");
        q.release(&a.slot, "u1", 0).await.unwrap();
        assert!(q.acquire("u1", &l, "concurrent_queries").await.unwrap().is_ok(), "a released slot is free again");
        q.clear_slots().await.unwrap();
        assert!(q.acquire("u1", &l, "concurrent_queries").await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn the_access_generation_moves_with_grants_registry_and_sync_state() {
        let store = Store::open_in_memory().await.unwrap();
        let q = store.quotas();
        let l = limits(0, 0);
        let generation = |a: Acquired| a.access_generation;
        let g0 = generation(q.acquire("u", &l, "concurrent_queries").await.unwrap().unwrap());
        assert_eq!(
            generation(q.acquire("u", &l, "concurrent_queries").await.unwrap().unwrap()),
            g0,
            "a slot changes nothing"
        );
        let mut last = g0;
        for (sql, moves) in [
            ("INSERT INTO table_registry (id, name, registered_at) VALUES ('t', 't', 'now')", true),
            ("INSERT INTO sync_state (table_id, hash) VALUES ('t', 'h1')", true),
            ("UPDATE sync_state SET hash = 'h2' WHERE table_id = 't'", true),
            ("INSERT INTO user_groups (id, name, is_system, created_at) VALUES ('grp', 'G', 0, 'now')", false),
            ("INSERT INTO resource_grants (id, group_id, resource_type, resource_id, assigned_at) VALUES ('g', 'grp', 'table', 't', 'now')", true),
            ("DELETE FROM resource_grants WHERE id = 'g'", true),
            ("INSERT INTO resource_grants (id, group_id, resource_type, resource_id, assigned_at) VALUES ('g2', 'grp', 'table', 't', 'now')", true),
            ("DELETE FROM user_groups WHERE id = 'grp'", true),
            ("UPDATE table_registry SET description = 'd' WHERE id = 't'", true),
            ("DELETE FROM sync_state WHERE table_id = 't'", true),
            ("DELETE FROM table_registry WHERE id = 't'", true),
        ] {
            sqlx::query(sql).execute(store.pool()).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            let now = generation(q.acquire("u", &l, "concurrent_queries").await.unwrap().unwrap());
            assert_eq!(now > last, moves, "{sql}");
            last = now;
        }
    }

    #[tokio::test]
    async fn stale_slots_do_not_count() {
        let store = Store::open_in_memory().await.unwrap();
        let q = store.quotas();
        let stale = QuotaLimits { stale_after: Duration::seconds(-1), ..limits(1, 0) };
        q.acquire("u", &stale, "concurrent_queries").await.unwrap().unwrap();
        assert!(
            q.acquire("u", &stale, "concurrent_queries").await.unwrap().is_ok(),
            "a slot from a dead request expires"
        );
    }

    #[tokio::test]
    async fn the_daily_budget_stops_requests_until_midnight() {
        let store = Store::open_in_memory().await.unwrap();
        let q = store.quotas();
        let l = limits(0, 100);
        let s = q.acquire("u", &l, "concurrent_queries").await.unwrap().unwrap();
        q.release(&s.slot, "u", 60).await.unwrap();
        let s = q.acquire("u", &l, "concurrent_queries").await.unwrap().unwrap();
        q.release(&s.slot, "u", 60).await.unwrap();
        assert_eq!(q.used_today("u").await.unwrap(), 120);
        let denied = q.acquire("u", &l, "concurrent_queries").await.unwrap().unwrap_err();
        assert_eq!((denied.kind, denied.current, denied.limit), ("daily_bytes", 120, 100));
        assert!(denied.retry_after_seconds > 0 && denied.retry_after_seconds <= 86_400);
    }
}
