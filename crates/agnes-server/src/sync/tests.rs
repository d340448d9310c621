use super::*;
use agnes_connectors::files::{FilesConfig, FilesConnector};
use agnes_core::{QueryMode, SourceType};
use agnes_engine::duckdb::Connection;
use agnes_engine::orchestrator::open_analytics_reader;

struct Env {
    _dir: tempfile::TempDir,
    layout: DataLayout,
    store: Store,
    sync: SyncService,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path());
    layout.create().unwrap();
    let store = Store::open(&layout.state_db()).await.unwrap();
    let files: Arc<dyn Connector> = Arc::new(FilesConnector::new(FilesConfig { root: layout.default_files_root() }));
    let sync = SyncService::new(store.clone(), layout.clone(), vec![files], Limits::default(), "every 1h".into());
    Env { _dir: dir, layout, store, sync }
}

async fn register(env: &Env, name: &str, path: &str, body: &str) {
    std::fs::write(env.layout.default_files_root().join(path), body).unwrap();
    let mut t = TableSpec::new(name, SourceType::Files, QueryMode::Local, chrono::Utc::now());
    t.source_table = Some(path.into());
    env.store.registry().insert(&t).await.unwrap();
}

fn analytics_count(layout: &DataLayout, view: &str) -> i64 {
    let c: Connection = open_analytics_reader(layout).unwrap();
    c.query_row(&format!("SELECT count(*) FROM {view}"), [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn sync_publishes_records_state_and_rebuilds() {
    let env = env().await;
    register(&env, "orders", "orders.csv", "id,amount\n1,10\n2,NA\n3,30\n").await;
    register(&env, "customers", "customers.csv", "id,name\n1,Ann\n").await;

    let report = env.sync.run(Selection::Due, None).await.unwrap();
    assert_eq!(report.tables.len(), 2, "{report:?}");
    assert!(report.tables.iter().all(|t| t.status == "ok" && t.changed == Some(true)), "{report:?}");
    assert!(report.rebuilt);
    assert_eq!(report.exposed_tables, 2);
    assert_eq!(analytics_count(&env.layout, "orders"), 3);

    let state = env.store.sync_state().get("orders").await.unwrap().unwrap();
    let file = env.layout.table_file("files", "orders");
    assert_eq!(state.hash, agnes_engine::fsutil::md5_file(&file).unwrap(), "hash is the published file's MD5");
    assert_eq!(state.rows, 3);
    assert_eq!(state.file_size_bytes as u64, std::fs::metadata(&file).unwrap().len());
    let history = env.store.sync_state().history("orders", 5).await.unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].duration_ms.is_some());

    let meta = agnes_engine::extract::read_meta(&env.layout.extract_db("files")).unwrap();
    assert_eq!(meta.iter().map(|m| m.table_name.as_str()).collect::<Vec<_>>(), ["customers", "orders"]);
    let owners = env.store.view_ownership().load().await.unwrap();
    assert_eq!(owners.get("orders").map(String::as_str), Some("files"));
}

#[tokio::test]
async fn failed_sync_keeps_last_good_data_and_does_not_block_others() {
    let env = env().await;
    register(&env, "orders", "orders.csv", "id,amount\n1,10\n2,20\n").await;
    register(&env, "customers", "customers.csv", "id,name\n1,Ann\n").await;
    let mut t = env.store.registry().get("orders").await.unwrap().unwrap();
    t.source_options = Some(serde_json::json!({"types": {"amount": "INTEGER"}}));
    env.store.registry().upsert(&t).await.unwrap();
    env.sync.run(Selection::Due, None).await.unwrap();
    let good = env.store.sync_state().get("orders").await.unwrap().unwrap();
    let file = env.layout.table_file("files", "orders");
    let good_bytes = std::fs::read(&file).unwrap();

    std::fs::write(env.layout.default_files_root().join("orders.csv"), "id,amount\n1,10\n2,twenty\n").unwrap();
    std::fs::write(env.layout.default_files_root().join("customers.csv"), "id,name\n1,Ann\n2,Bob\n").unwrap();
    let report = env.sync.run(Selection::Tables(vec!["orders".into(), "customers".into()]), None).await.unwrap();
    let orders = report.tables.iter().find(|t| t.id == "orders").unwrap();
    assert_eq!(orders.status, "error");
    let msg = orders.error.as_deref().unwrap();
    assert!(msg.contains("orders.csv") && msg.contains("Line: 3") && msg.contains("twenty"), "{msg}");
    assert_eq!(report.tables.iter().find(|t| t.id == "customers").unwrap().status, "ok");

    assert_eq!(std::fs::read(&file).unwrap(), good_bytes, "old parquet untouched");
    let failed = env.store.sync_state().get("orders").await.unwrap().unwrap();
    assert_eq!((failed.status.as_str(), failed.hash.as_str(), failed.rows), ("error", good.hash.as_str(), 2));
    assert_eq!(failed.error.as_deref(), Some(msg));
    assert_eq!(analytics_count(&env.layout, "orders"), 2, "analysts keep the last good data");
    assert_eq!(analytics_count(&env.layout, "customers"), 2);
}

#[tokio::test]
async fn unchanged_data_is_not_a_change() {
    let env = env().await;
    register(&env, "orders", "orders.csv", "id\n1\n2\n").await;
    env.sync.run(Selection::Due, None).await.unwrap();
    let first = env.store.sync_state().get("orders").await.unwrap().unwrap();
    let report = env.sync.run(Selection::Tables(vec!["orders".into()]), None).await.unwrap();
    assert_eq!(report.tables[0].changed, Some(false));
    let second = env.store.sync_state().get("orders").await.unwrap().unwrap();
    assert_eq!(second.hash, first.hash);
    assert_eq!(second.last_changed, first.last_changed);
    assert!(second.last_sync > first.last_sync);
}

#[tokio::test]
async fn schedules_decide_what_is_due() {
    let env = env().await;
    register(&env, "hourly", "h.csv", "id\n1\n").await;
    let mut t = env.store.registry().get("hourly").await.unwrap().unwrap();
    t.sync_schedule = Some("every 1h".into());
    env.store.registry().upsert(&t).await.unwrap();
    register(&env, "always", "a.csv", "id\n1\n").await;

    let first = env.sync.run(Selection::Due, None).await.unwrap();
    assert_eq!(first.tables.len(), 2);
    let second = env.sync.run(Selection::Due, None).await.unwrap();
    let ids: Vec<_> = second.tables.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["always"], "a table without a schedule is due every tick; the hourly one is not");
}

