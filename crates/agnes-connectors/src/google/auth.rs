//! Signing in to Google, in the documented order: a service-account JSON key (its path in
//! the configured environment variable), the GCE metadata server, application-default
//! credentials. Access tokens are cached and fetched again five minutes before they
//! expire. No key, secret or token is ever put in a message.
//!
//! Domain-wide delegation (a service account acting as a Workspace user, as the Admin SDK
//! requires) signs the JWT-bearer assertion with a `sub`: locally with a key file's
//! private key, or without any key on the metadata server's account through the IAM
//! Credentials API's `signJwt` (Google's "keyless" delegation).

use crate::ConnectorError;
use serde::Deserialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
pub const GOOGLE_IAM_CREDENTIALS: &str = "https://iamcredentials.googleapis.com";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A service-account key file, or an application-default credentials file.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

enum Credentials {
    ServiceAccount { email: String, key: jsonwebtoken::EncodingKey, key_id: Option<String>, token_uri: String },
    Metadata { host: String, email: String },
    User { client_id: String, client_secret: String, refresh_token: String, token_uri: String },
}

/// The Workspace user a service account acts as, and where keyless signing happens.
struct Delegation {
    subject: String,
    iam_endpoint: String,
    /// Where a keylessly signed assertion is exchanged (a key file names its own).
    token_uri: String,
}

/// Who agnes signs in as, for which scopes, and a cached access token.
pub struct TokenSource {
    credentials: Credentials,
    scope: String,
    delegation: Option<Delegation>,
    cached: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

fn auth_error(what: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Source(format!("cannot sign in to Google ({what}): {e}"))
}

impl TokenSource {
    /// Find credentials in the documented order: the key file named by `credentials_env`,
    /// the metadata server (`GCE_METADATA_HOST`, else `metadata.google.internal`), the
    /// application-default credentials file. Tokens are asked for `scope` (space-separated).
    pub fn discover(
        http: &reqwest::blocking::Client,
        credentials_env: &str,
        scope: &str,
    ) -> Result<TokenSource, ConnectorError> {
        let credentials = match std::env::var(credentials_env).ok().filter(|p| !p.trim().is_empty()) {
            Some(path) => from_file(&path, &format!("the key file in {credentials_env}"))?,
            None => match metadata(http) {
                Some(c) => c,
                None => {
                    let adc = adc_path().filter(|p| p.is_file()).ok_or_else(|| {
                        ConnectorError::Config(format!(
                            "no Google credentials: set {credentials_env} to a service-account key file, run on GCE, \
                             or run `gcloud auth application-default login`"
                        ))
                    })?;
                    from_file(&adc.to_string_lossy(), "application-default credentials")?
                }
            },
        };
        Ok(TokenSource { credentials, scope: scope.into(), delegation: None, cached: Mutex::new(None) })
    }

    /// Act as the Workspace user `subject` (domain-wide delegation): only a service
    /// account can, by its key or keylessly through `iam_endpoint`'s `signJwt`.
    pub fn acting_as(
        mut self,
        subject: &str,
        iam_endpoint: &str,
        token_uri: &str,
    ) -> Result<TokenSource, ConnectorError> {
        if let Credentials::User { .. } = self.credentials {
            return Err(ConnectorError::Config(
                "domain-wide delegation needs a service account: point the credentials variable at its key \
                 file, or run on GCP as it"
                    .into(),
            ));
        }
        self.delegation = Some(Delegation {
            subject: subject.into(),
            iam_endpoint: iam_endpoint.trim_end_matches('/').into(),
            token_uri: token_uri.into(),
        });
        Ok(self)
    }

    /// Who the credentials are (an e-mail, or what kind of credentials), for `source test`.
    pub fn principal(&self) -> String {
        match &self.credentials {
            Credentials::ServiceAccount { email, .. } => email.clone(),
            Credentials::Metadata { email, .. } => format!("{email} (metadata server)"),
            Credentials::User { .. } => "application-default user credentials".into(),
        }
    }

