//! The analyst journey end to end: an admin registers real files, the server syncs them,
//! an analyst with a token pulls exactly what they may read and queries it locally.

mod common;

use common::{agnes, ok, Http, TestServer};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::fixtures;

struct Analyst<'a> {
    server: &'a TestServer,
    token: String,
    workspace: std::path::PathBuf,
}

impl<'a> Analyst<'a> {
    /// Mint a PAT from `session` and give it an empty workspace under `dir`.
    async fn with_new_token(
        server: &'a TestServer,
        http: &Http,
        session: &str,
        dir: &Path,
    ) -> (serde_json::Value, Analyst<'a>) {
        let (_, pat) = http.post("/auth/tokens", Some(session), json!({"name": "laptop"})).await;
        let ana = Analyst { server, token: pat["token"].as_str().unwrap().to_string(), workspace: dir.join("ws") };
        std::fs::create_dir_all(&ana.workspace).unwrap();
        (pat, ana)
    }

    fn agnes(&self, args: &[&str]) -> Output {
        agnes()
            .env("AGNES_SERVER", &self.server.url)
            .env("AGNES_TOKEN", &self.token)
            .env("AGNES_LOCAL_DIR", &self.workspace)
            .env("AGNES_CONFIG_DIR", self.workspace.join(".cfg"))
            .args(args)
            .output()
            .unwrap()
    }
}

