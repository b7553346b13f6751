//! Unit and property tests: with the cache, decisions equal decisions without it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;
use crate::identity::spiffe::SpiffeId;
use crate::identity::{Identity, Workload, WorkloadSource};
use crate::policy::load_dir;
use crate::policy::reads::VOLATILE_CONTEXT;
use crate::vocab::{EntityType, builtin_uid};

const RESEARCH: &str = "spiffe://example.org/ns/agents/sa/research-agent";
const ROGUE: &str = "spiffe://example.org/ns/agents/sa/rogue-agent";
const QUARANTINED: &str = "spiffe://example.org/ns/agents/sa/quarantined-agent";
const NEWCOMER: &str = "spiffe://example.org/ns/agents/sa/new-agent";
const OTHER_NS: &str = "spiffe://example.org/ns/web/sa/frontend";

/// Policies a random set is drawn from.
const POOL: &[&str] = &[
    r#"@id("approved-api") permit (principal in Group::"approved-agents", action == Action::"http", resource) when { context.request.path like "/v1/*" };"#,
    r#"@id("forbid-quarantined") forbid (principal in Group::"quarantined", action, resource);"#,
    r#"@id("forbid-admin") forbid (principal, action == Action::"http", resource) when { context.request.path like "/admin*" };"#,
    r#"@id("anonymous-health") permit (principal, action == Action::"http", resource == Route::"/healthz") when { context.request.method == "GET" };"#,
    r#"@id("rogue-models") permit (principal == Workload::"spiffe://example.org/ns/agents/sa/rogue-agent", action, resource == Route::"/v1/models");"#,
    r#"@id("no-delete") forbid (principal, action, resource) when { context.request.method == "DELETE" };"#,
    r#"@id("agents-public") permit (principal is Workload, action, resource) when { principal has namespace && principal.namespace == "agents" && context.request.path like "/public/*" };"#,
    r#"@id("reads-time") forbid (principal, action, resource) when { context.request.time < datetime("2000-01-01") };"#,
    r#"@id("shadow-research") @shadow forbid (principal == Workload::"spiffe://example.org/ns/agents/sa/research-agent", action, resource) when { context.request.method == "POST" };"#,
    r#"@id("shadow-open") @shadow permit (principal, action, resource) when { context.request.path like "/public/*" };"#,
    r#"@id("agent-token-age") forbid (principal is Agent, action, resource) unless { context.auth has token_age_seconds && context.auth.token_age_seconds <= 60 };"#,
    r#"@id("overflows") forbid (principal, action, resource) when { context.request.path == "/boom" && 9223372036854775807 + 1 > 0 };"#,
];

const ENTITIES: &[&str] = &[
    r#"[{"uid": {"type": "Group", "id": "approved-agents"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Group", "id": "quarantined"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Workload", "id": "spiffe://example.org/ns/agents/sa/research-agent"}, "attrs": {}, "parents": [{"type": "Group", "id": "approved-agents"}]},
        {"uid": {"type": "Workload", "id": "spiffe://example.org/ns/agents/sa/quarantined-agent"}, "attrs": {}, "parents": [{"type": "Group", "id": "approved-agents"}, {"type": "Group", "id": "quarantined"}]}]"#,
    r#"[{"uid": {"type": "Group", "id": "approved-agents"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Group", "id": "quarantined"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Workload", "id": "spiffe://example.org/ns/agents/sa/rogue-agent"}, "attrs": {}, "parents": [{"type": "Group", "id": "approved-agents"}]},
        {"uid": {"type": "Workload", "id": "spiffe://example.org/ns/agents/sa/research-agent"}, "attrs": {}, "parents": [{"type": "Group", "id": "quarantined"}]}]"#,
];

