//! AI traffic end to end through a real Envoy running the shipped `envoy/envoy.yaml`
//! (`with_request_body`, `pack_as_bytes`), cedar-gate with the route table shipped in
//! `config/cedar-gate.yaml` and the shipped `cedar/` policies, and an upstream standing in
//! for the model provider and the MCP servers. All traffic stays on 127.0.0.1.

use reqwest::StatusCode;
use serde_json::Value;

use crate::ai::{fixture, shipped_routes_yaml};
use crate::common::check::refusal_fields;
use crate::common::gate::DEFAULT_CONFIG;
use crate::common::ids::RESEARCH_AGENT;
use crate::common::upstream::UPSTREAM_BODY;
use crate::common::{GateOptions, Stack, repo_path};

async fn stack() -> Stack {
    let gate = GateOptions {
        config: format!("{DEFAULT_CONFIG}{}", shipped_routes_yaml()),
        ..GateOptions::default()
    };
    Stack::start_with(&repo_path("envoy/envoy.yaml"), gate).await
}

/// A 403 from cedar-gate: the machine-readable fields of its body.
async fn forbidden(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body = resp.text().await.expect("403 body");
    let json: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("403 body is not JSON ({e}): {body}"));
    refusal_fields(&json).unwrap_or_else(|| panic!("not a cedar-gate refusal: {body}"))
}

#[tokio::test]
async fn e2e_ai_models_allowed_frontier_refused_partial_body_refused() {
    let stack = stack().await;
    let client = stack.client(RESEARCH_AGENT);
    let chat = fixture("openai/chat_completions_tools.json");

    // An approved agent calls an allowed model: 200, and the provider gets the body intact.
    let resp = client
        .post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("x-test-id", "allowed-model")
        .body(chat.clone())
        .send()
        .await
        .expect("request through Envoy");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.expect("body"), UPSTREAM_BODY);
    let seen = stack.upstream.requests_tagged("allowed-model");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.as_ref(), chat.as_slice());
    let decision_id = seen[0]
        .header("x-cedar-gate-decision-id")
        .expect("decision id")
        .to_owned();
    let audit = stack.gate.audit_event(&decision_id).await;
    assert_eq!(audit["model"], "gpt-4o-mini", "{audit}");
    assert_eq!(audit["protocol"], "openai", "{audit}");
    assert_eq!(audit["action"], "Action::\"chat\"", "{audit}");
    let entry = stack
        .envoy
        .access_log_entry("the allowed model call", |e| {
            e["decision_id"] == decision_id.as_str()
        })
        .await;
    assert_eq!(entry["model"], "gpt-4o-mini", "{entry}");
    assert_eq!(entry["protocol"], "openai", "{entry}");

    // The same agent asking for a frontier model: 403 naming the model.
    let resp = client
        .post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(fixture("openai/chat_completions_frontier.json"))
        .send()
        .await
        .expect("request through Envoy");
    let json = forbidden(resp).await;
    assert_eq!(json["model"], "gpt-4.5-preview", "{json}");
    assert_eq!(json["reason"], "no_permit", "{json}");

    // A body beyond Envoy's max_request_bytes arrives partial: refused, never guessed at.
    let padding = "x".repeat(80 * 1024);
    let big = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": padding}],
    });
    let resp = client
        .post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(big.to_string())
        .send()
        .await
        .expect("request through Envoy");
    assert_eq!(forbidden(resp).await["reason"], "body_partial");

    assert_eq!(
        stack.upstream.requests().len(),
        1,
        "only the allowed call got through"
    );
}

#[tokio::test]
async fn e2e_ai_mcp_tools_allowed_destructive_refused_batch_refused() {
    let stack = stack().await;
    let client = stack.client(RESEARCH_AGENT);
    let call = |rel: &str, tag: &str| {
        client
            .post("/mcp/github")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("x-test-id", tag)
            .body(fixture(rel))
            .send()
    };

    let resp = call("mcp/tools_call.json", "allowed-tool")
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(stack.upstream.requests_tagged("allowed-tool").len(), 1);

    let json = forbidden(
        call("mcp/tools_call_destructive.json", "destructive")
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(json["tool"], "github/delete_repository", "{json}");
    assert_eq!(json["reason"], "policy_forbid", "{json}");

    let resp = call("mcp/batch_allowed.json", "batch-allowed")
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);

    let json = forbidden(
        call("mcp/batch_one_forbidden.json", "batch-forbidden")
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(json["tool"], "github/delete_repository", "{json}");
    let audit = stack
        .gate
        .audit_event(json["decision_id"].as_str().unwrap_or_default())
        .await;
    assert_eq!(audit["operations"], 2, "{audit}");

    assert!(stack.upstream.requests_tagged("destructive").is_empty());
    assert!(stack.upstream.requests_tagged("batch-forbidden").is_empty());
    assert_eq!(stack.upstream.requests_tagged("batch-allowed").len(), 1);
}
