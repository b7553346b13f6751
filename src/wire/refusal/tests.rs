//! Each protocol's refusal shape, read back the way its clients read it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use super::*;
use crate::identity::Identity;
use crate::identity::IdentityRejection;
use crate::vocab::Decision;

const ID: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

fn outcome(protocol: Protocol, reason: Reason) -> Outcome {
    Outcome {
        decision_id: ID.to_owned(),
        decision: Decision::deny(reason, Vec::new()),
        principal: String::new(),
        identity: Identity::default(),
        identity_error: None,
        protocol,
        action: String::new(),
        resource: String::new(),
        model: None,
        tool: None,
        operations: 1,
        summary: None,
        batch: Vec::new(),
        policy_generation: 1,
        policy_hash: "".into(),
        cache_hit: false,
        forged_headers: Vec::new(),
        shadow: None,
        credential: None,
        refusal_body: None,
        required_scopes: Vec::new(),
        list_filter: None,
        memo: None,
    }
}

fn model(protocol: Protocol, reason: Reason, name: &str) -> Outcome {
    Outcome {
        model: Some(name.to_owned()),
        ..outcome(protocol, reason)
    }
}

fn tool(reason: Reason, name: &str) -> Outcome {
    Outcome {
        tool: Some(name.to_owned()),
        ..outcome(Protocol::Mcp, reason)
    }
}

fn body(shaped: &Shaped) -> Value {
    serde_json::from_str(&shaped.body).unwrap_or_else(|e| panic!("{e}: {}", shaped.body))
}

fn shaped(
    outcome: &Outcome,
    status: i32,
    request: &str,
) -> (Value, Vec<(&'static str, &'static str)>) {
    let s = shape(outcome, status, request.as_bytes()).expect("a provider or MCP route");
    (body(&s), s.headers)
}

/// The message every shape carries names what, why and the decision id.
fn assert_names(message: &Value, what: &str, reason: &str) {
    let m = message.as_str().unwrap_or_default();
    assert!(m.contains(what), "{m}");
    assert!(m.contains(&format!("reason `{reason}`")), "{m}");
    assert!(m.contains(&format!("decision id `{ID}`")), "{m}");
}

#[test]
fn plain_http_routes_keep_the_generic_body() {
    assert_eq!(
        shape(&outcome(Protocol::Http, Reason::NoPermit), 403, b""),
        None
    );
}

#[test]
fn openai_refusals_carry_message_type_and_code() {
    let (b, headers) = shaped(
        &model(Protocol::Openai, Reason::NoPermit, "gpt-4.5-preview"),
        403,
        "",
    );
    assert!(headers.is_empty());
    let e = &b["error"];
    assert_names(
        &e["message"],
        "model `gpt-4.5-preview`: no policy permits it",
        "no_permit",
    );
    assert_eq!(e["type"], "permission_error");
    assert_eq!(e["code"], "no_permit");
    assert_eq!(e["param"], "model");
    assert_eq!(e["decision_id"], ID);
    assert_eq!(e["model"], "gpt-4.5-preview");

    let mut o = outcome(Protocol::Openai, Reason::InvalidIdentity);
    o.identity_error = Some(IdentityRejection {
        code: "token_expired",
        message: "token expired".to_owned(),
    });
    let (b, _) = shaped(&o, 401, "");
    assert_eq!(b["error"]["type"], "authentication_error");
    assert_eq!(b["error"]["param"], Value::Null);
    assert_names(
        &b["error"]["message"],
        "request: the credentials were refused (`token_expired`)",
        "invalid_identity",
    );
}

#[test]
fn anthropic_refusals_are_typed_errors() {
    let o = model(Protocol::Anthropic, Reason::PolicyForbid, "claude-opus-4");
    let (b, _) = shaped(&o, 403, "");
    assert_eq!(b["type"], "error");
    assert_eq!(b["error"]["type"], "permission_error");
    assert_names(
        &b["error"]["message"],
        "model `claude-opus-4`: a policy forbids it",
        "policy_forbid",
    );
    assert_eq!(b["error"]["decision_id"], ID);

    let (b, _) = shaped(
        &outcome(Protocol::Anthropic, Reason::Unauthenticated),
        401,
        "",
    );
    assert_eq!(b["error"]["type"], "authentication_error");
    assert_names(
        &b["error"]["message"],
        "no credentials were presented",
        "unauthenticated",
    );

    // Refused before any policy ran: the class of what could not be read.
    let mut o = outcome(Protocol::Anthropic, Reason::BodyPartial);
    o.decision.errors = vec!["envoy forwarded a partial body".to_owned()];
    let (b, _) = shaped(&o, 400, "");
    assert_eq!(b["error"]["type"], "invalid_request_error");
    assert_names(
        &b["error"]["message"],
        "envoy forwarded a partial body",
        "body_partial",
    );
}

#[test]
fn policy_errors_are_never_quoted() {
    let mut o = model(Protocol::Openai, Reason::PolicyError, "gpt-4o");
    o.decision.errors = vec!["while evaluating policy `secret-rule`: ...".to_owned()];
    let (b, _) = shaped(&o, 403, "");
    let m = b["error"]["message"].as_str().unwrap_or_default();
    assert!(!m.contains("secret-rule"), "{m}");
    assert_names(
        &b["error"]["message"],
        "a policy failed to evaluate",
        "policy_error",
    );
}

