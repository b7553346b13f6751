//! Python upstreams run with the project venv's python ([`PyServer`]): the real
//! model-server router `tests/upstream/router.py` (Starlette served by uvicorn; each handler
//! that runs appends a JSON line (handler, model or tool, the path it routed on,
//! `x-cedar-gate-decision-id`, `x-test-id`) to a record file [`PyRouter`] reads), and the
//! official MCP SDK's server (`tests/mcp_sdk/e2e.py`).

use std::ffi::OsString;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::process::ChildGuard;
use super::{file_for_report, plain_http_client, read_json_lines, repo_path};

/// How long a server may take to import Starlette (or the MCP SDK) and listen.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The python with Starlette, uvicorn and the SDKs: `UPSTREAM_PYTHON`, else the project's
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

/// A Python program run with the project venv's python ([`router_python`]) that serves HTTP
/// on a `127.0.0.1` port it binds itself and reports through `--port-file` (so there is no
/// race for the port). Killed on drop; its stderr is printed if the test is failing.
pub struct PyServer {
    name: &'static str,
    child: ChildGuard,
    dir: TempDir,
    addr: SocketAddr,
}

/// When a [`PyServer`] counts as up.
pub enum Ready {
    /// `GET` of this path answers 200.
    Ok(&'static str),
    /// Any HTTP answer to `GET /` (the server's routes have no readiness probe).
    AnyAnswer,
}

// === impl PyServer ===

impl PyServer {
    /// Runs `script` (a path in the repository) with `args(dir)` (`dir`: the server's
    /// scratch directory) and `--port-file`, and waits (bounded) until it is [`Ready`].
    pub async fn start(
        name: &'static str,
        script: &str,
        args: impl FnOnce(&Path) -> Vec<OsString>,
        ready: Ready,
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cedar-gate-py-")
            .tempdir()
            .expect("python server tempdir");
        let port_file = dir.path().join("port");
        let stderr = File::create(dir.path().join("stderr.log")).expect("stderr file");
        let child = Command::new(router_python())
            .arg(repo_path(script))
            .args(args(dir.path()))
            .arg("--port-file")
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn the {name}: {e}"));
        let mut server = Self {
            name,
            child: ChildGuard::new(child),
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        server.wait_ready(&port_file, ready).await;
        server
    }

    async fn wait_ready(&mut self, port_file: &Path, ready: Ready) {
        let http = plain_http_client();
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.exited() {
                panic!("{} exited ({status}):\n{}", self.name, self.logs());
            }
            if self.addr.port() == 0
                && let Some(port) = std::fs::read_to_string(port_file)
                    .ok()
                    .and_then(|s| s.trim().parse::<u16>().ok())
            {
                self.addr.set_port(port);
            }
            if self.addr.port() != 0 {
                let path = match ready {
                    Ready::Ok(path) => path,
                    Ready::AnyAnswer => "/",
                };
                let answer = http.get(format!("http://{}{path}", self.addr)).send().await;
                let up = match (&ready, answer) {
                    (Ready::Ok(_), Ok(resp)) => resp.status() == reqwest::StatusCode::OK,
                    (Ready::AnyAnswer, Ok(_)) => true,
                    (_, Err(_)) => false,
                };
                if up {
                    return;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{} not ready after {READY_TIMEOUT:?}:\n{}",
                    self.name,
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

    /// Its scratch directory (`args` received it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its stderr, for failure reports.
    pub fn logs(&self) -> String {
        format!(
            "--- {} stderr ---\n{}",
            self.name,
            file_for_report(&self.dir.path().join("stderr.log"))
        )
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        self.child.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// The model-server router, recording each handler run.
pub struct PyRouter {
    server: PyServer,
}

// === impl PyRouter ===

impl PyRouter {
    /// Starts the router and waits (bounded) until its `/__ready` answers.
    pub async fn start() -> Self {
        let server = PyServer::start(
            "upstream router",
            "tests/upstream/router.py",
            |dir| vec!["--record".into(), dir.join("record.jsonl").into()],
            Ready::Ok("/__ready"),
        )
        .await;
        Self { server }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Every handler run so far, oldest first.
    pub fn records(&self) -> Vec<Value> {
        read_json_lines(&self.server.dir().join("record.jsonl"))
    }
}
