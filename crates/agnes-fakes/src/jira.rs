//! A fake Jira Cloud REST API (v3), after Atlassian's published OpenAPI description and
//! its documentation of rate limits and webhooks:
//!
//! * Basic auth (account e-mail and API token); anything else is a `text/plain` 401
//!   with `WWW-Authenticate`, as Jira answers;
//! * `GET /rest/api/3/issue/{key}` with `expand=renderedFields,changelog`: `fields.comment`
//!   is a page (the first few comments and `total`), the expanded changelog holds only the
//!   latest histories; a missing issue is the ErrorCollection 404 Jira gives for "no such
//!   issue or no permission";
//! * `…/issue/{key}/comment` (`startAt`/`maxResults`), `…/issue/{key}/changelog` (oldest
//!   first, `values`, `isLast`), `…/issue/{key}/remotelink` (integer ids);
//! * `GET /rest/api/3/attachment/content/{id}`: 303 to a signed media URL served
//!   unauthenticated by the same fake;
//! * `POST /rest/api/3/search/jql`: `nextPageToken` paging, no `total`, `isLast`; only
//!   keys unless fields are asked; unbounded JQL is a 400; the removed `/search` is 410;
//! * faults: the next requests answer 429 with `Retry-After` and Jira's rate-limit
//!   headers (an HTML body, as seen), or 503; remote links of an issue can fail.
//!
//! [`issue`] builds an issue as Jira's v3 API writes it; [`webhook`] a delivery as Jira
//! Cloud sends it (v2 shapes: wiki text, not ADF) and [`sign`] its `X-Hub-Signature`.

use crate::server::Running;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// An issue as a test describes it; [`issue`] writes it as Jira does.
#[derive(Debug, Clone)]
pub struct IssueSpec {
    pub key: String,
    pub summary: String,
    /// `2024-03-05T10:00:00.000+0100` style.
    pub created: String,
    pub updated: String,
    pub status: (&'static str, &'static str),
    pub description: Option<String>,
    pub assignee: Option<(&'static str, &'static str)>,
    pub labels: Vec<String>,
    /// (id, author e-mail, text, created)
    pub comments: Vec<(String, String, String, String)>,
    /// (id, filename, bytes)
    pub attachments: Vec<(String, String, Vec<u8>)>,
    /// (history id, field, from, to, created)
    pub changes: Vec<(String, String, String, String, String)>,
    /// (link id, type, outward?, other key, other summary)
    pub links: Vec<(String, String, bool, String, String)>,
    /// Custom fields as Jira writes them.
    pub custom: BTreeMap<String, Value>,
}

impl IssueSpec {
    pub fn new(key: &str, summary: &str, created: &str) -> IssueSpec {
        IssueSpec {
            key: key.into(),
            summary: summary.into(),
            created: created.into(),
            updated: created.into(),
            status: ("Waiting for support", "To Do"),
            description: None,
            assignee: None,
            labels: Vec::new(),
            comments: Vec::new(),
            attachments: Vec::new(),
            changes: Vec::new(),
            links: Vec::new(),
            custom: BTreeMap::new(),
        }
    }
}

fn user(email: &str, name: &str) -> Value {
    json!({"self": "https://fake.atlassian.net/rest/api/3/user?accountId=x", "accountId": format!("acc-{}", email.len()),
           "emailAddress": email, "displayName": name, "active": true, "timeZone": "Europe/Prague", "accountType": "atlassian"})
}

fn adf(text: &str) -> Value {
    let paragraphs: Vec<Value> =
        text.split("\n\n").map(|p| json!({"type": "paragraph", "content": [{"type": "text", "text": p}]})).collect();
    json!({"type": "doc", "version": 1, "content": paragraphs})
}

fn id_of(key: &str) -> String {
    let n: u64 = key.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    (10_000 + n).to_string()
}

