//! Step-up through the real server (in process) with a real JWKS endpoint: a token that
//! lacks the scope an `@scope`-annotated permit needs gets `403` with
//! `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`; the same call with the
//! scope passes; a `forbid`, matched or merely triggered by the added scopes, never yields a
//! challenge.

use serde_json::{Value, json};

use crate::common::check::{self, code, denied, denied_header};
use crate::common::idp::{Idp, SigningKey, now};
use crate::common::{InProc, audit_event, audit_file_yaml, copy_shipped_policies};

const AGENTS: &str = "https://agents.example.com";
const AUDIENCE: &str = "https://models.example.com";
const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource";

const POLICIES: &str = r#"
@id("reports-write")
@scope("reports:write")
permit (principal is Agent, action == Action::"http", resource == Route::"/reports")
when { context.request.method == "POST" && context.auth has scopes && context.auth.scopes.contains("reports:write") };

@id("reports-read")
@scope("reports:read reports:list")
permit (principal is Agent, action == Action::"http", resource == Route::"/reports")
when {
  context.request.method == "GET" && context.auth has scopes &&
  context.auth.scopes.contains("reports:read") &&
  context.auth.scopes.contains("reports:list")
};

// Matched outright: a forbid, never a challenge.
@id("locked-write")
@scope("reports:write")
permit (principal is Agent, action == Action::"http", resource == Route::"/reports/locked")
when { context.auth has scopes && context.auth.scopes.contains("reports:write") };
@id("locked")
forbid (principal, action == Action::"http", resource == Route::"/reports/locked");

// Triggered only by the scope the permit asks for: still never a challenge.
@id("archive-write")
@scope("reports:write")
permit (principal is Agent, action == Action::"http", resource == Route::"/reports/archive")
when { context.auth has scopes && context.auth.scopes.contains("reports:write") };
@id("archive-never-with-write")
forbid (principal, action == Action::"http", resource == Route::"/reports/archive")
when { context.auth has scopes && context.auth.scopes.contains("reports:write") };
"#;

fn token(key: &SigningKey, scope: &str) -> String {
    let t = now();
    key.sign(&json!({
        "iss": AGENTS, "sub": "research-bot", "aud": AUDIENCE, "iat": t - 5, "exp": t + 300,
        "groups": ["approved-agents"], "jti": format!("jti-{scope}"), "scope": scope,
    }))
}

#[tokio::test]
async fn step_up_challenge_names_the_scopes_and_never_covers_a_forbid() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    let audit = tempfile::tempdir().unwrap();
    let audit_path = audit.path().join("audit.jsonl");
    let config = format!(
        "identity:\n  trust_domains: [example.org]\n  issuers:\n  - issuer: {AGENTS}\n    jwks_url: {}\n    audiences: [\"{AUDIENCE}\"]\n    algorithms: [RS256]\n    entity_type: Agent\n    groups_claim: groups\n    max_lifetime_seconds: 900\nresponse:\n  resource_metadata: {METADATA}\n{}",
        idp.jwks_url(),
        audit_file_yaml(&audit_path)
    );
    let s = InProc::start_in(&config, |dir| {
        copy_shipped_policies(dir);
        std::fs::write(dir.join("stepup.cedar"), POLICIES).unwrap();
    })
    .await;
    s.wait_ready().await;
    let call = |method: &'static str, path: &'static str, scope: &'static str| {
        let auth = format!("Bearer {}", token(&key, scope));
        let req = check::request("req-1", "", method, path, &[("authorization", &auth)]);
        async { s.check(req).await }
    };

    // Without the scope: the challenge, naming exactly it.
    let resp = call("POST", "/reports", "models:read").await;
    let (status, body, _) = denied(&resp);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["reason"], "insufficient_scope", "{body}");
    assert_eq!(body["error"], "insufficient_scope", "{body}");
    assert_eq!(body["scopes"], json!(["reports:write"]), "{body}");
    assert_eq!(
        denied_header(&resp, "www-authenticate").as_deref(),
        Some(format!(
            "Bearer error=\"insufficient_scope\", scope=\"reports:write\", resource_metadata=\"{METADATA}\""
        ).as_str())
    );
    let event: Value = audit_event(&audit_path, body["decision_id"].as_str().unwrap()).await;
    assert_eq!(event["reason"], "insufficient_scope", "{event}");
    assert_eq!(
        event["required_scopes"],
        json!(["reports:write"]),
        "{event}"
    );

    // With it: allowed.
    let resp = call("POST", "/reports", "models:read reports:write").await;
    assert_eq!(code(&resp), 0, "{:?}", resp.http_response);

    // A permit needing two scopes, one already granted: both are listed (the client keeps
    // what it has when it asks again).
    let resp = call("GET", "/reports", "reports:read").await;
    let (_, body, _) = denied(&resp);
    assert_eq!(
        body["scopes"],
        json!(["reports:list", "reports:read"]),
        "{body}"
    );
    let resp = call("GET", "/reports", "reports:read reports:list").await;
    assert_eq!(code(&resp), 0);

    // A matched forbid: a plain 403, no challenge.
    for scope in ["models:read", "reports:write"] {
        let resp = call("POST", "/reports/locked", scope).await;
        let (status, body, _) = denied(&resp);
        assert_eq!(
            (status, body["reason"].as_str()),
            (403, Some("policy_forbid")),
            "{body}"
        );
        assert!(body.get("scopes").is_none(), "{body}");
        assert_eq!(denied_header(&resp, "www-authenticate"), None);
    }
    // The scope would trigger a forbid: no challenge either.
    let resp = call("POST", "/reports/archive", "models:read").await;
    let (_, body, _) = denied(&resp);
    assert_eq!(body["reason"], "no_permit", "{body}");
    assert_eq!(denied_header(&resp, "www-authenticate"), None);

    // A route no annotated permit covers: the ordinary no_permit.
    let resp = call("POST", "/elsewhere", "models:read").await;
    assert_eq!(denied(&resp).1["reason"], "no_permit");
}
