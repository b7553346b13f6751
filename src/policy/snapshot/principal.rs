//! The principal's share of a request's entity store, built once per snapshot
//! and principal instead of once per request.
//!
//! What a request brings of its principal ([`PrincipalSpec`]s: the uid, the
//! request-time attributes, the credential's parents, and the workload behind a
//! token) together with the snapshot's stored entities fully determines that
//! principal's Cedar entity (its parents flattened with their stored
//! ancestors), its ancestors, the stored entities reachable from it and the
//! policy slices' scope keys; with the action and the resource (when it is a
//! stored entity: otherwise the store does not depend on it) they determine
//! the whole per-request entity store too, so the last few stores built for
//! the principal are kept with it. All of that is kept in a cache that:
//! - is keyed by the whole specs, compared by equality: two token principals
//!   with the same subject but other groups, or two workloads with other
//!   attributes, never share an entry;
//! - lives inside the [`Snapshot`](super::Snapshot) it was computed from: a
//!   reload (new policies, schema or `entities.json`) builds a new snapshot with
//!   an empty cache, so no entry ever outlives the data it was computed from;
//! - is bounded by weight: about one unit per entity or uid held (own
//!   entities, reachable stored entities, ancestors, scope keys, and room for
//!   [`STORES_PER_PRINCIPAL`] entity stores, counted whether built or not),
//!   `cache.principal_entities` in all
//!   ([`DEFAULT_PRINCIPAL_ENTITIES`](crate::policy::config::DEFAULT_PRINCIPAL_ENTITIES));
//! - never holds a failure (an attribute Cedar refuses): that is recomputed,
//!   and refused, every time.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use cedar_policy::{Entities, Entity, EntityUid, RestrictedExpression};
use cedar_policy_core::ast::{self, PartialValue};
use ref_cast::RefCast;
use smol_str::SmolStr;

use super::context;

use super::store::{Hierarchy, Shared, Store, has_ancestor_in};
use crate::policy::slice::{ScopeKeys, Slicer};
use crate::vocab::PrincipalSpec;

/// Entity stores kept per principal (one per action and stored resource it
/// asked about last; the oldest is replaced first).
pub(super) const STORES_PER_PRINCIPAL: usize = 4;

/// What a request's entity store depends on besides the principal: the
/// action, and the resource when it is a stored entity.
type StoreKey = (EntityUid, Option<EntityUid>);

/// The request's principal and the other entities it brings: the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct PrincipalKey {
    principal: PrincipalSpec,
    extra: Vec<PrincipalSpec>,
}

/// Everything about a principal that does not depend on the question asked.
#[derive(Debug)]
pub(super) struct PrincipalParts {
    /// The request's own entities (principal first, then the extra ones,
    /// each uid once): request-time attributes over the stored ones, parents
    /// flattened with their stored ancestors.
    pub own: Vec<Arc<ast::Entity>>,
    /// Stored entities reachable from the own ones (not themselves own),
    /// each once.
    pub reached: Vec<Arc<ast::Entity>>,
    /// The uids of `own` and `reached`.
    pub held: HashSet<EntityUid>,
    /// The principal's ancestors, exactly those its entity is given.
    pub ancestors: HashSet<EntityUid>,
    /// Scope keys of the enforced slicer.
    pub keys: ScopeKeys,
    /// Scope keys of the shadow slicer, when there is one.
    pub shadow_keys: Option<ScopeKeys>,
    /// Whether the own and reached entities need no closure: the snapshot's
    /// hierarchy is closed, no own entity has an own uid among its
    /// ancestors, no reached entity has one (see [`super::store`]).
    pub closed: bool,
    /// The own uids some stored entity has among its ancestors (almost
    /// always none): a store holding such an entity needs closure.
    pub below: Vec<EntityUid>,
    /// The last entity stores built for this principal.
    stores: Mutex<VecDeque<(StoreKey, Store)>>,
}

/// The per-snapshot cache of [`PrincipalParts`] (see the module docs).
pub(super) struct PrincipalCache {
    cache: moka::sync::Cache<PrincipalKey, Arc<PrincipalParts>, foldhash::quality::RandomState>,
}

/// What the parts are computed from: the snapshot's stored entities and
/// their reach, and its slicers.
pub(super) struct Stored<'a> {
    pub entities: &'a Entities,
    pub reach: &'a HashMap<EntityUid, Vec<EntityUid>>,
    pub slicer: &'a Slicer,
    pub shadow: Option<&'a Slicer>,
    /// The stored entities, shared.
    pub shared: &'a Shared,
    pub hierarchy: &'a Hierarchy,
}

