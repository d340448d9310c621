//! `agnes mcp`: the analyst's MCP tools (`agnes_server::mcp`) over stdio, for agents run
//! in this workspace: the REST API with the token `agnes auth` stored, the local DuckDB
//! for `query`, and this workspace's snapshots.
//!
//! Standard output is the protocol: nothing here prints; logs go to standard error.

use crate::client::api::{Api, ApiFailure};
use crate::client::workspace::Workspace;
use agnes_server::mcp::{instructions, Backend, Failure, Rows, Tools};
use futures::future::BoxFuture;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(clap::Args)]
#[command(after_help = "Connect an MCP client by running this command in the workspace, e.g. for Claude Code \
    (.mcp.json in the workspace):\n  {\"mcpServers\": {\"agnes\": {\"command\": \"agnes\", \"args\": [\"mcp\"]}}}\n\
    and for Claude Desktop the same entry with \"env\": {\"AGNES_LOCAL_DIR\": \"/path/to/workspace\"}. The server \
    and token are the ones `agnes auth` stored. Remote agents can use the server's /mcp endpoint with a personal \
    access token as `Authorization: Bearer`.")]
pub struct McpArgs {}

/// The workspace and its server, as the CLI commands reach them.
struct Workspaced {
    api: Arc<Api>,
    workspace: Workspace,
    reader: Arc<agnes_engine::local::KeptReader>,
}

fn failure(e: ApiFailure) -> Failure {
    match e {
        ApiFailure::Http { status, detail, code } => Failure {
            status: Some(status.as_u16()),
            code: code.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase().replace(' ', "_")),
            detail,
        },
        ApiFailure::NotLoggedIn => Failure {
            status: None,
            code: "not_logged_in".into(),
            detail: json!({"message": "No token is configured", "hint": "run `agnes auth login`"}),
        },
        other => Failure {
            status: None,
            code: "server_unreachable".into(),
            detail: json!({"message": other.to_string(), "hint": "check the server: `agnes auth whoami`"}),
        },
    }
}

impl Backend for Workspaced {
    fn call(
        &self,
        method: &'static str,
        path: String,
        body: Option<Value>,
        _authorization: Option<String>,
    ) -> BoxFuture<'static, Result<Value, Failure>> {
        let api = self.api.clone();
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
            api.call(method, &path, body).await.map_err(failure)
        })
    }

    fn local_query(&self, sql: String, limit: usize) -> Option<BoxFuture<'static, Result<Rows, Failure>>> {
        let (db, reader) = (self.workspace.duckdb(), self.reader.clone());
        Some(Box::pin(async move {
            let refused = |code: &str, message: String, hint: Option<&str>| Failure {
                status: None,
                code: code.into(),
                detail: json!({"message": message, "hint": hint}),
            };
            if !db.is_file() {
                return Err(refused(
                    "not_pulled",
                    format!("no local DuckDB at {}", db.display()),
                    Some("run `agnes pull`, or query with remote: true"),
                ));
            }
            match tokio::task::spawn_blocking(move || reader.query(&sql, limit)).await {
                Ok(Ok(out)) => {
                    let rows = out.rows.iter().map(|r| r.iter().map(agnes_engine::values::to_json).collect()).collect();
                    Ok((out.columns, rows, out.truncated))
                }
                Ok(Err(e)) => Err(refused("invalid_sql", format!("Query error: {e}"), None)),
                Err(e) => Err(refused("internal", e.to_string(), None)),
            }
        }))
    }

    fn snapshots(&self) -> Option<Result<Value, Failure>> {
        Some(super::snapshot::all_meta(&self.workspace).map(|list| json!(list)).map_err(|e| Failure {
            status: None,
            code: "snapshots_unreadable".into(),
            detail: json!(e.to_string()),
        }))
    }
}

pub async fn run(_args: McpArgs) -> anyhow::Result<()> {
    let api = Api::from_config();
    let catalog = api.call(reqwest::Method::GET, "/api/v2/catalog", None).await.ok();
    let workspace = Workspace::current()?;
    let reader = Arc::new(agnes_engine::local::KeptReader::new(workspace.duckdb()));
    let backend = Workspaced { api: Arc::new(api), workspace, reader };
    let tools = Tools::new(Arc::new(backend), instructions(catalog.as_ref()));
    let service = tools.serve(rmcp::transport::stdio()).await?;
    service.waiting().await?;
    Ok(())
}
