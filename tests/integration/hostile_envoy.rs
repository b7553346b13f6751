//! Hostile requests through the real Envoy running the shipped `envoy/envoy.yaml`, in
//! front of the real `cedar-gate serve` process (shipped `cedar/` policies and route table)
//! and an upstream standing in for the model provider and MCP servers. Requests are written
//! as raw HTTP/1.1 bytes over mTLS ([`RawClient`]) where a client library would refuse
//! them. All traffic stays on 127.0.0.1; every wait is bounded.
//!
//! Each hostile request must get a bounded, specific answer (Envoy's own 4xx for what its
//! codec refuses, cedar-gate's 400 / 403 for what it refuses), never reach the upstream when
//! it should be refused, and leave cedar-gate answering a normal request correctly, ready,
//! and with a bounded resident set.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::ai::shipped_routes_yaml;
use crate::common::check::refusal_fields;
use crate::common::gate::DEFAULT_CONFIG;
use crate::common::ids::{RESEARCH_AGENT, ROGUE_AGENT};
use crate::common::raw::{RawClient, RawResponse, head};
use crate::common::upstream::UPSTREAM_BODY;
use crate::common::{GateOptions, Stack, repo_path};

/// Bound on one hostile answer (debug build, shared machine). Envoy's ext_authz timeout is
/// 0.5 s, so anything that reaches cedar-gate is answered well within it.
const ANSWER: Duration = Duration::from_secs(15);
/// cedar-gate's resident set must stay below this (it starts at a few tens of MiB).
const MAX_RSS_KIB: u64 = 512 * 1024;

async fn stack() -> Stack {
    let gate = GateOptions {
        config: format!("{DEFAULT_CONFIG}{}", shipped_routes_yaml()),
        ..GateOptions::default()
    };
    Stack::start_with(&repo_path("envoy/envoy.yaml"), gate).await
}

