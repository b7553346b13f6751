//! Token identity end to end: client ──TLS + Bearer──▶ real Envoy (`envoy/envoy-tokens.yaml`
//! or the mTLS-only `envoy/envoy.yaml`) ──Check──▶ the real cedar-gate binary, which fetches
//! keys from a real JWKS server run by the test. All traffic stays on 127.0.0.1.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::idp::{Idp, SigningKey, now};
use crate::common::ids::{FOREIGN_AGENT, RESEARCH_AGENT};
use crate::common::upstream::UPSTREAM_BODY;
use crate::common::{GateOptions, Stack, repo_path};

const AGENTS: &str = "https://agents.example.com";
const AUDIENCE: &str = "https://models.example.com";

fn gate_options(idp: &Idp) -> GateOptions {
    let config = format!(
        "identity:
  trust_domains: [example.org]
  issuers:
    - issuer: {AGENTS}
      jwks_url: {}
      audiences: [\"{AUDIENCE}\"]
      algorithms: [RS256]
      entity_type: Agent
      groups_claim: groups
      max_lifetime_seconds: 900
response:
  remove_headers: [authorization]
logging:
  format: json
  level: info
",
        idp.jwks_url()
    );
    GateOptions {
        config,
        ..GateOptions::default()
    }
}

/// A valid agent token of the approved group, living `lifetime` seconds from `iat`.
fn agent_token(key: &SigningKey, iat: i64, lifetime: i64) -> String {
    key.sign(&json!({
        "iss": AGENTS, "sub": "research-bot", "aud": AUDIENCE, "iat": iat, "exp": iat + lifetime,
        "groups": ["approved-agents"], "jti": format!("jti-{iat}-{lifetime}"),
    }))
}

/// Asserts a 401 with the token challenge naming `reason`; returns the decision id.
async fn assert_unauthorized(resp: reqwest::Response, reason: &str) -> String {
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.contains(&format!(
            "error=\"invalid_token\", error_description=\"{reason}\""
        )),
        "{challenge}"
    );
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "unauthenticated", "{body}");
    body["decision_id"].as_str().unwrap_or_default().to_owned()
}

/// An agent with only a token (no client certificate) is allowed by the shipped
/// `platform-agents-api` policy; the upstream sees the principal, not the token.
#[tokio::test]
async fn agent_token_without_certificate_is_allowed() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    let stack = Stack::start_with(&repo_path("envoy/envoy-tokens.yaml"), gate_options(&idp)).await;
    let client = stack.client_without_certificate();

    let resp = client
        .get("/v1/models")
        .bearer_auth(agent_token(&key, now() - 5, 300))
        .header("x-test-id", "token-only")
        .send()
        .await
        .expect("request through Envoy");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), UPSTREAM_BODY);
    let seen = stack.upstream.requests_tagged("token-only");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header_all("x-cedar-gate-principal"),
        vec!["Agent::\"research-bot\""]
    );
    assert!(
        seen[0].header("authorization").is_none(),
        "the token must not reach the upstream"
    );

    let decision_id = seen[0]
        .header("x-cedar-gate-decision-id")
        .unwrap()
        .to_owned();
    let audit = stack.gate.audit_event(&decision_id).await;
    assert_eq!(audit["decision"], "allow", "{audit}");
    assert_eq!(audit["auth_method"], "jwt", "{audit}");
    assert_eq!(audit["token"]["issuer"], AGENTS, "{audit}");
    assert_eq!(audit["token"]["subject"], "research-bot", "{audit}");
    let text = std::fs::read_to_string(stack.gate.audit_path()).unwrap();
    assert!(!text.contains("eyJ"), "no token in the audit log");

    // No token and no certificate: 401.
    let resp = client.get("/v1/models").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// Token plus SPIFFE client certificate through the mTLS-only shipped config: the token
/// subject is the principal and the workload is recorded next to it.
#[tokio::test]
async fn agent_token_with_spiffe_certificate_is_allowed() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    let stack = Stack::start_with(&repo_path("envoy/envoy.yaml"), gate_options(&idp)).await;
    let client = stack.client(RESEARCH_AGENT);

    let resp = client
        .get("/v1/models")
        .bearer_auth(agent_token(&key, now() - 5, 300))
        .header("x-test-id", "token-and-cert")
        .send()
        .await
        .expect("request through Envoy");
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = stack.upstream.requests_tagged("token-and-cert");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header_all("x-cedar-gate-principal"),
        vec!["Agent::\"research-bot\""]
    );
    let decision_id = seen[0]
        .header("x-cedar-gate-decision-id")
        .unwrap()
        .to_owned();
    let audit = stack.gate.audit_event(&decision_id).await;
    assert_eq!(audit["auth_method"], "mtls+jwt", "{audit}");
    assert_eq!(audit["spiffe_id"], RESEARCH_AGENT, "{audit}");
    assert_eq!(audit["principal"], "Agent::\"research-bot\"", "{audit}");
}

