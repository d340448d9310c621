//! The table registry: the single source of truth for which tables exist.

use crate::error::{Result, StoreError};
use agnes_core::{QueryMode, SourceType, TableSpec};
use sqlx::SqlitePool;

pub struct RegistryRepo<'a> {
    pool: &'a SqlitePool,
}

const COLUMNS: &str = "id, name, source_type, bucket, source_table, source_query, sync_strategy, \
    query_mode, sync_schedule, profile_after_sync, primary_key, folder, description, registered_by, \
    registered_at, incremental_window_days, max_history_days, incremental_column, where_filters, \
    partition_by, partition_granularity, initial_load_chunk_days, bq_fqn, source_options, connection";

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    source_type: Option<String>,
    bucket: Option<String>,
    source_table: Option<String>,
    source_query: Option<String>,
    sync_strategy: String,
    query_mode: String,
    sync_schedule: Option<String>,
    profile_after_sync: bool,
    primary_key: String,
    folder: Option<String>,
    description: Option<String>,
    registered_by: Option<String>,
    registered_at: String,
    incremental_window_days: Option<i64>,
    max_history_days: Option<i64>,
    incremental_column: Option<String>,
    where_filters: Option<String>,
    partition_by: Option<String>,
    partition_granularity: Option<String>,
    initial_load_chunk_days: Option<i64>,
    bq_fqn: Option<String>,
    source_options: Option<String>,
    connection: Option<String>,
}

fn corrupt(column: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { column, message: e.to_string() }
}

fn json_opt(column: &'static str, s: Option<String>) -> Result<Option<serde_json::Value>> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| corrupt(column, e))).transpose()
}

impl TryFrom<Row> for TableSpec {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<TableSpec> {
        Ok(TableSpec {
            id: r.id,
            name: r.name,
            source_type: r
                .source_type
                .map(|s| s.parse::<SourceType>())
                .transpose()
                .map_err(|e| corrupt("source_type", e))?,
            bucket: r.bucket,
            source_table: r.source_table,
            source_query: r.source_query,
            sync_strategy: r
                .sync_strategy
                .parse::<agnes_core::SyncStrategy>()
                .map_err(|e| corrupt("sync_strategy", e))?,
            query_mode: r.query_mode.parse::<QueryMode>().map_err(|e| corrupt("query_mode", e))?,
            sync_schedule: r.sync_schedule,
            profile_after_sync: r.profile_after_sync,
            primary_key: serde_json::from_str(&r.primary_key).map_err(|e| corrupt("primary_key", e))?,
            folder: r.folder,
            description: r.description,
            registered_by: r.registered_by,
            registered_at: crate::parse_ts(Some(r.registered_at))
                .ok_or_else(|| corrupt("registered_at", "not RFC 3339"))?,
            incremental_window_days: r.incremental_window_days,
            max_history_days: r.max_history_days,
            incremental_column: r.incremental_column,
            where_filters: json_opt("where_filters", r.where_filters)?,
            partition_by: r.partition_by,
            partition_granularity: r
                .partition_granularity
                .map(|s| s.parse::<agnes_core::PartitionGranularity>())
                .transpose()
                .map_err(|e| corrupt("partition_granularity", e))?,
            initial_load_chunk_days: r.initial_load_chunk_days,
            bq_fqn: r.bq_fqn,
            source_options: json_opt("source_options", r.source_options)?,
            connection: r.connection,
        })
    }
}

