//! One immutable policy snapshot: schema + policies + entities + generation.
//!
//! Per request, Cedar gets a *small* entity store (the principal, its
//! ancestors, the resource and the action, plus whatever those can reach)
//! instead of a clone of the whole store, which would cost time linear in the
//! number of entities. That store is complete by construction: every entity a
//! policy can reach from the request is in it (see [`Snapshot::reach`]).

mod context;
mod principal;
mod shape;
mod store;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use cedar_policy::{
    Authorizer, Context, Entities, EntityUid, PolicyId, PolicySet, Request, RequestValidationError,
    Schema,
};
use cedar_policy_core::ast;
use ref_cast::RefCast;

use crate::policy::OnPolicyError;
use crate::policy::diagnostic::Diagnostic;
use crate::policy::slice::{ScopeKeys, Slicer};
use crate::vocab::{AuthzRequest, Decision, DeterminingPolicy, Effect, Reason};
use principal::{PrincipalCache, PrincipalParts, Stored};
use shape::Shapes;
use store::{Hierarchy, Shared, Store};

/// A loaded, validated policy directory. Never mutated after construction;
/// reloads build a new one and swap it in whole.
pub struct Snapshot {
    schema: Schema,
    /// The enforced policies (every policy without `@shadow`).
    policies: PolicySet,
    /// Enforced ∪ `@shadow` policies, when there is at least one shadow
    /// policy, with its own slicer.
    shadow: Option<(PolicySet, Slicer)>,
    /// Volatile context paths some policy reads (see [`crate::policy::reads`]).
    volatile_reads: Vec<String>,
    /// The same, with the principal type each reading policy is limited to.
    volatile_scoped: Vec<crate::policy::reads::VolatileRead>,
    entities: Entities,
    /// For each stored entity: every other stored entity reachable from it
    /// through parents or entity-typed attributes, transitively.
    reach: HashMap<EntityUid, Vec<EntityUid>>,
    /// The stored entities, shared with the request stores.
    shared: Shared,
    /// Whether request stores may skip Cedar's closure (see [`store`]).
    hierarchy: Hierarchy,
    /// Entities that policies name literally and dereference
    /// (`Group::"x".owner`), with their reach: needed by every request.
    always: Vec<EntityUid>,
    info: HashMap<PolicyId, Arc<DeterminingPolicy>>,
    slicer: Slicer,
    /// Each principal's entities, ancestors and slice keys, computed once
    /// for this snapshot (see [`principal`]).
    principals: PrincipalCache,
    /// Context shapes known valid for an action (see [`shape`]).
    shapes: Shapes,
    authorizer: Authorizer,
    /// Monotonic number of this snapshot within the process (1 = first load).
    pub generation: u64,
    /// SHA-256 over the policy directory's files (names and contents),
    /// shared with every decision's outcome.
    pub hash: Arc<str>,
    /// When this snapshot was built.
    pub loaded_at: SystemTime,
    /// Validator warnings and lint findings; the snapshot is usable regardless.
    pub warnings: Vec<Diagnostic>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation)
            .field("hash", &self.hash)
            .field("policies", &self.policy_count())
            .finish_non_exhaustive()
    }
}

/// The parts a snapshot is built from (already parsed and validated).
pub(crate) struct Parts {
    pub schema: Schema,
    pub policies: PolicySet,
    pub entities: Entities,
    pub hash: String,
    pub warnings: Vec<Diagnostic>,
}

// === impl Snapshot ===

