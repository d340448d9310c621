//! The metadata cache of remote BigQuery tables (`bq_metadata_cache`), keyed by registry
//! id: what BigQuery said at the last refresh, and the last refresh's error.

use crate::error::{Result, StoreError};
use sqlx::SqlitePool;

/// What BigQuery said of a remote table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BqMetadata {
    /// `project.dataset.table`.
    pub path: String,
    /// `BASE TABLE`, `VIEW` or `MATERIALIZED_VIEW`.
    pub entity_type: Option<String>,
    /// Name and DuckDB type of each column.
    pub columns: Vec<(String, String)>,
    pub partition_by: Option<String>,
    pub clustered_by: Vec<String>,
    pub rows: Option<i64>,
    pub size_bytes: Option<i64>,
}

/// A cache row: the metadata of the last good refresh (empty before one), and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedMetadata {
    pub table_id: String,
    pub metadata: BqMetadata,
    pub refreshed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub error_at: Option<chrono::DateTime<chrono::Utc>>,
    pub error: Option<String>,
}

pub struct BqMetadataRepo<'a> {
    pool: &'a SqlitePool,
}

type Row = (
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn corrupt(column: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |e| StoreError::Corrupt { column, message: e.to_string() }
}

impl<'a> BqMetadataRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        BqMetadataRepo { pool }
    }

    /// Keep what a refresh found, and clear its error.
    pub async fn put(&self, table_id: &str, m: &BqMetadata) -> Result<()> {
        sqlx::query(
            "INSERT INTO bq_metadata_cache (table_id, path, entity_type, columns, partition_by, clustered_by, rows, \
             size_bytes, refreshed_at, error_at, error_msg) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, NULL) \
             ON CONFLICT (table_id) DO UPDATE SET path = ?2, entity_type = ?3, columns = ?4, partition_by = ?5, \
             clustered_by = ?6, rows = ?7, size_bytes = ?8, refreshed_at = ?9, error_at = NULL, error_msg = NULL",
        )
        .bind(table_id)
        .bind(&m.path)
        .bind(&m.entity_type)
        .bind(serde_json::to_string(&m.columns).map_err(corrupt("columns"))?)
        .bind(&m.partition_by)
        .bind(serde_json::to_string(&m.clustered_by).map_err(corrupt("clustered_by"))?)
        .bind(m.rows)
        .bind(m.size_bytes)
        .bind(crate::now_text())
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Record a failed refresh of `table_id` (reading `path`), keeping the last good metadata.
    pub async fn failed(&self, table_id: &str, path: &str, error: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO bq_metadata_cache (table_id, path, error_at, error_msg) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (table_id) DO UPDATE SET error_at = ?3, error_msg = ?4",
        )
        .bind(table_id)
        .bind(path)
        .bind(crate::now_text())
        .bind(error)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    pub async fn get(&self, table_id: &str) -> Result<Option<CachedMetadata>> {
        let row: Option<Row> =
            sqlx::query_as(&format!("{SELECT} WHERE table_id = ?")).bind(table_id).fetch_optional(self.pool).await?;
        row.map(decode).transpose()
    }

    pub async fn list(&self) -> Result<Vec<CachedMetadata>> {
        let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} ORDER BY table_id")).fetch_all(self.pool).await?;
        rows.into_iter().map(decode).collect()
    }
}

const SELECT: &str = "SELECT table_id, path, entity_type, columns, partition_by, clustered_by, rows, size_bytes, \
                      refreshed_at, error_at, error_msg FROM bq_metadata_cache";

fn decode(r: Row) -> Result<CachedMetadata> {
    Ok(CachedMetadata {
        table_id: r.0,
        metadata: BqMetadata {
            path: r.1,
            entity_type: r.2,
            columns: serde_json::from_str(&r.3).map_err(corrupt("columns"))?,
            partition_by: r.4,
            clustered_by: serde_json::from_str(&r.5).map_err(corrupt("clustered_by"))?,
            rows: r.6,
            size_bytes: r.7,
        },
        refreshed_at: crate::parse_ts(r.8),
        error_at: crate::parse_ts(r.9),
        error: r.10,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_last_good_metadata() {
        let store = crate::Store::open_in_memory().await.unwrap();
        let t = agnes_core::TableSpec::new(
            "events",
            agnes_core::SourceType::Bigquery,
            agnes_core::QueryMode::Remote,
            chrono::Utc::now(),
        );
        store.registry().insert(&t).await.unwrap();
        let repo = store.bq_metadata();
        let m = BqMetadata {
            path: "p.d.events".into(),
            entity_type: Some("BASE TABLE".into()),
            columns: vec![("id".into(), "BIGINT".into())],
            partition_by: Some("day".into()),
            clustered_by: vec!["country".into()],
            rows: Some(10),
            size_bytes: Some(800),
        };
        repo.put(&t.id, &m).await.unwrap();
        repo.failed(&t.id, "p.d.events", "403 accessDenied").await.unwrap();
        let got = repo.get(&t.id).await.unwrap().unwrap();
        assert_eq!((got.metadata, got.error.as_deref()), (m.clone(), Some("403 accessDenied")));
        assert!(got.refreshed_at.is_some() && got.error_at.is_some());
        repo.put(&t.id, &m).await.unwrap();
        assert_eq!(repo.get(&t.id).await.unwrap().unwrap().error, None, "a good refresh clears the error");
        store.registry().delete(&t.id).await.unwrap();
        assert!(repo.list().await.unwrap().is_empty(), "unregistering drops the cache row");
    }
}
