//! What every Google API client of agnes shares: signing in (`auth`), calls that turn
//! Google's error answers into its own reason and message, and list paging. The BigQuery
//! connector and the Workspace group sync (`directory`) are built on it.

pub mod auth;
pub mod directory;

use crate::ConnectorError;
use serde_json::Value;

/// Why a Google API call failed.
#[derive(Debug)]
pub enum ApiFailure {
    /// Google answered with an error: its status, first `errors[].reason` and message.
    Api { status: u16, reason: String, message: String },
    /// No answer (transport), or no token.
    Other(ConnectorError),
}

impl From<ConnectorError> for ApiFailure {
    fn from(e: ConnectorError) -> ApiFailure {
        ApiFailure::Other(e)
    }
}

impl From<ApiFailure> for ConnectorError {
    fn from(e: ApiFailure) -> ConnectorError {
        match e {
            ApiFailure::Api { status, reason, message } => {
                ConnectorError::Source(format!("Google answered {status} ({reason}): {message}"))
            }
            ApiFailure::Other(e) => e,
        }
    }
}

/// One call of `service` (named in messages) with a bearer token: the JSON answer, or
/// Google's own error (`{"error": {"code", "message", "errors": [{"reason"}]}}`).
pub fn call(token: &str, request: reqwest::blocking::RequestBuilder, service: &str) -> Result<Value, ApiFailure> {
    let response = request.bearer_auth(token).send().map_err(|e| {
        ApiFailure::Other(ConnectorError::Source(format!("cannot reach {service}: {}", crate::http_error(e))))
    })?;
    let status = response.status();
    let body: Value = response.json().unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let text = |p: &str| body.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    Err(ApiFailure::Api {
        status: status.as_u16(),
        reason: text("/error/errors/0/reason"),
        message: Some(text("/error/message")).filter(|m| !m.is_empty()).unwrap_or_else(|| "no message".into()),
    })
}

/// Every page of a list call (`maxResults` = `page_size`, then each `nextPageToken`),
/// concatenated: the items under `key`; a page without `key` holds none.
pub fn list(
    http: &reqwest::blocking::Client,
    tokens: &auth::TokenSource,
    request: impl Fn() -> reqwest::blocking::RequestBuilder,
    page_size: usize,
    key: &str,
    service: &str,
) -> Result<Vec<Value>, ApiFailure> {
    let mut items = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let mut r = request().query(&[("maxResults", page_size.to_string())]);
        if let Some(token) = &page {
            r = r.query(&[("pageToken", token)]);
        }
        let v = call(&tokens.token(http)?, r, service)?;
        items.extend(v.get(key).and_then(Value::as_array).cloned().unwrap_or_default());
        page = v.get("nextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty()).map(String::from);
        if page.is_none() {
            return Ok(items);
        }
    }
}

#[cfg(test)]
mod tests;
