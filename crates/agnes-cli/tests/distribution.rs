//! The server half of distribution: registry API, sync trigger, manifest, ranged
//! downloads, catalog, schema, sample, welcome — against a real server and real files.

mod common;

use common::{Http, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::fixtures;

/// A server with the fixture files under its files root, an admin session, and an analyst
/// in group `Analysts` granted `flights` only.
struct World {
    _dir: tempfile::TempDir,
    server: TestServer,
    http: Http,
    admin: String,
    analyst: String,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sources")).unwrap();
    for f in ["flights_3000.csv", "airlines.csv", "weather_1000.csv"] {
        std::fs::copy(fixtures().join(f), data.join("sources").join(f)).unwrap();
    }
    let server = TestServer::start(&data);
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let (_, analyst) = http.user(&admin, "ana@example.com").await;
    let (_, g) = http.post("/api/admin/groups", Some(&admin), json!({"name": "Analysts"})).await;
    http.post(
        &format!("/api/admin/groups/{}/members", g["id"].as_str().unwrap()),
        Some(&admin),
        json!({"email": "ana@example.com"}),
    )
    .await;
    http.post(
        "/api/admin/grants",
        Some(&admin),
        json!({"group_id": "Analysts", "resource_type": "table", "resource_id": "flights"}),
    )
    .await;
    World { _dir: dir, server, http, admin, analyst }
}

impl World {
    async fn register(&self, body: Value) -> (StatusCode, Value) {
        self.http.post("/api/admin/register-table", Some(&self.admin), body).await
    }

    /// Trigger a sync of `tables` and wait until each appears in the admin's manifest with
    /// a fresh hash.
    async fn sync(&self, tables: &[&str]) -> Value {
        let before = self.http.get("/api/sync/manifest", &self.admin).await.1;
        let (s, v) = self.http.post("/api/sync/trigger", Some(&self.admin), json!(tables)).await;
        assert_eq!(s, 200, "{v}");
        for _ in 0..200 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let m = self.http.get("/api/sync/manifest", &self.admin).await.1;
            let done = tables.iter().all(|t| {
                let now = &m["tables"][*t]["updated"];
                !now.is_null() && *now != before["tables"][*t]["updated"]
            });
            if done {
                return m;
            }
        }
        panic!("tables {tables:?} were not synced in time");
    }
}

fn flights() -> Value {
    json!({"name": "flights", "source_type": "files", "source_table": "flights_3000.csv", "description": "NYC flights 2013", "primary_key": "year,month,day,flight"})
}

