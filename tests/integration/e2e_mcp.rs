//! MCP 2026-07-28 end to end through a real Envoy running the shipped `envoy/envoy.yaml`:
//! a request whose mirrored headers (`Mcp-Method`, `Mcp-Name`, `MCP-Protocol-Version`)
//! disagree with its body never reaches the MCP server, and the client gets `400` with a
//! JSON-RPC `HeaderMismatch` error carrying its request id. Legacy (2025-11-25) clients
//! keep working. cedar-gate runs the shipped route table and `cedar/` policies.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::ai::shipped_routes_yaml;
use crate::common::gate::DEFAULT_CONFIG;
use crate::common::ids::RESEARCH_AGENT;
use crate::common::{GateOptions, Stack, repo_path};

const MODERN: &str = "2026-07-28";

/// A case: test tag, headers, body.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Value);

fn call(id: i64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": tool,
        "arguments": {"query": "label:bug", "repo": "example/cedar-gate"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                  "io.modelcontextprotocol/clientCapabilities": {}}}})
}

/// A `400` from cedar-gate: the JSON-RPC error body.
async fn bad_request(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = resp.text().await.expect("400 body");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("400 body is not JSON ({e}): {body}"))
}

#[tokio::test]
async fn e2e_mcp_modern_headers_must_mirror_the_body() {
    let gate = GateOptions {
        config: format!("{DEFAULT_CONFIG}{}", shipped_routes_yaml()),
        ..GateOptions::default()
    };
    let stack = Stack::start_with(&repo_path("envoy/envoy.yaml"), gate).await;
    let client = stack.client(RESEARCH_AGENT);
    let post = |tag: &str, headers: &[(&str, &str)], body: &Value| {
        let mut b = client
            .post("/mcp/github")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("x-test-id", tag);
        for (k, v) in headers {
            // `header` appends: a name given twice is sent twice.
            b = b.header(*k, *v);
        }
        b.body(body.to_string()).send()
    };
    let v = ("MCP-Protocol-Version", MODERN);
    let m = ("Mcp-Method", "tools/call");

    // Headers that agree with the body: authorized on the tool, forwarded.
    let resp = post(
        "agree",
        &[v, m, ("Mcp-Name", "search_issues")],
        &call(2, "search_issues"),
    )
    .await
    .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(stack.upstream.requests_tagged("agree").len(), 1);
    // The same through the Base64 sentinel.
    let enc = "=?base64?c2VhcmNoX2lzc3Vlcw==?="; // search_issues
    let resp = post(
        "sentinel",
        &[v, m, ("Mcp-Name", enc)],
        &call(3, "search_issues"),
    )
    .await
    .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);

    // The header names an allowed tool, the body a forbidden one (and the reverse).
    let cases: [Case; 6] = [
        (
            "name",
            vec![v, m, ("Mcp-Name", "search_issues")],
            call(4, "delete_repository"),
        ),
        (
            "name-rev",
            vec![v, m, ("Mcp-Name", "delete_repository")],
            call(5, "search_issues"),
        ),
        (
            "method",
            vec![
                v,
                ("Mcp-Method", "tools/list"),
                ("Mcp-Name", "search_issues"),
            ],
            call(6, "search_issues"),
        ),
        (
            "dup",
            vec![v, m, m, ("Mcp-Name", "search_issues")],
            call(7, "search_issues"),
        ),
        (
            "version",
            vec![
                ("MCP-Protocol-Version", "2025-11-25"),
                m,
                ("Mcp-Name", "search_issues"),
            ],
            call(8, "search_issues"),
        ),
        ("missing-name", vec![v, m], call(9, "search_issues")),
    ];
    for (tag, headers, body) in &cases {
        let json = bad_request(post(tag, headers, body).await.expect("request")).await;
        assert_eq!(json["jsonrpc"], "2.0", "{tag}: {json}");
        assert_eq!(json["id"], body["id"], "{tag}: {json}");
        assert_eq!(json["error"]["code"], -32020, "{tag}: {json}");
        assert!(
            stack.upstream.requests_tagged(tag).is_empty(),
            "{tag} reached the server"
        );
    }
    let entry = stack
        .envoy
        .access_log_entry("the name mismatch", |e| {
            e["reason"] == "mcp_header_mismatch"
        })
        .await;
    assert_eq!(entry["response_code"], 400, "{entry}");

    // A batch is refused for a 2026-07-28 client.
    let batch = json!([call(10, "search_issues"), call(11, "search_issues")]);
    let json = bad_request(post("batch", &[v, m], &batch).await.expect("request")).await;
    assert_eq!(json["error"]["code"], -32600, "{json}");

    // A 2025-11-25 client with its session and its batch: as before.
    let legacy = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "search_issues", "arguments": {}}},
    ]);
    let resp = post(
        "legacy",
        &[
            ("MCP-Protocol-Version", "2025-11-25"),
            ("Mcp-Session-Id", "s-1"),
        ],
        &legacy,
    )
    .await
    .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(stack.upstream.requests_tagged("legacy").len(), 1);
}
