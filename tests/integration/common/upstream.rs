//! An HTTP/1.1 server standing in for the protected service (model provider, MCP server,
//! API). It answers every request with 200 `{"ok":true}` and records what it received, so
//! tests can assert on the headers Envoy forwarded after cedar-gate allowed the request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;

/// The body of every upstream answer.
pub const UPSTREAM_BODY: &str = r#"{"ok":true}"#;

/// Largest request body recorded.
const MAX_BODY: usize = 1 << 20;

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// The method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// All request headers, as forwarded by Envoy.
    pub headers: HeaderMap,
    /// The request body.
    pub body: Bytes,
}

type Seen = Arc<Mutex<Vec<SeenRequest>>>;

/// The running upstream; stops when dropped.
pub struct Upstream {
    addr: SocketAddr,
    seen: Seen,
    task: JoinHandle<()>,
}

// === impl Upstream ===

impl Upstream {
    /// Serves on `127.0.0.1:0` from the current tokio runtime.
    pub async fn start() -> Self {
        let seen = Seen::default();
        let app = Router::new().fallback(record).with_state(seen.clone());
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream listener");
        let addr = listener.local_addr().expect("upstream address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, seen, task }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The requests whose `x-test-id` header is `test_id` (see [`super::MtlsClient`]).
    pub fn requests_tagged(&self, test_id: &str) -> Vec<SeenRequest> {
        self.requests().into_iter().filter(|r| r.header("x-test-id") == Some(test_id)).collect()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// === impl SeenRequest ===

impl SeenRequest {
    /// The first value of header `name`, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of header `name` (a header may be repeated).
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }
}

async fn record(State(seen): State<Seen>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let uri = parts.uri.path_and_query().map_or_else(|| parts.uri.to_string(), |pq| pq.to_string());
    seen.lock().unwrap_or_else(|e| e.into_inner()).push(SeenRequest {
        method: parts.method,
        uri,
        headers: parts.headers,
        body,
    });
    ([(header::CONTENT_TYPE, "application/json")], UPSTREAM_BODY).into_response()
}