/// The issue as `GET /rest/api/3/issue/{key}?fields=*all&expand=changelog` answers it
/// whole (the fake pages comments and changes from this).
pub fn issue(spec: &IssueSpec, base: &str) -> Value {
    let project = spec.key.split('-').next().unwrap_or_default();
    let category_key = match spec.status.1 {
        "Done" => "done",
        "In Progress" => "indeterminate",
        _ => "new",
    };
    let comments: Vec<Value> = spec
        .comments
        .iter()
        .map(|(id, author, text, created)| {
            json!({"self": format!("{base}/rest/api/3/issue/{}/comment/{id}", id_of(&spec.key)), "id": id,
                   "author": user(author, author), "body": adf(text), "updateAuthor": user(author, author),
                   "created": created, "updated": created, "jsdPublic": true})
        })
        .collect();
    let attachments: Vec<Value> = spec
        .attachments
        .iter()
        .map(|(id, name, bytes)| {
            json!({"self": format!("{base}/rest/api/3/attachments/{id}"), "id": id, "filename": name,
                   "author": user("ana@corp.example", "Ana"), "created": spec.created, "size": bytes.len(),
                   "mimeType": "application/octet-stream", "content": format!("{base}/rest/api/3/attachment/content/{id}")})
        })
        .collect();
    let histories: Vec<Value> = spec
        .changes
        .iter()
        .map(|(id, field, from, to, created)| {
            json!({"id": id, "author": user("bob@corp.example", "Bob"), "created": created,
                   "items": [{"field": field, "fieldtype": "jira", "fieldId": field.to_lowercase(), "from": null,
                              "fromString": from, "to": null, "toString": to}]})
        })
        .collect();
    let links: Vec<Value> = spec
        .links
        .iter()
        .map(|(id, kind, outward, other, summary)| {
            let linked = json!({"id": id_of(other), "key": other, "self": format!("{base}/rest/api/3/issue/{}", id_of(other)),
                                "fields": {"summary": summary, "status": {"name": "Done", "statusCategory": {"id": 3, "key": "done", "name": "Done"}},
                                           "priority": {"name": "High", "id": "2"}, "issuetype": {"name": "Task"}}});
            let mut link = json!({"id": id, "self": format!("{base}/rest/api/3/issueLink/{id}"),
                                  "type": {"id": "10000", "name": kind, "inward": "is blocked by", "outward": "blocks"}});
            link[if *outward { "outwardIssue" } else { "inwardIssue" }] = linked;
            link
        })
        .collect();
    let done = spec.status.1 == "Done";
    let resolution = if done { json!({"id": "1", "name": "Done"}) } else { Value::Null };
    let resolved_at = if done { json!(spec.updated) } else { Value::Null };
    let description = spec.description.as_deref().map(adf);
    let assignee = spec.assignee.map(|(e, n)| user(e, n));
    let comment_count = comments.len();
    let mut fields = json!({
        "summary": spec.summary,
        "description": description,
        "issuetype": {"id": "10001", "name": "Support", "subtask": false, "hierarchyLevel": 0},
        "status": {"name": spec.status.0, "id": "3",
                   "statusCategory": {"id": 2, "key": category_key, "colorName": "blue-gray", "name": spec.status.1}},
        "priority": {"name": "Medium", "id": "3"},
        "resolution": resolution,
        "project": {"id": "10000", "key": project, "name": format!("{project} desk"), "projectTypeKey": "service_desk"},
        "creator": user("ana@corp.example", "Ana"),
        "reporter": user("customer@client.example", "Customer"),
        "assignee": assignee,
        "created": spec.created,
        "updated": spec.updated,
        "resolutiondate": resolved_at,
        "duedate": null,
        "labels": spec.labels,
        "attachment": attachments,
        "comment": {"comments": comments, "self": "", "maxResults": comment_count, "total": comment_count, "startAt": 0},
        "issuelinks": links,
        "customfield_19999": null,
    });
    for (id, v) in &spec.custom {
        fields[id] = v.clone();
    }
    json!({"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
           "id": id_of(&spec.key), "self": format!("{base}/rest/api/3/issue/{}", id_of(&spec.key)), "key": spec.key,
           "fields": fields, "changelog": {"startAt": 0, "maxResults": histories.len(), "total": histories.len(), "histories": histories}})
}

/// A webhook delivery for `issue` as Jira Cloud sends it (REST v2 shapes).
pub fn webhook(event: &str, key: &str, summary: &str) -> Value {
    let base = json!({"timestamp": 1_735_441_883_659_i64, "webhookEvent": event,
                      "issue": {"id": id_of(key), "self": format!("https://fake.atlassian.net/rest/api/2/{}", id_of(key)), "key": key,
                                "fields": {"summary": summary, "description": "wiki *text*"}}});
    let mut body = base;
    if event.starts_with("jira:") {
        body["issue_event_type_name"] = json!(event.trim_start_matches("jira:"));
        body["user"] = user("bob@corp.example", "Bob");
        body["changelog"] = json!({"id": "10025", "items": []});
    } else {
        body["comment"] = json!({"id": "10274", "body": "a comment", "author": user("bob@corp.example", "Bob"),
                                 "created": "2024-01-01T10:00:00.000+0000", "updated": "2024-01-01T10:00:00.000+0000"});
    }
    body
}

