//! The real `cedar-gate serve` process, with its own config, audit file and logs in a
//! temp directory.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::process::ChildGuard;
use super::{
    audit_event, audit_file_yaml, file_for_report, free_addr, plain_http_client, read_json_lines,
    repo_path,
};

/// How long cedar-gate may take to load its policies and answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The config used unless a test gives its own. The guard appends the `audit:` section.
pub const DEFAULT_CONFIG: &str = "\
identity:
  trust_domains: [example.org]
logging:
  format: json
  level: info
";

/// How to start cedar-gate.
#[derive(Clone, Debug)]
pub struct GateOptions {
    /// `--policy-dir`; defaults to the shipped `cedar/`.
    pub policy_dir: PathBuf,
    /// Config YAML **without** an `audit:` section: the guard appends one that points at
    /// its own audit file. Defaults to [`DEFAULT_CONFIG`].
    pub config: String,
}

impl Default for GateOptions {
    fn default() -> Self {
        Self {
            policy_dir: repo_path("cedar"),
            config: DEFAULT_CONFIG.to_owned(),
        }
    }
}

/// A running cedar-gate. Killed on drop; if the test is panicking its stdout and stderr are
/// printed so the failure report shows what the server said.
pub struct CedarGate {
    child: ChildGuard,
    dir: TempDir,
    grpc_addr: SocketAddr,
    admin_addr: SocketAddr,
}

// === impl CedarGate ===

impl CedarGate {
    /// Starts cedar-gate with [`GateOptions::default`] and waits until it is ready.
    pub async fn start() -> Self {
        Self::start_with(GateOptions::default()).await
    }

    /// Starts cedar-gate on free loopback ports and waits (bounded) until `/readyz` answers
    /// 200, that is until a policy snapshot is loaded. Panics with the server's output if
    /// it exits or does not become ready in time.
    pub async fn start_with(opts: GateOptions) -> Self {
        let mut gate = Self::spawn(opts);
        gate.wait_ready().await;
        gate
    }

    /// Starts cedar-gate and waits (bounded) only until its admin port answers, whatever
    /// `/readyz` says (for tests of a server that is not ready yet).
    pub async fn start_unready(opts: GateOptions) -> Self {
        let mut gate = Self::spawn(opts);
        let http = plain_http_client();
        let url = format!("{}/healthz", gate.admin_url());
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if !gate.is_running() {
                panic!("cedar-gate exited:\n{}", gate.logs());
            }
            if http.get(&url).send().await.is_ok() {
                return gate;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "cedar-gate admin port not up after {READY_TIMEOUT:?}:\n{}",
                    gate.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn spawn(opts: GateOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cedar-gate-")
            .tempdir()
            .expect("gate tempdir");
        let audit = audit_file_yaml(&dir.path().join("audit.log"));
        let config = format!("{}\n{audit}", opts.config);
        let config_path = dir.path().join("cedar-gate.yaml");
        std::fs::write(&config_path, config).expect("write gate config");

        let grpc_addr = free_addr();
        let admin_addr = free_addr();
        let stdout = File::create(dir.path().join("stdout.log")).expect("gate stdout file");
        let stderr = File::create(dir.path().join("stderr.log")).expect("gate stderr file");
        let child = Command::new(env!("CARGO_BIN_EXE_cedar-gate"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--policy-dir")
            .arg(&opts.policy_dir)
            .arg("--grpc-listen")
            .arg(grpc_addr.to_string())
            .arg("--admin-listen")
            .arg(admin_addr.to_string())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn cedar-gate");

        Self {
            child: ChildGuard::new(child),
            dir,
            grpc_addr,
            admin_addr,
        }
    }

    async fn wait_ready(&mut self) {
        let http = plain_http_client();
        let url = format!("{}/readyz", self.admin_url());
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.exited() {
                panic!(
                    "cedar-gate exited before it was ready ({status}):\n{}",
                    self.logs()
                );
            }
            if let Ok(resp) = http.get(&url).send().await
                && resp.status() == reqwest::StatusCode::OK
            {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "cedar-gate not ready after {READY_TIMEOUT:?} ({url}):\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The gRPC address (ext_authz Check and grpc.health.v1), always on 127.0.0.1.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// `http://127.0.0.1:<grpc port>`, for a tonic client.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The admin HTTP address (`/healthz`, `/readyz`, `/metrics`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// `http://127.0.0.1:<admin port>`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// The temp directory holding the config, the audit file and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The audit file (`audit.sink: file`).
    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// Every complete audit event written so far, one per decision, oldest first.
    pub fn audit_lines(&self) -> Vec<Value> {
        let lines = read_json_lines(&self.audit_path());
        lines.iter().for_each(super::audit_proto::check_event);
        lines
    }

    /// Waits (bounded) for the audit event with this `decision_id` and returns it.
    pub async fn audit_event(&self, decision_id: &str) -> Value {
        audit_event(&self.audit_path(), decision_id).await
    }

    /// The server's stdout and stderr so far (diagnostic log; audit too if `sink: stdout`).
    pub fn logs(&self) -> String {
        format!(
            "--- cedar-gate stdout ---\n{}\n--- cedar-gate stderr ---\n{}",
            file_for_report(&self.dir.path().join("stdout.log")),
            file_for_report(&self.dir.path().join("stderr.log")),
        )
    }

    /// Fetches an admin endpoint, returning its status and body.
    pub async fn admin_get(&self, path: &str) -> (reqwest::StatusCode, String) {
        let resp = plain_http_client()
            .get(format!("{}{path}", self.admin_url()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on cedar-gate admin: {e}"));
        let status = resp.status();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Kills the server now (SIGKILL) and reaps it. Idempotent.
    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// The server's process id (to send it signals), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }
}

impl Drop for CedarGate {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
