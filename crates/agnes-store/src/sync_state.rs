//! Per-table sync state, the parts of partitioned tables, and the sync history.
//!
//! Rows are keyed by registry id. A success replaces rows/size/hash; an error only sets
//! `status` and `error`, so the last good data stays described (and served).

use crate::error::Result;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncState {
    pub table_id: String,
    pub source_name: Option<String>,
    pub last_sync: Option<DateTime<Utc>>,
    /// When the published content (hash) last changed.
    pub last_changed: Option<DateTime<Utc>>,
    pub rows: i64,
    pub file_size_bytes: i64,
    pub hash: String,
    pub status: String,
    pub error: Option<String>,
    /// The source's version of the table when it was last read (see migration 0010).
    pub source_version: Option<String>,
}

/// One published file of a partitioned table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartState {
    pub part: String,
    pub hash: String,
    /// The fast checksum clients verify (`xxh3-128:<hex>`); empty when unknown.
    #[serde(default)]
    pub checksum: String,
    pub rows: i64,
    pub size_bytes: i64,
}

/// A published table as the query sandbox needs it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReadableTable {
    pub id: String,
    pub name: String,
    pub source_type: Option<String>,
    pub connection: Option<String>,
    pub sync_strategy: String,
    pub query_mode: String,
    /// Changes whenever the data does: part of the sandbox cache key.
    pub hash: String,
    /// The registry's `primary_key` as stored (a JSON array); see [`Self::primary_key`].
    primary_key_json: String,
}

impl ReadableTable {
    /// The columns a layered table is merged on (empty when the stored value is unreadable:
    /// such a row cannot have been written through the registry).
    pub fn primary_key(&self) -> Vec<String> {
        serde_json::from_str(&self.primary_key_json).unwrap_or_default()
    }
}

/// What a successful sync published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub source_name: String,
    pub rows: i64,
    pub size_bytes: i64,
    /// MD5 of the file, or of the part hashes in part order for partitioned tables.
    pub hash: String,
    /// The file's fast checksum (`xxh3-128:<hex>`); empty for partitioned tables, whose
    /// parts carry their own.
    pub checksum: String,
    /// Empty for single-file tables.
    pub parts: Vec<PartState>,
    /// The source's version of the table that was read, where it has one.
    pub source_version: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    table_id: String,
    source_name: Option<String>,
    last_sync: Option<String>,
    last_changed: Option<String>,
    rows: i64,
    file_size_bytes: i64,
    hash: String,
    status: String,
    error: Option<String>,
    source_version: Option<String>,
}

impl From<Row> for SyncState {
    fn from(r: Row) -> Self {
        SyncState {
            table_id: r.table_id,
            source_name: r.source_name,
            last_sync: crate::parse_ts(r.last_sync),
            last_changed: crate::parse_ts(r.last_changed),
            rows: r.rows,
            file_size_bytes: r.file_size_bytes,
            hash: r.hash,
            status: r.status,
            error: r.error,
            source_version: r.source_version,
        }
    }
}

const COLUMNS: &str =
    "table_id, source_name, last_sync, last_changed, rows, file_size_bytes, hash, status, error, source_version";

