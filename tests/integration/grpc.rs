//! gRPC-level tests: the real server (in process, on `127.0.0.1:0`) called with
//! the generated ext_authz client, as Envoy would call it.

use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::common::check::{Check, code, denied, meta};
use crate::common::copy_shipped_policies;
use crate::common::ids::{QUARANTINED_AGENT, RESEARCH_AGENT, ROGUE_AGENT};
use crate::common::inproc::{CONFIG, InProc};

/// A server over a copy of `cedar/` plus extra policy files.
async fn with_extra(config: &str, extra: &[(&str, &str)]) -> InProc {
    InProc::start_in(config, |dir| {
        copy_shipped_policies(dir);
        for (name, text) in extra {
            std::fs::write(dir.join(name), text).unwrap();
        }
    })
    .await
}

/// A CheckRequest as Envoy sends it, from peer address 10.1.2.3.
fn request(principal: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    Check::new(method, path)
        .peer(principal)
        .peer_ip("10.1.2.3")
        .headers(headers)
        .build()
}

fn ok_headers(resp: &CheckResponse) -> (Vec<(String, String)>, Vec<String>) {
    match &resp.http_response {
        Some(HttpResponse::OkResponse(ok)) => (
            ok.headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
            ok.headers_to_remove.clone(),
        ),
        other => panic!("expected an OK response, got {other:?}"),
    }
}

#[tokio::test]
async fn approved_workload_is_allowed_with_upstream_headers_and_metadata() {
    let s = InProc::shipped(CONFIG).await;
    let resp = s
        .check(request(
            RESEARCH_AGENT,
            "GET",
            "/v1/models?limit=5",
            &[
                ("x-cedar-gate-principal", "forged"),
                ("x-cedar-gate-extra", "forged"),
                ("authorization", "secret"),
            ],
        ))
        .await;
    assert_eq!(code(&resp), 0);
    let (headers, removed) = ok_headers(&resp);
    let principal = format!("Workload::\"{RESEARCH_AGENT}\"");
    assert!(
        headers.contains(&("x-cedar-gate-principal".into(), principal.clone())),
        "{headers:?}"
    );
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "x-cedar-gate-decision-id" && v.len() == 36)
    );
    assert!(
        removed.contains(&"x-cedar-gate-extra".to_owned()),
        "{removed:?}"
    );
    assert!(
        !removed.contains(&"x-cedar-gate-principal".to_owned()),
        "set, not removed: {removed:?}"
    );
    assert!(
        !removed.contains(&"authorization".to_owned()),
        "default config strips nothing: {removed:?}"
    );
    assert_eq!(meta(&resp, "decision"), "allow");
    assert_eq!(meta(&resp, "reason"), "policy_permit");
    assert_eq!(meta(&resp, "policies"), "approved-agents-api");
    assert_eq!(meta(&resp, "principal"), principal);
    assert_eq!(meta(&resp, "resource"), "Route::\"/v1/models\"");
    assert_eq!(meta(&resp, "policy_generation"), "1");
}

#[tokio::test]
async fn configured_headers_are_stripped_on_allow() {
    let config = format!("{CONFIG}response:\n  remove_headers: [authorization]\n");
    let s = InProc::shipped(&config).await;
    let resp = s
        .check(request(
            RESEARCH_AGENT,
            "GET",
            "/v1/models",
            &[("authorization", "Bearer x")],
        ))
        .await;
    let (_, removed) = ok_headers(&resp);
    assert!(removed.contains(&"authorization".to_owned()), "{removed:?}");
}

#[tokio::test]
async fn unapproved_workload_gets_403_no_permit() {
    let s = InProc::shipped(CONFIG).await;
    let resp = s
        .check(request(ROGUE_AGENT, "POST", "/v1/chat/completions", &[]))
        .await;
    assert_eq!(code(&resp), 7);
    let (status, body, headers) = denied(&resp);
    assert_eq!(status, 403);
    assert_eq!(body["error"], "forbidden");
    assert_eq!(body["reason"], "no_permit");
    assert_eq!(body["decision_id"].as_str().unwrap().len(), 36);
    assert!(headers.contains(&("content-type".into(), "application/json".into())));
    assert_eq!(meta(&resp, "decision"), "deny");
}