impl Snapshot {
    /// A snapshot of `parts`; its per-principal caches hold at most
    /// `principal_entities` entities (`cache.principal_entities`).
    pub(crate) fn new(parts: Parts, generation: u64, principal_entities: u64) -> Self {
        let Parts {
            schema,
            policies,
            entities,
            hash,
            warnings,
        } = parts;
        let (entities, shared) = store::share(entities);
        let reach = reach_map(&entities);
        let hierarchy = Hierarchy::new(&entities);
        let (policies, shadow) = split_shadow(policies);
        let volatile_scoped = crate::policy::reads::scoped_volatile_reads(
            shadow.as_ref().unwrap_or(&policies).policies(),
        );
        let mut volatile_reads: Vec<String> =
            volatile_scoped.iter().map(|r| r.path.clone()).collect();
        volatile_reads.sort();
        volatile_reads.dedup();
        let slicer = Slicer::new(&policies);
        let mut always: Vec<EntityUid> = Vec::new();
        let mut info = HashMap::new();
        for policy in shadow.as_ref().unwrap_or(&policies).policies() {
            let mut annotations = std::collections::BTreeMap::new();
            for (k, v) in policy.annotations() {
                if k != "id" {
                    annotations.insert(k.to_owned(), v.to_owned());
                }
            }
            info.insert(
                policy.id().clone(),
                Arc::new(DeterminingPolicy::new(policy.id().to_string(), annotations)),
            );
            if let Ok(json) = policy.to_json() {
                collect_dereferenced_literals(&json, false, &mut always);
            }
        }
        let mut seen: HashSet<EntityUid> = HashSet::new();
        let mut closed = Vec::new();
        for uid in always {
            if entities.get(&uid).is_none() {
                continue;
            }
            for u in std::iter::once(&uid).chain(reach.get(&uid).into_iter().flatten()) {
                if seen.insert(u.clone()) {
                    closed.push(u.clone());
                }
            }
        }
        let shadow = shadow.map(|set| {
            let slicer = Slicer::new(&set);
            (set, slicer)
        });
        let shapes = Shapes::new(&schema, shape::SHAPE_CACHE_CAPACITY);
        Self {
            schema,
            policies,
            shadow,
            volatile_reads,
            volatile_scoped,
            entities,
            reach,
            shared,
            hierarchy,
            always: closed,
            info,
            slicer,
            principals: PrincipalCache::new(principal_entities),
            shapes,
            authorizer: Authorizer::new(),
            generation,
            hash: hash.into(),
            loaded_at: SystemTime::now(),
            warnings,
        }
    }

    /// This snapshot as the metrics see it.
    pub fn figures(&self) -> crate::record::metrics::SnapshotFigures {
        crate::record::metrics::SnapshotFigures {
            generation: self.generation,
            policies: self.policy_count(),
            shadow_policies: self.shadow_count(),
            shadow_actions: match self.shadow_count() {
                0 => Vec::new(),
                _ => (self.schema().actions())
                    .map(|a| a.id().unescaped().to_owned())
                    .collect(),
            },
            loaded_at: self.loaded_at,
        }
    }

    /// Number of policies in force.
    pub fn policy_count(&self) -> usize {
        self.policies.policies().count()
    }

    /// Number of `@shadow` policies (evaluated next to the enforced set, never enforced).
    pub fn shadow_count(&self) -> usize {
        self.shadow
            .as_ref()
            .map_or(0, |(s, _)| s.policies().count() - self.policy_count())
    }

    /// Volatile context paths (for example `context.request.time`) that some
    /// policy reads; empty when decisions do not depend on them.
    pub fn volatile_reads(&self) -> &[String] {
        &self.volatile_reads
    }

