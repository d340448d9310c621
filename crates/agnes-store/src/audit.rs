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

    /// Number of records with this action (used by tests and the health view).
    pub async fn count_action(&self, action: &str) -> Result<i64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = ?").bind(action).fetch_one(self.pool).await?;
        Ok(n)
    }
}
