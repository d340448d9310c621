use crate::error::Result;
use crate::migrate;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::Duration;

/// A handle on the state database. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// One connection for the writes on every request's path (quota slots, audit): they
    /// queue here instead of meeting in SQLite, whose busy handler sleeps a millisecond
    /// or more whenever two connections want the write lock at once.
    writer: SqlitePool,
    /// The last [`crate::snapshot::Snapshot`], shared by every clone.
    kept: crate::snapshot::Kept,
}

impl Store {
    /// Open (creating if needed) the state DB at `path`, migrate it, and seed the system
    /// groups. Refuses, without writing anything, a DB from a newer agnes.
    pub async fn open(path: &Path) -> Result<Store> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // No ping before each use: a file database's connection does not go stale, and the
        // ping was a round trip to the connection's thread on every query.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let writer =
            SqlitePoolOptions::new().max_connections(1).test_before_acquire(false).connect_with(options).await?;
        let store = Store { pool, writer, kept: Default::default() };
        migrate::migrate(&store.pool).await?;
        store.identity().seed_system_groups().await?;
        Ok(store)
    }

    /// An in-memory store for unit tests.
    pub async fn open_in_memory() -> Result<Store> {
        let options = SqliteConnectOptions::new().in_memory(true).foreign_keys(true);
        // One connection: each in-memory connection would be a separate database.
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        let store = Store { writer: pool.clone(), pool, kept: Default::default() };
        migrate::migrate(&store.pool).await?;
        store.identity().seed_system_groups().await?;
        Ok(store)
    }

    pub(crate) fn kept(&self) -> &crate::snapshot::Kept {
        &self.kept
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The schema version found and expected, for `/api/health`.
    pub async fn schema_status(&self) -> Result<migrate::SchemaStatus> {
        migrate::status(&self.pool).await
    }

    pub fn registry(&self) -> crate::registry::RegistryRepo<'_> {
        crate::registry::RegistryRepo::new(&self.pool)
    }

    pub fn sync_state(&self) -> crate::sync_state::SyncStateRepo<'_> {
        crate::sync_state::SyncStateRepo::new(&self.pool)
    }

    pub fn view_ownership(&self) -> crate::view_ownership::ViewOwnershipRepo<'_> {
        crate::view_ownership::ViewOwnershipRepo::new(&self.pool)
    }

    pub fn identity(&self) -> crate::identity::IdentityRepo<'_> {
        crate::identity::IdentityRepo::new(&self.pool)
    }

    pub fn quotas(&self) -> crate::quotas::QuotaRepo<'_> {
        crate::quotas::QuotaRepo::new(&self.writer)
    }

    pub fn metric_definitions(&self) -> crate::metric_definitions::MetricRepo<'_> {
        crate::metric_definitions::MetricRepo::new(&self.pool)
    }

    pub fn memory(&self) -> crate::memory::MemoryRepo<'_> {
        crate::memory::MemoryRepo::new(&self.pool)
    }

    pub fn bq_metadata(&self) -> crate::bq_metadata::BqMetadataRepo<'_> {
        crate::bq_metadata::BqMetadataRepo::new(&self.pool)
    }

    pub fn profiles(&self) -> crate::profiles::ProfileRepo<'_> {
        crate::profiles::ProfileRepo::new(&self.pool)
    }

    pub fn prompt_templates(&self) -> crate::prompt_templates::PromptTemplatesRepo<'_> {
        crate::prompt_templates::PromptTemplatesRepo::new(&self.pool)
    }

    pub fn jira(&self) -> crate::jira::JiraRepo<'_> {
        crate::jira::JiraRepo::new(&self.pool)
    }

    pub fn scheduler(&self) -> crate::scheduler::SchedulerRepo<'_> {
        crate::scheduler::SchedulerRepo::new(&self.pool)
    }

    pub fn audit(&self) -> crate::audit::AuditRepo<'_> {
        crate::audit::AuditRepo::new(&self.writer)
    }

    /// Flush the WAL into the main file and close every connection.
    pub async fn close(&self) {
        self.writer.close().await;
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await;
        self.pool.close().await;
    }
}
