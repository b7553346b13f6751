//! Wiring: load policies, start the gRPC and admin servers, shut down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tonic::transport::server::TcpIncoming;
use tonic_reflection::server::{v1, v1alpha};

use crate::config::Config;
use crate::decide::Gate;
use crate::policy::PolicyStore;
use crate::policy::watch::{PolicyWatcher, ReloadTrigger};
use crate::record::audit::AuditLog;
use crate::record::metrics;
use crate::wire::conn::Coalescing;
use crate::wire::extproc::{ExternalProcessorServer, ListFilterService};
use crate::wire::service::AuthzService;
use crate::wire::tls::{ReloadingTls, TlsError};

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
    Reflection(crate::wire::reflection::ReflectionError),
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
    // Credential and key store watchers; dropping them stops them.
    file_watchers: Vec<crate::watch::FileWatcher>,
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
        let watchers = self.file_watchers;
        let _ = tokio::task::spawn_blocking(move || drop(watchers)).await;
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

/// The policy store for `dir`, nothing loaded yet.
fn policy_store(dir: &std::path::Path, config: &Config) -> Arc<PolicyStore> {
    let store = PolicyStore::new(dir).with_principal_entities(config.cache.principal_entities);
    Arc::new(store)
}

/// Starts everything and returns once both listeners are bound.
pub async fn start(settings: Settings) -> Result<Running, AppError> {
    let prometheus = metrics::install();
    let config = Arc::new(settings.config);
    register_issuers(&config);
    let store = policy_store(&settings.policy_dir, &config);
    let audit = AuditLog::open(&config.audit).map_err(AppError::Audit)?;
    // Checked before binding: bad certificate files stop start-up, never
    // degrade to plaintext.
    let tls = match &config.server.tls {
        Some(files) => Some(ReloadingTls::new(files.clone()).map_err(AppError::Tls)?),
        None => None,
    };
    let reflection = if config.server.reflection {
        Some(crate::wire::reflection::services().map_err(AppError::Reflection)?)
    } else {
        None
    };
    let listeners = Listeners::bind(settings.grpc_listen, settings.admin_listen).await?;
    let gate = Gate::new(config.clone());
    let tokens = gate.tokens().cloned();
    let credentials = gate.credentials().cloned();
    let keys = gate.keys().cloned();
    let file_watchers = start_file_watchers(credentials.as_ref(), keys.as_ref())?;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health::start(reporter, &store, tokens.as_deref()).await;
    let (shutdown, _) = watch::channel(false);
    let reloader = start_reloader(
        &config,
        store.clone(),
        health.reporter.clone(),
        tokens.clone(),
    )?;
    let background = start_background(
        &store,
        &health,
        tokens.as_ref(),
        reloader.as_ref(),
        &shutdown,
    );
    // Said before either port serves: whoever sees `/readyz` answer can also find this
    // line (the sockets are already bound, so it is true from here on).
    tracing::info!(grpc = %listeners.grpc_addr, grpc_tls = config.server.tls.is_some(), admin = %listeners.admin_addr, policy_dir = %settings.policy_dir.display(), "cedar-gate listening");
    // ext_proc list filtering on the same port, with the same gate and audit.
    let lists = ListFilterService::new(store.clone(), gate.clone(), audit.clone());
    let service = AuthzService::new(store.clone(), gate, audit.clone());
    let grpc_task = spawn_grpc(
        &config.server,
        listeners.grpc,
        tls,
        health_service,
        reflection,
        (service, lists),
        shutdown.subscribe(),
    );
    let admin_state = crate::admin::AdminState {
        store: store.clone(),
        metrics: prometheus,
        tokens,
        credentials,
        keys,
        health: Arc::new(tonic_health::server::HealthService::from_health_reporter(
            health.reporter,
        )),
    };
    let admin_task = spawn_admin(listeners.admin, admin_state, shutdown.subscribe());
    Ok(Running {
        grpc_addr: listeners.grpc_addr,
        admin_addr: listeners.admin_addr,
        store,
        shutdown,
        tasks: [grpc_task, admin_task]
            .into_iter()
            .chain(background)
            .collect(),
        audit,
        reloader,
        file_watchers,
    })
}

/// Re-reads the credential files and the API key store on change.
fn start_file_watchers(
    credentials: Option<&Arc<crate::credentials::ProviderCredentials>>,
    keys: Option<&Arc<crate::identity::keys::ApiKeys>>,
) -> Result<Vec<crate::watch::FileWatcher>, AppError> {
    let mut watchers = Vec::new();
    if let Some(c) = credentials {
        watchers.push(c.watch().map_err(AppError::Reloader)?);
    }
    if let Some(k) = keys {
        watchers.push(k.watch().map_err(AppError::Reloader)?);
    }
    Ok(watchers)
}

/// The two bound listeners.
struct Listeners {
    grpc: TcpListener,
    grpc_addr: SocketAddr,
    admin: TcpListener,
    admin_addr: SocketAddr,
}

