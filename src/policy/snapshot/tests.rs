use super::*;
use crate::vocab::{EntityType, PrincipalSpec, Value, builtin_uid};
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
        {"uid": {"type": "Route", "id": "/stored"}, "attrs": {}, "parents": []},
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

// === The per-principal and per-shape caches ===

/// A workload request with `groups` as credential parents and `path` in the
/// context (a `Value` of any kind, to reach invalid shapes too).
fn request(w: u8, groups: &[u8], action: &str, path: Value) -> AuthzRequest {
    AuthzRequest {
        principal: PrincipalSpec {
            uid: builtin_uid(EntityType::Workload, &workload(w)),
            attrs: vec![
                ("trust_domain".into(), Value::str("example.org")),
                ("path".into(), Value::str("/x")),
            ],
            parents: groups
                .iter()
                .map(|g| builtin_uid(EntityType::Group, &format!("g{g}")))
                .collect(),
        },
        extra: Vec::new(),
        action: builtin_uid(EntityType::Action, action),
        resource: builtin_uid(EntityType::Route, "/r"),
        context: vec![("request".into(), Value::Record(vec![("path".into(), path)]))],
    }
}

fn context_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::str("/v1/x")),
        Just(Value::str("/x")),
        Just(Value::Long(7)),
        Just(Value::Bool(true)),
        Just(Value::Set(vec![Value::str("/v1/x")])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// With the principal and shape caches warm (every request asked on one
    /// snapshot, principals and shapes repeating), every decision is the one
    /// the uncached path (Cedar validating the whole request, the principal's
    /// parts built anew) gives: effect, reason, policies and errors.
    #[test]
    fn cached_parts_equal_fresh(
        policies in proptest::collection::vec(policy_strategy(), 1..16),
        requests in proptest::collection::vec(
            (0u8..5, proptest::collection::vec(0u8..4, 0..3), 0u8..3, context_value(), 0u8..4),
            1..24,
        ),
    ) {
        let snapshot = load(&policies);
        for on_error in [OnPolicyError::Deny, OnPolicyError::Ignore] {
            for (w, groups, action, path, resource) in &requests {
                let action = ["http", "other", "chat"][*action as usize];
                let mut req = request(*w, groups, action, path.clone());
                // Stored and not, more than a principal keeps stores for.
                let resource = ["/r", "/stored", "/other", "/more"][*resource as usize];
                req.resource = builtin_uid(EntityType::Route, resource);
                let cached = snapshot.decide(&req, on_error);
                let fresh = snapshot.decide_fresh(&req, on_error);
                prop_assert_eq!(cached, fresh);
            }
        }
    }
}

use crate::policy::OnPolicyError;

const GROUP_POLICY: &str =
    r#"@id("g1-http") permit (principal in Group::"g1", action == Action::"http", resource);"#;

fn write_dir(dir: &std::path::Path, policy: &str, w0_group: &str, w0_attrs: serde_json::Value) {
    // Workloads may also carry a `tier` from entities.json (the other
    // attributes are derived from the SPIFFE id).
    let schema = SCHEMA.replace(
        "service_account?: String",
        "service_account?: String, tier?: String",
    );
    std::fs::write(dir.join("schema.cedarschema"), schema).unwrap();
    std::fs::write(dir.join("p.cedar"), policy).unwrap();
    let entities = serde_json::json!([
        {"uid": {"type": "Group", "id": "g0"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Group", "id": "g1"}, "attrs": {}, "parents": [{"type": "Group", "id": "g0"}]},
        {"uid": {"type": "Group", "id": "g2"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Workload", "id": workload(0)}, "attrs": w0_attrs,
         "parents": [{"type": "Group", "id": w0_group}]},
    ]);
    std::fs::write(dir.join("entities.json"), entities.to_string()).unwrap();
}

fn decide_on(store: &crate::policy::PolicyStore, req: &AuthzRequest) -> Decision {
    store.current().unwrap().decide(req, OnPolicyError::Deny)
}

/// `cache.principal_entities` reaches the store's snapshots: 0 keeps no
/// principal's parts and decides exactly as with them.
#[test]
fn principal_entities_bounds_the_parts_cache() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), GROUP_POLICY, "g1", serde_json::json!({}));
    let off = crate::policy::PolicyStore::new(dir.path()).with_principal_entities(0);
    let on = crate::policy::PolicyStore::new(dir.path());
    off.reload().unwrap();
    on.reload().unwrap();
    for (w, action) in [
        (0, "http"),
        (0, "http"),
        (1, "http"),
        (0, "other"),
        (2, "http"),
    ] {
        let req = request(w, &[], action, Value::str("/v1/x"));
        assert_eq!(decide_on(&off, &req), decide_on(&on, &req), "{w} {action}");
    }
    assert_eq!(off.current().unwrap().principals.entry_count(), 0);
    assert!(on.current().unwrap().principals.entry_count() > 0);
}

