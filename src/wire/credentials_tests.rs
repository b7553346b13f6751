//! The credential rules of one Check: selection by policy, route default,
//! refusals, and what the answer to Envoy carries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::ext_authz::v3::pb::HttpResponse;

use crate::config::Config;
use crate::decide::Gate;
use crate::policy::snapshot::Snapshot;
use crate::request::{HttpRequest, Peer};

const RESEARCH: &str = "spiffe://example.org/ns/research/sa/agent";
const SHARED: &str = "spiffe://example.org/ns/shared/sa/agent";
const CONFLICT: &str = "spiffe://example.org/ns/conflict/sa/agent";
const NAMELESS: &str = "spiffe://example.org/ns/nameless/sa/agent";

const POLICIES: &str = r#"
@id("research") @credential("openai-research")
permit (principal in Group::"research", action, resource);
@id("shared") permit (principal in Group::"shared", action, resource);
@id("conflict-a") @credential("openai-research")
permit (principal in Group::"conflict", action, resource);
@id("conflict-b") @credential("openai-shared")
permit (principal in Group::"conflict", action, resource);
@id("nameless") @credential("nope") permit (principal in Group::"nameless", action, resource);
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    secrets: std::path::PathBuf,
    snapshot: Snapshot,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    crate::policy::testkit::write_dir(
        &policies,
        "p.cedar",
        POLICIES,
        &[
            (RESEARCH, "research"),
            (SHARED, "shared"),
            (CONFLICT, "conflict"),
            (NAMELESS, "nameless"),
        ],
    );
    let snapshot = crate::policy::load_dir(&policies, 1).unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("research"), "sk-research-1\n").unwrap();
    std::fs::write(secrets.join("shared"), "sk-shared-1").unwrap();
    Fixture {
        secrets,
        snapshot,
        _dir: dir,
    }
}

fn gate(f: &Fixture, route_extra: &str) -> Gate {
    let s = f.secrets.display();
    let yaml = format!(
        r#"
identity:
  trust_domains: [example.org]
routes:
  - {{ name: openai, path_prefix: /v1, protocol: openai }}
  - {{ name: gemini, path_prefix: /v1beta, protocol: gemini }}
provider_credentials:
  credentials:
    - {{ id: openai-research, header: bearer, file: "{s}/research" }}
    - {{ id: openai-shared, header: bearer, file: "{s}/shared" }}
    - {{ id: broken, header: x-api-key, file: "{s}/missing" }}
  routes:
    - {{ route: openai{route_extra} }}
"#
    );
    Gate::new(Arc::new(Config::from_yaml(&yaml).unwrap()))
}

