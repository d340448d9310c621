//! The audit log: every mutation and every data access.

use crate::error::Result;
use sqlx::SqlitePool;

/// One audit record; `id` is assigned on insert, and `timestamp` too unless `at` says
/// when it happened (records written in batches, after the fact).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AuditEntry {
    pub user_id: Option<String>,
    pub action: String,
    pub resource: Option<String>,
    pub params: Option<serde_json::Value>,
    pub result: Option<String>,
    pub duration_ms: Option<i64>,
    pub params_before: Option<serde_json::Value>,
    pub client_ip: Option<String>,
    pub client_kind: Option<String>,
    pub correlation_id: Option<String>,
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

pub struct AuditRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> AuditRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        AuditRepo { pool }
    }

    pub async fn record(&self, e: &AuditEntry) -> Result<()> {
        self.record_many(std::slice::from_ref(e)).await
    }

    /// Write `entries` in one transaction: one commit for many records.
    pub async fn record_many(&self, entries: &[AuditEntry]) -> Result<()> {
        let mut tx = crate::write_tx(self.pool).await?;
        for e in entries {
            sqlx::query(
                "INSERT INTO audit_log (id, timestamp, user_id, action, resource, params, result, duration_ms, \
                 params_before, client_ip, client_kind, correlation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(e.at.map(crate::ts_text).unwrap_or_else(crate::now_text))
            .bind(&e.user_id)
            .bind(&e.action)
            .bind(&e.resource)
            .bind(e.params.as_ref().map(|v| v.to_string()))
            .bind(&e.result)
            .bind(e.duration_ms)
            .bind(e.params_before.as_ref().map(|v| v.to_string()))
            .bind(&e.client_ip)
            .bind(&e.client_kind)
            .bind(&e.correlation_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One page of records, newest first: those older than `before` (the `(timestamp, id)`
    /// of the last record of the previous page), of one action or action family (`query`
    /// is `query` and `query.*`), of one user (id or e-mail).
    pub async fn page(&self, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditEvent>> {
        let (before_ts, before_id) = filter.before.clone().unwrap_or_default();
        let events = sqlx::query_as(
            "SELECT a.id, a.timestamp, a.user_id, u.email AS user_email, a.action, a.resource, a.result, \
             a.duration_ms, a.client_ip, a.client_kind FROM audit_log a LEFT JOIN users u ON u.id = a.user_id \
             WHERE (?1 = '' OR a.timestamp < ?1 OR (a.timestamp = ?1 AND a.id < ?2)) \
             AND (?3 IS NULL OR a.action = ?3 OR substr(a.action, 1, length(?3) + 1) = ?3 || '.') \
             AND (?4 IS NULL OR a.user_id = ?4 OR u.email = ?4 COLLATE NOCASE) \
             ORDER BY a.timestamp DESC, a.id DESC LIMIT ?5",
        )
        .bind(before_ts)
        .bind(before_id)
        .bind(&filter.action)
        .bind(&filter.user)
        .bind(limit)
        .fetch_all(self.pool)
        .await?;
        Ok(events)
    }

    /// Number of records with this action (used by tests and the health view).
    pub async fn count_action(&self, action: &str) -> Result<i64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = ?").bind(action).fetch_one(self.pool).await?;
        Ok(n)
    }
}

/// Which records [`AuditRepo::page`] reads.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub before: Option<(String, String)>,
    pub action: Option<String>,
    pub user: Option<String>,
}

/// One record as the audit page shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditEvent {
    pub id: String,
    pub timestamp: String,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub action: String,
    pub resource: Option<String>,
    pub result: Option<String>,
    pub duration_ms: Option<i64>,
    pub client_ip: Option<String>,
    pub client_kind: Option<String>,
}

into_wire!(AuditEvent {
    id,
    timestamp,
    user_id,
    user_email,
    action,
    resource,
    result,
    duration_ms,
    client_ip,
    client_kind
});
