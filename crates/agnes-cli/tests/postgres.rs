//! PostgreSQL as a source, end to end: a real throw-away cluster, a named connection whose
//! password is an environment variable, discovery, registration, sync, pull and a local
//! query that equals the source.

mod common;

use agnes_connectors::testing::PgCluster;
use common::{fixtures, Cli, Http, TestServer};
use serde_json::{json, Value};

/// An i64 PostgreSQL computes in `shop`. The synchronous client runs its own runtime,
/// so it is used (and dropped) outside the test's.
fn scalar(pg: &PgCluster, sql: &str) -> i64 {
    tokio::task::block_in_place(|| pg.client("shop").query_one(sql, &[]).unwrap().get(0))
}

fn execute_in_shop(pg: &PgCluster, sql: &str) {
    tokio::task::block_in_place(|| pg.execute_in("shop", sql));
}

/// A cluster whose database `shop` holds nycflights13's flights (3,000 rows), readable by
/// the role `reader` with `password`.
fn shop_cluster(password: &str) -> PgCluster {
    tokio::task::block_in_place(|| shop_cluster_now(password))
}

fn shop_cluster_now(password: &str) -> PgCluster {
    let pg = PgCluster::start();
    pg.execute("CREATE DATABASE shop");
    pg.execute(&format!("CREATE ROLE reader LOGIN PASSWORD '{password}'; GRANT CONNECT ON DATABASE shop TO reader;"));
    pg.execute_in(
        "shop",
        "CREATE TABLE flights (year int, month int, day int, dep_time int, sched_dep_time int, dep_delay numeric, \
           arr_time int, sched_arr_time int, arr_delay numeric, carrier text, flight int, tailnum text, \
           origin text, dest text, air_time numeric, distance numeric, hour numeric, minute numeric, \
           time_hour timestamptz, PRIMARY KEY (carrier, flight, time_hour));",
    );
    pg.load_csv("shop", "flights", &fixtures().join("flights_3000.csv"));
    pg.execute_in(
        "shop",
        "GRANT USAGE ON SCHEMA public TO reader; GRANT SELECT ON flights TO reader; ANALYZE flights;",
    );
    pg
}

