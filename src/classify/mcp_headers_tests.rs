//! The header/body agreement rules, one case each, through the whole MCP
//! classifier (route table, body reader, headers).

#![allow(clippy::unwrap_used, clippy::panic)]

use serde_json::json;

use super::*;
use crate::classify::{ClassifyError, Operation, Routes, classify};
use crate::vocab::Value;

const MCP_ROUTES: &str = r#"
- { name: gh, path_prefix: /mcp/github, protocol: mcp, server: github }
- { name: strict, path_prefix: /mcp/strict, protocol: mcp, server: strict, mcp_legacy: refuse }
"#;

fn routes() -> Routes {
    serde_norway::from_str(MCP_ROUTES).unwrap()
}

fn meta(version: &str) -> Json {
    json!({ META_VERSION: version, "io.modelcontextprotocol/clientCapabilities": {} })
}

/// A modern `tools/call` body.
fn call(name: &str) -> Json {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
           "params": {"name": name, "arguments": {"region": "us-west1"}, "_meta": meta(FIRST_MODERN)}})
}

fn request(path: &str, method: &str, headers: &[(&str, &str)], body: &Json) -> HttpRequest {
    let content_type = ("content-type", "application/json");
    let headers = crate::request::header_list(headers.iter().copied().chain([content_type]));
    HttpRequest {
        method: method.into(),
        path: path.into(),
        headers,
        body: body.to_string().into_bytes(),
        ..Default::default()
    }
}

fn run(headers: &[(&str, &str)], body: &Json) -> Result<Vec<Operation>, ClassifyError> {
    classify(&request("/mcp/github", "POST", headers, body), &routes()).map_err(|r| r.error)
}

/// The refusal, with the reason and the JSON-RPC body checked.
fn refused(headers: &[(&str, &str)], body: &Json, reason: Reason) -> String {
    match run(headers, body) {
        Err(ClassifyError::Mcp(r)) => {
            assert_eq!(r.reason(), reason, "{r}");
            assert_eq!(reason.http_status(), 400);
            let b: Json = serde_json::from_str(&r.body()).unwrap();
            assert_eq!(b["jsonrpc"], "2.0");
            assert_eq!(
                b["id"],
                body.get("id").cloned().unwrap_or(Json::Null),
                "{b}"
            );
            r.to_string()
        }
        other => panic!("expected a refusal ({reason:?}), got {other:?}"),
    }
}

fn mismatch(headers: &[(&str, &str)], body: &Json) -> String {
    let m = refused(headers, body, Reason::McpHeaderMismatch);
    let r = match run(headers, body) {
        Err(ClassifyError::Mcp(r)) => r,
        _ => unreachable!(),
    };
    let b: Json = serde_json::from_str(&r.body()).unwrap();
    assert_eq!(b["error"]["code"], HEADER_MISMATCH, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Header mismatch: ")
    );
    m
}

const V: (&str, &str) = ("MCP-Protocol-Version", FIRST_MODERN);
const M: (&str, &str) = ("Mcp-Method", "tools/call");

fn mcp(op: &Operation) -> Vec<(String, Value)> {
    match op.context.iter().find(|(k, _)| k == "mcp") {
        Some((_, Value::Record(f))) => f.clone(),
        _ => panic!("no mcp record"),
    }
}

fn field(op: &Operation, name: &str) -> Option<Value> {
    mcp(op).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

#[test]
fn modern_call_that_agrees_is_classified_with_its_params() {
    let ops = run(
        &[
            V,
            M,
            ("Mcp-Name", "create_issue"),
            ("Mcp-Param-Region", "us-west1"),
        ],
        &call("create_issue"),
    )
    .unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].tool.as_deref(), Some("github/create_issue"));
    assert_eq!(
        field(&ops[0], "protocol_version"),
        Some(Value::str(FIRST_MODERN))
    );
    assert_eq!(
        field(&ops[0], "params"),
        Some(Value::Set(vec![Value::Record(vec![
            ("name".into(), Value::str("region")),
            ("value".into(), Value::str("us-west1")),
        ])]))
    );
}

#[test]
fn method_mismatch() {
    let m = mismatch(
        &[V, ("Mcp-Method", "tools/list"), ("Mcp-Name", "x")],
        &call("x"),
    );
    assert!(m.contains("`Mcp-Method` does not match `method`"), "{m}");
}

