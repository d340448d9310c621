//! Wire types of the HTTP contract: the server answers with them and the CLI reads them,
//! and (feature `openapi`) the server's OpenAPI schemas derive from them.

use serde::{Deserialize, Serialize};

/// `GET /api/health` (spec §3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// `ok` or `unhealthy`.
    pub status: String,
    /// `ok`, `mismatch` or `unreachable`.
    pub db_schema: String,
    pub current: i64,
    pub expected: i64,
}

/// `GET /api/version` (spec §3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionResponse {
    pub version: String,
    pub channel: String,
    pub image_tag: Option<String>,
    pub deployed_at: Option<String>,
}

/// The original's error body: `{"detail": <string or object>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub detail: serde_json::Value,
}

/// How far a knowledge item is published: `mandatory` items become one Claude Code rule
/// each, `approved` ones are combined into one, `draft` ones stay on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KnowledgeStatus {
    Mandatory,
    Approved,
    Draft,
}

impl KnowledgeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KnowledgeStatus::Mandatory => "mandatory",
            KnowledgeStatus::Approved => "approved",
            KnowledgeStatus::Draft => "draft",
        }
    }

    pub fn parse(s: &str) -> Option<KnowledgeStatus> {
        match s {
            "mandatory" => Some(KnowledgeStatus::Mandatory),
            "approved" => Some(KnowledgeStatus::Approved),
            "draft" => Some(KnowledgeStatus::Draft),
            _ => None,
        }
    }
}

/// A corporate-memory knowledge item (spec §3.11): what agents should know, in one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnowledgeItem {
    pub id: String,
    pub title: String,
    pub content: String,
    /// Who may read it: grants of resource type `memory_domain` name domains.
    pub domain: String,
    pub category: Option<String>,
    pub status: KnowledgeStatus,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_by: Option<String>,
    pub updated_at: String,
}

/// `GET /api/memory/bundle`: the published items the caller may read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryBundle {
    pub mandatory: Vec<KnowledgeItem>,
    pub approved: Vec<KnowledgeItem>,
}

/// Whether `id` may name a knowledge item (it becomes the file name `km_<id>.md`).
pub fn is_knowledge_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `POST /auth/token`, `/auth/password/login` and `/auth/bootstrap`: a 24-hour session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionToken {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Absent from `/auth/password/login`, as in the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub email: String,
    /// `admin` or `user`.
    pub role: String,
}

/// `POST /auth/tokens` (201): the token itself is shown once and never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub token: String,
    pub expires_at: Option<String>,
    pub created_at: String,
}

/// A personal access token as listed (never the token itself). The admin listing
/// (`/auth/admin/tokens`) adds its owner and the address it was last used from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ip: Option<String>,
}

/// `POST /api/query`: one SELECT over the tables the caller may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    /// Rows to answer at most; default 1,000, or the server's maximum when that is lower.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// The JSON answer of `POST /api/query` (the Arrow IPC answer carries the same in headers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueryResponse {
    pub columns: Vec<String>,
    /// Each row's values in column order, as JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<Object>>))]
    pub rows: Vec<Vec<serde_json::Value>>,
    pub row_count: usize,
    /// More rows existed than `limit`.
    pub truncated: bool,
}

/// `GET /api/sync/manifest`: every table the caller may pull, by name. Fields the
/// original server may leave out are optional, so its manifests read too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Manifest {
    pub tables: std::collections::BTreeMap<String, ManifestEntry>,
    #[serde(default)]
    pub server_time: Option<String>,
}

/// One table of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManifestEntry {
    /// The registry id (downloads take it); absent from the original's manifests.
    #[serde(default)]
    pub id: Option<String>,
    /// MD5 of the published file, `""` while nothing is published.
    #[serde(default)]
    pub hash: String,
    /// XXH3-128 of the file, which clients verify while the bytes arrive.
    #[serde(default)]
    pub checksum: Option<String>,
    /// When the table was last synced.
    #[serde(default)]
    pub updated: Option<String>,
    #[serde(default)]
    pub size_bytes: i64,
    #[serde(default)]
    pub rows: i64,
    /// `local`, `materialized` or `remote`.
    #[serde(default)]
    pub query_mode: Option<String>,
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub overdue: bool,
    /// The parts of a partitioned table, each pulled on its own.
    #[serde(default)]
    pub parts: Option<Vec<ManifestPart>>,
}

/// One part (one period's parquet) of a partitioned table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManifestPart {
    pub part: String,
    /// Where to download it.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub hash: String,
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default)]
    pub size_bytes: i64,
    #[serde(default)]
    pub rows: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knowledge_ids_and_statuses() {
        for ok in ["a", "rev-2024_q1", &"x".repeat(128)] {
            assert!(is_knowledge_id(ok), "{ok}");
        }
        for bad in ["", "../x", "a b", "a.md", &"x".repeat(129)] {
            assert!(!is_knowledge_id(bad), "{bad}");
        }
        assert_eq!(KnowledgeStatus::parse("approved"), Some(KnowledgeStatus::Approved));
        assert_eq!(KnowledgeStatus::parse("Approved"), None);
        assert_eq!(serde_json::to_string(&KnowledgeStatus::Mandatory).unwrap(), "\"mandatory\"");
    }
}
