//! A fake OpenID Connect provider, after OpenID Connect Core 1.0, Discovery 1.0, RFC 6749
//! (OAuth 2.0), RFC 7636 (PKCE) and RFC 7517 (JWK): discovery, a JWK set with a real RSA
//! key, the authorization endpoint (which signs in whoever the test says is at the
//! browser), the token endpoint (client authentication, single-use codes, PKCE S256,
//! RS256-signed ID tokens), userinfo, and a groups claim. A test can make the next ID
//! token wrong in one way (audience, issuer, expiry, signature, nonce, unverified e-mail)
//! to check that the relying party refuses it.

use crate::server::Running;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Arc;

/// Who signs in at the provider's page.
#[derive(Clone, Debug)]
pub struct Person {
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub groups: Vec<String>,
}

impl Person {
    pub fn new(email: &str, groups: &[&str]) -> Person {
        Person {
            email: email.into(),
            email_verified: true,
            name: email.split('@').next().unwrap_or_default().into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }
}

/// One way to make the next ID token wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    WrongAudience,
    WrongIssuer,
    Expired,
    BadSignature,
    NoNonce,
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<String>,
    person: Person,
}

struct Inner {
    issuer: String,
    client_id: String,
    client_secret: String,
    redirect_uris: Vec<String>,
    key: jsonwebtoken::EncodingKey,
    /// Signs tokens the JWK set does not vouch for.
    rogue: jsonwebtoken::EncodingKey,
    jwk: Value,
    at_browser: Option<Person>,
    tamper: Option<Tamper>,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, Person>,
    token_requests: usize,
}

pub struct FakeOidc {
    inner: Arc<Mutex<Inner>>,
    running: Running,
}

const KID: &str = "fake-oidc-key-1";

/// An RSA key pair (private PKCS#8 PEM) and the public key as a JWK (`n`, `e`).
fn rsa_key(dir: &std::path::Path) -> (String, Value) {
    let (private_pem, public_pem) = crate::rsa_key_pair(dir);
    let public = dir.join("public.pem");
    std::fs::write(&public, public_pem).expect("write the public key");
    let out = std::process::Command::new("openssl")
        .args(["rsa", "-pubin", "-noout", "-modulus", "-in"])
        .arg(&public)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl rsa -modulus failed");
    let hex = String::from_utf8(out.stdout).unwrap();
    let hex = hex.trim().trim_start_matches("Modulus=");
    let modulus: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID, "n": b64.encode(modulus), "e": "AQAB"});
    (private_pem, jwk)
}

