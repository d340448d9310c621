//! A blocking client of Jira Cloud's REST API v3: an issue with its rendered fields and
//! every comment and change (the pages past the first fetched), its remote links, its
//! attachments' bytes, the enhanced JQL search, and `myself` for `source test`. Basic
//! auth with the account's e-mail and API token. 429 and 502/503/504 are retried with
//! exponential backoff, waiting at least what `Retry-After` asks.

use super::config::JiraSource;
use crate::ConnectorError;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// Attempts of one request before its failure is reported.
const ATTEMPTS: u32 = 5;
/// The longest wait between two attempts, whatever `Retry-After` says.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub struct JiraClient {
    http: reqwest::blocking::Client,
    base: String,
    email: String,
    token: String,
    /// The first backoff step (doubled at each retry).
    backoff: Duration,
}

/// What a fetch found.
#[derive(Debug)]
pub enum Fetched {
    Issue(Value),
    /// Jira has no such issue (deleted, or no longer visible to the account).
    Gone,
}

fn failure(what: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Source(format!("Jira {what}: {e}"))
}

impl JiraClient {
    pub fn connect(source: &JiraSource) -> Result<JiraClient, ConnectorError> {
        let (email, token) = source.credentials().ok_or_else(|| {
            ConnectorError::Config(format!(
                "Jira needs its account: set {} and {}",
                source.email_env(),
                source.api_token_env()
            ))
        })?;
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("agnes/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| failure("client", e))?;
        Ok(JiraClient { http, base: source.base_url()?, email, token, backoff: Duration::from_millis(500) })
    }

    /// Retry backoff's first step (tests shorten it).
    pub fn with_backoff(mut self, first: Duration) -> JiraClient {
        self.backoff = first;
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}/rest/api/3/{path}", self.base)
    }

