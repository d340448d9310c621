//! agnes's MCP tools driven by a real MCP client: the official Python SDK (`mcp` on PyPI,
//! in a virtual environment `scripts/mcp-sdk.sh` makes) spawns `agnes mcp` over stdio, and
//! connects to the server's `/mcp` over HTTP; it initializes, lists the tools and calls
//! every one. Answers equal the REST API's and the CLI's, caps and `truncated` hold, a
//! table the analyst may not read appears nowhere, refusals are tool errors with the
//! contract's code, and a refused token gets no tools at all.

mod common;

use common::{setup, Cli, SECRET_MARKER};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

/// The SDK's python, installed on first use.
fn python() -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mcp-sdk.sh");
    let out = Command::new("bash").arg(script).output().expect("bash runs");
    assert!(out.status.success(), "scripts/mcp-sdk.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// What a session offered: instructions naming the analyst's tables, the tools (the
/// workspace's only where there is one), each described by `tools_are_described`.
fn offered(seen: &Value, workspace: bool) {
    let instructions = seen["instructions"].as_str().unwrap();
    assert!(instructions.contains("Local tables: ") && instructions.contains("flights"), "{instructions}");
    let mut names: Vec<&str> = seen["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    let mut expected = vec![
        "access_explain",
        "catalog",
        "describe",
        "metric_show",
        "metrics_list",
        "query",
        "schema",
        "snapshot_estimate",
    ];
    if workspace {
        expected.extend(["pull", "snapshot_create", "snapshot_drop", "snapshot_list"]);
    }
    expected.sort();
    assert_eq!(names, expected);
    tools_are_described(seen);
}

/// Every tool has an object input schema, a description with its rails, and annotations
/// that are true: only the workspace's writers are not read-only, and only those that
/// delete are destructive.
fn tools_are_described(seen: &Value) {
    for t in seen["tools"].as_array().unwrap() {
        let expected = match t["name"].as_str().unwrap() {
            "snapshot_create" => (false, false),
            "snapshot_drop" | "pull" => (false, true),
            _ => (true, false),
        };
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert_eq!(
            (&t["annotations"]["readOnlyHint"], &t["annotations"]["destructiveHint"]),
            (&json!(expected.0), &json!(expected.1)),
            "{t}"
        );
        assert!(t["description"].as_str().unwrap().len() > 40, "{t}");
    }
}

/// Run the plan through the SDK client; what it saw.
fn drive(plan: Value) -> Value {
    let driver = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/drive.py");
    let mut child = Command::new(python())
        .arg(driver)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(plan.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the MCP client failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stdio_server(cli: &Cli, token: &str) -> Value {
    json!({"command": env!("CARGO_BIN_EXE_agnes"), "args": ["mcp"], "env": {
        "AGNES_SERVER": cli.server, "AGNES_TOKEN": token,
        "AGNES_LOCAL_DIR": cli.workspace, "AGNES_CONFIG_DIR": cli.config}})
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_client_works_the_workspace_through_agnes_mcp() {
    let f = setup(&[]).await;
    let root = f.data.parent().unwrap().join("ana");
    let cli = Cli::new(&f.server.url, &f.analyst, &root);
    cli.expect(0, &["pull", "--quiet"]);
    cli.expect(
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

    // weather is revoked after the pull: the agent's `pull` takes it away.
    let (_, grants) = f.http.get("/api/admin/grants", &f.admin).await;
    let weather = grants.as_array().unwrap().iter().find(|g| g["resource_id"] == "weather").unwrap();
    let revoke = format!("/api/admin/grants/{}", weather["id"].as_str().unwrap());
    assert_eq!(f.http.delete(&revoke, &f.admin).await, 204);
    assert!(cli.workspace.join("server/parquet/weather").is_dir(), "pulled before");

    let by_carrier = "SELECT carrier, count(*) AS n FROM flights GROUP BY carrier ORDER BY carrier";
    let very_late =
        json!({"table": "flights", "select": ["carrier", "dep_delay"], "where": "dep_delay > 120", "as": "very_late"});
    let calls = json!([
        ["catalog", {}],
        ["schema", {"table": "flights"}],
        ["describe", {"table": "airlines", "n": 3}],
        ["query", {"sql": by_carrier}],
        ["query", {"sql": "SELECT carrier, flight FROM flights"}],
        ["query", {"sql": "SELECT * FROM flights", "limit": 10000}],
        ["query", {"sql": "SELECT count(*) AS n FROM flights", "remote": true}],
        ["query", {"sql": "SELECT * FROM salaries", "remote": true}],
        ["query", {"sql": "SELECT * FROM salaries"}],
        ["query", {"sql": "SELECT 1", "limit": 20000}],
        ["schema", {"table": "salaries"}],
        ["snapshot_estimate", {"table": "flights", "where": "dep_delay > 60"}],
        ["snapshot_list", {}],
        ["metrics_list", {}],
        ["metric_show", {"id": "finance/none"}],
        ["pull", {}],
        ["snapshot_create", very_late],
        ["query", {"sql": "SELECT count(*) AS n FROM very_late"}],
        ["snapshot_create", very_late],
        ["snapshot_create", {"table": "salaries", "as": "pay"}],
        ["snapshot_drop", {"name": "very_late"}],
        ["snapshot_drop", {"name": "very_late"}],
        ["snapshot_list", {}],
        ["access_explain", {}],
        ["access_explain", {"table": "flights"}],
        ["access_explain", {"table": "salaries"}],
    ]);
    tokio::task::block_in_place(|| {
        let seen = drive(json!({"server": stdio_server(&cli, &f.analyst), "calls": calls}));
        // Only the explanation of why salaries is refused names it.
        let mut shown = seen.clone();
        shown["results"].as_array_mut().unwrap().pop();
        let text = shown.to_string();
        assert!(!text.contains(SECRET_MARKER) && !text.contains("\"salaries\""), "an ungranted table shows nowhere");

        assert_eq!(seen["server"], "agnes");
        offered(&seen, true);
        let r = |i: usize| &seen["results"][i];
        for i in [0, 1, 2, 3, 4, 5, 6, 11, 12, 13] {
            assert_eq!(r(i)["isError"], false, "call {i}: {}", r(i));
        }

        // The same answers as the REST API and the CLI give this analyst.
        let rest = |path: &str| {
            let out = Command::new("curl")
                .args(["-s", "-H", &format!("Authorization: Bearer {}", f.analyst), &format!("{}{path}", f.server.url)])
                .output()
                .unwrap();
            serde_json::from_slice::<Value>(&out.stdout).unwrap()
        };
        assert_eq!(r(0)["structured"]["tables"], rest("/api/v2/catalog")["tables"]);
        assert_eq!(r(1)["structured"], rest("/api/v2/schema/flights"));
        assert_eq!(r(2)["structured"]["rows"].as_array().unwrap().len(), 3);
        let local: Value = serde_json::from_str(&cli.expect(0, &["query", by_carrier, "--format", "json"])).unwrap();
        assert_eq!(r(3)["structured"]["rows"], local, "query answers what `agnes query` answers");
        assert_eq!(r(3)["structured"]["truncated"], false);

        // Caps: 1,000 rows by default; 10,000 asked for, but cut at 100,000 characters.
        let q = &r(4)["structured"];
        assert_eq!((&q["row_count"], &q["truncated"]), (&json!(1000), &json!(true)), "{}", q["hint"]);
        let q = &r(5)["structured"];
        let kept = q["row_count"].as_u64().unwrap();
        assert!(kept > 100 && kept < 3000 && q["truncated"] == true, "{kept} rows");
        assert!(q["rows"].to_string().len() <= 100_000 && q["hint"].as_str().unwrap().contains("100,000 characters"));
        assert_eq!(r(6)["structured"]["rows"][0]["n"], 3000, "remote: true runs on the server");

        // Refusals are tool errors with the contract's codes.
        assert_eq!(
            (&r(7)["isError"], &r(7)["structured"]["error"]),
            (&json!(true), &json!("access_denied")),
            "{}",
            r(7)
        );
        assert_eq!((&r(8)["isError"], &r(8)["structured"]["error"]), (&json!(true), &json!("invalid_sql")), "{}", r(8));
        assert_eq!(r(9)["structured"]["error"], "invalid_limit");
        assert_eq!((&r(10)["isError"], &r(10)["structured"]["status"]), (&json!(true), &json!(403)), "{}", r(10));
        assert!(r(11)["structured"]["estimated_result_rows"].as_u64().unwrap() > 0, "{}", r(11));
        assert_eq!(r(12)["structured"]["snapshots"][0]["name"], "late");
        assert_eq!((&r(14)["isError"], &r(14)["structured"]["status"]), (&json!(true), &json!(404)), "{}", r(14));

        // The workspace tools: a pull that takes revoked weather away, a snapshot the local
        // query reads, refusals as tool errors, a drop.
        let pulled = &r(15)["structured"];
        assert_eq!((&r(15)["isError"], &pulled["removed"]), (&json!(false), &json!(["weather"])), "{}", r(15));
        assert!(!cli.workspace.join("server/parquet/weather").exists(), "weather is gone from the workspace");
        let taken = &r(16)["structured"]["snapshot"];
        assert_eq!((&r(16)["isError"], &taken["name"]), (&json!(false), &json!("very_late")), "{}", r(16));
        assert!(taken["estimated_scan_bytes_at_fetch"].as_u64().unwrap() > 0, "estimated first: {taken}");
        assert!(taken["rows"].as_u64().unwrap() > 0);
        assert_eq!(r(17)["structured"]["rows"][0]["n"], taken["rows"], "the snapshot is a local table");
        assert_eq!((&r(18)["isError"], &r(18)["structured"]["error"]), (&json!(true), &json!("already_exists")));
        assert_eq!((&r(19)["isError"], &r(19)["structured"]["status"]), (&json!(true), &json!(403)), "{}", r(19));
        assert_eq!(r(20)["structured"]["dropped"], "very_late");
        assert_eq!((&r(21)["isError"], &r(21)["structured"]["error"]), (&json!(true), &json!("invalid_argument")));
        let names: Vec<&Value> =
            r(22)["structured"]["snapshots"].as_array().unwrap().iter().map(|s| &s["name"]).collect();
        assert_eq!(names, [&json!("late")]);
        assert!(!cli.workspace.join("user/snapshots/very_late.parquet").exists());

        // Access explained: the analyst's groups and grants, as the REST API says.
        assert_eq!(r(23)["structured"], rest("/api/me/effective-access"));
        let flights = &r(24)["structured"];
        assert_eq!((&flights["readable"], &flights["via"][0]["group_name"]), (&json!(true), &json!("Analysts")));
        let salaries = &r(25)["structured"];
        assert_eq!((&salaries["readable"], &salaries["status"]), (&json!(false), &json!(403)), "{salaries}");

        // A token the server does not take: every call is a tool error saying so.
        let seen = drive(json!({"server": stdio_server(&cli, "agnes_pat_not-a-token"), "calls": [["catalog", {}]]}));
        assert_eq!(
            (&seen["results"][0]["isError"], &seen["results"][0]["structured"]["status"]),
            (&json!(true), &json!(401))
        );
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_agent_uses_the_servers_mcp_endpoint_with_a_personal_access_token() {
    let f = setup(&[]).await;
    let (s, pat) = f.http.post("/auth/tokens", Some(&f.analyst), json!({"name": "agent"})).await;
    assert_eq!(s, 201, "{pat}");
    let token = pat["token"].as_str().unwrap().to_string();
    let endpoint = format!("{}/mcp", f.server.url);
    let headers = |token: &str| json!({"Authorization": format!("Bearer {token}"), "X-Forwarded-For": "203.0.113.9"});
    let calls = json!([
        ["catalog", {}],
        ["schema", {"table": "flights"}],
        ["describe", {"table": "airlines", "n": 2}],
        ["query", {"sql": "SELECT count(*) AS n FROM flights"}],
        ["query", {"sql": "SELECT carrier, flight FROM flights", "limit": 10}],
        ["query", {"sql": "SELECT * FROM salaries"}],
        ["snapshot_estimate", {"table": "flights", "where": "dep_delay > 60"}],
        ["access_explain", {"table": "flights"}],
        ["metrics_list", {}],
    ]);
    let (_, catalog) = f.http.get("/api/v2/catalog", &token).await;
    let (_, schema) = f.http.get("/api/v2/schema/flights", &token).await;
    let (_, me) = f.http.get("/api/me", &token).await;

    tokio::task::block_in_place(|| {
        let seen = drive(json!({"server": {"url": endpoint, "headers": headers(&token)}, "calls": calls}));
        assert!(seen.get("refused").is_none(), "{seen}");
        let text = seen.to_string();
        assert!(!text.contains(SECRET_MARKER) && !text.contains("\"salaries\""), "an ungranted table shows nowhere");
        offered(&seen, false);
        let r = |i: usize| &seen["results"][i];
        for i in [0, 1, 2, 3, 4, 6, 7, 8] {
            assert_eq!(r(i)["isError"], false, "call {i}: {}", r(i));
        }
        assert_eq!(r(0)["structured"]["tables"], catalog["tables"], "the catalog as the REST API gives it");
        assert_eq!(r(1)["structured"], schema);
        assert_eq!(r(2)["structured"]["rows"].as_array().unwrap().len(), 2);
        assert_eq!(r(3)["structured"]["rows"][0]["n"], 3000);
        assert_eq!((&r(4)["structured"]["row_count"], &r(4)["structured"]["truncated"]), (&json!(10), &json!(true)));
        assert_eq!((&r(5)["isError"], &r(5)["structured"]["error"]), (&json!(true), &json!("access_denied")));
        assert!(r(6)["structured"]["estimated_result_rows"].as_u64().unwrap() > 0);
        assert_eq!(r(7)["structured"]["readable"], true);

        // Missing or foreign tokens get no session at all.
        for headers in [json!({}), headers("agnes_pat_forged")] {
            let refused = drive(json!({"server": {"url": endpoint, "headers": headers}, "calls": []}));
            assert!(refused["refused"].is_string(), "{refused}");
        }
    });

    // Every call was audited as the analyst, from where the agent called.
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", f.data.join("state/system.db").display())).await.unwrap();
    let (queries,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'query.local' AND user_id = ? AND client_ip = '203.0.113.9'",
    )
    .bind(me["id"].as_str().unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(queries, 3, "three queries, the refused one included");
    let calls: Vec<(String, String)> = sqlx::query_as(
        "SELECT resource, result FROM audit_log WHERE action = 'mcp.tool_call' AND user_id = ? ORDER BY resource, result",
    )
    .bind(me["id"].as_str().unwrap())
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut expected: Vec<(String, String)> = [
        ("catalog", "success"),
        ("schema", "success"),
        ("describe", "success"),
        ("query", "success"),
        ("query", "success"),
        ("query", "refused"),
        ("snapshot_estimate", "success"),
        ("access_explain", "success"),
        ("metrics_list", "success"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    expected.sort();
    assert_eq!(calls, expected, "every tool call is audited with its outcome");

    // What the SDK saw as a refused connection is the contract's 401, before any MCP.
    let initialize = |token: Option<&str>| {
        let mut request = reqwest::Client::new()
            .post(&endpoint)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send()
    };
    assert_eq!(initialize(Some(&token)).await.unwrap().status(), 200);
    assert_eq!(initialize(None).await.unwrap().status(), 401);
    assert_eq!(f.http.delete(&format!("/auth/tokens/{}", pat["id"].as_str().unwrap()), &f.analyst).await, 204);
    let revoked = initialize(Some(&token)).await.unwrap();
    assert_eq!(revoked.status(), 401, "a revoked token");
    let body: Value = revoked.json().await.unwrap();
    assert!(body["detail"].is_string(), "{body}");
    tokio::task::block_in_place(|| {
        let seen = drive(json!({"server": {"url": endpoint, "headers": headers(&token)}, "calls": [["catalog", {}]]}));
        assert!(seen["refused"].is_string(), "a revoked token: {seen}");
    });
}