#[tokio::test]
async fn forbid_wins_over_permit() {
    let s = InProc::shipped(CONFIG).await;
    let resp = s
        .check(request(QUARANTINED_AGENT, "GET", "/v1/models", &[]))
        .await;
    let (status, body, _) = denied(&resp);
    assert_eq!(status, 403);
    assert_eq!(body["reason"], "policy_forbid");
    assert_eq!(meta(&resp, "policies"), "forbid-quarantined");
    // The admin-path forbid applies to approved agents too.
    let resp = s
        .check(request(RESEARCH_AGENT, "GET", "/admin/users", &[]))
        .await;
    assert_eq!(denied(&resp).1["reason"], "policy_forbid");
}

#[tokio::test]
async fn anonymous_gets_401_unless_permitted() {
    let s = InProc::shipped(CONFIG).await;
    let resp = s.check(request("", "GET", "/v1/models", &[])).await;
    assert_eq!(code(&resp), 16);
    let (status, body, headers) = denied(&resp);
    assert_eq!(status, 401);
    assert_eq!(body["reason"], "unauthenticated");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "www-authenticate" && v.starts_with("Bearer realm=\"cedar-gate\""))
    );
    assert_eq!(meta(&resp, "principal"), "Anonymous::\"anonymous\"");

    // `anonymous-health` permits Anonymous on GET /healthz.
    let resp = s.check(request("", "GET", "/healthz", &[])).await;
    assert_eq!(code(&resp), 0);
}

#[tokio::test]
async fn foreign_trust_domain_and_bad_ids_are_401() {
    let s = InProc::shipped(CONFIG).await;
    let resp = s
        .check(request(
            "spiffe://evil.org/ns/agents/sa/research-agent",
            "GET",
            "/v1/models",
            &[],
        ))
        .await;
    let (status, body, headers) = denied(&resp);
    assert_eq!(status, 401);
    assert_eq!(body["reason"], "invalid_identity");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "www-authenticate" && v.contains("untrusted_trust_domain")),
        "{headers:?}"
    );

    let resp = s
        .check(request(
            "spiffe://example.org/ns/../sa/x",
            "GET",
            "/v1/models",
            &[],
        ))
        .await;
    assert_eq!(denied(&resp).0, 401);
}

#[tokio::test]
async fn untrusted_xfcc_is_ignored() {
    let s = InProc::shipped(CONFIG).await;
    let xfcc = format!("By=spiffe://example.org/ns/gw/sa/gw;URI={RESEARCH_AGENT}");
    let resp = s
        .check(request(
            "",
            "GET",
            "/v1/models",
            &[("x-forwarded-client-cert", &xfcc)],
        ))
        .await;
    let (status, body, _) = denied(&resp);
    assert_eq!(status, 401, "a client-sent XFCC must not authenticate");
    assert_eq!(body["reason"], "unauthenticated");
    // And it cannot override a real peer identity either.
    let resp = s
        .check(request(
            ROGUE_AGENT,
            "GET",
            "/v1/models",
            &[("x-forwarded-client-cert", &xfcc)],
        ))
        .await;
    assert_eq!(denied(&resp).1["reason"], "no_permit");
}

#[tokio::test]
async fn trusted_xfcc_is_used_only_from_trusted_peers() {
    let gateway = "spiffe://example.org/ns/istio-system/sa/ingress";
    let config = format!(
        "identity:\n  trust_domains: [example.org]\n  xfcc:\n    trusted: true\n    trusted_peers: [\"{gateway}\"]\naudit:\n  sink: off\n"
    );
    let s = InProc::shipped(&config).await;
    let xfcc = format!("By={gateway};Hash=abc;URI={RESEARCH_AGENT}");
    let resp = s
        .check(request(
            gateway,
            "GET",
            "/v1/models",
            &[("x-forwarded-client-cert", &xfcc)],
        ))
        .await;
    assert_eq!(code(&resp), 0, "{:?}", resp.http_response);
    assert_eq!(
        meta(&resp, "principal"),
        format!("Workload::\"{RESEARCH_AGENT}\"")
    );

    // From any other peer, the header is ignored: the peer itself is the principal.
    let resp = s
        .check(request(
            ROGUE_AGENT,
            "GET",
            "/v1/models",
            &[("x-forwarded-client-cert", &xfcc)],
        ))
        .await;
    assert_eq!(
        meta(&resp, "principal"),
        format!("Workload::\"{ROGUE_AGENT}\"")
    );
    assert_eq!(denied(&resp).0, 403);

    // A malformed trusted header is a 401, not a fallback.
    let resp = s
        .check(request(
            gateway,
            "GET",
            "/v1/models",
            &[("x-forwarded-client-cert", "URI=\"unterminated")],
        ))
        .await;
    assert_eq!(denied(&resp).0, 401);
}

