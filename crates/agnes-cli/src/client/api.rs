//! The CLI's HTTP client: one place for the server URL, the token, the user agent, the
//! minimum-version check and the rendering of typed errors.

use super::config;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A request that did not succeed.
#[derive(Debug, Clone)]
pub enum ApiFailure {
    /// The server could not be reached or did not answer properly.
    Transport { server: String, message: String },
    /// The server answered with an error status.
    /// `code` is the contract's error code (`access_denied`, `remote_scan_too_large`…).
    Http { status: StatusCode, detail: Value, code: Option<String> },
    /// The server needs a newer CLI.
    TooOld { required: String },
    /// No token is configured.
    NotLoggedIn,
    /// The server answered 2xx with a body not in the contract's shape (another version?).
    Shape { path: String, message: String },
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiFailure::Transport { server, message } => {
                write!(f, "cannot reach the agnes server at {server}: {message}")
            }
            ApiFailure::Http { status, detail, .. } => f.write_str(&render_error(*status, detail)),
            ApiFailure::TooOld { required } => write!(
                f,
                "this agnes ({}) is incompatible with the server, which needs at least {required}",
                agnes_core::VERSION
            ),
            ApiFailure::NotLoggedIn => f.write_str("not logged in"),
            ApiFailure::Shape { path, message } => {
                write!(f, "the server's answer to {path} is not in the shape this agnes reads: {message}")
            }
        }
    }
}

impl std::error::Error for ApiFailure {}

impl ApiFailure {
    pub fn hint(&self) -> Option<String> {
        match self {
            ApiFailure::Transport { .. } => Some(
                "is the server running? set its address with AGNES_SERVER or `agnes auth login --server URL`".into(),
            ),
            ApiFailure::NotLoggedIn => Some("run `agnes auth login`, or set AGNES_TOKEN".into()),
            ApiFailure::TooOld { .. } | ApiFailure::Shape { .. } => {
                Some("install the agnes version the server runs".into())
            }
            ApiFailure::Http { status, .. } if *status == StatusCode::UNAUTHORIZED => {
                Some("your token was refused: run `agnes auth login` or `agnes auth import-token`".into())
            }
            ApiFailure::Http { status, .. } if *status == StatusCode::FORBIDDEN => {
                Some("ask an admin for access".into())
            }
            _ => None,
        }
    }
}

/// An answer from `path` read as the wire type `T`.
pub fn read_as<T: DeserializeOwned>(path: &str, answer: Value) -> Result<T, ApiFailure> {
    serde_json::from_value(answer).map_err(|e| ApiFailure::Shape { path: path.to_string(), message: e.to_string() })
}

/// Percent-encode a path segment or query value: everything but RFC 3986's unreserved
/// characters.
pub fn urlencode(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A multipart/form-data body holding one file field: `(content type, body)`. The
/// filename must be plain (no quotes or line breaks).
pub fn multipart_file(field: &str, filename: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let envelope = MultipartEnvelope::new(field, filename);
    let body = [envelope.head.as_bytes(), bytes, envelope.tail.as_bytes()].concat();
    (envelope.content_type, body)
}

/// [`multipart_file`] whose content streams from an open file, so an upload never holds
/// the whole file in memory.
pub fn multipart_stream(field: &str, filename: &str, file: tokio::fs::File) -> (String, reqwest::Body) {
    use futures::StreamExt;
    let MultipartEnvelope { content_type, head, tail } = MultipartEnvelope::new(field, filename);
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(head)) })
        .chain(tokio_util::io::ReaderStream::new(file))
        .chain(futures::stream::once(async move { Ok(bytes::Bytes::from(tail)) }));
    (content_type, reqwest::Body::wrap_stream(stream))
}

/// What surrounds one file field of a multipart body.
struct MultipartEnvelope {
    content_type: String,
    head: String,
    tail: String,
}

impl MultipartEnvelope {
    fn new(field: &str, filename: &str) -> Self {
        let boundary = format!("agnes-{}", rand::random::<u64>());
        MultipartEnvelope {
            content_type: format!("multipart/form-data; boundary={boundary}"),
            head: format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"),
            tail: format!("\r\n--{boundary}--\r\n"),
        }
    }
}

/// The original's error rendering (spec §4.3): a typed object prints its kind and fields
/// in a fixed order; a string prints as `HTTP <status>: <detail>`.
pub fn render_error(status: StatusCode, detail: &Value) -> String {
    const ORDER: &[&str] = &[
        "kind",
        "reason",
        "path",
        "registered_as",
        "billing_project",
        "data_project",
        "scan_bytes",
        "limit_bytes",
        "tables",
        "current",
        "limit",
        "retry_after_seconds",
    ];
    match detail {
        Value::String(s) => format!("HTTP {}: {s}", status.as_u16()),
        Value::Object(map) if map.contains_key("kind") || map.contains_key("reason") || map.contains_key("error") => {
            let kind = map
                .get("kind")
                .or_else(|| map.get("reason"))
                .or_else(|| map.get("error"))
                .and_then(Value::as_str)
                .unwrap_or("error");
            let mut out = format!("Error: {kind} (HTTP {})", status.as_u16());
            let mut keys: Vec<&String> = map.keys().filter(|k| !matches!(k.as_str(), "hint" | "suggestion")).collect();
            keys.sort_by_key(|k| (ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()), k.to_string()));
            for k in keys {
                let v = &map[k];
                out.push_str(&format!("\n  {k}: {}", v.as_str().map(String::from).unwrap_or_else(|| v.to_string())));
            }
            for k in ["hint", "suggestion"] {
                if let Some(v) = map.get(k).and_then(Value::as_str) {
                    out.push_str(&format!("\n  {k}: {v}"));
                }
            }
            out
        }
        other => {
            let text = other.to_string();
            format!("HTTP {}: {}", status.as_u16(), text.chars().take(500).collect::<String>())
        }
    }
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    pub server: String,
    token: Option<String>,
}

