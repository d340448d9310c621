//! `data_source.jira` of `instance.yaml` (spec §8.3): the Jira Cloud site, the credentials
//! and webhook secret by environment variable name, which custom fields feed which
//! columns, and how often the reconcile runs. `JIRA_DOMAIN` alone configures it too.

use crate::ConnectorError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The columns of `issues` a custom field feeds; their ids differ on every Jira site.
pub const CUSTOM_COLUMNS: [&str; 16] = [
    "request_type",
    "severity",
    "triage",
    "configuration_item",
    "participants",
    "organizations",
    "spam",
    "context",
    "custom_url",
    "slack_link",
    "technical_issue_category",
    "email_address",
    "satisfaction",
    "first_response",
    "time_to_resolution",
    "l3_team",
];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    /// The site, e.g. `acme.atlassian.net` (`JIRA_DOMAIN` overrides it).
    pub domain: Option<String>,
    /// The REST root (default `https://<domain>`): a proxy or a test can stand in.
    pub base_url: Option<String>,
    /// The environment variable holding the account's e-mail (default `JIRA_EMAIL`).
    pub email_env: Option<String>,
    /// The environment variable holding its API token (default `JIRA_API_TOKEN`).
    pub api_token_env: Option<String>,
    /// The environment variable holding the webhook secret (default `JIRA_WEBHOOK_SECRET`).
    pub webhook_secret_env: Option<String>,
    /// Column of `issues` → the custom field that feeds it (`customfield_10010`).
    /// `first_response` and `time_to_resolution` name SLA fields; `request_type` the
    /// service desk's request type (it also gives `request_status`).
    #[serde(default)]
    pub custom_fields: BTreeMap<String, String>,
    /// Seconds between reconciles that ask Jira what changed (default one day; 0: never).
    pub reconcile_interval_seconds: Option<u64>,
    /// Attachments larger than this are listed but not downloaded (default 50 MiB).
    pub max_attachment_bytes: Option<u64>,
    /// Where raw issues, attachments and the webhook event log live (default
    /// `JIRA_DATA_DIR`, else `<data dir>/extracts/jira/raw`).
    pub data_dir: Option<PathBuf>,
}

/// The configured Jira site, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JiraSource {
    pub config: JiraConfig,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

impl JiraSource {
    /// `data_source.jira`, if configured (or `JIRA_DOMAIN` is set).
    pub fn from_section(section: Option<&serde_json::Value>) -> Result<Option<JiraSource>, ConnectorError> {
        let config: JiraConfig = match section.filter(|v| !v.is_null()) {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| ConnectorError::Config(format!("data_source.jira: {e}")))?,
            None if env("JIRA_DOMAIN").is_some() => JiraConfig::default(),
            None => return Ok(None),
        };
        for column in config.custom_fields.keys() {
            if !CUSTOM_COLUMNS.contains(&column.as_str()) {
                return Err(ConnectorError::Config(format!(
                    "data_source.jira.custom_fields: no column '{column}' takes a custom field (one of: {})",
                    CUSTOM_COLUMNS.join(", ")
                )));
            }
        }
        let source = JiraSource { config };
        source.base_url()?;
        Ok(Some(source))
    }

    /// Where the REST API is: `base_url`, else `https://<JIRA_DOMAIN or domain>`.
    pub fn base_url(&self) -> Result<String, ConnectorError> {
        if let Some(url) = &self.config.base_url {
            return Ok(url.trim_end_matches('/').to_string());
        }
        let domain = env("JIRA_DOMAIN")
            .or_else(|| self.config.domain.clone())
            .ok_or_else(|| ConnectorError::Config("data_source.jira: set domain (or JIRA_DOMAIN)".into()))?;
        let domain = domain.trim_start_matches("https://").trim_end_matches('/');
        Ok(format!("https://{domain}"))
    }

    pub fn email_env(&self) -> &str {
        self.config.email_env.as_deref().unwrap_or("JIRA_EMAIL")
    }

    pub fn api_token_env(&self) -> &str {
        self.config.api_token_env.as_deref().unwrap_or("JIRA_API_TOKEN")
    }

    pub fn webhook_secret_env(&self) -> &str {
        self.config.webhook_secret_env.as_deref().unwrap_or("JIRA_WEBHOOK_SECRET")
    }

    /// The webhook secret, when its variable is set.
    pub fn webhook_secret(&self) -> Option<String> {
        env(self.webhook_secret_env())
    }

    /// The account and API token, when both variables are set.
    pub fn credentials(&self) -> Option<(String, String)> {
        Some((env(self.email_env())?, env(self.api_token_env())?))
    }

    pub fn custom_field(&self, column: &str) -> Option<&str> {
        self.config.custom_fields.get(column).map(String::as_str)
    }

    pub fn reconcile_interval(&self) -> Option<std::time::Duration> {
        match self.config.reconcile_interval_seconds.unwrap_or(86_400) {
            0 => None,
            s => Some(std::time::Duration::from_secs(s)),
        }
    }

    pub fn max_attachment_bytes(&self) -> u64 {
        self.config.max_attachment_bytes.unwrap_or(50 * 1024 * 1024)
    }

    /// The raw store's directory under the data directory `extracts`.
    pub fn data_dir(&self, extracts: &std::path::Path) -> PathBuf {
        self.config
            .data_dir
            .clone()
            .or_else(|| env("JIRA_DATA_DIR").map(PathBuf::from))
            .unwrap_or_else(|| extracts.join(super::SOURCE).join("raw"))
    }
}