/// `X-Hub-Signature` of a body: `sha256=` and the HMAC-SHA256 in lowercase hex.
pub fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[derive(Default)]
struct Inner {
    base: String,
    email: String,
    token: String,
    issues: BTreeMap<String, IssueSpec>,
    remote_links: HashMap<String, Vec<Value>>,
    failing_links: std::collections::HashSet<String>,
    bytes: HashMap<String, Vec<u8>>,
    /// Answer this many API requests with this status (and `Retry-After` seconds).
    faults: Vec<(StatusCode, u64)>,
    comment_page: usize,
    changelog_expand: usize,
    /// Every request's method and path (with query), in order.
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeJira {
    pub url: String,
    inner: Shared,
    _running: Running,
}

impl FakeJira {
    /// A Jira site answering the account `email` with API token `token`.
    pub fn start(email: &str, token: &str) -> FakeJira {
        let inner = Arc::new(Mutex::new(Inner {
            email: email.into(),
            token: token.into(),
            comment_page: 2,
            changelog_expand: 2,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/rest/api/3/myself", get(myself))
            .route("/rest/api/3/issue/{key}", get(get_issue))
            .route("/rest/api/3/issue/{key}/comment", get(comments))
            .route("/rest/api/3/issue/{key}/changelog", get(changelog))
            .route("/rest/api/3/issue/{key}/remotelink", get(remote_links))
            .route("/rest/api/3/attachment/content/{id}", get(attachment))
            .route("/media/file/{id}/binary", get(media))
            .route("/rest/api/3/search/jql", post(search))
            .route("/rest/api/3/search", get(removed).post(removed))
            .with_state(inner.clone());
        let running = Running::start(app);
        let url = format!("http://{}", running.addr);
        inner.lock().base = url.clone();
        FakeJira { url, inner, _running: running }
    }

    /// Create or change an issue (its remote links stay).
    pub fn put(&self, spec: IssueSpec) {
        let mut inner = self.inner.lock();
        for (id, _, bytes) in &spec.attachments {
            inner.bytes.insert(id.clone(), bytes.clone());
        }
        inner.issues.insert(spec.key.clone(), spec);
    }

    pub fn delete(&self, key: &str) {
        self.inner.lock().issues.remove(key);
    }

    /// The issue as the fake holds it.
    pub fn get(&self, key: &str) -> Option<IssueSpec> {
        self.inner.lock().issues.get(key).cloned()
    }

    /// Set an issue's remote links: (id, url, title, application name, type).
    pub fn set_remote_links(&self, key: &str, links: &[(i64, &str, &str, &str, &str)]) {
        let links = links
            .iter()
            .map(|(id, url, title, app, kind)| {
                json!({"id": id, "self": format!("https://fake.atlassian.net/rest/api/issue/{key}/remotelink/{id}"),
                       "globalId": format!("system={url}"), "application": {"type": kind, "name": app},
                       "relationship": "mentioned in", "object": {"url": url, "title": title, "status": {"resolved": false}}})
            })
            .collect();
        self.inner.lock().remote_links.insert(key.into(), links);
    }

    /// Make reading an issue's remote links fail (500) until called with `false`.
    pub fn fail_remote_links(&self, key: &str, fail: bool) {
        let mut inner = self.inner.lock();
        if fail {
            inner.failing_links.insert(key.into());
        } else {
            inner.failing_links.remove(key);
        }
    }

    /// The next `n` API requests answer `status` (429 or 5xx) with `Retry-After: secs`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: u64) {
        let status = StatusCode::from_u16(status).expect("a status");
        self.inner.lock().faults.extend(std::iter::repeat_n((status, retry_after), n));
    }

    /// Drop the faults not yet answered.
    pub fn clear_faults(&self) {
        self.inner.lock().faults.clear();
    }

    /// Every request so far: `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().requests.clone()
    }
}

/// Counts the request, then refuses it if its credentials are wrong or a fault is due.
fn admit(inner: &mut Inner, headers: &HeaderMap, line: String) -> Option<Response> {
    inner.requests.push(line);
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", inner.email, inner.token));
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "));
    if given != Some(expected.as_str()) {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"protected-area\""), (header::CONTENT_TYPE, "text/plain")],
                "Client must be authenticated to access this resource.",
            )
                .into_response(),
        );
    }
    if inner.faults.is_empty() {
        return None;
    }
    let (status, retry) = inner.faults.remove(0);
    let mut response =
        (status, [(header::CONTENT_TYPE, "text/html")], "<html><body>Oops - an error has occurred</body></html>")
            .into_response();
    let h = response.headers_mut();
    h.insert(header::RETRY_AFTER, retry.to_string().parse().unwrap());
    if status == StatusCode::TOO_MANY_REQUESTS {
        h.insert("x-ratelimit-limit", "100".parse().unwrap());
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert("ratelimit-reason", "jira-burst-based".parse().unwrap());
    }
    Some(response)
}

