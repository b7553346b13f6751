//! AI traffic at the gRPC level: the real server (in process, on `127.0.0.1:0`) with the
//! route table shipped in `config/cedar-gate.yaml` and the policies shipped in `cedar/`,
//! called with CheckRequests carrying the hand-written provider fixtures as bodies.

use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use serde_json::Value;
use tempfile::TempDir;

use crate::common::check::{meta, refusal_fields};
use crate::common::ids::{RESEARCH_AGENT, ROGUE_AGENT};
use crate::common::{InProc, audit_event, audit_file_yaml, repo_path};

/// In `approved-agents` and `ml-research`: frontier models allowed.
const NOTEBOOK: &str = "spiffe://example.org/ns/ml/sa/research-notebook";
/// In `approved-agents` and `restricted-agents`: no streaming, no tools.
const SUMMARIZER: &str = "spiffe://example.org/ns/agents/sa/summarizer";

/// The `routes:` section of the shipped example config, as YAML.
pub fn shipped_routes_yaml() -> String {
    let text = std::fs::read_to_string(repo_path("config/cedar-gate.yaml")).unwrap();
    let config: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let mut out = serde_norway::Mapping::new();
    out.insert("routes".into(), config["routes"].clone());
    serde_norway::to_string(&out).unwrap()
}

/// A fixture body from `tests/fixtures/ai/`.
pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(repo_path("tests/fixtures/ai").join(rel)).unwrap()
}

/// The server over the shipped `cedar/` and route table, auditing to a file.
struct Server {
    gate: InProc,
    audit: TempDir,
}

impl Server {
    async fn start() -> Self {
        let audit = tempfile::tempdir().unwrap();
        let config = format!(
            "identity:\n  trust_domains: [example.org]\n{}{}",
            audit_file_yaml(&audit.path().join("audit.log")),
            shipped_routes_yaml()
        );
        Self {
            gate: InProc::shipped(&config).await,
            audit,
        }
    }

    async fn check(&self, req: CheckRequest) -> CheckResponse {
        self.gate.check(req).await
    }

    /// The audit event of a decision (the writer thread flushes within moments).
    async fn audit(&self, decision_id: &str) -> Value {
        audit_event(&self.audit.path().join("audit.log"), decision_id).await
    }
}

/// How the body travels in the CheckRequest.
#[derive(Clone, Copy)]
enum Body {
    /// `pack_as_bytes: true` (the shipped Envoy config).
    Raw,
    /// The UTF-8 `body` field (`pack_as_bytes: false`).
    Text,
}

fn request(
    principal: &str,
    method: &str,
    path: &str,
    body: &[u8],
    how: Body,
    headers: &[(&str, &str)],
) -> CheckRequest {
    let mut http = crate::common::check::http(method, path, headers);
    http.id = "envoy-req-ai".into();
    http.host = "gateway.example.com".into();
    match how {
        Body::Raw => http.raw_body = body.to_vec(),
        Body::Text => http.body = String::from_utf8(body.to_vec()).unwrap(),
    }
    crate::common::check::check_request(principal, http)
}

fn post(principal: &str, path: &str, body: &[u8]) -> CheckRequest {
    request(
        principal,
        "POST",
        path,
        body,
        Body::Raw,
        &[("content-type", "application/json")],
    )
}

fn allowed(resp: &CheckResponse) -> bool {
    matches!(resp.http_response, Some(HttpResponse::OkResponse(_)))
}

/// The 403 body of a denial.
fn forbidden(resp: &CheckResponse) -> Value {
    match &resp.http_response {
        Some(HttpResponse::DeniedResponse(d)) => {
            assert_eq!(d.status.as_ref().map(|s| s.code), Some(403), "{d:?}");
            let body: Value = serde_json::from_str(&d.body).unwrap();
            refusal_fields(&body).unwrap_or_else(|| panic!("not a cedar-gate refusal: {body}"))
        }
        other => panic!("expected a 403, got {other:?}"),
    }
}

#[tokio::test]
async fn ai_approved_agent_calls_standard_models_of_every_provider() {
    let s = Server::start().await;
    let cases = [
        (
            "/v1/chat/completions",
            "openai/chat_completions_tools.json",
            "openai",
            "gpt-4o-mini",
        ),
        (
            "/v1/embeddings",
            "openai/embeddings.json",
            "openai",
            "text-embedding-3-small",
        ),
        (
            "/v1/messages",
            "anthropic/messages_tools.json",
            "anthropic",
            "claude-3-5-haiku-latest",
        ),
        (
            "/v1beta/models/gemini-2.0-flash:generateContent",
            "gemini/generate_content_tools.json",
            "gemini",
            "gemini-2.0-flash",
        ),
        (
            "/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
            "bedrock/converse_tools.json",
            "bedrock",
            "anthropic.claude-3-haiku-20240307-v1:0",
        ),
        (
            // The deployment is an alias of its model (`model_aliases` in the shipped routes).
            "/openai/deployments/gpt-4o-mini-prod/chat/completions",
            "openai/chat_completions_stream.json",
            "openai",
            "gpt-4o-mini",
        ),
    ];
    for (path, rel, protocol, model) in cases {
        let resp = s.check(post(RESEARCH_AGENT, path, &fixture(rel))).await;
        assert!(allowed(&resp), "{path}: {:?}", resp.http_response);
        assert_eq!(meta(&resp, "protocol"), protocol, "{path}");
        assert_eq!(meta(&resp, "model"), model, "{path}");
        assert_eq!(
            meta(&resp, "resource"),
            format!("Model::\"{model}\""),
            "{path}"
        );
        assert_eq!(
            meta(&resp, "policies"),
            "approved-agents-standard-models",
            "{path}"
        );
    }
    // Listing models has no model: the resource is the route.
    let resp = s
        .check(request(
            RESEARCH_AGENT,
            "GET",
            "/v1/models",
            b"",
            Body::Raw,
            &[],
        ))
        .await;
    assert!(allowed(&resp));
    assert_eq!(meta(&resp, "action"), "Action::\"list_models\"");
}

