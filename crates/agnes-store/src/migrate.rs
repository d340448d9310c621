//! A linear migration ladder recorded in `schema_version`.
//!
//! Each step runs in its own transaction together with its `schema_version` row, so a
//! crash mid-migration leaves the DB at the previous version. A DB whose version is newer
//! than [`LATEST_SCHEMA_VERSION`] is refused before anything is written.

use crate::error::{Result, StoreError};
use sqlx::SqlitePool;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_core.sql")),
    (2, include_str!("migrations/0002_checksums.sql")),
    (3, include_str!("migrations/0003_quotas.sql")),
    (4, include_str!("migrations/0004_scheduler.sql")),
    (5, include_str!("migrations/0005_profiles.sql")),
    (6, include_str!("migrations/0006_access_generation.sql")),
    (7, include_str!("migrations/0007_instance_facts_sessions.sql")),
    (8, include_str!("migrations/0008_knowledge_items.sql")),
    (9, include_str!("migrations/0009_registry_connection.sql")),
    (10, include_str!("migrations/0010_source_version.sql")),
    (11, include_str!("migrations/0011_bigquery.sql")),
    (12, include_str!("migrations/0012_prompt_templates.sql")),
    (13, include_str!("migrations/0013_group_sync.sql")),
    (14, include_str!("migrations/0014_jira.sql")),
];

/// The schema version this build creates and expects.
pub const LATEST_SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    pub current: i64,
    pub expected: i64,
}

impl SchemaStatus {
    pub fn is_current(&self) -> bool {
        self.current == self.expected
    }
}

pub(crate) async fn status(pool: &SqlitePool) -> Result<SchemaStatus> {
    Ok(SchemaStatus { current: current_version(pool).await?, expected: LATEST_SCHEMA_VERSION })
}

async fn current_version(pool: &SqlitePool) -> Result<i64> {
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
            .fetch_optional(pool)
            .await?;
    if exists.is_none() {
        return Ok(0);
    }
    let (v,): (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM schema_version").fetch_one(pool).await?;
    Ok(v.unwrap_or(0))
}

pub(crate) async fn migrate(pool: &SqlitePool) -> Result<()> {
    let current = current_version(pool).await?;
    if current > LATEST_SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { found: current, supported: LATEST_SCHEMA_VERSION });
    }
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)")
        .execute(pool)
        .await?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let mut tx = crate::write_tx(pool).await?;
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(crate::now_text())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "state schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    #[tokio::test]
    async fn fresh_then_rerun_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("system.db");
        let store = Store::open(&path).await.unwrap();
        let s = store.schema_status().await.unwrap();
        assert_eq!(s, SchemaStatus { current: LATEST_SCHEMA_VERSION, expected: LATEST_SCHEMA_VERSION });
        store.close().await;

        let store = Store::open(&path).await.unwrap();
        let (rows,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM schema_version").fetch_one(store.pool()).await.unwrap();
        assert_eq!(rows, MIGRATIONS.len() as i64, "re-running must not add versions");
        let (groups,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM user_groups WHERE is_system = 1")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(groups, 2, "Admin and Everyone are seeded once");
    }

    #[tokio::test]
    async fn newer_schema_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("system.db");
        let store = Store::open(&path).await.unwrap();
        sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES (999, 'later')")
            .execute(store.pool())
            .await
            .unwrap();
        store.close().await;
        let before = std::fs::read(&path).unwrap();

        let err = Store::open(&path).await.unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { found: 999, .. }), "{err}");
        assert!(err.to_string().contains("newer than this agnes supports"));
        assert_eq!(std::fs::read(&path).unwrap(), before, "refused DB must not be modified");
    }
}
