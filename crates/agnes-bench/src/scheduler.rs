//! The scheduler's tick when nothing is due, with 1,000 registered tables: what every
//! server pays every 30 s.

use crate::report::{machine, Section};
use crate::scenarios::median;
use agnes_connectors::files::{FilesConfig, FilesConnector};
use agnes_core::{QueryMode, SourceType, TableSpec};
use agnes_engine::confined::Limits;
use agnes_engine::DataLayout;
use agnes_server::sync::{SchedulerConfig, SyncService, Tick};
use agnes_store::sync_state::Published;
use agnes_store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn scheduler() -> anyhow::Result<Section> {
    let dir = tempfile::tempdir()?;
    let layout = DataLayout::new(dir.path());
    layout.create()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let tables = 1000;
    let (tick, listing) = rt.block_on(async {
        let store = Store::open(&layout.state_db()).await?;
        for i in 0..tables {
            let mut t = TableSpec::new(&format!("t{i:04}"), SourceType::Files, QueryMode::Local, chrono::Utc::now());
            t.source_table = Some(format!("t{i:04}.csv"));
            t.sync_schedule = Some(if i % 2 == 0 { "every 1h".into() } else { "daily 00:00".into() });
            store.registry().insert(&t).await?;
            let published = Published {
                source_name: "files".into(),
                rows: 1,
                size_bytes: 1,
                hash: format!("{i:032x}"),
                checksum: String::new(),
                parts: Vec::new(),
                source_version: None,
            };
            store.sync_state().record_success(&t.id, &published, 1).await?;
        }
        let files: Arc<dyn agnes_connectors::Connector> =
            Arc::new(FilesConnector::new(FilesConfig { root: layout.default_files_root() }));
        let sync = SyncService::new(store.clone(), layout.clone(), vec![files], Limits::default(), "every 1h".into());
        let config = SchedulerConfig {
            tick: Duration::from_secs(30),
            grace: Duration::ZERO,
            retry_base: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
            refresh: Duration::from_secs(900),
        };
        let (mut ticks, mut lists) = (Vec::new(), Vec::new());
        for _ in 0..31 {
            let t = Instant::now();
            let outcome = sync.tick(&config).await?;
            ticks.push(t.elapsed());
            anyhow::ensure!(matches!(outcome, Tick::Idle), "nothing may be due");
            let t = Instant::now();
            store.registry().list().await?;
            lists.push(t.elapsed());
        }
        anyhow::Ok((median(ticks), median(lists)))
    })?;
    Ok(Section {
        name: "scheduler",
        body: format!(
            "## Scheduler tick\n\n{}\n\n{tables} registered tables, each synced moments ago (`every 1h` or `daily 00:00`), none due; \
             median of 31 ticks. The baseline is reading the registry alone, which a tick also does.\n\n\
             | measure | agnes | baseline | target |\n|---|---|---|---|\n\
             | one scheduler tick, nothing due | {:.1} ms | registry list: {:.1} ms | < 50 ms |\n",
            machine(),
            tick.as_secs_f64() * 1e3,
            listing.as_secs_f64() * 1e3,
        ),
    })
}
