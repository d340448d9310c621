//! `GET /api/admin/storage`: how much the data directory holds and how much room is left,
//! for the dashboard and for alerts before a sync fills the disk.

use crate::auth::authenticate::Admin;
use crate::error::ApiError;
use crate::state::AppState;
use agnes_core::api::StorageUse;
use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(storage))
}

#[utoipa::path(get, path = "/api/admin/storage", tag = "meta", responses((status = 200, body = StorageUse)))]
async fn storage(State(state): State<AppState>, _admin: Admin) -> Result<Json<StorageUse>, ApiError> {
    let tables_bytes = state.store.snapshot().await?.states.iter().map(|s| s.file_size_bytes).sum();
    let layout = state.config.layout();
    let (db, data_dir) = (layout.state_db(), state.config.data_dir.clone());
    let (state_db_bytes, space) = tokio::task::spawn_blocking(move || {
        // The database with its write-ahead log and shared memory: what it takes on disk.
        let db_bytes: u64 = ["", "-wal", "-shm"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", db.display())).ok())
            .map(|m| m.len())
            .sum();
        (db_bytes, rustix::fs::statvfs(&data_dir))
    })
    .await
    .map_err(ApiError::internal)?;
    let space =
        space.map_err(|e| ApiError::internal(format!("cannot read the free space of the data directory: {e}")))?;
    Ok(Json(StorageUse {
        tables_bytes,
        state_db_bytes: state_db_bytes as i64,
        free_bytes: space.f_bavail * space.f_frsize,
        total_bytes: space.f_blocks * space.f_frsize,
    }))
}