    /// The volatile context paths that policies applicable to a principal of
    /// `principal`'s type read (a decision for it can depend on no other).
    pub fn volatile_reads_for<'a>(
        &'a self,
        principal: &'a EntityUid,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.volatile_scoped
            .iter()
            .filter(|r| {
                r.principal_type
                    .as_ref()
                    .is_none_or(|t| t == principal.type_name())
            })
            .map(|r| r.path.as_str())
    }

    /// The enforced policies (without `@shadow` ones), for offline analysis.
    pub fn policy_set(&self) -> &PolicySet {
        &self.policies
    }

    /// Enforced ∪ `@shadow` policies, when there is at least one shadow policy.
    pub fn shadow_policy_set(&self) -> Option<&PolicySet> {
        self.shadow.as_ref().map(|(set, _)| set)
    }

    /// The schema in force.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The stored entities (from `entities.json`, plus the schema's actions).
    pub fn entities(&self) -> &Entities {
        &self.entities
    }

    /// Decides one request. Never panics; problems become a deny with a reason.
    pub fn decide(&self, req: &AuthzRequest, on_error: OnPolicyError) -> Decision {
        match self.prepare(req) {
            Ok(prepared) => {
                let keys = &prepared.parts.keys;
                self.judge((&self.slicer, keys), req, &prepared, on_error)
            }
            Err(decision) => decision,
        }
    }

    /// Decides one request with the enforced set and, when the snapshot has
    /// `@shadow` policies, with enforced ∪ shadow too (same Cedar request and
    /// entities, built once). The first decision is the one enforced.
    pub fn decide_with_shadow(
        &self,
        req: &AuthzRequest,
        on_error: OnPolicyError,
    ) -> (Decision, Option<Decision>) {
        match self.prepare(req) {
            Ok(prepared) => {
                let keys = &prepared.parts.keys;
                let shadow = match (&self.shadow, &prepared.parts.shadow_keys) {
                    (Some((_, slicer)), Some(keys)) => {
                        Some(self.judge((slicer, keys), req, &prepared, on_error))
                    }
                    _ => None,
                };
                (
                    self.judge((&self.slicer, keys), req, &prepared, on_error),
                    shadow,
                )
            }
            // Not a question of policies: the shadow set would answer the same.
            Err(decision) => {
                let shadow = self.shadow.as_ref().map(|_| decision.clone());
                (decision, shadow)
            }
        }
    }

    /// The Cedar request, the small entity store and the principal's
    /// ancestors, or the decision that makes evaluation moot.
    fn prepare(&self, req: &AuthzRequest) -> Result<Prepared, Decision> {
        let request = match self.cedar_request(req) {
            Ok(r) => r,
            Err(RequestError::NotApplicable) => {
                return Err(Decision::deny(Reason::NoPermit, Vec::new()));
            }
            Err(RequestError::Invalid(msg)) => {
                return Err(Decision::deny(Reason::InvalidRequest, vec![msg]));
            }
        };
        let invalid = |msg| Decision::deny(Reason::InvalidRequest, vec![msg]);
        let parts = self.principal_parts(req).map_err(invalid)?;
        let entities = self.request_entities(req, &parts).map_err(invalid)?;
        Ok(Prepared {
            request,
            entities,
            parts,
        })
    }

    /// The principal's parts, computed once per snapshot and principal.
    fn principal_parts(&self, req: &AuthzRequest) -> Result<Arc<PrincipalParts>, String> {
        let stored = Stored {
            entities: &self.entities,
            reach: &self.reach,
            slicer: &self.slicer,
            shadow: self.shadow.as_ref().map(|(_, slicer)| slicer),
            shared: &self.shared,
            hierarchy: &self.hierarchy,
        };
        self.principals.get(&stored, &req.principal, &req.extra)
    }

    fn judge(
        &self,
        (slicer, keys): (&Slicer, &ScopeKeys),
        req: &AuthzRequest,
        prepared: &Prepared,
        on_error: OnPolicyError,
    ) -> Decision {
        let Prepared {
            request, entities, ..
        } = prepared;
        let slice = slicer.slice_for(keys, &req.action, &self.entities);
        let entities = Entities::ref_cast(entities);
        let response = self.authorizer.is_authorized(request, &slice, entities);
        let diagnostics = response.diagnostics();
        let errors: Vec<String> = diagnostics.errors().map(|e| e.to_string()).collect();
        let mut policies: Vec<Arc<DeterminingPolicy>> = diagnostics
            .reason()
            .filter_map(|id| self.info.get(id).cloned())
            .collect();
        policies.sort_by(|a, b| a.id.cmp(&b.id));
        let (effect, reason) = match response.decision() {
            cedar_policy::Decision::Allow => (Effect::Allow, Reason::PolicyPermit),
            cedar_policy::Decision::Deny if policies.is_empty() => (Effect::Deny, Reason::NoPermit),
            cedar_policy::Decision::Deny => (Effect::Deny, Reason::PolicyForbid),
        };
        if !errors.is_empty() && on_error == OnPolicyError::Deny && reason != Reason::PolicyForbid {
            // Fail closed: an erroring forbid was skipped by Cedar, so an allow
            // (or even a default deny) cannot be trusted to be the real answer.
            return Decision {
                effect: Effect::Deny,
                reason: Reason::PolicyError,
                policies: Vec::new(),
                errors,
            };
        }
        Decision {
            effect,
            reason,
            policies,
            errors,
        }
    }

    fn cedar_request(&self, req: &AuthzRequest) -> Result<Request, RequestError> {
        let context = cedar_context(req)?;
        let (principal, action, resource) = (&req.principal.uid, &req.action, &req.resource);
        // What `Request::new` checks with a schema, in its order: the scope
        // (cheap), then the context (by shape, see [`shape`]).
        cedar_policy::validate_scope_variables(principal, action, resource, &self.schema)
            .map_err(not_valid)?;
        self.shapes
            .validate(&self.schema, action, &req.context, &context)
            .map_err(|e| not_valid(*e))?;
        Request::new(
            principal.clone(),
            action.clone(),
            resource.clone(),
            context,
            None,
        )
        .map_err(not_valid)
    }

    /// [`Snapshot::decide`] as it was before any per-principal or per-shape
    /// cache: the request validated whole by Cedar, the principal's parts built
    /// anew (the oracle of the cache equivalence tests).
    #[cfg(test)]
    fn decide_fresh(&self, req: &AuthzRequest, on_error: OnPolicyError) -> Decision {
        let request = context_by_expr(req).and_then(|context| {
            Request::new(
                req.principal.uid.clone(),
                req.action.clone(),
                req.resource.clone(),
                context,
                Some(&self.schema),
            )
            .map_err(not_valid)
        });
        let request = match request {
            Ok(r) => r,
            Err(RequestError::NotApplicable) => {
                return Decision::deny(Reason::NoPermit, Vec::new());
            }
            Err(RequestError::Invalid(msg)) => {
                return Decision::deny(Reason::InvalidRequest, vec![msg]);
            }
        };
        let stored = Stored {
            entities: &self.entities,
            reach: &self.reach,
            slicer: &self.slicer,
            shadow: None,
            shared: &self.shared,
            hierarchy: &self.hierarchy,
        };
        let parts = match PrincipalParts::build(&stored, &req.principal, &req.extra) {
            Ok(parts) => Arc::new(parts),
            Err(msg) => return Decision::deny(Reason::InvalidRequest, vec![msg]),
        };
        // Always with Cedar's closure, as every store was built before.
        let (list, _) = self.store_entities(req, &parts);
        let entities = match store::build(list, false) {
            Ok(e) => e,
            Err(msg) => return Decision::deny(Reason::InvalidRequest, vec![msg]),
        };
        let keys = parts.keys.clone();
        let prepared = Prepared {
            request,
            entities,
            parts,
        };
        self.judge((&self.slicer, &keys), req, &prepared, on_error)
    }
}