#[tokio::test]
async fn ai_frontier_model_is_refused_naming_the_model_except_for_ml_research() {
    let s = Server::start().await;
    let body = fixture("openai/chat_completions_frontier.json");
    let resp = s
        .check(post(RESEARCH_AGENT, "/v1/chat/completions", &body))
        .await;
    let json = forbidden(&resp);
    assert_eq!(json["reason"], "no_permit");
    assert_eq!(json["model"], "gpt-4.5-preview");
    assert!(json.get("tool").is_none());
    let audit = s.audit(json["decision_id"].as_str().unwrap()).await;
    assert_eq!(audit["model"], "gpt-4.5-preview", "{audit}");
    assert_eq!(audit["protocol"], "openai", "{audit}");
    assert_eq!(audit["action"], "Action::\"chat\"", "{audit}");

    let resp = s.check(post(NOTEBOOK, "/v1/chat/completions", &body)).await;
    assert!(allowed(&resp), "{:?}", resp.http_response);
    assert_eq!(meta(&resp, "policies"), "ml-research-frontier-models");

    // A model the catalog does not list is refused, whoever asks.
    let unknown = br#"{"model":"some-new-model","messages":[{"role":"user","content":"hi"}]}"#;
    let json = forbidden(
        &s.check(post(NOTEBOOK, "/v1/chat/completions", unknown))
            .await,
    );
    assert_eq!(json["model"], "some-new-model");
}

#[tokio::test]
async fn ai_prompt_controls_token_cap_streaming_and_tools() {
    let s = Server::start().await;
    // 8192 output tokens on a frontier model: permitted for ML research, but the cap wins.
    let resp = s
        .check(post(
            NOTEBOOK,
            "/v1/messages",
            &fixture("anthropic/messages_stream.json"),
        ))
        .await;
    let json = forbidden(&resp);
    assert_eq!(json["reason"], "policy_forbid");
    assert_eq!(json["model"], "claude-opus-4-1");
    assert_eq!(meta(&resp, "policies"), "max-output-tokens-4096");

    // The restricted summarizer may chat, but neither stream nor offer tools.
    let plain = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Summarize."}]}"#;
    assert!(allowed(
        &s.check(post(SUMMARIZER, "/v1/chat/completions", plain))
            .await
    ));
    for rel in [
        "openai/chat_completions_stream.json",
        "openai/chat_completions_tools.json",
    ] {
        let resp = s
            .check(post(SUMMARIZER, "/v1/chat/completions", &fixture(rel)))
            .await;
        assert_eq!(forbidden(&resp)["reason"], "policy_forbid", "{rel}");
        assert_eq!(
            meta(&resp, "policies"),
            "restricted-agents-no-streaming-no-tools",
            "{rel}"
        );
    }
}

