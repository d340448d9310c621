//! A fake BigQuery REST API (v2) and Google OAuth token endpoint, after Google's public API
//! reference:
//!
//! * `POST /token`: the JWT-bearer grant of a service-account key (the assertion's RS256
//!   signature is checked against the key's public half, and its `iss`, `aud`, `scope`
//!   and expiry), and the refresh-token grant of application-default user credentials;
//! * the metadata server's `…/service-accounts/default/{email,token}`, answering only
//!   with `Metadata-Flavor: Google`;
//! * `datasets.list`, `tables.list` (paged by `maxResults`/`pageToken`) and `tables.get`
//!   with schema, kind, `numRows`/`numBytes` as strings;
//! * `jobs.query` dry runs: the bytes the referenced tables hold, in the billing project
//!   only (elsewhere 403 `accessDenied`), touching no data. Queries that are not dry runs
//!   are not answered yet (400 `invalidQuery`, saying so).
//!
//! Every API call needs a bearer token this fake issued; errors have Google's shape
//! (`{"error": {"code", "message", "status", "errors": [{"message", "domain", "reason"}]}}`).

use crate::server::Running;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// One table, view or other entity of a dataset.
#[derive(Debug, Clone)]
pub struct FakeBqTable {
    /// `TABLE`, `VIEW`, `MATERIALIZED_VIEW`, `EXTERNAL`…
    pub kind: String,
    /// The schema's `fields`, as BigQuery writes them.
    pub fields: Value,
    pub rows: u64,
    pub bytes: u64,
}

struct Inner {
    project: String,
    billing: String,
    client_email: String,
    token_uri: String,
    public_key: jsonwebtoken::DecodingKey,
    refresh_token: String,
    tables: BTreeMap<(String, String), FakeBqTable>,
    issued: HashSet<String>,
    token_requests: usize,
    dry_runs: Vec<String>,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeBigQuery {
    pub url: String,
    /// A service-account key file whose `token_uri` is this fake.
    pub key_file: std::path::PathBuf,
    /// Application-default user credentials whose `token_uri` is this fake.
    pub adc_file: std::path::PathBuf,
    inner: Shared,
    _dir: tempfile::TempDir,
    _running: Running,
}

fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    let name = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        _ => "INTERNAL",
    };
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": name,
                                "errors": [{"message": message, "domain": "global", "reason": reason}]}});
    (status, Json(body)).into_response()
}

/// A fresh RSA key pair from `openssl` (private PKCS#8 PEM, public PEM).
fn key_pair(dir: &std::path::Path) -> (String, String) {
    let private = dir.join("key.pem");
    let status = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&private)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl genpkey failed");
    let public = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .output()
        .expect("openssl runs");
    assert!(public.status.success(), "openssl pkey -pubout failed");
    (std::fs::read_to_string(&private).unwrap(), String::from_utf8(public.stdout).unwrap())
}

impl FakeBigQuery {
    /// A fake whose data project is `project` and billing project `billing`.
    pub fn start(project: &str, billing: &str) -> FakeBigQuery {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (private_pem, public_pem) = key_pair(dir.path());
        let inner = Arc::new(Mutex::new(Inner {
            project: project.into(),
            billing: billing.into(),
            client_email: format!("agnes-reader@{project}.iam.gserviceaccount.com"),
            token_uri: String::new(),
            public_key: jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).expect("a public key"),
            refresh_token: "1//fake-refresh-token".into(),
            tables: BTreeMap::new(),
            issued: HashSet::new(),
            token_requests: 0,
            dry_runs: Vec::new(),
        }));
        let app = Router::new()
            .route("/token", post(token))
            .route("/computeMetadata/v1/instance/service-accounts/default/email", get(metadata_email))
            .route("/computeMetadata/v1/instance/service-accounts/default/token", get(metadata_token))
            .route("/bigquery/v2/projects/{project}/datasets", get(datasets))
            .route("/bigquery/v2/projects/{project}/datasets/{dataset}/tables", get(tables))
            .route("/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table}", get(table))
            .route("/bigquery/v2/projects/{project}/queries", post(query))
            .with_state(inner.clone());
        let running = Running::start(app);
        let url = format!("http://{}", running.addr);
        let token_uri = format!("{url}/token");
        inner.lock().token_uri = token_uri.clone();
        let email = inner.lock().client_email.clone();
        let key_file = dir.path().join("service-account.json");
        std::fs::write(
            &key_file,
            serde_json::to_string_pretty(&json!({
                "type": "service_account", "project_id": project, "private_key_id": "fake-key-1",
                "private_key": private_pem, "client_email": email, "client_id": "1234567890",
                "token_uri": token_uri,
            }))
            .unwrap(),
        )
        .unwrap();
        let adc_file = dir.path().join("application_default_credentials.json");
        std::fs::write(
            &adc_file,
            serde_json::to_string_pretty(&json!({
                "type": "authorized_user", "client_id": "fake-client.apps.googleusercontent.com",
                "client_secret": "fake-client-secret", "refresh_token": "1//fake-refresh-token", "token_uri": token_uri,
            }))
            .unwrap(),
        )
        .unwrap();
        FakeBigQuery { url, key_file, adc_file, inner, _dir: dir, _running: running }
    }

    /// Add a table (or view…) to `dataset` of the data project.
    pub fn add_table(&self, dataset: &str, name: &str, table: FakeBqTable) {
        self.inner.lock().tables.insert((dataset.into(), name.into()), table);
    }

    /// How many access tokens were asked for.
    pub fn token_requests(&self) -> usize {
        self.inner.lock().token_requests
    }

    /// The SQL of every dry run, in order.
    pub fn dry_runs(&self) -> Vec<String> {
        self.inner.lock().dry_runs.clone()
    }

    /// The host:port to give `GCE_METADATA_HOST`.
    pub fn metadata_host(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }
}