#[tokio::test]
async fn register_sync_grant_pull_query() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sources = data.join("sources");
    std::fs::create_dir_all(&sources).unwrap();
    // The real file when the shared data set is beside the clone, else the committed cut.
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nycflights13/flights.csv");
    let (flights_file, expected) =
        if shared.is_file() { (shared, "336776") } else { (fixtures().join("flights_3000.csv"), "3000") };
    std::fs::copy(&flights_file, sources.join("flights.csv")).unwrap();
    std::fs::copy(fixtures().join("airlines.csv"), sources.join("airlines.csv")).unwrap();
    std::fs::copy(fixtures().join("weather_1000.csv"), sources.join("weather.csv")).unwrap();

    let server = TestServer::start(&data);
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    http.register(&admin, common::nyc_tables()).await;
    assert_eq!(http.post("/api/sync/trigger", Some(&admin), json!(null)).await.0, 200);
    http.wait_synced(&admin, &["flights", "airlines", "weather"]).await;

    let (_, session) = http.user(&admin, "ana@example.com").await;
    http.post("/api/admin/groups", Some(&admin), json!({"name": "Analysts"})).await;
    http.post("/api/admin/groups/Analysts/members", Some(&admin), json!({"email": "ana@example.com"})).await;
    for t in ["flights", "weather"] {
        http.post(
            "/api/admin/grants",
            Some(&admin),
            json!({"group_id": "Analysts", "resource_type": "table", "resource_id": t}),
        )
        .await;
    }
    let (pat, ana) = Analyst::with_new_token(&server, &http, &session, dir.path()).await;

    // `agnes init` sets a second workspace up in one command.
    let init_ws = dir.path().join("init-ws");
    let init = |force: bool| {
        let mut c = agnes();
        c.env("AGNES_CONFIG_DIR", dir.path().join("init-cfg"))
            .args(["init", "--server-url", &server.url, "--token", pat["token"].as_str().unwrap(), "--workspace"])
            .arg(&init_ws);
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    let out = ok(init(false));
    assert!(out.contains("Workspace ready.") && out.contains("2 pulled"), "{out}");
    let claude = std::fs::read_to_string(init_ws.join("CLAUDE.md")).unwrap();
    assert!(claude.contains(&server.url) && claude.contains("agnes catalog"), "{claude}");
    let mcp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(init_ws.join(".mcp.json")).unwrap()).unwrap();
    assert_eq!(mcp["mcpServers"]["agnes"]["args"][0], "mcp", "{mcp}");
    assert!(out.contains("AGNES_LOCAL_DIR"), "the snippet for other MCP clients: {out}");
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(init_ws.join(".claude/settings.json")).unwrap()).unwrap();
    assert!(settings["hooks"]["SessionStart"][1]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .contains("agnes pull --quiet"));
    assert!(init_ws.join(".claude/CLAUDE.local.md").is_file() && init_ws.join(".claude/init-complete").is_file());
    assert!(init_ws.join("server/parquet/flights.parquet").is_file());
    assert_eq!(init(false).status.code(), Some(1), "already initialized");
    ok(init(true));
    let backups = std::fs::read_dir(&init_ws)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("CLAUDE.md.bak."))
        .count();
    assert_eq!(backups, 1, "--force backs CLAUDE.md up");
    let refused = agnes()
        .env("AGNES_CONFIG_DIR", dir.path().join("x"))
        .args(["init", "--server-url", &server.url, "--token", "agnes_pat_nope", "--workspace"])
        .arg(dir.path().join("x-ws"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));

    // Sessions and notes go back with `agnes push`; nothing is lost while the server is away.
    // Claude Code keeps the workspace's transcripts under its config dir, in a folder named
    // after the workspace path; only files from there are uploaded.
    let claude_config = dir.path().join("claude-config");
    let folder: String = init_ws
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let transcripts = claude_config.join("projects").join(folder);
    std::fs::create_dir_all(&transcripts).unwrap();
    let transcript = transcripts.join("s-1.jsonl");
    std::fs::write(&transcript, "{\"type\":\"user\",\"text\":\"how many flights?\"}\n").unwrap();
    let stolen = dir.path().join("not-a-transcript.txt");
    std::fs::write(&stolen, "private key material").unwrap();
    let capture = |ws: &Path, id: &str, path: &Path| {
        let mut child = agnes()
            .env("AGNES_LOCAL_DIR", ws)
            .arg("capture-session")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{{\"session_id\":\"{id}\",\"transcript_path\":\"{}\"}}", path.display()).as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    };
    capture(&init_ws, "s-1", &transcript);
    capture(&init_ws, "s-1", &transcript); // queued once
    capture(&init_ws, "s-2", &stolen); // a queue entry naming any other file is refused
    std::fs::write(init_ws.join(".claude/CLAUDE.local.md"), "prefer weekly charts").unwrap();
    let offline = agnes()
        .env("AGNES_LOCAL_DIR", &init_ws)
        .env("AGNES_SERVER", "http://127.0.0.1:9")
        .env("CLAUDE_CONFIG_DIR", &claude_config)
        .env("AGNES_TOKEN", pat["token"].as_str().unwrap())
        .args(["push", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(offline.status.code(), Some(1));
    let warning = String::from_utf8_lossy(&offline.stderr).to_string();
    assert!(
        warning.contains("not-a-transcript.txt") && warning.contains("not a transcript of this workspace"),
        "the other path is refused with a warning, before any network: {warning}"
    );
    assert!(
        std::fs::read_to_string(init_ws.join(".claude/agnes-sessions.txt")).unwrap().starts_with("s-1\t"),
        "the queue stays"
    );
    let pending = || {
        let out = agnes().env("AGNES_LOCAL_DIR", &init_ws).args(["status", "--json"]).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["sessions_pending_upload"].clone()
    };
    assert_eq!(pending(), 1, "the refused entry left the queue, s-1 waits");
    let pushed = agnes()
        .env("AGNES_LOCAL_DIR", &init_ws)
        .env("AGNES_SERVER", &server.url)
        .env("AGNES_TOKEN", pat["token"].as_str().unwrap())
        .env("CLAUDE_CONFIG_DIR", &claude_config)
        .args(["push", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(pushed)).unwrap();
    assert_eq!(
        (v["sessions"].as_i64(), v["local_md"].as_bool(), v["refused"].as_i64()),
        (Some(1), Some(true), Some(0)),
        "{v}"
    );
    assert!(!init_ws.join(".claude/agnes-sessions.txt").exists(), "the queue is empty");
    assert_eq!(pending(), 0);
    let (_, me) = http.get("/api/me", pat["token"].as_str().unwrap()).await;
    let user_id = me["id"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(data.join(format!("user_sessions/{user_id}/s-1.jsonl"))).unwrap(),
        std::fs::read_to_string(&transcript).unwrap()
    );
    assert!(!data.join(format!("user_sessions/{user_id}/s-2.jsonl")).exists(), "the refused file never left");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(data.join(format!("user_sessions/{user_id}/s-1.jsonl"))), 0o600);
        assert_eq!(mode(data.join(format!("user_local_md/{user_id}.md"))), 0o600);
        assert_eq!(mode(data.join(format!("user_sessions/{user_id}"))), 0o700);
    }
    assert_eq!(
        std::fs::read_to_string(data.join(format!("user_local_md/{user_id}.md"))).unwrap(),
        "prefer weekly charts"
    );
    // The upload endpoint refuses odd names and oversized files.
    let upload = |name: &str, size: usize| {
        let body = [
            format!("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n").into_bytes(),
            vec![b'x'; size],
            b"\r\n--b--\r\n".to_vec(),
        ]
        .concat();
        reqwest::Client::new()
            .post(server.url("/api/upload/sessions"))
            .bearer_auth(pat["token"].as_str().unwrap())
            .header("content-type", "multipart/form-data; boundary=b")
            .body(body)
            .send()
    };
    assert_eq!(upload("../evil", 10).await.unwrap().status(), 400);
    assert_eq!(upload("big.jsonl", 50 * 1024 * 1024 + 1).await.unwrap().status(), 413);

    // Dry run writes nothing.
    let out = ok(ana.agnes(&["pull", "--dry-run"]));
    assert!(out.contains("Would download 3 file(s) for 2 table(s)"), "{out}");
    assert!(!ana.workspace.join("server/parquet").exists());

    let out = ok(ana.agnes(&["pull"]));
    assert!(out.contains("Updated 2 tables (2 total)."), "{out}");
    assert!(ana.workspace.join("server/parquet/flights.parquet").is_file());
    assert!(ana.workspace.join("server/parquet/weather/2013_01.parquet").is_file());
    assert!(!ana.workspace.join("server/parquet/airlines.parquet").exists(), "not granted, not pulled");

    let out = ok(ana.agnes(&["query", "SELECT count(*) AS n FROM flights", "--format", "csv"]));
    assert_eq!(out, format!("n\r\n{expected}\r\n"));
    let out = ok(ana.agnes(&["query", "SELECT count(*) AS n FROM weather", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, json!([{"n": 1000}]));

    // Discovery commands.
    let cat: serde_json::Value = serde_json::from_str(&ok(ana.agnes(&["catalog", "--json"]))).unwrap();
    let ids: Vec<&str> = cat["tables"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["flights", "weather"]);
    let table = ok(ana.agnes(&["catalog"]));
    assert!(table.contains("ID") && table.contains("flights") && !table.contains("airlines"), "{table}");
    let schema = ok(ana.agnes(&["schema", "flights"]));
    assert!(
        schema.starts_with("Table: flights  (files — use DUCKDB SQL dialect)")
            && schema.contains("dep_time")
            && schema.contains("BIGINT"),
        "{schema}"
    );
    let described: serde_json::Value =
        serde_json::from_str(&ok(ana.agnes(&["sample", "flights", "-n", "3", "--json"]))).unwrap();
    assert_eq!(described["sample"]["rows"].as_array().unwrap().len(), 3);
    assert_eq!(ana.agnes(&["schema", "airlines"]).status.code(), Some(8), "403 exits 8");
    assert_eq!(ana.agnes(&["schema", "nope"]).status.code(), Some(2), "404 exits 2");
    let status: serde_json::Value = serde_json::from_str(&ok(ana.agnes(&["status", "--json"]))).unwrap();
    assert_eq!((status["parquet_tables"].as_i64(), status["duckdb_exists"].as_bool()), (Some(2), Some(true)));
    let disk: serde_json::Value = serde_json::from_str(&ok(ana.agnes(&["disk-info", "--json"]))).unwrap();
    assert_eq!((disk["snapshot_count"].as_i64(), disk["used_bytes"].as_i64()), (Some(0), Some(0)));
    assert!(disk["free_bytes"].as_u64().unwrap() > 0);

    // Nothing changed: nothing downloaded.
    let out = ok(ana.agnes(&["pull", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["tables_updated"].as_i64(), v["parquets_total"].as_i64()), (Some(0), Some(2)));
    // A missing local file is fetched again.
    std::fs::remove_file(ana.workspace.join("server/parquet/flights.parquet")).unwrap();
    let out = ok(ana.agnes(&["pull", "--json"]));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["tables_updated"], 1);

    // A snapshot view and the analyst's own table survive a pull.
    {
        let conn = agnes_engine::duck::open(ana.workspace.join("user/duckdb/analytics.duckdb")).unwrap();
        conn.execute_batch(
            "CREATE TABLE my_notes AS SELECT 'keep me' AS note; CREATE VIEW ua_flights AS SELECT 1 AS x; \
             INSERT INTO _agnes_views VALUES ('ua_flights', 'snapshot', 'x')",
        )
        .unwrap();
    }
    // Revoke weather: the next pull removes it.
    let (_, grants) = http.get("/api/admin/grants?group_id=Analysts", &admin).await;
    let weather = grants.as_array().unwrap().iter().find(|g| g["resource_id"] == "weather").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(http.delete(&format!("/api/admin/grants/{weather}"), &admin).await, 204);
    let out = ok(ana.agnes(&["pull"]));
    assert!(out.contains("Removed 1 table(s) no longer available: weather."), "{out}");
    assert!(!ana.workspace.join("server/parquet/weather").exists());
    let out =
        ok(ana.agnes(&["query", "SELECT table_name FROM information_schema.tables ORDER BY 1", "--format", "csv"]));
    assert_eq!(out, "table_name\r\n_agnes_views\r\nflights\r\nmy_notes\r\nua_flights\r\n");

    // A misspelled table gets a hint.
    let out = ana.agnes(&["query", "SELECT * FROM flihgts"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did you mean flights?") && stderr.contains("agnes pull"), "{stderr}");
}

#[tokio::test]
async fn empty_manifest_still_creates_the_local_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data"));
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let (_, session) = http.user(&admin, "ana@example.com").await;
    let (_, ana) = Analyst::with_new_token(&server, &http, &session, dir.path()).await;
    let out = ok(ana.agnes(&["pull"]));
    assert!(out.contains("Updated 0 tables (0 total)."), "{out}");
    assert!(ana.workspace.join("user/duckdb/analytics.duckdb").is_file());

    let missing =
        agnes().env("AGNES_LOCAL_DIR", dir.path().join("elsewhere")).args(["query", "SELECT 1"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("Run: agnes pull"));

    let bad = Analyst { token: "agnes_pat_bogus".into(), ..ana };
    let out = bad.agnes(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "a refused manifest fails the pull");
}
