//! AI-traffic classification from a fuzzed body: the first byte picks a provider path
//! from the shipped route table (`config/cedar-gate.yaml`), the rest is the request body.
//! Covers the OpenAI, Anthropic, Gemini, Bedrock and MCP JSON-RPC parsers and the bounded
//! body reader, and (selector bit 0x40) the MCP 2026-07-28 header/body agreement.
//!
//! Invariants: never panics; a classified request yields at least one operation and no
//! more than the batch limit; each operation names an action and a resource.

use cedar_gate::classify;
use cedar_gate::request::HttpRequest;

const PATHS: &[&str] = &[
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/images/generations",
    "/v1/messages",
    "/v1beta/models/gemini-1.5-pro:generateContent",
    "/v1beta/models/gemini-1.5-pro:streamGenerateContent",
    "/model/anthropic.claude-3-sonnet/invoke",
    "/model/meta.llama3/converse",
    "/openai/deployments/gpt-4o/chat/completions",
    "/mcp/github",
    "/mcp/files",
];

use crate::shipped_routes::routes;

/// One input; panics when an invariant above does not hold.
pub fn run(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let path = PATHS[usize::from(selector) % PATHS.len()];
    let mut headers = vec![("content-type", "application/json")];
    if selector & 0x80 != 0 {
        headers.push(("x-envoy-auth-partial-body", "true"));
    }
    // MCP 2026-07-28: the mirrored headers the body is checked against.
    if selector & 0x40 != 0 {
        for (k, v) in [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?cmVhZF9maWxl?="),
            ("mcp-param-region", "us-west1"),
        ] {
            headers.push((k, v));
        }
    }
    let headers = cedar_gate::request::header_list(headers);
    let req = HttpRequest {
        id: "fuzz".into(),
        method: "POST".into(),
        host: "models.example.com".into(),
        path: path.into(),
        scheme: "https".into(),
        headers,
        body: body.to_vec(),
        ..Default::default()
    };
    if let Ok(ops) = classify::classify(&req, routes()) {
        assert!(!ops.is_empty());
        assert!(ops.len() <= 64);
        for op in &ops {
            assert!(!op.action.to_string().is_empty());
            assert!(!op.resource.to_string().is_empty());
        }
    }
}
