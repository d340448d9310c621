//! Google's side of signing in, shared by the fakes of Google APIs (BigQuery, the Admin
//! SDK Directory), after Google's public OAuth 2.0 and IAM Credentials references:
//!
//! * `POST /token`: the JWT-bearer grant (RFC 7523) of a service account: the assertion's
//!   RS256 signature is checked against the key's public half, its `iss`, `aud` and
//!   expiry; a `sub` (domain-wide delegation) is refused with `unauthorized_client`
//!   unless the account is authorized for every scope asked; and the refresh-token grant
//!   of application-default user credentials;
//! * the metadata server's `…/service-accounts/default/{email,token}`, answering only with
//!   `Metadata-Flavor: Google`;
//! * IAM Credentials `projects/-/serviceAccounts/{email}:signJwt`: the account signs a
//!   payload with its key (keyless delegation), for a caller holding a cloud-platform
//!   token;
//! * the service-account key file and application-default credentials file pointing at
//!   this token endpoint.
//!
//! Every token issued is remembered with its scopes and subject; the API fakes ask
//! [`Accounts::bearer`] who a request's token speaks for. Errors have Google's shapes.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// What an issued access token speaks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub scopes: Vec<String>,
    /// The Workspace user a service account acts as (domain-wide delegation).
    pub subject: Option<String>,
}

impl Grant {
    /// Whether the token carries one of `scopes` (cloud-platform covers every API).
    pub fn allows(&self, scopes: &[&str]) -> bool {
        self.scopes.iter().any(|s| s == CLOUD_PLATFORM || scopes.contains(&s.as_str()))
    }
}

struct Inner {
    client_email: String,
    key_id: String,
    token_uri: String,
    public_key: jsonwebtoken::DecodingKey,
    private_key: jsonwebtoken::EncodingKey,
    refresh_token: String,
    /// The scopes the account may use acting as a Workspace user (the admin console's
    /// domain-wide delegation list).
    delegated: HashSet<String>,
    issued: HashMap<String, Grant>,
    token_requests: usize,
}

/// Google's accounts as one service account and one user credential see them.
#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Mutex<Inner>>,
}

/// An error in Google's API shape.
pub fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
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

/// How long a list API's pages are: without `maxResults`, and at most.
pub struct PageSize {
    pub default: usize,
    pub max: usize,
}

/// `body` with one page of `items` under `key`: from `pageToken` (an offset),
/// `maxResults` long (over the API's maximum is refused), and `nextPageToken` when more
/// follow. No items: no `key`, as Google answers.
pub fn paged(mut body: Value, key: &str, items: Vec<Value>, q: &HashMap<String, String>, size: PageSize) -> Response {
    let from = match q.get("pageToken").map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(from)) => from,
        Some(Err(_)) => return google_error(StatusCode::BAD_REQUEST, "invalid", "Invalid value for pageToken"),
    };
    let size = match q.get("maxResults").map(|m| m.parse::<usize>()) {
        None => size.default,
        Some(Ok(n)) if (1..=size.max).contains(&n) => n,
        Some(_) => return google_error(StatusCode::BAD_REQUEST, "invalid", "Invalid value for maxResults"),
    };
    if from + size < items.len() {
        body["nextPageToken"] = json!((from + size).to_string());
    }
    let page: Vec<Value> = items.into_iter().skip(from).take(size).collect();
    if !page.is_empty() {
        body[key] = json!(page);
    }
    Json(body).into_response()
}

fn metadata_flavor(headers: &HeaderMap) -> bool {
    headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) == Some("Google")
}

impl Accounts {
    /// A service account `client_email` with a fresh key; `dir` holds the key.
    pub(crate) fn new(client_email: &str, dir: &std::path::Path) -> Accounts {
        let (private_pem, public_pem) = crate::rsa_key_pair(dir);
        Accounts {
            inner: Arc::new(Mutex::new(Inner {
                client_email: client_email.into(),
                key_id: "fake-key-1".into(),
                token_uri: String::new(),
                public_key: jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).expect("a public key"),
                private_key: jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("a private key"),
                refresh_token: "1//fake-refresh-token".into(),
                delegated: HashSet::new(),
                issued: HashMap::new(),
                token_requests: 0,
            })),
        }
    }

    /// The token, metadata and IAM Credentials routes, to merge into an API fake.
    pub(crate) fn routes(&self) -> Router {
        Router::new()
            .route("/token", post(token))
            .route("/computeMetadata/v1/instance/service-accounts/default/email", get(metadata_email))
            .route("/computeMetadata/v1/instance/service-accounts/default/token", get(metadata_token))
            .route("/v1/projects/{project}/serviceAccounts/{call}", post(sign_jwt))
            .with_state(self.clone())
    }

    /// Once the fake listens at `url`: its token endpoint is `{url}/token`, and the key
    /// file and application-default credentials file (written into `dir`) point there.
    pub(crate) fn listening(
        &self,
        url: &str,
        dir: &std::path::Path,
        project: &str,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let token_uri = format!("{url}/token");
        let mut inner = self.inner.lock();
        inner.token_uri = token_uri.clone();
        let private_pem = std::fs::read_to_string(dir.join("key.pem")).expect("the fake's key");
        let key_file = dir.join("service-account.json");
        let key = json!({
            "type": "service_account", "project_id": project, "private_key_id": inner.key_id,
            "private_key": private_pem, "client_email": inner.client_email, "client_id": "1234567890",
            "token_uri": token_uri,
        });
        std::fs::write(&key_file, serde_json::to_string_pretty(&key).unwrap()).unwrap();
        let adc_file = dir.join("application_default_credentials.json");
        let adc = json!({
            "type": "authorized_user", "client_id": "fake-client.apps.googleusercontent.com",
            "client_secret": "fake-client-secret", "refresh_token": inner.refresh_token, "token_uri": token_uri,
        });
        std::fs::write(&adc_file, serde_json::to_string_pretty(&adc).unwrap()).unwrap();
        (key_file, adc_file)
    }

    /// Authorize (or not) the account to act as Workspace users for `scope`.
    pub fn delegate(&self, scope: &str, authorized: bool) {
        let mut inner = self.inner.lock();
        if authorized {
            inner.delegated.insert(scope.into());
        } else {
            inner.delegated.remove(scope);
        }
    }

    pub fn client_email(&self) -> String {
        self.inner.lock().client_email.clone()
    }

    /// How many access tokens were asked for.
    pub fn token_requests(&self) -> usize {
        self.inner.lock().token_requests
    }

    /// What the request's bearer token speaks for, or Google's 401.
    pub fn bearer(&self, headers: &HeaderMap) -> Result<Grant, Box<Response>> {
        let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let refusal = |reason: &str, message: &str| Box::new(google_error(StatusCode::UNAUTHORIZED, reason, message));
        match token {
            Some(t) => {
                self.inner.lock().issued.get(t).cloned().ok_or_else(|| refusal("authError", "Invalid Credentials"))
            }
            None => Err(refusal("required", "Request is missing required authentication credential.")),
        }
    }
}