fn snapshot(mask: u16, entities: usize, generation: u64) -> Snapshot {
    let dir = tempfile::tempdir().unwrap();
    let schema = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("cedar/schema.cedarschema"),
    )
    .unwrap();
    std::fs::write(dir.path().join("schema.cedarschema"), schema).unwrap();
    let policies: Vec<&str> = POOL
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, p)| *p)
        .collect();
    std::fs::write(dir.path().join("p.cedar"), policies.join("\n")).unwrap();
    std::fs::write(dir.path().join("entities.json"), ENTITIES[entities]).unwrap();
    load_dir(dir.path(), generation).unwrap()
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// The request the gate would build.
fn request(who: usize, path: usize, method: usize, id: usize, now: SystemTime) -> AuthzRequest {
    // 6 and 7: token subjects (an `Agent`, a `User`) behind the research
    // workload, whose token age varies with `id`.
    let principal = [
        None,
        Some(RESEARCH),
        Some(ROGUE),
        Some(QUARANTINED),
        Some(NEWCOMER),
        Some(OTHER_NS),
        Some(RESEARCH),
        Some(RESEARCH),
    ][who];
    let identity = Identity {
        workload: principal.map(|p| Workload {
            id: SpiffeId::parse(p).unwrap(),
            source: WorkloadSource::PeerPrincipal,
            not_after: None,
        }),
        token: None,
        api_key: None,
    };
    let path = [
        "/v1/models",
        "/admin/users",
        "/healthz",
        "/public/x",
        "/other",
        "/boom",
    ][path];
    let req = crate::wire::testkit::varied(method, path, id).unwrap();
    let op = crate::classify::http::classify(&req);
    let mut authz = crate::decide::question::authz_request(&req, &identity, &op, now);
    if principal == Some(NEWCOMER) {
        // Group membership carried by the credential (as a token's groups would be).
        authz.principal.parents = vec![builtin_uid(EntityType::Group, "approved-agents")];
    }
    if who >= 6 {
        let ty = if who == 6 { "Agent" } else { "User" };
        authz.principal = crate::vocab::PrincipalSpec {
            uid: crate::vocab::uid(ty, "subject-7").unwrap(),
            attrs: Vec::new(),
            parents: vec![builtin_uid(EntityType::Group, "approved-agents")],
        };
        for (name, value) in &mut authz.context {
            if let (true, Value::Record(auth)) = (name == "auth", value) {
                let age = [5, 60, 7200][id];
                auth.push(("token_age_seconds".to_owned(), Value::Long(age)));
            }
        }
    }
    authz
}

#[test]
fn repeated_question_hits_with_a_new_time_and_request_id() {
    let s = snapshot(0b111, 0, 1);
    let cache = DecisionCache::new(100, Duration::from_secs(60));
    let first = cache.decide(
        &s,
        &request(1, 0, 0, 0, t0()),
        OnPolicyError::Deny,
        None,
        t0(),
    );
    assert!(!first.cache_hit && first.decision.is_allow());
    let later = t0() + Duration::from_secs(5);
    let again = cache.decide(
        &s,
        &request(1, 0, 0, 1, later),
        OnPolicyError::Deny,
        None,
        later,
    );
    assert!(
        again.cache_hit,
        "time and request id are not read by any policy"
    );
    assert_eq!(again.decision, first.decision);
    // A different path is a different question.
    let other = cache.decide(
        &s,
        &request(1, 1, 0, 1, later),
        OnPolicyError::Deny,
        None,
        later,
    );
    assert!(!other.cache_hit);
}

#[test]
fn a_policy_reading_time_bypasses_the_cache() {
    let s = snapshot(0b1000_0001, 0, 1);
    assert_eq!(s.volatile_reads(), ["context.request.time"]);
    let cache = DecisionCache::new(100, Duration::from_secs(60));
    for _ in 0..2 {
        let d = cache.decide(
            &s,
            &request(1, 0, 0, 0, t0()),
            OnPolicyError::Deny,
            None,
            t0(),
        );
        assert!(!d.cache_hit);
    }
}