#[tokio::test]
async fn registry_validation_and_status_codes() {
    let w = world().await;
    let (s, v) = w.register(flights()).await;
    assert_eq!((s.as_u16(), v["id"].as_str(), v["status"].as_str()), (201, Some("flights"), Some("registered")));
    assert_eq!(w.register(flights()).await.0, 409);
    for (body, why) in [
        (json!({"name": "x", "source_table": "a.csv", "sync_schedule": "hourly"}), "schedule"),
        (json!({"name": "x", "source_table": "a.csv", "colour": "red"}), "unknown field"),
        (json!({"name": "x", "source_table": "a.csv", "source_query": "SELECT 1"}), "source_query"),
        (json!({"name": "x"}), "source_table"),
        (json!({"name": "x", "source_type": "keboola", "bucket": "in.c-crm", "source_table": "t"}), "not configured"),
        (json!({"name": "x", "source_table": "../secret.csv"}), ".."),
        (json!({"name": "x", "source_table": "a.csv", "sync_strategy": "sometimes"}), "sync_strategy"),
        (json!({"source_table": "a.csv"}), "name"),
        // Options the files connector does not implement are refused, never ignored.
        (
            json!({"name": "x", "source_table": "a.csv", "sync_strategy": "incremental"}),
            "does not support sync_strategy 'incremental'",
        ),
        (
            json!({"name": "x", "source_table": "a.csv", "where_filters": [{"column": "a", "operator": "eq", "values": [1]}]}),
            "does not support where_filters",
        ),
    ] {
        let (s, v) = w.register(body.clone()).await;
        assert_eq!(s, 422, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(why), "{body}: {v}");
    }
    let (s, v) = w.http.post("/api/admin/register-table", Some(&w.analyst), flights()).await;
    assert_eq!(s, 403, "{v}");

    let (s, pre) = w
        .http
        .post(
            "/api/admin/register-table/precheck",
            Some(&w.admin),
            json!({"name": "weather", "source_table": "weather_1000.csv"}),
        )
        .await;
    assert_eq!(s, 200, "{pre}");
    assert!(pre["table"]["columns"].as_array().unwrap().iter().any(|c| c["name"] == "temp"));
    let (s, _) = w
        .http
        .post(
            "/api/admin/register-table/precheck",
            Some(&w.admin),
            json!({"name": "nope", "source_table": "missing.csv"}),
        )
        .await;
    assert_eq!(s, 422);

    // Partial update: omitted = keep, null = clear.
    let (s, v) = w
        .http
        .call(
            Method::PUT,
            "/api/admin/registry/flights",
            Some(&w.admin),
            Some(json!({"description": null, "folder": "aviation"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, reg) = w.http.get("/api/admin/registry", &w.admin).await;
    let row = &reg["tables"][0];
    assert_eq!(
        (row["description"].clone(), row["folder"].as_str(), row["source_table"].as_str()),
        (Value::Null, Some("aviation"), Some("flights_3000.csv"))
    );
    assert_eq!(row["primary_key"], json!(["year", "month", "day", "flight"]));
    assert_eq!(w.http.call(Method::PUT, "/api/admin/registry/nope", Some(&w.admin), Some(json!({}))).await.0, 404);
    assert_eq!(
        w.http
            .call(Method::PUT, "/api/admin/registry/flights", Some(&w.admin), Some(json!({"sync_schedule": "bad"})))
            .await
            .0,
        422
    );

    let (_, found) = w.http.get("/api/admin/discover-tables", &w.admin).await;
    let paths: Vec<&str> = found["tables"].as_array().unwrap().iter().map(|t| t["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["airlines.csv", "flights_3000.csv", "weather_1000.csv"]);

    let (s, v) = w.http.post("/api/sync/trigger", Some(&w.admin), json!({"table": "x"})).await;
    assert_eq!(s, 422, "{v}");
}

#[tokio::test]
async fn manifest_downloads_and_catalog_respect_grants() {
    let w = world().await;
    w.register(flights()).await;
    w.register(json!({"name": "airlines", "source_table": "airlines.csv"})).await;
    w.register(json!({"name": "weather", "source_table": "weather_1000.csv", "sync_strategy": "partitioned", "partition_by": "time_hour"})).await;
    let manifest = w.sync(&["flights", "airlines", "weather"]).await;

    let f = &manifest["tables"]["flights"];
    assert_eq!(
        (f["id"].as_str(), f["rows"].as_i64(), f["query_mode"].as_str(), f["source_type"].as_str()),
        (Some("flights"), Some(3000), Some("local"), Some("files"))
    );
    let parts = manifest["tables"]["weather"]["parts"].as_array().unwrap();
    assert_eq!(parts.iter().map(|p| p["part"].as_str().unwrap()).collect::<Vec<_>>(), ["2013_01", "2013_02"]);

    // The analyst sees only what is granted, everywhere.
    let (_, theirs) = w.http.get("/api/sync/manifest", &w.analyst).await;
    assert_eq!(theirs["tables"].as_object().unwrap().keys().collect::<Vec<_>>(), ["flights"]);
    let (_, cat) = w.http.get("/api/v2/catalog", &w.analyst).await;
    assert_eq!(
        cat["tables"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect::<Vec<_>>(),
        ["flights"]
    );
    assert_eq!(cat["tables"][0]["fetch_via"], "already local");
    assert_eq!(cat["tables"][0]["rough_size_hint"], "small");
    let (_, legacy) = w.http.get("/api/catalog/tables", &w.analyst).await;
    assert_eq!(legacy["count"], 1);
    assert_eq!(w.http.get("/api/v2/schema/airlines", &w.analyst).await.0, 403);
    assert_eq!(w.http.get("/api/v2/schema/nope", &w.analyst).await.0, 404);
    let (_, schema) = w.http.get("/api/v2/schema/flights", &w.analyst).await;
    let dep = schema["columns"].as_array().unwrap().iter().find(|c| c["name"] == "dep_time").unwrap();
    assert_eq!((dep["type"].as_str(), dep["nullable"].as_bool()), (Some("BIGINT"), Some(true)));
    let (_, sample) = w.http.get("/api/v2/sample/flights?n=500", &w.analyst).await;
    assert_eq!(sample["rows"].as_array().unwrap().len(), 100, "n is capped at 100");
    assert_eq!(sample["rows"][0]["carrier"], "UA");

    // Download: whole, conditional, HEAD, ranges.
    let client = reqwest::Client::new();
    let url = w.server.url("/api/data/flights/download");
    let r = client.get(&url).bearer_auth(&w.analyst).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", f["hash"].as_str().unwrap()));
    let len: usize = r.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), len);
    use md5::Digest;
    assert_eq!(hex::encode(md5::Md5::digest(&body)), f["hash"].as_str().unwrap());
    assert_eq!(&body[..4], b"PAR1");

    let r = client.get(&url).bearer_auth(&w.analyst).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    let r = client.head(&url).bearer_auth(&w.analyst).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["content-length"].to_str().unwrap().parse::<usize>().unwrap()),
        (200, len)
    );
    let r = client.get(&url).bearer_auth(&w.analyst).header("range", "bytes=0-9").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"].to_str().unwrap(), format!("bytes 0-9/{len}"));
    assert_eq!(&r.bytes().await.unwrap()[..], &body[..10]);
    let r = client.get(&url).bearer_auth(&w.analyst).header("range", "bytes=0-3,-4").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("multipart/byteranges"));
    let multi = r.bytes().await.unwrap();
    assert_eq!(multi.windows(4).filter(|w| *w == b"PAR1").count(), 2, "both ranges hold the parquet magic");
    let r =
        client.get(&url).bearer_auth(&w.analyst).header("range", format!("bytes={}-", len + 10)).send().await.unwrap();
    assert_eq!(r.status(), 416);
    let r = client
        .get(&url)
        .bearer_auth(&w.analyst)
        .header("range", "bytes=10-")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a stale If-Range gets the whole file");

    for (path, status) in [
        ("/api/data/airlines/download", 403),
        ("/api/data/nope/download", 404),
        ("/api/data/..%2F..%2Fetc%2Fpasswd/download", 404),
        ("/api/data/flights/check-access", 204),
        ("/api/data/airlines/check-access", 403),
        ("/api/data/nope/check-access", 404),
    ] {
        let r = client.get(w.server.url(path)).bearer_auth(&w.analyst).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
    }
    // Download by name works as by id; parts of partitioned tables.
    let p = &parts[0];
    let r = client.get(w.server.url(p["path"].as_str().unwrap())).bearer_auth(&w.admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hex::encode(md5::Md5::digest(r.bytes().await.unwrap())), p["hash"].as_str().unwrap());
    assert_eq!(
        client.get(w.server.url("/api/data/weather/download")).bearer_auth(&w.admin).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        client
            .get(w.server.url("/api/data/weather/parts/..%2Fx/download"))
            .bearer_auth(&w.admin)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let (_, welcome) = w.http.get("/api/welcome?server_url=https://agnes.example.com", &w.analyst).await;
    assert!(welcome["content"].as_str().unwrap().contains("https://agnes.example.com"));
}

#[tokio::test]
async fn unregister_removes_data_state_and_grants() {
    let w = world().await;
    w.register(flights()).await;
    w.sync(&["flights"]).await;
    assert_eq!(w.http.delete("/api/admin/registry/flights", &w.admin).await, 204);
    assert_eq!(w.http.delete("/api/admin/registry/flights", &w.admin).await, 404);
    let file = w.server.data_dir.join("extracts/files/data/flights.parquet");
    for _ in 0..100 {
        if !file.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!file.exists(), "the parquet is removed");
    let (_, m) = w.http.get("/api/sync/manifest", &w.admin).await;
    assert_eq!(m["tables"], json!({}));
    let (_, grants) = w.http.get("/api/admin/grants", &w.admin).await;
    assert_eq!(grants, json!([]));
}
