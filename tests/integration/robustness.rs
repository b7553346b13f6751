//! Robustness: shutdown under load, and hostile CheckRequests over gRPC. The real server
//! runs in process on `127.0.0.1:0`; every wait is bounded.
//!
//! "Clean answer" means: a `CheckResponse` with a status (a decision or a 400), or, for a
//! message over the gRPC size limit, a gRPC `RESOURCE_EXHAUSTED`; never a dropped
//! connection, a hang or a crash. After each hostile request the server must still answer
//! a normal check correctly and report itself healthy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cedar_gate::app::Running;
use cedar_gate::request::{MAX_HEADER_BYTES, MAX_PATH_BYTES};
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::check::{self, code, http_mut};
use crate::common::ids::{RESEARCH_AGENT, ROGUE_AGENT};
use crate::common::inproc::{ANSWER_TIMEOUT, serve};
use crate::common::{grpc_channel, plain_http_client, repo_path};

const CONFIG: &str =
    "identity:\n  trust_domains: [example.org]\naudit:\n  sink: off\nlogging:\n  level: warn\n";
const OK: i32 = 0;
const PERMISSION_DENIED: i32 = 7;
const INVALID_ARGUMENT: i32 = 3;

async fn start() -> Running {
    serve(CONFIG, &repo_path("cedar")).await
}

async fn channel(running: &Running) -> Channel {
    grpc_channel(running.grpc_addr, ANSWER_TIMEOUT).await
}

fn http(principal: &str, method: &str, path: &str) -> CheckRequest {
    check::request("robustness", principal, method, path, &[])
}

/// Asserts a 400 (`INVALID_ARGUMENT` with an HTTP 400 for Envoy to send) and returns the
/// `message` of its JSON body.
fn bad_request_message(resp: &CheckResponse) -> String {
    assert_eq!(code(resp), INVALID_ARGUMENT, "{resp:?}");
    let Some(HttpResponse::DeniedResponse(denied)) = &resp.http_response else {
        panic!("a 400 carries a denied response: {resp:?}");
    };
    assert_eq!(denied.status.as_ref().map(|s| s.code), Some(400));
    let body: serde_json::Value = serde_json::from_str(&denied.body).unwrap();
    assert_eq!(body["error"], "bad_request", "{body}");
    body["message"].as_str().unwrap_or_default().to_owned()
}