#[test]
fn name_mismatch() {
    let m = mismatch(
        &[V, M, ("Mcp-Name", "list_issues")],
        &call("delete_repository"),
    );
    assert!(m.contains("`Mcp-Name` does not match `params.name`"), "{m}");
    // The message names the fields, never the values.
    assert!(
        !m.contains("delete_repository") && !m.contains("list_issues"),
        "{m}"
    );
}

#[test]
fn base64_sentinel_name() {
    // "café" encoded: decoded before the comparison, so it agrees...
    let enc = "=?base64?Y2Fmw6k=?=";
    assert!(run(&[V, M, ("Mcp-Name", enc)], &call("café")).is_ok());
    // ...and an encoded name of another tool does not.
    let other = "=?base64?ZGVsZXRlX3JlcG9zaXRvcnk=?="; // delete_repository
    mismatch(&[V, M, ("Mcp-Name", other)], &call("list_issues"));
    // A literal sentinel in the body must come encoded: the raw one decodes.
    mismatch(
        &[V, M, ("Mcp-Name", "=?base64?!!?=")],
        &call("=?base64?!!?="),
    );
    // Bad Base64, and Base64 of bytes that are not UTF-8.
    let m = mismatch(&[V, M, ("Mcp-Name", "=?base64?not base64?=")], &call("x"));
    assert!(m.contains("invalid Base64"), "{m}");
    mismatch(&[V, M, ("Mcp-Name", "=?base64?/w==?=")], &call("x"));
    // The sentinel is case-sensitive: an upper-case one is a plain value.
    mismatch(&[V, M, ("Mcp-Name", "=?BASE64?Y2Fmw6k=?=")], &call("café"));
}

#[test]
fn protocol_version_mismatch() {
    let mut body = call("x");
    body["params"]["_meta"] = meta("2026-09-01");
    let m = mismatch(&[V, M, ("Mcp-Name", "x")], &body);
    assert!(m.contains("`MCP-Protocol-Version` does not match"), "{m}");
    // A modern body with an older header (legacy rules would skip the checks).
    mismatch(
        &[("MCP-Protocol-Version", "2025-11-25"), M, ("Mcp-Name", "x")],
        &call("x"),
    );
    // A malformed version header.
    mismatch(&[("MCP-Protocol-Version", "latest"), M], &call("x"));
    // A non-string version in the body.
    let mut body = call("x");
    body["params"]["_meta"][META_VERSION] = json!(20260728);
    mismatch(&[V, M, ("Mcp-Name", "x")], &body);
}

#[test]
fn duplicate_headers() {
    // Envoy's header map joins repeats with `,`.
    let m = mismatch(
        &[
            V,
            ("Mcp-Method", "tools/call,tools/call"),
            ("Mcp-Name", "x"),
        ],
        &call("x"),
    );
    assert!(m.contains("repeated"), "{m}");
    mismatch(
        &[
            ("MCP-Protocol-Version", "2026-07-28,2025-11-25"),
            M,
            ("Mcp-Name", "x"),
        ],
        &call("x"),
    );
    // A raw header map (`encode_raw_headers`) says so itself.
    let mut req = request(
        "/mcp/github",
        "POST",
        &[V, M, ("Mcp-Name", "x")],
        &call("x"),
    );
    req.repeated_headers = vec![NAME_HEADER.to_owned()];
    match classify(&req, &routes()) {
        Err(r) => assert_eq!(r.error.reason(), Reason::McpHeaderMismatch),
        Ok(ops) => panic!("accepted: {ops:?}"),
    }
}

#[test]
fn header_present_body_field_absent() {
    // Mcp-Name on a method without a name.
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                      "params": {"_meta": meta(FIRST_MODERN)}});
    let m = mismatch(&[V, ("Mcp-Method", "tools/list"), ("Mcp-Name", "x")], &list);
    assert!(m.contains("no `params.name` or `params.uri`"), "{m}");
    assert!(run(&[V, ("Mcp-Method", "tools/list")], &list).is_ok());
    // A version header and no `_meta` version.
    let bare = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let m = mismatch(&[V, ("Mcp-Method", "tools/list")], &bare);
    assert!(m.contains("no protocol version"), "{m}");
    // Mcp-Method on a message without a method (a response).
    let resp = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
    mismatch(&[("Mcp-Method", "tools/call")], &resp);
}

