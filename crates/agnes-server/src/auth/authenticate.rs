//! Default-deny authentication: a middleware over the whole router resolves the caller
//! for every request and refuses (401) any route not declared public in the OpenAPI
//! document the routes are built from. A route added without thought is therefore
//! authenticated, not open.

use super::access::{Caller, Credential};
use super::pat::{token_hash, TOKEN_PREFIX};
use super::session;
use crate::error::ApiError;
use agnes_store::identity::User;
use agnes_store::Store;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "access_token";

/// Why a credential was refused; the texts are the contract's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Invalid,
    Deactivated,
    UserNotFound,
    TokenUnknown,
    TokenRevoked,
    TokenExpired,
    TokenMismatch,
}

impl AuthFailure {
    pub fn detail(self) -> &'static str {
        match self {
            AuthFailure::Missing => "Missing or invalid Authorization header",
            AuthFailure::Invalid => "Invalid or expired token",
            AuthFailure::Deactivated => "Account deactivated",
            AuthFailure::UserNotFound => "User not found",
            AuthFailure::TokenUnknown => "Token unknown",
            AuthFailure::TokenRevoked => "Token revoked",
            AuthFailure::TokenExpired => "Token expired",
            AuthFailure::TokenMismatch => "Token mismatch",
        }
    }
}

impl IntoResponse for AuthFailure {
    fn into_response(self) -> Response {
        let mut r = ApiError::new(StatusCode::UNAUTHORIZED, self.detail()).into_response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        r
    }
}

/// What the authentication middleware needs.
pub struct AuthContext {
    pub store: Store,
    pub secret: Vec<u8>,
    /// `--dev`: the user every request is signed in as.
    pub dev_user: Option<User>,
    /// `(method, route template)` pairs that need no credential.
    pub public: HashSet<(Method, String)>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Last recorded use of each token, to write `last_used_*` at most once a minute.
    touched: Mutex<HashMap<String, (String, Instant)>>,
    everyone_id: tokio::sync::OnceCell<String>,
}

const TOUCH_EVERY: Duration = Duration::from_secs(60);

impl AuthContext {
    pub fn new(
        store: Store,
        secret: Vec<u8>,
        dev_user: Option<User>,
        public: HashSet<(Method, String)>,
        trusted_proxies: Vec<IpAddr>,
    ) -> Self {
        AuthContext {
            store,
            secret,
            dev_user,
            public,
            trusted_proxies,
            touched: Mutex::new(HashMap::new()),
            everyone_id: tokio::sync::OnceCell::new(),
        }
    }