/// An `agnes serve` whose connection `main` reads `shop` as `reader`, the password in an
/// environment variable; `env` adds settings.
fn serve_with_shop(dir: &std::path::Path, pg: &PgCluster, password: &str, env: &[(&str, &str)]) -> TestServer {
    let config = dir.join("instance.yaml");
    std::fs::write(
        &config,
        format!(
            "data_source:\n  postgres:\n    main:\n      host: 127.0.0.1\n      port: {}\n      database: shop\n      \
             user: reader\n      password_env: AGNES_TEST_MAIN_PG_PASSWORD\n      sslmode: disable\n",
            pg.port
        ),
    )
    .unwrap();
    TestServer::start_with(&dir.join("data"), |c| {
        c.arg("--config").arg(&config).env("AGNES_TEST_MAIN_PG_PASSWORD", password);
        for (k, v) in env {
            c.env(k, v);
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_table_reaches_the_analyst_equal_to_the_source() {
    let pg = shop_cluster("reader-pw-7");
    let source =
        (scalar(&pg, "SELECT count(*) FROM flights"), scalar(&pg, "SELECT sum(dep_time)::bigint FROM flights"));
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with_shop(dir.path(), &pg, "reader-pw-7", &[]);
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let cli = Cli::new(&server.url, &admin, &dir.path().join("admin"));

    // The connection is listed by its settings and the password's variable name only.
    let sources: Value = serde_json::from_str(&cli.expect(0, &["admin", "source", "list", "--json"])).unwrap();
    let main = sources.as_array().unwrap().iter().find(|s| s["name"] == "main").unwrap();
    assert_eq!(main["settings"]["password_env"], "AGNES_TEST_MAIN_PG_PASSWORD");
    assert!(!sources.to_string().contains("reader-pw-7"), "no secret is ever shown: {sources}");
    let tested = cli.expect(0, &["admin", "source", "test", "main"]);
    assert!(tested.contains("signed in as reader") && tested.contains("1 tables readable"), "{tested}");
    let (status, v) = http.post("/api/admin/sources/nope/test", Some(&admin), json!({})).await;
    assert_eq!((status.as_u16(), v["code"].as_str()), (404, Some("source_not_found")), "{v}");

    // Discovery shows columns, key and estimate; one call registers the table.
    let (_, found) = http.get("/api/admin/discover-tables?source=main", &admin).await;
    let flights = &found["tables"][0];
    assert_eq!((flights["path"].as_str(), flights["format"].as_str()), (Some("public.flights"), Some("table")));
    assert_eq!(flights["primary_key"], json!(["carrier", "flight", "time_hour"]));
    assert_eq!(flights["estimated_rows"], 3000);
    let registered =
        cli.expect(0, &["admin", "discover-and-register", "--source", "main", "--table", "public.flights", "--json"]);
    let registered: Value = serde_json::from_str(&registered).unwrap();
    assert_eq!(registered["registered"][0]["id"], "flights", "{registered}");
    let (status, v) = http
        .post(
            "/api/admin/register-table",
            Some(&admin),
            json!({"name": "other", "source_type": "postgres", "connection": "elsewhere", "source_table": "flights"}),
        )
        .await;
    assert_eq!(status.as_u16(), 422, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("connection 'elsewhere' is not configured"), "{v}");

    // Each connector's source_options are checked at registration: 400 naming the key.
    for (body, key) in [
        (
            json!({"name": "o1", "source_type": "postgres", "source_table": "flights", "source_options": {"batch_rowz": 5}}),
            "batch_rowz",
        ),
        (json!({"name": "o2", "source_table": "x.csv", "source_options": {"delimiter": 5}}), "delimiter"),
    ] {
        let (status, v) = http.post("/api/admin/register-table", Some(&admin), body).await;
        assert_eq!((status.as_u16(), v["code"].as_str()), (400, Some("invalid_source_options")), "{v}");
        assert!(v["detail"].as_str().unwrap().contains(key), "{v}");
    }

    assert_eq!(http.post("/api/sync/trigger", Some(&admin), json!(["flights"])).await.0, 200);
    http.wait_synced(&admin, &["flights"]).await;
    cli.expect(0, &["pull", "--quiet"]);
    let out = cli.expect(0, &["query", "SELECT count(*) AS n, sum(dep_time) AS s FROM flights", "--format", "json"]);
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((rows[0]["n"].as_i64(), rows[0]["s"].as_i64()), (Some(source.0), Some(source.1)), "{out}");
}

/// Trigger a sync of `table` and wait until the manifest's hash of it differs from `before`.
async fn sync_until_changed(http: &Http, admin: &str, table: &str, before: &str) -> Value {
    assert_eq!(http.post("/api/sync/trigger", Some(admin), json!([table])).await.0, 200);
    for _ in 0..400 {
        let (_, m) = http.get("/api/sync/manifest", admin).await;
        let hash = m["tables"][table]["hash"].as_str().unwrap_or("");
        if !hash.is_empty() && hash != before {
            return m["tables"][table].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, status) = http.get("/api/sync/status", admin).await;
    panic!("{table} did not change\nstatus: {status}");
}

/// An incremental table is published as a base and a delta: a sync after a few changes
/// rewrites (and a pull downloads) only the delta, and every reader — the analyst's
/// DuckDB, the server's query sandbox, the catalog — sees each key once, at its newest.
#[tokio::test(flavor = "multi_thread")]
async fn an_incremental_table_moves_only_its_delta() {
    let pg = shop_cluster("reader-pw-9");
    execute_in_shop(
        &pg,
        "CREATE TABLE orders (id int PRIMARY KEY, status text, amount numeric(10,2), updated_at timestamptz); \
         INSERT INTO orders SELECT g, 'new', g * 1.5, '2024-01-01'::timestamptz + g * interval '1 minute' \
           FROM generate_series(1, 5000) g; \
         GRANT SELECT ON orders TO reader;",
    );
    let source = |pg: &PgCluster| {
        (
            scalar(pg, "SELECT count(*) FROM orders"),
            scalar(pg, "SELECT count(*) FROM orders WHERE status = 'shipped'"),
            scalar(pg, "SELECT (sum(amount) * 100)::bigint FROM orders"),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with_shop(dir.path(), &pg, "reader-pw-9", &[]);
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let cli = Cli::new(&server.url, &admin, &dir.path().join("admin"));
    cli.expect(
        0,
        &[
            "admin",
            "register-table",
            "orders",
            "--source-type",
            "postgres",
            "--source-table",
            "orders",
            "--sync-strategy",
            "incremental",
            "--incremental-column",
            "updated_at",
            "--primary-key",
            "id",
        ],
    );
    let first = sync_until_changed(&http, &admin, "orders", "").await;
    assert_eq!(first["merge_key"], json!(["id"]), "{first}");
    let parts: Vec<(&str, i64)> = first["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["part"].as_str().unwrap(), p["rows"].as_i64().unwrap()))
        .collect();
    assert_eq!(parts, [("base", 5000), ("delta", 0)]);
    cli.expect(0, &["pull", "--quiet"]);
    let local = |cli: &Cli| -> (i64, i64, i64) {
        let out = cli.expect(
            0,
            &[
                "query",
                "SELECT count(*) AS n, count(*) FILTER (WHERE status = 'shipped') AS shipped, \
                 CAST(sum(amount) * 100 AS BIGINT) AS cents FROM orders",
                "--format",
                "json",
            ],
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        (v[0]["n"].as_i64().unwrap(), v[0]["shipped"].as_i64().unwrap(), v[0]["cents"].as_i64().unwrap())
    };
    assert_eq!(local(&cli), source(&pg));

    use std::os::unix::fs::MetadataExt;
    let base = cli.workspace.join("server/parquet/orders/base.parquet");
    let base_inode = std::fs::metadata(&base).unwrap().ino();
    execute_in_shop(
        &pg,
        "UPDATE orders SET status = 'shipped', amount = amount + 1, updated_at = '2025-01-01' WHERE id % 100 = 0; \
         INSERT INTO orders VALUES (5001, 'new', 1.25, '2025-01-02');",
    );
    let second = sync_until_changed(&http, &admin, "orders", first["hash"].as_str().unwrap()).await;
    assert_eq!(second["rows"], 5001, "{second}");
    assert_eq!(second["parts"][0]["hash"], first["parts"][0]["hash"], "the base is not rewritten");
    assert_eq!(second["parts"][1]["rows"], 51, "the delta holds the changed rows only");
    let pulled: Value = serde_json::from_str(&cli.expect(0, &["pull", "--json"])).unwrap();
    assert_eq!(pulled["tables_updated"], 1, "{pulled}");
    assert_eq!(std::fs::metadata(&base).unwrap().ino(), base_inode, "the pull downloads the delta alone");
    assert_eq!(local(&cli), source(&pg), "each key once, at its newest");

    // The server's readers see the same merged table.
    let (status, v) = http
        .post(
            "/api/query",
            Some(&admin),
            json!({"sql": "SELECT count(*) AS n, count(DISTINCT id) AS ids, max(status) AS top FROM orders WHERE id % 100 = 0"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["rows"][0], json!([50, 50, "shipped"]), "{v}");
    let (status, v) = http.get("/api/v2/schema/orders", &admin).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["columns"].as_array().unwrap().len(), 4, "{v}");
    let (status, v) = http.get("/api/data/orders/download", &admin).await;
    assert_eq!(status, 404, "a table in parts is downloaded part by part: {v}");
    // Scans and snapshots read the merged table too.
    let scan = json!({"table_id": "orders", "where": "id % 100 = 0 AND status = 'shipped'"});
    let (status, est) = http.post("/api/v2/scan/estimate", Some(&admin), scan).await;
    assert_eq!(status, 200, "{est}");
    assert_eq!(est["estimated_result_rows"], 50, "{est}");
    cli.expect(0, &["snapshot", "create", "orders", "--where", "id % 100 = 0", "--as", "shipped_orders"]);
    let out =
        cli.expect(0, &["query", "SELECT count(*) AS n, min(status) AS s FROM shipped_orders", "--format", "json"]);
    let snap: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((snap[0]["n"].as_i64(), snap[0]["s"].as_str()), (Some(50), Some("shipped")), "{out}");
}

const SECRET: &str = "pg-secret-salary-4242";

/// The remote-query corpus (`tests/redteam/postgres.tsv`): each case's status and code,
/// and no answer ever carries the ungranted table's marker.
#[tokio::test(flavor = "multi_thread")]
async fn remote_queries_run_in_postgres_and_the_corpus_is_refused() {
    let pg = shop_cluster("reader-pw-8");
    execute_in_shop(
        &pg,
        &format!(
            "CREATE TABLE salaries (name text, salary text); CREATE SEQUENCE s; \
             INSERT INTO salaries VALUES ('alice', '{SECRET}'); GRANT SELECT ON salaries TO reader;"
        ),
    );
    let (count, sum) =
        (scalar(&pg, "SELECT count(*) FROM flights"), scalar(&pg, "SELECT sum(dep_time)::bigint FROM flights"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data/sources")).unwrap();
    std::fs::copy(fixtures().join("airlines.csv"), dir.path().join("data/sources/airlines.csv")).unwrap();
    let server = serve_with_shop(dir.path(), &pg, "reader-pw-8", &[("AGNES_QUERY_TIMEOUT_SECONDS", "2")]);
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    http.register(
        &admin,
        vec![
            json!({"name": "flights", "source_type": "postgres", "query_mode": "remote", "bucket": "public", "source_table": "flights"}),
            json!({"name": "salaries", "source_type": "postgres", "query_mode": "remote", "source_table": "salaries"}),
            json!({"name": "airlines", "source_table": "airlines.csv"}),
        ],
    )
    .await;
    assert_eq!(http.post("/api/sync/trigger", Some(&admin), json!(["airlines"])).await.0, 200);
    http.wait_synced(&admin, &["airlines"]).await;
    let (_, analyst) = http.user(&admin, "ana@example.com").await;
    http.post("/api/admin/groups", Some(&admin), json!({"name": "Analysts"})).await;
    http.post("/api/admin/groups/Analysts/members", Some(&admin), json!({"email": "ana@example.com"})).await;
    for t in ["flights", "airlines"] {
        let grant = json!({"group_id": "Analysts", "resource_type": "table", "resource_id": t});
        assert_eq!(http.post("/api/admin/grants", Some(&admin), grant).await.0, 201);
    }

    // The aggregate is PostgreSQL's answer; the catalog says the table is remote and the
    // manifest never offers it for download.
    let (status, v) = http
        .post("/api/query", Some(&analyst), json!({"sql": "SELECT count(*) AS n, sum(dep_time) AS s FROM flights"}))
        .await;
    assert_eq!(status.as_u16(), 200, "{v}");
    assert_eq!((v["rows"][0][0].as_i64(), v["rows"][0][1].as_i64()), (Some(count), Some(sum)), "{v}");
    let (_, catalog) = http.get("/api/v2/catalog", &analyst).await;
    let remote = catalog["tables"].as_array().unwrap().iter().find(|t| t["id"] == "flights").unwrap();
    assert_eq!(remote["query_mode"], "remote");
    let (_, manifest) = http.get("/api/sync/manifest", &analyst).await;
    assert!(manifest["tables"].get("flights").is_none(), "remote tables are never downloaded: {manifest}");
    let (status, v) =
        http.post("/api/query", Some(&analyst), json!({"sql": "SELECT * FROM flights", "limit": 5})).await;
    assert_eq!((status.as_u16(), v["row_count"].as_i64(), v["truncated"].as_bool()), (200, Some(5), Some(true)), "{v}");

    let corpus =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redteam/postgres.tsv"))
            .unwrap();
    let mut cases = 0;
    for line in corpus.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (expected, sql) = line.split_once('\t').unwrap();
        let sql = sql.replace("\\n", "\n");
        let (status, v) = http.post("/api/query", Some(&analyst), json!({"sql": sql})).await;
        assert!(!v.to_string().contains(SECRET), "{sql}: the secret leaked: {v}");
        match expected.strip_prefix("rows=") {
            Some(n) => assert_eq!((status.as_u16(), v["row_count"].as_u64()), (200, n.parse().ok()), "{sql}: {v}"),
            None if expected == "ok" => assert_eq!(status.as_u16(), 200, "{sql}: {v}"),
            None => {
                assert!(status.is_client_error(), "{sql}: {status} {v}");
                assert_eq!(v["code"].as_str(), Some(expected), "{sql}: {v}");
                if expected == "path_not_registered" {
                    assert!(
                        !v.to_string().contains("salaries") && !v.to_string().contains("pg_"),
                        "{sql} names a table: {v}"
                    );
                }
            }
        }
        cases += 1;
    }
    assert!(cases >= 35, "the corpus ran ({cases} cases)");
    // Scans push the filter down: an estimate from the planner, then a snapshot streamed
    // from PostgreSQL that equals the source.
    let scan = json!({"table_id": "flights", "select": ["carrier", "dep_delay"], "where": "dep_delay > 60"});
    let (status, est) = http.post("/api/v2/scan/estimate", Some(&analyst), scan).await;
    assert_eq!(status.as_u16(), 200, "{est}");
    assert!(
        est["estimated_result_rows"].as_u64().unwrap() > 0 && est["estimated_scan_bytes"].as_u64().unwrap() > 0,
        "{est}"
    );
    let sneaky = json!({"table_id": "flights", "where": "carrier IN (SELECT name FROM salaries)"});
    let (status, v) = http.post("/api/v2/scan", Some(&analyst), sneaky).await;
    assert_eq!((status.as_u16(), v["code"].as_str()), (403, Some("path_not_registered")), "{v}");
    let late = scalar(&pg, "SELECT count(*) FROM flights WHERE dep_delay > 60");
    let ana = Cli::new(&server.url, &analyst, &dir.path().join("ana"));
    ana.expect(0, &["pull", "--quiet"]);
    let out = ana.expect(
        0,
        &[
            "snapshot",
            "create",
            "flights",
            "--select",
            "carrier,dep_delay",
            "--where",
            "dep_delay > 60",
            "--as",
            "late",
        ],
    );
    assert!(out.contains(&format!("Fetched {late} rows")), "{out}");
    let counted = ana.expect(0, &["query", "SELECT count(*) AS n FROM late", "--format", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&counted).unwrap()[0]["n"].as_i64(), Some(late), "{counted}");

    // A hybrid query: a PostgreSQL part, by its connection's name, as a view beside the snapshot.
    let joined = ana.expect(
        0,
        &[
            "query",
            "--register",
            "per_carrier=main:SELECT carrier, count(*) AS n FROM flights GROUP BY carrier",
            "SELECT sum(n) AS flights, count(*) FILTER (WHERE carrier IN (SELECT carrier FROM late)) AS late_carriers \
             FROM per_carrier",
            "--format",
            "json",
        ],
    );
    let joined: Value = serde_json::from_str(&joined).unwrap();
    let late_carriers = scalar(&pg, "SELECT count(DISTINCT carrier) FROM flights WHERE dep_delay > 60");
    assert_eq!(
        (joined[0]["flights"].as_i64(), joined[0]["late_carriers"].as_i64()),
        (Some(count), Some(late_carriers)),
        "{joined}"
    );
    let wrong = ana.output(&["query", "--register", "x=bigquery:SELECT * FROM flights", "SELECT * FROM x"]);
    assert!(wrong.0 == Some(1) && wrong.2.contains("does not run on bigquery"), "{wrong:?}");

    // The writes were refused: the table is whole.
    assert_eq!(scalar(&pg, "SELECT count(*) FROM flights"), count);
}
