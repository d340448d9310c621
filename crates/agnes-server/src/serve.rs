//! Starting, running and stopping the server.

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::sync::SyncService;
use crate::ServerError;
use agnes_connectors::files::{FilesConfig, FilesConnector};
use agnes_connectors::Connector;
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
        let app = crate::routes::router(state.clone());
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("shutting down: waiting for the running sync, if any");
        state.sync.shutdown().await;
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Everything `agnes serve` and `agnes demo` share before binding.
pub async fn prepare(config: ServerConfig) -> Result<AppState, ServerError> {
    let layout = config.layout();
    layout.create()?;
    let swept = layout.sweep_temporaries()?;
    if swept > 0 {
        tracing::info!(removed = swept, "removed temporary files left by an interrupted write");
    }
    let store = Store::open(&layout.state_db()).await?;
    if store.identity().count_users_with_password().await? == 0 {
        tracing::warn!(
            "NO USER CAN SIGN IN: set SEED_ADMIN_EMAIL and SEED_ADMIN_PASSWORD, call POST /auth/bootstrap, \
             or run `agnes admin break-glass grant-admin EMAIL` on this host"
        );
    }
    std::fs::create_dir_all(&config.files_root)?;
    let connectors: Vec<Arc<dyn Connector>> =
        vec![Arc::new(FilesConnector::new(FilesConfig { root: config.files_root.clone() }))];
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
    Ok(AppState {
        config: Arc::new(config),
        layout,
        store,
        sync,
        metrics: Metrics::install(),
        started_at: chrono::Utc::now(),
    })
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
