//! Business metric definitions from the outside: imported as one YAML file or a directory
//! tree over HTTP, read by every user, exported and re-imported unchanged, validated
//! against the registry, and refused whole when any part is wrong.

mod common;

use common::{setup, Fixture};
use serde_json::{json, Value};
use std::path::Path;

const TREE: &[(&str, &str)] = &[
    ("metrics.yml", "version: 1\ncategories:\n  flights: {folder: flights}\n"),
    (
        "flights/on_time_rate.yml",
        "name: on_time_rate
display_name: On-time departure rate
type: ratio
unit: percentage
table: flights
tables: [flights, airlines]
time_column: time_hour
dimensions: [carrier]
synonyms: [punctuality, OTP]
notes: [Cancelled flights have no dep_delay and are left out.]
sql: |
  SELECT round(100.0 * avg(CAST(dep_delay <= 0 AS INTEGER)), 2) AS value FROM flights WHERE dep_delay IS NOT NULL
sql_by_carrier: |
  SELECT a.name, round(100.0 * avg(CAST(f.dep_delay <= 0 AS INTEGER)), 2) AS value
  FROM flights f JOIN airlines a USING (carrier) WHERE f.dep_delay IS NOT NULL GROUP BY 1
validation: {min: 0, max: 100}
",
    ),
    (
        "flights/volume.yml",
        "- name: flight_count
  type: count
  table: flights
  sql: SELECT count(*) AS value FROM flights
- name: distance_flown
  unit: miles
  table: flights
  sql: SELECT sum(distance) AS value FROM flights
",
    ),
    ("README.md", "# Not a metric\n"),
];

const SINGLE: &str =
    "name: airline_count\ncategory: airlines\ntable: airlines\nsql: SELECT count(*) AS value FROM airlines\n";

fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// Run the CLI as the holder of `token`: (exit code, stdout, stderr).
fn cli(f: &Fixture, token: &str, args: &[&str]) -> (Option<i32>, String, String) {
    common::Cli::new(&f.server.url, token, &f.data.join("cli")).output(args)
}

