//! The answer to Envoy as written by `response::build`, read back with prost:
//! every field an allow and a refusal carry, and the bytes exactly as long as
//! prost's own encoding of what they decode to (no field written twice, none
//! written that proto3 leaves out).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{CheckResponse, HttpResponse};
use envoy_types::pb::google::protobuf::value::Kind;
use prost::Message;

use crate::classify::Protocol;
use crate::config::ResponseConfig;
use crate::credentials::Injection;
use crate::credentials::secret::Secret;
use crate::decide::Outcome;
use crate::identity::Identity;
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