#[tokio::test]
async fn unknown_and_unsyncable_references_are_reported() {
    let env = env().await;
    let mut remote = TableSpec::new("remote_t", SourceType::Bigquery, QueryMode::Remote, chrono::Utc::now());
    remote.bucket = Some("ds".into());
    env.store.registry().insert(&remote).await.unwrap();
    let report = env.sync.run(Selection::Tables(vec!["nope".into(), "remote_t".into()]), None).await.unwrap();
    assert_eq!(report.tables.len(), 2);
    assert!(report.tables[0].error.as_deref().unwrap().contains("not registered"));
    assert!(report.tables[1].error.as_deref().unwrap().contains("no connector"));
}

#[tokio::test]
async fn one_run_at_a_time() {
    let env = env().await;
    let guard = env.sync.inner.running.lock().await;
    assert!(env.sync.is_locked());
    assert!(matches!(env.sync.run(Selection::Due, None).await, Err(SyncError::InProgress)));
    assert!(matches!(env.sync.trigger(Selection::Due), Err(SyncError::InProgress)));
    drop(guard);
    env.sync.trigger(Selection::Due).unwrap();
    assert!(env.sync.is_locked(), "locked during the hold window after a trigger");
    env.sync.shutdown().await;
}

fn scheduler_config() -> SchedulerConfig {
    SchedulerConfig {
        tick: Duration::from_secs(30),
        grace: Duration::ZERO,
        retry_base: Duration::from_secs(60),
        retry_max: Duration::from_secs(3600),
        refresh: Duration::from_secs(900),
    }
}

async fn job(env: &Env) -> agnes_store::scheduler::JobState {
    env.store.scheduler().jobs().await.unwrap().into_iter().find(|j| j.name == DATA_REFRESH).unwrap()
}

