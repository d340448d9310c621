//! `agnes mcp`: the analyst's rails as Model Context Protocol tools over stdio, for any
//! agent (Claude Desktop, Cursor, in-house agents), built on the official Rust SDK
//! (`rmcp`). Each tool is what the CLI command of the same name does, against this
//! workspace and its server, with the same access rule (the server decides what the
//! caller's token may read), and answers structured JSON. A refused call is a tool error
//! carrying the contract's code and hint, never a transport error.
//!
//! Standard output is the protocol: nothing here prints; logs go to standard error.

use crate::client::api::{urlencode, Api, ApiFailure};
use crate::client::workspace::Workspace;
use agnes_core::api::QueryRequest;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Rows `query` answers unless asked for more, and at most.
pub const DEFAULT_ROWS: usize = 1_000;
pub const MAX_ROWS: usize = 10_000;
/// Characters of row text `query` answers at most; past it the answer is cut and says so.
pub const MAX_CHARS: usize = 100_000;

#[derive(clap::Args)]
#[command(after_help = "Connect an MCP client by running this command in the workspace, e.g. for Claude Code \
    (.mcp.json in the workspace):\n  {\"mcpServers\": {\"agnes\": {\"command\": \"agnes\", \"args\": [\"mcp\"]}}}\n\
    and for Claude Desktop the same entry with \"env\": {\"AGNES_LOCAL_DIR\": \"/path/to/workspace\"}. The server \
    and token are the ones `agnes auth` stored.")]
pub struct McpArgs {}

#[derive(Clone)]
struct Agnes {
    api: std::sync::Arc<Api>,
    workspace: Workspace,
    instructions: String,
    tool_router: ToolRouter<Agnes>,
}

#[derive(Deserialize, JsonSchema)]
struct TableArg {
    /// The table's id or name, as the catalog lists it.
    table: String,
}

#[derive(Deserialize, JsonSchema)]
struct DescribeArgs {
    /// The table's id or name.
    table: String,
    /// Sample rows, 1 to 100 (default 5).
    n: Option<u32>,
}

#[derive(Deserialize, JsonSchema)]
struct QueryArgs {
    /// One SELECT (or WITH … SELECT). Locally: DuckDB SQL over the pulled tables and
    /// snapshots. With `remote`: on the server, over every table you may read there,
    /// remote BigQuery and PostgreSQL tables included, in their own dialect.
    sql: String,
    /// Rows to answer: default 1,000, at most 10,000.
    limit: Option<u32>,
    /// Run on the server instead of the local DuckDB.
    #[serde(default)]
    remote: bool,
}

#[derive(Deserialize, JsonSchema)]
struct EstimateArgs {
    /// The table's id.
    table: String,
    /// Columns to keep (all when absent).
    select: Option<Vec<String>>,
    /// One boolean expression in the table's SQL flavour (see `schema`).
    #[serde(rename = "where")]
    filter: Option<String>,
    limit: Option<u64>,
}

#[derive(Deserialize, JsonSchema)]
struct MetricArg {
    /// The metric's id, `category/name`.
    id: String,
}

/// A tool error with the contract's code, message and hint.
fn refused(code: &str, message: impl Into<String>, hint: Option<&str>) -> CallToolResult {
    let mut v = json!({"error": code, "message": message.into()});
    if let Some(h) = hint {
        v["hint"] = json!(h);
    }
    CallToolResult::structured_error(v)
}

/// An API failure as a tool error: the server's code and detail as it answered them.
fn failed(e: ApiFailure) -> CallToolResult {
    match e {
        ApiFailure::Http { status, detail, code } => {
            let code =
                code.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase().replace(' ', "_"));
            let hint =
                detail.get("hint").or_else(|| detail.get("suggestion")).and_then(Value::as_str).map(String::from);
            let mut v = json!({"error": code, "status": status.as_u16(), "detail": detail});
            if let Some(h) = hint {
                v["hint"] = json!(h);
            }
            CallToolResult::structured_error(v)
        }
        ApiFailure::NotLoggedIn => refused("not_logged_in", "No token is configured", Some("run `agnes auth login`")),
        other => refused("server_unreachable", other.to_string(), Some("check the server URL: `agnes auth whoami`")),
    }
}

