//! A real model-server router as the upstream: `tests/upstream/router.py` (Starlette served
//! by uvicorn) run with the project venv's python. Each handler that runs appends a JSON
//! line (handler, model or tool, the path it routed on, `x-cedar-gate-decision-id`,
//! `x-test-id`) to a record file this guard reads.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::process::ChildGuard;
use super::{file_for_report, plain_http_client, read_json_lines, repo_path};

/// How long the router may take to import Starlette and listen.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The running router. Killed on drop; its stderr is printed if the test is failing.
pub struct PyRouter {
    child: ChildGuard,
    dir: TempDir,
    addr: SocketAddr,
}

/// The python with Starlette and uvicorn: `UPSTREAM_PYTHON`, else the project's
/// `.venv/bin/python` (which `make test` provisions). Panics (never skips) when missing.
pub fn router_python() -> PathBuf {
    let path = std::env::var_os("UPSTREAM_PYTHON")
        .filter(|p| !p.is_empty())
        .map_or_else(|| repo_path(".venv/bin/python"), PathBuf::from);
    assert!(
        path.exists(),
        "no python for the upstream router at {}: run the tests with `make test` (or \
         `make e2e`), which installs starlette and uvicorn into .venv, or set UPSTREAM_PYTHON",
        path.display()
    );
    path
}

// === impl PyRouter ===

impl PyRouter {
    /// Starts the router on a free `127.0.0.1` port (it binds port 0 itself and reports
    /// the port, so there is no race) and waits (bounded) until it answers.
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cedar-gate-router-")
            .tempdir()
            .expect("router tempdir");
        let port_file = dir.path().join("port");
        let stderr = File::create(dir.path().join("stderr.log")).expect("router stderr file");
        let child = Command::new(router_python())
            .arg(repo_path("tests/upstream/router.py"))
            .arg("--record")
            .arg(dir.path().join("record.jsonl"))
            .arg("--port-file")
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn the upstream router");
        let mut router = Self {
            child: ChildGuard::new(child),
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        router.wait_ready(&port_file).await;
        router
    }

    async fn wait_ready(&mut self, port_file: &Path) {
        let http = plain_http_client();
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.exited() {
                panic!("upstream router exited ({status}):\n{}", self.logs());
            }
            if self.addr.port() == 0
                && let Some(port) = std::fs::read_to_string(port_file)
                    .ok()
                    .and_then(|s| s.trim().parse::<u16>().ok())
            {
                self.addr.set_port(port);
            }
            if self.addr.port() != 0
                && let Ok(resp) = http
                    .get(format!("http://{}/__ready", self.addr))
                    .send()
                    .await
                && resp.status() == reqwest::StatusCode::OK
            {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "upstream router not ready after {READY_TIMEOUT:?}:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every handler run so far, oldest first.
    pub fn records(&self) -> Vec<Value> {
        read_json_lines(&self.dir.path().join("record.jsonl"))
    }

    /// The router's stderr, for failure reports.
    pub fn logs(&self) -> String {
        format!(
            "--- upstream router stderr ---\n{}",
            file_for_report(&self.dir.path().join("stderr.log"))
        )
    }
}

impl Drop for PyRouter {
    fn drop(&mut self) {
        self.child.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
