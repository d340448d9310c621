//! Running user SQL on the server (`/api/query`, `/api/v2/scan`): the caller's sandbox and
//! the quota slot around every run.
//!
//! A sandbox is built from exactly the published tables the caller may read, and cached
//! under that list together with each table's content hash: callers with the same grants
//! share one, and a grant, a revoke or a sync changes the key, so it takes effect on the
//! next query without any invalidation step.

mod answers;
mod config;
mod slot;

pub use answers::{Answer, AnswerKey};
pub(crate) use config::setting;
pub use config::QueryConfig;
pub use slot::Slot;

use crate::auth::access::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use agnes_core::SourceType;
use agnes_engine::sandbox::{Sandbox, SandboxTable, TableData};
use axum::http::StatusCode;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many distinct sandboxes stay open; the least recently used goes first.
const CACHE_SIZE: usize = 32;

type Key = Vec<(SandboxTable, String)>;

#[derive(Clone)]
pub struct QueryService {
    config: Arc<QueryConfig>,
    cache: Arc<Mutex<Cache>>,
    answers: Arc<answers::Answers>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<Key, (Arc<Sandbox>, u64)>,
    clock: u64,
}

impl QueryService {
    pub fn new(config: QueryConfig) -> QueryService {
        QueryService { config: Arc::new(config), cache: Arc::default(), answers: Arc::default() }
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    pub fn answers(&self) -> &answers::Answers {
        &self.answers
    }

    /// Take one of the caller's slots, or answer 429 in the contract's shape. `kind` names
    /// the slot in a refusal: `concurrent_queries` or `concurrent_scans`.
    pub async fn acquire(&self, state: &AppState, caller: &Caller, kind: &'static str) -> Result<Slot, ApiError> {
        match state.store.quotas().acquire(&caller.user.id, &self.config.quotas, kind).await? {
            Ok(id) => Ok(Slot::new(state.store.clone(), id, caller.user.id.clone())),
            Err(denied) => Err(ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                detail: json!({
                    "error": "quota_exceeded",
                    "reason": if denied.kind == "daily_bytes" { "daily_byte_cap_exceeded" } else { "concurrent_slot_exceeded" },
                    "kind": denied.kind, "current": denied.current, "limit": denied.limit,
                    "retry_after_seconds": denied.retry_after_seconds,
                }),
            }),
        }
    }

    /// The tables a caller's SQL may use, located on disk.
    pub async fn readable_tables(state: &AppState, caller: &Caller) -> Result<Key, ApiError> {
        let rows = state.store.sync_state().readable_published(caller.is_admin, &caller.group_ids).await?;
        let mut tables = Vec::with_capacity(rows.len());
        for r in rows {
            let Some(st) = r.source_type.as_deref().and_then(|s| s.parse::<SourceType>().ok()) else { continue };
            let source = state.sync.source_name_of(st);
            let data = if r.sync_strategy == "partitioned" {
                let dir = state.layout.table_part_dir(&source, &r.name);
                if !dir.is_dir() {
                    continue;
                }
                TableData::Parts(dir)
            } else {
                let file = state.layout.table_file(&source, &r.name);
                if !file.is_file() {
                    continue;
                }
                TableData::File(file)
            };
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
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.clock += 1;
        let now = cache.clock;
        if cache.entries.len() >= CACHE_SIZE {
            if let Some(oldest) = cache.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone()) {
                cache.entries.remove(&oldest);
            }
        }
        cache.entries.insert(tables, (sandbox.clone(), now));
        Ok(sandbox)
    }

    fn lookup(&self, key: &Key) -> Option<Arc<Sandbox>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.clock += 1;
        let now = cache.clock;
        cache.entries.get_mut(key).map(|(sandbox, used)| {
            *used = now;
            sandbox.clone()
        })
    }
}