impl Api {
    /// The configured server and token (see [`config`]).
    pub fn from_config() -> Api {
        Api::new(config::server_url(), config::token())
    }

    pub fn new(server: String, token: Option<String>) -> Api {
        let http = reqwest::Client::builder()
            .user_agent(format!("agnes/{} ({})", agnes_core::VERSION, std::env::consts::OS))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("a client with a user agent and timeout builds");
        Api { http, server: server.trim_end_matches('/').to_string(), token }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// A request whose answer is read as the wire type `T`.
    pub async fn call_as<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ApiFailure> {
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| ApiFailure::Shape { path: path.to_string(), message: e.to_string() })?;
        read_as(path, self.call(method, path, body).await?)
    }

    pub async fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiFailure> {
        self.call_as(Method::GET, path, None::<&Value>).await
    }

    pub async fn post_as<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T, ApiFailure> {
        self.call_as(Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> Result<Value, ApiFailure> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, ApiFailure> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// POST a raw body (multipart uploads).
    pub async fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<Value, ApiFailure> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.server))
            .header("content-type", content_type)
            .body(body)
            .timeout(std::time::Duration::from_secs(300));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            Err(http_failure(status, value))
        }
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ApiFailure> {
        self.call(Method::DELETE, path, None).await
    }

    /// A GET whose body the caller streams (downloads). Error statuses are read and
    /// returned as [`ApiFailure::Http`]; 304 and 2xx come back as they are.
    pub async fn get_stream(&self, path: &str, headers: &[(&str, String)]) -> Result<reqwest::Response, ApiFailure> {
        self.stream(Method::GET, path, headers, None, std::time::Duration::from_secs(300)).await
    }

    /// A POST of JSON whose answer the caller streams (scans), allowed `timeout` in all.
    pub async fn post_stream(
        &self,
        path: &str,
        body: Value,
        timeout: std::time::Duration,
    ) -> Result<reqwest::Response, ApiFailure> {
        self.stream(Method::POST, path, &[], Some(body), timeout).await
    }

    /// POST asking for an Arrow IPC answer (`/api/query`).
    pub async fn post_arrow(
        &self,
        path: &str,
        body: Value,
        timeout: std::time::Duration,
    ) -> Result<reqwest::Response, ApiFailure> {
        let accept = [("accept", "application/vnd.apache.arrow.stream".to_string())];
        self.stream(Method::POST, path, &accept, Some(body), timeout).await
    }

    async fn stream(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Value>,
        timeout: std::time::Duration,
    ) -> Result<reqwest::Response, ApiFailure> {
        let mut req = self.http.request(method, format!("{}{path}", self.server)).timeout(timeout);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Err(http_failure(status, value))
    }

    pub fn transport(&self, e: reqwest::Error) -> ApiFailure {
        ApiFailure::Transport { server: self.server.clone(), message: e.without_url().to_string() }
    }

    /// Send a request; a 2xx answer's JSON (or `null` for an empty body) comes back.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, ApiFailure> {
        let mut req = self.http.request(method, format!("{}{path}", self.server));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let transport = |e: reqwest::Error| ApiFailure::Transport {
            server: self.server.clone(),
            message: e.without_url().to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        if let Some(min) = resp.headers().get("x-agnes-min-version").and_then(|v| v.to_str().ok()) {
            if version_below(agnes_core::VERSION, min)
                && std::env::var("AGNES_SELF_UPGRADE_IN_PROGRESS").as_deref() != Ok("1")
            {
                return Err(ApiFailure::TooOld { required: min.to_string() });
            }
        }
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_success() {
            return Ok(value);
        }
        Err(http_failure(status, value))
    }
}

/// An error answer: its `detail` and `code` (the whole body when it has no `detail`).
fn http_failure(status: StatusCode, value: Value) -> ApiFailure {
    let code = value.get("code").and_then(Value::as_str).map(String::from);
    ApiFailure::Http { status, detail: value.get("detail").cloned().unwrap_or(value), code }
}

/// `a < b` for dotted numeric versions (missing parts count as 0).
fn version_below(a: &str, b: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> { v.split(['.', '-', '+']).take(3).map(|p| p.parse().unwrap_or(0)).collect() };
    let (mut x, mut y) = (parse(a), parse(b));
    x.resize(3, 0);
    y.resize(3, 0);
    x < y
}

#[cfg(test)]
mod tests {
    #[test]
    fn urlencoding() {
        assert_eq!(super::urlencode("Data Team/x"), "Data%20Team%2Fx");
        assert_eq!(super::urlencode("a-b_c.d~"), "a-b_c.d~");
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn versions() {
        assert!(version_below("0.1.0", "0.2.0"));
        assert!(!version_below("0.1.0", "0.0.0"));
        assert!(!version_below("1.0.0", "1.0"));
    }

    #[test]
    fn error_rendering() {
        assert_eq!(
            render_error(StatusCode::FORBIDDEN, &json!("Admin access required")),
            "HTTP 403: Admin access required"
        );
        let typed = render_error(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"reason": "daily_byte_cap_exceeded", "limit": 10, "current": 12, "retry_after_seconds": 5, "hint": "wait"}),
        );
        assert_eq!(typed, "Error: daily_byte_cap_exceeded (HTTP 429)\n  reason: daily_byte_cap_exceeded\n  current: 12\n  limit: 10\n  retry_after_seconds: 5\n  hint: wait");
    }
}
