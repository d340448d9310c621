//! `agnes mcp` over stdio, as an MCP client sees it, with 1,000 tables on the server and
//! pulled into the workspace:
//!
//! * start to the first `tools/list` answer (spawn, `initialize`, `notifications/initialized`,
//!   `tools/list`): the first table of the answer's time, median of 5;
//! * a `catalog` call (the 1,000 tables, through the server's API), median of 20;
//! * a local `query` call against the same SQL through `agnes query` (a process per query,
//!   as an agent with only a shell runs it), medians of 20 and 10.

use crate::cli::Client;
use crate::pull::thousand_tables;
use crate::report::{machine, Section};
use crate::scenarios::{agnes_exe, median, start_server, stop};
use anyhow::Context;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const SQL: &str = "SELECT count(*) AS n, max(label) AS last FROM t0500";

/// A running `agnes mcp`, spoken to in JSON-RPC lines.
struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next: u64,
}

impl Session {
    fn start(exe: &Path, client: &Client, workspace: &Path) -> anyhow::Result<Session> {
        let mut child = Command::new(exe)
            .arg("mcp")
            .env("AGNES_LOCAL_DIR", workspace)
            .envs(client.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?);
        Ok(Session { child, stdin, stdout, next: 1 })
    }

    fn send(&mut self, message: Value) -> anyhow::Result<()> {
        writeln!(self.stdin, "{message}")?;
        self.stdin.flush()?;
        Ok(())
    }

    /// A request, its answer, and the time until the answer's whole line arrived (the
    /// benchmark's own parsing of it is not agnes's time).
    fn request(&mut self, method: &str, params: Value) -> anyhow::Result<(Value, Duration)> {
        let id = self.next;
        self.next += 1;
        let started = Instant::now();
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        loop {
            let mut line = String::new();
            anyhow::ensure!(self.stdout.read_line(&mut line)? > 0, "agnes mcp closed its output");
            let took = started.elapsed();
            let v: Value = serde_json::from_str(&line)?;
            if v["id"] == id {
                anyhow::ensure!(v.get("error").is_none(), "{method} failed: {v}");
                return Ok((v["result"].clone(), took));
            }
        }
    }

    fn handshake(&mut self) -> anyhow::Result<Value> {
        self.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "agnes-bench", "version": "1"}}),
        )?;
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(self.request("tools/list", json!({}))?.0)
    }

    /// A tool call's structured answer and how long it took to arrive.
    fn call(&mut self, tool: &str, arguments: Value) -> anyhow::Result<(Value, Duration)> {
        let (result, took) = self.request("tools/call", json!({"name": tool, "arguments": arguments}))?;
        anyhow::ensure!(result["isError"] != true, "{tool} failed: {result}");
        Ok((result["structuredContent"].clone(), took))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn mcp_bench() -> anyhow::Result<Section> {
    let exe = agnes_exe()?;
    let work = tempfile::tempdir()?;
    let data = work.path().join("data");
    thousand_tables(&data)?;
    let (server, port) = start_server(&exe, &data)?;
    let result = (|| -> anyhow::Result<_> {
        let url = format!("http://127.0.0.1:{port}");
        let client = Client::admin(&exe, &data, &url, work.path().join("cfg"))?;
        let ws = work.path().join("ws");
        std::fs::create_dir_all(&ws)?;
        client.run(&ws, &["pull", "--quiet"])?;

        let mut starts = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let mut session = Session::start(&exe, &client, &ws)?;
            let tools = session.handshake()?;
            starts.push(started.elapsed());
            anyhow::ensure!(tools["tools"].as_array().map_or(0, Vec::len) == 12, "tools/list answered {tools}");
        }
        let mut session = Session::start(&exe, &client, &ws)?;
        session.handshake()?;
        let mut catalog = Vec::new();
        for _ in 0..20 {
            let (answer, took) = session.call("catalog", json!({}))?;
            catalog.push(took);
            anyhow::ensure!(answer["tables"].as_array().map_or(0, Vec::len) == 1000, "the catalog listed {answer}");
        }
        let mut query = Vec::new();
        for _ in 0..20 {
            let (answer, took) = session.call("query", json!({"sql": SQL}))?;
            query.push(took);
            anyhow::ensure!(answer["rows"][0]["n"] == 1000, "query answered {answer}");
        }
        let mut cli = Vec::new();
        for _ in 0..10 {
            let started = Instant::now();
            let out = client.run(&ws, &["query", SQL, "--format", "json"])?;
            cli.push(started.elapsed());
            anyhow::ensure!(out.contains("1000"), "agnes query answered {out}");
        }
        Ok((median(starts), median(catalog), median(query), median(cli)))
    })();
    stop(server)?;
    let (start, catalog, query, cli) = result?;
    Ok(Section {
        name: "mcp",
        body: format!(
            "## `agnes mcp`\n\n{}\n\nThe real binaries over loopback: `agnes serve` with 1,000 synced tables, a workspace \
             that pulled them, and `agnes mcp` spoken to in JSON-RPC lines over its stdin and stdout as an MCP client \
             does. Start = spawn until the `tools/list` answer (after `initialize`, which reads the catalog for the \
             instructions), median of 5; tool calls median of 20, until the answer's line has arrived; `agnes query` (one process per query, the way an \
             agent with a shell runs it) median of 10.\n\n\
             | measure | agnes mcp | baseline | target |\n|---|---|---|---|\n\
             | start to the first `tools/list` answer | {:.1} ms | | ≤ 50 ms |\n\
             | `catalog` call, 1,000 tables | {:.1} ms | | ≤ 20 ms |\n\
             | local `query` call | {:.1} ms | the same SQL through `agnes query`: {:.1} ms | ≤ baseline + 5 ms |\n",
            machine(),
            ms(start),
            ms(catalog),
            ms(query),
            ms(cli),
        ),
    })
}
