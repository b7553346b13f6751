//! The answer to Envoy as written by `response::build`, read back with prost:
//! every field an allow and a refusal carry, and the bytes exactly as long as
//! prost's own encoding of what they decode to (no field written twice, none
//! written that proto3 leaves out).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{CheckResponse, HttpResponse};
use envoy_types::pb::google::protobuf::value::Kind;
use proptest::prelude::*;
use prost::Message;

use crate::classify::Protocol;
use crate::config::ResponseConfig;
use crate::credentials::Injection;
use crate::credentials::secret::Secret;
use crate::decide::Outcome;
use crate::identity::Identity;
use crate::policy::cache::Memo;
use crate::request::{HeaderName, HttpRequest};
use crate::vocab::{Decision, DeterminingPolicy, Effect, Reason};
use crate::wire::response::{self, DECISION_ID_HEADER, Encoded, PRINCIPAL_HEADER};

const ID: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const PRINCIPAL: &str = r#"Workload::"spiffe://example.org/ns/research/sa/agent""#;

fn allow() -> Outcome {
    let policy = |id: &str| Arc::new(DeterminingPolicy::new(id.to_owned(), BTreeMap::new()));
    Outcome {
        decision_id: ID.to_owned(),
        decision: Decision {
            effect: Effect::Allow,
            reason: Reason::PolicyPermit,
            policies: vec![policy("a-permit"), policy("b-permit")],
            errors: Vec::new(),
        },
        principal: PRINCIPAL.to_owned(),
        identity: Identity::default(),
        identity_error: None,
        protocol: Protocol::Openai,
        action: r#"Action::"invoke_model""#.to_owned(),
        resource: r#"Model::"gpt-4o""#.to_owned(),
        model: Some("gpt-4o".to_owned()),
        tool: None,
        operations: 1,
        summary: None,
        batch: Vec::new(),
        policy_generation: 7,
        policy_hash: "".into(),
        cache_hit: true,
        forged_headers: vec![PRINCIPAL_HEADER.to_owned(), "x-cedar-gate-role".to_owned()],
        shadow: None,
        credential: None,
        refusal_body: None,
        required_scopes: Vec::new(),
        list_filter: None,
        memo: None,
    }
}

/// Decodes the answer and checks it is written canonically: as long as
/// prost's encoding of the same message.
fn read(answer: &Encoded) -> CheckResponse {
    let message = answer.decode().expect("the answer decodes");
    assert_eq!(
        message.encoded_len(),
        answer.as_bytes().len(),
        "{message:?}"
    );
    message
}

fn metadata(answer: &CheckResponse) -> HashMap<String, Kind> {
    let fields = &answer.dynamic_metadata.as_ref().expect("metadata").fields;
    fields
        .iter()
        .map(|(k, v)| (k.clone(), v.kind.clone().expect("a value")))
        .collect()
}

fn text(s: &str) -> Kind {
    Kind::StringValue(s.to_owned())
}