fn chat(spiffe: &str, headers: &[(&str, &str)], query: &str) -> HttpRequest {
    let content_type = ("content-type", "application/json");
    let headers = crate::request::header_list(headers.iter().copied().chain([content_type]));
    HttpRequest {
        id: "r1".into(),
        method: "POST".into(),
        host: "api.openai.com".into(),
        path: "/v1/chat/completions".into(),
        query: query.into(),
        scheme: "https".into(),
        headers,
        body: br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#.to_vec(),
        source: Peer {
            principal: spiffe.into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// (reason, credential id, header value set, headers removed, query removed).
fn run(
    g: &Gate,
    s: &Snapshot,
    r: &HttpRequest,
) -> (
    String,
    Option<String>,
    Option<String>,
    Vec<String>,
    Vec<String>,
) {
    let outcome = g.check(s, r, SystemTime::now());
    let answer = crate::wire::response::build(&outcome, r, &g.config().response)
        .decode()
        .expect("the answer decodes");
    let (set, removed, query) = match answer.http_response {
        Some(HttpResponse::OkResponse(ok)) => (
            ok.headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .find(|h| h.key == "authorization" || h.key == "x-api-key")
                .map(|h| h.value.clone()),
            ok.headers_to_remove,
            ok.query_parameters_to_remove,
        ),
        _ => (None, Vec::new(), Vec::new()),
    };
    (
        outcome.decision.reason.as_str().to_owned(),
        outcome
            .credential
            .as_ref()
            .and_then(|c| c.id.as_ref().map(|id| id.to_string())),
        set,
        removed,
        query,
    )
}

#[test]
fn the_determining_policy_or_the_route_default_selects() {
    let f = fixture();
    let g = gate(&f, ", default: openai-shared");
    let (reason, id, set, removed, query) = run(&g, &f.snapshot, &chat(RESEARCH, &[], ""));
    assert_eq!(reason, "policy_permit");
    assert_eq!(id.as_deref(), Some("openai-research"));
    assert_eq!(set.as_deref(), Some("Bearer sk-research-1"));
    // Every other provider header goes; the injected one is overwritten, not removed.
    for h in ["x-api-key", "api-key", "x-goog-api-key"] {
        assert!(removed.contains(&h.to_owned()), "{h}: {removed:?}");
    }
    assert!(!removed.contains(&"authorization".to_owned()));
    assert_eq!(query, vec!["key".to_owned()]);

    let (reason, id, set, ..) = run(&g, &f.snapshot, &chat(SHARED, &[], ""));
    assert_eq!(
        (reason.as_str(), id.as_deref(), set.as_deref()),
        (
            "policy_permit",
            Some("openai-shared"),
            Some("Bearer sk-shared-1")
        )
    );
}

#[test]
fn refusals_have_their_reasons() {
    let f = fixture();
    let no_default = gate(&f, "");
    let with_default = gate(&f, ", default: openai-shared");
    let cases: [(&Gate, HttpRequest, &str); 7] = [
        (&no_default, chat(SHARED, &[], ""), "credential_missing"),
        (
            &with_default,
            chat(CONFLICT, &[], ""),
            "credential_conflict",
        ),
        (
            &with_default,
            chat(NAMELESS, &[], ""),
            "credential_unavailable",
        ),
        (
            &with_default,
            chat(RESEARCH, &[("authorization", "Bearer sk-caller")], ""),
            "provider_credential_presented",
        ),
        (
            &with_default,
            chat(RESEARCH, &[("x-api-key", "sk-ant-caller")], ""),
            "provider_credential_presented",
        ),
        (
            &with_default,
            chat(RESEARCH, &[], "a=1&%6Bey=AIza-caller"),
            "provider_credential_presented",
        ),
        // Not allowed by any policy, and a key presented: still named as such.
        (
            &with_default,
            chat(
                "spiffe://example.org/ns/x/sa/y",
                &[("api-key", "azure")],
                "",
            ),
            "provider_credential_presented",
        ),
    ];
    for (g, r, expected) in cases {
        let (reason, id, set, ..) = run(g, &f.snapshot, &r);
        assert_eq!(reason, expected, "{:?}", r.headers);
        assert_eq!((id, set), (None, None), "{expected}: nothing injected");
    }
}

#[test]
fn a_route_can_let_callers_keys_through_and_a_missing_file_never_injects() {
    let f = fixture();
    let g = gate(&f, ", default: broken, allow_caller_credentials: true");
    // Opted out: the caller's key is no refusal. `broken` has no value: refused.
    let (reason, ..) = run(
        &g,
        &f.snapshot,
        &chat(SHARED, &[("x-api-key", "sk-ant-caller")], ""),
    );
    assert_eq!(reason, "credential_unavailable");
    let (reason, id, ..) = run(
        &g,
        &f.snapshot,
        &chat(RESEARCH, &[("x-api-key", "sk-ant-caller")], ""),
    );
    assert_eq!(
        (reason.as_str(), id.as_deref()),
        ("policy_permit", Some("openai-research"))
    );
}

#[test]
fn rotation_is_used_by_the_next_request_and_nothing_leaks() {
    let f = fixture();
    let g = gate(&f, "");
    let creds = g.credentials().unwrap().clone();
    let (_, _, set, ..) = run(&g, &f.snapshot, &chat(RESEARCH, &[], ""));
    assert_eq!(set.as_deref(), Some("Bearer sk-research-1"));
    std::fs::write(f.secrets.join("research"), "sk-research-2").unwrap();
    creds.refresh();
    let (_, _, set, ..) = run(&g, &f.snapshot, &chat(RESEARCH, &[], ""));
    assert_eq!(set.as_deref(), Some("Bearer sk-research-2"));
    // Removed file: the last good value stays, and the failure shows.
    std::fs::remove_file(f.secrets.join("research")).unwrap();
    creds.refresh();
    let (_, _, set, ..) = run(&g, &f.snapshot, &chat(RESEARCH, &[], ""));
    assert_eq!(set.as_deref(), Some("Bearer sk-research-2"));
    let status = creds.status(SystemTime::now()).to_string();
    assert!(status.contains(r#""error":"unreadable""#), "{status}");
    let metrics = creds.render_metrics(SystemTime::now());
    assert!(
        metrics.contains(r#"cedar_gate_credential_read_ok{credential="openai-research"} 0"#),
        "{metrics}"
    );
    // Nowhere but the header value: Debug, status, metrics, audit, metadata.
    let req = chat(RESEARCH, &[], "");
    let outcome = g.check(&f.snapshot, &req, SystemTime::now());
    let audit = crate::record::audit::AuditEvent::new(
        &outcome,
        &req,
        SystemTime::now(),
        std::time::Duration::ZERO,
    )
    .to_json();
    assert!(
        audit.contains(r#""credential":"openai-research""#),
        "{audit}"
    );
    let answer = crate::wire::response::build(&outcome, &req, &g.config().response);
    let metadata = format!(
        "{:?}",
        answer
            .decode()
            .expect("the answer decodes")
            .dynamic_metadata
    );
    for text in [
        format!("{outcome:?}"),
        format!("{g:?}"),
        status,
        metrics,
        audit,
        metadata,
    ] {
        for secret in ["sk-research-1", "sk-research-2", "sk-shared-1"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[test]
fn a_proxy_signed_route_strips_the_callers_credentials_and_injects_nothing() {
    let f = fixture();
    let yaml = r#"
identity:
  trust_domains: [example.org]
routes:
  - { name: bedrock, path_prefix: /model/, protocol: bedrock }
provider_credentials:
  routes:
    - { route: bedrock, proxy_signs: true }
"#;
    let g = Gate::new(Arc::new(Config::from_yaml(yaml).unwrap()));
    let mut r = chat(RESEARCH, &[], "");
    r.host = "bedrock-runtime.us-east-1.amazonaws.com".into();
    r.path = "/model/anthropic.claude-3-haiku-20240307-v1:0/converse".into();
    r.body = br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#.to_vec();
    let (reason, id, set, removed, _) = run(&g, &f.snapshot, &r);
    assert_eq!(reason, "policy_permit");
    assert_eq!((id, set), (None, None));
    for h in ["authorization", "x-amz-security-token", "x-amz-date"] {
        assert!(removed.contains(&h.to_owned()), "{h}: {removed:?}");
    }
    let mut signed = r.clone();
    signed
        .headers
        .push(("x-amz-security-token".into(), "IQoJb3JpZ2luX2VjE".into()));
    signed.headers.sort();
    let (reason, ..) = run(&g, &f.snapshot, &signed);
    assert_eq!(reason, "provider_credential_presented");
}