#[test]
fn body_field_present_header_absent() {
    let m = mismatch(&[V, M], &call("x"));
    assert!(m.contains("`Mcp-Name` is required"), "{m}");
    let m = mismatch(&[V, ("Mcp-Name", "x")], &call("x"));
    assert!(m.contains("`Mcp-Method` is required"), "{m}");
    // A body declaring 2026-07-28 without the version header cannot fall back
    // to the legacy rules.
    let m = mismatch(&[M, ("Mcp-Name", "x")], &call("x"));
    assert!(m.contains("`MCP-Protocol-Version` does not match"), "{m}");
    // resources/read mirrors the URI.
    let read = json!({"jsonrpc": "2.0", "id": "r1", "method": "resources/read",
                      "params": {"uri": "file:///a", "_meta": meta(FIRST_MODERN)}});
    let m = mismatch(&[V, ("Mcp-Method", "resources/read")], &read);
    assert!(m.contains("`params.uri`"), "{m}");
    assert!(
        run(
            &[
                V,
                ("Mcp-Method", "resources/read"),
                ("Mcp-Name", "file:///a")
            ],
            &read
        )
        .is_ok()
    );
}

#[test]
fn param_headers_well_formed() {
    let h = [V, M, ("Mcp-Name", "x")];
    let with = |extra: (&'static str, &'static str)| {
        let mut v = h.to_vec();
        v.push(extra);
        v
    };
    let m = mismatch(&with(("Mcp-Param-Region", "us\u{7f}west")), &call("x"));
    assert!(
        m.contains("`Mcp-Param-region` has invalid characters"),
        "{m}"
    );
    mismatch(&with(("Mcp-Param-Text", "=?base64?***?=")), &call("x"));
    mismatch(&with(("Mcp-Param-", "v")), &call("x"));
    let ops = run(
        &with(("Mcp-Param-Greeting", "=?base64?SGVsbG8sIOS4lueVjA==?=")),
        &call("x"),
    )
    .unwrap();
    assert_eq!(
        field(&ops[0], "params"),
        Some(Value::Set(vec![Value::Record(vec![
            ("name".into(), Value::str("greeting")),
            ("value".into(), Value::str("Hello, 世界")),
        ])]))
    );
    let many: Vec<(String, &str)> = (0..=MAX_PARAMS)
        .map(|i| (format!("Mcp-Param-P{i:02}"), "v"))
        .collect();
    let mut hs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    hs.extend(h);
    mismatch(&hs, &call("x"));
}

#[test]
fn modern_batch_refused_legacy_batch_kept() {
    let batch = json!([call("a"), call("b")]);
    let m = refused(&[V, M], &batch, Reason::McpBatchRefused);
    assert!(m.contains("not a batch"), "{m}");
    // 2025-11-25: batches work as before, each element authorized.
    let legacy = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "a"}},
    ]);
    let ops = run(&[("MCP-Protocol-Version", "2025-11-25")], &legacy).unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(
        field(&ops[1], "protocol_version"),
        Some(Value::str("2025-11-25"))
    );
    assert_eq!(field(&ops[1], "params"), None);
    // ... but not with mirrored headers, which a batch cannot have.
    mismatch(&[("Mcp-Method", "tools/list")], &legacy);
}

