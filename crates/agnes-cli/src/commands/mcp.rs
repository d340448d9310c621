//! `agnes mcp`: the analyst's MCP tools (`agnes_server::mcp`) over stdio, for agents run
//! in this workspace: the REST API with the token `agnes auth` stored, the local DuckDB
//! for `query`, and this workspace's snapshots and pulls (the CLI's own code, as
//! `agnes snapshot` and `agnes pull` run it).
//!
//! Standard output is the protocol: nothing here prints; logs go to standard error.

use crate::client::api::{Api, ApiFailure};
use crate::client::workspace::Workspace;
use crate::exit::Coded;
use agnes_server::mcp::{Backend, Carrier, Failure, Rows, Tools, WorkspaceOp};
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
    /// Queries read the local DuckDB together; a pull or a snapshot writes it alone.
    writing: Arc<tokio::sync::RwLock<()>>,
}

/// A failed workspace command as a tool error: an API refusal as the server gave it,
/// anything else with a code after the CLI's exit code, and its hint.
fn local_failure(e: anyhow::Error) -> Failure {
    let (exit, inner) = Coded::of(&e);
    if let Some(api) = inner.downcast_ref::<ApiFailure>() {
        return failure(api.clone());
    }
    let code = match exit {
        2 => "invalid_argument",
        6 => "already_exists",
        _ => "failed",
    };
    Failure {
        status: None,
        code: code.into(),
        detail: json!({"message": format!("{e:#}"), "hint": crate::exit::hint(inner)}),
    }
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
        _from: Option<Carrier>,
    ) -> BoxFuture<'static, Result<Value, Failure>> {
        let api = self.api.clone();
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
            api.call(method, &path, body).await.map_err(failure)
        })
    }

    fn local_query(&self, sql: String, limit: usize) -> Option<BoxFuture<'static, Result<Rows, Failure>>> {
        let (db, reader, writing) = (self.workspace.duckdb(), self.reader.clone(), self.writing.clone());
        Some(Box::pin(async move {
            let _reading = writing.read_owned().await;
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

    fn has_workspace(&self) -> bool {
        true
    }

    fn workspace(&self, op: WorkspaceOp) -> BoxFuture<'static, Result<Value, Failure>> {
        let (api, ws, reader, writing) =
            (self.api.clone(), self.workspace.clone(), self.reader.clone(), self.writing.clone());
        Box::pin(async move {
            if let WorkspaceOp::Snapshots = op {
                let list = super::snapshot::all_meta(&ws).map_err(local_failure)?;
                return Ok(json!({"snapshots": list}));
            }
            let _writing = writing.write_owned().await;
            reader.close();
            match op {
                WorkspaceOp::Snapshots => unreachable!("answered above"),
                WorkspaceOp::SnapshotCreate(args) => {
                    let meta = super::snapshot::take(&ws, &api, args.into(), |_| {}).await.map_err(local_failure)?;
                    Ok(json!({"snapshot": meta}))
                }
                WorkspaceOp::SnapshotDrop(name) => {
                    let dropped = name.clone();
                    tokio::task::spawn_blocking(move || super::snapshot::drop_named(&ws, &name))
                        .await
                        .map_err(|e| local_failure(e.into()))?
                        .map_err(local_failure)?;
                    Ok(json!({"dropped": dropped}))
                }
                WorkspaceOp::Pull => {
                    let pulled = super::pull::pull(&api, &ws, false, false).await.map_err(local_failure)?;
                    match pulled.verdict() {
                        Ok(()) => Ok(pulled.summary()),
                        Err(e) => Err(Failure {
                            status: None,
                            code: "pull_failed".into(),
                            detail: json!({"message": format!("{e:#}"), "summary": pulled.summary()}),
                        }),
                    }
                }
            }
        })
    }
}

pub async fn run(_args: McpArgs) -> anyhow::Result<()> {
    let workspace = Workspace::current()?;
    let reader = Arc::new(agnes_engine::local::KeptReader::new(workspace.duckdb()));
    let backend = Workspaced { api: Arc::new(Api::from_config()), workspace, reader, writing: Default::default() };
    let tools = Tools::new(Arc::new(backend), None);
    let service = tools.serve(rmcp::transport::stdio()).await?;
    service.waiting().await?;
    Ok(())
}