    /// A valid access token, fetched when the cached one has less than five minutes left.
    pub fn token(&self, http: &reqwest::blocking::Client) -> Result<String, ConnectorError> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, expires)) = cached.as_ref() {
            if expires.saturating_duration_since(Instant::now()) > Duration::from_secs(300) {
                return Ok(token.clone());
            }
        }
        let answer = self.fetch(http)?;
        let expires = Instant::now() + Duration::from_secs(answer.expires_in.unwrap_or(3600));
        *cached = Some((answer.access_token.clone(), expires));
        Ok(answer.access_token)
    }

    /// The claims of a JWT-bearer assertion for `email`, to be exchanged at `token_uri`.
    fn assertion_claims(&self, email: &str, token_uri: &str) -> serde_json::Value {
        let now = chrono::Utc::now().timestamp();
        let mut claims =
            serde_json::json!({"iss": email, "scope": self.scope, "aud": token_uri, "iat": now, "exp": now + 3600});
        if let Some(d) = &self.delegation {
            claims["sub"] = d.subject.clone().into();
        }
        claims
    }

    fn fetch(&self, http: &reqwest::blocking::Client) -> Result<TokenAnswer, ConnectorError> {
        let exchange = |token_uri: &str, assertion: &str| {
            http.post(token_uri).form(&[("grant_type", JWT_BEARER), ("assertion", assertion)]).send()
        };
        let response = match (&self.credentials, &self.delegation) {
            (Credentials::ServiceAccount { email, key, key_id, token_uri }, _) => {
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                header.kid = key_id.clone();
                let assertion = jsonwebtoken::encode(&header, &self.assertion_claims(email, token_uri), key)
                    .map_err(|e| auth_error("signing the assertion", e))?;
                exchange(token_uri, &assertion)
            }
            (Credentials::Metadata { host, email }, Some(d)) => {
                let assertion = self.sign_keylessly(http, host, email, d)?;
                exchange(&d.token_uri, &assertion)
            }
            (Credentials::Metadata { host, .. }, None) => metadata_token(http, host),
            (Credentials::User { client_id, client_secret, refresh_token, token_uri }, _) => http
                .post(token_uri)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id),
                    ("client_secret", client_secret),
                    ("refresh_token", refresh_token),
                ])
                .send(),
        }
        .map_err(|e| auth_error("the token endpoint", crate::http_error(e)))?;
        let status = response.status();
        if !status.is_success() {
            // OAuth errors say `error` and `error_description`; neither carries a secret.
            let body: serde_json::Value = response.json().unwrap_or_default();
            let why =
                body.get("error_description").or_else(|| body.get("error")).and_then(|v| v.as_str()).unwrap_or("");
            return Err(ConnectorError::Config(format!("Google refused the credentials ({status}): {why}")));
        }
        response.json().map_err(|e| auth_error("the token answer", crate::http_error(e)))
    }

    /// The delegation assertion signed by Google for the metadata server's account (IAM
    /// Credentials `signJwt`; the account needs the Token Creator role on itself).
    fn sign_keylessly(
        &self,
        http: &reqwest::blocking::Client,
        host: &str,
        email: &str,
        d: &Delegation,
    ) -> Result<String, ConnectorError> {
        let own = metadata_token(http, host).map_err(|e| auth_error("the metadata server", crate::http_error(e)))?;
        if !own.status().is_success() {
            return Err(ConnectorError::Config(format!("the metadata server gave no token ({})", own.status())));
        }
        let own: TokenAnswer = own.json().map_err(|e| auth_error("the metadata token", crate::http_error(e)))?;
        let payload = self.assertion_claims(email, &d.token_uri).to_string();
        let url = format!("{}/v1/projects/-/serviceAccounts/{email}:signJwt", d.iam_endpoint);
        let signed = super::call(
            &own.access_token,
            http.post(url).json(&serde_json::json!({ "payload": payload })),
            "IAM Credentials",
        )
        .map_err(ConnectorError::from)?;
        signed
            .get("signedJwt")
            .and_then(|v| v.as_str())
            .map(String::from)
            .ok_or_else(|| ConnectorError::Source("IAM Credentials answered no signedJwt".into()))
    }
}

fn metadata_token(http: &reqwest::blocking::Client, host: &str) -> reqwest::Result<reqwest::blocking::Response> {
    http.get(format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token"))
        .header("Metadata-Flavor", "Google")
        .send()
}

fn from_file(path: &str, what: &str) -> Result<Credentials, ConnectorError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConnectorError::Config(format!("cannot read {what}: {e}")))?;
    let file: KeyFile = serde_json::from_str(&text)
        .map_err(|e| ConnectorError::Config(format!("{what} is not a Google key file: {e}")))?;
    let missing = |field: &str| ConnectorError::Config(format!("{what} has no {field}"));
    match file.kind.as_str() {
        "service_account" => {
            let pem = file.private_key.ok_or_else(|| missing("private_key"))?;
            Ok(Credentials::ServiceAccount {
                email: file.client_email.ok_or_else(|| missing("client_email"))?,
                key: jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|_| ConnectorError::Config(format!("{what}: private_key is not an RSA key in PEM")))?,
                key_id: file.private_key_id,
                token_uri: file.token_uri.unwrap_or_else(|| GOOGLE_TOKEN_URI.into()),
            })
        }
        "authorized_user" => Ok(Credentials::User {
            client_id: file.client_id.ok_or_else(|| missing("client_id"))?,
            client_secret: file.client_secret.ok_or_else(|| missing("client_secret"))?,
            refresh_token: file.refresh_token.ok_or_else(|| missing("refresh_token"))?,
            token_uri: file.token_uri.unwrap_or_else(|| GOOGLE_TOKEN_URI.into()),
        }),
        other => {
            Err(ConnectorError::Config(format!("{what} is of type '{other}': service_account or authorized_user")))
        }
    }
}

/// The metadata server's default service account, when one answers within a second.
fn metadata(http: &reqwest::blocking::Client) -> Option<Credentials> {
    let host = std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| "metadata.google.internal".into());
    let email = http
        .get(format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/email"))
        .header("Metadata-Flavor", "Google")
        .timeout(Duration::from_secs(1))
        .send()
        .ok()
        .filter(|r| r.status().is_success())?
        .text()
        .ok()?;
    Some(Credentials::Metadata { host, email: email.trim().to_string() })
}

/// `$CLOUDSDK_CONFIG/application_default_credentials.json`, else under `~/.config/gcloud`.
fn adc_path() -> Option<std::path::PathBuf> {
    let dir = match std::env::var_os("CLOUDSDK_CONFIG") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".config/gcloud"),
    };
    Some(dir.join("application_default_credentials.json"))
}