/// Rows as objects, cut at `max_chars` of JSON text: the rows kept and whether any were cut.
fn capped(columns: &[String], rows: Vec<Vec<Value>>, max_chars: usize) -> (Vec<Value>, bool) {
    let mut kept = Vec::with_capacity(rows.len());
    let mut chars = 0usize;
    for row in rows {
        let object: Map<String, Value> = columns.iter().cloned().zip(row).collect();
        let object = Value::Object(object);
        chars += object.to_string().chars().count() + 1;
        if chars > max_chars {
            return (kept, true);
        }
        kept.push(object);
    }
    (kept, false)
}

#[tool_router]
impl Agnes {
    async fn get(&self, path: &str) -> CallToolResult {
        match self.api.call(reqwest::Method::GET, path, None).await {
            Ok(v) => CallToolResult::structured(v),
            Err(e) => failed(e),
        }
    }

    async fn post(&self, path: &str, body: Value) -> CallToolResult {
        match self.api.call(reqwest::Method::POST, path, Some(body)).await {
            Ok(v) => CallToolResult::structured(v),
            Err(e) => failed(e),
        }
    }

    /// Every table you may use: its query mode (local: pulled, query it here; remote:
    /// stays at its source, query with `remote: true` or snapshot a slice), size, rows,
    /// freshness and description. Start here before writing any SQL.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = false))]
    async fn catalog(&self) -> CallToolResult {
        self.get("/api/v2/catalog").await
    }

    /// A table's columns and types, its partitioning and clustering, its SQL flavour and
    /// dialect hints for filters. Read it before filtering: remote BigQuery tables take
    /// BigQuery SQL, and a filter on the partitioning column scans far less.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = false))]
    async fn schema(&self, Parameters(a): Parameters<TableArg>) -> CallToolResult {
        self.get(&format!("/api/v2/schema/{}", urlencode(&a.table))).await
    }

    /// A few rows of a table, to see what its values look like. Never `SELECT *` a big
    /// table to find out.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = false))]
    async fn describe(&self, Parameters(a): Parameters<DescribeArgs>) -> CallToolResult {
        let n = a.n.unwrap_or(5).clamp(1, 100);
        self.get(&format!("/api/v2/sample/{}?n={n}", urlencode(&a.table))).await
    }

    /// Run one SELECT and answer its rows as objects: at most 1,000 rows unless `limit`
    /// asks for up to 10,000, and at most 100,000 characters. A cut answer says
    /// `truncated: true`: aggregate in SQL, or take a snapshot, instead of paging through
    /// rows. Prefer the canonical metric definitions (`metrics_list`) for business numbers.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = true))]
    async fn query(&self, Parameters(a): Parameters<QueryArgs>) -> CallToolResult {
        let limit = a.limit.map_or(DEFAULT_ROWS, |l| l as usize);
        if limit == 0 || limit > MAX_ROWS {
            return refused(
                "invalid_limit",
                format!("limit must be 1 to {MAX_ROWS}"),
                Some("aggregate in SQL, or snapshot"),
            );
        }
        let (columns, rows, more) = if a.remote {
            let body = QueryRequest { sql: a.sql.clone(), limit: Some(limit as i64), source: None };
            let answer = match self.api.call(reqwest::Method::POST, "/api/query", Some(json!(body))).await {
                Ok(v) => v,
                Err(e) => return failed(e),
            };
            let Ok(answer) = serde_json::from_value::<agnes_core::api::QueryResponse>(answer) else {
                return refused("bad_answer", "the server's answer has no columns and rows", None);
            };
            (answer.columns, answer.rows, answer.truncated)
        } else {
            let db = self.workspace.duckdb();
            if !db.is_file() {
                return refused(
                    "not_pulled",
                    format!("no local DuckDB at {}", db.display()),
                    Some("call the `pull` tool, or run `agnes pull`"),
                );
            }
            let sql = a.sql.clone();
            let out = tokio::task::spawn_blocking(move || agnes_engine::local::query(&db, &sql, limit)).await;
            match out {
                Ok(Ok(out)) => {
                    let rows = out.rows.iter().map(|r| r.iter().map(agnes_engine::values::to_json).collect()).collect();
                    (out.columns, rows, out.truncated)
                }
                Ok(Err(e)) => return refused("invalid_sql", format!("Query error: {e}"), None),
                Err(e) => return refused("internal", e.to_string(), None),
            }
        };
        let (rows, cut) = capped(&columns, rows, MAX_CHARS);
        let truncated = more || cut;
        let mut answer = json!({"columns": columns, "rows": rows, "row_count": rows.len(), "truncated": truncated});
        if truncated {
            answer["hint"] = json!(if cut {
                "the answer passed 100,000 characters: select fewer columns, aggregate, or snapshot the rows"
            } else {
                "more rows exist: aggregate in SQL, raise limit (at most 10,000), or snapshot the rows"
            });
        }
        CallToolResult::structured(answer)
    }

