//! The store built without closure is the store Cedar's closure builds, and
//! decides the same, on random stored hierarchies and principals (the shapes
//! where closure matters included: stored entities below an own uid, own
//! entities below one another, cycles through the request's entities, stored
//! hierarchies that are not closed or are cyclic).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{Entity, EntityUid, PolicySet, RestrictedExpression, Schema};
use proptest::prelude::*;

use super::*;
use crate::policy::OnPolicyError;
use crate::policy::snapshot::principal::{PrincipalParts, Stored, own_entity, own_entity_by_expr};
use crate::policy::snapshot::{Parts, Snapshot};
use crate::vocab::{AuthzRequest, PrincipalSpec, Value};

const SCHEMA: &str = r#"
entity Node in [Node] { tag?: String, link?: Node } tags String;
entity Res in [Node] { owner?: Node };
action "grp";
action act appliesTo { principal: [Node], resource: [Res, Node], context: {} };
action sub in ["grp"] appliesTo { principal: [Node], resource: [Res, Node], context: {} };
"#;

/// Node ids `n0`..`n7`: the stored graphs use `n0`..`n5`, so `n6` and `n7`
/// are never stored.
const NODES: u8 = 8;

fn uid(ty: &str, id: String) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.parse().unwrap(), cedar_policy::EntityId::new(id))
}

fn node(i: u8) -> EntityUid {
    uid("Node", format!("n{i}"))
}

fn res(i: u8) -> EntityUid {
    uid("Res", format!("r{i}"))
}

/// One stored entity: its parents (node indexes, repeats allowed), its tag
/// and the node it links to (`owner` for a `Res`).
#[derive(Debug, Clone)]
struct StoredSpec {
    parents: Vec<u8>,
    tag: Option<bool>,
    link: Option<u8>,
}

fn stored_spec() -> impl Strategy<Value = Option<StoredSpec>> {
    let spec = (
        proptest::collection::vec(0..NODES, 0..3),
        proptest::option::of(any::<bool>()),
        proptest::option::of(0..NODES),
    )
        .prop_map(|(parents, tag, link)| StoredSpec { parents, tag, link });
    proptest::option::weighted(0.8, spec)
}

fn tag(t: bool) -> &'static str {
    if t { "x" } else { "y" }
}

fn stored_entity(uid: EntityUid, spec: &StoredSpec, link_attr: &str) -> Entity {
    let mut attrs = HashMap::new();
    if let Some(t) = spec.tag.filter(|_| link_attr == "link") {
        attrs.insert(
            "tag".to_owned(),
            RestrictedExpression::new_string(tag(t).into()),
        );
    }
    if let Some(l) = spec.link {
        attrs.insert(
            link_attr.to_owned(),
            RestrictedExpression::new_entity_uid(node(l)),
        );
    }
    let parents: HashSet<EntityUid> = spec.parents.iter().map(|p| node(*p)).collect();
    // A node's tag is a Cedar tag too (own entities keep their stored tags).
    let tags = attrs.get("tag").map(|t| ("t".to_owned(), t.clone()));
    Entity::new_with_tags(uid, attrs, parents, tags).unwrap()
}

/// The snapshot's store: closed by Cedar when `close` (and the graph has no
/// cycle), else the parents as given (maybe not closed, maybe cyclic).
fn stored(
    schema: &Schema,
    nodes: &[Option<StoredSpec>],
    resources: &[Option<StoredSpec>],
    close: bool,
) -> Entities {
    let mut list: Vec<Entity> = Vec::new();
    for (i, spec) in nodes.iter().enumerate() {
        if let Some(spec) = spec {
            list.push(stored_entity(node(i as u8), spec, "link"));
        }
    }
    for (i, spec) in resources.iter().enumerate() {
        if let Some(spec) = spec {
            list.push(stored_entity(res(i as u8), spec, "owner"));
        }
    }
    if close && let Ok(closed) = Entities::from_entities(list.clone(), Some(schema)) {
        return closed;
    }
    let actions = schema.action_entities().unwrap();
    let all = list
        .into_iter()
        .chain(actions)
        .map(|e| Arc::new(AsRef::<ast::Entity>::as_ref(&e).clone()));
    let raw = core::Entities::new()
        .add_entities(
            all,
            None::<&NoEntitiesSchema>,
            TCComputation::AssumeAlreadyComputed,
            Extensions::all_available(),
        )
        .unwrap();
    Entities::from(raw)
}

