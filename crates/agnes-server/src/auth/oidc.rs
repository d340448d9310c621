//! Sign-in through OpenID Connect providers: Google (`GOOGLE_CLIENT_ID` and
//! `GOOGLE_CLIENT_SECRET`) and any provider under `auth.oidc.<name>` in instance.yaml.
//!
//! The protocol is the `openidconnect` crate's: discovery, the authorization code flow
//! with PKCE (S256), state and nonce, and the ID token's signature (from the provider's
//! JWK set) and claims (issuer, audience, expiry, nonce) verified. What is ours: where a
//! flow's secrets wait between the two legs (server-side, found by a random id in a
//! short-lived cookie, used once), who may enter (verified e-mail, `auth.allowed_domain`,
//! required groups), and how the provider's groups map onto agnes groups.

use agnes_connectors::google::directory::{Directory, DirectoryConfig};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse,
};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a started sign-in waits for the provider to send the person back.
const FLOW_TTL: Duration = Duration::from_secs(600);
/// Started sign-ins kept at most: anonymous requests cannot grow memory without bound.
const MAX_PENDING: usize = 10_000;
/// How long a provider's discovery document (and its keys) is trusted before it is read again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// How a provider's groups become agnes groups.
#[derive(Debug, Clone, Default)]
pub struct GroupRules {
    /// The ID token (or userinfo) claim that lists the person's groups.
    pub claim: Option<String>,
    /// Only groups starting with this count; a non-empty list with none of them refuses
    /// the sign-in (`not_in_allowed_group`).
    pub prefix: Option<String>,
    /// The provider group that maps to `Admin`, and the one that maps to `Everyone`.
    pub admin: Option<String>,
    pub everyone: Option<String>,
    /// At least one of these is required to enter, when set.
    pub required: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Provider {
    /// `google`, or the key under `auth.oidc`.
    pub name: String,
    pub display_name: String,
    issuer: String,
    client_id: String,
    /// The environment variable holding the client secret (read when used, never kept).
    secret_env: String,
    scopes: Vec<String>,
    pub groups: GroupRules,
    /// Google Workspace's directory, read for the person's groups at each sign-in
    /// (`GOOGLE_ADMIN_SDK_SUBJECT` set): it wins over a groups claim.
    directory: Option<DirectoryConfig>,
}

impl Provider {
    /// The `source` of the memberships this provider's sign-ins write.
    pub fn membership_source(&self) -> String {
        format!("{}_sync", self.name)
    }

    /// Where the provider sends the person back: the contract's path for Google.
    pub fn callback_path(&self) -> String {
        if self.name == "google" {
            "/auth/google/callback".into()
        } else {
            format!("/auth/oidc/{}/callback", self.name)
        }
    }

    pub fn login_path(&self) -> String {
        if self.name == "google" {
            "/auth/google/login".into()
        } else {
            format!("/auth/oidc/{}/login", self.name)
        }
    }
}

/// Why a sign-in did not happen; `code` is what `/login?error=` says.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("no sign-in provider named '{0}'")]
    UnknownProvider(String),
    #[error("the identity provider cannot be reached: {0}")]
    Unavailable(String),
    #[error("the sign-in expired or was already used; start again")]
    InvalidState,
    #[error("the identity provider refused: {0}")]
    Provider(String),
    #[error("the identity provider's answer failed verification: {0}")]
    Invalid(String),
    #[error("the identity provider did not vouch for this e-mail address")]
    EmailNotVerified,
    #[error("this e-mail domain may not sign in here")]
    DomainNotAllowed,
    #[error("you are in none of the groups that may sign in here")]
    NotInAllowedGroup,
    #[error("this account is deactivated")]
    Deactivated,
    #[error("agnes failed to record the sign-in: {0}")]
    Internal(String),
}

impl SsoError {
    pub fn code(&self) -> &'static str {
        match self {
            SsoError::UnknownProvider(_) => "unknown_provider",
            SsoError::Unavailable(_) => "provider_unavailable",
            SsoError::InvalidState => "invalid_state",
            SsoError::Provider(_) => "provider_error",
            SsoError::Invalid(_) => "invalid_token",
            SsoError::EmailNotVerified => "email_not_verified",
            SsoError::DomainNotAllowed => "domain_not_allowed",
            SsoError::NotInAllowedGroup => "not_in_allowed_group",
            SsoError::Deactivated => "account_deactivated",
            SsoError::Internal(_) => "sso_failed",
        }
    }
}

/// Who the provider vouched for.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Trimmed and lower-cased: one person is one account whatever case a provider sends.
    pub email: String,
    pub name: Option<String>,
    /// The groups claim as sent (`None`: the provider sent no such claim).
    pub groups: Option<Vec<String>>,
}

