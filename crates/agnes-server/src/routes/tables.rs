//! Resolving a table reference for a caller: by registry id or name (DESIGN decision 6),
//! checked with the one access rule, and located on disk.

use crate::auth::access::{can_access, Caller};
use crate::error::ApiError;
use crate::state::AppState;
use agnes_core::{is_quoted_identifier, SyncStrategy, TableSpec};
use axum::http::StatusCode;
use std::collections::HashSet;
use std::path::PathBuf;

pub const TABLE: &str = "table";

/// The registry ids the caller may read; `None` means all (admins).
pub async fn readable_ids(state: &AppState, caller: &Caller) -> Result<Option<HashSet<String>>, ApiError> {
    Ok(crate::auth::access::readable(&state.store, caller, TABLE).await?)
}

pub fn may_read(ids: &Option<HashSet<String>>, table_id: &str) -> bool {
    ids.as_ref().is_none_or(|set| set.contains(table_id))
}

/// The registry row `reference` names, if the caller may read it: 404 when the reference
/// is malformed or unknown, 403 when it exists but is not granted.
pub async fn resolve_readable(state: &AppState, caller: &Caller, reference: &str) -> Result<TableSpec, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, format!("Table '{reference}' not found"));
    if !is_quoted_identifier(reference) {
        return Err(not_found());
    }
    let spec = state.store.registry().resolve(reference).await?.ok_or_else(not_found)?;
    if !can_access(&state.store, caller, TABLE, &spec.id).await? {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "Access denied to this table"));
    }
    Ok(spec)
}

/// Where a table's published data is: the file, or the directory of parts.
pub fn data_location(state: &AppState, spec: &TableSpec) -> Option<PathBuf> {
    let source = state.sync.source_name_for(spec)?;
    Some(if spec.sync_strategy == SyncStrategy::Partitioned {
        state.layout.table_part_dir(&source, &spec.name)
    } else {
        state.layout.table_file(&source, &spec.name)
    })
}

/// The path or glob DuckDB reads a table's published data from, if any is published.
pub fn readable_path(state: &AppState, spec: &TableSpec) -> Option<String> {
    let location = data_location(state, spec)?;
    if spec.sync_strategy == SyncStrategy::Partitioned {
        location.is_dir().then(|| location.join("*.parquet").to_string_lossy().into_owned())
    } else {
        location.is_file().then(|| location.to_string_lossy().into_owned())
    }
}
