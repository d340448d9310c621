//! Resolving a table reference for a caller: by registry id or name (DESIGN decision 6),
//! checked with the one access rule, and located on disk.

use crate::auth::access::{can_access, Caller};
use crate::error::ApiError;
use crate::state::AppState;
use agnes_core::{is_quoted_identifier, TableSpec};
use agnes_engine::table_data::TableData;
use axum::http::StatusCode;
use std::collections::HashSet;

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

/// Where and how a table's data is published (whether or not anything is yet).
pub fn table_data(state: &AppState, spec: &TableSpec) -> Option<TableData> {
    let source = state.sync.source_name_for(spec)?;
    Some(TableData::locate(&state.layout, &source, spec))
}

/// A table's published data, if there is any on disk.
pub fn published_data(state: &AppState, spec: &TableSpec) -> Option<TableData> {
    table_data(state, spec).filter(TableData::exists)
}
