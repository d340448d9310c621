//! Jira as a real-time source, end to end: `agnes serve` with `data_source.jira` against
//! the fake Jira Cloud API, signed webhook deliveries (created, updated, deleted, comment
//! added, month change, duplicate and out-of-order, refused ones), a backfill, and a
//! restart between accepting a delivery and processing it. Every check reads the tables
//! as an analyst pulls them.

mod common;

use agnes_fakes::jira::{sign, webhook, FakeJira, IssueSpec};
use common::{Cli, Http, TestServer};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec-4b1d-jira";

struct Site {
    fake: FakeJira,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Site {
    fn new() -> Site {
        Site::reconciling_every(0)
    }

    fn reconciling_every(seconds: u64) -> Site {
        let fake = tokio::task::block_in_place(|| FakeJira::start("sync@corp.example", "jira-api-token-77"));
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("instance.yaml");
        let instance = json!({"data_source": {"jira": {"base_url": fake.url, "reconcile_interval_seconds": seconds,
            "custom_fields": {"request_type": "customfield_10010", "satisfaction": "customfield_10030"}}}});
        std::fs::write(&config, serde_norway::to_string(&instance).unwrap()).unwrap();
        Site { fake, dir, config }
    }

    fn serve(&self) -> TestServer {
        TestServer::start_with(&self.dir.path().join("data"), |c| {
            c.arg("--config")
                .arg(&self.config)
                .env("JIRA_EMAIL", "sync@corp.example")
                .env("JIRA_API_TOKEN", "jira-api-token-77")
                .env("JIRA_WEBHOOK_SECRET", SECRET)
                .env("AGNES_JIRA_RETRY_SECONDS", "0.2");
        })
    }
}

async fn deliver(server: &TestServer, body: &[u8], signature: Option<(&str, String)>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(server.url("/webhooks/jira")).body(body.to_vec());
    if let Some((header, value)) = signature {
        request = request.header(header, value);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn event(server: &TestServer, name: &str, key: &str) {
    let body = serde_json::to_vec(&webhook(name, key, "as delivered")).unwrap();
    let (status, v) = deliver(server, &body, Some(("X-Hub-Signature", sign(SECRET, &body)))).await;
    assert_eq!((status, v["issue"].as_str()), (200, Some(key)), "{v}");
}

/// Wait until every accepted delivery reached the tables.
async fn settled(http: &Http, admin: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, health) = http.get("/webhooks/jira/health", admin).await;
        assert_eq!(status, 200, "{health}");
        if health["pending"] == 0 {
            return health;
        }
        assert!(Instant::now() < deadline, "deliveries still pending: {health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The rows of `sql` in the analyst's pulled copy, each as its JSON text.
fn pulled(cli: &Cli, sql: &str) -> Vec<String> {
    cli.expect(0, &["pull", "--quiet"]);
    let out = cli.expect(0, &["query", sql, "--format", "json", "--limit", "100000"]);
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    rows.iter().map(|r| r.to_string()).collect()
}

fn sup1() -> IssueSpec {
    let mut s = IssueSpec::new("SUP-1", "Printer on fire", "2024-01-15T09:00:00.000+0100");
    s.description = Some("It smokes.\n\nPlease hurry.".into());
    s.comments =
        vec![("10001".into(), "bob@corp.example".into(), "On my way".into(), "2024-01-15T10:00:00.000+0000".into())];
    s.attachments = vec![("20001".into(), "smoke.jpg".into(), b"JPEG".to_vec())];
    s.custom.insert(
        "customfield_10010".into(),
        json!({"requestType": {"name": "Hardware"}, "currentStatus": {"status": "Open"}}),
    );
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_webhooks_keep_the_six_tables_fresh() {
    let site = Site::new();
    site.fake.put(sup1());
    site.fake.put(IssueSpec::new("SUP-2", "Toner low", "2024-02-03T12:00:00.000+0000"));
    site.fake
        .set_remote_links("SUP-1", &[(501, "https://status.example/1", "Status page", "Statuspage", "com.statuspage")]);
    let server = site.serve();
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let cli = Cli::new(&server.url, &admin, &site.dir.path().join("admin"));

    // The six tables are registered, by month.
    let (_, registry) = http.get("/api/admin/registry", &admin).await;
    let mut jira: Vec<(String, String)> = registry["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["source_type"] == "jira")
        .map(|t| (t["name"].as_str().unwrap().to_string(), t["sync_strategy"].as_str().unwrap().to_string()))
        .collect();
    jira.sort();
    let names: Vec<&str> = jira.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["attachments", "changelog", "comments", "issuelinks", "issues", "remote_links"]);
    assert!(jira.iter().all(|(_, s)| s == "partitioned"), "{jira:?}");

    let tested = cli.expect(0, &["admin", "source", "test", "jira"]);
    assert!(
        tested.contains(&format!("Jira Cloud at {}", site.fake.url)) && tested.contains("sync@corp.example"),
        "{tested}"
    );
    let (_, sources) = http.get("/api/admin/sources", &admin).await;
    let listed = sources.as_array().unwrap().iter().find(|s| s["name"] == "jira").cloned().unwrap();
    assert_eq!(
        (listed["tables"].as_i64(), listed["settings"]["api_token_env"].as_str()),
        (Some(6), Some("JIRA_API_TOKEN"))
    );
    assert!(!listed.to_string().contains("jira-api-token-77"), "no secret in the answer");

    // Refused deliveries, in the contract's order of checks; nothing is queued by them.
    let body = serde_json::to_vec(&webhook("jira:issue_created", "SUP-1", "x")).unwrap();
    assert_eq!(deliver(&server, &body, None).await.0, 401, "no signature");
    assert_eq!(deliver(&server, &body, Some(("X-Hub-Signature", sign("other", &body)))).await.0, 401);
    let tampered = [body.clone(), b" ".to_vec()].concat();
    assert_eq!(deliver(&server, &tampered, Some(("X-Hub-Signature", sign(SECRET, &body)))).await.0, 401);
    assert_eq!(deliver(&server, b"", Some(("X-Hub-Signature", sign(SECRET, b"")))).await.0, 400, "empty");
    assert_eq!(deliver(&server, b"{not json", Some(("X-Hub-Signature", sign(SECRET, b"{not json")))).await.0, 400);
    for key in ["sup-1", "SUP-1/../../x", "SUP-", "1SUP-2"] {
        let bad = serde_json::to_vec(&json!({"webhookEvent": "jira:issue_updated", "issue": {"key": key}})).unwrap();
        let (status, v) = deliver(&server, &bad, Some(("X-Hub-Signature", sign(SECRET, &bad)))).await;
        assert_eq!((status, v["code"].as_str()), (400, Some("invalid_issue_key")), "{key}: {v}");
    }
    // Oversized: refused on its announced length, before the body is read (so the answer
    // arrives while the sender is still sending).
    let head = format!(
        "POST /webhooks/jira HTTP/1.1\r\nHost: agnes\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{",
        11 * 1024 * 1024
    );
    let mut socket = tokio::net::TcpStream::connect(server.url.trim_start_matches("http://")).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut socket, head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::io::AsyncReadExt::read(&mut socket, &mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too_large"), "{answer}");
    let (_, health) = http.get("/webhooks/jira/health", &admin).await;
    assert_eq!((health["pending"].as_i64(), health["configured"].as_bool()), (Some(0), Some(true)), "{health}");

    // Created: both issues reach every table. The `-256` header and a bare hex digest work too.
    event(&server, "jira:issue_created", "SUP-1").await;
    let body = serde_json::to_vec(&webhook("jira:issue_created", "SUP-2", "x")).unwrap();
    let bare = sign(SECRET, &body).trim_start_matches("sha256=").to_string();
    assert_eq!(deliver(&server, &body, Some(("X-Hub-Signature-256", bare))).await.0, 200);
    settled(&http, &admin).await;
    assert_eq!(
        pulled(&cli, "SELECT issue_key, summary, description, status_category, request_type, request_status, comment_count, \
                      attachment_count, strftime(created_at AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M') AS created FROM issues ORDER BY issue_key"),
        [
            json!({"issue_key": "SUP-1", "summary": "Printer on fire", "description": "It smokes.\nPlease hurry.",
                   "status_category": "To Do", "request_type": "Hardware", "request_status": "Open", "comment_count": 1,
                   "attachment_count": 1, "created": "2024-01-15 08:00"}).to_string(),
            json!({"issue_key": "SUP-2", "summary": "Toner low", "description": null, "status_category": "To Do",
                   "request_type": null, "request_status": null, "comment_count": 0, "attachment_count": 0,
                   "created": "2024-02-03 12:00"}).to_string(),
        ]
    );
    assert_eq!(
        pulled(&cli, "SELECT comment_id, issue_key, author_email, body FROM comments"),
        [json!({"comment_id": "10001", "issue_key": "SUP-1", "author_email": "bob@corp.example", "body": "On my way"})
            .to_string()]
    );
    assert_eq!(
        pulled(&cli, "SELECT remote_link_id, url, title, application_name FROM remote_links"),
        [json!({"remote_link_id": "501", "url": "https://status.example/1", "title": "Status page",
                "application_name": "Statuspage"})
        .to_string()]
    );
    let attachment = pulled(
        &cli,
        "SELECT attachment_id, filename, size_bytes, local_path IS NOT NULL AS downloaded FROM attachments",
    );
    assert_eq!(
        attachment,
        [json!({"attachment_id": "20001", "filename": "smoke.jpg", "size_bytes": 4, "downloaded": true}).to_string()]
    );
    let parts: Vec<String> = std::fs::read_dir(server.data_dir.join("extracts/jira/data/issues"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(parts, ["2024-01.parquet", "2024-02.parquet"], "one part per month");
    let logged = std::fs::read_dir(server.data_dir.join("extracts/jira/raw/webhook_events")).unwrap().count();
    assert_eq!(logged, 2, "every accepted delivery is kept as received");
    let (_, catalog) = http.get("/api/v2/catalog", &admin).await;
    let issues = catalog["tables"].as_array().unwrap().iter().find(|t| t["name"] == "issues").cloned().unwrap();
    assert!(issues["last_sync"].is_string(), "{issues}");

    // Updated, a comment added, SUP-2 moved to January; each delivered twice and out of
    // order: the tables hold Jira's current state once.
    let mut s1 = sup1();
    s1.summary = "Printer fire out".into();
    s1.comments.push((
        "10002".into(),
        "ana@corp.example".into(),
        "Extinguished".into(),
        "2024-01-16T08:00:00.000+0000".into(),
    ));
    site.fake.put(s1);
    let mut s2 = site.fake.get("SUP-2").unwrap();
    s2.created = "2024-01-20T12:00:00.000+0000".into();
    site.fake.put(s2);
    site.fake.fail_remote_links("SUP-1", true);
    for (name, key) in [
        ("comment_created", "SUP-1"),
        ("jira:issue_updated", "SUP-2"),
        ("jira:issue_updated", "SUP-1"),
        ("comment_created", "SUP-1"),
        ("jira:issue_updated", "SUP-2"),
    ] {
        event(&server, name, key).await;
    }
    settled(&http, &admin).await;
    assert_eq!(
        pulled(&cli, "SELECT issue_key, summary, comment_count FROM issues ORDER BY issue_key"),
        [
            json!({"issue_key": "SUP-1", "summary": "Printer fire out", "comment_count": 2}).to_string(),
            json!({"issue_key": "SUP-2", "summary": "Toner low", "comment_count": 0}).to_string(),
        ]
    );
    assert_eq!(
        pulled(&cli, "SELECT comment_id, body FROM comments ORDER BY comment_id"),
        [
            json!({"comment_id": "10001", "body": "On my way"}).to_string(),
            json!({"comment_id": "10002", "body": "Extinguished"}).to_string()
        ]
    );
    assert_eq!(
        pulled(&cli, "SELECT count(*) AS n FROM remote_links"),
        [json!({"n": 1}).to_string()],
        "kept when unreadable"
    );
    let parts = std::fs::read_dir(server.data_dir.join("extracts/jira/data/issues"))
        .unwrap()
        .filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(parts, 1, "SUP-2 moved to January; February is gone");

    // Deleted, then a late update of the same issue: Jira has no such issue, it stays out.
    site.fake.delete("SUP-1");
    event(&server, "jira:issue_deleted", "SUP-1").await;
    event(&server, "jira:issue_updated", "SUP-1").await;
    settled(&http, &admin).await;
    for table in ["issues", "comments", "attachments", "remote_links"] {
        let left = pulled(&cli, &format!("SELECT count(*) AS n FROM {table} WHERE issue_key = 'SUP-1'"));
        assert_eq!(left, [json!({"n": 0}).to_string()], "{table}");
    }
    assert_eq!(pulled(&cli, "SELECT issue_key FROM issues"), [json!({"issue_key": "SUP-2"}).to_string()]);
    assert!(!server.data_dir.join("extracts/jira/raw/attachments/SUP/SUP-1").exists(), "its attachments go too");
    let journal = std::fs::read_to_string(server.data_dir.join("extracts/jira/raw/journal")).unwrap();
    assert_eq!(journal.lines().count(), 1, "what every table applied is compacted away: {journal}");

    // The health answer is an admin's; an analyst is refused it.
    let (_, analyst) = http.user(&admin, "ana@corp.example").await;
    assert_eq!(http.get("/webhooks/jira/health", &analyst).await.0, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_delivery_survives_a_crash_and_backfill_resumes() {
    let site = Site::new();
    site.fake.put(sup1());
    let mut server = site.serve();
    let http = Http::new(&server);
    let admin = http.bootstrap().await;

    // Jira is down: the delivery is accepted, then the server dies before it is applied.
    site.fake.fail_next(10_000, 503, 0);
    event(&server, "jira:issue_created", "SUP-1").await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    site.fake.clear_faults();
    let server = site.serve();
    let http = Http::new(&server);
    settled(&http, &admin).await;
    let cli = Cli::new(&server.url, &admin, &site.dir.path().join("admin"));
    assert_eq!(
        pulled(&cli, "SELECT issue_key, summary FROM issues"),
        [json!({"issue_key": "SUP-1", "summary": "Printer on fire"}).to_string()]
    );

    // A backfill finds what no delivery announced, page by page, and reports progress.
    for n in 2..=150 {
        site.fake.put(IssueSpec::new(&format!("OPS-{n}"), &format!("ops {n}"), "2024-03-01T00:00:00.000+0000"));
    }
    let (code, out, err) =
        cli.output(&["admin", "jira", "backfill", "--jql", "project = OPS", "--since", "2024-01-01"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        err.contains("search pages") && out.contains("done: 2 search pages, 149 issues found, 0 waiting"),
        "{out}\n{err}"
    );
    assert_eq!(
        pulled(&cli, "SELECT count(*) AS n FROM issues WHERE issue_key LIKE 'OPS-%'"),
        [json!({"n": 149}).to_string()]
    );
    let (status, v) = http.post("/api/admin/jira/backfill", Some(&admin), json!({"since": "last tuesday"})).await;
    assert_eq!((status.as_u16(), v["code"].as_str()), (400, Some("invalid_request")), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reconcile_catches_a_missed_delivery() {
    let site = Site::reconciling_every(1);
    let server = site.serve();
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let cli = Cli::new(&server.url, &admin, &site.dir.path().join("admin"));
    // No delivery ever announces this issue: only the reconcile can find it.
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string();
    let mut missed = IssueSpec::new("SUP-9", "Never announced", "2024-04-01T00:00:00.000+0000");
    missed.updated = now;
    site.fake.put(missed);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, health) = http.get("/webhooks/jira/health", &admin).await;
        let searched = site.fake.requests().iter().any(|r| r == "POST /rest/api/3/search/jql");
        if searched && health["pending"] == 0 && health["last_reconcile_at"].is_string() {
            let found = pulled(&cli, "SELECT issue_key, summary FROM issues");
            if !found.is_empty() {
                assert_eq!(found, [json!({"issue_key": "SUP-9", "summary": "Never announced"}).to_string()]);
                break;
            }
        }
        assert!(Instant::now() < deadline, "the reconcile did not bring SUP-9 in: {health}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