/// cedar-gate's `VmRSS` in KiB, from `/proc/<pid>/status`.
fn gate_rss_kib(stack: &Stack) -> u64 {
    let pid = stack.gate.pid().expect("cedar-gate is running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// After a hostile request: cedar-gate is still running, ready, answers a normal allowed
/// request through Envoy (200, seen by the upstream) and a normal denied one (403), and
/// its resident set is bounded.
async fn assert_still_healthy(stack: &mut Stack, after: &str) {
    assert!(stack.gate.is_running(), "{after}: cedar-gate exited");
    let (status, body) = stack.gate.admin_get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{after}: /readyz: {body}");
    let tag = format!("healthy-after-{}", stack.upstream.requests().len());
    let resp = stack
        .client(RESEARCH_AGENT)
        .get("/v1/models")
        .header("x-test-id", &tag)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{after}: normal request: {e}"));
    assert_eq!(resp.status(), StatusCode::OK, "{after}: normal request");
    assert_eq!(resp.text().await.unwrap(), UPSTREAM_BODY);
    assert_eq!(stack.upstream.requests_tagged(&tag).len(), 1, "{after}");
    let resp = stack
        .client(ROGUE_AGENT)
        .get("/v1/models")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{after}: normal denied request: {e}"));
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{after}: normal deny");
    let rss = gate_rss_kib(stack);
    eprintln!("{after}: cedar-gate VmRSS {rss} KiB");
    assert!(
        rss < MAX_RSS_KIB,
        "{after}: cedar-gate resident set {rss} KiB"
    );
}

/// Sends one raw request tagged `x-test-id: <tag>` and returns the answer, asserting it
/// came within [`ANSWER`]. `extra` header lines are raw bytes.
async fn send(
    raw: &RawClient,
    what: &str,
    method: &str,
    target: &[u8],
    extra: &[Vec<u8>],
    body: Vec<u8>,
) -> RawResponse {
    let mut headers = vec![format!("x-test-id: {what}").into_bytes()];
    headers.extend_from_slice(extra);
    if !body.is_empty() || method == "POST" {
        headers.push(b"content-type: application/json".to_vec());
        headers.push(format!("content-length: {}", body.len()).into_bytes());
    }
    let started = Instant::now();
    let resp = raw
        .send(head(method, target, &headers), body, false, ANSWER)
        .await;
    eprintln!(
        "{what}: {:?} in {:?} ({} body bytes)",
        resp.status,
        started.elapsed(),
        resp.body.len()
    );
    assert!(
        !resp.timed_out,
        "{what}: no complete answer within {ANSWER:?}"
    );
    resp
}

/// Asserts cedar-gate's 403 with `reason`; returns the body's machine-readable fields
/// (in whichever shape the route's protocol gives it).
fn assert_gate_forbidden(resp: &RawResponse, what: &str, reason: &str) -> Value {
    assert_eq!(resp.status, Some(403), "{what}: {resp:?}");
    let body = resp.json();
    let json =
        refusal_fields(&body).unwrap_or_else(|| panic!("{what}: not a cedar-gate refusal: {body}"));
    assert_eq!(json["reason"], reason, "{what}: {json}");
    json
}

/// A 400 from cedar-gate: the path has no canonical form.
fn assert_gate_bad_path(resp: &RawResponse, what: &str) {
    assert_eq!(resp.status, Some(400), "{what}: {resp:?}");
    let json = resp.json();
    assert_eq!(json["error"], "bad_request", "{what}: {json}");
    assert_eq!(json["reason"], "path_not_canonical", "{what}: {json}");
    assert!(json["decision_id"].is_string(), "{what}: {json}");
}

/// An Envoy counter from its admin `/stats` (0 when absent).
async fn envoy_counter(stack: &Stack, name: &str) -> u64 {
    let prefix = format!("{name}: ");
    stack
        .envoy
        .stats()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Checks cedar-gate answered so far (decisions and 400s), from its own `/metrics`:
/// counted before the answer leaves, unlike the batched audit file.
async fn checks_answered(stack: &Stack) -> u64 {
    let (status, text) = stack.gate.admin_get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    text.lines()
        .filter(|l| {
            l.starts_with("cedar_gate_checks_total{")
                || l.starts_with("cedar_gate_check_errors_total{")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Asserts an answer Envoy gave itself, without asking cedar-gate: `status`, not
/// cedar-gate's JSON, and no Check answered since `checks_before`.
async fn assert_envoy_refused(
    stack: &Stack,
    resp: &RawResponse,
    what: &str,
    status: u16,
    checks_before: u64,
) {
    assert_eq!(resp.status, Some(status), "{what}: {resp:?}");
    assert!(
        resp.json().get("error").is_none(),
        "{what}: a cedar-gate body, but Envoy should have answered itself: {resp:?}"
    );
    assert_eq!(
        checks_answered(stack).await,
        checks_before,
        "{what}: cedar-gate was asked"
    );
}

fn header_line(name: &str, value: &[u8]) -> Vec<u8> {
    let mut line = format!("{name}: ").into_bytes();
    line.extend_from_slice(value);
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_headers_and_paths_through_envoy() {
    let mut stack = stack().await;
    let raw = RawClient::new(
        &stack.pki,
        &stack.cert(RESEARCH_AGENT),
        stack.envoy.listener_port(),
    );
    let rogue = RawClient::new(
        &stack.pki,
        &stack.cert(ROGUE_AGENT),
        stack.envoy.listener_port(),
    );
    assert_still_healthy(&mut stack, "start").await;

    // Near Envoy's header limit (60 KiB for all headers): a 56 KiB value gets through Envoy
    // and is under cedar-gate's 64 KiB per-header bound. The allowed agent is allowed (no
    // false refusal), and the upstream gets the header intact; the rogue agent is refused.
    let big = vec![b'a'; 56 * 1024];
    let resp = send(
        &raw,
        "near-limit-allowed",
        "GET",
        b"/v1/models",
        &[header_line("x-big", &big)],
        vec![],
    )
    .await;
    assert_eq!(resp.status, Some(200), "{resp:?}");
    let seen = stack.upstream.requests_tagged("near-limit-allowed");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-big").map(str::len), Some(big.len()));
    let resp = send(
        &rogue,
        "near-limit-rogue",
        "GET",
        b"/v1/models",
        &[header_line("x-big", &big)],
        vec![],
    )
    .await;
    assert_gate_forbidden(&resp, "near-limit-rogue", "no_permit");
    assert_still_healthy(&mut stack, "headers near the limit").await;

    // Over Envoy's limit, in one header or spread over many: Envoy's 431, cedar-gate never
    // asked, the upstream never reached.
    let checks = checks_answered(&stack).await;
    let huge = vec![b'a'; 70 * 1024];
    let resp = send(
        &raw,
        "one-huge-header",
        "GET",
        b"/v1/models",
        &[header_line("x-huge", &huge)],
        vec![],
    )
    .await;
    assert_envoy_refused(&stack, &resp, "one-huge-header", 431, checks).await;
    let spread: Vec<Vec<u8>> = (0..40)
        .map(|i| header_line(&format!("x-part-{i}"), &[b'b'; 2048]))
        .collect();
    let resp = send(
        &raw,
        "80-KiB-of-headers",
        "GET",
        b"/v1/models",
        &spread,
        vec![],
    )
    .await;
    assert_envoy_refused(&stack, &resp, "80-KiB-of-headers", 431, checks).await;
    assert_still_healthy(&mut stack, "headers over the limit").await;

    // Many headers. Envoy's codec allows 100 (the 150 below are refused with its 431,
    // cedar-gate never asked); cedar-gate allows 256. 80 extra headers are decided (allowed
    // and forwarded; the rogue agent refused). At 95 the allow itself cannot be applied:
    // Envoy adds its own headers (x-forwarded-*, x-request-id, XFCC) and cedar-gate's two
    // (`x-cedar-gate-principal`, `x-cedar-gate-decision-id`), which would take the request
    // past 100, so Envoy answers 500 (`UAEX`, counted in `ext_authz.request_header_limits_
    // reached`) and forwards nothing: fail closed, never a header-less allow.
    let many = |n: usize| -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| header_line(&format!("x-h-{i}"), b"v"))
            .collect()
    };
    let resp = send(&raw, "80-headers", "GET", b"/v1/models", &many(80), vec![]).await;
    assert_eq!(resp.status, Some(200), "{resp:?}");
    assert_eq!(stack.upstream.requests_tagged("80-headers").len(), 1);
    let resp = send(
        &rogue,
        "95-headers-rogue",
        "GET",
        b"/v1/models",
        &many(95),
        vec![],
    )
    .await;
    assert_gate_forbidden(&resp, "95-headers-rogue", "no_permit");
    let limits_reached = envoy_counter(
        &stack,
        "http.ingress_http.ext_authz.request_header_limits_reached",
    )
    .await;
    let resp = send(&raw, "95-headers", "GET", b"/v1/models", &many(95), vec![]).await;
    assert_eq!(resp.status, Some(500), "{resp:?}");
    let entry = stack
        .envoy
        .access_log_entry("the 95-header request", |e| {
            e["response_code"] == 500 && e["decision"] == "allow"
        })
        .await;
    assert_eq!(entry["response_flags"], "UAEX", "{entry}");
    assert_eq!(
        envoy_counter(
            &stack,
            "http.ingress_http.ext_authz.request_header_limits_reached"
        )
        .await,
        limits_reached + 1
    );
    let checks = checks_answered(&stack).await;
    let resp = send(
        &raw,
        "150-headers",
        "GET",
        b"/v1/models",
        &many(150),
        vec![],
    )
    .await;
    assert_envoy_refused(&stack, &resp, "150-headers", 431, checks).await;
    assert_still_healthy(&mut stack, "many headers").await;

    // Invalid UTF-8 in header values, a forged `x-cedar-gate-principal` among them. They
    // pass Envoy's codec (obs-text is legal HTTP/1.1) and reach cedar-gate, which decides
    // as usual: the allowed agent is allowed, and the upstream gets the bytes as sent but
    // only cedar-gate's own principal header; the rogue agent is refused.
    let bad: &[u8] = &[0xff, 0xfe, 0xc3, 0x28, b'a', 0x80];
    let hostile_headers = [
        header_line("x-bad", bad),
        header_line("x-cedar-gate-principal", bad),
    ];
    let resp = send(
        &raw,
        "bad-utf8-header",
        "GET",
        b"/v1/models",
        &hostile_headers,
        vec![],
    )
    .await;
    assert_eq!(resp.status, Some(200), "{resp:?}");
    let seen = stack.upstream.requests_tagged("bad-utf8-header");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].headers.get("x-bad").map(|v| v.as_bytes()),
        Some(bad)
    );
    assert_eq!(
        seen[0].header_all("x-cedar-gate-principal"),
        vec![format!("Workload::\"{RESEARCH_AGENT}\"")]
    );
    let resp = send(
        &rogue,
        "bad-utf8-header-rogue",
        "GET",
        b"/v1/models",
        &hostile_headers,
        vec![],
    )
    .await;
    assert_gate_forbidden(&resp, "bad-utf8-header-rogue", "no_permit");
    assert_still_healthy(&mut stack, "invalid UTF-8 headers").await;

    // Invalid UTF-8 in the path. Raw bytes: Envoy's codec answers 400 itself. Percent-
    // encoded: a valid request line, but no canonical path (an upstream could decode it
    // any way), so cedar-gate answers 400 `path_not_canonical`, on any route.
    let checks = checks_answered(&stack).await;
    let target = [b"/v1/models/".as_slice(), bad].concat();
    let resp = send(&raw, "bad-utf8-path", "GET", &target, &[], vec![]).await;
    assert_envoy_refused(&stack, &resp, "bad-utf8-path", 400, checks).await;
    let resp = send(
        &raw,
        "encoded-bad-utf8-path",
        "GET",
        b"/v1/models/%ff%fe%c3%28",
        &[],
        vec![],
    )
    .await;
    assert_gate_bad_path(&resp, "encoded-bad-utf8-path");
    let resp = send(
        &raw,
        "encoded-bad-utf8-admin",
        "GET",
        b"/admin/%ff%fe",
        &[],
        vec![],
    )
    .await;
    assert_gate_bad_path(&resp, "encoded-bad-utf8-admin");
    assert_still_healthy(&mut stack, "invalid UTF-8 paths").await;

    // A 20 KiB path: under Envoy's 60 KiB header limit, over cedar-gate's 16 KiB path
    // bound: cedar-gate's 400 (`invalid_request`), passed on by Envoy.
    let long = format!("/v1/{}", "a/".repeat(10 * 1024));
    let resp = send(&raw, "20-KiB-path", "GET", long.as_bytes(), &[], vec![]).await;
    assert_eq!(resp.status, Some(400), "{resp:?}");
    let json = resp.json();
    assert_eq!(json["error"], "bad_request", "{json}");
    assert_eq!(
        json["message"],
        format!(
            "request path is {} bytes, more than the 16384 allowed",
            long.len()
        ),
        "{json}"
    );
    assert_still_healthy(&mut stack, "a long path").await;

    assert_reached_upstream(
        &stack,
        &["near-limit-allowed", "80-headers", "bad-utf8-header"],
    );
}

/// Exactly `expected` (by `x-test-id`, besides the health probes) reached the upstream.
fn assert_reached_upstream(stack: &Stack, expected: &[&str]) {
    let mut reached: Vec<String> = stack
        .upstream
        .requests()
        .into_iter()
        .filter_map(|r| r.header("x-test-id").map(str::to_owned))
        .filter(|t| !t.starts_with("healthy-after-"))
        .collect();
    reached.sort();
    let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(reached, expected, "requests that reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_through_envoy() {
    let mut stack = stack().await;
    let raw = RawClient::new(
        &stack.pki,
        &stack.cert(RESEARCH_AGENT),
        stack.envoy.listener_port(),
    );
    assert_still_healthy(&mut stack, "start").await;
    let chat: &[u8] = b"/v1/chat/completions";

    // Deep nesting under Envoy's 64 KiB `max_request_bytes`: the whole body reaches
    // cedar-gate, whose JSON parser stops at depth 128: `body_invalid`, not a stack overflow.
    let resp = send(
        &raw,
        "nested-60k-arrays",
        "POST",
        chat,
        &[],
        vec![b'['; 60_000],
    )
    .await;
    assert_gate_forbidden(&resp, "nested-60k-arrays", "body_invalid");
    let objects = "{\"a\":".repeat(12_000).into_bytes();
    let resp = send(&raw, "nested-12k-objects", "POST", chat, &[], objects).await;
    assert_gate_forbidden(&resp, "nested-12k-objects", "body_invalid");
    assert_still_healthy(&mut stack, "deeply nested JSON").await;

    // Deeper than Envoy buffers (100,000 levels), and an enormous valid request (8 MiB of
    // prompt): cedar-gate gets only the first 64 KiB (marked partial by Envoy, or shorter
    // than the request's `content-length`) and refuses to guess.
    let resp = send(
        &raw,
        "nested-100k-arrays",
        "POST",
        chat,
        &[],
        vec![b'['; 100_000],
    )
    .await;
    assert_gate_forbidden(&resp, "nested-100k-arrays", "body_partial");
    let enormous = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "x".repeat(8 << 20)}],
    })
    .to_string()
    .into_bytes();
    let resp = send(&raw, "8-MiB-body", "POST", chat, &[], enormous).await;
    assert_gate_forbidden(&resp, "8-MiB-body", "body_partial");
    assert_still_healthy(&mut stack, "enormous bodies").await;

    // Control: a small transcription request for `whisper-1` is allowed and forwarded.
    let (multipart, split) = smuggled_model_multipart();
    let content_type = b"content-type: multipart/form-data; boundary=XyZ".to_vec();
    let small = [&multipart[..200], b"\r\n--XyZ--\r\n".as_slice()].concat();
    let resp = raw
        .send(
            head(
                "POST",
                b"/v1/audio/transcriptions",
                &[
                    b"x-test-id: small-transcription".to_vec(),
                    content_type.clone(),
                    format!("content-length: {}", small.len()).into_bytes(),
                ],
            ),
            small,
            false,
            ANSWER,
        )
        .await;
    assert_eq!(resp.status, Some(200), "{resp:?}");

    // A body that reaches Envoy's 64 KiB buffer *exactly* before the rest arrives: Envoy
    // then asks with exactly 65,536 bytes and `x-envoy-auth-partial-body: false` (it marks
    // a body partial only when it buffered more than `max_request_bytes`). The request is a
    // transcription (multipart) naming the allowed `whisper-1` in the first 64 KiB and a
    // frontier model again after them: the upstream may keep the second field. cedar-gate
    // must see that it got less than `content-length` and refuse it as partial.
    let head_split = head(
        "POST",
        b"/v1/audio/transcriptions",
        &[
            b"x-test-id: split-at-64-KiB".to_vec(),
            content_type.clone(),
            format!("content-length: {}", multipart.len()).into_bytes(),
        ],
    );
    let (first, rest) = multipart.split_at(split);
    let resp = raw
        .send_parts(
            head_split,
            vec![first.to_vec(), rest.to_vec()],
            Duration::from_millis(500),
            false,
            ANSWER,
        )
        .await;
    let json = assert_gate_forbidden(&resp, "split-at-64-KiB", "body_partial");
    let audit = stack
        .gate
        .audit_event(json["decision_id"].as_str().unwrap_or_default())
        .await;
    assert!(
        audit["errors"].to_string().contains(&format!(
            "envoy forwarded {split} of the {} body bytes",
            multipart.len()
        )),
        "{audit}"
    );
    // The same split in a chunked request (no `content-length`): exactly 64 KiB arrived,
    // which cannot be told from a cut body.
    let chunk = |b: &[u8]| {
        [
            format!("{:x}\r\n", b.len()).into_bytes(),
            b.to_vec(),
            b"\r\n".to_vec(),
        ]
        .concat()
    };
    let head_chunked = head(
        "POST",
        b"/v1/audio/transcriptions",
        &[
            b"x-test-id: chunked-split-at-64-KiB".to_vec(),
            content_type,
            b"transfer-encoding: chunked".to_vec(),
        ],
    );
    let resp = raw
        .send_parts(
            head_chunked,
            vec![chunk(first), [chunk(rest), b"0\r\n\r\n".to_vec()].concat()],
            Duration::from_millis(500),
            false,
            ANSWER,
        )
        .await;
    let json = assert_gate_forbidden(&resp, "chunked-split-at-64-KiB", "body_partial");
    let audit = stack
        .gate
        .audit_event(json["decision_id"].as_str().unwrap_or_default())
        .await;
    assert!(
        audit["errors"]
            .to_string()
            .contains("is exactly the 65536 bytes"),
        "{audit}"
    );
    assert_still_healthy(&mut stack, "a body split at 64 KiB").await;

    // A truncated JSON document (the HTTP message itself is complete): `body_invalid`.
    let truncated = br#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hel"#;
    let resp = send(
        &raw,
        "truncated-json",
        "POST",
        chat,
        &[],
        truncated.to_vec(),
    )
    .await;
    assert_gate_forbidden(&resp, "truncated-json", "body_invalid");
    assert_still_healthy(&mut stack, "truncated JSON").await;

    // A body shorter than its `content-length`. Envoy waits for the rest before asking
    // cedar-gate (the body is under `max_request_bytes`), so nothing is decided and nothing
    // is forwarded while the client stalls (3 s here; Envoy's stream idle timeout is
    // 5 min); a client that then closes its side gets no answer at all (Envoy closes the
    // connection without a byte). Either way cedar-gate is never asked.
    let checks = checks_answered(&stack).await;
    let partial_head = |tag: &str| {
        head(
            "POST",
            chat,
            &[
                format!("x-test-id: {tag}").into_bytes(),
                b"content-type: application/json".to_vec(),
                b"content-length: 4096".to_vec(),
            ],
        )
    };
    let body = br#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": ""#.to_vec();
    let resp = raw
        .send(
            partial_head("short-body-stalled"),
            body.clone(),
            false,
            Duration::from_secs(3),
        )
        .await;
    eprintln!("short-body-stalled: {resp:?}");
    assert!(resp.timed_out && resp.status.is_none(), "{resp:?}");
    let resp = raw
        .send(partial_head("short-body-closed"), body, true, ANSWER)
        .await;
    eprintln!("short-body-closed: {resp:?}");
    assert!(!resp.timed_out, "{resp:?}");
    assert_eq!(resp.status, None, "{resp:?}");
    assert_eq!(
        checks_answered(&stack).await,
        checks,
        "cedar-gate was asked"
    );
    assert_still_healthy(&mut stack, "short bodies").await;

    assert_reached_upstream(&stack, &["small-transcription"]);
}