#[tokio::test]
async fn a_failing_table_backs_off_while_the_others_sync() {
    let env = env().await;
    register(&env, "orders", "orders.csv", "id,amount\n1,ten\n").await;
    register(&env, "customers", "customers.csv", "id,name\n1,Ann\n").await;
    let mut t = env.store.registry().get("orders").await.unwrap().unwrap();
    t.source_options = Some(serde_json::json!({"types": {"amount": "INTEGER"}}));
    env.store.registry().upsert(&t).await.unwrap();
    let config = scheduler_config();

    let Tick::Ran(report) = env.sync.tick(&config).await.unwrap() else { panic!("both tables were due") };
    assert_eq!(report.tables.len(), 2);
    assert_eq!(job(&env).await.last_status.as_deref(), Some("partial"));
    let backoff = &env.store.scheduler().backoffs().await.unwrap()[0];
    assert_eq!((backoff.table_id.as_str(), backoff.failures), ("orders", 1));
    let wait = chrono::DateTime::parse_from_rfc3339(&backoff.retry_at).unwrap().to_utc() - chrono::Utc::now();
    assert!((40..=76).contains(&wait.num_seconds()), "60 s give or take a quarter: {wait}");
    assert!(env.store.sync_state().get("customers").await.unwrap().is_some_and(|s| s.status == "ok"));

    // Right away: orders waits out its backoff, customers is fresh.
    assert!(matches!(env.sync.tick(&config).await.unwrap(), Tick::Idle));

    // Its time comes, it fails again and waits twice as long.
    env.store.scheduler().failed("orders", chrono::Utc::now() - chrono::Duration::seconds(1), "x").await.unwrap();
    let before = env.store.scheduler().failures("orders").await.unwrap();
    let Tick::Ran(report) = env.sync.tick(&config).await.unwrap() else { panic!("orders was due again") };
    assert_eq!(report.tables.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["orders"], "only the failing table");
    assert_eq!(job(&env).await.last_status.as_deref(), Some("error"));
    let backoff = &env.store.scheduler().backoffs().await.unwrap()[0];
    assert_eq!(backoff.failures, before + 1);
    let wait = chrono::DateTime::parse_from_rfc3339(&backoff.retry_at).unwrap().to_utc() - chrono::Utc::now();
    assert!(wait.num_seconds() >= 60 * (1 << before) * 3 / 4 - 2, "{wait}");

    // Fixed at the source: the next attempt succeeds and the backoff is gone.
    std::fs::write(env.layout.default_files_root().join("orders.csv"), "id,amount\n1,10\n").unwrap();
    env.store.scheduler().failed("orders", chrono::Utc::now() - chrono::Duration::seconds(1), "x").await.unwrap();
    assert!(matches!(env.sync.tick(&config).await.unwrap(), Tick::Ran(_)));
    assert!(env.store.scheduler().backoffs().await.unwrap().is_empty());
    assert_eq!(job(&env).await.last_status.as_deref(), Some("ok"));
    assert_eq!(job(&env).await.runs, 3, "idle ticks are not runs");
}

#[tokio::test]
async fn the_scheduler_never_runs_beside_another_sync() {
    let env = env().await;
    register(&env, "orders", "orders.csv", "id\n1\n").await;
    let held = env.sync.inner.running.lock().await;
    assert!(matches!(env.sync.tick(&scheduler_config()).await.unwrap(), Tick::Skipped));
    assert_eq!(job(&env).await.last_status.as_deref(), Some("skipped"));
    assert!(env.store.sync_state().get("orders").await.unwrap().is_none(), "nothing ran");
    drop(held);
    assert!(matches!(env.sync.tick(&scheduler_config()).await.unwrap(), Tick::Ran(_)));
}

#[tokio::test]
async fn a_run_cut_off_by_a_stop_is_recorded_and_nothing_is_lost() {
    let env = env().await;
    register(&env, "orders", "orders.csv", "id\n1\n").await;
    register(&env, "customers", "customers.csv", "id\n1\n").await;
    // The last process synced customers, then stopped in the middle of its run.
    env.sync.run(Selection::Tables(vec!["customers".into()]), None).await.unwrap();
    env.store.scheduler().started(DATA_REFRESH, chrono::Utc::now()).await.unwrap();

    let restarted = SyncService::new(
        env.store.clone(),
        env.layout.clone(),
        env.sync.inner.connectors.clone(),
        Limits::default(),
        "every 1h".into(),
    );
    restarted.start_scheduler(SchedulerConfig { tick: Duration::ZERO, ..scheduler_config() }).await.unwrap();
    let j = job(&env).await;
    assert_eq!((j.last_status.as_deref(), j.running_since), (Some("interrupted"), None));
    assert_eq!(
        restarted.due_now(scheduler_config().refresh).await.unwrap(),
        ["orders"],
        "what was finished is not repeated"
    );
}
