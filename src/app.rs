//! Wiring: load policies, start the gRPC and admin servers, shut down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
use crate::policy::watch::{PolicyWatcher, ReloadTrigger};
use crate::service::AuthzService;
use crate::tls::{ReloadingTls, TlsError};

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
    /// The policy reload thread could not be started.
    #[error("cannot start the policy reloader: {0}")]
    Reloader(std::io::Error),
    /// `server.tls` is set but its files are not usable.
    #[error("cannot set up TLS on the gRPC listener: {0}")]
    Tls(TlsError),
    /// `server.reflection` is on and the reflection services cannot be built.
    #[error(transparent)]
    Reflection(crate::reflection::ReflectionError),
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
    reloader: Option<PolicyWatcher>,
}

// === impl Running ===

impl Running {
    /// Requests a policy reload, as `SIGHUP` does (debounced watcher thread).
    pub fn trigger_reload(&self) -> bool {
        self.reloader.as_ref().is_some_and(|r| r.trigger().reload())
    }

    /// Stops accepting, lets in-flight checks finish, then flushes the audit log.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Some(reloader) = self.reloader {
            let _ = tokio::task::spawn_blocking(move || reloader.stop()).await;
        }
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
    let issuers: Vec<String> = config
        .identity
        .issuers
        .iter()
        .map(|i| i.issuer.clone())
        .collect();
    metrics::register_families(&issuers);
    let store = Arc::new(PolicyStore::new(&settings.policy_dir));
    let audit = AuditLog::open(&config.audit).map_err(AppError::Audit)?;
    // Checked before binding: bad certificate files stop start-up, never
    // degrade to plaintext.
    let tls = match &config.server.tls {
        Some(files) => Some(ReloadingTls::new(files.clone()).map_err(AppError::Tls)?),
        None => None,
    };
    let (reflection_v1, reflection_v1alpha) = if config.server.reflection {
        let (v1, v1alpha) = crate::reflection::services().map_err(AppError::Reflection)?;
        (Some(v1), Some(v1alpha))
    } else {
        (None, None)
    };

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
    let gate = Gate::new(config.clone());
    let tokens = gate.tokens().cloned();
    let policies_loaded = reload(&store);
    let serving = policies_loaded && tokens.as_ref().is_none_or(|t| t.ready());
    if serving {
        health
            .set_serving::<AuthorizationServer<AuthzService>>()
            .await;
    }

    let (shutdown, mut stop_grpc) = watch::channel(false);
    let reloader = start_reloader(&config, store.clone(), health.clone(), tokens.clone())?;
    let mut tasks = Vec::new();
    if let Some(trigger) = reloader.as_ref().map(|r| r.trigger()) {
        tasks.push(tokio::spawn(reload_on_sighup(
            trigger,
            shutdown.subscribe(),
        )));
    }
    let mut stop_admin = shutdown.subscribe();
    let mut token_tasks = Vec::new();
    if let Some(tokens) = &tokens {
        tracing::info!(?tokens, "token issuers configured");
        token_tasks = tokens.start(&shutdown);
        // Decided on the state health was set from, not re-read: keys fetched
        // between the two reads would otherwise leave health NOT_SERVING for good.
        if !serving {
            token_tasks.push(tokio::spawn(serve_when_keys_ready(
                store.clone(),
                tokens.clone(),
                health.clone(),
                shutdown.subscribe(),
            )));
        }
    }
    let service = AuthzService::new(store.clone(), gate, audit.clone());
    let router = server_builder(&config.server)
        .add_service(health_service)
        .add_optional_service(reflection_v1)
        .add_optional_service(reflection_v1alpha)
        .add_service(
            AuthorizationServer::new(service)
                .max_decoding_message_size(config.server.max_message_bytes),
        );
    let tls_watcher = tls.as_ref().map(ReloadingTls::spawn_watcher);
    let grpc_task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop_grpc.wait_for(|s| *s).await;
        };
        let result = match tls {
            Some(tls) => {
                router
                    .serve_with_incoming_shutdown(crate::tls::incoming(grpc, tls), stopped)
                    .await
            }
            None => {
                // `Server::tcp_nodelay` is ignored for a caller-supplied listener; without
                // TCP_NODELAY, Nagle + delayed ACK add ~40 ms to many answers.
                let incoming = TcpIncoming::from(grpc).with_nodelay(Some(true));
                router.serve_with_incoming_shutdown(incoming, stopped).await
            }
        };
        if let Some(watcher) = tls_watcher {
            watcher.abort();
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "gRPC server failed");
        }
    });
    let admin_router = crate::admin::router(crate::admin::AdminState {
        store: store.clone(),
        metrics: prometheus,
        tokens,
        health: Arc::new(tonic_health::server::HealthService::from_health_reporter(
            health.clone(),
        )),
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
    tracing::info!(grpc = %grpc_addr, grpc_tls = config.server.tls.is_some(), admin = %admin_addr, policy_dir = %settings.policy_dir.display(), "cedar-gate listening");
    Ok(Running {
        grpc_addr,
        admin_addr,
        store,
        shutdown,
        tasks: [grpc_task, admin_task]
            .into_iter()
            .chain(token_tasks)
            .chain(tasks)
            .collect(),
        audit,
        reloader,
    })
}

/// The tonic server with the limits from `server:`.
fn server_builder(limits: &crate::config::ServerConfig) -> tonic::transport::Server {
    let keepalive = (limits.http2_keepalive_interval_seconds > 0)
        .then(|| Duration::from_secs(limits.http2_keepalive_interval_seconds));
    let builder = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(Some(Duration::from_secs(
            limits.http2_keepalive_timeout_seconds,
        )));
    match limits.concurrency_limit_per_connection {
        Some(limit) => builder.concurrency_limit_per_connection(limit),
        None => builder,
    }
}

/// Reloads policies, logging and counting the result. Returns whether a
/// snapshot is now in force from this attempt.
pub fn reload(store: &PolicyStore) -> bool {
    let before = store.current().map(|s| s.generation);
    match store.reload() {
        Ok(snapshot) if before == Some(snapshot.generation) => {
            tracing::info!(
                generation = snapshot.generation,
                hash = %snapshot.hash,
                "policy directory unchanged; snapshot kept"
            );
            metrics::record_reload(Ok(&snapshot));
            true
        }
        Ok(snapshot) => {
            for w in &snapshot.warnings {
                tracing::warn!(diagnostic = %w, "policy warning");
            }
            tracing::info!(
                generation = snapshot.generation,
                hash = %snapshot.hash,
                policies = snapshot.policy_count(),
                shadow_policies = snapshot.shadow_count(),
                volatile_context_reads = ?snapshot.volatile_reads(),
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

/// Starts the thread that reloads policies on directory changes and on
/// request, and flips gRPC health to SERVING once a snapshot is in force
/// (so a server that started with a bad directory becomes ready by itself).
fn start_reloader(
    config: &Config,
    store: Arc<PolicyStore>,
    health: tonic_health::server::HealthReporter,
    tokens: Option<Arc<crate::identity::token::TokenVerifier>>,
) -> Result<Option<PolicyWatcher>, AppError> {
    let runtime = tokio::runtime::Handle::current();
    let watch_dir = config.policy_reload.watch.then(|| store.dir().to_owned());
    let debounce = std::time::Duration::from_millis(config.policy_reload.debounce_ms);
    PolicyWatcher::start(watch_dir.as_deref(), debounce, move || {
        // Issuer keys not loaded yet: `serve_when_keys_ready` flips health later.
        if reload(&store) && tokens.as_ref().is_none_or(|t| t.ready()) {
            let health = health.clone();
            runtime.spawn(async move {
                health
                    .set_serving::<AuthorizationServer<AuthzService>>()
                    .await;
            });
        }
    })
    .map(Some)
    .map_err(AppError::Reloader)
}

/// Reloads policies on `SIGHUP` until shutdown.
async fn reload_on_sighup(trigger: ReloadTrigger, mut stop: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: reloading policies");
                    if !trigger.reload() {
                        return;
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (trigger, stop.wait_for(|s| *s).await);
    }
}

/// gRPC health turns SERVING once every required issuer has keys and a
/// policy snapshot is in force.
async fn serve_when_keys_ready(
    store: Arc<PolicyStore>,
    tokens: Arc<crate::identity::token::TokenVerifier>,
    health: tonic_health::server::HealthReporter,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // Policies may arrive later too (a hot reload fixing a bad directory).
        if tokens.ready() && store.current().is_some() {
            health
                .set_serving::<AuthorizationServer<AuthzService>>()
                .await;
            tracing::info!("issuer keys loaded: serving");
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
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