// === impl Listeners ===

impl Listeners {
    async fn bind(grpc_listen: SocketAddr, admin_listen: SocketAddr) -> Result<Self, AppError> {
        let grpc = bind(grpc_listen).await?;
        let admin = bind(admin_listen).await?;
        let grpc_addr = grpc.local_addr().map_err(|source| AppError::Bind {
            addr: grpc_listen,
            source,
        })?;
        let admin_addr = admin.local_addr().map_err(|source| AppError::Bind {
            addr: admin_listen,
            source,
        })?;
        Ok(Self {
            grpc,
            grpc_addr,
            admin,
            admin_addr,
        })
    }
}

/// gRPC health: NOT_SERVING until policies are in force and every required
/// issuer has keys.
struct Health {
    reporter: tonic_health::server::HealthReporter,
    /// Whether it was SERVING from the start.
    serving: bool,
}

// === impl Health ===

impl Health {
    /// Loads the policies and sets the initial health from the result.
    async fn start(
        reporter: tonic_health::server::HealthReporter,
        store: &PolicyStore,
        tokens: Option<&crate::identity::token::TokenVerifier>,
    ) -> Self {
        crate::wire::health::set(&reporter, false).await;
        let policies_loaded = reload(store);
        let serving = policies_loaded && tokens.is_none_or(|t| t.ready());
        if serving {
            crate::wire::health::set(&reporter, true).await;
        }
        Self { reporter, serving }
    }
}

/// The metric families of the configured issuers.
fn register_issuers(config: &Config) {
    let issuers: Vec<String> = config
        .identity
        .issuers
        .iter()
        .map(|i| i.issuer.clone())
        .collect();
    metrics::register_families(&issuers, crate::identity::reasons::all());
}

/// Issuer key refreshes, the task that turns health SERVING once keys are in,
/// and reloads on `SIGHUP`.
fn start_background(
    store: &Arc<PolicyStore>,
    health: &Health,
    tokens: Option<&Arc<crate::identity::token::TokenVerifier>>,
    reloader: Option<&PolicyWatcher>,
    shutdown: &watch::Sender<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some(tokens) = tokens {
        tracing::info!(?tokens, "token issuers configured");
        tasks = tokens.start(shutdown);
        // Decided on the state health was set from, not re-read: keys fetched
        // between the two reads would otherwise leave health NOT_SERVING for good.
        if !health.serving {
            tasks.push(tokio::spawn(serve_when_keys_ready(
                store.clone(),
                tokens.clone(),
                health.reporter.clone(),
                shutdown.subscribe(),
            )));
        }
    }
    if let Some(trigger) = reloader.map(PolicyWatcher::trigger) {
        tasks.push(tokio::spawn(reload_on_sighup(
            trigger,
            shutdown.subscribe(),
        )));
    }
    tasks
}

/// Serves ext_authz, ext_proc, gRPC health and (when on) reflection on `listener` until
/// shutdown.
fn spawn_grpc(
    limits: &crate::config::ServerConfig,
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    reflection: Option<(
        v1::ServerReflectionServer<impl v1::ServerReflection>,
        v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
    )>,
    (service, lists): (AuthzService, ListFilterService),
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let (reflection_v1, reflection_v1alpha) = reflection.unzip();
    let router = server_builder(limits)
        .add_service(health)
        .add_optional_service(reflection_v1)
        .add_optional_service(reflection_v1alpha)
        .add_service(crate::wire::service::server(
            service,
            limits.max_message_bytes,
        ))
        .add_service(
            ExternalProcessorServer::new(lists).max_decoding_message_size(limits.max_message_bytes),
        );
    let tls_watcher = tls.as_ref().map(ReloadingTls::spawn_watcher);
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let result = match tls {
            Some(tls) => {
                router
                    .serve_with_incoming_shutdown(
                        crate::wire::tls::incoming(listener, tls),
                        stopped,
                    )
                    .await
            }
            None => {
                // `Server::tcp_nodelay` is ignored for a caller-supplied listener; without
                // TCP_NODELAY, Nagle + delayed ACK add ~40 ms to many answers.
                let incoming = TcpIncoming::from(listener)
                    .with_nodelay(Some(true))
                    .map(|conn| conn.map(Coalescing));
                router.serve_with_incoming_shutdown(incoming, stopped).await
            }
        };
        if let Some(watcher) = tls_watcher {
            watcher.abort();
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "gRPC server failed");
        }
    })
}

/// Serves the admin endpoints on `listener` until shutdown.
fn spawn_admin(
    listener: TcpListener,
    state: crate::admin::AdminState,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let router = crate::admin::router(state);
    tokio::spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "admin server failed");
        }
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
            metrics::record_reload(Ok(snapshot.figures()));
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
            metrics::record_reload(Ok(snapshot.figures()));
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
                crate::wire::health::set(&health, true).await;
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
            crate::wire::health::set(&health, true).await;
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
