//! End to end through a real Envoy running the shipped `envoy/envoy.yaml`: mTLS clients with
//! SPIFFE certificates, cedar-gate deciding with the shipped `cedar/` policies, and an
//! upstream that records what got through. All traffic stays on 127.0.0.1.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::envoy::{EnvoyPorts, render_config, render_provider_config, validate};
use crate::common::ids::{FOREIGN_AGENT, QUARANTINED_AGENT, RESEARCH_AGENT, ROGUE_AGENT};
use crate::common::upstream::UPSTREAM_BODY;
use crate::common::{Stack, TestPki, repo_path};

/// The `Workload` entity uid cedar-gate names for a SPIFFE id.
fn workload(spiffe_id: &str) -> String {
    format!("Workload::\"{spiffe_id}\"")
}

/// The determining policy ids of an audit event (`policies: [{"id": ..}, ..]`).
fn audit_policy_ids(event: &Value) -> Vec<String> {
    event["policies"]
        .as_array()
        .unwrap_or_else(|| panic!("audit event without a `policies` array: {event}"))
        .iter()
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect()
}

/// The access log's `policies` field (comma-separated ids from dynamic metadata).
fn access_log_policy_ids(entry: &Value) -> Vec<String> {
    entry["policies"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect()
}

/// Asserts a 403 from cedar-gate: JSON body `{error: forbidden, reason, decision_id}`.
/// Returns the decision id.
async fn assert_forbidden(resp: reqwest::Response, reason: &str) -> String {
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body = resp.text().await.expect("403 body");
    let json: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("403 body is not JSON ({e}): {body}"));
    assert_eq!(json["error"], "forbidden", "{json}");
    assert_eq!(json["reason"], reason, "{json}");
    let id = json["decision_id"].as_str().unwrap_or_default().to_owned();
    assert!(!id.is_empty(), "403 body without decision_id: {json}");
    id
}

/// Every config in `envoy/` is valid for the real Envoy once its certificate paths exist.
#[test]
fn shipped_envoy_configs_validate() {
    let pki = TestPki::new();
    let ports = EnvoyPorts {
        listener: 8443,
        admin: 9901,
        authz: 9191,
        upstream: 8080,
    };
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_path("envoy")).expect("read envoy/") {
        let path = entry.expect("envoy/ entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let shipped = std::fs::read_to_string(&path).expect("read shipped config");
        let rendered = pki.dir().join("validate.yaml");
        // A config that signs for a provider (Bedrock SigV4) forwards to it, not to a local
        // upstream.
        let text = if shipped.contains("envoy.filters.http.aws_request_signing") {
            render_provider_config(&shipped, ports, pki.dir())
        } else {
            render_config(&shipped, ports, pki.dir())
        };
        std::fs::write(&rendered, text).expect("write config");
        if let Err(out) = validate(&rendered) {
            panic!("{} is not a valid Envoy config:\n{out}", path.display());
        }
        checked += 1;
    }
    assert!(checked > 0, "no Envoy config found in envoy/");
}

/// An approved workload gets through; the upstream sees the principal and decision id that
/// cedar-gate set, not the ones the client forged; audit and access log name the policy.
#[tokio::test]
async fn approved_workload_reaches_upstream() {
    let stack = Stack::start().await;
    let client = stack.client(RESEARCH_AGENT);

    let forged_principal = workload("spiffe://example.org/ns/admin/sa/root");
    let resp = client
        .get("/v1/models")
        .header("x-test-id", "approved")
        .header("x-cedar-gate-principal", &forged_principal)
        .header("x-cedar-gate-decision-id", "forged")
        // Some upstreams (CGI, WSGI) treat `_` like `-`; Envoy must drop such headers.
        .header("x_cedar_gate_principal", &forged_principal)
        .send()
        .await
        .expect("request through Envoy");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.expect("body"), UPSTREAM_BODY);

    let seen = stack.upstream.requests_tagged("approved");
    assert_eq!(seen.len(), 1, "upstream should see exactly one request");
    let req = &seen[0];
    assert_eq!(req.uri, "/v1/models");
    assert_eq!(
        req.header_all("x-cedar-gate-principal"),
        vec![workload(RESEARCH_AGENT)]
    );
    assert!(
        req.header_all("x_cedar_gate_principal").is_empty(),
        "underscore header forwarded"
    );
    let decision_ids = req.header_all("x-cedar-gate-decision-id");
    assert_eq!(
        decision_ids.len(),
        1,
        "one decision id header: {decision_ids:?}"
    );
    let decision_id = decision_ids[0].clone();
    assert_ne!(decision_id, "forged");
    assert_eq!(
        decision_id.len(),
        36,
        "decision id should be a UUID: {decision_id}"
    );

    let audit = stack.gate.audit_event(&decision_id).await;
    assert_eq!(audit["decision"], "allow", "{audit}");
    assert_eq!(audit["spiffe_id"], RESEARCH_AGENT, "{audit}");
    assert_eq!(audit["principal"], workload(RESEARCH_AGENT), "{audit}");
    assert!(
        audit_policy_ids(&audit).contains(&"approved-agents-api".to_owned()),
        "{audit}"
    );
    // Envoy generated the request id; audit and upstream must agree on it.
    let request_id = req.header("x-request-id").expect("x-request-id upstream");
    assert_eq!(audit["request_id"], request_id, "{audit}");

    let entry = stack
        .envoy
        .access_log_entry("the allowed request", |e| {
            e["decision_id"] == decision_id.as_str()
        })
        .await;
    assert_eq!(entry["decision"], "allow", "{entry}");
    assert_eq!(entry["response_code"], 200, "{entry}");
    assert_eq!(entry["principal"], workload(RESEARCH_AGENT), "{entry}");
    assert!(
        access_log_policy_ids(&entry).contains(&"approved-agents-api".to_owned()),
        "{entry}"
    );
}