// === impl PrincipalCache ===

impl PrincipalCache {
    pub(super) fn new(max_weight: u64) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_weight)
            .weigher(|_, parts: &Arc<PrincipalParts>| parts.weight())
            .build_with_hasher(foldhash::quality::RandomState::default());
        Self { cache }
    }

    /// The parts of `principal` (bringing `extra`), from the cache or computed
    /// now from `stored` (and kept, unless they could not be built).
    pub(super) fn get(
        &self,
        stored: &Stored<'_>,
        principal: &PrincipalSpec,
        extra: &[PrincipalSpec],
    ) -> Result<Arc<PrincipalParts>, String> {
        let key = PrincipalKey {
            principal: principal.clone(),
            extra: extra.to_vec(),
        };
        if let Some(parts) = self.cache.get(&key) {
            return Ok(parts);
        }
        let parts = Arc::new(PrincipalParts::build(stored, principal, extra)?);
        self.cache.insert(key, parts.clone());
        Ok(parts)
    }

    /// Principals held (approximate; moka counts lazily).
    #[cfg(test)]
    pub(super) fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

// === impl PrincipalParts ===

impl PrincipalParts {
    /// Computes the parts of `principal` (bringing `extra`) from `stored`.
    pub(super) fn build(
        stored: &Stored<'_>,
        principal: &PrincipalSpec,
        extra: &[PrincipalSpec],
    ) -> Result<Self, String> {
        let mut own: Vec<Arc<ast::Entity>> = Vec::with_capacity(1 + extra.len());
        let mut needed: Vec<&EntityUid> = Vec::with_capacity(16);
        let mut held: HashSet<EntityUid> = HashSet::new();
        let mut ancestors = HashSet::new();
        for spec in std::iter::once(principal).chain(extra) {
            if !held.insert(spec.uid.clone()) {
                continue;
            }
            let (entity, parents) = own_entity(stored, spec, &mut needed)?;
            if spec.uid == principal.uid {
                ancestors = parents;
            }
            own.push(Arc::new(entity));
        }
        let own_uids: Vec<EntityUid> = held.iter().cloned().collect();
        let mut reached = Vec::with_capacity(needed.len());
        for uid in needed {
            if held.contains(uid) {
                continue;
            }
            if let Some(e) = stored.shared.get(uid) {
                held.insert(uid.clone());
                reached.push(e.clone());
            }
        }
        let below: Vec<EntityUid> = stored.hierarchy.below(own_uids.iter()).cloned().collect();
        let closed = stored.hierarchy.closed()
            && !own.iter().any(|e| has_ancestor_in(e, &own_uids))
            && !reached.iter().any(|e| has_ancestor_in(e, &below));
        let keys = stored.slicer.keys(&principal.uid, &ancestors);
        let shadow_keys = stored.shadow.map(|s| s.keys(&principal.uid, &ancestors));
        Ok(Self {
            own,
            reached,
            held,
            ancestors,
            keys,
            shadow_keys,
            closed,
            below,
            stores: Mutex::new(VecDeque::with_capacity(STORES_PER_PRINCIPAL)),
        })
    }

    /// The entity store kept for `action` and the stored `resource` (`None`:
    /// the resource is not a stored entity), if one is.
    pub(super) fn store(&self, action: &EntityUid, resource: Option<&EntityUid>) -> Option<Store> {
        let stores = self.stores.lock().ok()?;
        stores
            .iter()
            .find(|((a, r), _)| a == action && r.as_ref() == resource)
            .map(|(_, entities)| entities.clone())
    }

    /// Keeps `entities` as the store for `action` and `resource`, replacing
    /// the oldest one kept when there are [`STORES_PER_PRINCIPAL`].
    pub(super) fn keep_store(
        &self,
        action: &EntityUid,
        resource: Option<&EntityUid>,
        entities: Store,
    ) {
        // A poisoned lock only costs the cache.
        if let Ok(mut stores) = self.stores.lock() {
            if stores.len() >= STORES_PER_PRINCIPAL {
                stores.pop_front();
            }
            stores.push_back(((action.clone(), resource.cloned()), entities));
        }
    }