    /// Send a request built by `build`, retrying what Jira says is transient. Answers the
    /// response of any other status.
    fn send(
        &self,
        build: impl Fn() -> reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, ConnectorError> {
        let mut wait = self.backoff;
        for attempt in 1..=ATTEMPTS {
            let response = build().basic_auth(&self.email, Some(&self.token)).send();
            let retry_after = match &response {
                Ok(r) if matches!(r.status().as_u16(), 429 | 502 | 503 | 504) => r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
                Ok(_) => return Ok(response.expect("checked")),
                Err(e) if e.is_connect() || e.is_timeout() => None,
                Err(_) => return response.map_err(|e| failure("request", crate::http_error(e))),
            };
            if attempt == ATTEMPTS {
                return match response {
                    Ok(r) => Err(failure("kept refusing", format!("{} after {ATTEMPTS} attempts", r.status()))),
                    Err(e) => Err(failure("is unreachable", crate::http_error(e))),
                };
            }
            std::thread::sleep(retry_after.map_or(wait, |r| r.max(wait)).min(MAX_WAIT));
            wait = (wait * 2).min(MAX_WAIT);
        }
        unreachable!("the last attempt returns")
    }

    /// A JSON answer; an error status becomes Jira's own `errorMessages`.
    fn json(&self, what: &str, build: impl Fn() -> reqwest::blocking::RequestBuilder) -> Result<Value, ConnectorError> {
        let response = self.send(build)?;
        let status = response.status();
        if status.is_success() {
            return response.json().map_err(|e| failure(what, crate::http_error(e)));
        }
        Err(failure(what, format!("{status}: {}", error_text(response))))
    }

    /// Who the credentials are (`GET /myself`).
    pub fn myself(&self) -> Result<Value, ConnectorError> {
        self.json("myself", || self.http.get(self.url("myself")))
    }

    /// The issue with rendered fields, every comment and every change, or `Gone`.
    pub fn issue(&self, key: &str) -> Result<Fetched, ConnectorError> {
        let response = self.send(|| {
            self.http
                .get(self.url(&format!("issue/{key}")))
                .query(&[("expand", "renderedFields,changelog"), ("fields", "*all")])
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Fetched::Gone);
        }
        if !status.is_success() {
            return Err(failure(&format!("issue {key}"), format!("{status}: {}", error_text(response))));
        }
        let mut issue: Value = response.json().map_err(|e| failure(&format!("issue {key}"), crate::http_error(e)))?;
        self.complete_comments(key, &mut issue)?;
        self.complete_changelog(key, &mut issue)?;
        Ok(Fetched::Issue(issue))
    }

    /// The issue answers only the first page of comments: fetch the rest.
    fn complete_comments(&self, key: &str, issue: &mut Value) -> Result<(), ConnectorError> {
        let Some(page) = issue.pointer("/fields/comment").filter(|c| c.is_object()) else { return Ok(()) };
        let mut comments = page.get("comments").and_then(Value::as_array).cloned().unwrap_or_default();
        let total = page.get("total").and_then(Value::as_u64).unwrap_or(0) as usize;
        while comments.len() < total {
            let start = comments.len().to_string();
            let next = self.json("comments", || {
                self.http
                    .get(self.url(&format!("issue/{key}/comment")))
                    .query(&[("startAt", start.as_str()), ("maxResults", "100")])
            })?;
            let got = next.get("comments").and_then(Value::as_array).cloned().unwrap_or_default();
            if got.is_empty() {
                break;
            }
            comments.extend(got);
        }
        issue["fields"]["comment"]["comments"] = Value::Array(comments);
        Ok(())
    }

    /// The expand holds only the latest changes: when it is short, read the changelog
    /// endpoint's pages (oldest first) instead.
    fn complete_changelog(&self, key: &str, issue: &mut Value) -> Result<(), ConnectorError> {
        let Some(log) = issue.get("changelog") else { return Ok(()) };
        let held = log.get("histories").and_then(Value::as_array).map_or(0, Vec::len);
        if log.get("total").and_then(Value::as_u64).unwrap_or(0) as usize <= held {
            return Ok(());
        }
        let mut histories = Vec::new();
        loop {
            let start = histories.len().to_string();
            let page = self.json("changelog", || {
                self.http
                    .get(self.url(&format!("issue/{key}/changelog")))
                    .query(&[("startAt", start.as_str()), ("maxResults", "100")])
            })?;
            let values = page.get("values").and_then(Value::as_array).cloned().unwrap_or_default();
            let last = page.get("isLast").and_then(Value::as_bool).unwrap_or(true) || values.is_empty();
            histories.extend(values);
            if last {
                break;
            }
        }
        issue["changelog"] = serde_json::json!({"startAt": 0, "maxResults": histories.len(), "total": histories.len(), "histories": histories});
        Ok(())
    }

    /// The issue's remote links.
    pub fn remote_links(&self, key: &str) -> Result<Vec<Value>, ConnectorError> {
        let links = self.json("remote links", || self.http.get(self.url(&format!("issue/{key}/remotelink"))))?;
        Ok(links.as_array().cloned().unwrap_or_default())
    }

    /// Download an attachment's bytes (Jira answers a redirect to its media store, which
    /// is followed without the credentials) to `dest`, atomically; refused over `max`.
    pub fn download(&self, url: &str, dest: &Path, max: u64) -> Result<(), ConnectorError> {
        let response = self.send(|| self.http.get(url))?;
        let status = response.status();
        if !status.is_success() {
            return Err(failure("attachment", format!("{status}: {}", error_text(response))));
        }
        if response.content_length().is_some_and(|n| n > max) {
            return Err(failure("attachment", format!("larger than {max} bytes")));
        }
        let dir = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| failure("attachment", e))?;
        let tmp = agnes_engine::fsutil::temp_path_for(dest);
        let written = (|| -> std::io::Result<u64> {
            let mut file = std::fs::File::create(&tmp)?;
            let n = std::io::copy(&mut response.take(max + 1), &mut file)?;
            file.flush()?;
            Ok(n)
        })();
        let result = match written {
            Ok(n) if n > max => Err(failure("attachment", format!("larger than {max} bytes"))),
            Ok(_) => agnes_engine::fsutil::commit_rename(&tmp, dest).map_err(ConnectorError::Engine),
            Err(e) => Err(failure("attachment", e)),
        };
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// One page of the enhanced JQL search: the issue keys, and the next page's token.
    pub fn search(&self, jql: &str, page: Option<&str>) -> Result<(Vec<String>, Option<String>), ConnectorError> {
        let answer = self.json("search", || {
            let mut body = serde_json::json!({"jql": jql, "fields": ["key"], "maxResults": 100});
            if let Some(token) = page {
                body["nextPageToken"] = token.into();
            }
            self.http.post(self.url("search/jql")).json(&body)
        })?;
        let keys = answer
            .get("issues")
            .and_then(Value::as_array)
            .map(|issues| {
                issues.iter().filter_map(|i| i.get("key").and_then(Value::as_str).map(String::from)).collect()
            })
            .unwrap_or_default();
        let next = answer.get("nextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty()).map(String::from);
        let last = answer.get("isLast").and_then(Value::as_bool).unwrap_or(next.is_none());
        Ok((keys, if last { None } else { next }))
    }
}

/// Jira's error text: its `errorMessages` and `errors`, else the start of the body.
fn error_text(response: reqwest::blocking::Response) -> String {
    let mut body = String::new();
    let _ = response.take(4096).read_to_string(&mut body);
    match serde_json::from_str::<Value>(&body) {
        Ok(v) => {
            let mut messages: Vec<String> = v
                .get("errorMessages")
                .and_then(Value::as_array)
                .map(|m| m.iter().filter_map(Value::as_str).map(String::from).collect())
                .unwrap_or_default();
            if let Some(errors) = v.get("errors").and_then(Value::as_object) {
                messages.extend(errors.iter().map(|(k, m)| format!("{k}: {}", m.as_str().unwrap_or_default())));
            }
            messages.join("; ")
        }
        Err(_) => body.chars().take(200).collect::<String>().trim().to_string(),
    }
}
