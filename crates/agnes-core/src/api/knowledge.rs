//! Corporate memory and business metrics.

use serde::{Deserialize, Serialize};

/// How far a knowledge item is published: `mandatory` items become one Claude Code rule
/// each, `approved` ones are combined into one, `draft` ones stay on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemoryBundle {
    pub mandatory: Vec<KnowledgeItem>,
    pub approved: Vec<KnowledgeItem>,
}

/// Whether `id` may name a knowledge item (it becomes the file name `km_<id>.md`).
pub fn is_knowledge_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `GET /api/admin/memory/items`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KnowledgeList {
    pub count: usize,
    pub items: Vec<KnowledgeItem>,
}

/// `GET /api/metrics`: the metrics the caller may see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricList {
    pub count: usize,
    pub metrics: Vec<crate::metric::MetricRecord>,
}

/// `POST /api/admin/metrics/import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricsImported {
    /// Always `imported`.
    pub status: String,
    /// Metrics written.
    pub count: usize,
    /// YAML files read.
    pub files: usize,
    /// Index files, which describe rather than define.
    pub skipped: Vec<String>,
    /// Archive entries that are not YAML.
    pub ignored: Vec<String>,
}

/// An item as an admin writes it: on create, `title`, `content` and `domain` are required
/// and `status` defaults to `draft`; on update, absent fields keep their value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
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

/// `GET|PUT /api/admin/prompts/{name}`: a text agnes gives agents, `workspace` (the
/// CLAUDE.md `agnes init` writes) or `agent_setup` (the prompt the setup page offers), as
/// served now and as built in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PromptTemplate {
    pub name: String,
    /// What is served: the override, else the built-in text. `{server_url}` is replaced
    /// when served.
    pub body: String,
    pub default_body: String,
    pub overridden: bool,
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
}

/// `PUT /api/admin/prompts/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PromptUpdate {
    pub body: String,
}

/// `GET /api/admin/metrics/validate`: each stored metric checked against the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricChecks {
    pub checked: usize,
    /// How many have at least one problem.
    pub with_problems: usize,
    pub metrics: Vec<MetricCheck>,
}

/// One metric's problems: tables not in the registry, SQL that does not parse, no SQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricCheck {
    pub id: String,
    pub problems: Vec<String>,
}
