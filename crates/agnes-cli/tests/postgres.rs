//! PostgreSQL as a source, end to end: a real throw-away cluster, a named connection whose
//! password is an environment variable, discovery, registration, sync, pull and a local
//! query that equals the source.

mod common;

use agnes_connectors::testing::PgCluster;
use common::{fixtures, Cli, Http, TestServer};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_table_reaches_the_analyst_equal_to_the_source() {
    let pg = PgCluster::start();
    pg.execute("CREATE DATABASE shop");
    pg.execute("CREATE ROLE reader LOGIN PASSWORD 'reader-pw-7'; GRANT CONNECT ON DATABASE shop TO reader;");
    let mut shop = pg.client("shop");
    shop.batch_execute(
        "CREATE TABLE flights (year int, month int, day int, dep_time int, sched_dep_time int, dep_delay numeric, \
           arr_time int, sched_arr_time int, arr_delay numeric, carrier text, flight int, tailnum text, \
           origin text, dest text, air_time numeric, distance numeric, hour numeric, minute numeric, \
           time_hour timestamptz, PRIMARY KEY (carrier, flight, time_hour));",
    )
    .unwrap();
    pg.load_csv("shop", "flights", &fixtures().join("flights_3000.csv"));
    shop.batch_execute("GRANT USAGE ON SCHEMA public TO reader; GRANT SELECT ON flights TO reader; ANALYZE flights;")
        .unwrap();
    let source: (i64, i64) = {
        let r = shop.query_one("SELECT count(*), sum(dep_time)::bigint FROM flights", &[]).unwrap();
        (r.get(0), r.get(1))
    };

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("instance.yaml");
    std::fs::write(
        &config,
        format!(
            "data_source:\n  postgres:\n    main:\n      host: 127.0.0.1\n      port: {}\n      database: shop\n      \
             user: reader\n      password_env: AGNES_TEST_MAIN_PG_PASSWORD\n      sslmode: disable\n",
            pg.port
        ),
    )
    .unwrap();
    let server = TestServer::start_with(&dir.path().join("data"), |c| {
        c.arg("--config").arg(&config).env("AGNES_TEST_MAIN_PG_PASSWORD", "reader-pw-7");
    });
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
        (json!({"name": "o1", "source_type": "postgres", "source_table": "flights", "source_options": {"batch_rowz": 5}}), "batch_rowz"),
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