    /// What a snapshot of a table would scan and return, and for BigQuery what it would
    /// cost, before taking it. Always estimate a remote table first.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = true))]
    async fn snapshot_estimate(&self, Parameters(a): Parameters<EstimateArgs>) -> CallToolResult {
        let body = json!({"table_id": a.table, "select": a.select, "where": a.filter, "limit": a.limit});
        self.post("/api/v2/scan/estimate", body).await
    }

    /// The snapshots in this workspace: their table, filter, rows and age.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = false))]
    async fn snapshot_list(&self) -> CallToolResult {
        match super::snapshot::all_meta(&self.workspace) {
            Ok(list) => CallToolResult::structured(json!({"snapshots": list})),
            Err(e) => refused("snapshots_unreadable", e.to_string(), None),
        }
    }

    /// The business metrics defined on tables you may read: use their canonical SQL
    /// rather than inventing your own.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = false))]
    async fn metrics_list(&self) -> CallToolResult {
        self.get("/api/metrics").await
    }

    /// One metric: its canonical SQL, grain, dimensions, filters and notes.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = false))]
    async fn metric_show(&self, Parameters(a): Parameters<MetricArg>) -> CallToolResult {
        let Some((category, name)) = a.id.split_once('/') else {
            return refused("invalid_metric_id", format!("{:?} is not category/name", a.id), Some("see metrics_list"));
        };
        self.get(&format!("/api/metrics/{}/{}", urlencode(category), urlencode(name))).await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Agnes {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("agnes", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(self.instructions.clone());
        info
    }
}

/// What the agent is told at the start: the rails, and which tables are local and which
/// remote (from the catalog, when the server answers).
async fn instructions(api: &Api) -> String {
    let mut text = String::from(
        "agnes gives you company tables you are granted. Discover first: `catalog`, then `schema` and `describe` \
         of the tables you need; never SELECT * a big table blindly. Local tables are in this workspace's DuckDB: \
         `query` them. Remote tables stay at their source: `query` them with remote: true in their SQL flavour, \
         or `snapshot_estimate` before taking a slice. Use the canonical metric definitions (`metrics_list`) for \
         business numbers.",
    );
    if let Ok(catalog) = api.call(reqwest::Method::GET, "/api/v2/catalog", None).await {
        let tables = catalog["tables"].as_array().cloned().unwrap_or_default();
        let names = |remote: bool| -> Vec<String> {
            tables
                .iter()
                .filter(|t| (t["query_mode"] == "remote") == remote)
                .filter_map(|t| t["id"].as_str().map(String::from))
                .take(50)
                .collect()
        };
        let (local, remote) = (names(false), names(true));
        if !local.is_empty() {
            text.push_str(&format!("\nLocal tables: {}.", local.join(", ")));
        }
        if !remote.is_empty() {
            text.push_str(&format!("\nRemote tables: {}.", remote.join(", ")));
        }
    }
    text
}

pub async fn run(_args: McpArgs) -> anyhow::Result<()> {
    let api = Api::from_config();
    let agnes = Agnes {
        instructions: instructions(&api).await,
        api: std::sync::Arc::new(api),
        workspace: Workspace::current()?,
        tool_router: Agnes::tool_router(),
    };
    let service = agnes.serve(rmcp::transport::stdio()).await?;
    service.waiting().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_cut_at_the_character_cap_and_say_so() {
        let columns = vec!["text".to_string()];
        let rows: Vec<Vec<Value>> = (0..100).map(|_| vec![json!("x".repeat(2_000))]).collect();
        let (kept, cut) = capped(&columns, rows, MAX_CHARS);
        assert!(cut);
        assert_eq!(kept.len(), 49, "49 rows of ~2,011 characters fit in 100,000");
        let (kept, cut) = capped(&columns, vec![vec![json!("short")]], MAX_CHARS);
        assert_eq!((kept.len(), cut), (1, false));
    }
}
