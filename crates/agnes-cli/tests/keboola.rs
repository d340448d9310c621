//! Keboola as a source, end to end: `agnes serve` configured the original's way
//! (`data_source.keboola` with a token named by its environment variable) against the
//! fake Storage API; source test, discovery, registration, full and incremental syncs,
//! `agnes pull` and a local query equal to what the fake serves; the token appears in no
//! answer, log line or state.

mod common;

use agnes_fakes::keboola::{FakeColumn, FakeKeboola};
use common::{Cli, Http, TestServer};
use serde_json::{json, Value};

const TOKEN: &str = "8812-445577-secret-storage-token";

fn rows(n: std::ops::RangeInclusive<u32>, status: &str) -> Vec<Vec<String>> {
    n.map(|i| {
        vec![i.to_string(), status.to_string(), format!("{}.{:02}", i, i % 100), format!("2025-03-{:02}", i % 28 + 1)]
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keboola_table_reaches_the_analyst_and_its_changes_follow() {
    let fake = tokio::task::block_in_place(|| FakeKeboola::start(TOKEN));
    fake.create_table(
        "in.c-crm.deals",
        vec![
            FakeColumn::new("id", "INTEGER"),
            FakeColumn::new("stage", "STRING"),
            FakeColumn::numeric("value", "10,2"),
            FakeColumn::new("closed_on", "DATE"),
        ],
        &["id"],
    );
    fake.upsert("in.c-crm.deals", rows(1..=1200, "open"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("instance.yaml");
    std::fs::write(
        &config,
        format!(
            "data_source:\n  keboola:\n    stack_url: {}\n    token_env: AGNES_TEST_KBC_TOKEN\n    gcs_endpoint: {}\n",
            fake.url,
            fake.gcs_endpoint()
        ),
    )
    .unwrap();
    let server = TestServer::start_with(&dir.path().join("data"), |c| {
        c.arg("--config")
            .arg(&config)
            .env("AGNES_TEST_KBC_TOKEN", TOKEN)
            .env("AGNES_KEBOOLA_POLL_INTERVAL_SEC", "0.05");
    });
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let cli = Cli::new(&server.url, &admin, &dir.path().join("admin"));

    let tested = cli.expect(0, &["admin", "source", "test", "keboola"]);
    assert!(tested.contains("Keboola project 'Fake Shop'") && tested.contains("1 tables readable"), "{tested}");
    let (_, sources) = http.get("/api/admin/sources", &admin).await;
    let kbc = sources.as_array().unwrap().iter().find(|s| s["name"] == "keboola").unwrap();
    assert_eq!(kbc["settings"]["token_env"], "AGNES_TEST_KBC_TOKEN", "{kbc}");

    let (_, found) = http.get("/api/admin/discover-tables?source=keboola", &admin).await;
    let deals = &found["tables"][0];
    assert_eq!(
        (deals["path"].as_str(), deals["estimated_rows"].as_i64()),
        (Some("in.c-crm.deals"), Some(1200)),
        "{found}"
    );
    assert_eq!(deals["columns"][2]["type"], "DECIMAL(10,2)", "{deals}");

    let dry = cli.expect(
        0,
        &[
            "admin",
            "discover-and-register",
            "--source",
            "keboola",
            "--sync-strategy",
            "incremental",
            "--dry-run",
            "--json",
        ],
    );
    let dry: Value = serde_json::from_str(&dry).unwrap();
    assert_eq!((dry["registered"][0]["id"].as_str(), dry["dry_run"].as_bool()), (Some("deals"), Some(true)), "{dry}");

    // An unknown placeholder is refused when registering, not at the first sync.
    let (status, v) = http
        .post(
            "/api/admin/register-table",
            Some(&admin),
            json!({"name": "bad", "source_type": "keboola", "bucket": "in.c-crm", "source_table": "deals",
                   "where_filters": [{"column": "closed_on", "operator": "ge", "values": ["{{tomorrow}}"]}]}),
        )
        .await;
    assert_eq!((status.as_u16(), v["code"].as_str()), (400, Some("invalid_where_filters")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("{{tomorrow}}"), "{v}");

    // The same Keboola table three ways: incremental, full refresh, partitioned by month.
    let register = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "admin",
            "register-table",
            name,
            "--source-type",
            "keboola",
            "--bucket",
            "in.c-crm",
            "--source-table",
            "deals",
            "--primary-key",
            "id",
        ];
        args.extend_from_slice(extra);
        cli.expect(0, &args);
    };
    register("deals", &["--sync-strategy", "incremental", "--incremental-window-days", "0"]);
    register("deals_full", &[]);
    // The first load walks back from today in chunks; one of 700 days reaches March 2025.
    register(
        "deals_monthly",
        &[
            "--sync-strategy",
            "partitioned",
            "--partition-by",
            "closed_on",
            "--partition-granularity",
            "month",
            "--initial-load-chunk-days",
            "700",
            "--incremental-window-days",
            "0",
        ],
    );
    let tables = ["deals", "deals_full", "deals_monthly"];
    // changedSince counts whole seconds: the first sync's mark must fall after these rows.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(http.post("/api/sync/trigger", Some(&admin), json!(tables)).await.0, 200);
    http.wait_synced(&admin, &tables).await;
    cli.expect(0, &["pull", "--quiet"]);
    // Every table row for row as the fake serves it.
    let local = |cli: &Cli, table: &str| -> Vec<Vec<String>> {
        let sql = format!(
            "SELECT CAST(id AS VARCHAR) AS id, stage, CAST(value AS VARCHAR) AS value, CAST(closed_on AS VARCHAR) AS closed_on \
             FROM {table} ORDER BY CAST(id AS BIGINT)"
        );
        let out = cli.expect(0, &["query", &sql, "--format", "json", "--limit", "100000"]);
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
        rows.iter()
            .map(|r| {
                ["id", "stage", "value", "closed_on"]
                    .iter()
                    .map(|c| r[c].as_str().unwrap_or("NULL").to_string())
                    .collect()
            })
            .collect()
    };
    let expected = |fake: &FakeKeboola| -> Vec<Vec<String>> {
        let mut all = fake.rows("in.c-crm.deals");
        all.sort_by_key(|r| r[0].parse::<u32>().unwrap());
        all
    };
    let same = |got: Vec<Vec<String>>, want: Vec<Vec<String>>, what: &str| {
        let first = got.iter().zip(&want).position(|(g, w)| g != w);
        assert!(
            got.len() == want.len() && first.is_none(),
            "{what}: {} rows, the source {}; first difference: {:?}",
            got.len(),
            want.len(),
            first.map(|i| (&got[i], &want[i]))
        );
    };
    for t in tables {
        same(local(&cli, t), expected(&fake), &format!("{t} equals the source"));
    }

    // Changes at the source: the next syncs ask for rows changed since the last one.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, before) = http.get("/api/sync/manifest", &admin).await;
    fake.upsert("in.c-crm.deals", [rows(1..=30, "won"), rows(1201..=1210, "open")].concat());
    assert_eq!(http.post("/api/sync/trigger", Some(&admin), json!(tables)).await.0, 200);
    let mut after = Value::Null;
    for _ in 0..200 {
        let (_, m) = http.get("/api/sync/manifest", &admin).await;
        if tables.iter().all(|t| m["tables"][t]["hash"] != before["tables"][t]["hash"]) {
            after = m;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        after["tables"]["deals"]["parts"][1]["rows"],
        40,
        "the delta holds the 40 changed rows: {after}\nexports: {:?}",
        fake.exports()
    );
    let asked_since = fake.exports().iter().filter(|e| e["params"]["changedSince"].is_string()).count();
    assert_eq!(asked_since, 2, "the incremental and the partitioned table asked for changes only");
    cli.expect(0, &["pull", "--quiet"]);
    for t in tables {
        same(local(&cli, t), expected(&fake), &format!("{t} equals the source after the changes"));
    }
    let catalog: Value = serde_json::from_str(&cli.expect(0, &["catalog", "--json"])).unwrap();
    let listed = catalog.to_string();
    assert!(listed.contains("deals_monthly"), "{listed}");

    // Nothing imported since: the next sync asks Keboola for the table, not for an export.
    let updated = |m: &Value| -> Vec<String> {
        tables.iter().map(|t| m["tables"][t]["updated"].as_str().unwrap_or("").to_string()).collect()
    };
    let (_, last) = http.get("/api/sync/manifest", &admin).await;
    let exported = fake.exports().len();
    assert_eq!(http.post("/api/sync/trigger", Some(&admin), json!(tables)).await.0, 200);
    let mut synced = last.clone();
    for _ in 0..200 {
        (_, synced) = http.get("/api/sync/manifest", &admin).await;
        if updated(&synced).iter().zip(updated(&last)).all(|(now, then)| *now != then) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        updated(&synced).iter().zip(updated(&last)).all(|(now, then)| *now != then),
        "the third syncs ran: {synced}"
    );
    for t in tables {
        assert_eq!(synced["tables"][t]["hash"], last["tables"][t]["hash"], "{t} is unchanged");
    }
    assert_eq!(fake.exports().len(), exported, "no export of an unchanged table");

    // The token is nowhere: not in answers, the state DB or the server's log.
    let (_, status) = http.get("/api/sync/status", &admin).await;
    assert!(!status.to_string().contains(TOKEN) && !sources.to_string().contains(TOKEN));
    for file in ["system.db", "system.db-wal"] {
        let bytes = std::fs::read(dir.path().join("data/state").join(file)).unwrap_or_default();
        assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "the token is not in {file}");
    }
    let log: Vec<String> = server.stderr.try_iter().collect();
    assert!(!log.is_empty() && !log.iter().any(|l| l.contains(TOKEN)), "the token is not in the log");
}
