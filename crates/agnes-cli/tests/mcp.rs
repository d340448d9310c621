//! `agnes mcp` driven by a real MCP client: the official Python SDK (`mcp` on PyPI, in a
//! virtual environment `scripts/mcp-sdk.sh` makes) spawns it over stdio, initializes,
//! lists the tools and calls every one. Answers equal the REST API's and the CLI's, caps
//! and `truncated` hold, a table the analyst may not read appears nowhere, and refusals
//! are tool errors with the contract's code.

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

    let by_carrier = "SELECT carrier, count(*) AS n FROM flights GROUP BY carrier ORDER BY carrier";
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
    ]);
    tokio::task::block_in_place(|| {
        let seen = drive(json!({"server": stdio_server(&cli, &f.analyst), "calls": calls}));
        let text = seen.to_string();
        assert!(!text.contains(SECRET_MARKER) && !text.contains("\"salaries\""), "an ungranted table shows nowhere");

        assert_eq!(seen["server"], "agnes");
        let instructions = seen["instructions"].as_str().unwrap();
        assert!(instructions.contains("Local tables: ") && instructions.contains("flights"), "{instructions}");
        let mut names: Vec<&str> =
            seen["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "catalog",
                "describe",
                "metric_show",
                "metrics_list",
                "query",
                "schema",
                "snapshot_estimate",
                "snapshot_list"
            ]
        );
        for t in seen["tools"].as_array().unwrap() {
            assert_eq!(t["inputSchema"]["type"], "object", "{t}");
            assert_eq!(
                (&t["annotations"]["readOnlyHint"], &t["annotations"]["destructiveHint"]),
                (&json!(true), &json!(false)),
                "{t}"
            );
            assert!(t["description"].as_str().unwrap().len() > 40, "{t}");
        }
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

        // A token the server does not take: every call is a tool error saying so.
        let seen = drive(json!({"server": stdio_server(&cli, "agnes_pat_not-a-token"), "calls": [["catalog", {}]]}));
        assert_eq!(
            (&seen["results"][0]["isError"], &seen["results"][0]["structured"]["status"]),
            (&json!(true), &json!(401))
        );
    });
}