/// A reload that moves a principal to another group, changes a stored
/// attribute it is judged by, or changes a policy, bites on the very next
/// decision for that principal, though its parts were cached.
#[test]
fn reload_bites_on_cached_principal_parts() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::policy::PolicyStore::new(dir.path());
    let attrs = serde_json::json!({});
    write_dir(dir.path(), GROUP_POLICY, "g1", attrs.clone());
    store.reload().unwrap();
    let req = request(0, &[], "http", Value::str("/v1/x"));
    // Twice: the second decision uses the cached parts.
    assert!(decide_on(&store, &req).is_allow());
    assert!(decide_on(&store, &req).is_allow());
    assert_eq!(store.current().unwrap().principals.entry_count(), 1);

    // Parents: w0 leaves g1.
    write_dir(dir.path(), GROUP_POLICY, "g2", attrs.clone());
    store.reload().unwrap();
    assert_eq!(decide_on(&store, &req).reason, Reason::NoPermit);

    // Back in g1, but a policy now forbids by a stored attribute.
    let forbid = format!(
        "{GROUP_POLICY}\n@id(\"no-ns\") forbid (principal, action, resource) when {{ principal has tier && principal.tier == \"quarantine\" }};"
    );
    write_dir(dir.path(), &forbid, "g1", attrs);
    store.reload().unwrap();
    assert!(decide_on(&store, &req).is_allow());
    assert!(decide_on(&store, &req).is_allow());
    // The stored attribute changes: the forbid now matches.
    write_dir(
        dir.path(),
        &forbid,
        "g1",
        serde_json::json!({"tier": "quarantine"}),
    );
    store.reload().unwrap();
    assert_eq!(decide_on(&store, &req).reason, Reason::PolicyForbid);
    // The policy goes: allowed again.
    write_dir(
        dir.path(),
        GROUP_POLICY,
        "g1",
        serde_json::json!({"tier": "quarantine"}),
    );
    store.reload().unwrap();
    assert!(decide_on(&store, &req).is_allow());
}

/// Two principals with one uid but other credential parents (two tokens of one
/// subject with other groups) or other request-time attributes never share
/// cached parts.
#[test]
fn same_uid_other_credentials_never_share_parts() {
    let snapshot = load(&[
        GROUP_POLICY.to_owned(),
        r#"@id("ns") permit (principal, action == Action::"other", resource) when { principal has namespace && principal.namespace == "n1" };"#.to_owned(),
    ]);
    // w1 is in no stored group: only the credential's groups count.
    let in_g1 = request(1, &[1], "http", Value::str("/v1/x"));
    let no_groups = request(1, &[], "http", Value::str("/v1/x"));
    for _ in 0..2 {
        assert!(snapshot.decide(&in_g1, OnPolicyError::Deny).is_allow());
        assert_eq!(
            snapshot.decide(&no_groups, OnPolicyError::Deny).reason,
            Reason::NoPermit
        );
    }
    let with_ns = |ns: &str| {
        let mut r = request(1, &[], "other", Value::str("/v1/x"));
        r.principal.attrs.push(("namespace".into(), Value::str(ns)));
        r
    };
    for _ in 0..2 {
        assert!(
            snapshot
                .decide(&with_ns("n1"), OnPolicyError::Deny)
                .is_allow()
        );
        assert_eq!(
            snapshot.decide(&with_ns("n2"), OnPolicyError::Deny).reason,
            Reason::NoPermit
        );
    }
    assert_eq!(snapshot.principals.entry_count(), 4);
}

