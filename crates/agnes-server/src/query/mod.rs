//! Running user SQL on the server (`/api/query`, `/api/v2/scan`): the caller's sandbox and
//! the quota slot around every run.
//!
//! A sandbox is built from exactly the published tables the caller may read, and cached
//! under that list together with each table's content hash: callers with the same grants
//! share one, and a grant, a revoke or a sync changes the key, so it takes effect on the
//! next query without any invalidation step.

mod answers;
mod config;
mod line;
mod slot;

pub use answers::{Answer, AnswerKey};
pub use config::QueryConfig;
pub use slot::Slot;

use crate::auth::access::Caller;
use crate::error::ApiError;
use agnes_core::{SourceType, SyncStrategy};
use agnes_engine::sandbox::{Sandbox, SandboxTable};
use agnes_engine::table_data::TableData;
use axum::http::StatusCode;
use parking_lot::Mutex;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// The 429 of a request that may not run now.
fn refusal(denied: agnes_store::quotas::QuotaDenied) -> ApiError {
    ApiError::coded(
        StatusCode::TOO_MANY_REQUESTS,
        "quota_exceeded",
        json!({
            "error": "quota_exceeded",
            "reason": if denied.kind == "daily_bytes" { "daily_byte_cap_exceeded" } else { "concurrent_slot_exceeded" },
            "kind": denied.kind, "current": denied.current, "limit": denied.limit,
            "retry_after_seconds": denied.retry_after_seconds,
        }),
    )
}

/// How many distinct sandboxes stay open; the least recently used goes first.
const CACHE_SIZE: std::num::NonZeroUsize = std::num::NonZeroUsize::new(32).expect("32 is not zero");

type Key = Vec<(SandboxTable, String)>;

/// Server-side SQL: slots, readable tables, sandboxes and kept answers. It holds the
/// store, layout and sync service it reads from, not the routes' `AppState`.
#[derive(Clone)]
pub struct QueryService {
    config: Arc<QueryConfig>,
    store: agnes_store::Store,
    layout: agnes_engine::DataLayout,
    sync: crate::sync::SyncService,
    cache: Arc<Mutex<lru::LruCache<Key, Arc<Sandbox>>>>,
    answers: Arc<answers::Answers>,
    readable: Arc<Mutex<HashMap<Readers, (i64, Key)>>>,
    lines: Arc<line::Lines>,
}

/// Whom a readable-tables list is for: admin or not, and the sorted group ids. Nothing
/// else decides what a caller may read.
type Readers = (bool, Vec<String>);

/// How many group sets' readable tables are kept.
const READABLE_SIZE: usize = 256;

impl QueryService {
    pub fn new(
        config: QueryConfig,
        store: agnes_store::Store,
        layout: agnes_engine::DataLayout,
        sync: crate::sync::SyncService,
    ) -> QueryService {
        QueryService {
            config: Arc::new(config),
            store,
            layout,
            sync,
            cache: Arc::new(Mutex::new(lru::LruCache::new(CACHE_SIZE))),
            answers: Arc::default(),
            readable: Arc::default(),
            lines: Arc::default(),
        }
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    pub fn answers(&self) -> &answers::Answers {
        &self.answers
    }

    /// Take one of the caller's slots. Over their concurrency limit, wait in the user's line
    /// up to `slot_wait` for one to free (see [`line`]); then, or at once for the daily byte
    /// budget, answer 429 in the contract's shape (with `Retry-After`). `kind` names the
    /// slot in a refusal: `concurrent_queries` or `concurrent_scans`.
    pub async fn acquire(&self, caller: &Caller, kind: &'static str) -> Result<Slot, ApiError> {
        let user = &caller.user.id;
        let (quotas, limits) = (self.store.quotas(), &self.config.quotas);
        let line = self.lines.of(user);
        let slot = |acquired| Slot::new(self.store.clone(), acquired, user.clone(), line.clone());
        if line.is_empty() {
            match quotas.acquire(user, limits, kind).await? {
                Ok(acquired) => return Ok(slot(acquired)),
                Err(denied) if denied.kind == "daily_bytes" || self.config.slot_wait.is_zero() => {
                    return Err(refusal(denied))
                }
                Err(_) => {}
            }
        }
        let deadline = tokio::time::Instant::now() + self.config.slot_wait;
        let place = line.join();
        let head = place.head(deadline).await;
        loop {
            match quotas.acquire(user, limits, kind).await? {
                Ok(acquired) => return Ok(slot(acquired)),
                Err(denied) if denied.kind == "daily_bytes" || head.is_none() => return Err(refusal(denied)),
                Err(denied) if tokio::time::Instant::now() >= deadline => return Err(refusal(denied)),
                Err(_) => place.next_chance(deadline).await,
            }
        }
    }

    /// [`QueryService::readable_tables`], kept per group set under the access generation
    /// `slot` was taken at: the state DB moves that generation on every change to grants,
    /// the registry or published state, so a kept list is never out of date, and the
    /// common case costs no query.
    pub async fn readable_tables_for(&self, caller: &Caller, slot: &Slot) -> Result<Key, ApiError> {
        let mut groups = caller.group_ids.clone();
        groups.sort();
        let readers = (caller.is_admin, groups);
        let generation = slot.access_generation();
        if let Some((at, key)) = self.readable.lock().get(&readers) {
            if *at == generation {
                return Ok(key.clone());
            }
        }
        let key = self.readable_tables(caller).await?;
        let mut kept = self.readable.lock();
        if kept.len() >= READABLE_SIZE {
            kept.clear();
        }
        kept.insert(readers, (generation, key.clone()));
        Ok(key)
    }

    /// The tables a caller's SQL may use, located on disk.
    pub async fn readable_tables(&self, caller: &Caller) -> Result<Key, ApiError> {
        let rows = self.store.sync_state().readable_published(caller.is_admin, &caller.group_ids).await?;
        let mut tables = Vec::with_capacity(rows.len());
        for r in rows {
            let Some(st) = r.source_type.as_deref().and_then(|s| s.parse::<SourceType>().ok()) else { continue };
            let source = self.sync.source_name_of(st, r.connection.as_deref());
            let Ok(strategy) = r.sync_strategy.parse::<SyncStrategy>() else { continue };
            let data = TableData::of(&self.layout, &source, &r.name, strategy, &r.primary_key());
            if !data.exists() {
                continue;
            }
            tables.push((SandboxTable { name: r.name, data }, r.hash));
        }
        Ok(tables)
    }

    /// The sandbox showing exactly `tables`, from the cache or built now.
    pub async fn sandbox(&self, tables: Key) -> Result<Arc<Sandbox>, ApiError> {
        if let Some(hit) = self.lookup(&tables) {
            return Ok(hit);
        }
        let limits = self.config.sandbox.clone();
        let specs: Vec<SandboxTable> = tables.iter().map(|(t, _)| t.clone()).collect();
        let sandbox = tokio::task::spawn_blocking(move || Sandbox::open(&specs, &limits))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        let sandbox = Arc::new(sandbox);
        self.cache.lock().put(tables, sandbox.clone());
        Ok(sandbox)
    }

    fn lookup(&self, key: &Key) -> Option<Arc<Sandbox>> {
        self.cache.lock().get(key).cloned()
    }
}
