//! The metadata cache of remote BigQuery tables: what BigQuery says of each (entity type,
//! columns, partitioning, clustering, rows, bytes), kept in the state DB so the catalog,
//! the schema endpoint and scan checks answer without a BigQuery call. Filled when a
//! table is registered, refreshed on the scheduler's cadence when older than the interval,
//! and on an admin's request. One refresh runs at a time.

use agnes_connectors::bigquery::remote::{table_path, BqRemote};
use agnes_connectors::bigquery::BqTable;
use agnes_core::{QueryMode, SourceType, TableSpec};
use agnes_store::bq_metadata::{BqMetadata, CachedMetadata};
use agnes_store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Whether a registry row is a remote BigQuery table.
pub fn is_remote_bq(t: &TableSpec) -> bool {
    t.query_mode == QueryMode::Remote && t.source_type == Some(SourceType::Bigquery)
}

fn metadata(path: String, t: BqTable) -> BqMetadata {
    BqMetadata {
        path,
        entity_type: t.entity_type().map(String::from),
        columns: t.columns,
        partition_by: t.partition_by,
        clustered_by: t.clustered_by,
        rows: t.rows.map(|r| r as i64),
        size_bytes: t.bytes.map(|b| b as i64),
    }
}

/// Ask BigQuery about `spec`'s table (blocking pool): its metadata, or why it cannot be a
/// remote table (an unknown path, a kind that cannot be queried in place).
pub async fn describe(remote: &Arc<BqRemote>, spec: &TableSpec) -> Result<BqMetadata, String> {
    let project = remote.source().project().map_err(|e| e.to_string())?;
    let path = table_path(spec, &project)?;
    let remote = remote.clone();
    tokio::task::spawn_blocking(move || remote.describe(&path).map(|t| metadata(path, t)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Describe `spec` and keep the answer, or the error beside the last good answer.
pub async fn refresh_one(store: &Store, remote: &Arc<BqRemote>, spec: &TableSpec) -> Result<BqMetadata, String> {
    let cache = store.bq_metadata();
    match describe(remote, spec).await {
        Ok(m) => {
            cache.put(&spec.id, &m).await.map_err(|e| e.to_string())?;
            Ok(m)
        }
        Err(e) => {
            let path = remote.source().project().ok().and_then(|p| table_path(spec, &p).ok()).unwrap_or_default();
            cache.failed(&spec.id, &path, &e).await.map_err(|e| e.to_string())?;
            Err(e)
        }
    }
}

/// One refresh at a time, whoever asks (the scheduler or an admin).
static REFRESHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Refresh the remote BigQuery tables `pick` chooses: the ids refreshed, and `(id, error)`
/// of the others.
pub async fn refresh(
    store: &Store,
    remote: Option<&Arc<BqRemote>>,
    pick: impl Fn(&TableSpec, Option<&CachedMetadata>) -> bool,
) -> Result<(Vec<String>, Vec<(String, String)>), StoreError> {
    let Some(remote) = remote else { return Ok((Vec::new(), Vec::new())) };
    let _one = REFRESHING.lock().await;
    let cached: std::collections::HashMap<String, CachedMetadata> =
        store.bq_metadata().list().await?.into_iter().map(|c| (c.table_id.clone(), c)).collect();
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    for spec in store.registry().list().await?.into_iter().filter(is_remote_bq) {
        if !pick(&spec, cached.get(&spec.id)) {
            continue;
        }
        match refresh_one(store, remote, &spec).await {
            Ok(_) => done.push(spec.id),
            Err(e) => failed.push((spec.id, e)),
        }
    }
    Ok((done, failed))
}

/// `fresh` when refreshed within two intervals, `stale` when longer ago, `error` when it
/// only ever failed, `never_fetched` before any attempt.
pub fn freshness(c: Option<&CachedMetadata>, interval: Duration) -> &'static str {
    let Some(c) = c else { return "never_fetched" };
    match c.refreshed_at {
        Some(at)
            if chrono::Utc::now() - at <= chrono::Duration::from_std(interval * 2).unwrap_or(chrono::Duration::MAX) =>
        {
            "fresh"
        }
        Some(_) => "stale",
        None if c.error_at.is_some() => "error",
        None => "never_fetched",
    }
}

/// Refresh, on the scheduler's tick, the tables whose metadata is missing or older than
/// the interval; one whose last refresh failed is tried again five minutes later.
pub fn start(store: Store, remote: Option<Arc<BqRemote>>, tick: Duration, grace: Duration) {
    let Some(remote) = remote else { return };
    let interval = remote.source().metadata_refresh();
    if tick.is_zero() {
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        loop {
            let older = |at: Option<chrono::DateTime<chrono::Utc>>, than: Duration| {
                at.is_none_or(|at| {
                    chrono::Utc::now() - at >= chrono::Duration::from_std(than).unwrap_or(chrono::Duration::MAX)
                })
            };
            let due = |_: &TableSpec, c: Option<&CachedMetadata>| match c {
                Some(c) if c.error_at.is_some() => older(c.error_at, Duration::from_secs(300)),
                Some(c) => older(c.refreshed_at, interval),
                None => true,
            };
            match refresh(&store, Some(&remote), due).await {
                Ok((done, failed)) if !done.is_empty() || !failed.is_empty() => {
                    tracing::info!(refreshed = done.len(), failed = failed.len(), "BigQuery metadata refreshed")
                }
                Ok(_) => {}
                Err(e) => tracing::error!("BigQuery metadata refresh failed: {e}"),
            }
            tokio::time::sleep(tick.max(Duration::from_secs(1))).await;
        }
    });
}