/// The Cedar context of `req`: built directly ([`context::direct`]), or by
/// Cedar from expressions where that could differ (and is refused with
/// Cedar's own error).
fn cedar_context(req: &AuthzRequest) -> Result<Context, RequestError> {
    match context::direct(&req.context) {
        Some(context) => Ok(context),
        None => context_by_expr(req),
    }
}

/// The Cedar context of `req`, as `Context::from_pairs` builds it.
fn context_by_expr(req: &AuthzRequest) -> Result<Context, RequestError> {
    Context::from_pairs(
        req.context
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    v.to_expr()
                        .map_err(|e| RequestError::Invalid(e.to_string()))?,
                ))
            })
            .collect::<Result<Vec<_>, RequestError>>()?,
    )
    .map_err(|e| RequestError::Invalid(format!("context: {e}")))
}

/// What a request that Cedar's schema check refuses comes to.
fn not_valid(e: RequestValidationError) -> RequestError {
    match e {
        // With strictly validated policies, no policy can apply to a
        // principal or resource type the action does not apply to.
        RequestValidationError::InvalidPrincipalType(_)
        | RequestValidationError::InvalidResourceType(_) => RequestError::NotApplicable,
        other => RequestError::Invalid(other.to_string()),
    }
}

impl Snapshot {
    /// Evaluates against every policy, without slicing (for equivalence tests).
    #[cfg(test)]
    fn decide_unsliced(&self, req: &AuthzRequest) -> Option<cedar_policy::Response> {
        let request = self.cedar_request(req).ok()?;
        let parts = self.principal_parts(req).ok()?;
        let entities = self.request_entities(req, &parts).ok()?;
        Some(
            self.authorizer
                .is_authorized(&request, &self.policies, Entities::ref_cast(&entities)),
        )
    }

