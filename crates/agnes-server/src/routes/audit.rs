//! Writing the audit log from handlers: who, from where, which request, what, and how it
//! ended. A failure to audit is logged, never turned into a failed request.

use crate::auth::access::Caller;
use crate::auth::authenticate::ClientInfo;
use crate::state::AppState;
use agnes_store::audit::AuditEntry;
use serde_json::Value;

pub struct Audit<'a> {
    state: &'a AppState,
    user_id: Option<String>,
    client_kind: &'static str,
    client: &'a ClientInfo,
}

impl<'a> Audit<'a> {
    pub fn of(state: &'a AppState, caller: &Caller, client: &'a ClientInfo) -> Self {
        Audit { state, user_id: Some(caller.user.id.clone()), client_kind: caller.client_kind(), client }
    }

    /// For requests made before anyone signed in (login, bootstrap).
    pub fn anonymous(state: &'a AppState, client: &'a ClientInfo) -> Self {
        Audit { state, user_id: None, client_kind: "api", client }
    }

    pub async fn record(&self, action: &str, resource: Option<&str>, params: Option<Value>, result: &str) {
        self.record_change(action, resource, params, None, result).await
    }

    /// For high-volume reads (queries, scans): queued and written in a batch moments later.
    pub fn record_soon(&self, action: &str, resource: Option<&str>, params: Option<Value>, result: &str) {
        self.state.audit_queue.push(self.entry(action, resource, params, None, result));
    }

    /// A mutation, with the state before it.
    pub async fn record_change(
        &self,
        action: &str,
        resource: Option<&str>,
        params: Option<Value>,
        before: Option<Value>,
        result: &str,
    ) {
        let entry = self.entry(action, resource, params, before, result);
        if let Err(e) = self.state.store.audit().record(&entry).await {
            tracing::error!(action, "cannot write the audit log: {e}");
        }
    }

    fn entry(
        &self,
        action: &str,
        resource: Option<&str>,
        params: Option<Value>,
        before: Option<Value>,
        result: &str,
    ) -> AuditEntry {
        AuditEntry {
            user_id: self.user_id.clone(),
            action: action.to_string(),
            resource: resource.map(String::from),
            params,
            result: Some(result.to_string()),
            duration_ms: None,
            params_before: before,
            client_ip: Some(self.client.ip.clone()),
            client_kind: Some(self.client_kind.to_string()),
            correlation_id: self.client.request_id.clone(),
            at: None,
        }
    }
}