/// What waits between sending the person to the provider and their return.
struct Pending {
    provider: String,
    state: String,
    nonce: String,
    verifier: String,
    redirect: String,
    next: String,
    started: Instant,
}

pub struct Sso {
    providers: Vec<Provider>,
    allowed_domains: Vec<String>,
    http: reqwest::Client,
    metadata: tokio::sync::Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>,
    pending: parking_lot::Mutex<HashMap<String, Pending>>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => Vec::new(),
    }
}

fn text(section: &Value, key: &str) -> Option<String> {
    section.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(String::from)
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

impl Sso {
    /// The providers of `auth` in instance.yaml, and Google when its client is in the
    /// environment. A provider missing its issuer or client is a configuration error.
    pub fn from_config(instance: &Value) -> Result<Sso, String> {
        let auth = instance.get("auth").cloned().unwrap_or(Value::Null);
        let mut providers = Vec::new();
        let configured = auth.get("oidc").and_then(Value::as_object).cloned().unwrap_or_default();
        if env("GOOGLE_CLIENT_ID").is_some() && env("GOOGLE_CLIENT_SECRET").is_some() {
            // Google's groups come from the Workspace directory, named by their e-mail.
            let section = configured.get("google").cloned().unwrap_or(Value::Null);
            let directory = env("GOOGLE_ADMIN_SDK_SUBJECT").map(|subject| {
                let defaults = DirectoryConfig::new(&subject);
                let or = |key: &str, default: String| text(&section, key).unwrap_or(default);
                DirectoryConfig {
                    credentials_env: or("credentials_env", defaults.credentials_env),
                    api_endpoint: or("directory_endpoint", defaults.api_endpoint),
                    iam_endpoint: or("iam_endpoint", defaults.iam_endpoint),
                    token_uri: or("token_uri", defaults.token_uri),
                    subject,
                }
            });
            providers.push(Provider {
                name: "google".into(),
                display_name: "Google".into(),
                issuer: text(&section, "issuer").unwrap_or_else(|| "https://accounts.google.com".into()),
                client_id: env("GOOGLE_CLIENT_ID").unwrap_or_default(),
                secret_env: "GOOGLE_CLIENT_SECRET".into(),
                scopes: vec!["email".into(), "profile".into()],
                groups: GroupRules {
                    claim: text(&section, "groups_claim"),
                    prefix: env("AGNES_GOOGLE_GROUP_PREFIX"),
                    admin: env("AGNES_GROUP_ADMIN_EMAIL"),
                    everyone: env("AGNES_GROUP_EVERYONE_EMAIL"),
                    required: strings(section.get("required_groups")),
                },
                directory,
            });
        }
        for (name, section) in configured.iter().filter(|(n, _)| n.as_str() != "google") {
            let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(format!("auth.oidc.{name}: a provider name is letters, digits, '-' and '_'"));
            }
            let need = |key: &str| text(section, key).ok_or_else(|| format!("auth.oidc.{name}.{key} is required"));
            let mut scopes = strings(section.get("scopes"));
            if scopes.is_empty() {
                scopes = vec!["email".into(), "profile".into()];
            }
            scopes.retain(|s| s != "openid");
            providers.push(Provider {
                name: name.clone(),
                display_name: text(section, "display_name").unwrap_or_else(|| name.clone()),
                issuer: need("issuer")?,
                client_id: need("client_id")?,
                secret_env: need("client_secret_env")?,
                scopes,
                groups: GroupRules {
                    claim: text(section, "groups_claim"),
                    prefix: text(section, "group_prefix"),
                    admin: text(section, "admin_group"),
                    everyone: text(section, "everyone_group"),
                    required: strings(section.get("required_groups")),
                },
                directory: None,
            });
        }
        let allowed_domains = strings(auth.get("allowed_domain")).into_iter().map(|d| d.to_lowercase()).collect();
        let http = reqwest::Client::builder()
            // The provider's endpoints answer; they never send us elsewhere (an SSRF guard).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Sso { providers, allowed_domains, http, metadata: Default::default(), pending: Default::default() })
    }

    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    pub fn provider(&self, name: &str) -> Result<&Provider, SsoError> {
        self.providers.iter().find(|p| p.name == name).ok_or_else(|| SsoError::UnknownProvider(name.into()))
    }

    async fn metadata(&self, p: &Provider) -> Result<CoreProviderMetadata, SsoError> {
        let mut cache = self.metadata.lock().await;
        if let Some((at, m)) = cache.get(&p.name) {
            if at.elapsed() < METADATA_TTL {
                return Ok(m.clone());
            }
        }
        let issuer = IssuerUrl::new(p.issuer.clone()).map_err(|e| SsoError::Unavailable(e.to_string()))?;
        let m = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| SsoError::Unavailable(format!("discovery at {}: {e}", p.issuer)))?;
        cache.insert(p.name.clone(), (Instant::now(), m.clone()));
        Ok(m)
    }

    /// Start a sign-in: the provider's authorization URL to send the person to, and the
    /// id of the waiting flow for the cookie. `base` is this server's public URL.
    pub async fn begin(&self, name: &str, base: &str, next: &str) -> Result<(String, String), SsoError> {
        let p = self.provider(name)?;
        let metadata = self.metadata(p).await?;
        let redirect = format!("{base}{}", p.callback_path());
        let client = CoreClient::from_provider_metadata(metadata, ClientId::new(p.client_id.clone()), None)
            .set_redirect_uri(RedirectUrl::new(redirect.clone()).map_err(|e| SsoError::Unavailable(e.to_string()))?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scopes(p.scopes.iter().map(|s| Scope::new(s.clone())))
            .set_pkce_challenge(challenge)
            .url();
        let flow = CsrfToken::new_random().secret().clone();
        let mut pending = self.pending.lock();
        pending.retain(|_, f| f.started.elapsed() < FLOW_TTL);
        if pending.len() >= MAX_PENDING {
            return Err(SsoError::Unavailable("too many sign-ins in progress; try again in a minute".into()));
        }
        pending.insert(
            flow.clone(),
            Pending {
                provider: p.name.clone(),
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                verifier: verifier.secret().clone(),
                redirect,
                next: next.into(),
                started: Instant::now(),
            },
        );
        Ok((url.to_string(), flow))
    }

    /// Finish a sign-in: the flow of the cookie (used up here, whatever follows) must be
    /// this provider's and carry this `state`; the code is exchanged with the PKCE
    /// verifier and the ID token verified. Answers who it is and where they were going.
    pub async fn finish(
        &self,
        name: &str,
        flow: Option<&str>,
        state: &str,
        code: &str,
    ) -> Result<(Identity, String), SsoError> {
        let p = self.provider(name)?;
        let pending = flow.and_then(|f| self.pending.lock().remove(f)).ok_or(SsoError::InvalidState)?;
        let same_state: bool = subtle::ConstantTimeEq::ct_eq(pending.state.as_bytes(), state.as_bytes()).into();
        if pending.provider != p.name || !same_state || pending.started.elapsed() >= FLOW_TTL {
            return Err(SsoError::InvalidState);
        }
        let secret = std::env::var(&p.secret_env)
            .map_err(|_| SsoError::Unavailable(format!("the client secret variable {} is not set", p.secret_env)))?;
        let metadata = self.metadata(p).await?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(p.client_id.clone()),
            Some(ClientSecret::new(secret)),
        )
        .set_redirect_uri(RedirectUrl::new(pending.redirect.clone()).map_err(|e| SsoError::Invalid(e.to_string()))?);
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SsoError::Unavailable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| SsoError::Provider(format!("token exchange: {e}")))?;
        let id_token = tokens.id_token().ok_or_else(|| SsoError::Invalid("no ID token in the answer".into()))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(pending.nonce.clone()))
            .map_err(|e| SsoError::Invalid(e.to_string()))?;
        if claims.email_verified() != Some(true) {
            return Err(SsoError::EmailNotVerified);
        }
        let email = claims.email().map(|e| e.as_str().trim().to_lowercase()).ok_or(SsoError::EmailNotVerified)?;
        let name = claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string());
        // The claims the crate does not model (groups) are read from the token it has just
        // verified: its signature covers this payload.
        let groups = p.groups.claim.as_deref().and_then(|claim| payload(&id_token.to_string())?.get(claim).cloned());
        let mut groups = groups.map(|g| strings(Some(&g)));
        if let Some(config) = &p.directory {
            groups = Some(directory_groups(config, &email).await);
        }
        Ok((Identity { email, name, groups }, pending.next))
    }

    /// Forget a started sign-in the provider refused.
    pub fn abandon(&self, flow: Option<&str>) {
        if let Some(f) = flow {
            self.pending.lock().remove(f);
        }
    }

    /// Whether this identity may enter: its domain, and the provider's required groups.
    pub fn admit(&self, p: &Provider, who: &Identity) -> Result<(), SsoError> {
        let domain = who.email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        if !self.allowed_domains.is_empty() && !self.allowed_domains.iter().any(|d| d == domain) {
            return Err(SsoError::DomainNotAllowed);
        }
        let groups = who.groups.as_deref().unwrap_or_default();
        if !p.groups.required.is_empty() && !groups.iter().any(|g| p.groups.required.contains(g)) {
            return Err(SsoError::NotInAllowedGroup);
        }
        if let Some(prefix) = &p.groups.prefix {
            if !groups.is_empty() && !groups.iter().any(|g| g.starts_with(prefix.as_str())) {
                return Err(SsoError::NotInAllowedGroup);
            }
        }
        Ok(())
    }
}