    /// The small per-request entity store: kept with the principal's parts,
    /// by action and stored resource, or built now (and kept).
    fn request_entities(
        &self,
        req: &AuthzRequest,
        parts: &PrincipalParts,
    ) -> Result<Store, String> {
        // Only a stored resource adds to the store (see `build_entities`).
        let resource = self
            .shared
            .contains_key(&req.resource)
            .then_some(&req.resource);
        if let Some(entities) = parts.store(&req.action, resource) {
            return Ok(entities);
        }
        let entities = self.build_entities(req, parts)?;
        parts.keep_store(&req.action, resource, entities.clone());
        Ok(entities)
    }

    /// Builds the small per-request entity store: the principal's parts, the
    /// resource with what it reaches, the action, and the entities policies
    /// dereference by name; without Cedar's closure when it would add nothing.
    fn build_entities(&self, req: &AuthzRequest, parts: &PrincipalParts) -> Result<Store, String> {
        let (list, closed) = self.store_entities(req, parts);
        store::build(list, closed)
    }

    /// The entities of the request's store, and whether they need no closure
    /// (the conditions of [`store`]: the principal's parts need none, and no
    /// stored entity added here has an own uid among its ancestors).
    fn store_entities(
        &self,
        req: &AuthzRequest,
        parts: &PrincipalParts,
    ) -> (Vec<Arc<ast::Entity>>, bool) {
        let mut out: Vec<Arc<ast::Entity>> = Vec::with_capacity(parts.held.len() + 8);
        out.extend(parts.own.iter().cloned());
        out.extend(parts.reached.iter().cloned());
        let mut closed = parts.closed;
        let mut needed: Vec<&EntityUid> = Vec::with_capacity(8);
        if self.shared.contains_key(&req.resource) {
            needed.push(&req.resource);
            needed.extend(self.reach.get(&req.resource).into_iter().flatten());
        }
        needed.push(&req.action);
        needed.extend(&self.always);
        let mut seen: HashSet<&EntityUid> = HashSet::with_capacity(needed.len());
        for uid in needed {
            if parts.held.contains(uid) || !seen.insert(uid) {
                continue;
            }
            if let Some(e) = self.shared.get(uid) {
                closed = closed && !store::has_ancestor_in(e, &parts.below);
                out.push(e.clone());
            }
        }
        (out, closed)
    }
}

enum RequestError {
    NotApplicable,
    Invalid(String),
}

/// What one evaluation needs, built once per request.
struct Prepared {
    request: Request,
    /// The entity store, shared with the principal's cache.
    entities: Store,
    /// The principal's parts (its slice keys select the policies).
    parts: Arc<PrincipalParts>,
}

