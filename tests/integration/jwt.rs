//! Token identity through the real server (in process, on 127.0.0.1:0) with a real HTTP
//! JWKS / OIDC discovery server: algorithms, key rotation, readiness, the attack suite
//! (each refusal with its own reason), and the Cedar mapping.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value as PbValue};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::common::check::{self, code, denied, denied_header, meta};
use crate::common::idp::{Idp, SigningKey, now, pem};
use crate::common::ids::{RESEARCH_AGENT, ROGUE_AGENT};
use crate::common::{InProc, WAIT, copy_shipped_policies, eventually};

/// The agent platform issuer the shipped `cedar/tokens.cedar` names.
const AGENTS: &str = "https://agents.example.com";
const AUDIENCE: &str = "https://models.example.com";

/// Starts over the shipped `cedar/` and waits (bounded) until `/readyz` is 200.
async fn start_ready(config: &str) -> InProc {
    let s = InProc::shipped(config).await;
    s.wait_ready().await;
    s
}

/// Checks a GET of `path` carrying `Authorization: Bearer <token>`.
async fn bearer(s: &InProc, token: &str, path: &str) -> CheckResponse {
    let auth = format!("Bearer {token}");
    s.check(request("", path, &[("authorization", &auth)]))
        .await
}

/// Checks a GET of `path` from the peer `workload` (Envoy's `source.principal`; "" for
/// none) carrying `token` as its bearer.
async fn send(s: &InProc, workload: &str, token: &str, path: &str) -> CheckResponse {
    let auth = format!("Bearer {token}");
    s.check(request(workload, path, &[("authorization", &auth)]))
        .await
}

/// What one Check comes to. `None` fields are not checked.
#[derive(Debug, Clone, Copy)]
enum Want<'a> {
    /// Allowed.
    Allow {
        principal: Option<&'a str>,
        policies: Option<&'a str>,
    },
    /// Denied by the policies for `reason`.
    Deny {
        reason: &'a str,
        principal: Option<&'a str>,
        policies: Option<&'a str>,
    },
    /// The token refused (a 401) for this reason.
    Rejected(&'a str),
}

/// Asserts that `resp` is what `want` says, naming the scenario `what` on failure.
fn assert_want(resp: &CheckResponse, want: Want<'_>, what: &str) {
    let (principal, policies) = match want {
        Want::Allow {
            principal,
            policies,
        } => {
            assert_eq!(code(resp), 0, "{what}: {:?}", resp.http_response);
            (principal, policies)
        }
        Want::Deny {
            reason,
            principal,
            policies,
        } => {
            assert_eq!(code(resp), 7, "{what}: {:?}", resp.http_response);
            assert_eq!(meta(resp, "reason"), reason, "{what}");
            (principal, policies)
        }
        Want::Rejected(reason) => {
            assert_eq!(rejection(resp), reason, "{what}");
            (None, None)
        }
    };
    if let Some(p) = principal {
        assert_eq!(meta(resp, "principal"), p, "{what}");
    }
    if let Some(p) = policies {
        assert_eq!(meta(resp, "policies"), p, "{what}");
    }
}

/// An issuer block for the agent platform, keys from `jwks_url`.
fn agents_issuer(jwks_url: &str, algorithms: &str, extra: &str) -> String {
    format!(
        "  - issuer: {AGENTS}\n    jwks_url: {jwks_url}\n    audiences: [\"{AUDIENCE}\"]\n    algorithms: [{algorithms}]\n    entity_type: Agent\n    groups_claim: groups\n    max_lifetime_seconds: 900\n    leeway_seconds: 5\n    min_refresh_interval_seconds: 1\n    context_claims: [tenant]\n{extra}"
    )
}

fn config(issuers: &str, extra: &str) -> String {
    format!(
        "identity:\n  trust_domains: [example.org]\n  issuers:\n{issuers}{extra}audit:\n  sink: off\n"
    )
}

