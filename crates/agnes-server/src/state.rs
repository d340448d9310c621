use crate::config::ServerConfig;
use crate::sync::SyncService;
use agnes_engine::DataLayout;
use agnes_store::Store;
use std::sync::Arc;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub layout: DataLayout,
    pub store: Store,
    pub sync: SyncService,
    pub query: crate::query::QueryService,
    pub audit_queue: crate::audit_queue::AuditQueue,
    pub metrics: crate::metrics::Metrics,
    pub auth: Arc<crate::auth::AuthSettings>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The BigQuery source of remote queries, with its cached access token.
    pub bigquery: Option<Arc<agnes_connectors::bigquery::remote::BqRemote>>,
    /// The Jira source's webhook, queue and jobs, when Jira is configured.
    pub jira: Option<crate::jira::JiraService>,
}
