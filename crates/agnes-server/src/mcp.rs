//! The analyst's rails as Model Context Protocol tools, on the official Rust SDK (`rmcp`),
//! shared by `agnes mcp` (stdio, over the analyst's workspace) and the server's `/mcp`
//! (streamable HTTP). Every tool answer comes from the REST API as the caller (the one
//! access rule, audited like any request) through a [`Backend`], or from the caller's
//! local DuckDB where there is one; each answers structured JSON, and a refused call is a
//! tool error carrying the contract's code, status and hint, never a transport error.

use futures::future::BoxFuture;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, DiscoverResult, Implementation, InitializeRequestParams,
    InitializeResult, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Rows `query` answers unless asked for more, and at most.
pub const DEFAULT_ROWS: usize = 1_000;
pub const MAX_ROWS: usize = 10_000;
/// Characters of row text `query` answers at most; past it the answer is cut and says so.
pub const MAX_CHARS: usize = 100_000;

/// An error answer of the API: its status, the contract's code, and its detail.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: Option<u16>,
    pub code: String,
    pub detail: Value,
}

/// A query's answer: columns, rows, and whether more rows existed.
pub type Rows = (Vec<String>, Vec<Vec<Value>>, bool);

/// The HTTP request that carried an MCP call.
pub type Carrier = http::request::Parts;

/// What an agent asks of the analyst's workspace; only `agnes mcp` has one.
pub enum WorkspaceOp {
    Snapshots,
    SnapshotCreate(SnapshotArgs),
    SnapshotDrop(String),
    Pull,
}

/// The tools that exist only where there is a workspace.
const WORKSPACE_TOOLS: [&str; 4] = ["snapshot_list", "snapshot_create", "snapshot_drop", "pull"];

/// Where the tools get their answers.
pub trait Backend: Send + Sync + 'static {
    /// One REST call as the caller. `from` is the HTTP request that carried the MCP call
    /// (the server: its `Authorization` is the caller), `None` over stdio (the CLI's
    /// stored token).
    fn call(
        &self,
        method: &'static str,
        path: String,
        body: Option<Value>,
        from: Option<Carrier>,
    ) -> BoxFuture<'static, Result<Value, Failure>>;
    /// SQL on the caller's local DuckDB; `None` where there is none (the server).
    fn local_query(&self, sql: String, limit: usize) -> Option<BoxFuture<'static, Result<Rows, Failure>>>;
    /// Whether there is a workspace: without one the workspace tools are not offered.
    fn has_workspace(&self) -> bool;
    /// Work on the caller's workspace.
    fn workspace(&self, op: WorkspaceOp) -> BoxFuture<'static, Result<Value, Failure>>;
    /// Record that `tool` was called with `arguments` and how it ended (`success`,
    /// `refused`, `error`). Only the server keeps an audit log; over stdio every call that
    /// reaches the server is audited there by the route it calls.
    fn audit(&self, _tool: &str, _arguments: Option<Value>, _outcome: &str, _from: Option<&Carrier>) {}
}

#[derive(Clone)]
pub struct Tools {
    backend: Arc<dyn Backend>,
    /// Said after the rails and the caller's tables in the server's instructions.
    note: Option<String>,
    tool_router: ToolRouter<Tools>,
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

/// A slice of a table: what a snapshot would hold.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SliceArgs {
    /// The table's id or name.
    pub table: String,
    /// Columns to keep (all when absent).
    pub select: Option<Vec<String>>,
    /// One boolean expression in the table's SQL flavour (see `schema`).
    #[serde(rename = "where")]
    pub filter: Option<String>,
    /// Rows at most.
    pub limit: Option<u64>,
    /// Order before the limit, e.g. ["day DESC", "carrier"].
    pub order_by: Option<Vec<String>>,
}

