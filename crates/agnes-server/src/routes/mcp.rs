//! `/mcp`: the MCP tools over streamable HTTP, for remote agents (Claude Desktop,
//! ChatGPT connectors, in-house agents). The route sits behind the same authentication as
//! every other (a PAT or session as `Authorization: Bearer`); each tool call is answered
//! by this server's own REST routes, called in-process with the MCP request's
//! `Authorization` and client address, so every answer is filtered by the caller's grants
//! and audited exactly as the REST API's.

use crate::auth::access::Caller;
use crate::auth::authenticate::ClientInfo;
use crate::mcp::{Backend, Carrier, Failure, Rows, Tools, WorkspaceOp};
use crate::routes::audit::Audit;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use futures::future::BoxFuture;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

/// The server's routes, called in-process.
struct Routes {
    state: AppState,
    router: OnceLock<Router>,
}

impl Backend for Routes {
    fn call(
        &self,
        method: &'static str,
        path: String,
        body: Option<Value>,
        from: Option<Carrier>,
    ) -> BoxFuture<'static, Result<Value, Failure>> {
        let router = self.router.get_or_init(|| super::router(self.state.clone())).clone();
        Box::pin(async move {
            let mut request = http::Request::builder().method(method).uri(&path);
            // Who is asking, from where: what authentication and the audit log read.
            if let Some(from) = from {
                for name in [http::header::AUTHORIZATION, http::header::USER_AGENT] {
                    if let Some(v) = from.headers.get(&name) {
                        request = request.header(name, v);
                    }
                }
                for name in ["x-forwarded-for", "x-request-id"] {
                    if let Some(v) = from.headers.get(name) {
                        request = request.header(name, v);
                    }
                }
                if let Some(peer) = from.extensions.get::<ConnectInfo<SocketAddr>>() {
                    request = request.extension(*peer);
                }
            }
            let request = match body {
                Some(b) => {
                    request.header(http::header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string()))
                }
                None => request.body(Body::empty()),
            };
            let internal = |e: String| Failure { status: Some(500), code: "internal".into(), detail: Value::String(e) };
            let request = request.map_err(|e| internal(e.to_string()))?;
            let response = router.oneshot(request).await.map_err(|e| internal(e.to_string()))?;
            let status = response.status();
            let bytes =
                axum::body::to_bytes(response.into_body(), usize::MAX).await.map_err(|e| internal(e.to_string()))?;
            let value: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
            if status.is_success() {
                return Ok(value);
            }
            let code = value.get("code").and_then(Value::as_str).unwrap_or("error").to_string();
            Err(Failure { status: Some(status.as_u16()), code, detail: value.get("detail").cloned().unwrap_or(value) })
        })
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
    let backend: Arc<dyn Backend> = Arc::new(Routes { state, router: OnceLock::new() });
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