/// A `multipart/form-data` transcription request naming `whisper-1` (a standard model the
/// research agent may use) in its first 64 KiB and `gpt-4.5-preview` (frontier, not
/// permitted) after them, and the offset just past the first 65,536 bytes.
fn smuggled_model_multipart() -> (Vec<u8>, usize) {
    let max_request_bytes = 64 * 1024;
    let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\
Content-Type: application/octet-stream\r\n\r\n"
        .to_vec();
    body.resize(max_request_bytes + 4096, b'A');
    body.extend_from_slice(
        b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-4.5-preview\r\n--XyZ--\r\n",
    );
    (body, max_request_bytes)
}

/// An MCP JSON-RPC batch of `n` `tools/call` messages: for the allowed `search_issues`
/// tool, or `compact` (46 bytes each, tool `t`) to fit many under 64 KiB.
fn mcp_batch(n: usize, compact: bool) -> Vec<u8> {
    let call = |i: usize| {
        if compact {
            r#"{"method":"tools/call","params":{"name":"t"}}"#.to_owned()
        } else {
            format!(
                r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"search_issues","arguments":{{"query":"is:open"}}}}}}"#
            )
        }
    };
    format!("[{}]", (0..n).map(call).collect::<Vec<_>>().join(",")).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_mcp_batches_through_envoy() {
    let mut stack = stack().await;
    let raw = RawClient::new(
        &stack.pki,
        &stack.cert(RESEARCH_AGENT),
        stack.envoy.listener_port(),
    );
    assert_still_healthy(&mut stack, "start").await;
    let mcp: &[u8] = b"/mcp/github";
    let accept = [b"accept: application/json, text/event-stream".to_vec()];
    let max = cedar_gate::classify::mcp::MAX_BATCH;

    // At the batch bound (64 calls of an allowed tool): allowed, forwarded.
    let resp = send(
        &raw,
        "batch-at-bound",
        "POST",
        mcp,
        &accept,
        mcp_batch(max, false),
    )
    .await;
    assert_eq!(resp.status, Some(200), "{resp:?}");
    // One more, and 1,400 calls (63 KiB: the whole batch reaches cedar-gate):
    // `batch_too_large` before any element is looked at.
    let resp = send(
        &raw,
        "batch-over-bound",
        "POST",
        mcp,
        &accept,
        mcp_batch(max + 1, false),
    )
    .await;
    assert_gate_forbidden(&resp, "batch-over-bound", "batch_too_large");
    let body = mcp_batch(1_400, true);
    assert!(body.len() < 64 * 1024, "{}", body.len());
    let started = Instant::now();
    let resp = send(&raw, "batch-1400", "POST", mcp, &accept, body).await;
    assert_gate_forbidden(&resp, "batch-1400", "batch_too_large");
    eprintln!("batch-1400 decided in {:?}", started.elapsed());
    assert_still_healthy(&mut stack, "a batch of 1,400 calls").await;

    // 5,000 calls (about 540 KiB): Envoy forwards the first 64 KiB marked partial.
    let resp = send(
        &raw,
        "batch-5000",
        "POST",
        mcp,
        &accept,
        mcp_batch(5_000, false),
    )
    .await;
    assert_gate_forbidden(&resp, "batch-5000", "body_partial");
    assert_still_healthy(&mut stack, "a batch of 5,000 calls").await;

    assert_reached_upstream(&stack, &["batch-at-bound"]);
}
