//! The real server in this test process: `cedar_gate::app::start` on `127.0.0.1:0`, with a
//! connected ext_authz client, as the gRPC-level tests call it in place of Envoy.

use std::path::Path;
use std::time::Duration;

use cedar_gate::app::{self, Running, Settings};
use cedar_gate::config::Config;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use tempfile::TempDir;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{WAIT, eventually, grpc_channel, plain_http_client, repo_path};

/// Trusts `example.org` workloads and writes no audit events: the config most tests start from.
pub const CONFIG: &str = "identity:\n  trust_domains: [example.org]\naudit:\n  sink: off\n";

/// Bound on any one gRPC answer (debug build, shared 2-core machine).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// The gRPC service name Envoy health-checks.
const AUTHZ_SERVICE: &str = "envoy.service.auth.v3.Authorization";

/// Starts the server from the YAML `config` over `policy_dir`, gRPC and admin on free
/// loopback ports. For tests that drive [`Running`] themselves; others use [`InProc`].
pub async fn serve(config: &str, policy_dir: &Path) -> Running {
    let settings = Settings {
        config: Config::from_yaml(config).unwrap(),
        policy_dir: policy_dir.to_owned(),
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
    };
    app::start(settings).await.unwrap()
}

/// A running in-process server and a client connected to it. Shut down gracefully on drop.
pub struct InProc {
    running: Option<Running>,
    channel: Channel,
    /// The policy directory, when the server runs over a temporary one of its own.
    dir: Option<TempDir>,
}

// === impl InProc ===

impl InProc {
    /// Starts the server from `config` over `policy_dir` and connects to it.
    pub async fn start(config: &str, policy_dir: &Path) -> Self {
        let running = serve(config, policy_dir).await;
        let channel = grpc_channel(running.grpc_addr, ANSWER_TIMEOUT).await;
        Self {
            running: Some(running),
            channel,
            dir: None,
        }
    }

    /// Starts the server from `config` over the shipped `cedar/`.
    pub async fn shipped(config: &str) -> Self {
        Self::start(config, &repo_path("cedar")).await
    }

    /// Starts the server from `config` over a fresh temporary policy directory that `fill`
    /// writes first; the directory lives as long as the server.
    pub async fn start_in(config: &str, fill: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path());
        let mut s = Self::start(config, dir.path()).await;
        s.dir = Some(dir);
        s
    }

    /// Waits (bounded) until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        eventually("cedar-gate ready", WAIT, || async {
            (self.admin("/readyz").await.0 == 200).then_some(())
        })
        .await;
    }

    /// The server's handle (its addresses and policy store).
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("the server is running")
    }

    /// The temporary policy directory of a server started with [`InProc::start_in`].
    pub fn policy_dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("a server started over its own policy directory")
            .path()
    }

    /// An ext_authz client on the server's connection (cheap: clones share it).
    pub fn client(&self) -> AuthorizationClient<Channel> {
        AuthorizationClient::new(self.channel.clone())
    }

    /// Sends `req` and returns the answer; panics on a gRPC error.
    pub async fn check(&self, req: CheckRequest) -> CheckResponse {
        self.client().check(req).await.unwrap().into_inner()
    }

    /// GETs `path` on the admin port: (HTTP status, body).
    pub async fn admin(&self, path: &str) -> (u16, String) {
        let resp = plain_http_client()
            .get(format!("http://{}{path}", self.running().admin_addr))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// The gRPC health of the ext_authz service.
    pub async fn health(&self) -> Result<ServingStatus, tonic::Status> {
        let resp = HealthClient::new(self.channel.clone())
            .check(HealthCheckRequest {
                service: AUTHZ_SERVICE.into(),
            })
            .await?;
        Ok(resp.into_inner().status())
    }

    /// Stops the server gracefully and waits until it has.
    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            // Fire-and-forget graceful stop; the runtime ends with the test.
            tokio::spawn(running.shutdown());
        }
    }
}