#[tokio::test]
async fn peer_certificate_is_parsed_and_expiry_enforced() {
    let s = InProc::shipped(CONFIG).await;
    let now = SystemTime::now();
    let valid = url_encoded_cert(
        RESEARCH_AGENT,
        now - Duration::from_secs(60),
        now + Duration::from_secs(3600),
    );
    let mut req = request("", "GET", "/v1/models", &[]);
    set_cert(&mut req, &valid);
    assert_eq!(code(&s.check(req).await), 0);

    let expired = url_encoded_cert(
        RESEARCH_AGENT,
        now - Duration::from_secs(7200),
        now - Duration::from_secs(3600),
    );
    let mut req = request("", "GET", "/v1/models", &[]);
    set_cert(&mut req, &expired);
    let (status, body, _) = denied(&s.check(req).await);
    assert_eq!(
        (status, body["reason"].as_str().unwrap()),
        (401, "invalid_identity")
    );

    // A certificate that names someone else than the principal is refused.
    let mut req = request(ROGUE_AGENT, "GET", "/v1/models", &[]);
    set_cert(&mut req, &valid);
    assert_eq!(denied(&s.check(req).await).0, 401);
}

#[tokio::test]
async fn evaluation_error_fails_closed() {
    // A forbid that errors at run time (integer overflow) passes strict
    // validation; Cedar skips it, which would let the permit through.
    let broken = r#"@id("broken-forbid")
forbid (principal, action, resource) when { context.request.path like "/v1/*" && 9223372036854775807 + 1 > 0 };
"#;
    let s = with_extra(CONFIG, &[("broken.cedar", broken)]).await;
    let resp = s
        .check(request(RESEARCH_AGENT, "GET", "/v1/models", &[]))
        .await;
    let (status, body, _) = denied(&resp);
    assert_eq!(status, 403);
    assert_eq!(body["reason"], "policy_error");

    // With the explicit opt-out, Cedar's own answer stands.
    let config = format!("{CONFIG}authorization:\n  on_policy_error: ignore\n");
    let s = with_extra(&config, &[("broken.cedar", broken)]).await;
    let resp = s
        .check(request(RESEARCH_AGENT, "GET", "/v1/models", &[]))
        .await;
    assert_eq!(code(&resp), 0);
}

#[tokio::test]
async fn not_ready_answers_unavailable() {
    // No schema: the snapshot is refused, so there is nothing to decide with.
    let s = InProc::start_in(CONFIG, |dir| {
        std::fs::write(
            dir.join("policies.cedar"),
            "permit(principal, action, resource);",
        )
        .unwrap();
    })
    .await;
    let err = s
        .client()
        .check(request(RESEARCH_AGENT, "GET", "/v1/models", &[]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(s.admin("/readyz").await.0, 503);
    let (_, status) = s.admin("/status").await;
    assert!(status.contains("schema.cedarschema"), "{status}");
    assert_eq!(s.health().await.unwrap(), ServingStatus::NotServing);
}

#[tokio::test]
async fn admin_endpoints_and_metrics() {
    let s = InProc::shipped(CONFIG).await;
    assert_eq!(s.admin("/healthz").await.0, 200);
    assert_eq!(s.admin("/readyz").await.0, 200);
    s.check(request(ROGUE_AGENT, "GET", "/v1/models", &[]))
        .await;
    let (code, text) = s.admin("/metrics").await;
    assert_eq!(code, 200);
    assert!(
        text.contains("cedar_gate_checks_total{decision=\"deny\",reason=\"no_permit\"}"),
        "{text}"
    );
    assert!(
        text.contains("cedar_gate_check_duration_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains(ROGUE_AGENT), "no principal in metrics");
}

#[tokio::test]
async fn malformed_check_request_is_a_clean_400() {
    let s = InProc::shipped(CONFIG).await;
    let resp = s.check(CheckRequest::default()).await;
    let (status, body, _) = denied(&resp);
    assert_eq!(status, 400);
    assert_eq!(body["reason"], "invalid_request");
}

fn set_cert(req: &mut CheckRequest, cert: &str) {
    req.attributes
        .as_mut()
        .unwrap()
        .source
        .as_mut()
        .unwrap()
        .certificate = cert.to_owned();
}

/// A self-signed leaf SVID (one SPIFFE URI SAN, key usage `digitalSignature`),
/// URL-encoded as Envoy sends it.
fn url_encoded_cert(spiffe: &str, not_before: SystemTime, not_after: SystemTime) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::URI(spiffe.try_into().unwrap())];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    let pem = params.self_signed(&key).unwrap().pem();
    percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC).to_string()
}