#[test]
fn errors_are_never_cached() {
    let s = snapshot(0b1000_0000_0001, 0, 1);
    let cache = DecisionCache::new(100, Duration::from_secs(60));
    for _ in 0..2 {
        let d = cache.decide(
            &s,
            &request(1, 5, 0, 0, t0()),
            OnPolicyError::Deny,
            None,
            t0(),
        );
        assert_eq!(d.decision.reason, Reason::PolicyError);
        assert!(!d.cache_hit);
    }
}

#[test]
fn an_entry_never_outlives_the_credential() {
    let s = snapshot(0b1, 0, 1);
    let cache = DecisionCache::new(100, Duration::from_secs(60));
    let until = Some(t0() + Duration::from_secs(10));
    let req = request(1, 0, 0, 0, t0());
    assert!(
        !cache
            .decide(&s, &req, OnPolicyError::Deny, until, t0())
            .cache_hit
    );
    let t = t0() + Duration::from_secs(9);
    assert!(
        cache
            .decide(&s, &req, OnPolicyError::Deny, until, t)
            .cache_hit
    );
    let t = t0() + Duration::from_secs(10);
    assert!(
        !cache
            .decide(&s, &req, OnPolicyError::Deny, until, t)
            .cache_hit
    );
}

#[test]
fn a_reload_empties_the_cache_and_old_snapshots_bypass_it() {
    let old = snapshot(0b1, 0, 1);
    let new = snapshot(0b1, 1, 2);
    let cache = DecisionCache::new(100, Duration::from_secs(60));
    let req = request(1, 0, 0, 0, t0());
    assert!(
        cache
            .decide(&old, &req, OnPolicyError::Deny, None, t0())
            .decision
            .is_allow()
    );
    let d = cache.decide(&new, &req, OnPolicyError::Deny, None, t0());
    assert!(
        !d.cache_hit && !d.decision.is_allow(),
        "revoked by the new entities"
    );
    let d = cache.decide(&old, &req, OnPolicyError::Deny, None, t0());
    assert!(
        !d.cache_hit && d.decision.is_allow(),
        "an in-flight old snapshot evaluates"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Check {
        who: usize,
        path: usize,
        method: usize,
        id: usize,
        valid_for: Option<u64>,
    },
    /// A request still holding the previous snapshot.
    CheckOld {
        who: usize,
        path: usize,
    },
    Advance(u64),
    Reload {
        set: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // A few hot questions, so that hits (and their expiry) are common.
        3 => (proptest::sample::select(vec![1usize, 2, 6, 7]), 0..2usize, 0..3usize, proptest::option::of(0..30u64))
            .prop_map(|(who, path, id, valid_for)| Op::Check { who, path, method: 0, id, valid_for }),
        3 => (0..8usize, 0..6usize, 0..3usize, 0..3usize, proptest::option::of(0..30u64))
            .prop_map(|(who, path, method, id, valid_for)| Op::Check { who, path, method, id, valid_for }),
        1 => (0..8usize, 0..6usize).prop_map(|(who, path)| Op::CheckOld { who, path }),
        1 => (1..20u64).prop_map(Op::Advance),
        1 => (0..3usize).prop_map(|set| Op::Reload { set }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn cached_decisions_equal_uncached_ones(
        sets in proptest::collection::vec((0u16..(1 << POOL.len()), 0..ENTITIES.len()), 3),
        ops in proptest::collection::vec(op(), 1..80),
        ignore_errors in any::<bool>(),
    ) {
        let on_error = if ignore_errors { OnPolicyError::Ignore } else { OnPolicyError::Deny };
        // Small capacity and TTL so eviction happens too.
        let cache = DecisionCache::new(8, Duration::from_secs(3600));
        let mut generation = 1;
        let mut current = snapshot(sets[0].0, sets[0].1, generation);
        let mut previous: Option<Snapshot> = None;
        let mut now = t0();
        for op in ops {
            match op {
                Op::Check { who, path, method, id, valid_for } => {
                    let req = request(who, path, method, id, now);
                    let valid_until = valid_for.map(|s| t0() + Duration::from_secs(s));
                    let got = cache.decide(&current, &req, on_error, valid_until, now);
                    let (want, want_shadow) = current.decide_with_shadow(&req, on_error);
                    prop_assert_eq!(&got.decision, &want);
                    prop_assert_eq!(&got.shadow, &want_shadow);
                    if got.cache_hit {
                        prop_assert!(valid_until.is_none_or(|t| now < t), "hit past the credential");
                        prop_assert!(got.decision.errors.is_empty());
                    }
                }
                Op::CheckOld { who, path } => {
                    if let Some(old) = &previous {
                        let req = request(who, path, 0, 0, now);
                        let got = cache.decide(old, &req, on_error, None, now);
                        prop_assert_eq!(got.decision, old.decide(&req, on_error));
                    }
                }
                Op::Advance(secs) => now += Duration::from_secs(secs),
                Op::Reload { set } => {
                    generation += 1;
                    let next = snapshot(sets[set].0, sets[set].1, generation);
                    previous = Some(std::mem::replace(&mut current, next));
                }
            }
        }
    }
}

#[test]
fn only_requests_carrying_a_read_volatile_value_bypass() {
    // The shipped guardrails read `context.auth.token_age_seconds`, for `Agent` principals.
    let shipped = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cedar"), 1).unwrap();
    assert_eq!(shipped.volatile_reads(), ["context.auth.token_age_seconds"]);
    let cache = DecisionCache::new(100, Duration::from_secs(60));
    let workload = request(1, 0, 0, 0, t0());
    let first = cache.decide(&shipped, &workload, OnPolicyError::Deny, None, t0());
    let again = cache.decide(&shipped, &workload, OnPolicyError::Deny, None, t0());
    assert!(!first.cache_hit && again.cache_hit, "no token: cached");

    // A token subject whose requests carry the token's age.
    let token_caller = |ty: &str, age: i64| {
        let mut req = workload.clone();
        req.principal.uid = crate::vocab::uid(ty, "subject-7").unwrap();
        req.principal.attrs.clear();
        req.principal.parents = vec![builtin_uid(EntityType::Group, "approved-agents")];
        for (name, value) in &mut req.context {
            if let (true, Value::Record(auth)) = (name == "auth", value) {
                auth.push(("token_age_seconds".to_owned(), Value::Long(age)));
            }
        }
        req
    };
    let agent = token_caller("Agent", 5);
    assert!(carries(&agent.context, "context.auth.token_age_seconds"));
    for _ in 0..2 {
        let d = cache.decide(&shipped, &agent, OnPolicyError::Deny, None, t0());
        assert!(!d.cache_hit, "an agent token's age is read: never cached");
        assert_eq!(d.decision, shipped.decide(&agent, OnPolicyError::Deny));
    }
    // No policy that applies to a `User` reads the age: cached across ages.
    let user = token_caller("User", 5);
    let older = token_caller("User", 7200);
    let d = cache.decide(&shipped, &user, OnPolicyError::Deny, None, t0());
    assert!(!d.cache_hit);
    let d = cache.decide(&shipped, &older, OnPolicyError::Deny, None, t0());
    assert!(d.cache_hit, "the age is not part of a user's decision");
    assert_eq!(d.decision, shipped.decide(&older, OnPolicyError::Deny));
}

#[test]
fn volatile_groups_are_the_volatile_context() {
    let mut got: Vec<String> = VOLATILE_GROUPS
        .iter()
        .flat_map(|(record, leaves)| leaves.iter().map(move |leaf| format!("{record}.{leaf}")))
        .collect();
    let mut expected: Vec<String> = VOLATILE_CONTEXT.iter().map(|p| (*p).to_owned()).collect();
    expected.sort();
    got.sort();
    assert_eq!(
        got, expected,
        "VOLATILE_GROUPS must list exactly VOLATILE_CONTEXT"
    );
}