fn error_collection(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"errorMessages": [message], "errors": {}}))).into_response()
}

fn no_issue() -> Response {
    error_collection(StatusCode::NOT_FOUND, "Issue does not exist or you do not have permission to see it.")
}

fn number(q: &HashMap<String, String>, key: &str, default: usize) -> usize {
    q.get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn myself(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut inner = s.lock();
    if let Some(r) = admit(&mut inner, &headers, "GET /rest/api/3/myself".into()) {
        return r;
    }
    Json(user(&inner.email.clone(), "agnes sync")).into_response()
}

async fn get_issue(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = s.lock();
    let expand = q.get("expand").cloned().unwrap_or_default();
    if let Some(r) = admit(&mut inner, &headers, format!("GET /rest/api/3/issue/{key}?expand={expand}")) {
        return r;
    }
    let Some(spec) = inner.issues.get(&key) else { return no_issue() };
    let mut v = issue(spec, &inner.base);
    // The issue answers the first page of comments only, and the latest changes.
    let page = inner.comment_page;
    if let Some(c) = v.pointer_mut("/fields/comment/comments").and_then(Value::as_array_mut) {
        c.truncate(page);
    }
    v["fields"]["comment"]["maxResults"] = json!(page);
    if expand.split(',').any(|e| e == "changelog") {
        let keep = inner.changelog_expand;
        if let Some(h) = v.pointer_mut("/changelog/histories").and_then(Value::as_array_mut) {
            h.reverse();
            h.truncate(keep);
        }
        v["changelog"]["maxResults"] = json!(keep);
    } else if let Some(o) = v.as_object_mut() {
        o.remove("changelog");
    }
    if expand.split(',').any(|e| e == "renderedFields") {
        let rendered = spec.description.as_deref().map(|d| format!("<p>{d}</p>"));
        v["renderedFields"] = json!({"description": rendered, "summary": null});
    }
    Json(v).into_response()
}

async fn comments(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = s.lock();
    if let Some(r) = admit(&mut inner, &headers, format!("GET /rest/api/3/issue/{key}/comment")) {
        return r;
    }
    let Some(spec) = inner.issues.get(&key) else { return no_issue() };
    let all = issue(spec, &inner.base).pointer("/fields/comment/comments").cloned().unwrap_or_default();
    let all = all.as_array().cloned().unwrap_or_default();
    let (start, max) = (number(&q, "startAt", 0), number(&q, "maxResults", 100).min(100));
    let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
    Json(json!({"comments": page, "startAt": start, "maxResults": max, "total": all.len()})).into_response()
}

async fn changelog(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = s.lock();
    if let Some(r) = admit(&mut inner, &headers, format!("GET /rest/api/3/issue/{key}/changelog")) {
        return r;
    }
    let Some(spec) = inner.issues.get(&key) else { return no_issue() };
    let all =
        issue(spec, &inner.base).pointer("/changelog/histories").and_then(Value::as_array).cloned().unwrap_or_default();
    // Oldest first here; a page of at most 2, so a client must follow `isLast`.
    let (start, max) = (number(&q, "startAt", 0), number(&q, "maxResults", 100).min(2));
    let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
    let last = start + page.len() >= all.len();
    Json(json!({"self": "", "maxResults": max, "startAt": start, "total": all.len(), "isLast": last, "values": page}))
        .into_response()
}

async fn remote_links(State(s): State<Shared>, headers: HeaderMap, Path(key): Path<String>) -> Response {
    let mut inner = s.lock();
    if let Some(r) = admit(&mut inner, &headers, format!("GET /rest/api/3/issue/{key}/remotelink")) {
        return r;
    }
    if !inner.issues.contains_key(&key) {
        return no_issue();
    }
    if inner.failing_links.contains(&key) {
        return error_collection(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    }
    Json(inner.remote_links.get(&key).cloned().unwrap_or_default()).into_response()
}

async fn attachment(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mut inner = s.lock();
    if let Some(r) = admit(&mut inner, &headers, format!("GET /rest/api/3/attachment/content/{id}")) {
        return r;
    }
    if !inner.bytes.contains_key(&id) {
        return error_collection(StatusCode::NOT_FOUND, "The attachment does not exist.");
    }
    let to = format!("{}/media/file/{id}/binary?token=signed-{id}&client=fake", inner.base);
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

async fn media(State(s): State<Shared>, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let inner = s.lock();
    if q.get("token") != Some(&format!("signed-{id}")) {
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    }
    match inner.bytes.get(&id) {
        Some(b) => ([(header::CONTENT_TYPE, "application/octet-stream")], b.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The JQL the fake understands: clauses joined by AND, each `project = X` (or in
/// parentheses), `updated >= <bound>` or `created >= <bound>`, and an ignored ORDER BY.
fn matches(jql: &str, spec: &IssueSpec) -> Result<bool, String> {
    let ordered = jql.to_lowercase().find("order by").unwrap_or(jql.len());
    let filter = jql[..ordered].trim();
    if filter.is_empty() {
        return Err("Unbounded JQL queries are not allowed here. Please add a search restriction to your query.".into());
    }
    for clause in filter.split(" AND ") {
        let clause = clause.trim().trim_start_matches('(').trim_end_matches(')').trim();
        if let Some(project) = clause.strip_prefix("project = ") {
            if !spec.key.starts_with(&format!("{}-", project.trim_matches('"'))) {
                return Ok(false);
            }
        } else if let Some((field, at)) = clause.split_once(" >= ") {
            let at = at.trim().trim_matches('"');
            let value = match field.trim() {
                "updated" => &spec.updated,
                "created" => &spec.created,
                other => {
                    return Err(format!("Field '{other}' does not exist or you do not have permission to view it."))
                }
            };
            let bound =
                parse_bound(at).ok_or_else(|| format!("Date value '{at}' for field '{}' is invalid.", field.trim()))?;
            let t = chrono::DateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f%z").map_err(|e| e.to_string())?;
            if t.naive_utc() < bound {
                return Ok(false);
            }
        } else {
            return Err(format!("Error in the JQL Query: '{clause}' is not understood by this fake."));
        }
    }
    Ok(true)
}

/// A JQL date bound: `yyyy-MM-dd`, `yyyy-MM-dd HH:mm` (read as UTC: the fake's account
/// lives in UTC), or relative to now, `-90m`, `-2h`, `-1d`.
fn parse_bound(at: &str) -> Option<chrono::NaiveDateTime> {
    if let Some(rel) = at.strip_prefix('-') {
        let (n, unit) = rel.split_at(rel.len().checked_sub(1)?);
        let n: i64 = n.parse().ok()?;
        let span = match unit {
            "m" => chrono::Duration::minutes(n),
            "h" => chrono::Duration::hours(n),
            "d" => chrono::Duration::days(n),
            "w" => chrono::Duration::weeks(n),
            _ => return None,
        };
        return Some((chrono::Utc::now() - span).naive_utc());
    }
    chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M")
        .ok()
        .or_else(|| chrono::NaiveDate::parse_from_str(at, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0))
}

async fn search(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = s.lock();
    if let Some(r) = admit(&mut inner, &headers, "POST /rest/api/3/search/jql".into()) {
        return r;
    }
    let Ok(q) = serde_json::from_slice::<Value>(&body) else {
        return error_collection(StatusCode::BAD_REQUEST, "Invalid request payload.");
    };
    let jql = q.get("jql").and_then(Value::as_str).unwrap_or_default();
    let mut found = Vec::new();
    let mut specs: Vec<&IssueSpec> = inner.issues.values().collect();
    specs.sort_by_key(|s| id_of(&s.key).parse::<u64>().unwrap_or(0));
    for spec in specs {
        match matches(jql, spec) {
            Ok(true) => found.push(spec.key.clone()),
            Ok(false) => {}
            Err(m) => return error_collection(StatusCode::BAD_REQUEST, &m),
        }
    }
    let start = match q.get("nextPageToken").and_then(Value::as_str) {
        None => 0,
        Some(t) => match base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("page:")?.parse().ok())
        {
            Some(n) => n,
            None => {
                return error_collection(StatusCode::BAD_REQUEST, "The provided next page token is invalid or expired.")
            }
        },
    };
    let max = q.get("maxResults").and_then(Value::as_u64).unwrap_or(50).clamp(1, 100) as usize;
    let issues: Vec<Value> = found
        .iter()
        .skip(start)
        .take(max)
        .map(|k| json!({"id": id_of(k), "key": k, "self": format!("{}/rest/api/3/issue/{}", inner.base, id_of(k))}))
        .collect();
    let last = start + max >= found.len();
    let mut answer = json!({"issues": issues, "isLast": last});
    if !last {
        answer["nextPageToken"] =
            json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("page:{}", start + max)));
    }
    Json(answer).into_response()
}

async fn removed() -> Response {
    error_collection(
        StatusCode::GONE,
        "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API.",
    )
}