fn issue(inner: &mut Inner, grant: Grant) -> Response {
    inner.token_requests += 1;
    let token = format!("ya29.fake-{}-{}", inner.token_requests, inner.issued.len());
    inner.issued.insert(token.clone(), grant);
    Json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

async fn token(State(accounts): State<Accounts>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut inner = accounts.inner.lock();
    match form.get("grant_type").map(String::as_str) {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let Some(assertion) = form.get("assertion") else {
                return crate::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "no assertion");
            };
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_audience(&[inner.token_uri.clone()]);
            validation.set_issuer(&[inner.client_email.clone()]);
            let claims = match jsonwebtoken::decode::<Value>(assertion, &inner.public_key, &validation) {
                Ok(c) => c.claims,
                Err(e) => {
                    return crate::oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        &format!("Invalid JWT Signature or claims: {e}"),
                    )
                }
            };
            let scopes: Vec<String> = claims
                .get("scope")
                .and_then(Value::as_str)
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect();
            if scopes.is_empty() {
                return crate::oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "Empty or missing scope not allowed.",
                );
            }
            let subject = claims.get("sub").and_then(Value::as_str).map(String::from);
            if subject.is_some() && !scopes.iter().all(|s| inner.delegated.contains(s)) {
                return crate::oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized_client",
                    "Client is unauthorized to retrieve access tokens using this method, or client not authorized \
                     for any of the scopes requested.",
                );
            }
            issue(&mut inner, Grant { scopes, subject })
        }
        Some("refresh_token") => {
            if form.get("refresh_token") != Some(&inner.refresh_token)
                || form.get("client_secret").map(String::as_str) != Some("fake-client-secret")
            {
                return crate::oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Token has been expired or revoked.",
                );
            }
            issue(&mut inner, Grant { scopes: vec![CLOUD_PLATFORM.into()], subject: None })
        }
        _ => crate::oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Invalid grant_type"),
    }
}

async fn metadata_email(State(accounts): State<Accounts>, headers: HeaderMap) -> Response {
    if !metadata_flavor(&headers) {
        return (StatusCode::FORBIDDEN, "Missing Metadata-Flavor:Google header.").into_response();
    }
    accounts.client_email().into_response()
}

async fn metadata_token(State(accounts): State<Accounts>, headers: HeaderMap) -> Response {
    if !metadata_flavor(&headers) {
        return (StatusCode::FORBIDDEN, "Missing Metadata-Flavor:Google header.").into_response();
    }
    issue(&mut accounts.inner.lock(), Grant { scopes: vec![CLOUD_PLATFORM.into()], subject: None })
}

/// `POST /v1/projects/-/serviceAccounts/{email}:signJwt`, body `{"payload": "<JSON>"}`:
/// the payload signed RS256 with the account's key, as `{"keyId", "signedJwt"}`.
async fn sign_jwt(
    State(accounts): State<Accounts>,
    headers: HeaderMap,
    Path((_project, call)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let grant = match accounts.bearer(&headers) {
        Ok(g) => g,
        Err(r) => return *r,
    };
    if !grant.allows(&["https://www.googleapis.com/auth/iam"]) {
        return google_error(
            StatusCode::FORBIDDEN,
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        );
    }
    let inner = accounts.inner.lock();
    let Some(email) = call.strip_suffix(":signJwt") else {
        return google_error(StatusCode::NOT_FOUND, "notFound", "Method not found.");
    };
    if email != inner.client_email {
        return google_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("Permission 'iam.serviceAccounts.signJwt' denied on resource (or it may not exist): {email}"),
        );
    }
    let payload = body.get("payload").and_then(Value::as_str).and_then(|p| serde_json::from_str::<Value>(p).ok());
    let Some(payload) = payload.filter(Value::is_object) else {
        return google_error(StatusCode::BAD_REQUEST, "badRequest", "Invalid JWT payload: not a JSON object.");
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(inner.key_id.clone());
    let signed = jsonwebtoken::encode(&header, &payload, &inner.private_key).expect("the fake's key signs");
    Json(json!({"keyId": inner.key_id, "signedJwt": signed})).into_response()
}
