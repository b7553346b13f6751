//! Policy slicing: evaluate, per request, only the policies whose scope can
//! match it.
//!
//! Cedar evaluates every policy it is given, at a roughly constant cost each,
//! so a full evaluation grows linearly with the policy count. A policy whose
//! principal scope is `== X`, `in G` or `is T` cannot match a request whose
//! principal is not X, not (in) G, not of type T; likewise for its action
//! scope. Such a policy is never satisfied and (scope being checked before the
//! condition) never errors, so leaving it out changes neither the decision nor
//! the diagnostics. What remains is the policies with an unconstrained
//! principal plus those scoped to the caller, its ancestor groups or its type.
//!
//! Slices are built once per distinct (matching scope keys, action) and cached
//! for the snapshot's lifetime, so principals that share their groups share
//! one slice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cedar_policy::{
    ActionConstraint, Entities, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet,
    PrincipalConstraint,
};

/// Distinct slices kept per snapshot.
const SLICE_CACHE_CAPACITY: u64 = 16_384;

/// A principal-scope index key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ScopeKey {
    /// `principal == uid`.
    Eq(EntityUid),
    /// `principal in uid` (or `is T in uid`).
    In(EntityUid),
    /// `principal is T`.
    Is(EntityTypeName),
}

/// The scope keys of one principal (with its ancestors) that some policy of
/// a slicer is indexed under, sorted: what selects its slices.
pub(crate) type ScopeKeys = Arc<[ScopeKey]>;

/// The policy index of one snapshot.
pub struct Slicer {
    /// Policies with an unconstrained principal.
    unscoped: Vec<PolicyId>,
    /// Policies by principal scope key.
    scoped: HashMap<ScopeKey, Vec<PolicyId>>,
    policies: HashMap<PolicyId, Policy>,
    cache: moka::sync::Cache<(ScopeKeys, EntityUid), Arc<PolicySet>>,
}

impl std::fmt::Debug for Slicer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slicer")
            .field("unscoped", &self.unscoped.len())
            .field("scoped", &self.scoped.len())
            .finish()
    }
}

// === impl Slicer ===

impl Slicer {
    /// Indexes a policy set.
    pub fn new(set: &PolicySet) -> Self {
        let mut unscoped = Vec::new();
        let mut scoped: HashMap<ScopeKey, Vec<PolicyId>> = HashMap::new();
        let mut policies = HashMap::new();
        for p in set.policies() {
            let id = p.id().clone();
            match p.principal_constraint() {
                PrincipalConstraint::Any => unscoped.push(id.clone()),
                PrincipalConstraint::Eq(uid) => scoped
                    .entry(ScopeKey::Eq(uid))
                    .or_default()
                    .push(id.clone()),
                // `is T in G` is indexed under `in G` and filtered by type below,
                // by Cedar itself (the slice may hold it; it just won't match).
                PrincipalConstraint::In(uid) | PrincipalConstraint::IsIn(_, uid) => scoped
                    .entry(ScopeKey::In(uid))
                    .or_default()
                    .push(id.clone()),
                PrincipalConstraint::Is(ty) => {
                    scoped.entry(ScopeKey::Is(ty)).or_default().push(id.clone())
                }
            }
            policies.insert(id, p.clone());
        }
        Self {
            unscoped,
            scoped,
            policies,
            cache: moka::sync::Cache::new(SLICE_CACHE_CAPACITY),
        }
    }

    /// The policies that can apply to `principal` (with all of its
    /// `ancestors`) doing `action`. `entities` supplies action groups.
    pub fn slice(
        &self,
        principal: &EntityUid,
        ancestors: &HashSet<EntityUid>,
        action: &EntityUid,
        entities: &Entities,
    ) -> Arc<PolicySet> {
        self.slice_for(&self.keys(principal, ancestors), action, entities)
    }

    /// The scope keys of `principal` (with all of its `ancestors`) that some
    /// policy is indexed under: a pure function of the principal and this
    /// slicer, so it can be kept with the principal's other parts.
    pub(crate) fn keys(&self, principal: &EntityUid, ancestors: &HashSet<EntityUid>) -> ScopeKeys {
        let mut keys: Vec<ScopeKey> = Vec::new();
        let mut consider = |k: ScopeKey| {
            if self.scoped.contains_key(&k) {
                keys.push(k);
            }
        };
        consider(ScopeKey::Eq(principal.clone()));
        consider(ScopeKey::In(principal.clone()));
        consider(ScopeKey::Is(principal.type_name().clone()));
        for a in ancestors {
            consider(ScopeKey::In(a.clone()));
        }
        keys.sort();
        keys.into()
    }

    /// [`Slicer::slice`] for a principal's [`Slicer::keys`].
    pub(crate) fn slice_for(
        &self,
        keys: &ScopeKeys,
        action: &EntityUid,
        entities: &Entities,
    ) -> Arc<PolicySet> {
        let cache_key = (keys.clone(), action.clone());
        if let Some(set) = self.cache.get(&cache_key) {
            return set;
        }
        let action_ancestors: HashSet<&EntityUid> = entities
            .ancestors(action)
            .map(|a| a.collect())
            .unwrap_or_default();
        let action_matches = |p: &Policy| match p.action_constraint() {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(a) => &a == action,
            ActionConstraint::In(list) => list
                .iter()
                .any(|a| a == action || action_ancestors.contains(a)),
        };
        let mut set = PolicySet::new();
        let ids = self.unscoped.iter().chain(
            cache_key
                .0
                .iter()
                .flat_map(|k| self.scoped.get(k).into_iter().flatten()),
        );
        let mut seen: HashSet<&PolicyId> = HashSet::new();
        for id in ids {
            if !seen.insert(id) {
                continue;
            }
            if let Some(p) = self.policies.get(id) {
                // INVARIANT: ids are unique within the snapshot, so `add` cannot fail.
                if action_matches(p) && set.add(p.clone()).is_err() {
                    tracing::error!(policy = %id, "duplicate policy id while slicing");
                }
            }
        }
        let set = Arc::new(set);
        self.cache.insert(cache_key, set.clone());
        set
    }
}

/// Policies whose principal is unconstrained but whose condition tests the
/// principal's membership (`principal in ...` inside `when`): they are
/// evaluated for every request; moving the test into the scope lets slicing
/// skip them.
pub fn unscoped_membership_tests(set: &PolicySet) -> Vec<PolicyId> {
    set.policies()
        .filter(|p| matches!(p.principal_constraint(), PrincipalConstraint::Any))
        .filter(|p| p.to_json().map(|j| tests_principal_in(&j)).unwrap_or(false))
        .map(|p| p.id().clone())
        .collect()
}

fn tests_principal_in(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(inner) = map.get("in")
                && inner.pointer("/left/Var").and_then(|x| x.as_str()) == Some("principal")
            {
                return true;
            }
            map.values().any(tests_principal_in)
        }
        serde_json::Value::Array(items) => items.iter().any(tests_principal_in),
        _ => false,
    }
}
