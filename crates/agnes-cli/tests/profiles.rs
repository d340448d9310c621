//! Table profiles from the outside: made after a sync, readable under the access rules,
//! refreshed on demand by admins.

mod common;

use common::setup;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn profiles_follow_syncs_and_grants() {
    let f = setup(&[]).await;
    let mut profile = json!(null);
    for _ in 0..200 {
        let (status, body) = f.http.get("/api/catalog/profile/flights", &f.analyst).await;
        if status == 200 {
            profile = body;
            break;
        }
        assert_eq!(status, 404, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        (profile["table_id"].as_str(), profile["row_count"].as_i64()),
        (Some("flights"), Some(3000)),
        "{profile}"
    );
    assert!(profile["profiled_at"].is_string() && profile["last_sync"].is_string());
    let carrier = profile["columns"].as_array().unwrap().iter().find(|c| c["name"] == "carrier").unwrap();
    assert_eq!(carrier["string_stats"]["top_values"][0]["value"], "UA");
    let dep: &Value = profile["columns"].as_array().unwrap().iter().find(|c| c["name"] == "dep_time").unwrap();
    assert!(dep["null_count"].as_i64().unwrap() > 0);

    assert_eq!(f.http.get("/api/catalog/profile/salaries", &f.analyst).await.0, 403);
    assert_eq!(f.http.get("/api/catalog/profile/nope", &f.analyst).await.0, 404);
    let refresh = "/api/catalog/profile/weather/refresh";
    assert_eq!(f.http.post(refresh, Some(&f.analyst), json!(null)).await.0, 403, "admins only");
    let (status, body) = f.http.post(refresh, Some(&f.admin), json!(null)).await;
    assert_eq!(
        (status.as_u16(), body["status"].as_str(), body["columns"].as_u64()),
        (200, Some("ok"), Some(15)),
        "{body}"
    );
    let (_, weather) = f.http.get("/api/catalog/profile/weather", &f.analyst).await;
    assert_eq!(weather["date_range"]["column"], "time_hour", "partitioned tables are profiled across their parts");

    // Through the CLI: the profile remotely, the local DuckDB's view after a pull.
    let root = tempfile::tempdir().unwrap();
    let user = common::Cli::new(&f.server.url, &f.analyst, root.path());
    let cli = |args: &[&str]| user.output(args);
    let (code, out, err) = cli(&["explore", "flights", "--remote"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("3000 rows") && out.contains("carrier") && out.contains("UA (18.4%)") && out.contains("constant"),
        "{out}"
    );
    let (_, out, _) = cli(&["explore", "flights", "--remote", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["row_count"], 3000);
    assert_eq!(cli(&["explore", "salaries", "--remote"]).0, Some(8), "denied");
    let (code, out, _) = cli(&["describe", "flights"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("alert: year:"), "describe shows the profile's alerts: {out}");
    assert_eq!(cli(&["explore", "flights"]).0, Some(1), "no local DuckDB before a pull");
    assert_eq!(cli(&["pull", "--quiet"]).0, Some(0));
    let (code, out, err) = cli(&["explore", "airlines", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let local: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (local["rows"].as_i64(), local["columns"].as_array().unwrap().len(), local["sample"].as_array().unwrap().len()),
        (Some(16), 2, 5)
    );
}
