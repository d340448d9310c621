//! This server's REST routes called in-process, as the caller of an outer request: the MCP
//! tools and the web UI answer from the same routes as the API, so every answer passes the
//! same authentication, the one access rule, quotas and audit, with nothing re-implemented.

use crate::mcp::Failure;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::OnceLock;
use tower::ServiceExt;

/// The headers that say who is asking and from where: what authentication, rate limits
/// and the audit log read.
const FORWARDED: [&str; 5] = ["authorization", "cookie", "user-agent", "x-forwarded-for", "x-request-id"];

pub struct InProcess {
    state: AppState,
    /// Built on first use: the router holds the routes that hold this.
    router: OnceLock<Router>,
}

impl InProcess {
    pub fn new(state: AppState) -> InProcess {
        InProcess { state, router: OnceLock::new() }
    }

    /// `method path` with `body` as JSON, as the caller of `from`. The answer's JSON, or
    /// its status, the contract's code and detail.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        from: Option<&http::request::Parts>,
    ) -> impl std::future::Future<Output = Result<Value, Failure>> + Send + 'static {
        let raw = self.call_raw(method, path, body, from);
        async move { raw.await.map(|bytes| as_json(&bytes)) }
    }

    /// [`InProcess::call`] with a body of another type (a multipart upload).
    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        from: Option<&http::request::Parts>,
    ) -> impl std::future::Future<Output = Result<Value, Failure>> + Send + 'static {
        let raw = self.send(method, path, Some((content_type.to_string(), Body::from(body))), from);
        async move { raw.await.map(|bytes| as_json(&bytes)) }
    }

    /// [`InProcess::call`]'s answer as the bytes the route wrote, for a caller that reads
    /// them into the contract's own types.
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        from: Option<&http::request::Parts>,
    ) -> impl std::future::Future<Output = Result<axum::body::Bytes, Failure>> + Send + 'static {
        let body = body.map(|b| ("application/json".to_string(), Body::from(b.to_string())));
        self.send(method, path, body, from)
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(String, Body)>,
        from: Option<&http::request::Parts>,
    ) -> impl std::future::Future<Output = Result<axum::body::Bytes, Failure>> + Send + 'static {
        let router = self.router.get_or_init(|| super::router(self.state.clone())).clone();
        let mut request = http::Request::builder().method(method).uri(path);
        if let Some(from) = from {
            for name in FORWARDED {
                if let Some(v) = from.headers.get(name) {
                    request = request.header(name, v);
                }
            }
            if let Some(peer) = from.extensions.get::<ConnectInfo<SocketAddr>>() {
                request = request.extension(*peer);
            }
        }
        let request = match body {
            Some((content_type, b)) => request.header(http::header::CONTENT_TYPE, content_type).body(b),
            None => request.body(Body::empty()),
        };
        async move {
            let internal = |e: String| Failure { status: Some(500), code: "internal".into(), detail: Value::String(e) };
            let request = request.map_err(|e| internal(e.to_string()))?;
            let response = router.oneshot(request).await.map_err(|e| internal(e.to_string()))?;
            let status = response.status();
            let bytes =
                axum::body::to_bytes(response.into_body(), usize::MAX).await.map_err(|e| internal(e.to_string()))?;
            if status.is_success() {
                return Ok(bytes);
            }
            let value = as_json(&bytes);
            let code = value.get("code").and_then(Value::as_str).unwrap_or("error").to_string();
            Err(Failure { status: Some(status.as_u16()), code, detail: value.get("detail").cloned().unwrap_or(value) })
        }
    }
}

/// An answer's JSON; a body that is not JSON as a string, an empty one as null.
fn as_json(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into()))
}
