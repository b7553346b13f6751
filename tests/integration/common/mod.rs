//! Shared test harness: real processes and real TLS, all on loopback.
//!
//! - [`CedarGate`]: the `cedar-gate serve` binary with a temp config and audit file.
//! - [`InProc`]: the server in this test process (`cedar_gate::app::start`) with a gRPC client.
//! - [`Envoy`]: a real Envoy running a shipped config from `envoy/`.
//! - [`Upstream`]: an HTTP server standing in for the protected service; records requests.
//! - [`pyrouter::PyRouter`]: a real model-server router (Starlette on uvicorn) as the upstream;
//!   [`pyrouter::PyServer`] runs any such Python server (the MCP SDK's, too).
//! - [`TestPki`]: a CA, a server certificate and SPIFFE client certificates.
//! - [`MtlsClient`]: an HTTPS client presenting a client certificate to Envoy.
//! - [`raw::RawClient`]: raw HTTP/1.1 bytes over mTLS to Envoy, for what clients refuse to send.
//! - [`Stack`]: all of the above wired together, as the end-to-end tests use them.
//!
//! Every wait is a bounded poll ([`eventually`]), never a fixed sleep. Every child process is
//! held by one guard ([`process::ChildGuard`]) and killed when it drops; its owner prints
//! the logs if the test is failing.

// The helpers are shared by several test modules; not every module uses every helper.
#![allow(dead_code, unused_imports)]

pub mod audit_proto;
pub mod check;
pub mod client;
pub mod envoy;
pub mod gate;
pub mod idp;
pub mod inproc;
pub mod pki;
pub mod process;
pub mod pyrouter;
pub mod raw;
pub mod stack;
pub mod upstream;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

pub use client::MtlsClient;
pub use envoy::Envoy;
pub use gate::{CedarGate, GateOptions};
pub use inproc::InProc;
pub use pki::{ClientCert, TestPki};
pub use stack::Stack;
pub use upstream::{SeenRequest, Upstream};

/// SPIFFE ids used by the example policies in `cedar/`.
pub mod ids {
    /// In `Group::"approved-agents"`: may call `/v1/*`.
    pub const RESEARCH_AGENT: &str = "spiffe://example.org/ns/agents/sa/research-agent";
    /// In no group: denied with reason `no_permit`.
    pub const ROGUE_AGENT: &str = "spiffe://example.org/ns/agents/sa/rogue-agent";
    /// Approved but also quarantined: denied by `forbid-quarantined`.
    pub const QUARANTINED_AGENT: &str = "spiffe://example.org/ns/agents/sa/quarantined-agent";
    /// Same path as the research agent, foreign trust domain.
    pub const FOREIGN_AGENT: &str = "spiffe://evil.org/ns/agents/sa/research-agent";
}

/// The default bound for waiting on something that should happen quickly.
pub const WAIT: Duration = Duration::from_secs(10);

/// The repository root (where `Cargo.toml`, `cedar/` and `envoy/` live).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A path inside the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

/// A loopback port that was free a moment ago and has not been handed out before in this
/// test process. A process started on it may still lose a race with another process on the
/// host; prefer binding `127.0.0.1:0` yourself (as [`Upstream`] does) where the code allows it.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if HANDED_OUT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
}

/// [`free_port`] as a `127.0.0.1` socket address.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Polls `probe` every 50 ms until it returns `Some`, for at most `timeout`.
/// Panics naming `what` when time runs out.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain-HTTP client for admin endpoints on loopback (no proxy, short timeouts).
pub fn plain_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("build plain HTTP client")
}

/// A plaintext gRPC channel to `addr` (cedar-gate's gRPC port): connects within 5 s, and
/// every call on it fails after `timeout` instead of hanging.
pub async fn grpc_channel(addr: SocketAddr, timeout: Duration) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("gRPC endpoint URL")
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to cedar-gate gRPC on {addr}: {e:?}"))
}

/// Copies the shipped policy files of `cedar/` into `to` (not `cedar/tests/`, which holds
/// policy unit tests, not policies).
pub fn copy_shipped_policies(to: &Path) {
    for entry in std::fs::read_dir(repo_path("cedar")).expect("read cedar/") {
        let entry = entry.expect("cedar/ entry");
        if entry.file_type().expect("cedar/ entry type").is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy policy file");
        }
    }
}

/// The config's `audit:` section for a file sink writing to `path`.
pub fn audit_file_yaml(path: &Path) -> String {
    // A JSON string is a valid YAML scalar, whatever the temp path contains.
    let path = serde_json::to_string(path).expect("audit path as JSON");
    format!("audit:\n  sink: file\n  path: {path}\n")
}

/// Waits (bounded) for the audit event with this `decision_id` in the audit file `path`,
/// and checks it against `proto/audit.proto`.
pub async fn audit_event(path: &Path, decision_id: &str) -> serde_json::Value {
    let event = eventually(
        &format!("audit event with decision_id {decision_id}"),
        WAIT,
        || async {
            read_json_lines(path)
                .into_iter()
                .find(|e| e["decision_id"] == decision_id)
        },
    )
    .await;
    audit_proto::check_event(&event);
    event
}

/// Parses a file of JSON lines, skipping lines that are not JSON objects (for example a
/// line still being written, or a non-JSON log line). A missing file reads as empty.
pub fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .filter(serde_json::Value::is_object)
        .collect()
}

/// The contents of `path` for a failure report (`<missing>` if it cannot be read).
pub fn file_for_report(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|_| "<missing>".to_owned())
}