impl SliceArgs {
    /// The `/api/v2/scan` body of this slice.
    pub fn scan_request(&self, alias: Option<String>) -> agnes_core::api::ScanRequest {
        agnes_core::api::ScanRequest {
            table_id: self.table.clone(),
            select: self.select.clone(),
            filter: self.filter.clone(),
            limit: self.limit.map(|n| n.min(i64::MAX as u64) as i64),
            order_by: self.order_by.clone(),
            alias,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotArgs {
    #[serde(flatten)]
    pub slice: SliceArgs,
    /// The snapshot's name, letters, digits and _ (default: the table's id). An existing
    /// snapshot is never replaced: drop it first.
    #[serde(rename = "as")]
    pub name: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct NameArg {
    /// The snapshot's name, as `snapshot_list` gives it.
    name: String,
}

#[derive(Deserialize, JsonSchema)]
struct ExplainArgs {
    /// A table's id or name: whether you may read it, and through which grant.
    table: Option<String>,
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

/// An API failure as a tool error: the server's code, status and detail as it answered.
fn failed(f: Failure) -> CallToolResult {
    let hint = f.detail.get("hint").or_else(|| f.detail.get("suggestion")).and_then(Value::as_str).map(String::from);
    let mut v = json!({"error": f.code, "detail": f.detail});
    if let Some(s) = f.status {
        v["status"] = json!(s);
    }
    if let Some(h) = hint {
        v["hint"] = json!(h);
    }
    CallToolResult::structured_error(v)
}

/// The HTTP request carrying this call, if it came over HTTP.
fn carrier(ctx: &RequestContext<RoleServer>) -> Option<Carrier> {
    ctx.extensions.get::<Carrier>().cloned()
}

/// A tool's answer from the backend.
fn answered(result: Result<Value, Failure>) -> CallToolResult {
    match result {
        Ok(v) => CallToolResult::structured(v),
        Err(e) => failed(e),
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
impl Tools {
    /// A tool set over `backend`; `note` is added to the instructions. The workspace
    /// tools are offered only where the backend has a workspace.
    pub fn new(backend: Arc<dyn Backend>, note: Option<String>) -> Tools {
        let mut tool_router = Tools::tool_router();
        if !backend.has_workspace() {
            for name in WORKSPACE_TOOLS {
                tool_router.remove_route(name);
            }
        }
        Tools { backend, note, tool_router }
    }

    async fn call(
        &self,
        method: &'static str,
        path: String,
        body: Option<Value>,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        answered(self.backend.call(method, path, body, carrier(ctx)).await)
    }

    /// Every table you may use: its query mode (local: pulled, query it here; remote:
    /// stays at its source, query with `remote: true` or snapshot a slice), size, rows,
    /// freshness and description. Start here before writing any SQL.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = false))]
    async fn catalog(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        self.call("GET", "/api/v2/catalog".into(), None, &ctx).await
    }

    /// A table's columns and types, its partitioning and clustering, its SQL flavour and
    /// dialect hints for filters. Read it before filtering: remote BigQuery tables take
    /// BigQuery SQL, and a filter on the partitioning column scans far less.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = false))]
    async fn schema(&self, Parameters(a): Parameters<TableArg>, ctx: RequestContext<RoleServer>) -> CallToolResult {
        self.call("GET", format!("/api/v2/schema/{}", urlencode(&a.table)), None, &ctx).await
    }

    /// A few rows of a table, to see what its values look like. Never `SELECT *` a big
    /// table to find out.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = false))]
    async fn describe(
        &self,
        Parameters(a): Parameters<DescribeArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let n = a.n.unwrap_or(5).clamp(1, 100);
        self.call("GET", format!("/api/v2/sample/{}?n={n}", urlencode(&a.table)), None, &ctx).await
    }

    /// Run one SELECT and answer its rows as objects: at most 1,000 rows unless `limit`
    /// asks for up to 10,000, and at most 100,000 characters. A cut answer says
    /// `truncated: true`: aggregate in SQL, or take a snapshot, instead of paging through
    /// rows. Prefer the canonical metric definitions (`metrics_list`) for business numbers.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = true))]
    async fn query(&self, Parameters(a): Parameters<QueryArgs>, ctx: RequestContext<RoleServer>) -> CallToolResult {
        let limit = a.limit.map_or(DEFAULT_ROWS, |l| l as usize);
        if limit == 0 || limit > MAX_ROWS {
            return refused(
                "invalid_limit",
                format!("limit must be 1 to {MAX_ROWS}"),
                Some("aggregate in SQL, or snapshot"),
            );
        }
        let local = if a.remote { None } else { self.backend.local_query(a.sql.clone(), limit) };
        let answer = match local {
            Some(rows) => rows.await,
            None => {
                let body = json!({"sql": a.sql, "limit": limit});
                match self.backend.call("POST", "/api/query".into(), Some(body), carrier(&ctx)).await {
                    Ok(v) => serde_json::from_value::<agnes_core::api::QueryResponse>(v)
                        .map(|a| (a.columns, a.rows, a.truncated))
                        .map_err(|e| Failure { status: None, code: "bad_answer".into(), detail: json!(e.to_string()) }),
                    Err(e) => Err(e),
                }
            }
        };
        let (columns, rows, more) = match answer {
            Ok(rows) => rows,
            Err(e) => return failed(e),
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
    async fn snapshot_estimate(
        &self,
        Parameters(a): Parameters<SliceArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let body = serde_json::to_value(a.scan_request(None)).unwrap_or_default();
        self.call("POST", "/api/v2/scan/estimate".into(), Some(body), &ctx).await
    }

    /// The snapshots in this workspace: their table, filter, rows and age.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = false))]
    async fn snapshot_list(&self) -> CallToolResult {
        answered(self.backend.workspace(WorkspaceOp::Snapshots).await)
    }

    /// Fetch a filtered slice of a table into this workspace as a snapshot: a local table
    /// named `as` that `query` reads. Use it for a remote table or one too big to pull, once
    /// `snapshot_estimate` showed what it scans and costs; keep the slice narrow (the
    /// columns you need, a `where` on the partitioning column). It is estimated again
    /// first and refused past the server's caps.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = true
    ))]
    async fn snapshot_create(&self, Parameters(a): Parameters<SnapshotArgs>) -> CallToolResult {
        answered(self.backend.workspace(WorkspaceOp::SnapshotCreate(a)).await)
    }

    /// Delete a snapshot from this workspace: its file, metadata and table.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn snapshot_drop(&self, Parameters(a): Parameters<NameArg>) -> CallToolResult {
        answered(self.backend.workspace(WorkspaceOp::SnapshotDrop(a.name)).await)
    }

    /// Bring this workspace's local tables up to date with the server: changed tables are
    /// downloaded, and tables you may no longer read are removed. Snapshots are kept.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn pull(&self) -> CallToolResult {
        answered(self.backend.workspace(WorkspaceOp::Pull).await)
    }

    /// What you may read and why: your groups, and every table and source granted to
    /// them with the grant that gives it. With `table`: whether you may read that table.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = false))]
    async fn access_explain(
        &self,
        Parameters(a): Parameters<ExplainArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let access = match self.backend.call("GET", "/api/me/effective-access".into(), None, carrier(&ctx)).await {
            Ok(v) => v,
            Err(e) => return failed(e),
        };
        let Some(table) = a.table else { return CallToolResult::structured(access) };
        let path = format!("/api/data/{}/check-access", urlencode(&table));
        let check = self.backend.call("GET", path, None, carrier(&ctx)).await;
        let via: Vec<Value> = access["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["resource_type"] == "table" && r["resource_id"] == table.as_str())
            .flat_map(|r| r["via"].as_array().cloned().unwrap_or_default())
            .collect();
        let mut answer = json!({"table": table, "readable": check.is_ok(), "via": via});
        if let Some(reason) = access["admin_reason"].as_str() {
            answer["admin_reason"] = json!(reason);
        }
        if let Err(e) = check {
            answer["status"] = json!(e.status);
            answer["reason"] = e.detail;
        }
        CallToolResult::structured(answer)
    }

    /// The business metrics defined on tables you may read: use their canonical SQL
    /// rather than inventing your own.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = false))]
    async fn metrics_list(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        self.call("GET", "/api/metrics".into(), None, &ctx).await
    }

    /// One metric: its canonical SQL, grain, dimensions, filters and notes.
    #[tool(annotations(read_only_hint = true, destructive_hint = false, open_world_hint = false))]
    async fn metric_show(
        &self,
        Parameters(a): Parameters<MetricArg>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let Some((category, name)) = a.id.split_once('/') else {
            return refused("invalid_metric_id", format!("{:?} is not category/name", a.id), Some("see metrics_list"));
        };
        self.call("GET", format!("/api/metrics/{}/{}", urlencode(category), urlencode(name)), None, &ctx).await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (tool, arguments, from) = (request.name.to_string(), request.arguments.clone(), carrier(&ctx));
        let response = self.tool_router.call(ToolCallContext::new(self, request, ctx)).await;
        let outcome = match &response {
            Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => "refused",
            Ok(_) => "success",
            Err(_) => "error",
        };
        self.backend.audit(&tool, arguments.map(Value::Object), outcome, from.as_ref());
        response
    }

    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("agnes", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(instructions(None, self.note.as_deref()));
        info
    }

    /// The instructions name the caller's own tables, so they are made per connection,
    /// from the catalog as the caller (over HTTP, the token of the `initialize` request).
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        ctx.peer.set_peer_info(request.clone());
        let mut result = self.negotiate_initialize(&request)?;
        result.instructions = Some(self.instructions_for(&ctx).await);
        Ok(result)
    }

    /// The same for clients that discover instead of initializing (MCP 2026-07-28).
    async fn discover(&self, ctx: RequestContext<RoleServer>) -> Result<DiscoverResult, ErrorData> {
        let mut info = self.get_info();
        info.instructions = Some(self.instructions_for(&ctx).await);
        Ok(DiscoverResult::from_server_info(self.supported_protocol_versions().into_owned(), info))
    }
}

impl Tools {
    async fn instructions_for(&self, ctx: &RequestContext<RoleServer>) -> String {
        let catalog = self.backend.call("GET", "/api/v2/catalog".into(), None, carrier(ctx)).await.ok();
        instructions(catalog.as_ref(), self.note.as_deref())
    }
}

/// A path segment, percent-encoded.
fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// What the agent is told at the start: the rails, from `catalog` (the caller's
/// `/api/v2/catalog` answer, when known) which tables are local and which remote, and `note`.
fn instructions(catalog: Option<&Value>, note: Option<&str>) -> String {
    let mut text = String::from(
        "agnes gives you company tables you are granted. Discover first: `catalog`, then `schema` and `describe` \
         of the tables you need; never SELECT * a big table blindly. Local tables are in this workspace's DuckDB: \
         `query` them. Remote tables stay at their source: `query` them with remote: true in their SQL flavour, \
         or `snapshot_estimate` before taking a slice with `snapshot_create`. Use the canonical metric definitions (`metrics_list`) for \
         business numbers.",
    );
    let tables = catalog.and_then(|c| c["tables"].as_array()).cloned().unwrap_or_default();
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
    if let Some(note) = note {
        text.push('\n');
        text.push_str(note);
    }
    text
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
