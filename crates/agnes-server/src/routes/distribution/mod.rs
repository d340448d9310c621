//! The tables: registry, syncs, the manifest and downloads, the catalog.
mod catalog;
mod data;
mod metadata_cache;
mod ranges;
mod registry;
mod sources;
mod sync;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(registry::routes())
        .merge(sources::routes())
        .merge(sync::routes())
        .merge(data::routes())
        .merge(catalog::routes())
        .merge(metadata_cache::routes())
}
