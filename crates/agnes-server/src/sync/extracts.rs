//! Writing a source's `extract.duckdb` from what the registry and sync state say was
//! published: the extract always describes exactly the tables with good data on disk.

use super::SyncError;
use agnes_connectors::Connector;
use agnes_engine::extract::{write_extract, ExtractTable, MetaRow};
use agnes_engine::table_data::TableData;
use agnes_engine::DataLayout;
use agnes_store::Store;

pub(super) async fn write_source_extract(
    store: &Store,
    layout: &DataLayout,
    all: &[std::sync::Arc<dyn Connector>],
    connector: &dyn Connector,
) -> Result<(), SyncError> {
    let source = connector.source_name();
    let mut tables = Vec::new();
    for t in store.registry().list().await? {
        let served = t.source_type.and_then(|st| agnes_connectors::connector_for(all, st, t.connection.as_deref()));
        if served.is_none_or(|c| c.source_name() != source) || !connector.syncs(t.query_mode) {
            continue;
        }
        let Some(state) = store.sync_state().get(&t.id).await? else {
            continue;
        };
        if state.hash.is_empty() {
            continue;
        }
        let data = TableData::locate(layout, source, &t);
        if !data.exists() {
            tracing::warn!(table = %t.id, "sync state says published but no data file exists; left out of the extract");
            continue;
        }
        let meta = MetaRow {
            table_name: t.name.clone(),
            description: t.description.clone(),
            rows: state.rows,
            size_bytes: state.file_size_bytes,
            extracted_at: state.last_changed.or(state.last_sync),
            query_mode: t.query_mode.as_str().to_string(),
        };
        tables.push(ExtractTable::over(meta, &data)?);
    }
    let path = layout.extract_db(source);
    tokio::task::spawn_blocking(move || write_extract(&path, &tables, &[]))
        .await
        .map_err(|e| SyncError::Task(e.to_string()))??;
    Ok(())
}
