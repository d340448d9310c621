//! The registry, the published states and the BigQuery metadata cache as of one access
//! generation, decoded once and kept: the catalog of a thousand tables reads them from
//! memory instead of decoding three thousand rows per request. The state DB moves the
//! generation on every change to any of them (triggers), so a kept snapshot is never
//! served after a change, whoever made it.

use crate::bq_metadata::CachedMetadata;
use crate::error::Result;
use crate::sync_state::SyncState;
use agnes_core::TableSpec;
use std::sync::Arc;

#[derive(Debug)]
pub struct Snapshot {
    pub generation: i64,
    pub registry: Vec<TableSpec>,
    pub states: Vec<SyncState>,
    pub bq_metadata: Vec<CachedMetadata>,
}

/// Where a store keeps its last snapshot.
pub(crate) type Kept = Arc<std::sync::Mutex<Option<Arc<Snapshot>>>>;

impl crate::Store {
    /// The snapshot of the current access generation: the kept one, or read now. The
    /// generation is read before the rows, so a change racing the read leaves the kept
    /// snapshot tagged older than its rows, and it is read again next time.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>> {
        let (generation,): (i64,) = sqlx::query_as("SELECT n FROM access_generation").fetch_one(self.pool()).await?;
        let kept = self.kept().lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(kept) = kept.filter(|s| s.generation == generation) {
            return Ok(kept);
        }
        let snapshot = Arc::new(Snapshot {
            generation,
            registry: self.registry().list().await?,
            states: self.sync_state().list().await?,
            bq_metadata: self.bq_metadata().list().await?,
        });
        *self.kept().lock().unwrap_or_else(|e| e.into_inner()) = Some(snapshot.clone());
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_change_to_the_registry_or_the_metadata_cache_is_seen_at_once() {
        let store = crate::Store::open_in_memory().await.unwrap();
        let first = store.snapshot().await.unwrap();
        assert!(std::sync::Arc::ptr_eq(&first, &store.snapshot().await.unwrap()), "kept while nothing changed");
        let t = agnes_core::TableSpec::new(
            "events",
            agnes_core::SourceType::Bigquery,
            agnes_core::QueryMode::Remote,
            chrono::Utc::now(),
        );
        store.registry().insert(&t).await.unwrap();
        assert_eq!(store.snapshot().await.unwrap().registry.len(), 1);
        let m = crate::bq_metadata::BqMetadata { path: "p.d.events".into(), rows: Some(7), ..Default::default() };
        store.bq_metadata().put(&t.id, &m).await.unwrap();
        assert_eq!(store.snapshot().await.unwrap().bq_metadata[0].metadata.rows, Some(7));
    }
}