/// A workload in no approved group is denied by default (`no_permit`), and the deny is
/// attributable: the body's decision id finds the audit event and the access log line.
#[tokio::test]
async fn unapproved_workload_is_forbidden() {
    let stack = Stack::start().await;
    let client = stack.client(ROGUE_AGENT);

    let resp = client
        .get("/v1/models")
        .send()
        .await
        .expect("request through Envoy");
    let decision_id = assert_forbidden(resp, "no_permit").await;
    assert!(
        stack.upstream.requests().is_empty(),
        "a denied request reached the upstream"
    );

    let audit = stack.gate.audit_event(&decision_id).await;
    assert_eq!(audit["decision"], "deny", "{audit}");
    assert_eq!(audit["reason"], "no_permit", "{audit}");
    assert_eq!(audit["spiffe_id"], ROGUE_AGENT, "{audit}");

    let entry = stack
        .envoy
        .access_log_entry("the denied request", |e| {
            e["decision_id"] == decision_id.as_str()
        })
        .await;
    assert_eq!(entry["decision"], "deny", "{entry}");
    assert_eq!(entry["reason"], "no_permit", "{entry}");
    assert_eq!(entry["response_code"], 403, "{entry}");
    assert_eq!(entry["principal"], workload(ROGUE_AGENT), "{entry}");
}

/// `forbid` policies win over permits: a quarantined agent, and any caller on `/admin*`.
#[tokio::test]
async fn forbid_policies_win() {
    let stack = Stack::start().await;

    let resp = stack
        .client(QUARANTINED_AGENT)
        .get("/v1/models")
        .send()
        .await
        .expect("request");
    let decision_id = assert_forbidden(resp, "policy_forbid").await;
    let audit = stack.gate.audit_event(&decision_id).await;
    assert_eq!(audit["decision"], "deny", "{audit}");
    assert!(
        audit_policy_ids(&audit).contains(&"forbid-quarantined".to_owned()),
        "{audit}"
    );

    let resp = stack
        .client(RESEARCH_AGENT)
        .get("/admin/users")
        .send()
        .await
        .expect("request");
    let decision_id = assert_forbidden(resp, "policy_forbid").await;
    let audit = stack.gate.audit_event(&decision_id).await;
    assert!(
        audit_policy_ids(&audit).contains(&"forbid-admin-paths".to_owned()),
        "{audit}"
    );

    assert!(
        stack.upstream.requests().is_empty(),
        "a forbidden request reached the upstream"
    );
}

/// Envoy normalizes the path before the check, so an encoded traversal out of `/v1/` is
/// decided (and forwarded) as the path it really is.
#[tokio::test]
async fn encoded_path_traversal_is_decided_on_the_normalized_path() {
    let stack = Stack::start().await;
    let client = stack.client(RESEARCH_AGENT);

    // `..%2F` is not a dot segment to the client, so it is sent as is; Envoy decodes the
    // slash and resolves `..`, giving `/admin/users`.
    let resp = client
        .get("/v1/..%2Fadmin/users")
        .send()
        .await
        .expect("request");
    let decision_id = assert_forbidden(resp, "policy_forbid").await;
    let audit = stack.gate.audit_event(&decision_id).await;
    assert!(
        audit_policy_ids(&audit).contains(&"forbid-admin-paths".to_owned()),
        "{audit}"
    );
    assert!(
        stack.upstream.requests().is_empty(),
        "a forbidden request reached the upstream"
    );

    // Duplicate slashes are merged: the upstream gets the path the policy allowed.
    let resp = client
        .get("/v1//models")
        .header("x-test-id", "slashes")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = stack.upstream.requests_tagged("slashes");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/v1/models");
}

/// With cedar-gate gone, Envoy refuses everything (`failure_mode_allow: false`) with the
/// shipped `status_on_error` 503, distinct from a policy 403.
#[tokio::test]
async fn gate_down_fails_closed() {
    let mut stack = Stack::start().await;
    let client = stack.client(RESEARCH_AGENT);

    let resp = client
        .get("/v1/models")
        .send()
        .await
        .expect("request with gate up");
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "sanity: allowed while cedar-gate runs"
    );

    stack.gate.stop();
    for _ in 0..3 {
        let resp = client
            .get("/v1/models")
            .send()
            .await
            .expect("request with gate down");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(
        stack.upstream.requests().len(),
        1,
        "only the request made while up got through"
    );
}

/// Envoy's SAN matcher refuses a certificate from another trust domain (even one signed by
/// the trusted CA) and a client with no certificate: nothing reaches cedar-gate's allow path
/// or the upstream.
#[tokio::test]
async fn foreign_trust_domain_and_missing_certificate_are_refused() {
    let stack = Stack::start().await;

    for (what, client) in [
        ("foreign trust domain", stack.client(FOREIGN_AGENT)),
        ("no client certificate", stack.client_without_certificate()),
    ] {
        match client.get("/v1/models").send().await {
            // The expected outcome: the TLS handshake is refused.
            Err(_) => {}
            Ok(resp) => assert!(
                resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN,
                "{what}: expected a refused handshake, 401 or 403, got {}",
                resp.status()
            ),
        }
    }
    assert!(
        stack.upstream.requests().is_empty(),
        "a refused client reached the upstream"
    );
}