/// Credential refusals say what is wrong in fixed words, never the gateway's
/// credential ids the evaluation text names.
#[test]
fn credential_refusals_name_no_credential() {
    for reason in [
        Reason::CredentialMissing,
        Reason::CredentialUnavailable,
        Reason::CredentialConflict,
    ] {
        let mut o = model(Protocol::Anthropic, reason, "claude-opus-4-1");
        o.decision.errors = vec!["credential `anthropic-prod` has no value loaded".to_owned()];
        let (b, _) = shaped(&o, 403, "");
        let m = b["error"]["message"].as_str().unwrap_or_default();
        assert!(!m.contains("anthropic-prod"), "{m}");
        assert_names(
            &b["error"]["message"],
            "no provider credential",
            reason.as_str(),
        );
    }
    let o = model(
        Protocol::Openai,
        Reason::ProviderCredentialPresented,
        "gpt-4o",
    );
    let (b, _) = shaped(&o, 403, "");
    assert_names(
        &b["error"]["message"],
        "its own provider credential",
        "provider_credential_presented",
    );
}

#[test]
fn gemini_refusals_are_google_rpc_statuses() {
    let o = model(Protocol::Gemini, Reason::NoPermit, "gemini-2.5-pro");
    let (b, _) = shaped(&o, 403, "");
    let e = &b["error"];
    assert_eq!(e["code"], 403);
    assert_eq!(e["status"], "PERMISSION_DENIED");
    assert_names(&e["message"], "model `gemini-2.5-pro`", "no_permit");
    assert_eq!(
        e["details"][0],
        json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "NO_PERMIT",
            "domain": "cedar-gate",
            "metadata": {"reason": "no_permit", "decision_id": ID, "model": "gemini-2.5-pro"},
        })
    );
    let statuses = [(400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED")];
    for (status, name) in statuses {
        let (b, _) = shaped(
            &outcome(Protocol::Gemini, Reason::PathNotCanonical),
            status,
            "",
        );
        assert_eq!(b["error"]["status"], name);
        assert_eq!(b["error"]["code"], status);
    }
}

#[test]
fn bedrock_refusals_name_their_type_in_a_header() {
    let o = model(
        Protocol::Bedrock,
        Reason::NoPermit,
        "anthropic.claude-3-haiku",
    );
    let (b, headers) = shaped(&o, 403, "");
    assert_eq!(headers, vec![("x-amzn-errortype", "AccessDeniedException")]);
    assert_names(
        &b["message"],
        "model `anthropic.claude-3-haiku`",
        "no_permit",
    );
    assert_eq!(b["decision_id"], ID);
    for (status, kind) in [
        (400, "ValidationException"),
        (401, "UnrecognizedClientException"),
    ] {
        let (_, headers) = shaped(&outcome(Protocol::Bedrock, Reason::BodyInvalid), status, "");
        assert_eq!(headers, vec![("x-amzn-errortype", kind)]);
    }
}

#[test]
fn mcp_refusals_answer_the_request_id() {
    let call =
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_repository"}}"#;
    let (b, _) = shaped(
        &tool(Reason::PolicyForbid, "github/delete_repository"),
        403,
        call,
    );
    assert_eq!(b["jsonrpc"], "2.0");
    assert_eq!(b["id"], 7);
    assert_eq!(b["error"]["code"], RPC_FORBIDDEN);
    assert_names(
        &b["error"]["message"],
        "tool `github/delete_repository`: a policy forbids it",
        "policy_forbid",
    );
    assert_eq!(
        b["error"]["data"],
        json!({"reason": "policy_forbid", "decision_id": ID, "tool": "github/delete_repository"})
    );

    // String ids are echoed; an unreadable body or an id of the wrong type is `null`.
    let (b, _) = shaped(
        &tool(Reason::NoPermit, "x/y"),
        403,
        r#"{"jsonrpc":"2.0","id":"a-1","method":"tools/call"}"#,
    );
    assert_eq!(b["id"], "a-1");
    for request in [
        "",
        "{not json",
        r#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#,
    ] {
        let (b, _) = shaped(&outcome(Protocol::Mcp, Reason::BodyInvalid), 403, request);
        assert_eq!(b["id"], Value::Null, "{request}");
    }
}

#[test]
fn mcp_error_codes_follow_the_reason() {
    let cases = [
        (Reason::NoPermit, 403, RPC_FORBIDDEN),
        (Reason::PolicyError, 403, RPC_FORBIDDEN),
        (Reason::Unauthenticated, 401, RPC_UNAUTHENTICATED),
        (Reason::InvalidIdentity, 401, RPC_UNAUTHENTICATED),
        (Reason::BodyInvalid, 403, RPC_INVALID_REQUEST),
        (Reason::BatchTooLarge, 403, RPC_INVALID_REQUEST),
        (Reason::PathNotCanonical, 400, RPC_INVALID_REQUEST),
    ];
    for (reason, status, code) in cases {
        let (b, _) = shaped(
            &outcome(Protocol::Mcp, reason),
            status,
            r#"{"id":1,"method":"ping"}"#,
        );
        assert_eq!(b["error"]["code"], code, "{reason:?}");
    }
}

#[test]
fn mcp_batches_get_one_error_per_request() {
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":"b","method":"tools/call"}]"#;
    let (b, _) = shaped(
        &tool(Reason::PolicyForbid, "github/delete_repository"),
        403,
        batch,
    );
    let ids: Vec<&Value> = b
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| &e["id"])
        .collect();
    assert_eq!(ids, [&json!(1), &json!("b")]);
    // Only notifications (or responses): one error, id null.
    let (b, _) = shaped(
        &outcome(Protocol::Mcp, Reason::NoPermit),
        403,
        r#"[{"jsonrpc":"2.0","method":"x"}]"#,
    );
    assert_eq!(b["id"], Value::Null);
}