/// The server still decides a normal request correctly and reports SERVING.
async fn assert_healthy(running: &Running, ch: &Channel) {
    let mut client = AuthorizationClient::new(ch.clone());
    let allow = client
        .check(http(RESEARCH_AGENT, "GET", "/v1/models"))
        .await
        .unwrap();
    assert_eq!(
        code(allow.get_ref()),
        OK,
        "normal allow after hostile input"
    );
    let deny = client
        .check(http(ROGUE_AGENT, "GET", "/v1/models"))
        .await
        .unwrap();
    assert_eq!(
        code(deny.get_ref()),
        PERMISSION_DENIED,
        "normal deny after hostile input"
    );
    let health = HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(health.get_ref().status(), ServingStatus::Serving);
    let healthz = plain_http_client()
        .get(format!("http://{}/healthz", running.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);
}

/// Sends one hostile request, bounded in time; returns its answer.
async fn hostile(
    ch: &Channel,
    what: &str,
    req: CheckRequest,
) -> Result<CheckResponse, tonic::Status> {
    let started = Instant::now();
    let result = tokio::time::timeout(
        ANSWER_TIMEOUT,
        AuthorizationClient::new(ch.clone()).check(req),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: no answer within {ANSWER_TIMEOUT:?}"));
    eprintln!("{what}: answered in {:?}", started.elapsed());
    result.map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_check_requests_get_clean_answers_and_the_server_stays_healthy() {
    let running = start().await;
    let ch = channel(&running).await;
    assert_healthy(&running, &ch).await;

    // Numerous headers: exactly the limit is decided; far past it is a 400, not a crash.
    let mut at_limit = http(RESEARCH_AGENT, "GET", "/v1/models");
    for i in 0..cedar_gate::request::MAX_HEADERS {
        http_mut(&mut at_limit)
            .headers
            .insert(format!("x-h-{i}"), "v".repeat(64));
    }
    let resp = hostile(&ch, "256 headers", at_limit).await.unwrap();
    assert_eq!(code(&resp), OK);
    let mut numerous = http(RESEARCH_AGENT, "GET", "/v1/models");
    for i in 0..20_000 {
        http_mut(&mut numerous)
            .headers
            .insert(format!("x-h-{i}"), "v".into());
    }
    let resp = hostile(&ch, "20,000 headers", numerous).await.unwrap();
    assert_eq!(code(&resp), INVALID_ARGUMENT);
    assert_healthy(&running, &ch).await;

    // Huge header values, about 3 MiB in total (under the 4 MiB gRPC message limit), each
    // just under the per-header bound, including the headers cedar-gate reads itself.
    let mut huge = http(RESEARCH_AGENT, "GET", "/v1/models");
    let under = MAX_HEADER_BYTES - 64;
    for i in 0..48 {
        http_mut(&mut huge)
            .headers
            .insert(format!("x-huge-{i}"), "a".repeat(under));
    }
    http_mut(&mut huge)
        .headers
        .insert("x-forwarded-client-cert".into(), "By=".repeat(under / 3));
    http_mut(&mut huge).headers.insert(
        "authorization".into(),
        format!("Bearer {}", "x".repeat(under)),
    );
    let resp = hostile(&ch, "3 MiB of header values", huge).await.unwrap();
    assert_eq!(
        code(&resp),
        OK,
        "the research agent is allowed whatever its extra headers"
    );
    // One header over the bound: a 400 naming it, before anything reads it.
    let mut over = http(RESEARCH_AGENT, "GET", "/v1/models");
    http_mut(&mut over)
        .headers
        .insert("x-huge".into(), "a".repeat(MAX_HEADER_BYTES));
    let resp = hostile(&ch, "one header over the bound", over)
        .await
        .unwrap();
    let message = bad_request_message(&resp);
    assert!(message.contains("header `x-huge`"), "{message}");
    assert_healthy(&running, &ch).await;

    // Invalid UTF-8 in raw header values (`encode_raw_headers: true`), including the
    // headers cedar-gate reads itself.
    let mut raw = http(RESEARCH_AGENT, "GET", "/v1/models");
    let bad = vec![0xff, 0xfe, 0xc3, 0x28, b'a', 0x80];
    http_mut(&mut raw).header_map = Some(HeaderMap {
        headers: [
            "x-request-id",
            "x-forwarded-client-cert",
            "authorization",
            "x-cedar-gate-principal",
            "x-other",
        ]
        .iter()
        .map(|k| HeaderValue {
            key: (*k).into(),
            raw_value: bad.clone(),
            ..Default::default()
        })
        .collect(),
    });
    let resp = hostile(&ch, "invalid UTF-8 raw headers", raw)
        .await
        .unwrap();
    assert_eq!(code(&resp), OK);

    // A path at the length bound (denied: no route group names it), one full of `*`, `%`
    // and NUL, and an admin path at the bound.
    let long = format!("/v1/{}", "a/".repeat((MAX_PATH_BYTES - 16) / 2));
    assert!(long.len() + "/admin".len() <= MAX_PATH_BYTES);
    let resp = hostile(
        &ch,
        "path at the bound",
        http(RESEARCH_AGENT, "POST", &long),
    )
    .await
    .unwrap();
    assert_eq!(code(&resp), PERMISSION_DENIED);
    let odd = format!("/v1/{}", "*%00\0%2F..%2F".repeat(1_200));
    assert!(odd.len() <= MAX_PATH_BYTES);
    let resp = hostile(&ch, "odd path", http(RESEARCH_AGENT, "GET", &odd))
        .await
        .unwrap();
    assert!(
        matches!(code(&resp), OK | PERMISSION_DENIED | INVALID_ARGUMENT),
        "{resp:?}"
    );
    let resp = hostile(
        &ch,
        "admin path",
        http(RESEARCH_AGENT, "GET", &format!("/admin{long}")),
    )
    .await
    .unwrap();
    assert_eq!(
        code(&resp),
        PERMISSION_DENIED,
        "forbid-admin-paths still applies"
    );
    assert_healthy(&running, &ch).await;

    // Over the path bound: a 3 MiB path (Envoy would never send it; a direct gRPC caller
    // can) and an over-long query string are refused with a 400 before any matching, and
    // so is a 2 MiB host.
    let enormous = format!("/v1/{}", "a/".repeat(3 << 19));
    let resp = hostile(&ch, "3 MiB path", http(RESEARCH_AGENT, "POST", &enormous))
        .await
        .unwrap();
    let message = bad_request_message(&resp);
    assert!(message.starts_with("request path is"), "{message}");
    let query = format!("/v1/models?q={}", "a".repeat(MAX_PATH_BYTES));
    let resp = hostile(&ch, "long query", http(RESEARCH_AGENT, "GET", &query))
        .await
        .unwrap();
    assert!(bad_request_message(&resp).starts_with("request path is"));
    let mut host = http(RESEARCH_AGENT, "GET", "/v1/models");
    http_mut(&mut host).host = format!("{}.example.com", "h".repeat(2 << 20));
    let resp = hostile(&ch, "2 MiB host", host).await.unwrap();
    assert!(bad_request_message(&resp).starts_with("request host is"));
    assert_healthy(&running, &ch).await;

    // Over the gRPC message limit (4 MiB): refused by tonic (OUT_OF_RANGE) before any
    // decoding work; the connection and the server survive.
    let mut over = http(RESEARCH_AGENT, "GET", "/v1/models");
    http_mut(&mut over).raw_body = vec![b'{'; 5 << 20];
    let status = hostile(&ch, "5 MiB body", over).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    assert_healthy(&running, &ch).await;

    // No HTTP attributes at all, and an empty request: 400.
    let resp = hostile(&ch, "empty CheckRequest", CheckRequest::default())
        .await
        .unwrap();
    assert_eq!(code(&resp), INVALID_ARGUMENT);
    assert_healthy(&running, &ch).await;

    running.shutdown().await;
}

/// Whether a failed Check is a clean refusal: the client can tell the server never
/// started it, so retrying it elsewhere is safe. From the client's side of a graceful stop
/// that is one of:
/// - the server's HTTP/2 GOAWAY with NO_ERROR, or REFUSED_STREAM, for a stream it never
///   started (tonic reports `INTERNAL`/`UNKNOWN` with the h2 error as source);
/// - `UNAVAILABLE`: the channel found the connection closed or refused before sending;
/// - `CANCELLED` from hyper's `Canceled` ("connection closed"): the client had queued the
///   request on a connection that closed before the request was written;
/// - the request's own write failing with EPIPE (or ECONNRESET / ECONNABORTED /
///   ENOTCONN): it went out on a connection that the server had already drained and closed,
///   so no byte of it was read.
///
/// What is not clean is an in-flight Check that is dropped: the server started it and the
/// client never got the decision. An error cannot always show which of the two happened
/// (a reset looks the same), so the test also counts: every Check the server decided (one
/// audit line each) must have reached its client.
fn is_clean_refusal(status: &tonic::Status) -> bool {
    let detail = format!("{status:?}");
    let goaway = detail.contains("GoAway") && detail.contains("NO_ERROR");
    let refused_stream = detail.contains("REFUSED_STREAM");
    match status.code() {
        Code::Unavailable => true,
        // Not a client-side deadline ("Timeout expired", also CANCELLED): that would be a hang.
        Code::Cancelled => detail.contains("hyper::Error(Canceled"),
        Code::Internal | Code::Unknown => goaway || refused_stream || connection_gone(status),
        _ => false,
    }
}

/// Whether an I/O error in `status`'s source chain says the connection was already gone.
fn connection_gone(status: &tonic::Status) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, NotConnected};
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected
            )
        {
            return true;
        }
        source = err.source();
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_completes_in_flight_checks_then_refuses_connections() {
    // The audit file counts what the server decided: one line per Check it answered.
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let config = format!(
        "identity:\n  trust_domains: [example.org]\naudit:\n  sink: file\n  path: {}\nlogging:\n  level: warn\n",
        audit_path.display()
    );
    let running = serve(&config, &repo_path("cedar")).await;
    let addr = running.grpc_addr;
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(channel(&running).await);
    }
    let shutting_down = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let answered_after_signal = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for ch in &channels {
        for _ in 0..8 {
            let mut client = AuthorizationClient::new(ch.clone());
            let (shutting_down, answered, after) = (
                shutting_down.clone(),
                answered.clone(),
                answered_after_signal.clone(),
            );
            workers.push(tokio::spawn(async move {
                // Until the server stops answering: every answer must be right, and the
                // first failure must come after shutdown began and be a clean refusal.
                loop {
                    let result = client
                        .check(http(RESEARCH_AGENT, "GET", "/v1/models"))
                        .await;
                    match result {
                        Ok(resp) => {
                            assert_eq!(
                                code(resp.get_ref()),
                                OK,
                                "a completed check is a real decision"
                            );
                            answered.fetch_add(1, Ordering::Relaxed);
                            if shutting_down.load(Ordering::Relaxed) {
                                after.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(status) => {
                            assert!(
                                shutting_down.load(Ordering::Relaxed),
                                "check failed before shutdown: {status:?}"
                            );
                            assert!(is_clean_refusal(&status), "not a clean refusal: {status:?}");
                            return;
                        }
                    }
                }
            }));
        }
    }

    // Let the load build up, then stop while checks are in flight.
    crate::common::eventually("checks flowing", Duration::from_secs(30), || {
        let n = answered.load(Ordering::Relaxed);
        async move { (n >= 200).then_some(()) }
    })
    .await;
    shutting_down.store(true, Ordering::Relaxed);
    let before = answered.load(Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(30), running.shutdown())
        .await
        .expect("graceful shutdown finishes while clients stay connected");

    for w in workers {
        tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("every client sees its answer or a clean refusal")
            .unwrap();
    }
    let after = answered_after_signal.load(Ordering::Relaxed);
    eprintln!("answered {before} before the signal, {after} after it");
    // 32 checks were in flight when shutdown began: those the server had received were
    // drained, not dropped.
    assert!(
        after > 0,
        "no in-flight check completed after shutdown began"
    );
    // Nothing the server decided was lost on the way back: the audit log (flushed by
    // shutdown) has exactly one line per answer the clients received.
    let decided = std::fs::read_to_string(&audit_path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    let received = answered.load(Ordering::Relaxed);
    assert_eq!(
        decided, received,
        "the server decided {decided} checks but clients received {received} answers: \
         an in-flight check was dropped"
    );

    // New connections are refused outright (the listener is closed), not accepted and hung.
    let refused =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect attempt is answered at once");
    assert!(
        refused.is_err(),
        "the gRPC port still accepts connections after shutdown"
    );
    let err = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    assert!(
        err.is_err(),
        "a new gRPC channel cannot connect after shutdown"
    );
}
