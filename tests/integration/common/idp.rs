//! A real HTTP identity provider on 127.0.0.1: OIDC discovery
//! (`/.well-known/openid-configuration`) and a JWKS (`/jwks`) whose keys tests rotate,
//! break and count fetches of. `/jwks` can also answer garbage or hang
//! ([`Idp::set_mode`]), and the whole server can go down and come back on the same port
//! ([`Idp::stop`], [`Idp::restart`]). Plus signing keys (PEM fixtures in
//! `tests/fixtures/jwt/`) and a token minter.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use cedar_gate::identity::testkit::{SigningKey, pem};

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// How `/jwks` answers (after [`Idp::fail_with`], which wins when set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksMode {
    /// The current keys, as JSON.
    Keys,
    /// Exactly this status, content type and body (garbage of any kind).
    Raw {
        /// HTTP status.
        status: u16,
        /// `content-type`.
        content_type: &'static str,
        /// The body bytes.
        body: Vec<u8>,
    },
    /// Reads the request and never sends a byte of the answer (until the mode changes or
    /// the server stops; then 503).
    Hang,
    /// Sends 200, the headers and the start of a chunked JSON body, then nothing more
    /// (until the mode changes or the server stops).
    Stall,
}

struct IdpState {
    jwks: Mutex<Value>,
    issuer: Mutex<String>,
    fetches: AtomicUsize,
    /// Non-zero: `/jwks` answers with this status instead.
    fail_with: AtomicU16,
    mode: watch::Sender<JwksMode>,
    /// Turns true while the server is stopping: hung answers are released.
    stopping: watch::Sender<bool>,
}

/// The running IdP; stops when dropped.
pub struct Idp {
    addr: SocketAddr,
    state: Arc<IdpState>,
    task: JoinHandle<()>,
}

/// How long [`Idp::stop`] may take (it releases hung answers first, so this is slack).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

// === impl Idp ===

impl Idp {
    /// Serves `keys` on 127.0.0.1:0. Its discovery document names itself
    /// (`http://127.0.0.1:<port>`) as the issuer.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let state = Arc::new(IdpState {
            jwks: Mutex::new(jwks(keys)),
            issuer: Mutex::new(String::new()),
            fetches: AtomicUsize::new(0),
            fail_with: AtomicU16::new(0),
            mode: watch::Sender::new(JwksMode::Keys),
            stopping: watch::Sender::new(false),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind idp");
        let addr = listener.local_addr().expect("idp addr");
        *state.issuer.lock().unwrap() = format!("http://{addr}");
        let task = serve(listener, state.clone());
        Self { addr, state, task }
    }

    /// Takes the server down: hung answers are released, open connections closed and the
    /// port closed, so a client gets "connection refused". Bounded; panics if the server
    /// does not stop within 10 s.
    pub async fn stop(&mut self) {
        self.state.stopping.send_replace(true);
        tokio::time::timeout(STOP_TIMEOUT, &mut self.task)
            .await
            .expect("the IdP stops within 10 s")
            .expect("the IdP task ends cleanly");
    }

    /// Brings a stopped server back on the same address (keys, mode and counters kept).
    pub async fn restart(&mut self) {
        assert!(self.task.is_finished(), "restart only after stop");
        self.state.stopping.send_replace(false);
        // Loopback port reuse right after close: tokio sets SO_REUSEADDR on Unix.
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("rebind the IdP's port");
        self.task = serve(listener, self.state.clone());
    }

    /// Switches how `/jwks` answers from the next request on; leaving [`JwksMode::Hang`]
    /// or [`JwksMode::Stall`] releases the requests held so far.
    pub fn set_mode(&self, mode: JwksMode) {
        self.state.mode.send_replace(mode);
    }

    /// Where it listens (the same address after [`Idp::restart`]).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the server is up (false after [`Idp::stop`]).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// `http://127.0.0.1:<port>`: the issuer for discovery.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// Replaces the served keys (rotation).
    pub fn set_keys(&self, keys: &[&SigningKey]) {
        *self.state.jwks.lock().unwrap() = jwks(keys);
    }

    /// Makes `/jwks` answer `status` (0: serve keys again).
    pub fn fail_with(&self, status: u16) {
        self.state.fail_with.store(status, Ordering::SeqCst);
    }

    /// How many times `/jwks` was requested.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.state.stopping.send_replace(true);
        self.task.abort();
    }
}

/// Serves the IdP on `listener` until `state.stopping` turns true.
fn serve(listener: tokio::net::TcpListener, state: Arc<IdpState>) -> JoinHandle<()> {
    let app = Router::new()
        .route("/jwks", get(serve_jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .with_state(state.clone());
    let mut stopping = state.stopping.subscribe();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopping.wait_for(|s| *s).await;
            })
            .await;
    })
}

/// Waits until the IdP's mode is no longer `held` or the server is stopping.
async fn released(state: &IdpState, held: &JwksMode) {
    let mut mode = state.mode.subscribe();
    let mut stopping = state.stopping.subscribe();
    tokio::select! {
        _ = mode.wait_for(|m| m != held) => {}
        _ = stopping.wait_for(|s| *s) => {}
    }
}

fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

async fn serve_jwks(State(state): State<Arc<IdpState>>) -> Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let fail = state.fail_with.load(Ordering::SeqCst);
    if fail != 0 {
        return StatusCode::from_u16(fail)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response();
    }
    let mode = state.mode.borrow().clone();
    match mode {
        JwksMode::Keys => {
            let body = state.jwks.lock().unwrap().clone();
            axum::Json(body).into_response()
        }
        JwksMode::Raw {
            status,
            content_type,
            body,
        } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response(),
        JwksMode::Hang => {
            released(&state, &JwksMode::Hang).await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        JwksMode::Stall => {
            // The first chunk goes out at once; the stream then stays open, empty, until
            // released, and ends without ever completing the JSON.
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
            tx.try_send(Ok(Bytes::from_static(b"{\"keys\": [")))
                .expect("first chunk");
            tokio::spawn(async move {
                released(&state, &JwksMode::Stall).await;
                drop(tx);
            });
            (
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
            )
                .into_response()
        }
    }
}

async fn discovery(State(state): State<Arc<IdpState>>) -> Response {
    let issuer = state.issuer.lock().unwrap().clone();
    axum::Json(json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks") })).into_response()
}