/// A context of a shape known valid is accepted; one of another shape is
/// refused with Cedar's own message, also after valid ones were seen.
#[test]
fn invalid_context_refused_after_valid_shapes() {
    let snapshot = load(&[GROUP_POLICY.to_owned()]);
    let valid = request(0, &[], "http", Value::str("/v1/x"));
    let invalid = request(0, &[], "http", Value::Long(1));
    assert!(snapshot.decide(&valid, OnPolicyError::Deny).is_allow());
    let refused = snapshot.decide(&invalid, OnPolicyError::Deny);
    assert_eq!(refused.reason, Reason::InvalidRequest);
    assert_eq!(
        refused,
        snapshot.decide_fresh(&invalid, OnPolicyError::Deny)
    );
    assert!(
        refused.errors[0].contains("context"),
        "{:?}",
        refused.errors
    );
    // Other values of the valid shape: still accepted.
    let other = request(0, &[], "http", Value::str("/somewhere/else"));
    assert_eq!(
        snapshot.decide(&other, OnPolicyError::Deny),
        snapshot.decide_fresh(&other, OnPolicyError::Deny)
    );
}

/// Enumerated entity types and actions keep their ids in a context's shape
/// (Cedar checks those ids); other entity types lose them.
#[test]
fn enumerated_and_action_ids_stay_in_the_shape() {
    let schema = r#"
entity Workload { trust_domain: String, path: String };
entity Route;
entity Color enum ["red", "green"];
type Ctx = { color: Color, who: Workload };
action http appliesTo { principal: [Workload], resource: [Route], context: Ctx };
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.cedarschema"), schema).unwrap();
    std::fs::write(
        dir.path().join("p.cedar"),
        r#"@id("all") permit (principal, action == Action::"http", resource);"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("entities.json"), "[]").unwrap();
    let snapshot = crate::policy::load_dir(dir.path(), 1).unwrap();
    let ctx = |color: &str, who: &str| {
        vec![
            (
                "color".to_owned(),
                Value::Entity(builtin_uid_of("Color", color)),
            ),
            (
                "who".to_owned(),
                Value::Entity(builtin_uid(EntityType::Workload, who)),
            ),
        ]
    };
    let act = |act: &str| {
        vec![(
            "act".to_owned(),
            Value::Entity(builtin_uid(EntityType::Action, act)),
        )]
    };
    let shape = |v: Vec<(String, Value)>| snapshot.shapes.shape_of(&Value::Record(v));
    assert_eq!(shape(ctx("red", "w1")), shape(ctx("red", "w2")));
    assert_ne!(shape(ctx("red", "w1")), shape(ctx("green", "w1")));
    assert_ne!(shape(act("http")), shape(act("nope")));
    let mut req = request(0, &[], "http", Value::str("/"));
    for (color, extra, allowed) in [
        ("red", None, true),
        ("blue", None, false),
        ("red", Some("nope"), false),
        ("red", Some("http"), false),
        ("green", None, true),
    ] {
        req.context = ctx(color, "w9");
        req.context.extend(extra.map(act).into_iter().flatten());
        let decided = snapshot.decide(&req, OnPolicyError::Deny);
        assert_eq!(
            decided.is_allow(),
            allowed,
            "{color} {extra:?}: {decided:?}"
        );
        assert_eq!(decided, snapshot.decide_fresh(&req, OnPolicyError::Deny));
    }
}

fn builtin_uid_of(ty: &str, id: &str) -> cedar_policy::EntityUid {
    cedar_policy::EntityUid::from_type_name_and_id(
        ty.parse().unwrap(),
        cedar_policy::EntityId::new(id),
    )
}
