//! Profiles of published tables (spec §7): after a sync changed a table, and on demand.
//! Profiling reads the published parquet in a DuckDB of its own, with its own memory limit
//! and spill directory, and holds no lock: queries, pulls and syncs go on meanwhile.

use super::{SyncError, SyncService};
use agnes_core::api::TableProfile;
use agnes_core::TableSpec;
use agnes_engine::profile::{profile, ProfileInput, ProfileOptions};
use agnes_engine::table_data::TableData;

impl SyncService {
    /// Profile `spec`'s published data now and store the profile; `None` when nothing is
    /// published yet.
    pub async fn profile_table(&self, spec: &TableSpec) -> Result<Option<TableProfile>, SyncError> {
        let Some(source) = self.source_name_for(spec) else { return Ok(None) };
        let Some(state) = self.inner.store.sync_state().get(&spec.id).await? else { return Ok(None) };
        let layout = &self.inner.layout;
        let data = TableData::locate(layout, &source, spec);
        if !data.exists() {
            return Ok(None);
        }
        let options = ProfileOptions { temp_directory: Some(layout.tmp_dir().join("profile")), ..Default::default() };
        let (spec2, size) = (spec.clone(), state.file_size_bytes.max(0) as u64);
        let profiled = tokio::task::spawn_blocking(move || {
            let input = ProfileInput {
                table_id: &spec2.id,
                data: &data,
                description: spec2.description.as_deref(),
                primary_key: &spec2.primary_key,
                sync_strategy: spec2.sync_strategy.as_str(),
                file_size_bytes: size,
            };
            profile(&input, &options)
        })
        .await
        .map_err(|e| SyncError::Task(e.to_string()))??;
        let mut profiled = profiled;
        profiled.last_sync = state.last_sync.map(|d| d.to_rfc3339());
        self.inner.store.profiles().put(&spec.id, &profiled, &state.hash).await?;
        Ok(Some(profiled))
    }

    /// Profile, in the background, the tables whose content differs from what their stored
    /// profile describes. Failures are logged: a profile is a description, not data.
    pub(super) fn profile_changed(&self, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        let this = self.clone();
        let handle = tokio::spawn(async move {
            for id in ids {
                if this.is_stopping() {
                    return;
                }
                let Ok(Some(spec)) = this.inner.store.registry().get(&id).await else { continue };
                match this.profile_table(&spec).await {
                    Ok(_) => tracing::info!(table = %id, "profiled"),
                    Err(e) => tracing::warn!(table = %id, "cannot profile: {e}"),
                }
            }
        });
        self.keep(handle);
    }
}