#[test]
fn legacy_clients_and_the_route_option() {
    let legacy = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": {"name": "a", "arguments": {}}});
    let session = ("Mcp-Session-Id", "abc");
    // No version header: read as 2025-03-26 (the specification's MAY).
    assert!(run(&[session], &legacy).is_ok());
    assert!(run(&[("MCP-Protocol-Version", "2025-06-18"), session], &legacy).is_ok());
    // Legacy params headers are not trusted: no legacy server checks them.
    let ops = run(
        &[
            ("MCP-Protocol-Version", "2025-11-25"),
            ("Mcp-Param-Region", "x"),
        ],
        &legacy,
    )
    .unwrap();
    assert_eq!(field(&ops[0], "params"), None);
    // A route with `mcp_legacy: refuse`.
    let strict = |headers: &[(&str, &str)], body: &Json| {
        classify(&request("/mcp/strict", "POST", headers, body), &routes()).map_err(|r| r.error)
    };
    for headers in [vec![], vec![("MCP-Protocol-Version", "2025-11-25")]] {
        match strict(&headers, &legacy) {
            Err(ClassifyError::Mcp(r)) => {
                assert_eq!(r.reason(), Reason::McpVersionRefused);
                let b: Json = serde_json::from_str(&r.body()).unwrap();
                assert_eq!(b["error"]["code"], UNSUPPORTED_VERSION, "{b}");
                assert_eq!(b["error"]["data"]["supported"][0], FIRST_MODERN, "{b}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(strict(&[V, M, ("Mcp-Name", "x")], &call("x")).is_ok());
    // The option exists on MCP routes only.
    let bad: Result<Routes, _> =
        serde_norway::from_str("[{ path_prefix: /v1, protocol: openai, mcp_legacy: refuse }]");
    assert!(bad.is_err());
}

#[test]
fn modern_get_delete_and_responses() {
    for method in ["GET", "DELETE"] {
        let req = request("/mcp/github", method, &[V], &Json::Null);
        let ops = classify(
            &HttpRequest {
                body: Vec::new(),
                ..req
            },
            &routes(),
        )
        .unwrap();
        assert_eq!(ops[0].action.to_string(), r#"Action::"unclassified""#);
        let req = request("/mcp/github", method, &[], &Json::Null);
        let ops = classify(
            &HttpRequest {
                body: Vec::new(),
                ..req
            },
            &routes(),
        )
        .unwrap();
        assert_ne!(ops[0].action.to_string(), r#"Action::"unclassified""#);
    }
    let resp = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
    assert!(matches!(run(&[V], &resp), Err(ClassifyError::Body(_))));
}

#[test]
fn listen_and_mrtr_retry() {
    let listen = json!({"jsonrpc": "2.0", "id": 3, "method": "subscriptions/listen",
        "params": {"_meta": meta(FIRST_MODERN), "notifications": {
            "toolsListChanged": true, "promptsListChanged": false,
            "resourceSubscriptions": ["file:///project/config.json"]}}});
    let ops = run(&[V, ("Mcp-Method", "subscriptions/listen")], &listen).unwrap();
    assert_eq!(ops[0].action.to_string(), r#"Action::"listen""#);
    assert_eq!(
        field(&ops[0], "subscriptions"),
        Some(Value::Set(vec![
            Value::str("resourceSubscriptions"),
            Value::str("toolsListChanged")
        ]))
    );
    assert_eq!(
        field(&ops[0], "subscribed_uris"),
        Some(Value::Set(vec![Value::str("file:///project/config.json")]))
    );

    let mut retry = call("x");
    retry["params"]["inputResponses"] = json!({"github_login": {"action": "accept"}});
    retry["params"]["requestState"] = json!("opaque");
    let ops = run(&[V, M, ("Mcp-Name", "x")], &retry).unwrap();
    assert_eq!(ops[0].action.to_string(), r#"Action::"call_tool""#);
    assert_eq!(
        field(&ops[0], "input_responses"),
        Some(Value::Set(vec![Value::str("github_login")]))
    );
    retry["params"]["inputResponses"] = json!(["x"]);
    assert!(matches!(
        run(&[V, M, ("Mcp-Name", "x")], &retry),
        Err(ClassifyError::Body(_))
    ));

    let discover = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover",
                          "params": {"_meta": meta(FIRST_MODERN)}});
    let ops = run(&[V, ("Mcp-Method", "server/discover")], &discover).unwrap();
    assert_eq!(ops[0].action.to_string(), r#"Action::"discover""#);
}

#[test]
fn era_and_decode() {
    let req = |v: &str| request("/", "POST", &[("MCP-Protocol-Version", v)], &Json::Null);
    assert_eq!(
        era(&req("2026-07-28"), Legacy::Accept),
        Ok(Era::Modern("2026-07-28".into()))
    );
    assert_eq!(
        era(&req("2027-01-01"), Legacy::Accept),
        Ok(Era::Modern("2027-01-01".into()))
    );
    assert_eq!(
        era(&req("2025-11-25"), Legacy::Accept),
        Ok(Era::Legacy(Some("2025-11-25".into())))
    );
    assert!(era(&req("2026-7-28"), Legacy::Accept).is_err());
    assert_eq!(decode("x", "plain").unwrap(), "plain");
    assert_eq!(decode("x", "=?base64?IHBhZGRlZCA=?=").unwrap(), " padded ");
    assert_eq!(
        decode("x", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=").unwrap(),
        "=?base64?literal?="
    );
}