#[tokio::test]
async fn ai_mcp_tool_allow_list_destructive_tools_and_batches() {
    let s = Server::start().await;
    for rel in [
        "mcp/initialize.json",
        "mcp/tools_list.json",
        "mcp/notification_initialized.json",
    ] {
        let resp = s
            .check(post(RESEARCH_AGENT, "/mcp/github", &fixture(rel)))
            .await;
        assert!(allowed(&resp), "{rel}: {:?}", resp.http_response);
        assert_eq!(meta(&resp, "policies"), "approved-agents-mcp-sessions");
    }
    let resp = s
        .check(post(
            RESEARCH_AGENT,
            "/mcp/github",
            &fixture("mcp/tools_call.json"),
        ))
        .await;
    assert!(allowed(&resp), "{:?}", resp.http_response);
    assert_eq!(meta(&resp, "tool"), "github/search_issues");
    assert_eq!(meta(&resp, "resource"), "Tool::\"github/search_issues\"");
    assert_eq!(meta(&resp, "policies"), "research-agent-tools");

    // Allow-listed, but destructive without a delegating user: the forbid wins.
    let resp = s
        .check(post(
            RESEARCH_AGENT,
            "/mcp/github",
            &fixture("mcp/tools_call_destructive.json"),
        ))
        .await;
    let json = forbidden(&resp);
    assert_eq!(json["reason"], "policy_forbid");
    assert_eq!(json["tool"], "github/delete_repository");
    assert_eq!(
        meta(&resp, "policies"),
        "destructive-tools-need-delegating-user"
    );

    // A tool outside the agent's allow-list.
    let write = br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"/etc/x","content":"y"}}}"#;
    let json = forbidden(&s.check(post(RESEARCH_AGENT, "/mcp/files", write)).await);
    assert_eq!(
        (json["reason"].as_str(), json["tool"].as_str()),
        (Some("no_permit"), Some("files/write_file"))
    );

    // Another agent has no tool allow-list at all.
    let json = forbidden(
        &s.check(post(
            ROGUE_AGENT,
            "/mcp/github",
            &fixture("mcp/tools_call.json"),
        ))
        .await,
    );
    assert_eq!(json["reason"], "no_permit");

    // A batch: every element authorized; policies of all of them named.
    let resp = s
        .check(post(
            RESEARCH_AGENT,
            "/mcp/github",
            &fixture("mcp/batch_allowed.json"),
        ))
        .await;
    assert!(allowed(&resp), "{:?}", resp.http_response);
    assert_eq!(
        meta(&resp, "policies"),
        "approved-agents-mcp-sessions,research-agent-tools"
    );

    // One forbidden element refuses the whole batch, naming that tool.
    let resp = s
        .check(post(
            RESEARCH_AGENT,
            "/mcp/github",
            &fixture("mcp/batch_one_forbidden.json"),
        ))
        .await;
    let json = forbidden(&resp);
    assert_eq!(json["tool"], "github/delete_repository");
    let audit = s.audit(json["decision_id"].as_str().unwrap()).await;
    assert_eq!(audit["tool"], "github/delete_repository", "{audit}");
    assert_eq!(audit["operations"], 2, "{audit}");
    assert_eq!(audit["protocol"], "mcp", "{audit}");
}

#[tokio::test]
async fn ai_unreadable_bodies_fail_closed_with_specific_reasons() {
    let s = Server::start().await;
    let chat = fixture("openai/chat_completions_tools.json");
    let path = "/v1/chat/completions";
    let cases: Vec<(CheckRequest, &str)> = vec![
        (
            request(RESEARCH_AGENT, "POST", path, b"", Body::Raw, &[]),
            "body_missing",
        ),
        (
            request(
                RESEARCH_AGENT,
                "POST",
                path,
                &chat,
                Body::Raw,
                &[("x-envoy-auth-partial-body", "true")],
            ),
            "body_partial",
        ),
        (
            request(
                RESEARCH_AGENT,
                "POST",
                path,
                &chat,
                Body::Raw,
                &[("content-encoding", "gzip")],
            ),
            "body_invalid",
        ),
        (
            request(RESEARCH_AGENT, "POST", path, b"{\"model\":", Body::Raw, &[]),
            "body_invalid",
        ),
        (
            request(
                RESEARCH_AGENT,
                "POST",
                path,
                &vec![b' '; 70_000],
                Body::Raw,
                &[],
            ),
            "body_too_large",
        ),
        (
            request(
                RESEARCH_AGENT,
                "POST",
                path,
                br#"{"model":"gpt-4o-mini","model":"gpt-4.5-preview"}"#,
                Body::Raw,
                &[],
            ),
            "body_invalid",
        ),
        (
            request(
                RESEARCH_AGENT,
                "POST",
                "/mcp/github",
                format!(
                    "[{}]",
                    vec![r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#; 65].join(",")
                )
                .as_bytes(),
                Body::Raw,
                &[],
            ),
            "batch_too_large",
        ),
    ];
    for (req, reason) in cases {
        let json = forbidden(&s.check(req).await);
        assert_eq!(json["reason"], reason, "{json}");
    }
    // The `body` field (pack_as_bytes: false) is read like `raw_body`.
    let resp = s
        .check(request(
            RESEARCH_AGENT,
            "POST",
            path,
            &chat,
            Body::Text,
            &[],
        ))
        .await;
    assert!(allowed(&resp), "{:?}", resp.http_response);
}

#[tokio::test]
async fn ai_unknown_provider_paths_are_unclassified_and_batch_apis_are_refused() {
    let s = Server::start().await;
    let resp = s.check(post(RESEARCH_AGENT, "/v1/batches", br#"{"input_file_id":"file-abc123","endpoint":"/v1/chat/completions","completion_window":"24h"}"#)).await;
    let json = forbidden(&resp);
    assert_eq!(json["reason"], "policy_forbid");
    assert_eq!(meta(&resp, "action"), "Action::\"batch\"");
    assert_eq!(meta(&resp, "protocol"), "openai");
    assert_eq!(meta(&resp, "policies"), "forbid-provider-batch-apis");
    // An endpoint cedar-gate does not know is `unclassified`, never plain `http`, and no
    // shipped policy permits it for an approved agent.
    let resp = s.check(post(RESEARCH_AGENT, "/v1/files", b"{}")).await;
    let json = forbidden(&resp);
    assert_eq!(json["reason"], "no_permit");
    assert_eq!(meta(&resp, "action"), "Action::\"unclassified\"");
    assert_eq!(meta(&resp, "resource"), "Route::\"/v1/files\"");
}
