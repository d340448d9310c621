//! The one access rule, walked from the outside: every endpoint that reads a table, for a
//! caller that is granted it, one that is not, an admin, a deactivated user and a revoked
//! personal access token. Single-table endpoints answer 200/403/401; listings name the
//! table or leave it out.

mod common;

use common::{setup, Fixture, SECRET_MARKER};
use serde_json::{json, Value};

/// Method, path and JSON body of one request.
type Request = (&'static str, String, Option<Value>);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Granted,
    Ungranted,
    Admin,
    Deactivated,
    RevokedPat,
}

/// What a caller gets: a listing that includes the table or not, or a status.
#[derive(Debug, PartialEq)]
enum Outcome {
    Listed(bool),
    Status(u16),
}

async fn call(f: &Fixture, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let m = if method == "GET" { reqwest::Method::GET } else { reqwest::Method::POST };
    let (s, v) = f.http.call(m, path, Some(token), body).await;
    (s.as_u16(), v)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_table_reading_endpoint_follows_the_one_rule() {
    let f = setup(&[("AGNES_QUOTA_MAX_CONCURRENT", "100")]).await;
    // Profiles exist for both tables, so a 404 "not profiled yet" cannot hide the rule.
    for t in ["flights", "salaries"] {
        let (s, v) = f.http.post(&format!("/api/catalog/profile/{t}/refresh"), Some(&f.admin), json!(null)).await;
        assert_eq!(s, 200, "{v}");
    }
    // A metric over each table.
    for (name, table) in [("flight_count", "flights"), ("payroll", "salaries")] {
        let metric = json!({"id": format!("ops/{name}"), "name": name, "display_name": name, "category": "ops",
            "table": table, "sql": format!("SELECT count(*) FROM {table}")});
        let (s, v) = f.http.post("/api/admin/metrics", Some(&f.admin), metric).await;
        assert_eq!(s, 201, "{v}");
    }
    // A deactivated member of Analysts, and a revoked PAT of the analyst.
    let (deactivated_id, deactivated) = f.http.user(&f.admin, "gone@example.com").await;
    f.http.post("/api/admin/groups/Analysts/members", Some(&f.admin), json!({"email": "gone@example.com"})).await;
    let (s, _) = f.http.post(&format!("/api/users/{deactivated_id}/deactivate"), Some(&f.admin), json!({})).await;
    assert_eq!(s, 200);
    let (_, pat) = f.http.post("/auth/tokens", Some(&f.analyst), json!({"name": "old"})).await;
    let revoked = pat["token"].as_str().unwrap().to_string();
    assert_eq!(f.http.delete(&format!("/auth/tokens/{}", pat["id"].as_str().unwrap()), &f.analyst).await, 204);

    let callers = [
        (Who::Granted, f.analyst.clone(), "flights"),
        (Who::Ungranted, f.analyst.clone(), "salaries"),
        (Who::Admin, f.admin.clone(), "salaries"),
        (Who::Deactivated, deactivated, "flights"),
        (Who::RevokedPat, revoked, "flights"),
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for (who, token, table) in &callers {
        let single = |path: String| ("GET", path, None::<Value>);
        let endpoints: Vec<(&str, Request, bool)> = vec![
            // (name, request, is a listing)
            ("manifest", single("/api/sync/manifest".into()), true),
            ("catalog", single("/api/v2/catalog".into()), true),
            ("legacy catalog", single("/api/catalog/tables".into()), true),
            ("metrics", single("/api/metrics".into()), true),
            ("download", single(format!("/api/data/{table}/download")), false),
            ("check-access", single(format!("/api/data/{table}/check-access")), false),
            ("schema", single(format!("/api/v2/schema/{table}")), false),
            ("sample", single(format!("/api/v2/sample/{table}")), false),
            ("profile", single(format!("/api/catalog/profile/{table}")), false),
            (
                "query",
                ("POST", "/api/query".into(), Some(json!({"sql": format!("SELECT count(*) FROM {table}")}))),
                false,
            ),
            ("scan", ("POST", "/api/v2/scan/estimate".into(), Some(json!({"table_id": table}))), false),
        ];
        for (name, (method, path, body), listing) in endpoints {
            let (status, answer) = call(&f, token, method, &path, body).await;
            checked += 1;
            let got = if listing && status == 200 {
                Outcome::Listed(answer.to_string().contains(&format!("\"{table}\"")))
            } else {
                Outcome::Status(status)
            };
            let want = match (who, listing) {
                (Who::Deactivated | Who::RevokedPat, _) => Outcome::Status(401),
                (Who::Granted | Who::Admin, true) => Outcome::Listed(true),
                (Who::Ungranted, true) => Outcome::Listed(false),
                (Who::Granted | Who::Admin, false) => Outcome::Status(if name == "check-access" { 204 } else { 200 }),
                (Who::Ungranted, false) => Outcome::Status(403),
            };
            if got != want {
                failures.push(format!(
                    "{who:?} {name} {table}: got {got:?}, want {want:?}: {}",
                    answer.to_string().chars().take(200).collect::<String>()
                ));
            }
            if *who != Who::Admin && answer.to_string().contains(SECRET_MARKER) {
                failures.push(format!("{who:?} {name}: the secret leaked"));
            }
        }
    }
    assert_eq!(checked, 55);
    assert!(failures.is_empty(), "{} of {checked} cases:\n{}", failures.len(), failures.join("\n"));
}