/// POST a file to the import endpoint as multipart field `file`.
async fn upload(f: &Fixture, token: &str, bytes: &[u8]) -> (u16, Value) {
    let boundary = "agnes-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.yml\"\r\nContent-Type: application/x-yaml\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = reqwest::Client::new()
        .post(f.server.url("/api/admin/metrics/import"))
        .bearer_auth(token)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The definitions as served, without the server's timestamps.
async fn definitions(f: &Fixture) -> Vec<Value> {
    let (_, v) = f.http.get("/api/metrics", &f.admin).await;
    v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m.as_object_mut().unwrap().retain(|k, _| !matches!(k.as_str(), "created_at" | "updated_at"));
            m
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_import_serve_export_and_validate() {
    let f = setup(&[]).await;
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    write_tree(&tree, TREE);

    // A directory tree, sent as one archive: categories come from the folders.
    let (code, out, err) = cli(&f, &f.admin, &["admin", "metrics", "import", tree.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Imported 3 metrics from 2 files.") && out.contains("metrics.yml: skipped"), "{out}");
    // One YAML document: each entry names its category.
    let single = work.path().join("airlines.yml");
    std::fs::write(&single, SINGLE).unwrap();
    let (code, out, err) = cli(&f, &f.admin, &["admin", "metrics", "import", single.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (Some(0), "Imported 1 metrics from 1 files."), "{err}");

    // Every signed-in user reads them.
    let (status, all) = f.http.get("/api/metrics", &f.analyst).await;
    assert_eq!((status.as_u16(), all["count"].as_u64()), (200, Some(4)), "{all}");
    let (_, flights) = f.http.get("/api/metrics?category=flights", &f.analyst).await;
    let ids: Vec<&str> = flights["metrics"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["flights/distance_flown", "flights/flight_count", "flights/on_time_rate"]);
    let (status, otp) = f.http.get("/api/metrics/flights/on_time_rate", &f.analyst).await;
    assert_eq!(status, 200);
    assert_eq!(
        (otp["table_name"].as_str(), otp["source"].as_str(), otp["display_name"].as_str()),
        (Some("flights"), Some("yaml_import"), Some("On-time departure rate"))
    );
    assert!(otp["sql_variants"]["by_carrier"].as_str().unwrap().contains("JOIN airlines"), "{otp}");
    assert_eq!(otp["validation"], json!({"min": 0, "max": 100}));
    assert_eq!(f.http.get("/api/metrics/flights/nope", &f.analyst).await.0, 404);
    let legacy = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(f.server.url("/api/catalog/metrics/flights/on_time_rate"))
        .bearer_auth(&f.analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 301);
    assert_eq!(legacy.headers()["location"], "/api/metrics/flights/on_time_rate");

    // Re-importing is idempotent: the same rows, created_at kept, updated_at refreshed.
    let before = definitions(&f).await;
    let created = otp["created_at"].clone();
    let (code, _, err) = cli(&f, &f.admin, &["admin", "metrics", "import", tree.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(definitions(&f).await, before);
    let (_, again) = f.http.get("/api/metrics/flights/on_time_rate", &f.admin).await;
    assert_eq!(again["created_at"], created);
    assert!(again["updated_at"].as_str() > otp["updated_at"].as_str(), "{again}");

    // Refusals: 400 with the reason, and nothing stored.
    let (status, ok) = upload(&f, &f.admin, SINGLE.as_bytes()).await;
    assert_eq!((status, ok["status"].as_str(), ok["count"].as_u64()), (200, Some("imported"), Some(1)), "{ok}");
    for (bytes, reason) in [
        (&b"name: [unclosed\n"[..], "invalid YAML"),
        (b"", "empty"),
        (b"# nothing here\n", "empty"),
        (b"- name: fine\n  category: c\n- category: c\n", "entry 2: missing 'name'"),
        (b"name: no_category\n", "missing 'category'"),
        (b"name: x\ncategory: c\nsynonym: [typo]\n", "unknown field"),
    ] {
        let (status, body) = upload(&f, &f.admin, bytes).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["detail"].as_str().unwrap().contains(reason), "{body} should say {reason}");
    }
    assert_eq!(upload(&f, &f.analyst, b"name: x\ncategory: c\n").await.0, 403, "admins only");
    assert_eq!(definitions(&f).await, before, "a refused import stores nothing");
    let (code, _, err) =
        cli(&f, &f.admin, &["admin", "metrics", "import", work.path().join("missing.yml").to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot read"), "{err}");

    // The catalog view, as the analyst.
    let (code, out, _) = cli(&f, &f.analyst, &["catalog", "--metrics"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("[airlines]\n  airline_count"), "{out}");
    assert!(out.contains(&format!("  {:<30} On-time departure rate (percentage)", "on_time_rate")), "{out}");
    let (_, out, _) = cli(&f, &f.analyst, &["catalog", "--metrics", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().len(), 4);
    let (code, out, _) = cli(&f, &f.analyst, &["catalog", "--show", "flights/on_time_rate"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("Display Name: On-time departure rate")
            && out.contains("Synonyms:     punctuality, OTP")
            && out.contains("SQL by carrier:"),
        "{out}"
    );
    let (code, _, err) = cli(&f, &f.analyst, &["catalog", "--metrics", "--show", "flights/nope"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Metric not found"), "{err}");

    // Validate: the server's metrics against its registry, then a broken one.
    let (code, out, err) = cli(&f, &f.admin, &["admin", "metrics", "validate"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("4 metrics checked, 0 with problems."), "{out}");
    let broken = json!({"id": "flights/broken", "name": "broken", "display_name": "Broken", "category": "flights",
        "table": "ghosts", "sql": "SELEC 1", "sql_by_x": "SELECT * FROM flights JOIN nowhere USING (id)"});
    let (status, body) = f.http.post("/api/admin/metrics", Some(&f.admin), broken).await;
    assert_eq!((status.as_u16(), body["source"].as_str()), (201, Some("manual")), "{body}");
    let (code, out, _) = cli(&f, &f.admin, &["admin", "metrics", "validate"]);
    assert_eq!(code, Some(1), "{out}");
    for problem in [
        "WARN  flights/broken: table 'ghosts' is not in the registry",
        "WARN  flights/broken: sql does not parse",
        "WARN  flights/broken: sql_by_x reads 'nowhere', which is not in the registry",
        "5 metrics checked, 1 with problems.",
    ] {
        assert!(out.contains(problem), "{out} should say {problem}");
    }
    let (code, out, _) = cli(&f, &f.admin, &["admin", "metrics", "validate", tree.to_str().unwrap()]);
    assert_eq!((code, out.contains("3 metrics checked, 0 with problems.")), (Some(0), true), "{out}");
    let (status, body) = f.http.post("/api/admin/metrics", Some(&f.admin), json!({"name": "x", "category": "c"})).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("id, display_name, sql"), "{body}");
    assert_eq!(f.http.delete("/api/admin/metrics/flights/broken", &f.admin).await, 204);
    assert_eq!(f.http.delete("/api/admin/metrics/flights/broken", &f.admin).await, 404);

    // Export, delete everything, import the export: the same definitions come back.
    let export = work.path().join("export");
    let (code, out, err) = cli(&f, &f.admin, &["admin", "metrics", "export", "--dir", export.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("Exported 4 metrics"), "{out}");
    let file = std::fs::read_to_string(export.join("flights/on_time_rate.yml")).unwrap();
    assert!(
        file.contains("table: flights") && file.contains("sql_by_carrier:") && !file.contains("table_name"),
        "{file}"
    );
    for m in definitions(&f).await {
        let id = m["id"].as_str().unwrap();
        assert_eq!(f.http.delete(&format!("/api/admin/metrics/{id}"), &f.admin).await, 204);
    }
    assert_eq!(f.http.get("/api/metrics", &f.admin).await.1["count"], 0);
    let (code, out, _) = cli(&f, &f.analyst, &["catalog", "--metrics"]);
    assert_eq!((code, out.trim()), (Some(0), "No metrics found."));
    let (code, _, err) = cli(&f, &f.admin, &["admin", "metrics", "import", export.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(definitions(&f).await, before, "export then import round-trips every field");

    // A table's profile names the metrics computed from it.
    let mut used = Value::Null;
    for _ in 0..200 {
        let (status, p) = f.http.get("/api/catalog/profile/airlines", &f.analyst).await;
        if status == 200 {
            used = p["used_by_metrics"].clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let used: Vec<&str> = used.as_array().expect("profiled").iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(used, ["airlines/airline_count", "flights/on_time_rate"]);
}