/// The same agent with an expired or an over-long-lived token gets 401 (with or without
/// a certificate), and nothing reaches the upstream.
#[tokio::test]
async fn expired_or_long_lived_token_is_refused() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    let stack = Stack::start_with(&repo_path("envoy/envoy-tokens.yaml"), gate_options(&idp)).await;
    let t = now();
    for client in [
        stack.client_without_certificate(),
        stack.client(RESEARCH_AGENT),
    ] {
        let expired = agent_token(&key, t - 600, 300);
        let resp = client
            .get("/v1/models")
            .bearer_auth(expired)
            .send()
            .await
            .unwrap();
        assert_unauthorized(resp, "token_expired").await;

        // Valid right now, but issued for a day: over `max_lifetime_seconds: 900`.
        let long_lived = agent_token(&key, t - 5, 86_400);
        let resp = client
            .get("/v1/models")
            .bearer_auth(long_lived)
            .send()
            .await
            .unwrap();
        assert_unauthorized(resp, "token_lifetime_exceeded").await;
    }
    assert!(
        stack.upstream.requests().is_empty(),
        "a refused token reached the upstream"
    );

    let (_, metrics) = stack.gate.admin_get("/metrics").await;
    assert!(
        metrics
            .contains("cedar_gate_identity_rejections_total{reason=\"token_lifetime_exceeded\"} 2"),
        "{metrics}"
    );
}

/// Without SAN matchers in `envoy-tokens.yaml`, a certificate of a foreign trust domain
/// (signed by the trusted CA) gets through the handshake; cedar-gate refuses it with 401
/// even with a valid token, and the audit event names the reason.
#[tokio::test]
async fn foreign_trust_domain_certificate_is_refused_even_with_a_token() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    let stack = Stack::start_with(&repo_path("envoy/envoy-tokens.yaml"), gate_options(&idp)).await;
    let resp = stack
        .client(FOREIGN_AGENT)
        .get("/v1/models")
        .bearer_auth(agent_token(&key, now() - 5, 300))
        .send()
        .await
        .expect("request through Envoy");
    let decision_id = assert_unauthorized_identity(resp, "untrusted_trust_domain").await;
    let audit = stack.gate.audit_event(&decision_id).await;
    assert_eq!(
        audit["identity_reason"], "untrusted_trust_domain",
        "{audit}"
    );
    assert!(stack.upstream.requests().is_empty());

    // And an expired token's refusal is attributable in the audit log too.
    let expired = agent_token(&key, now() - 600, 300);
    let resp = stack
        .client_without_certificate()
        .get("/v1/models")
        .bearer_auth(expired)
        .send()
        .await
        .unwrap();
    let decision_id = assert_unauthorized(resp, "token_expired").await;
    let audit = stack.gate.audit_event(&decision_id).await;
    assert_eq!(audit["decision"], "deny", "{audit}");
    assert_eq!(audit["reason"], "invalid_identity", "{audit}");
    assert_eq!(audit["identity_reason"], "token_expired", "{audit}");

    // From an approved workload, the refused token is a 401 too, attributed to the workload.
    let expired = agent_token(&key, now() - 600, 300);
    let resp = stack
        .client(RESEARCH_AGENT)
        .get("/v1/models")
        .bearer_auth(expired)
        .send()
        .await
        .unwrap();
    let decision_id = assert_unauthorized(resp, "token_expired").await;
    let audit = stack.gate.audit_event(&decision_id).await;
    assert_eq!(audit["spiffe_id"], RESEARCH_AGENT, "{audit}");
    assert_eq!(audit["auth_method"], "mtls", "{audit}");
    assert!(stack.upstream.requests().is_empty());
}

/// A 401 for a refused identity (any kind): returns the decision id.
async fn assert_unauthorized_identity(resp: reqwest::Response, reason: &str) -> String {
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.contains(&format!("error_description=\"{reason}\"")),
        "{challenge}"
    );
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    body["decision_id"].as_str().unwrap_or_default().to_owned()
}
