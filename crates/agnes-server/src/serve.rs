//! Starting, running and stopping the server.

use crate::auth::ratelimit::RateLimiter;
use crate::auth::AuthSettings;
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::sync::SyncService;
use crate::ServerError;
use agnes_connectors::files::{FilesConfig, FilesConnector};
use agnes_connectors::Connector;
use agnes_store::identity::ADMIN_GROUP;
use agnes_store::Store;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A bound, ready server.
pub struct Server {
    pub state: AppState,
    listener: TcpListener,
}

impl Server {
    /// Prepare the data dir (layout, migrations, seeds, leftover temporaries) and bind.
    pub async fn build(config: ServerConfig) -> Result<Server, ServerError> {
        let state = prepare(config).await?;
        let addr = state.config.bind;
        let listener =
            TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr: addr.to_string(), source })?;
        Ok(Server { state, listener })
    }

    /// A server over state prepared earlier (see [`prepare`]) and a bound listener.
    pub fn from_parts(state: AppState, listener: TcpListener) -> Server {
        Server { state, listener }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serve until `shutdown` resolves; then stop accepting, let in-flight requests and
    /// the running sync table finish, and flush the state DB.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
        let Server { state, listener } = self;
        tracing::info!(addr = %listener.local_addr()?, data_dir = %state.config.data_dir.display(), "agnes serving");
        state
            .sync
            .start_scheduler(state.config.scheduler.clone())
            .await
            .map_err(|e| ServerError::Config(e.to_string()))?;
        let scheduler = &state.config.scheduler;
        crate::remote_metadata::start(state.store.clone(), state.bigquery.clone(), scheduler.tick, scheduler.grace);
        if let Some(jira) = &state.jira {
            jira.start();
        }
        let app = crate::routes::router(state.clone());
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("shutting down: waiting for the running sync, if any");
        if let Some(jira) = &state.jira {
            jira.shutdown().await;
        }
        state.sync.shutdown().await;
        state.audit_queue.shutdown().await;
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Everything `agnes serve` and `agnes demo` share before binding.
pub async fn prepare(config: ServerConfig) -> Result<AppState, ServerError> {
    // Everything the server writes from here on (state DB, extracts, parquet, DuckDB
    // files, uploads) is its own: created without group or world permissions.
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe { libc::umask(0o077) };
    let layout = config.layout();
    layout.create()?;
    let swept = layout.sweep_temporaries()?;
    if swept > 0 {
        tracing::info!(removed = swept, "removed temporary files left by an interrupted write");
    }
    if let Some(dir) = &config.query.sandbox.catalog_dir {
        agnes_engine::sandbox::clear_catalogs(dir)?;
    }
    let store = Store::open(&layout.state_db()).await?;
    seed_admin_from_env(&store).await?;
    let dev_user = if config.dev { Some(seed_dev_user(&store, &config).await?) } else { None };
    if dev_user.is_none() && !store.identity().admin_ever().await? {
        tracing::warn!(
            "NO ADMIN YET: set SEED_ADMIN_EMAIL and SEED_ADMIN_PASSWORD, call POST /auth/bootstrap (open until \
             the first admin exists), or run `agnes admin break-glass grant-admin EMAIL` on this host"
        );
    }
    std::fs::create_dir_all(&config.files_root)?;
    let mut connectors: Vec<Arc<dyn Connector>> =
        vec![Arc::new(FilesConnector::new(FilesConfig { root: config.files_root.clone() }))];
    for source in &config.postgres {
        connectors.push(Arc::new(agnes_connectors::postgres::PostgresConnector::new(source.clone())));
    }
    for source in &config.keboola {
        connectors.push(Arc::new(agnes_connectors::keboola::KeboolaConnector::new(source.clone())));
    }
    if let Some(source) = &config.bigquery {
        connectors.push(Arc::new(agnes_connectors::bigquery::BigQueryConnector::new(source.clone())));
    }
    let jira_raw =
        config.jira.as_ref().map(|s| agnes_connectors::jira::RawStore::new(s.data_dir(&layout.extracts_dir())));
    if let (Some(source), Some(raw)) = (&config.jira, &jira_raw) {
        connectors.push(Arc::new(agnes_connectors::jira::JiraConnector::new(source.clone(), raw.clone())));
    }
    let sync = SyncService::new(
        store.clone(),
        layout.clone(),
        connectors,
        config.limits.clone(),
        config.default_sync_schedule.clone(),
    );
    if !layout.analytics_db().is_file()
        && layout.extracts_dir().read_dir().map(|mut d| d.next().is_some()).unwrap_or(false)
    {
        let sync = sync.clone();
        tokio::spawn(async move {
            if let Err(e) = sync.rebuild().await {
                tracing::error!("initial analytics rebuild failed: {e}");
            }
        });
    }
    let auth = Arc::new(AuthSettings {
        secret: crate::auth::secret::load_or_create(&layout.state_dir())?,
        cookie_secure: config.cookie_secure,
        rate_limit: RateLimiter::from_env(),
        bootstrap_lock: tokio::sync::Mutex::new(()),
        dev_user,
        trusted_proxies: config.trusted_proxies.clone(),
        recent_pulls: Default::default(),
        sso: crate::auth::oidc::Sso::from_config(&config.instance).map_err(ServerError::Config)?,
        mailer: crate::auth::mail::Mailer::from_env().map_err(ServerError::Config)?,
        cli_codes: Default::default(),
    });
    let jira = match (&config.jira, jira_raw) {
        (Some(source), Some(raw)) => {
            let service = crate::jira::JiraService::new(source.clone(), raw, store.clone(), sync.clone());
            let added = service.ensure_registered().await?;
            if !added.is_empty() {
                tracing::info!(tables = ?added, "registered the Jira tables");
            }
            Some(service)
        }
        _ => None,
    };
    // No request runs before the server does: slots left by a previous process are void.
    store.quotas().clear_slots().await?;
    Ok(AppState {
        bigquery: config.bigquery.clone().map(|s| Arc::new(agnes_connectors::bigquery::remote::BqRemote::new(s))),
        jira,
        query: crate::query::QueryService::new(config.query.clone(), store.clone(), layout.clone(), sync.clone()),
        audit_queue: crate::audit_queue::AuditQueue::start(store.clone()),
        auth,
        config: Arc::new(config),
        layout,
        store,
        sync,
        metrics: Metrics::install(),
        started_at: chrono::Utc::now(),
    })
}

/// `SEED_ADMIN_EMAIL` (+ `SEED_ADMIN_PASSWORD`): make sure that admin exists. A missing
/// password is filled from the environment; an existing one is never overwritten.
async fn seed_admin_from_env(store: &Store) -> Result<(), ServerError> {
    let Some(email) = std::env::var("SEED_ADMIN_EMAIL").ok().map(|e| e.trim().to_string()).filter(|e| !e.is_empty())
    else {
        return Ok(());
    };
    let hash = match std::env::var("SEED_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty()) {
        Some(p) => Some(
            crate::auth::password::hash(&p)
                .await
                .map_err(|m| ServerError::Config(format!("SEED_ADMIN_PASSWORD: {m}")))?,
        ),
        None => None,
    };
    let ids = store.identity();
    let user = match ids.user_by_email(&email).await? {
        Some(u) => {
            if u.password_hash.is_none() && hash.is_some() {
                ids.set_password_hash(&u.id, hash.as_deref()).await?;
            }
            u
        }
        None => ids.create_user(&email, Some("Admin"), hash.as_deref()).await?,
    };
    let admin = ids
        .group_by_name(ADMIN_GROUP)
        .await?
        .ok_or_else(|| ServerError::Config("the Admin group is missing".into()))?;
    ids.add_member(&user.id, &admin.id, "system_seed", Some("SEED_ADMIN_EMAIL")).await?;
    Ok(())
}

/// The dev admin of `--dev`, refused unless the server listens on loopback only.
async fn seed_dev_user(store: &Store, config: &ServerConfig) -> Result<agnes_store::identity::User, ServerError> {
    if !config.bind.ip().is_loopback() {
        return Err(ServerError::Config(format!(
            "dev mode signs every request in as an admin; it is refused on {} (bind to 127.0.0.1 or ::1)",
            config.bind
        )));
    }
    let email = std::env::var("LOCAL_DEV_USER_EMAIL")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "dev@localhost".into());
    let ids = store.identity();
    let user = match ids.user_by_email(&email).await? {
        Some(u) => u,
        None => ids.create_user(&email, Some("Local developer"), None).await?,
    };
    let admin = ids
        .group_by_name(ADMIN_GROUP)
        .await?
        .ok_or_else(|| ServerError::Config("the Admin group is missing".into()))?;
    ids.add_member(&user.id, &admin.id, "system_seed", Some("dev mode")).await?;
    tracing::warn!(email = %email, "DEV MODE: every request is signed in as this admin");
    Ok(user)
}

/// Resolves on SIGINT or SIGTERM. The handlers are registered when this is called, not
/// when the future is first polled, so a signal that arrives while the server is still
/// starting is not lost (nor fatal).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut i), Ok(mut t)) => {
                tokio::select! { _ = i.recv() => {}, _ = t.recv() => {} }
            }
            _ => {
                tracing::warn!("cannot install signal handlers; stop with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
        tracing::info!("shutdown signal received");
    }
}

/// Build and run with the process's signals.
pub async fn serve(config: ServerConfig) -> Result<(), ServerError> {
    let signals = shutdown_signal();
    Server::build(config).await?.run(signals).await
}
