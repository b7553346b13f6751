use std::collections::BTreeMap;

use std::sync::Arc;

use super::*;
use crate::vocab::DeterminingPolicy;

fn event<'a>(policies: &'a [Arc<DeterminingPolicy>], errors: &'a [String]) -> AuditEvent<'a> {
    AuditEvent {
        // 2026-11-29T15:17:28.652Z
        time: std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_millis(1_795_965_448_652),
        decision_id: "01a227e1-f1cc-76c0-afe4-8032bea7f193",
        request_id: "bench-0",
        decision: "allow",
        reason: "policy_permit",
        principal: "Workload::\"spiffe://example.org/ns/a/sa/b\"",
        spiffe_id: Some("spiffe://example.org/ns/a/sa/b"),
        workload_source: Some(crate::identity::WorkloadSource::Xfcc),
        identity_error: None,
        identity_reason: None,
        auth_method: "mtls",
        token: None,
        action: "Action::\"chat\"",
        resource: "Model::\"gpt-4o\"",
        protocol: "openai",
        policies,
        policy_generation: 7,
        policy_hash: "13140f3bf17c",
        errors,
        cache_hit: true,
        latency_us: 12,
        source_ip: Some([10, 0, 0, 1].into()),
        method: "POST",
        host: "models.example.com",
        path: "/v1/chat/completions",
        raw_path: None,
        model: Some("gpt-4o"),
        tool: None,
        operations: None,
        summary: None,
        batch: &[],
        shadow: None,
        required_scopes: &[],
        list_filter: None,
        api_key_id: Some("3f1c0a9b2d4e6f70"),
        credential: Some("openai-research"),
    }
}

/// The hand-written line is byte for byte what serde writes, for plain
/// values, values that need escaping, and every optional part.
#[test]
fn to_json_is_serdes() {
    let annotations = BTreeMap::from([
        ("owner".to_owned(), "team \"ai\"\n".to_owned()),
        ("ticket".to_owned(), "SEC-1".to_owned()),
    ]);
    let policies = vec![
        Arc::new(DeterminingPolicy::new("allow-chat".into(), annotations)),
        Arc::new(DeterminingPolicy::new("p\\2".into(), BTreeMap::new())),
    ];
    let errors = vec!["policy `x` failed: \u{1}".to_owned()];
    let actors = vec!["agent-1".to_owned()];
    let shadow = crate::policy::shadow::ShadowOutcome {
        decision: crate::vocab::Decision::deny(crate::vocab::Reason::PolicyForbid, Vec::new()),
        disagrees: true,
        action_label: "chat".into(),
    };
    let plain = event(&policies, &[]);
    let mut odd = event(&policies[..1], &errors);
    odd.path = "/a\"b\\c\td\u{7f}\u{1f}é/\u{2028}";
    odd.decision = "deny";
    odd.identity_error = Some("bad \"token\"");
    odd.identity_reason = Some("invalid_token");
    odd.spiffe_id = None;
    odd.workload_source = None;
    odd.source_ip = None;
    odd.model = None;
    odd.tool = Some("github/create_issue");
    odd.operations = Some(3);
    odd.token = Some(TokenAudit {
        issuer: "https://idp",
        subject: "alice",
        jti: Some("j-1"),
        actors: &actors,
        expires_at: 1_764_000_000,
        scopes: &actors,
    });
    odd.shadow = Some(ShadowAudit::new(&shadow));
    odd.raw_path = Some("/a/%2e/\u{0}");
    let summary = crate::classify::Summary {
        model_as_sent: Some("GPT-4o".into()),
        choices: Some(2),
        tool_names: vec!["x\"".into()],
        ..Default::default()
    };
    odd.summary = Some(&summary);
    let batch = [
        crate::classify::Summary {
            action: Some("Action::\"call_tool\"".into()),
            tool: Some("files/read".into()),
            ..Default::default()
        },
        summary.clone(),
    ];
    odd.batch = &batch;
    let scopes = ["repo:write".to_owned()];
    odd.required_scopes = &scopes;
    let list_filter = crate::decide::outcome::ListFilterAudit {
        list: "tools",
        hidden: vec!["delete_repo".to_owned()],
        conditional: vec!["deploy".to_owned()],
        error: Some("list response is not UTF-8".to_owned()),
    };
    odd.list_filter = Some(&list_filter);
    let empty = event(&[], &[]);
    let mut v6 = event(&[], &[]);
    v6.source_ip = Some("2001:db8::7334".parse().unwrap());
    let mut certificate = event(&[], &[]);
    certificate.workload_source = Some(crate::identity::WorkloadSource::PeerCertificate);
    let mut principal = event(&[], &[]);
    principal.workload_source = Some(crate::identity::WorkloadSource::PeerPrincipal);
    for e in [plain, odd, empty, v6, certificate, principal] {
        assert_eq!(e.to_json(), serde_json::to_string(&e).unwrap());
    }
}

/// The writer formats each line after the ones before it in one buffer.
#[test]
fn write_json_appends_to_the_buffer() {
    let e = event(&[], &[]);
    let mut buf = String::from("{\"earlier\":1}\n");
    e.write_json(&mut buf);
    let serde = serde_json::to_string(&e).unwrap();
    assert_eq!(buf, format!("{{\"earlier\":1}}\n{serde}"));
}
