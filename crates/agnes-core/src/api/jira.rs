//! The Jira source: its webhook (spec §8.3), the webhook's health, and backfills.

use serde::{Deserialize, Serialize};

/// `POST /webhooks/jira`: what agnes reads of a Jira Cloud delivery (the rest, the whole
/// issue as Jira sent it, is kept as received). Signed: `X-Hub-Signature: sha256=<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JiraWebhookDelivery {
    /// `jira:issue_created`, `jira:issue_updated`, `jira:issue_deleted`, `comment_created`…
    #[serde(rename = "webhookEvent")]
    pub webhook_event: String,
    /// The issue; its `key` names it.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub issue: Option<serde_json::Value>,
    /// The key, where a delivery carries it at the top level instead.
    #[serde(default)]
    pub issue_key: Option<String>,
}

/// `POST /webhooks/jira`: the delivery is accepted (and will reach the tables).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JiraWebhookAccepted {
    /// `ok`.
    pub status: String,
    /// The delivery's `webhookEvent`.
    pub event: String,
    /// The issue key it names.
    pub issue: String,
}

/// `GET /webhooks/jira/health` (admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JiraHealth {
    /// `ok`, or `degraded` while deliveries fail to reach the tables.
    pub status: String,
    /// Jira's site and account are configured.
    pub configured: bool,
    pub webhook_secret_set: bool,
    /// Issues waiting to be fetched and republished.
    pub pending: i64,
    /// Of those, the ones whose last attempt failed (retried with backoff).
    pub failing: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_pending_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the reconcile last asked Jira what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_at: Option<String>,
}

/// `POST /api/admin/jira/backfill`: page through Jira's search and bring every issue
/// found into the tables. Neither: every issue of the site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JiraBackfillRequest {
    /// A JQL restriction (`project = SUP`).
    #[serde(default)]
    pub jql: Option<String>,
    /// Only issues updated since this day or time (`2024-01-31`, `2024-01-31 08:00`).
    #[serde(default)]
    pub since: Option<String>,
}

/// A backfill's progress (`GET` and `POST /api/admin/jira/backfill`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JiraBackfill {
    /// `none` (never run), `running`, `done` or `failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jql: Option<String>,
    /// Search pages read, and issues they named.
    pub pages: i64,
    pub issues: i64,
    /// Issues still waiting to reach the tables (from any cause).
    pub pending: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