fn random() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl FakeOidc {
    /// A provider with one registered client.
    pub fn start(client_id: &str, client_secret: &str) -> FakeOidc {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (private_pem, jwk) = rsa_key(dir.path());
        let rogue_dir = dir.path().join("rogue");
        std::fs::create_dir_all(&rogue_dir).expect("create a directory");
        let (rogue_pem, _) = rsa_key(&rogue_dir);
        let inner = Arc::new(Mutex::new(Inner {
            issuer: String::new(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uris: Vec::new(),
            key: jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("a private key"),
            rogue: jsonwebtoken::EncodingKey::from_rsa_pem(rogue_pem.as_bytes()).expect("a private key"),
            jwk,
            at_browser: None,
            tamper: None,
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            token_requests: 0,
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(inner.clone());
        let running = Running::start(app);
        inner.lock().issuer = format!("http://{}", running.addr);
        FakeOidc { inner, running }
    }

    pub fn issuer(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    /// Accept this redirect URI for the client (as an admin registers it at the provider).
    pub fn allow_redirect(&self, uri: &str) {
        self.inner.lock().redirect_uris.push(uri.into());
    }

    /// Who is signed in at the provider's page from now on.
    pub fn sign_in_as(&self, person: Person) {
        self.inner.lock().at_browser = Some(person);
    }

    /// Make the next ID token wrong in this way (once).
    pub fn tamper_next(&self, how: Tamper) {
        self.inner.lock().tamper = Some(how);
    }

    pub fn token_requests(&self) -> usize {
        self.inner.lock().token_requests
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

async fn discovery(State(inner): Shared) -> Json<Value> {
    let issuer = inner.lock().issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile", "groups"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "email_verified", "name", "groups"],
    }))
}

async fn jwks(State(inner): Shared) -> Json<Value> {
    Json(json!({"keys": [inner.lock().jwk.clone()]}))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// RFC 6749 §4.1.2.1: a bad client or redirect URI is told to the person, never sent to
/// the redirect URI; other errors go back to the client with `error` and the `state`.
async fn authorize(State(inner): Shared, Query(q): Query<AuthorizeQuery>) -> Response {
    let mut inner = inner.lock();
    if q.client_id.as_deref() != Some(inner.client_id.as_str()) {
        return (StatusCode::BAD_REQUEST, "invalid_request: unknown client_id").into_response();
    }
    let Some(redirect) = q.redirect_uri.filter(|r| inner.redirect_uris.contains(r)) else {
        return (StatusCode::BAD_REQUEST, "invalid_request: redirect_uri is not registered for this client")
            .into_response();
    };
    let state = q.state.map(|s| format!("&state={}", enc(&s))).unwrap_or_default();
    let back = |error: &str| Redirect::to(&format!("{redirect}?error={error}{state}")).into_response();
    if q.response_type.as_deref() != Some("code") {
        return back("unsupported_response_type");
    }
    if !q.scope.unwrap_or_default().split(' ').any(|s| s == "openid") {
        return back("invalid_scope");
    }
    if q.code_challenge.is_some() && q.code_challenge_method.as_deref() != Some("S256") {
        return back("invalid_request");
    }
    let Some(person) = inner.at_browser.clone() else {
        return back("login_required");
    };
    let code = random();
    let grant = Grant {
        client_id: inner.client_id.clone(),
        redirect_uri: redirect.clone(),
        nonce: q.nonce,
        challenge: q.code_challenge,
        person,
    };
    inner.codes.insert(code.clone(), grant);
    Redirect::to(&format!("{redirect}?code={}{state}", enc(&code))).into_response()
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The client's credentials: HTTP Basic (`client_secret_basic`, each part form-encoded
/// per RFC 6749 §2.3.1) or the form (`client_secret_post`).
fn client_of(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<(String, String)> {
    if let Some(basic) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let decoded = base64::engine::general_purpose::STANDARD.decode(basic.strip_prefix("Basic ")?).ok()?;
        let (id, secret) = String::from_utf8(decoded).ok()?.split_once(':').map(|(a, b)| (a.into(), b.into()))?;
        let unform =
            |s: String| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        return Some((unform(id), unform(secret)));
    }
    Some((form.get("client_id")?.clone(), form.get("client_secret")?.clone()))
}

async fn token(State(inner): Shared, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut inner = inner.lock();
    inner.token_requests += 1;
    match client_of(&headers, &form) {
        Some((id, secret)) if id == inner.client_id && secret == inner.client_secret => {}
        _ => return crate::oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed"),
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return crate::oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only authorization_code");
    }
    // A code is used once: taken out whatever happens next.
    let Some(grant) = form.get("code").and_then(|c| inner.codes.remove(c)) else {
        return crate::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown, used or expired code");
    };
    if grant.client_id != inner.client_id || form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return crate::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri differs from the authorization",
        );
    }
    if let Some(challenge) = &grant.challenge {
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier));
        if &computed != challenge {
            return crate::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE verification failed");
        }
    }
    let tamper = inner.tamper.take();
    let now = chrono::Utc::now().timestamp();
    let p = &grant.person;
    let mut claims = json!({
        "iss": if tamper == Some(Tamper::WrongIssuer) { "https://impostor.example".to_string() } else { inner.issuer.clone() },
        "sub": format!("sub-{}", p.email.to_lowercase()),
        "aud": if tamper == Some(Tamper::WrongAudience) { "someone-else".to_string() } else { grant.client_id.clone() },
        "iat": now,
        "exp": if tamper == Some(Tamper::Expired) { now - 600 } else { now + 300 },
        "email": p.email, "email_verified": p.email_verified, "name": p.name, "groups": p.groups,
    });
    if let (Some(nonce), false) = (&grant.nonce, tamper == Some(Tamper::NoNonce)) {
        claims["nonce"] = json!(nonce);
    }
    let mut head = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    head.kid = Some(KID.into());
    let key = if tamper == Some(Tamper::BadSignature) { &inner.rogue } else { &inner.key };
    let id_token = jsonwebtoken::encode(&head, &claims, key).expect("sign the ID token");
    let access_token = random();
    inner.access_tokens.insert(access_token.clone(), grant.person.clone());
    let mut response = Json(json!({
        "access_token": access_token, "token_type": "Bearer", "expires_in": 3600,
        "id_token": id_token, "scope": "openid email profile groups",
    }))
    .into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
    response
}

async fn userinfo(State(inner): Shared, headers: HeaderMap) -> Response {
    let inner = inner.lock();
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match bearer.and_then(|t| inner.access_tokens.get(t)) {
        Some(p) => Json(json!({
            "sub": format!("sub-{}", p.email.to_lowercase()), "email": p.email,
            "email_verified": p.email_verified, "name": p.name, "groups": p.groups,
        }))
        .into_response(),
        None => {
            let mut r = StatusCode::UNAUTHORIZED.into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"".parse().unwrap());
            r
        }
    }
}