/// Splits off the `@shadow` policies: returns the enforced set and, if any
/// policy is marked `@shadow`, the full set (enforced ∪ shadow).
fn split_shadow(all: PolicySet) -> (PolicySet, Option<PolicySet>) {
    if !all.policies().any(is_shadow) {
        return (all, None);
    }
    let mut enforced = PolicySet::new();
    for policy in all.policies().filter(|p| !is_shadow(p)) {
        // Ids are unique in `all`, so adding a subset cannot fail.
        let _ = enforced.add(policy.clone());
    }
    (enforced, Some(all))
}

fn is_shadow(policy: &cedar_policy::Policy) -> bool {
    policy.annotation(SHADOW_ANNOTATION).is_some()
}

/// The annotation that marks a policy for shadow evaluation.
pub const SHADOW_ANNOTATION: &str = "shadow";

/// Computes, for every stored entity, the entities reachable from it.
fn reach_map(entities: &Entities) -> HashMap<EntityUid, Vec<EntityUid>> {
    // Direct edges: ancestors (already transitively closed) and entity refs in attributes.
    let mut edges: HashMap<EntityUid, Vec<EntityUid>> = HashMap::new();
    for e in entities.iter() {
        let uid = e.uid();
        let mut out: Vec<EntityUid> = entities
            .ancestors(&uid)
            .map(|a| a.cloned().collect())
            .unwrap_or_default();
        if let Ok(json) = e.to_json_value()
            && let Some(attrs) = json.get("attrs")
        {
            collect_entity_refs(attrs, &mut out);
        }
        edges.insert(uid, out);
    }
    let mut reach = HashMap::with_capacity(edges.len());
    for start in edges.keys() {
        let mut seen: HashSet<&EntityUid> = HashSet::new();
        let mut stack: Vec<&EntityUid> = edges.get(start).into_iter().flatten().collect();
        while let Some(u) = stack.pop() {
            if u == start || !seen.insert(u) {
                continue;
            }
            stack.extend(edges.get(u).into_iter().flatten());
        }
        let mut list: Vec<EntityUid> = seen
            .into_iter()
            .filter(|u| edges.contains_key(*u))
            .cloned()
            .collect();
        list.sort();
        reach.insert(start.clone(), list);
    }
    reach
}

fn collect_entity_refs(v: &serde_json::Value, out: &mut Vec<EntityUid>) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(e) = map.get("__entity") {
                if let Ok(uid) = crate::vocab::uid_from_json(e) {
                    out.push(uid);
                }
                return;
            }
            map.values().for_each(|x| collect_entity_refs(x, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|x| collect_entity_refs(x, out)),
        _ => {}
    }
}

/// Finds entity literals that a policy dereferences (`.attr`, `has`, tags), in
/// the policy's JSON form. Literals used only with `==` / `in` need no entity
/// data and are skipped, so they do not grow every request's store.
fn collect_dereferenced_literals(v: &serde_json::Value, in_deref: bool, out: &mut Vec<EntityUid>) {
    match v {
        serde_json::Value::Object(map) => {
            if in_deref && let Some(e) = map.get("__entity") {
                if let Ok(uid) = crate::vocab::uid_from_json(e) {
                    out.push(uid);
                }
                return;
            }
            for (k, x) in map {
                let deref_op = matches!(k.as_str(), "." | "has" | "getTag" | "hasTag");
                match (deref_op, x.get("left")) {
                    (true, Some(left)) => {
                        collect_dereferenced_literals(left, true, out);
                        for (k2, rest) in x.as_object().into_iter().flatten() {
                            if k2 != "left" {
                                collect_dereferenced_literals(rest, in_deref, out);
                            }
                        }
                    }
                    _ => collect_dereferenced_literals(x, in_deref, out),
                }
            }
        }
        serde_json::Value::Array(items) => items
            .iter()
            .for_each(|x| collect_dereferenced_literals(x, in_deref, out)),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
