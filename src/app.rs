//! Wiring: load policies, start the gRPC and admin servers, shut down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::gate::Gate;
use crate::metrics;
use crate::policy::PolicyStore;
use crate::service::AuthzService;

/// Default gRPC listen address.
pub const DEFAULT_GRPC_LISTEN: &str = "0.0.0.0:9191";
/// Default admin listen address.
pub const DEFAULT_ADMIN_LISTEN: &str = "0.0.0.0:9464";

/// What `serve` needs, after flags and config are merged.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The validated config.
    pub config: Config,
    /// The policy directory.
    pub policy_dir: PathBuf,
    /// gRPC listen address.
    pub grpc_listen: SocketAddr,
    /// Admin listen address.
    pub admin_listen: SocketAddr,
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The audit sink could not be opened.
    #[error("cannot open the audit sink: {0}")]
    Audit(std::io::Error),
}

/// A started server.
#[derive(Debug)]
pub struct Running {
    /// The bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// The bound admin address.
    pub admin_addr: SocketAddr,
    /// The policy store (for reloads).
    pub store: Arc<PolicyStore>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    audit: AuditLog,
}

// === impl Running ===

impl Running {
    /// Stops accepting, lets in-flight checks finish, then flushes the audit log.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        // The service (and its audit sender clone) is gone with the server task.
        let audit = self.audit;
        let _ = tokio::task::spawn_blocking(move || audit.close()).await;
    }
}

/// Starts everything and returns once both listeners are bound.
pub async fn start(settings: Settings) -> Result<Running, AppError> {
    let prometheus = metrics::install();
    let config = Arc::new(settings.config);
    let store = Arc::new(PolicyStore::new(&settings.policy_dir));
    let audit = AuditLog::open(&config.audit).map_err(AppError::Audit)?;

    let grpc = bind(settings.grpc_listen).await?;
    let admin = bind(settings.admin_listen).await?;
    let grpc_addr = grpc.local_addr().map_err(|source| AppError::Bind {
        addr: settings.grpc_listen,
        source,
    })?;
    let admin_addr = admin.local_addr().map_err(|source| AppError::Bind {
        addr: settings.admin_listen,
        source,
    })?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_not_serving::<AuthorizationServer<AuthzService>>()
        .await;
    if reload(&store) {
        health
            .set_serving::<AuthorizationServer<AuthzService>>()
            .await;
    }

    let (shutdown, mut stop_grpc) = watch::channel(false);
    let mut stop_admin = shutdown.subscribe();
    let service = AuthzService::new(store.clone(), Gate::new(config.clone()), audit.clone());
    // `Server::tcp_nodelay` is ignored for a caller-supplied listener; without TCP_NODELAY
    // on the accepted sockets, Nagle + delayed ACK add ~40 ms to many answers.
    let incoming = TcpIncoming::from(grpc).with_nodelay(Some(true));
    let grpc_task = tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(health_service)
            .add_service(AuthorizationServer::new(service))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop_grpc.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "gRPC server failed");
        }
    });
    let admin_router = crate::admin::router(crate::admin::AdminState {
        store: store.clone(),
        metrics: prometheus,
    });
    let admin_task = tokio::spawn(async move {
        let result = axum::serve(admin, admin_router)
            .with_graceful_shutdown(async move {
                let _ = stop_admin.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    tracing::info!(grpc = %grpc_addr, admin = %admin_addr, policy_dir = %settings.policy_dir.display(), "cedar-gate listening");
    Ok(Running {
        grpc_addr,
        admin_addr,
        store,
        shutdown,
        tasks: vec![grpc_task, admin_task],
        audit,
    })
}

/// Reloads policies, logging and counting the result. Returns whether a
/// snapshot is now in force from this attempt.
pub fn reload(store: &PolicyStore) -> bool {
    match store.reload() {
        Ok(snapshot) => {
            for w in &snapshot.warnings {
                tracing::warn!(diagnostic = %w, "policy warning");
            }
            tracing::info!(
                generation = snapshot.generation,
                hash = %snapshot.hash,
                policies = snapshot.policy_count(),
                "policy snapshot loaded"
            );
            metrics::record_reload(Ok(&snapshot));
            true
        }
        Err(e) => {
            for d in e.diagnostics() {
                tracing::error!(diagnostic = %d, "policy load failed");
            }
            if store.current().is_some() {
                tracing::error!("keeping the last good policy snapshot");
            }
            metrics::record_reload(Err(()));
            false
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })
}

/// Runs until SIGTERM or Ctrl-C, then shuts down gracefully.
pub async fn run(settings: Settings) -> Result<(), AppError> {
    let running = start(settings).await?;
    wait_for_signal().await;
    tracing::info!("shutting down: finishing in-flight checks");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
