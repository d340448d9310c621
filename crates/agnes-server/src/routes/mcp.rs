//! `/mcp`: the MCP tools over streamable HTTP, for remote agents (Claude Desktop,
//! ChatGPT connectors, in-house agents). The route sits behind the same authentication as
//! every other (a PAT or session as `Authorization: Bearer`); each tool call is answered
//! by this server's own REST routes, called in-process with the MCP request's
//! `Authorization` and client address, so every answer is filtered by the caller's grants
//! and audited exactly as the REST API's.

use super::inprocess::InProcess;
use crate::auth::access::Caller;
use crate::auth::authenticate::ClientInfo;
use crate::mcp::{Backend, Carrier, Failure, Rows, Tools, WorkspaceOp};
use crate::routes::audit::Audit;
use crate::state::AppState;
use futures::future::BoxFuture;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use std::sync::Arc;

/// The server's routes, called in-process.
struct Routes {
    state: AppState,
    routes: InProcess,
}

impl Backend for Routes {
    fn call(
        &self,
        method: &'static str,
        path: String,
        body: Option<Value>,
        from: Option<Carrier>,
    ) -> BoxFuture<'static, Result<Value, Failure>> {
        Box::pin(self.routes.call(method, &path, body, from.as_ref()))
    }

    fn local_query(&self, _sql: String, _limit: usize) -> Option<BoxFuture<'static, Result<Rows, Failure>>> {
        None
    }

    fn audit(&self, tool: &str, arguments: Option<Value>, outcome: &str, from: Option<&Carrier>) {
        let Some(from) = from else { return };
        // The authentication in front of /mcp put these on every request it let through.
        let (Some(caller), Some(client)) = (from.extensions.get::<Caller>(), from.extensions.get::<ClientInfo>())
        else {
            return;
        };
        let params = serde_json::json!({"arguments": arguments});
        Audit::of(&self.state, caller, client).record_soon("mcp.tool_call", Some(tool), Some(params), outcome);
    }

    fn has_workspace(&self) -> bool {
        false
    }

    fn workspace(&self, _op: WorkspaceOp) -> BoxFuture<'static, Result<Value, Failure>> {
        // Never offered: `Tools::new` leaves the workspace tools out without a workspace.
        Box::pin(std::future::ready(Err(Failure {
            status: None,
            code: "no_workspace".into(),
            detail: Value::String("this server has no analyst workspace; run `agnes mcp` in one".into()),
        })))
    }
}

/// The `/mcp` service: one tool set per session, over this server's routes.
pub fn service(state: AppState) -> StreamableHttpService<Tools, LocalSessionManager> {
    let backend: Arc<dyn Backend> = Arc::new(Routes { routes: InProcess::new(state.clone()), state });
    let note = "Over HTTP every query runs on the server (`remote` makes no difference); snapshots and pulls \
                are taken in an analyst's workspace with `agnes mcp` or the agnes CLI."
        .to_string();
    // Hosts are the operator's to restrict (a proxy in front); the bearer token is the gate.
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(Tools::new(backend.clone(), Some(note.clone()))),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}