const POLICIES: &[&str] = &[
    r#"permit (principal in Node::"n{g}", action, resource);"#,
    r#"permit (principal, action, resource in Node::"n{g}");"#,
    r#"forbid (principal, action, resource) when { resource in principal };"#,
    r#"permit (principal, action, resource) when { principal in resource };"#,
    r#"permit (principal, action, resource) when { principal has link && principal.link in Node::"n{g}" };"#,
    r#"permit (principal, action in Action::"grp", resource) when { resource has owner && resource.owner in principal };"#,
    r#"forbid (principal in Node::"n{g}", action, resource) when { principal has tag && principal.tag == "x" };"#,
    r#"permit (principal, action, resource) when { Node::"n{g}".tag == "x" };"#,
    r#"forbid (principal, action == Action::"sub", resource is Res) when { resource in Node::"n{g}" };"#,
    r#"forbid (principal in Node::"n{g}", action, resource) when { principal.hasTag("t") && principal.getTag("t") == "x" };"#,
];

fn policies() -> impl Strategy<Value = String> {
    proptest::collection::vec((0..POLICIES.len(), 0..NODES), 1..6).prop_map(|ps| {
        ps.iter()
            .map(|(p, g)| POLICIES[*p].replace("{g}", &g.to_string()))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn snapshot(
    nodes: &[Option<StoredSpec>],
    res: &[Option<StoredSpec>],
    close: bool,
    policies: &str,
) -> Snapshot {
    let schema = Schema::from_str(SCHEMA).unwrap();
    let entities = stored(&schema, nodes, res, close);
    let parts = Parts {
        policies: PolicySet::from_str(policies).unwrap(),
        schema,
        entities,
        hash: String::new(),
        warnings: Vec::new(),
    };
    Snapshot::new(parts, 1, 10_000)
}

/// A principal or an entity the request brings: node, request-time parents,
/// tag and link.
fn principal_spec() -> impl Strategy<Value = PrincipalSpec> {
    (
        0..NODES,
        proptest::collection::vec(0..NODES, 0..3),
        proptest::option::of(any::<bool>()),
        proptest::option::of(0..NODES),
    )
        .prop_map(|(n, parents, t, link)| {
            let mut attrs = Vec::new();
            if let Some(t) = t {
                attrs.push(("tag".to_owned(), Value::str(tag(t))));
            }
            if let Some(l) = link {
                attrs.push(("link".to_owned(), Value::Entity(node(l))));
            }
            PrincipalSpec {
                uid: node(n),
                attrs,
                parents: parents.into_iter().map(node).collect(),
            }
        })
}

fn request() -> impl Strategy<Value = AuthzRequest> {
    (
        principal_spec(),
        proptest::collection::vec(principal_spec(), 0..3),
        any::<bool>(),
        prop_oneof![(0..NODES).prop_map(node), (0u8..3).prop_map(res)],
    )
        .prop_map(|(principal, extra, sub, resource)| AuthzRequest {
            principal,
            extra,
            action: uid("Action", if sub { "sub" } else { "act" }.to_owned()),
            resource,
            context: Vec::new(),
        })
}

/// The request's store as it was always built: every entity through
/// `cedar_policy::Entities::from_entities`, with Cedar's closure.
fn closed_by_cedar(list: &[Arc<ast::Entity>]) -> Result<Entities, String> {
    let list = list.iter().map(|e| Entity::from(ast::Entity::clone(e)));
    Entities::from_entities(list, None).map_err(|e| format!("entities: {e}"))
}

/// Every entity's ancestors, attributes and tags, as sets.
fn same_store(ours: &core::Entities, cedar: &core::Entities) -> bool {
    ours.deep_eq(cedar)
        && ours.iter().all(|e| {
            let ancestors = |e: &ast::Entity| e.ancestors().cloned().collect::<HashSet<_>>();
            let theirs = cedar.entity(e.uid());
            matches!(theirs, core::Dereference::Data(t) if ancestors(t) == ancestors(e))
        })
}

/// What `snapshot`'s principal parts are built from (no shadow slicer).
fn stored_in(snapshot: &Snapshot) -> Stored<'_> {
    Stored {
        entities: &snapshot.entities,
        reach: &snapshot.reach,
        slicer: &snapshot.slicer,
        shadow: None,
        shared: &snapshot.shared,
        hierarchy: &snapshot.hierarchy,
    }
}

/// Checks one request on `snapshot`: the store equals Cedar's (or fails with
/// its error), and the decision equals the uncached oracle's.
fn check(snapshot: &Snapshot, req: &AuthzRequest) -> Result<(), TestCaseError> {
    let stored = stored_in(snapshot);
    if let Ok(parts) = PrincipalParts::build(&stored, &req.principal, &req.extra) {
        let (list, _) = snapshot.store_entities(req, &parts);
        let ours = snapshot.build_entities(req, &parts);
        match (ours, closed_by_cedar(&list)) {
            (Ok(ours), Ok(cedar)) => prop_assert!(
                same_store(&ours, cedar.as_ref()),
                "ours:\n{ours}\ncedar's:\n{}",
                cedar.as_ref()
            ),
            (Err(ours), Err(cedar)) => prop_assert_eq!(ours, cedar),
            (ours, cedar) => prop_assert!(false, "ours: {ours:?}\ncedar's: {cedar:?}"),
        }
    }
    for on_error in [OnPolicyError::Deny, OnPolicyError::Ignore] {
        // Twice: the second finds the principal's parts and store cached.
        for _ in 0..2 {
            prop_assert_eq!(
                snapshot.decide(req, on_error),
                snapshot.decide_fresh(req, on_error)
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    /// Without closure where it adds nothing, with it elsewhere: the same
    /// store (or the same error) and the same decisions as always closing.
    #[test]
    fn store_equals_cedars_closure(
        nodes in proptest::collection::vec(stored_spec(), 6),
        resources in proptest::collection::vec(stored_spec(), 2),
        close in proptest::bool::weighted(0.8),
        policies in policies(),
        requests in proptest::collection::vec(request(), 1..8),
    ) {
        let snapshot = snapshot(&nodes, &resources, close, &policies);
        for req in &requests {
            check(&snapshot, req)?;
        }
    }
}

fn parts(snapshot: &Snapshot, req: &AuthzRequest) -> PrincipalParts {
    let stored = stored_in(snapshot);
    PrincipalParts::build(&stored, &req.principal, &req.extra).unwrap()
}

fn in_nodes(parents: &[u8]) -> Option<StoredSpec> {
    Some(StoredSpec {
        parents: parents.to_vec(),
        tag: None,
        link: None,
    })
}

/// `n0` (think `Agent::"a"`) with `n1` (a tool) in it, `n2` in nothing, and a
/// request for principal `n0` with the request-time parent `n5`, about `res`.
fn agent_request(res: u8, parents: &[u8]) -> (Snapshot, AuthzRequest) {
    let nodes = [
        in_nodes(&[]),
        in_nodes(&[0]),
        in_nodes(&[]),
        None,
        None,
        None,
    ];
    let policy = r#"permit (principal, action, resource in Node::"n5");"#;
    let snapshot = snapshot(&nodes, &[], true, policy);
    let req = AuthzRequest {
        principal: PrincipalSpec {
            uid: node(0),
            attrs: Vec::new(),
            parents: parents.iter().copied().map(node).collect(),
        },
        extra: Vec::new(),
        action: uid("Action", "act".to_owned()),
        resource: node(res),
        context: Vec::new(),
    };
    (snapshot, req)
}

/// A stored entity below the principal gets the principal's request-time
/// parents as ancestors, as Cedar's closure gives them: that store is closed
/// by Cedar; one without such an entity is built as is.
#[test]
fn stored_entity_below_an_own_uid_is_closed_by_cedar() {
    let (snapshot, req) = agent_request(1, &[5]);
    let parts = parts(&snapshot, &req);
    assert!(parts.closed);
    assert_eq!(parts.below, vec![node(0)]);
    assert!(!snapshot.store_entities(&req, &parts).1);
    let store = snapshot.build_entities(&req, &parts).unwrap();
    let tool = match store.entity(node(1).as_ref()) {
        core::Dereference::Data(tool) => tool,
        _ => panic!("no tool in {store}"),
    };
    assert!(tool.is_descendant_of(node(5).as_ref()));
    assert!(snapshot.decide(&req, OnPolicyError::Deny).is_allow());

    let (snapshot, req) = agent_request(2, &[5]);
    let parts = self::parts(&snapshot, &req);
    assert!(snapshot.store_entities(&req, &parts).1);
}

/// A cycle through the request's own entity (`n1` in `n0` stored, `n0` in
/// `n1` from the request) is refused, as Cedar's closure refuses it.
#[test]
fn cycle_through_an_own_uid_is_refused() {
    let (snapshot, req) = agent_request(2, &[1]);
    let parts = parts(&snapshot, &req);
    assert!(!parts.closed);
    let refused = snapshot.decide(&req, OnPolicyError::Deny);
    assert_eq!(refused.reason, crate::vocab::Reason::InvalidRequest);
    assert!(
        refused.errors[0].contains("transitive closure"),
        "{:?}",
        refused.errors
    );
    assert_eq!(refused, snapshot.decide_fresh(&req, OnPolicyError::Deny));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    /// A request's own entity built from values is the one cedar-policy's
    /// `Entity::new` builds from expressions (stored attributes under the
    /// request's, any kind of value), or fails with its error.
    #[test]
    fn own_entity_equals_cedars(
        nodes in proptest::collection::vec(stored_spec(), 6),
        spec in principal_spec(),
        more in proptest::collection::vec(("[a-z]{1,2}|tag|link", crate::policy::snapshot::context::tests::value()), 0..4),
    ) {
        let snapshot = snapshot(&nodes, &[], true, r#"permit (principal, action, resource);"#);
        let stored = stored_in(&snapshot);
        let mut spec = spec;
        spec.attrs.extend(more);
        let ours = own_entity(&stored, &spec, &mut Vec::new()).map(|(e, _)| e);
        match (ours, own_entity_by_expr(&stored, &spec)) {
            (Ok(ours), Ok(cedar)) => {
                let ancestors = |e: &ast::Entity| e.ancestors().cloned().collect::<HashSet<_>>();
                prop_assert!(ours.deep_eq(&cedar), "ours: {ours:?}\ncedar's: {cedar:?}");
                prop_assert_eq!(ancestors(&ours), ancestors(&cedar));
            }
            // With two refused attributes, which one Cedar names depends on
            // the order of its `HashMap`, on either path.
            (Err(ours), Err(cedar)) => {
                let about = format!("entity `{}`: in attribute `", spec.uid);
                prop_assert!(ours == cedar || (ours.starts_with(&about) && cedar.starts_with(&about)), "ours: {ours}\ncedar's: {cedar}");
            }
            (ours, cedar) => prop_assert!(false, "ours: {ours:?}\ncedar's: {cedar:?}"),
        }
    }
}