    /// The client's address: the peer, or the first `X-Forwarded-For` hop when the peer
    /// is a trusted proxy (loopback counts as trusted, for a local reverse proxy).
    pub fn client_ip(&self, peer: Option<SocketAddr>, headers: &axum::http::HeaderMap) -> String {
        let Some(peer) = peer else { return "unknown".into() };
        let trusted = peer.ip().is_loopback() || self.trusted_proxies.contains(&peer.ip());
        if trusted {
            if let Some(first) = headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|s| s.parse::<IpAddr>().is_ok())
            {
                return first.to_string();
            }
        }
        peer.ip().to_string()
    }

    /// Resolve the credential on a request, if any.
    pub async fn resolve(&self, headers: &axum::http::HeaderMap, ip: &str) -> Result<Option<Caller>, AuthFailure> {
        if let Some(dev) = &self.dev_user {
            return self.caller(dev.clone(), Credential::Dev).await.map(Some);
        }
        let (token, via_cookie) = match headers.get(header::AUTHORIZATION) {
            Some(v) => {
                let v = v.to_str().map_err(|_| AuthFailure::Missing)?;
                let t = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).ok_or(AuthFailure::Missing)?;
                (t.trim().to_string(), false)
            }
            None => match cookie(headers, SESSION_COOKIE) {
                Some(t) => (t, true),
                None => return Ok(None),
            },
        };
        if token.is_empty() {
            return Err(AuthFailure::Missing);
        }
        if let Some(jwt) = token.strip_prefix(TOKEN_PREFIX) {
            return self.resolve_pat(&token, jwt, ip).await.map(Some);
        }
        let claims = session::verify(&self.secret, &token, true).ok_or(AuthFailure::Invalid)?;
        if claims.typ != "session" {
            return Err(AuthFailure::Invalid);
        }
        let user = self.active_user(&claims.sub).await?;
        if !claims.session_is_current(&user) {
            return Err(AuthFailure::Invalid);
        }
        self.caller(user, Credential::Session { via_cookie }).await.map(Some)
    }

    async fn resolve_pat(&self, token: &str, jwt: &str, ip: &str) -> Result<Caller, AuthFailure> {
        let claims = session::verify(&self.secret, jwt, false).ok_or(AuthFailure::Invalid)?;
        if claims.typ != "pat" {
            return Err(AuthFailure::Invalid);
        }
        let found = self.store.identity().token_with_user(&claims.jti).await.map_err(|_| AuthFailure::Invalid)?;
        let Some((row, user, groups)) = found else {
            // No row: either the token was deleted or its user was (rows cascade).
            return Err(match self.store.identity().user(&claims.sub).await {
                Ok(None) => AuthFailure::UserNotFound,
                _ => AuthFailure::TokenUnknown,
            });
        };
        if row.user_id != claims.sub {
            return Err(AuthFailure::TokenMismatch);
        }
        if !user.active {
            return Err(AuthFailure::Deactivated);
        }
        if row.revoked_at.is_some() {
            return Err(AuthFailure::TokenRevoked);
        }
        if let Some(exp) = row.expires_at.as_deref().and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok()) {
            if exp <= chrono::Utc::now() {
                return Err(AuthFailure::TokenExpired);
            }
        }
        if row.token_hash != token_hash(token) {
            return Err(AuthFailure::TokenMismatch);
        }
        self.touch(&row.id, ip, &user.id).await;
        let everyone = self.everyone_id().await?;
        Ok(Caller::with_groups(user, Credential::Pat { id: row.id }, groups, everyone))
    }

    /// Record `last_used_*` (at most once a minute per token and IP) and audit the first
    /// use from an IP other than the last one seen.
    async fn touch(&self, token_id: &str, ip: &str, user_id: &str) {
        {
            let touched = self.touched.lock();
            if let Some((last_ip, at)) = touched.get(token_id) {
                if last_ip == ip && at.elapsed() < TOUCH_EVERY {
                    return;
                }
            }
        }
        self.touched.lock().insert(token_id.to_string(), (ip.to_string(), Instant::now()));
        match self.store.identity().touch_token(token_id, ip).await {
            Ok(Some(previous)) if previous != ip => {
                let entry = agnes_store::audit::AuditEntry {
                    user_id: Some(user_id.to_string()),
                    action: "token.first_use_new_ip".into(),
                    resource: Some(format!("token:{token_id}")),
                    params: Some(serde_json::json!({"previous_ip": previous, "ip": ip})),
                    result: Some("success".into()),
                    client_ip: Some(ip.to_string()),
                    client_kind: Some("cli".into()),
                    ..Default::default()
                };
                if let Err(e) = self.store.audit().record(&entry).await {
                    tracing::warn!("cannot audit a token's new IP: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot record token use: {e}"),
        }
    }

    async fn active_user(&self, id: &str) -> Result<User, AuthFailure> {
        let user =
            self.store.identity().user(id).await.map_err(|_| AuthFailure::Invalid)?.ok_or(AuthFailure::UserNotFound)?;
        if !user.active {
            return Err(AuthFailure::Deactivated);
        }
        Ok(user)
    }

    /// The id of `Everyone`, read once: a system group's id never changes.
    async fn everyone_id(&self) -> Result<&str, AuthFailure> {
        self.everyone_id
            .get_or_try_init(|| async { self.store.identity().everyone_group().await.map(|g| g.id) })
            .await
            .map(String::as_str)
            .map_err(|e| {
                tracing::error!("cannot load the Everyone group: {e}");
                AuthFailure::Invalid
            })
    }

    async fn caller(&self, user: User, credential: Credential) -> Result<Caller, AuthFailure> {
        let everyone = self.everyone_id().await?;
        Caller::load_with(&self.store, user, credential, everyone).await.map_err(|e| {
            tracing::error!("cannot load the caller's groups: {e}");
            AuthFailure::Invalid
        })
    }
}

pub(crate) fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// The client IP and request id of a request, for handlers and the audit log.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: String,
    pub request_id: Option<String>,
}

/// Middleware: resolve the caller; refuse non-public routes without one.
pub async fn authenticate(State(ctx): State<Arc<AuthContext>>, mut req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let public = route.as_ref().is_some_and(|r| ctx.public.contains(&(req.method().clone(), r.clone())));
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let ip = ctx.client_ip(peer, req.headers());
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(String::from);
    req.extensions_mut().insert(ClientInfo { ip: ip.clone(), request_id });
    match ctx.resolve(req.headers(), &ip).await {
        Ok(Some(caller)) => {
            req.extensions_mut().insert(caller);
        }
        // Unmatched paths fall through to the 404 fallback.
        Ok(None) if public || route.is_none() => {}
        Ok(None) => return AuthFailure::Missing.into_response(),
        // A stale cookie must not lock anyone out of the login page.
        Err(_) if public => {}
        Err(failure) => return failure.into_response(),
    }
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| AuthFailure::Missing.into_response())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientInfo>()
            .cloned()
            .unwrap_or(ClientInfo { ip: "unknown".into(), request_id: None }))
    }
}

/// A caller who is a member of `Admin`; anyone else gets 403.
pub struct Admin(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.is_admin {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "Admin access required").into_response());
        }
        Ok(Admin(caller))
    }
}

/// A caller signed in with a session (not a personal access token).
pub struct SessionCaller(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for SessionCaller {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if matches!(caller.credential, Credential::Pat { .. }) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "This endpoint requires a session login; personal access tokens cannot create tokens",
            )
            .into_response());
        }
        Ok(SessionCaller(caller))
    }
}