#[test]
fn an_allow_sets_the_headers_removes_forged_ones_and_names_the_decision() {
    let cfg = ResponseConfig {
        remove_headers: vec![HeaderName::new("x-internal").unwrap()],
        ..ResponseConfig::default()
    };
    let answer = read(&response::build(&allow(), &HttpRequest::default(), &cfg));
    assert_eq!(answer.status.as_ref().map(|s| s.code), Some(0));
    let Some(HttpResponse::OkResponse(ok)) = &answer.http_response else {
        panic!("an ok response: {answer:?}");
    };
    let headers: Vec<(&str, &str, i32)> = ok
        .headers
        .iter()
        .map(|h| {
            let hv = h.header.as_ref().unwrap();
            (hv.key.as_str(), hv.value.as_str(), h.append_action)
        })
        .collect();
    assert_eq!(
        headers,
        [
            (PRINCIPAL_HEADER, PRINCIPAL, 2),
            (DECISION_ID_HEADER, ID, 2)
        ]
    );
    // The forged principal header is overwritten, not removed; the other goes.
    assert_eq!(ok.headers_to_remove, ["x-cedar-gate-role", "x-internal"]);
    assert!(ok.query_parameters_to_remove.is_empty());

    let expected: HashMap<String, Kind> = [
        ("decision", text("allow")),
        ("decision_id", text(ID)),
        ("reason", text("policy_permit")),
        ("principal", text(PRINCIPAL)),
        ("action", text(r#"Action::"invoke_model""#)),
        ("resource", text(r#"Model::"gpt-4o""#)),
        ("protocol", text(Protocol::Openai.as_str())),
        ("policies", text("a-permit,b-permit")),
        ("model", text("gpt-4o")),
        ("tool", text("")),
        ("credential", text("")),
        ("api_key_id", text("")),
        ("policy_generation", Kind::NumberValue(7.0)),
        ("cache_hit", Kind::BoolValue(true)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(metadata(&answer), expected);
}

#[test]
fn an_injected_credential_is_set_once_and_never_removed() {
    let mut outcome = allow();
    outcome.credential = Some(Injection {
        id: Some(Arc::from("openai-research")),
        set: Some((
            Arc::from("authorization"),
            Secret::new("Bearer sk-1".into()),
        )),
        remove_headers: vec!["authorization".into(), "x-api-key".into()],
        remove_query: vec!["key".into()],
    });
    let cfg = ResponseConfig::default();
    let answer = read(&response::build(&outcome, &HttpRequest::default(), &cfg));
    let Some(HttpResponse::OkResponse(ok)) = &answer.http_response else {
        panic!("an ok response: {answer:?}");
    };
    let set: Vec<_> = ok
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .collect();
    assert_eq!(set.len(), 3);
    assert_eq!(
        (set[2].key.as_str(), set[2].value.as_str()),
        ("authorization", "Bearer sk-1")
    );
    assert_eq!(ok.headers_to_remove, ["x-cedar-gate-role", "x-api-key"]);
    assert_eq!(ok.query_parameters_to_remove, ["key"]);
    assert_eq!(metadata(&answer)["credential"], text("openai-research"));
}

#[test]
fn refusals_carry_their_status_body_and_metadata() {
    let cfg = ResponseConfig::default();
    let req = HttpRequest::default();
    for (reason, grpc, http) in [
        (Reason::PolicyForbid, 7, 403),
        (Reason::Unauthenticated, 16, 401),
        (Reason::PathNotCanonical, 3, 400),
    ] {
        let outcome = Outcome {
            decision: Decision::deny(reason, Vec::new()),
            cache_hit: false,
            ..allow()
        };
        let answer = read(&response::build(&outcome, &req, &cfg));
        assert_eq!(
            answer.status.as_ref().map(|s| s.code),
            Some(grpc),
            "{reason:?}"
        );
        let Some(HttpResponse::DeniedResponse(denied)) = &answer.http_response else {
            panic!("a denied response: {answer:?}");
        };
        assert_eq!(denied.status.as_ref().map(|s| s.code), Some(http));
        // The caller's SDK reads the provider's error shape, which names the id.
        assert!(denied.body.contains(ID), "{}", denied.body);
        let meta = metadata(&answer);
        assert_eq!(meta["decision"], text("deny"));
        assert_eq!(meta["reason"], text(reason.as_str()));
        assert_eq!(meta["policies"], text(""));
        assert_eq!(meta["cache_hit"], Kind::BoolValue(false));
    }
}

#[test]
fn empty_strings_and_long_values_are_written_canonically() {
    // Empty header values are left out (proto3), metadata strings never are,
    // and lengths over 127 bytes take a two-byte varint.
    let outcome = Outcome {
        principal: String::new(),
        resource: "r".repeat(300),
        forged_headers: Vec::new(),
        ..allow()
    };
    let answer = read(&response::build(
        &outcome,
        &HttpRequest::default(),
        &ResponseConfig::default(),
    ));
    assert_eq!(metadata(&answer)["principal"], text(""));
    assert_eq!(metadata(&answer)["resource"], text(&"r".repeat(300)));
}

#[test]
fn a_bad_request_is_a_400_without_metadata() {
    let answer = read(&response::bad_request("no path"));
    assert_eq!(answer.status.as_ref().map(|s| s.code), Some(3));
    assert!(answer.dynamic_metadata.is_none());
}

/// `outcome`'s answer written anew (no memo to take it from).
fn fresh(outcome: &Outcome, cfg: &ResponseConfig) -> Encoded {
    let outcome = Outcome {
        memo: None,
        ..outcome.clone()
    };
    response::build(&outcome, &HttpRequest::default(), cfg)
}

fn removing_internal() -> ResponseConfig {
    ResponseConfig {
        remove_headers: vec![HeaderName::new("x-internal").unwrap()],
        ..ResponseConfig::default()
    }
}

#[test]
fn a_hit_takes_its_cached_decisions_answer_with_its_own_decision_id() {
    let cfg = removing_internal();
    let first = Outcome {
        memo: Some(Memo::default()),
        ..allow()
    };
    // The first hit writes the answer and keeps it.
    let answer = response::build(&first, &HttpRequest::default(), &cfg);
    assert_eq!(answer, fresh(&first, &cfg));
    let again = Outcome {
        decision_id: "0193a1b2-c3d4-7e5f-8a9b-ffffffffffff".to_owned(),
        ..first.clone()
    };
    let kept = response::from_kept(&again, &cfg).expect("the kept answer applies");
    assert_eq!(kept, fresh(&again, &cfg));
    assert_ne!(kept, answer);
    let read = read(&kept);
    assert_eq!(metadata(&read)["decision_id"], text(&again.decision_id));
    // A provider credential is never kept (the memo would hold a secret).
    let credential = Outcome {
        credential: Some(Injection {
            id: Some(Arc::from("openai-prod")),
            set: Some((
                Arc::from("authorization"),
                Secret::new("Bearer sk-1".into()),
            )),
            remove_headers: Vec::new(),
            remove_query: Vec::new(),
        }),
        ..again.clone()
    };
    assert_eq!(response::from_kept(&credential, &cfg), None);
    // Nor is a refusal answered from it.
    let denied = Outcome {
        decision: Decision::deny(Reason::PolicyForbid, Vec::new()),
        ..again
    };
    assert_eq!(response::from_kept(&denied, &cfg), None);
}

/// `allow()` with some of its values changed (each rarely, so that about
/// one case in seven changes nothing but, mostly, the decision id), and
/// whether every value but the decision id is still `allow()`'s.
fn changed() -> impl Strategy<Value = (Outcome, bool)> {
    let text = || {
        prop_oneof![
            12 => Just(None),
            1 => Just(Some(String::new())),
            2 => "[a-z\":/]{0,45}".prop_map(Some),
            1 => ".{0,3}".prop_map(Some),
        ]
    };
    use prop::option::weighted;
    let policies = weighted(0.1, prop::collection::vec("[ab]-permit", 0..3));
    (
        (text(), text(), text(), text()),
        (text(), policies, weighted(0.1, any::<u64>())),
        (
            weighted(0.1, any::<bool>()),
            weighted(0.1, prop::collection::vec("x-cedar-gate-[a-z]{0,4}", 0..3)),
            prop::option::weighted(0.9, "[0-9a-f-]{35,37}|[0-9a-f-]{36}"),
        ),
    )
        .prop_map(|((principal, action, resource, model), rest, flags)| {
            let (tool, policies, generation) = rest;
            let (cache_hit, forged, id) = flags;
            let mut o = allow();
            let same_values = principal.as_ref().is_none_or(|p| *p == o.principal)
                && action.as_ref().is_none_or(|a| *a == o.action)
                && resource.as_ref().is_none_or(|r| *r == o.resource)
                && model.as_ref().is_none_or(|m| Some(m) == o.model.as_ref())
                && tool.as_ref().is_none_or(String::is_empty)
                && policies
                    .as_ref()
                    .is_none_or(|p| *p == ["a-permit", "b-permit"])
                && generation.is_none_or(|g| g == 7)
                && cache_hit.is_none_or(|h| h)
                && forged.as_ref().is_none_or(|f| *f == o.forged_headers)
                && id.as_ref().is_none_or(|id| id.len() == ID.len());
            let policy =
                |id: &String| Arc::new(DeterminingPolicy::new(id.clone(), BTreeMap::new()));
            o.principal = principal.unwrap_or(o.principal);
            o.action = action.unwrap_or(o.action);
            o.resource = resource.unwrap_or(o.resource);
            o.model = model.or(o.model);
            o.tool = tool.or(o.tool);
            if let Some(p) = policies {
                o.decision.policies = p.iter().map(policy).collect();
            }
            o.policy_generation = generation.unwrap_or(o.policy_generation);
            o.cache_hit = cache_hit.unwrap_or(o.cache_hit);
            o.forged_headers = forged.unwrap_or(o.forged_headers);
            o.decision_id = id.unwrap_or(o.decision_id);
            (o, same_values)
        })
}

proptest! {
    /// A kept answer is used exactly when every value the new answer writes,
    /// but the decision id, is the one kept, and then it is byte for byte the
    /// answer written anew; any answer is the one written anew.
    #[test]
    fn a_kept_answer_is_used_only_where_it_is_the_answer((other, same) in changed()) {
        let cfg = removing_internal();
        let memo = Memo::default();
        let first = Outcome { memo: Some(memo.clone()), ..allow() };
        response::build(&first, &HttpRequest::default(), &cfg);
        let other = Outcome { memo: Some(memo), ..other };
        match response::from_kept(&other, &cfg) {
            Some(answer) => {
                prop_assert!(same);
                prop_assert_eq!(answer, fresh(&other, &cfg));
            }
            None => prop_assert!(!same),
        }
        prop_assert_eq!(
            response::build(&other, &HttpRequest::default(), &cfg),
            fresh(&other, &cfg)
        );
    }
}

#[test]
fn hits_through_the_gate_answer_as_an_answer_written_anew() {
    let dir = tempfile::tempdir().unwrap();
    let agent = "spiffe://example.org/ns/research/sa/agent";
    let policies = r#"@id("research") permit (principal in Group::"research", action, resource);"#;
    crate::policy::testkit::write_dir(dir.path(), "p.cedar", policies, &[(agent, "research")]);
    let snapshot = crate::policy::load_dir(dir.path(), 1).unwrap();
    let yaml = "identity:\n  trust_domains: [example.org]\n";
    let gate = crate::decide::Gate::new(Arc::new(crate::config::Config::from_yaml(yaml).unwrap()));
    let cfg = &gate.config().response;
    let req = HttpRequest {
        method: "GET".into(),
        host: "api.example.org".into(),
        path: "/v1/things".into(),
        scheme: "https".into(),
        source: crate::request::Peer {
            principal: agent.into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let now = std::time::SystemTime::now();
    let miss = gate.check(&snapshot, &req, now);
    assert!(miss.decision.is_allow() && !miss.cache_hit && miss.memo.is_none());
    for _ in 0..3 {
        let hit = gate.check(&snapshot, &req, now);
        assert!(hit.cache_hit && hit.memo.is_some());
        let answer = response::build(&hit, &req, cfg);
        assert_eq!(answer, fresh(&hit, cfg));
        assert_eq!(response::from_kept(&hit, cfg), Some(answer));
    }
}