/// Claims of a valid agent token (lifetime 5 minutes, approved group).
fn agent_claims() -> Value {
    let t = now();
    json!({
        "iss": AGENTS, "sub": "research-bot", "aud": AUDIENCE, "iat": t - 5, "exp": t + 300,
        "groups": ["approved-agents"], "jti": "jti-1", "scope": "models:read models:write",
        "tenant": "acme",
    })
}

fn request(principal: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    check::request("req-1", principal, "GET", path, headers)
}

/// The 401's `error_description` (the rejection reason), asserting the challenge's shape.
fn rejection(resp: &CheckResponse) -> String {
    let challenge = check::challenge(resp);
    let body = denied(resp).1;
    assert_eq!(body["reason"], "invalid_identity", "{body}");
    assert!(
        challenge.starts_with("Bearer realm=\"cedar-gate\", error=\"invalid_token\""),
        "{challenge}"
    );
    check::rejection(resp)
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn every_supported_algorithm_is_accepted() {
    let keys = [
        SigningKey::new("rs256", Algorithm::RS256, pem::RSA_A),
        SigningKey::new("rs384", Algorithm::RS384, pem::RSA_A),
        SigningKey::new("rs512", Algorithm::RS512, pem::RSA_A),
        SigningKey::new("ps256", Algorithm::PS256, pem::RSA_B),
        SigningKey::new("es256", Algorithm::ES256, pem::EC_P256),
        SigningKey::new("es384", Algorithm::ES384, pem::EC_P384),
        SigningKey::new("eddsa", Algorithm::EdDSA, pem::ED25519),
    ];
    let idp = Idp::start(&keys.iter().collect::<Vec<_>>()).await;
    let issuer = agents_issuer(
        &idp.jwks_url(),
        "RS256, RS384, RS512, PS256, ES256, ES384, EdDSA",
        "",
    );
    let s = start_ready(&config(&issuer, "")).await;
    for key in &keys {
        let resp = bearer(&s, &key.sign(&agent_claims()), "/v1/models").await;
        let want = Want::Allow {
            principal: Some("Agent::\"research-bot\""),
            policies: None,
        };
        assert_want(&resp, want, &key.kid);
    }
}

#[tokio::test]
async fn attack_suite_each_refusal_has_its_reason() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    let s = start_ready(&config(&agents_issuer(&idp.jwks_url(), "RS256", ""), "")).await;
    let t = now();
    let with = |k: &str, v: Value| {
        let mut c = agent_claims();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = agent_claims();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let valid = key.sign(&agent_claims());
    let [h, p, sig]: [&str; 3] = valid.split('.').collect::<Vec<_>>().try_into().unwrap();

    // HS256 signed with the RSA public key as the HMAC secret (algorithm confusion).
    let mut hs = jsonwebtoken::Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    let confused = jsonwebtoken::encode(
        &hs,
        &agent_claims(),
        &jsonwebtoken::EncodingKey::from_secret(pem::RSA_A_PUB.as_bytes()),
    )
    .unwrap();
    let none_header = b64(&json!({"alg": "none", "typ": "JWT"}));
    let tampered = {
        let mut c = agent_claims();
        c["sub"] = json!("admin-bot");
        format!("{h}.{}.{sig}", b64(&c))
    };
    let other_key = SigningKey::new("k1", Algorithm::RS256, pem::RSA_B);

    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none", format!("{none_header}.{p}."), "algorithm_none"),
        (
            "alg none with a signature",
            format!("{none_header}.{p}.{sig}"),
            "algorithm_none",
        ),
        (
            "HS256 with the RSA public key",
            confused,
            "algorithm_not_allowed",
        ),
        (
            "expired",
            key.sign(&with("exp", json!(t - 60))),
            "token_expired",
        ),
        (
            "not yet valid",
            key.sign(&with("nbf", json!(t + 120))),
            "token_not_yet_valid",
        ),
        (
            "issued in the future",
            key.sign(&with("iat", json!(t + 120))),
            "token_issued_in_future",
        ),
        (
            "lifetime over the maximum",
            key.sign(&with("exp", json!(t + 3600))),
            "token_lifetime_exceeded",
        ),
        (
            "no iat with a maximum lifetime",
            key.sign(&without("iat")),
            "missing_iat",
        ),
        ("no exp", key.sign(&without("exp")), "missing_exp"),
        (
            "wrong issuer",
            key.sign(&with("iss", json!("https://evil.example.com"))),
            "unknown_issuer",
        ),
        ("no issuer", key.sign(&without("iss")), "unknown_issuer"),
        (
            "wrong audience",
            key.sign(&with("aud", json!("https://other.example.com"))),
            "invalid_audience",
        ),
        ("no subject", key.sign(&without("sub")), "missing_subject"),
        ("tampered payload", tampered, "invalid_signature"),
        (
            "signed by another key with the same kid",
            other_key.sign(&agent_claims()),
            "invalid_signature",
        ),
        (
            "oversized",
            format!("{h}.{}.{sig}", "A".repeat(9000)),
            "token_too_large",
        ),
        (
            "garbage header",
            format!("bm90IGpzb24.{p}.{sig}"),
            "malformed_token_header",
        ),
        (
            "garbage payload",
            format!("{h}.bm90IGpzb24.{sig}"),
            "malformed_token_claims",
        ),
        (
            "garbage signature",
            format!("{h}.{p}.AAAA"),
            "invalid_signature",
        ),
        (
            "non-base64 signature",
            format!("{h}.{p}.!!!"),
            "malformed_token",
        ),
        (
            "non-base64 header",
            format!("***.{p}.{sig}"),
            "malformed_token",
        ),
        ("two segments", format!("{h}.{p}"), "malformed_token"),
        ("four segments", format!("{valid}.{sig}"), "malformed_token"),
        ("empty bearer", String::new(), "malformed_token"),
        ("not a JWT", "hello".to_owned(), "malformed_token"),
    ];
    for (what, token, reason) in &cases {
        let resp = bearer(&s, token, "/v1/models").await;
        assert_eq!(rejection(&resp), *reason, "{what}");
    }
    // The valid token itself gets through, so each refusal above is about its one change.
    assert_eq!(code(&bearer(&s, &valid, "/v1/models").await), 0);

    // A presented but bad token is a 401 even from an approved workload: no fallback.
    let expired = key.sign(&with("exp", json!(t - 60)));
    let resp = send(&s, RESEARCH_AGENT, &expired, "/v1/models").await;
    assert_want(&resp, Want::Rejected("token_expired"), "no fallback");

    let (_, metrics) = s.admin("/metrics").await;
    for reason in [
        "algorithm_none",
        "token_expired",
        "token_lifetime_exceeded",
        "invalid_signature",
    ] {
        assert!(
            metrics.contains(&format!(
                "cedar_gate_identity_rejections_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
    assert!(!metrics.contains("research-bot"), "no subject in metrics");
}

/// The header's `typ`: another kind of token signed by the same keys is refused (RFC 8725
/// §3.11), and an issuer with `require_access_token_type` takes only `at+jwt` (RFC 9068).
#[tokio::test]
async fn token_type_rules_each_refusal_has_its_reason() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    // (typ, reason without the option, reason with it); "" is accepted, None no `typ`.
    let cases: [(Option<Value>, &str, &str); 14] = [
        (None, "", "access_token_type_required"),
        (Some(json!("JWT")), "", "access_token_type_required"),
        (
            Some(json!("Application/JWT")),
            "",
            "access_token_type_required",
        ),
        (Some(json!("at+jwt")), "", ""),
        (Some(json!("AT+JWT")), "", ""),
        (Some(json!("application/at+jwt")), "", ""),
        (
            Some(json!("secevent+jwt")),
            "token_type_not_accepted",
            "token_type_not_accepted",
        ),
        (
            Some(json!("application/secevent+jwt")),
            "token_type_not_accepted",
            "token_type_not_accepted",
        ),
        (
            Some(json!("id_token+jwt")),
            "token_type_not_accepted",
            "token_type_not_accepted",
        ),
        (
            Some(json!("dpop+jwt")),
            "token_type_not_accepted",
            "token_type_not_accepted",
        ),
        (
            Some(json!("logout+jwt")),
            "token_type_not_accepted",
            "token_type_not_accepted",
        ),
        (
            Some(json!("")),
            "token_type_not_accepted",
            "token_type_not_accepted",
        ),
        (
            Some(json!(9068)),
            "malformed_token_type",
            "malformed_token_type",
        ),
        (
            Some(json!(["at+jwt"])),
            "malformed_token_type",
            "malformed_token_type",
        ),
    ];
    for (strict, extra) in [(false, ""), (true, "    require_access_token_type: true\n")] {
        let s = start_ready(&config(&agents_issuer(&idp.jwks_url(), "RS256", extra), "")).await;
        for (typ, lenient_reason, strict_reason) in &cases {
            let mut header = json!({"alg": "RS256", "kid": "k1"});
            if let Some(t) = typ {
                header["typ"] = t.clone();
            }
            let resp = bearer(
                &s,
                &key.sign_with_header(&header, &agent_claims()),
                "/v1/models",
            )
            .await;
            let expected = if strict {
                strict_reason
            } else {
                lenient_reason
            };
            if expected.is_empty() {
                assert_eq!(
                    code(&resp),
                    0,
                    "{typ:?} strict={strict}: {:?}",
                    resp.http_response
                );
            } else {
                assert_eq!(rejection(&resp), *expected, "{typ:?} strict={strict}");
            }
        }
        let (_, metrics) = s.admin("/metrics").await;
        let reason = if strict {
            "access_token_type_required"
        } else {
            "token_type_not_accepted"
        };
        assert!(
            metrics.contains(&format!(
                "cedar_gate_identity_rejections_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
        s.shutdown().await;
    }
}

#[tokio::test]
async fn unknown_kid_flood_fetches_a_bounded_number_of_times() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    let s = start_ready(&config(&agents_issuer(&idp.jwks_url(), "RS256", ""), "")).await;
    let before = idp.fetches();
    let started = Instant::now();
    for i in 0..300 {
        let bogus = SigningKey::new(&format!("bogus-{i}"), Algorithm::RS256, pem::RSA_B);
        let resp = bearer(&s, &bogus.sign(&agent_claims()), "/v1/models").await;
        assert_eq!(rejection(&resp), "unknown_key_id");
    }
    // Let any scheduled refresh happen before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let fetched = idp.fetches() - before;
    // At most one fetch per `min_refresh_interval_seconds: 1`, plus one in flight.
    let bound = elapsed.ceil() as usize + 1;
    assert!(fetched >= 1, "an unknown kid must trigger a refresh");
    assert!(
        fetched <= bound,
        "{fetched} JWKS fetches in {elapsed:.1}s for 300 bogus kids (bound {bound})"
    );
    // The real key still works.
    assert_eq!(
        code(&bearer(&s, &key.sign(&agent_claims()), "/v1/models").await),
        0
    );
}

#[tokio::test]
async fn key_rotation_new_kid_after_refresh_old_until_removed() {
    let old = SigningKey::rsa_a("2026-old");
    let new = SigningKey::new("2026-new", Algorithm::RS256, pem::RSA_B);
    let idp = Idp::start(&[&old]).await;
    // A long regular interval: only the unknown-kid trigger refreshes here.
    let issuer = agents_issuer(
        &idp.jwks_url(),
        "RS256",
        "    refresh_interval_seconds: 3600\n",
    );
    let s = start_ready(&config(&issuer, "")).await;
    let old_token = old.sign(&agent_claims());
    let new_token = new.sign(&agent_claims());
    assert_eq!(code(&bearer(&s, &old_token, "/v1/models").await), 0);

    // The IdP publishes the new key next to the old one; the first token with the new kid
    // is refused at once (the Check path never waits on the network) and triggers a refresh.
    idp.set_keys(&[&old, &new]);
    assert_eq!(
        rejection(&bearer(&s, &new_token, "/v1/models").await),
        "unknown_key_id"
    );
    eventually("new kid accepted after refresh", WAIT, || async {
        (code(&bearer(&s, &new_token, "/v1/models").await) == 0).then_some(())
    })
    .await;
    assert_eq!(
        code(&bearer(&s, &old_token, "/v1/models").await),
        0,
        "old key still published"
    );

    // The old key is removed; the next refresh (triggered by any unknown kid) drops it,
    // and the cached verification of the old token does not outlive its key.
    idp.set_keys(&[&new]);
    let probe = SigningKey::new("probe", Algorithm::RS256, pem::RSA_B).sign(&agent_claims());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        rejection(&bearer(&s, &probe, "/v1/models").await),
        "unknown_key_id"
    );
    eventually("old kid refused after removal", WAIT, || async {
        let resp = bearer(&s, &old_token, "/v1/models").await;
        (code(&resp) != 0).then(|| rejection(&resp))
    })
    .await;
    assert_eq!(
        rejection(&bearer(&s, &old_token, "/v1/models").await),
        "unknown_key_id"
    );
    assert_eq!(code(&bearer(&s, &new_token, "/v1/models").await), 0);
}

#[tokio::test]
async fn readiness_waits_for_required_keys_and_failed_refresh_keeps_last_good() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    idp.fail_with(500);
    let issuer = agents_issuer(
        &idp.jwks_url(),
        "RS256",
        "    refresh_interval_seconds: 1\n",
    );
    let s = InProc::shipped(&config(&issuer, "")).await;
    let (status, body) = s.admin("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(AGENTS), "{body}");
    assert_ne!(s.health().await.unwrap(), ServingStatus::Serving);
    assert_eq!(
        rejection(&bearer(&s, &key.sign(&agent_claims()), "/v1/models").await),
        "keys_unavailable"
    );

    idp.fail_with(0);
    eventually("ready once keys load", WAIT, || async {
        (s.admin("/readyz").await.0 == 200).then_some(())
    })
    .await;
    eventually("gRPC health SERVING", WAIT, || async {
        (s.health().await.ok()? == ServingStatus::Serving).then_some(())
    })
    .await;
    assert_eq!(
        code(&bearer(&s, &key.sign(&agent_claims()), "/v1/models").await),
        0
    );

    // The IdP breaks: refreshes fail (counted), the last good keys stay in use.
    let fetched = idp.fetches();
    idp.fail_with(503);
    eventually("a failed refresh", WAIT, || async {
        (idp.fetches() > fetched + 1).then_some(())
    })
    .await;
    let mut claims = agent_claims();
    claims["sub"] = json!("another-bot");
    let fresh = key.sign(&claims);
    assert_eq!(
        code(&bearer(&s, &fresh, "/v1/models").await),
        0,
        "last good keys kept"
    );
    assert_eq!(s.admin("/readyz").await.0, 200);
    let (_, metrics) = s.admin("/metrics").await;
    assert!(
        metrics.contains(&format!(
            "cedar_gate_jwks_refreshes_total{{issuer=\"{AGENTS}\",result=\"failure\"}}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "cedar_gate_jwks_refreshes_total{{issuer=\"{AGENTS}\",result=\"success\"}}"
        )),
        "{metrics}"
    );
}

/// A `User` issuer found by OIDC discovery, mapped with the workload in context: the shipped
/// `users-through-approved-workloads` policy lets a user in only through an approved workload.
#[tokio::test]
async fn discovery_and_user_only_through_an_approved_workload() {
    let key = SigningKey::new("u1", Algorithm::ES256, pem::EC_P256);
    let idp = Idp::start(&[&key]).await;
    let iss = idp.issuer();
    let issuer = format!(
        "  - issuer: {iss}\n    discovery: true\n    audiences: [cedar-gate]\n    algorithms: [ES256]\n    entity_type: User\n    groups_claim: groups\n"
    );
    let s = start_ready(&config(&issuer, "")).await;
    let t = now();
    let token = key.sign(
        &json!({"iss": iss, "sub": "alice", "aud": ["cedar-gate"], "iat": t, "exp": t + 60,
        "act": {"sub": "research-bot"}}),
    );
    // Even a token whose groups claim names `approved-agents` (which the workload policy
    // `approved-agents-api` permits) cannot let the user in directly.
    let grouped = key.sign(
        &json!({"iss": iss, "sub": "mallory", "aud": "cedar-gate", "iat": t, "exp": t + 60,
        "groups": ["approved-agents"]}),
    );
    let forbid = |principal| Want::Deny {
        reason: "policy_forbid",
        principal,
        policies: None,
    };
    let cases = [
        (
            "through the approved workload: the user is the principal",
            RESEARCH_AGENT,
            &token,
            Want::Allow {
                principal: Some("User::\"alice\""),
                policies: Some("users-through-approved-workloads"),
            },
        ),
        // The same user directly, or through an unapproved workload: the guardrail forbids.
        (
            "directly",
            "",
            &token,
            Want::Deny {
                reason: "policy_forbid",
                principal: None,
                policies: Some("forbid-users-without-approved-workload"),
            },
        ),
        (
            "through an unapproved workload",
            ROGUE_AGENT,
            &token,
            forbid(None),
        ),
        (
            "in the approved-agents group, directly",
            "",
            &grouped,
            forbid(Some("User::\"mallory\"")),
        ),
    ];
    for (what, workload, token, want) in cases {
        assert_want(&send(&s, workload, token, "/v1/models").await, want, what);
    }
}

/// The token's claims reach Cedar: issuer, scopes, age, remaining lifetime, jti, actor
/// chain, selected claims, and the workload next to the token subject.
#[tokio::test]
async fn token_context_reaches_policies() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    let issuer = agents_issuer(&idp.jwks_url(), "RS256", "");
    let s = InProc::start_in(&config(&issuer, ""), |dir| {
        copy_shipped_policies(dir);
        std::fs::write(
            dir.join("context.cedar"),
        r#"@id("context-probe")
permit (principal is Agent, action == Action::"http", resource == Route::"/probe")
when {
  context.auth.method == "mtls+jwt" &&
  context.auth has workload && context.auth.workload == Workload::"spiffe://example.org/ns/agents/sa/research-agent" &&
  context.auth has issuer && context.auth.issuer == "https://agents.example.com" &&
  context.auth has audience && context.auth.audience == "https://models.example.com" &&
  context.auth has scopes && context.auth.scopes.contains("models:write") &&
  context.auth has token_age_seconds && context.auth.token_age_seconds >= 5 && context.auth.token_age_seconds < 60 &&
  context.auth has token_remaining_seconds && context.auth.token_remaining_seconds > 200 &&
  context.auth has jti && context.auth.jti == "jti-1" &&
  context.auth has actor && context.auth.actor.sub == "planner" && context.auth.actor.chain.contains("orchestrator") &&
  context.auth has claims && context.auth.claims has tenant && context.auth.claims.tenant == "acme"
};
"#,
        )
        .unwrap();
    })
    .await;
    s.wait_ready().await;

    let mut claims = agent_claims();
    claims["act"] = json!({"sub": "planner", "act": {"sub": "orchestrator"}});
    let token = key.sign(&claims);
    let probe = Want::Allow {
        principal: None,
        policies: Some("context-probe"),
    };
    let cases = [
        ("through the workload", RESEARCH_AGENT, probe),
        // The second answer comes from the verified-token cache: the same decision.
        ("again, from the token cache", RESEARCH_AGENT, probe),
        // Without the workload the probe does not match.
        (
            "without the workload",
            "",
            Want::Deny {
                reason: "no_permit",
                principal: None,
                policies: None,
            },
        ),
    ];
    for (what, workload, want) in cases {
        assert_want(&send(&s, workload, &token, "/probe").await, want, what);
    }
}

/// `identity.principal: workload` keeps the workload as principal; the token still counts
/// (validated, and a bad one is still a 401).
#[tokio::test]
async fn workload_can_be_the_principal() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    let issuer = agents_issuer(&idp.jwks_url(), "RS256", "");
    let s = start_ready(&config(&issuer, "  principal: workload\n")).await;
    let mut expired = agent_claims();
    expired["exp"] = json!(now() - 100);
    let workload = format!("Workload::\"{RESEARCH_AGENT}\"");
    let cases = [
        (
            "a valid token",
            key.sign(&agent_claims()),
            Want::Allow {
                principal: Some(&workload),
                policies: None,
            },
        ),
        (
            "an expired token",
            key.sign(&expired),
            Want::Rejected("token_expired"),
        ),
    ];
    for (what, token, want) in cases {
        let resp = send(&s, RESEARCH_AGENT, &token, "/v1/models").await;
        assert_want(&resp, want, what);
    }
}

/// With `jwt_authn_metadata`, the payload Envoy's jwt_authn verified is used (no signature
/// here), and the claim rules still apply.
#[tokio::test]
async fn jwt_authn_metadata_is_trusted_but_claims_still_checked() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    let issuer = agents_issuer(&idp.jwks_url(), "RS256", "");
    let extra = "  jwt_authn_metadata:\n    payload_key: jwt_payload\n";
    let s = start_ready(&config(&issuer, extra)).await;
    let with_payload = |claims: &Value| {
        let mut req = request("", "/v1/models", &[]);
        let payload = json_to_struct(claims);
        let ns = Struct {
            fields: [(
                "jwt_payload".to_owned(),
                PbValue {
                    kind: Some(Kind::StructValue(payload)),
                },
            )]
            .into(),
        };
        req.attributes.as_mut().unwrap().metadata_context = Some(Metadata {
            filter_metadata: [("envoy.filters.http.jwt_authn".to_owned(), ns)].into(),
            ..Default::default()
        });
        req
    };
    let resp = s.check(with_payload(&agent_claims())).await;
    assert_eq!(code(&resp), 0, "{:?}", resp.http_response);
    assert_eq!(meta(&resp, "principal"), "Agent::\"research-bot\"");
    let mut long = agent_claims();
    long["exp"] = json!(now() + 7200);
    assert_eq!(
        rejection(&s.check(with_payload(&long)).await),
        "token_lifetime_exceeded"
    );
}

/// RFC 9728: the 401 challenge names the protected resource metadata.
#[tokio::test]
async fn challenge_carries_resource_metadata() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    let issuer = agents_issuer(&idp.jwks_url(), "RS256", "");
    let url = "https://models.example.com/.well-known/oauth-protected-resource";
    let cfg = config(&issuer, "").replace(
        "audit:",
        &format!("response:\n  resource_metadata: {url}\naudit:"),
    );
    let s = start_ready(&cfg).await;
    for resp in [
        bearer(&s, "garbage", "/v1/models").await,
        s.check(request("", "/v1/models", &[])).await,
    ] {
        let challenge = denied_header(&resp, "www-authenticate").unwrap();
        assert!(
            challenge.ends_with(&format!(", resource_metadata=\"{url}\"")),
            "{challenge}"
        );
    }
}

fn json_to_struct(v: &Value) -> Struct {
    Struct {
        fields: v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), json_to_pb(v)))
            .collect(),
    }
}

fn json_to_pb(v: &Value) -> PbValue {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(envoy_types::pb::google::protobuf::ListValue {
            values: items.iter().map(json_to_pb).collect(),
        }),
        Value::Object(_) => Kind::StructValue(json_to_struct(v)),
    };
    PbValue { kind: Some(kind) }
}