pub struct SyncStateRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> SyncStateRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        SyncStateRepo { pool }
    }

    pub async fn get(&self, table_id: &str) -> Result<Option<SyncState>> {
        let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM sync_state WHERE table_id = ?"))
            .bind(table_id)
            .fetch_optional(self.pool)
            .await?;
        Ok(row.map(SyncState::from))
    }

    pub async fn list(&self) -> Result<Vec<SyncState>> {
        let rows: Vec<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM sync_state ORDER BY table_id")).fetch_all(self.pool).await?;
        Ok(rows.into_iter().map(SyncState::from).collect())
    }

    pub async fn parts(&self, table_id: &str) -> Result<Vec<PartState>> {
        let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT part, hash, checksum, rows, size_bytes FROM sync_parts WHERE table_id = ? ORDER BY part",
        )
        .bind(table_id)
        .fetch_all(self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(part, hash, checksum, rows, size_bytes)| PartState { part, hash, checksum, rows, size_bytes })
            .collect())
    }

    /// Record a successful sync: replace the published description, keep `last_changed`
    /// unless the hash moved, and append a history row. Returns whether the data changed.
    pub async fn record_success(&self, table_id: &str, p: &Published, duration_ms: i64) -> Result<bool> {
        let now = crate::now_text();
        let mut tx = crate::write_tx(self.pool).await?;
        let old: Option<(String,)> = sqlx::query_as("SELECT hash FROM sync_state WHERE table_id = ?")
            .bind(table_id)
            .fetch_optional(&mut *tx)
            .await?;
        let changed = old.map(|(h,)| h != p.hash).unwrap_or(true);
        sqlx::query(
            "INSERT INTO sync_state (table_id, source_name, last_sync, last_changed, rows, file_size_bytes, hash, checksum, status, error, source_version) \
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, 'ok', NULL, ?8) \
             ON CONFLICT (table_id) DO UPDATE SET source_name = ?2, last_sync = ?3, \
               last_changed = CASE WHEN sync_state.hash = ?6 THEN sync_state.last_changed ELSE ?3 END, \
               rows = ?4, file_size_bytes = ?5, hash = ?6, checksum = ?7, status = 'ok', error = NULL, source_version = ?8",
        )
        .bind(table_id)
        .bind(&p.source_name)
        .bind(&now)
        .bind(p.rows)
        .bind(p.size_bytes)
        .bind(&p.hash)
        .bind(&p.checksum)
        .bind(&p.source_version)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM sync_parts WHERE table_id = ?").bind(table_id).execute(&mut *tx).await?;
        for part in &p.parts {
            sqlx::query(
                "INSERT INTO sync_parts (table_id, part, hash, checksum, rows, size_bytes) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(table_id)
            .bind(&part.part)
            .bind(&part.hash)
            .bind(&part.checksum)
            .bind(part.rows)
            .bind(part.size_bytes)
            .execute(&mut *tx)
            .await?;
        }
        insert_history(&mut tx, table_id, &now, Some(p.rows), duration_ms, "ok", None, Some(changed)).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Record a failed sync: only `status` and `error` change (a first-ever failure
    /// creates a row with no `last_sync`), and a history row is appended.
    pub async fn record_error(&self, table_id: &str, source_name: &str, error: &str, duration_ms: i64) -> Result<()> {
        let now = crate::now_text();
        let mut tx = crate::write_tx(self.pool).await?;
        sqlx::query(
            "INSERT INTO sync_state (table_id, source_name, status, error) VALUES (?1, ?2, 'error', ?3) \
             ON CONFLICT (table_id) DO UPDATE SET status = 'error', error = ?3",
        )
        .bind(table_id)
        .bind(source_name)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        insert_history(&mut tx, table_id, &now, None, duration_ms, "error", Some(error), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The manifest's `tables` object as JSON text, and how many tables it holds: every
    /// published table the caller may read (`all`, or granted to one of `group_ids`), with
    /// the parts of partitioned and layered tables (and the key a layered table's parts are
    /// merged on). SQLite builds the whole document in one row: the
    /// manifest is fetched on every pull, and row-by-row transfer is what costs.
    pub async fn manifest_json(&self, all: bool, group_ids: &[String], overdue_ids: &str) -> Result<(String, i64)> {
        let groups = serde_json::to_string(group_ids).expect("strings serialize");
        let row: (Option<String>, i64) = sqlx::query_as(&format!(
            "SELECT json_group_object(COALESCE(r.name, s.table_id), json_object(
                 'id', s.table_id, 'hash', s.hash, 'checksum', NULLIF(s.checksum, ''), 'updated', s.last_sync, 'size_bytes', s.file_size_bytes,
                 'rows', s.rows, 'query_mode', COALESCE(r.query_mode, 'local'), 'source_type', COALESCE(r.source_type, ''),
                 'overdue', json(CASE WHEN s.table_id IN (SELECT value FROM json_each(?3)) THEN 'true' ELSE 'false' END),
                 'merge_key', CASE WHEN r.sync_strategy = 'incremental' THEN json(r.primary_key) END,
                 'parts', CASE WHEN r.sync_strategy IN ('partitioned', 'incremental') THEN json((
                     SELECT json_group_array(json_object('part', p.part,
                         'path', '/api/data/' || s.table_id || '/parts/' || p.part || '/download',
                         'hash', p.hash, 'checksum', NULLIF(p.checksum, ''), 'size_bytes', p.size_bytes, 'rows', p.rows))
                     FROM (SELECT * FROM sync_parts WHERE table_id = s.table_id ORDER BY part) p)) END)),
                 count(*)
             FROM sync_state s LEFT JOIN table_registry r ON r.id = s.table_id
             WHERE (s.last_sync IS NOT NULL OR s.hash <> '') AND {}",
            crate::access::granted("table", "s.table_id", 1, 2)
        ))
        .bind(all)
        .bind(groups)
        .bind(overdue_ids)
        .fetch_one(self.pool)
        .await?;
        Ok((row.0.unwrap_or_else(|| "{}".to_string()), row.1))
    }

    /// Every published table the caller may read (`all`, or granted to one of
    /// `group_ids`), with what locates its data; the query sandbox is built from this.
    pub async fn readable_published(&self, all: bool, group_ids: &[String]) -> Result<Vec<ReadableTable>> {
        let groups = serde_json::to_string(group_ids).expect("strings serialize");
        Ok(sqlx::query_as(&format!(
            "SELECT s.table_id AS id, r.name AS name, r.source_type AS source_type, r.connection AS connection, \
                    r.sync_strategy AS sync_strategy, r.query_mode AS query_mode, s.hash AS hash, \
                    r.primary_key AS primary_key_json \
             FROM sync_state s JOIN table_registry r ON r.id = s.table_id \
             WHERE s.hash <> '' AND {} ORDER BY r.name",
            crate::access::granted("table", "s.table_id", 1, 2)
        ))
        .bind(all)
        .bind(groups)
        .fetch_all(self.pool)
        .await?)
    }

    /// Drop what describes a table's published data (history is kept).
    pub async fn forget(&self, table_id: &str) -> Result<()> {
        let mut tx = crate::write_tx(self.pool).await?;
        sqlx::query("DELETE FROM sync_state WHERE table_id = ?").bind(table_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM sync_parts WHERE table_id = ?").bind(table_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The most recent history rows of a table, newest first.
    pub async fn history(&self, table_id: &str, limit: i64) -> Result<Vec<HistoryEntry>> {
        let rows: Vec<HistoryEntry> = sqlx::query_as(
            "SELECT table_id, synced_at, rows, duration_ms, status, error, changed FROM sync_history \
             WHERE table_id = ? ORDER BY synced_at DESC, rowid DESC LIMIT ?",
        )
        .bind(table_id)
        .bind(limit)
        .fetch_all(self.pool)
        .await?;
        Ok(rows)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct HistoryEntry {
    pub table_id: String,
    pub synced_at: String,
    pub rows: Option<i64>,
    pub duration_ms: Option<i64>,
    pub status: String,
    pub error: Option<String>,
    pub changed: Option<bool>,
}

#[allow(clippy::too_many_arguments)]
async fn insert_history(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    table_id: &str,
    now: &str,
    rows: Option<i64>,
    duration_ms: i64,
    status: &str,
    error: Option<&str>,
    changed: Option<bool>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sync_history (id, table_id, synced_at, rows, duration_ms, status, error, changed) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(table_id)
    .bind(now)
    .bind(rows)
    .bind(duration_ms)
    .bind(status)
    .bind(error)
    .bind(changed)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn published(hash: &str, rows: i64) -> Published {
        Published {
            source_name: "files".into(),
            rows,
            size_bytes: 100,
            hash: hash.into(),
            checksum: format!("xxh3-128:{hash}"),
            parts: vec![],
            source_version: None,
        }
    }

    #[tokio::test]
    async fn success_error_success() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.sync_state();
        assert!(repo.record_success("orders", &published("aaa", 10), 12).await.unwrap());
        let first = repo.get("orders").await.unwrap().unwrap();
        assert_eq!((first.rows, first.hash.as_str(), first.status.as_str()), (10, "aaa", "ok"));

        repo.record_error("orders", "files", "boom", 3).await.unwrap();
        let failed = repo.get("orders").await.unwrap().unwrap();
        assert_eq!(failed.status, "error");
        assert_eq!(failed.error.as_deref(), Some("boom"));
        assert_eq!((failed.rows, failed.hash.as_str()), (10, "aaa"), "last good data stays described");
        assert_eq!(failed.last_sync, first.last_sync);

        assert!(!repo.record_success("orders", &published("aaa", 10), 5).await.unwrap(), "same hash = unchanged");
        let again = repo.get("orders").await.unwrap().unwrap();
        assert_eq!(again.status, "ok");
        assert_eq!(again.last_changed, first.last_changed, "unchanged data keeps last_changed");

        let history = repo.history("orders", 10).await.unwrap();
        assert_eq!(history.len(), 3);
        assert_eq!(history[1].status, "error");
        assert_eq!(history[0].duration_ms, Some(5));
        assert_eq!(history[0].changed, Some(false));
    }

    #[tokio::test]
    async fn first_failure_has_no_last_sync() {
        let store = Store::open_in_memory().await.unwrap();
        store.sync_state().record_error("t", "files", "bad csv", 1).await.unwrap();
        let s = store.sync_state().get("t").await.unwrap().unwrap();
        assert!(s.last_sync.is_none());
        assert_eq!(s.hash, "");
    }

    #[tokio::test]
    async fn parts_are_replaced() {
        let store = Store::open_in_memory().await.unwrap();
        let mut p = published("x", 3);
        p.parts = vec![
            PartState {
                part: "2024_01".into(),
                hash: "h1".into(),
                checksum: "xxh3-128:c1".into(),
                rows: 1,
                size_bytes: 10,
            },
            PartState { part: "2024_02".into(), hash: "h2".into(), checksum: String::new(), rows: 2, size_bytes: 20 },
        ];
        store.sync_state().record_success("t", &p, 1).await.unwrap();
        p.parts.truncate(1);
        p.hash = "y".into();
        store.sync_state().record_success("t", &p, 1).await.unwrap();
        let parts = store.sync_state().parts("t").await.unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].checksum, "xxh3-128:c1", "the checksum round-trips");
    }
}