/// The Workspace groups of `email` (their e-mails); a failed read is logged and counts as
/// an empty one, which keeps the memberships of the last sign-in.
async fn directory_groups(config: &DirectoryConfig, email: &str) -> Vec<String> {
    let (config, email) = (config.clone(), email.to_string());
    // A blocking client, built and dropped on a blocking thread: one short chain per sign-in.
    let read = tokio::task::spawn_blocking(move || Directory::connect(&config)?.groups_of(&email)).await;
    match read {
        Ok(Ok(groups)) => groups,
        Ok(Err(e)) => {
            tracing::warn!("the Workspace groups could not be read; the last sign-in's stay: {e}");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!("the Workspace group read failed: {e}");
            Vec::new()
        }
    }
}

/// The JSON payload of a compact JWS.
fn payload(jws: &str) -> Option<Value> {
    use base64::Engine;
    let part = jws.split('.').nth(1)?;
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// The agnes group names a provider's groups map to: the admin and everyone groups onto
/// `Admin` and `Everyone`, the rest (past the prefix filter) by their own name.
pub fn agnes_groups(rules: &GroupRules, groups: &[String]) -> Vec<String> {
    let mut out: Vec<String> = groups
        .iter()
        .filter(|g| {
            let mapped = Some(*g) == rules.admin.as_ref() || Some(*g) == rules.everyone.as_ref();
            mapped || rules.prefix.as_ref().is_none_or(|p| g.starts_with(p.as_str()))
        })
        .map(|g| match g {
            g if Some(g) == rules.admin.as_ref() => agnes_store::identity::ADMIN_GROUP.to_string(),
            g if Some(g) == rules.everyone.as_ref() => agnes_store::identity::EVERYONE_GROUP.to_string(),
            g => g.clone(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_onto_admin_everyone_and_their_own_names() {
        let rules = GroupRules {
            prefix: Some("agnes-".into()),
            admin: Some("it-admins@corp.example".into()),
            everyone: Some("agnes-all".into()),
            ..Default::default()
        };
        let sent: Vec<String> =
            ["agnes-finance", "it-admins@corp.example", "agnes-all", "sales", "agnes-finance"].map(String::from).into();
        assert_eq!(agnes_groups(&rules, &sent), ["Admin", "Everyone", "agnes-finance"]);
        assert!(agnes_groups(&GroupRules::default(), &[]).is_empty());
    }

    #[test]
    fn config_reads_providers_and_refuses_incomplete_ones() {
        let instance = serde_json::json!({"auth": {"allowed_domain": "Corp.example, other.example", "oidc": {
            "acme": {"issuer": "https://id.acme.example", "client_id": "agnes", "client_secret_env": "ACME_SECRET",
                     "scopes": ["openid", "email", "groups"], "groups_claim": "groups", "required_groups": "data, ops"}}}});
        let sso = Sso::from_config(&instance).unwrap();
        let acme = sso.provider("acme").unwrap();
        assert_eq!(
            (acme.scopes.clone(), acme.groups.required.clone()),
            (vec!["email".into(), "groups".into()], vec!["data".to_string(), "ops".into()])
        );
        assert_eq!(sso.allowed_domains, ["corp.example", "other.example"]);
        assert_eq!(
            (acme.login_path(), acme.callback_path()),
            ("/auth/oidc/acme/login".into(), "/auth/oidc/acme/callback".into())
        );
        let who = |email: &str, groups: &[&str]| Identity {
            email: email.into(),
            name: None,
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
        };
        assert!(sso.admit(acme, &who("a@corp.example", &["ops"])).is_ok());
        assert!(matches!(sso.admit(acme, &who("a@corp.example.evil", &["ops"])), Err(SsoError::DomainNotAllowed)));
        assert!(matches!(sso.admit(acme, &who("a@other.example", &["sales"])), Err(SsoError::NotInAllowedGroup)));
        let broken = serde_json::json!({"auth": {"oidc": {"x": {"issuer": "https://x.example"}}}});
        assert!(Sso::from_config(&broken).err().unwrap().contains("auth.oidc.x.client_id is required"));
        let named = serde_json::json!({"auth": {"oidc": {"a/b": {}}}});
        assert!(Sso::from_config(&named).is_err());
    }
}
