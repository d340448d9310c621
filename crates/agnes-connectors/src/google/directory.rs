//! The groups a Workspace user belongs to, from the Admin SDK Directory API
//! (`groups.list` with `userKey`), read as a service account acting as a Workspace admin
//! (domain-wide delegation, `GOOGLE_ADMIN_SDK_SUBJECT`).
//!
//! The client is blocking (one short call chain per sign-in); the server runs it on a
//! blocking thread.

use super::auth::{TokenSource, GOOGLE_IAM_CREDENTIALS, GOOGLE_TOKEN_URI};
use crate::ConnectorError;
use serde_json::Value;
use std::time::Duration;

/// The narrowest scope that lists groups.
pub const SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
/// The largest page `groups.list` serves.
const PAGE: usize = 200;

/// Where the Directory API and Google's sign-in endpoints are, and who agnes acts as.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryConfig {
    /// The Workspace admin the service account acts as.
    pub subject: String,
    /// The environment variable holding the service-account key file's path (absent: the
    /// metadata server's account, keylessly).
    pub credentials_env: String,
    pub api_endpoint: String,
    pub iam_endpoint: String,
    pub token_uri: String,
}

impl DirectoryConfig {
    /// Google's own endpoints, acting as `subject`.
    pub fn new(subject: &str) -> DirectoryConfig {
        DirectoryConfig {
            subject: subject.into(),
            credentials_env: "GOOGLE_APPLICATION_CREDENTIALS".into(),
            api_endpoint: "https://admin.googleapis.com".into(),
            iam_endpoint: GOOGLE_IAM_CREDENTIALS.into(),
            token_uri: GOOGLE_TOKEN_URI.into(),
        }
    }
}

pub struct Directory {
    http: reqwest::blocking::Client,
    tokens: TokenSource,
    groups_url: String,
}

impl Directory {
    /// Find the credentials and prepare the delegation; no call is made yet.
    pub fn connect(config: &DirectoryConfig) -> Result<Directory, ConnectorError> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .user_agent(concat!("agnes/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConnectorError::Source(format!("cannot build an HTTP client: {e}")))?;
        let tokens = TokenSource::discover(&http, &config.credentials_env, SCOPE)?.acting_as(
            &config.subject,
            &config.iam_endpoint,
            &config.token_uri,
        )?;
        let groups_url = format!("{}/admin/directory/v1/groups", config.api_endpoint.trim_end_matches('/'));
        Ok(Directory { http, tokens, groups_url })
    }

    /// The e-mail addresses (lower-cased) of the groups `user` is a direct member of,
    /// every page read.
    pub fn groups_of(&self, user: &str) -> Result<Vec<String>, ConnectorError> {
        let request = || self.http.get(&self.groups_url).query(&[("userKey", user)]);
        let groups = super::list(&self.http, &self.tokens, request, PAGE, "groups", "the Admin SDK")?;
        let mut emails: Vec<String> = groups
            .iter()
            .filter_map(|g| g.get("email").and_then(Value::as_str))
            .map(|e| e.trim().to_lowercase())
            .collect();
        emails.sort();
        emails.dedup();
        Ok(emails)
    }
}
