use super::*;
use crate::vocab::{EntityType, Value, builtin_uid};
use proptest::prelude::*;

const SCHEMA: &str = r#"
entity Group in [Group];
entity Workload in [Group] { trust_domain: String, path: String, namespace?: String, service_account?: String };
entity Route;
type Ctx = { request: { path: String } };
action http appliesTo { principal: [Workload], resource: [Route], context: Ctx };
action other appliesTo { principal: [Workload], resource: [Route], context: Ctx };
action "inference";
action chat in ["inference"] appliesTo { principal: [Workload], resource: [Route], context: Ctx };
"#;

fn workload(i: u8) -> String {
    format!("spiffe://example.org/ns/n/sa/w{i}")
}

fn policy_strategy() -> impl Strategy<Value = String> {
    let effect = prop_oneof![Just("permit"), Just("forbid")];
    let principal = prop_oneof![
        Just("principal".to_owned()),
        (0u8..4).prop_map(|i| format!("principal == Workload::\"{}\"", workload(i))),
        (0u8..4).prop_map(|g| format!("principal in Group::\"g{g}\"")),
        Just("principal is Workload".to_owned()),
        (0u8..4).prop_map(|g| format!("principal is Workload in Group::\"g{g}\"")),
    ];
    let action = prop_oneof![
        Just("action"),
        Just("action == Action::\"http\""),
        Just("action in [Action::\"other\", Action::\"chat\"]"),
        Just("action in Action::\"inference\""),
    ];
    let cond = prop_oneof![
        Just(""),
        Just("when { context.request.path like \"/v1/*\" }"),
        (0u8..4).prop_map(|g| Box::leak(
            format!("when {{ principal in Group::\"g{g}\" }}").into_boxed_str()
        ) as &str),
        Just("when { 9223372036854775807 + 1 > 0 }"),
    ];
    (effect, principal, action, cond)
        .prop_map(|(e, p, a, c)| format!("{e}({p}, {a}, resource) {c};"))
}

fn load(policies: &[String]) -> Snapshot {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.cedarschema"), SCHEMA).unwrap();
    std::fs::write(dir.path().join("p.cedar"), policies.join("\n")).unwrap();
    // Nested groups: g1 in g0, g3 in g2; w0 in g1, w2 in g3.
    let entities = serde_json::json!([
        {"uid": {"type": "Group", "id": "g0"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Group", "id": "g1"}, "attrs": {}, "parents": [{"type": "Group", "id": "g0"}]},
        {"uid": {"type": "Group", "id": "g2"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Group", "id": "g3"}, "attrs": {}, "parents": [{"type": "Group", "id": "g2"}]},
        {"uid": {"type": "Workload", "id": workload(0)}, "attrs": {}, "parents": [{"type": "Group", "id": "g1"}]},
        {"uid": {"type": "Workload", "id": workload(2)}, "attrs": {}, "parents": [{"type": "Group", "id": "g3"}]},
    ]);
    std::fs::write(dir.path().join("entities.json"), entities.to_string()).unwrap();
    crate::policy::load_dir(dir.path(), 1).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// Slicing never changes a decision, its determining policies or its errors.
    #[test]
    fn sliced_equals_full(
        policies in proptest::collection::vec(policy_strategy(), 1..24),
        requests in proptest::collection::vec((0u8..5, proptest::collection::vec(0u8..4, 0..3), 0u8..3, any::<bool>()), 1..12),
    ) {
        let snapshot = load(&policies);
        for (w, extra_groups, action, v1) in requests {
            let req = AuthzRequest {
                principal: PrincipalSpec {
                    uid: builtin_uid(EntityType::Workload, &workload(w)),
                    attrs: vec![("trust_domain".into(), Value::str("example.org")), ("path".into(), Value::str("/x"))],
                    parents: extra_groups.iter().map(|g| builtin_uid(EntityType::Group, &format!("g{g}"))).collect(),
                },
                extra: Vec::new(),
                action: builtin_uid(EntityType::Action, ["http", "other", "chat"][action as usize]),
                resource: builtin_uid(EntityType::Route, "/r"),
                context: vec![("request".into(), Value::Record(vec![("path".into(), Value::str(if v1 { "/v1/x" } else { "/x" }))]))],
            };
            let full = snapshot.decide_unsliced(&req).unwrap();
            let sliced = snapshot.decide(&req, crate::policy::OnPolicyError::Ignore);
            let mut full_reason: Vec<String> = full.diagnostics().reason().map(|p| p.to_string()).collect();
            full_reason.sort();
            let sliced_reason: Vec<String> = sliced.policies.iter().map(|p| p.id.clone()).collect();
            prop_assert_eq!(full.decision() == cedar_policy::Decision::Allow, sliced.is_allow());
            prop_assert_eq!(full_reason, sliced_reason);
            prop_assert_eq!(full.diagnostics().errors().count(), sliced.errors.len());
        }
    }
}