fn issue(inner: &mut Inner) -> Response {
    inner.token_requests += 1;
    let token = format!("ya29.fake-{}-{}", inner.token_requests, inner.issued.len());
    inner.issued.insert(token.clone());
    Json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

fn oauth_error(error: &str, description: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error, "error_description": description}))).into_response()
}

async fn token(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut inner = state.lock();
    match form.get("grant_type").map(String::as_str) {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let Some(assertion) = form.get("assertion") else { return oauth_error("invalid_request", "no assertion") };
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_audience(&[inner.token_uri.clone()]);
            validation.set_issuer(&[inner.client_email.clone()]);
            let claims = match jsonwebtoken::decode::<Value>(assertion, &inner.public_key, &validation) {
                Ok(c) => c.claims,
                Err(e) => return oauth_error("invalid_grant", &format!("Invalid JWT Signature or claims: {e}")),
            };
            let scopes = claims.get("scope").and_then(Value::as_str).unwrap_or("");
            if !scopes.split(' ').any(|s| s == "https://www.googleapis.com/auth/bigquery") {
                return oauth_error("invalid_scope", "the assertion asks for no BigQuery scope");
            }
            issue(&mut inner)
        }
        Some("refresh_token") => {
            if form.get("refresh_token") != Some(&inner.refresh_token)
                || form.get("client_secret").map(String::as_str) != Some("fake-client-secret")
            {
                return oauth_error("invalid_grant", "Token has been expired or revoked.");
            }
            issue(&mut inner)
        }
        _ => oauth_error("unsupported_grant_type", "Invalid grant_type"),
    }
}

fn metadata_flavor(headers: &HeaderMap) -> bool {
    headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) == Some("Google")
}

async fn metadata_email(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if !metadata_flavor(&headers) {
        return (StatusCode::FORBIDDEN, "Missing Metadata-Flavor:Google header.").into_response();
    }
    state.lock().client_email.clone().into_response()
}

async fn metadata_token(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if !metadata_flavor(&headers) {
        return (StatusCode::FORBIDDEN, "Missing Metadata-Flavor:Google header.").into_response();
    }
    issue(&mut state.lock())
}

fn refused(inner: &Inner, headers: &HeaderMap) -> Option<Response> {
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some(t) if inner.issued.contains(t) => None,
        Some(_) => Some(google_error(StatusCode::UNAUTHORIZED, "authError", "Invalid Credentials")),
        None => Some(google_error(
            StatusCode::UNAUTHORIZED,
            "required",
            "Request is missing required authentication credential.",
        )),
    }
}

fn not_found(what: &str) -> Response {
    google_error(StatusCode::NOT_FOUND, "notFound", &format!("Not found: {what}"))
}

