//! Refusals as the official SDKs show them: the `openai`, `anthropic` and `mcp` Python
//! packages (installed into the project venv by `make e2e` / `make test`) call a real Envoy
//! running the shipped `envoy/envoy.yaml` over mTLS, cedar-gate refuses, and the test
//! asserts on the exception text the SDK raises (`tests/clients/refusal.py` prints it):
//! it names what was refused, why, and a decision id that finds the audit event.
//! Gemini and Bedrock have no official Python SDK here; their shapes are checked over raw
//! HTTP through the same Envoy.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::ai::shipped_routes_yaml;
use crate::common::gate::DEFAULT_CONFIG;
use crate::common::ids::RESEARCH_AGENT;
use crate::common::pyrouter::router_python;
use crate::common::{GateOptions, Stack, repo_path};

async fn stack() -> Stack {
    let gate = GateOptions {
        config: format!("{DEFAULT_CONFIG}{}", shipped_routes_yaml()),
        ..GateOptions::default()
    };
    Stack::start_with(&repo_path("envoy/envoy.yaml"), gate).await
}

/// Runs `tests/clients/refusal.py SDK ...` as the research agent; its one JSON line.
/// Blocking, so it runs on a blocking thread while Envoy and cedar-gate keep serving.
async fn sdk(stack: &Stack, sdk: &str, base_path: &str, args: &[&str]) -> Value {
    let cert = stack.cert(RESEARCH_AGENT);
    let base_url = format!(
        "https://localhost:{}{base_path}",
        stack.envoy.listener_port()
    );
    let mut cmd = Command::new(router_python());
    cmd.arg(repo_path("tests/clients/refusal.py"))
        .arg(sdk)
        .arg("--base-url")
        .arg(base_url)
        .arg("--ca")
        .arg(stack.pki.dir().join("ca.crt"))
        .arg("--cert")
        .arg(&cert.cert_path)
        .arg("--key")
        .arg(&cert.key_path)
        .args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run tests/clients/refusal.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{sdk} client: {}\nstdout: {stdout}\nstderr: {stderr}\n(the SDKs come from `make e2e`, \
         which installs them into .venv)",
        out.status
    );
    eprintln!("{sdk} SDK raised: {}", stdout.trim());
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The decision id a refusal message names (`decision id `…``).
fn decision_id(message: &str) -> String {
    message
        .split("decision id `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no decision id in {message:?}"))
        .to_owned()
}

/// The message names what and why, and its decision id is the audited decision.
async fn assert_explained(stack: &Stack, message: &str, what: &str, reason: &str) -> Value {
    assert!(message.contains(what), "{message}");
    assert!(message.contains(&format!("reason `{reason}`")), "{message}");
    let audit = stack.gate.audit_event(&decision_id(message)).await;
    assert_eq!(audit["decision"], "deny", "{audit}");
    assert_eq!(audit["reason"], reason, "{audit}");
    audit
}

#[tokio::test]
async fn e2e_refusal_official_sdks_show_what_why_and_the_decision_id() {
    let stack = stack().await;

    // OpenAI: `PermissionDeniedError: Error code: 403 - cedar-gate refused model ...`.
    let got = sdk(&stack, "openai", "", &["--model", "gpt-4.5-preview"]).await;
    assert_eq!(got["exception"], "PermissionDeniedError", "{got}");
    assert_eq!(got["status"], 403, "{got}");
    assert_eq!(got["code"], "no_permit", "{got}");
    let message = got["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Error code: 403 - cedar-gate refused"),
        "{message}"
    );
    let audit = assert_explained(&stack, message, "model `gpt-4.5-preview`", "no_permit").await;
    assert_eq!(audit["protocol"], "openai", "{audit}");

    // Anthropic: the SDK prints the whole `{"type":"error","error":{...}}` body.
    let got = sdk(&stack, "anthropic", "", &["--model", "claude-opus-4-1"]).await;
    assert_eq!(got["exception"], "PermissionDeniedError", "{got}");
    let message = got["message"].as_str().unwrap_or_default();
    assert!(message.contains("'type': 'permission_error'"), "{message}");
    let audit = assert_explained(&stack, message, "model `claude-opus-4-1`", "no_permit").await;
    assert_eq!(audit["protocol"], "anthropic", "{audit}");

    // MCP: a JSON-RPC error for the call's own id, so the SDK raises it as the call's
    // `MCPError` (not -32603 "Server returned an error response").
    let got = sdk(
        &stack,
        "mcp",
        "/mcp/github",
        &["--tool", "delete_repository"],
    )
    .await;
    assert_eq!(got["exception"], "MCPError", "{got}");
    assert_eq!(got["code"], -32003, "{got}");
    let message = got["error_message"].as_str().unwrap_or_default();
    let audit = assert_explained(
        &stack,
        message,
        "tool `github/delete_repository`",
        "policy_forbid",
    )
    .await;
    assert_eq!(got["data"]["decision_id"], audit["decision_id"], "{got}");
    assert!(
        got["message"]
            .as_str()
            .unwrap_or_default()
            .contains(message),
        "str(MCPError) shows the message: {got}"
    );

    assert!(stack.upstream.requests().is_empty(), "nothing refused ran");
}

#[tokio::test]
async fn e2e_refusal_gemini_and_bedrock_shapes_over_http() {
    let stack = stack().await;
    let client = stack.client(RESEARCH_AGENT);

    let resp = client
        .post("/v1beta/models/gemini-2.5-pro:generateContent")
        .header("content-type", "application/json")
        .body(r#"{"contents":[{"role":"user","parts":[{"text":"hello"}]}]}"#)
        .send()
        .await
        .expect("request through Envoy");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.expect("JSON body");
    let error = &body["error"];
    assert_eq!(error["code"], 403, "{body}");
    assert_eq!(error["status"], "PERMISSION_DENIED", "{body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert_explained(&stack, message, "model `gemini-2.5-pro`", "no_permit").await;
    assert_eq!(error["details"][0]["reason"], "NO_PERMIT", "{body}");

    let model = "anthropic.claude-opus-4-1-20250805-v1:0";
    let resp = client
        .post(&format!("/model/{model}/converse"))
        .header("content-type", "application/json")
        .body(r#"{"messages":[{"role":"user","content":[{"text":"hello"}]}]}"#)
        .send()
        .await
        .expect("request through Envoy");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        resp.headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok()),
        Some("AccessDeniedException")
    );
    let body: Value = resp.json().await.expect("JSON body");
    let message = body["message"].as_str().unwrap_or_default();
    assert_explained(&stack, message, &format!("model `{model}`"), "no_permit").await;

    assert!(stack.upstream.requests().is_empty(), "nothing refused ran");
}