impl<'a> RegistryRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        RegistryRepo { pool }
    }

    pub async fn list(&self) -> Result<Vec<TableSpec>> {
        let rows: Vec<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM table_registry ORDER BY id")).fetch_all(self.pool).await?;
        rows.into_iter().map(TableSpec::try_from).collect()
    }

    /// Every row fed by `source_type` in one of `modes`.
    pub async fn list_for_source(&self, source_type: SourceType, modes: &[QueryMode]) -> Result<Vec<TableSpec>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|t| t.source_type == Some(source_type) && modes.contains(&t.query_mode))
            .collect())
    }

    pub async fn get(&self, id: &str) -> Result<Option<TableSpec>> {
        let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM table_registry WHERE id = ?"))
            .bind(id)
            .fetch_optional(self.pool)
            .await?;
        row.map(TableSpec::try_from).transpose()
    }

    /// Resolve a reference that may be a registry id or a table name (DESIGN decision 6:
    /// every endpoint accepts either; the id wins when both match different rows).
    pub async fn resolve(&self, id_or_name: &str) -> Result<Option<TableSpec>> {
        if let Some(t) = self.get(id_or_name).await? {
            return Ok(Some(t));
        }
        let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM table_registry WHERE name = ?"))
            .bind(id_or_name)
            .fetch_optional(self.pool)
            .await?;
        row.map(TableSpec::try_from).transpose()
    }

    /// Insert a new row; a taken id or name is a [`StoreError::Conflict`].
    pub async fn insert(&self, t: &TableSpec) -> Result<()> {
        let taken: Option<(String,)> = sqlx::query_as("SELECT id FROM table_registry WHERE id = ? OR name = ?")
            .bind(&t.id)
            .bind(&t.name)
            .fetch_optional(self.pool)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("table '{}' already exists", t.id)));
        }
        self.write(t, false).await
    }

    /// Insert or replace every column of the row with `t.id`.
    pub async fn upsert(&self, t: &TableSpec) -> Result<()> {
        self.write(t, true).await
    }

    async fn write(&self, t: &TableSpec, replace: bool) -> Result<()> {
        let verb = if replace { "INSERT OR REPLACE" } else { "INSERT" };
        let placeholders = vec!["?"; 25].join(", ");
        sqlx::query(&format!("{verb} INTO table_registry ({COLUMNS}) VALUES ({placeholders})"))
            .bind(&t.id)
            .bind(&t.name)
            .bind(t.source_type.map(|s| s.as_str()))
            .bind(&t.bucket)
            .bind(&t.source_table)
            .bind(&t.source_query)
            .bind(t.sync_strategy.as_str())
            .bind(t.query_mode.as_str())
            .bind(&t.sync_schedule)
            .bind(t.profile_after_sync)
            .bind(serde_json::to_string(&t.primary_key).expect("strings serialize"))
            .bind(&t.folder)
            .bind(&t.description)
            .bind(&t.registered_by)
            .bind(crate::ts_text(t.registered_at))
            .bind(t.incremental_window_days)
            .bind(t.max_history_days)
            .bind(&t.incremental_column)
            .bind(t.where_filters.as_ref().map(|v| v.to_string()))
            .bind(&t.partition_by)
            .bind(t.partition_granularity.map(|g| g.as_str()))
            .bind(t.initial_load_chunk_days)
            .bind(&t.bq_fqn)
            .bind(t.source_options.as_ref().map(|v| v.to_string()))
            .bind(&t.connection)
            .execute(self.pool)
            .await?;
        Ok(())
    }

    /// Delete the row and everything keyed by it (sync state, parts, history, profile,
    /// grants) in one transaction. Returns whether the row existed.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        let mut tx = crate::write_tx(self.pool).await?;
        let gone = sqlx::query("DELETE FROM table_registry WHERE id = ?").bind(id).execute(&mut *tx).await?;
        for sql in [
            "DELETE FROM sync_state WHERE table_id = ?",
            "DELETE FROM sync_parts WHERE table_id = ?",
            "DELETE FROM sync_history WHERE table_id = ?",
            "DELETE FROM table_profiles WHERE table_id = ?",
            "DELETE FROM column_metadata WHERE table_id = ?",
            "DELETE FROM resource_grants WHERE resource_type = 'table' AND resource_id = ?",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(gone.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;
    use agnes_core::{PartitionGranularity, QueryMode, SourceType, SyncStrategy, TableSpec};

    #[tokio::test]
    async fn round_trip_resolve_conflict_delete() {
        let store = Store::open_in_memory().await.unwrap();
        let mut t = TableSpec::new("Web Sessions", SourceType::Files, QueryMode::Local, chrono::Utc::now());
        t.source_table = Some("sessions/*.csv".into());
        t.sync_strategy = SyncStrategy::Partitioned;
        t.partition_by = Some("started_at".into());
        t.partition_granularity = Some(PartitionGranularity::Month);
        t.primary_key = vec!["session_id".into()];
        t.source_options = Some(serde_json::json!({"null_markers": ["-"]}));
        store.registry().insert(&t).await.unwrap();

        let got = store.registry().get("web_sessions").await.unwrap().unwrap();
        assert_eq!(got.name, "Web Sessions");
        assert_eq!(got.partition_granularity, Some(PartitionGranularity::Month));
        assert_eq!(got.primary_key, vec!["session_id".to_string()]);
        assert_eq!(got.source_options, t.source_options);
        assert_eq!(store.registry().resolve("Web Sessions").await.unwrap().unwrap().id, "web_sessions");

        let err = store.registry().insert(&t).await.unwrap_err();
        assert!(err.to_string().contains("already exists"));

        assert!(store.registry().delete("web_sessions").await.unwrap());
        assert!(!store.registry().delete("web_sessions").await.unwrap());
        assert!(store.registry().get("web_sessions").await.unwrap().is_none());
    }
}