/// `body` with one page of `items` under `key`: from `pageToken` (an offset),
/// `maxResults` long, and `nextPageToken` when more follow.
fn paged(mut body: Value, key: &str, items: Vec<Value>, q: &HashMap<String, String>) -> Response {
    let from = q.get("pageToken").and_then(|t| t.parse::<usize>().ok()).unwrap_or(0);
    let size = q.get("maxResults").and_then(|m| m.parse::<usize>().ok()).unwrap_or(50).max(1);
    if from + size < items.len() {
        body["nextPageToken"] = json!((from + size).to_string());
    }
    body[key] = json!(items.into_iter().skip(from).take(size).collect::<Vec<_>>());
    Json(body).into_response()
}

async fn datasets(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inner = state.lock();
    if let Some(r) = refused(&inner, &headers) {
        return r;
    }
    if project != inner.project {
        return not_found(&format!("Project {project}"));
    }
    let mut names: Vec<&String> = inner.tables.keys().map(|(d, _)| d).collect();
    names.dedup();
    let all = names
        .iter()
        .map(|d| {
            json!({"kind": "bigquery#dataset", "id": format!("{project}:{d}"),
                         "datasetReference": {"projectId": project, "datasetId": d}, "location": "EU"})
        })
        .collect();
    paged(json!({"kind": "bigquery#datasetList"}), "datasets", all, &q)
}

async fn tables(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, dataset)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inner = state.lock();
    if let Some(r) = refused(&inner, &headers) {
        return r;
    }
    let of: Vec<(&String, &FakeBqTable)> =
        inner.tables.iter().filter(|((d, _), _)| *d == dataset).map(|((_, n), t)| (n, t)).collect();
    if project != inner.project || of.is_empty() {
        return not_found(&format!("Dataset {project}:{dataset}"));
    }
    let total = of.len();
    let all = of
        .iter()
        .map(|(n, t)| {
            json!({"kind": "bigquery#table", "id": format!("{project}:{dataset}.{n}"), "type": t.kind,
                   "tableReference": {"projectId": project, "datasetId": dataset, "tableId": n}})
        })
        .collect();
    paged(json!({"kind": "bigquery#tableList", "totalItems": total}), "tables", all, &q)
}

async fn table(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, dataset, name)): Path<(String, String, String)>,
) -> Response {
    let inner = state.lock();
    if let Some(r) = refused(&inner, &headers) {
        return r;
    }
    let Some(t) = inner.tables.get(&(dataset.clone(), name.clone())).filter(|_| project == inner.project) else {
        return not_found(&format!("Table {project}:{dataset}.{name}"));
    };
    Json(json!({
        "kind": "bigquery#table", "id": format!("{project}:{dataset}.{name}"), "type": t.kind,
        "tableReference": {"projectId": project, "datasetId": dataset, "tableId": name},
        "schema": {"fields": t.fields}, "numRows": t.rows.to_string(), "numBytes": t.bytes.to_string(),
        "location": "EU", "creationTime": "1735689600000",
    }))
    .into_response()
}

/// The `project.dataset.table` paths a query names in backticks.
fn referenced(sql: &str) -> Vec<(String, String, String)> {
    sql.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|path| {
            let mut parts = path.splitn(3, '.');
            Some((parts.next()?.to_string(), parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

async fn query(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut inner = state.lock();
    if let Some(r) = refused(&inner, &headers) {
        return r;
    }
    if project != inner.billing {
        return google_error(
            StatusCode::FORBIDDEN,
            "accessDenied",
            &format!("Access Denied: Project {project}: User does not have bigquery.jobs.create permission in project {project}."),
        );
    }
    let sql = body.get("query").and_then(Value::as_str).unwrap_or_default().to_string();
    if body.get("dryRun").and_then(Value::as_bool) != Some(true) {
        return google_error(StatusCode::BAD_REQUEST, "invalidQuery", "this fake answers dry runs only so far");
    }
    let mut bytes = 0u64;
    for (p, d, t) in referenced(&sql) {
        match inner.tables.get(&(d.clone(), t.clone())).filter(|_| p == inner.project) {
            Some(table) => bytes += table.bytes,
            None => return not_found(&format!("Table {p}:{d}.{t} was not found in location EU")),
        }
    }
    inner.dry_runs.push(sql);
    Json(json!({
        "kind": "bigquery#queryResponse", "jobReference": {"projectId": project, "location": "EU"},
        "totalBytesProcessed": bytes.to_string(), "jobComplete": true, "cacheHit": false,
    }))
    .into_response()
}