    /// The cache weight: about one unit per entity or uid held, with room for
    /// every entity store it may keep (each holds the own and reached
    /// entities, plus the resource's, the action and the snapshot's `always`).
    fn weight(&self) -> u32 {
        let store = self.held.len() + 4;
        let n = 1
            + self.held.len()
            + self.ancestors.len()
            + self.keys.len()
            + self.shadow_keys.as_ref().map_or(0, |k| k.len())
            + STORES_PER_PRINCIPAL * store;
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// The request's own entity for `spec`: its request-time attributes over the
/// stored ones (its stored tags kept), and its parents flattened with their
/// stored ancestors. Pushes the stored entities it can reach onto `needed`.
///
/// Built from values: the stored entity's attributes as they are, the
/// request's as [`context::value`] makes them, where cedar-policy's
/// `Entity::into_inner` / `Entity::new` would copy both into expressions and
/// interpret them back. A request attribute that could come out otherwise (a
/// key twice in a record, an extension argument refused) takes that path, so
/// that it is refused with Cedar's own error.
pub(super) fn own_entity<'a>(
    stored: &Stored<'a>,
    spec: &'a PrincipalSpec,
    needed: &mut Vec<&'a EntityUid>,
) -> Result<(ast::Entity, HashSet<EntityUid>), String> {
    let mut parents: HashSet<EntityUid> = HashSet::new();
    let mut attrs: BTreeMap<SmolStr, PartialValue> = BTreeMap::new();
    let mut tags: Vec<(SmolStr, PartialValue)> = Vec::new();
    if let Some(entity) = stored.shared.get(&spec.uid) {
        attrs.extend(entity.attrs().map(|(k, v)| (k.clone(), v.clone())));
        tags.extend(entity.tags().map(|(k, v)| (k.clone(), v.clone())));
        parents.extend(entity.ancestors().map(|a| EntityUid::ref_cast(a).clone()));
        needed.extend(stored.reach.get(&spec.uid).into_iter().flatten());
    }
    for p in &spec.parents {
        parents.insert(p.clone());
        if let Some(ancestors) = stored.entities.ancestors(p) {
            parents.extend(ancestors.cloned());
        }
        needed.push(p);
        needed.extend(stored.reach.get(p).into_iter().flatten());
    }
    for (k, v) in &spec.attrs {
        match context::value(v) {
            Ok(v) => attrs.insert(SmolStr::from(k.as_str()), PartialValue::Value(v)),
            Err(()) => return own_entity_by_expr(stored, spec).map(|e| (e, parents)),
        };
    }
    let entity = ast::Entity::new_with_attr_partial_value(
        spec.uid.as_ref().clone(),
        attrs,
        HashSet::new(),
        parents.iter().map(|p| p.as_ref().clone()).collect(),
        tags,
    );
    Ok((entity, parents))
}

/// [`own_entity`]'s entity as cedar-policy's public API builds it: the
/// stored attributes and the request's copied into expressions and
/// interpreted by `Entity::new`, with the stored tags. Where
/// [`context::value`] gives up, and the oracle of the tests.
pub(super) fn own_entity_by_expr(
    stored: &Stored<'_>,
    spec: &PrincipalSpec,
) -> Result<ast::Entity, String> {
    let mut parents: HashSet<EntityUid> = HashSet::new();
    let mut attrs: HashMap<String, RestrictedExpression> = HashMap::new();
    let mut tags: Vec<(SmolStr, PartialValue)> = Vec::new();
    if let Some(entity) = stored.entities.get(&spec.uid) {
        let core: &ast::Entity = entity.as_ref();
        tags.extend(core.tags().map(|(k, v)| (k.clone(), v.clone())));
        let (_, stored_attrs, stored_parents) = entity.clone().into_inner();
        attrs.extend(stored_attrs);
        parents.extend(stored_parents);
        if let Some(ancestors) = stored.entities.ancestors(&spec.uid) {
            parents.extend(ancestors.cloned());
        }
    }
    for p in &spec.parents {
        parents.insert(p.clone());
        if let Some(ancestors) = stored.entities.ancestors(p) {
            parents.extend(ancestors.cloned());
        }
    }
    for (k, v) in &spec.attrs {
        attrs.insert(k.clone(), v.to_expr().map_err(|e| e.to_string())?);
    }
    let entity = Entity::new(spec.uid.clone(), attrs, parents)
        .map_err(|e| format!("entity `{}`: {e}", spec.uid))?;
    let built: &ast::Entity = entity.as_ref();
    Ok(ast::Entity::new_with_attr_partial_value(
        built.uid().clone(),
        built.attrs().map(|(k, v)| (k.clone(), v.clone())),
        built.indirect_ancestors().cloned().collect(),
        built.parents().cloned().collect(),
        tags,
    ))
}
