//! The per-request entity store, built without Cedar's transitive closure
//! when the closure provably adds nothing.
//!
//! `Entities::from_entities` closes the ancestor relation (and refuses a
//! cycle) on every call; for a request's small store that was most of the
//! cost of building it, yet the store is almost always closed already:
//! - the stored entities come from the snapshot's store, loaded with the
//!   closure computed and cycles refused ([`Hierarchy::closed`] checks that
//!   once per snapshot rather than trusting the loader);
//! - an own entity (the principal, or an entity the request brings) is given
//!   its parents flattened with their stored ancestors
//!   ([`PrincipalParts`](super::principal::PrincipalParts)).
//!
//! Closure can add an edge or find a cycle only through an own uid: an own
//! entity has request-time parents its stored ancestry does not show. So the
//! store is built as is ([`TCComputation::AssumeAlreadyComputed`]) when
//! 1. the snapshot's stored hierarchy is closed and acyclic, and
//! 2. no own entity has an own uid among its ancestors, and
//! 3. no stored entity in the store has an own uid among its ancestors;
//!
//! otherwise with Cedar's closure, as `cedar_policy::Entities::from_entities`
//! builds it ([`TCComputation::ComputeNow`]), errors included.
//!
//! Why that is the same store: take an entity `e` of the store and an
//! ancestor `a` of it that the store holds. By 2 and 3, `a` is not own, so
//! the store holds `a` as stored. If `e` is stored, its ancestors hold `a`'s
//! by 1. If `e` is own, `a` is one of its parents `p`, or one of their stored
//! ancestors (which hold `a`'s by 1), or one of its own stored ancestors
//! (likewise); its ancestors were given each of those with their stored
//! ancestors. So every entity's ancestors already hold its ancestors'
//! ancestors: closure (which only adds uids reachable through ancestors)
//! adds none, and finds a cycle only where an entity is its own ancestor,
//! which 1 rules out for stored entities and 2 for own ones. Duplicate uids
//! are merged or refused before closure, by the same code either way.
//!
//! The stored entities a store holds are the snapshot's own ([`Shared`]), and
//! a store is kept with the principal's parts and lent to Cedar as is
//! ([`Store`]): building one copies no entity, evaluating with one copies no
//! store.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cedar_policy::{Entities, EntityUid};
use cedar_policy_core::ast;
use cedar_policy_core::entities::{self as core, NoEntitiesSchema, TCComputation};
use cedar_policy_core::extensions::Extensions;
use ref_cast::RefCast;

/// A request's entity store, shared by the principal's cache and the
/// evaluations that use it (`cedar_policy::Entities::ref_cast` lends it to
/// the authorizer).
pub(super) type Store = Arc<core::Entities>;

/// The snapshot's stored entities, each behind one `Arc` that the snapshot's
/// store and every request store share: a stored entity costs a request
/// store a reference count, not a copy.
pub(super) type Shared = HashMap<EntityUid, Arc<ast::Entity>>;

/// `entities` rebuilt around shared entities (the same entities, hierarchy
/// and all), with the index of them.
pub(super) fn share(entities: Entities) -> (Entities, Shared) {
    let list: Vec<Arc<ast::Entity>> = entities
        .as_ref()
        .iter()
        .map(|e| Arc::new(e.clone()))
        .collect();
    let shared = list
        .iter()
        .map(|e| (EntityUid::from(e.uid().clone()), e.clone()))
        .collect();
    let rebuilt = core::Entities::new().add_entities(
        list,
        None::<&NoEntitiesSchema>,
        TCComputation::AssumeAlreadyComputed,
        Extensions::all_available(),
    );
    match rebuilt {
        Ok(rebuilt) => (Entities::from(rebuilt), shared),
        // Only a duplicate uid fails, and a store has none; were it to
        // happen, the copies in `shared` are still the same entities.
        Err(_) => (entities, shared),
    }
}

/// What the snapshot's stored hierarchy allows, worked out once per snapshot.
#[derive(Debug)]
pub(super) struct Hierarchy {
    /// Whether every stored entity's ancestors hold its ancestors' ancestors
    /// and not itself (condition 1 of the module docs).
    closed: bool,
    /// Every uid some stored entity has among its ancestors: only an own uid
    /// in here can break condition 3.
    ancestors: HashSet<EntityUid>,
}

// === impl Hierarchy ===

impl Hierarchy {
    pub(super) fn new(entities: &Entities) -> Self {
        let mut closed = true;
        let mut ancestors = HashSet::new();
        for entity in entities.iter() {
            let entity: &ast::Entity = entity.as_ref();
            for a in entity.ancestors() {
                ancestors.insert(EntityUid::ref_cast(a).clone());
                closed = closed && a != entity.uid() && holds_ancestors(entities, entity, a);
            }
        }
        Self { closed, ancestors }
    }

    /// Whether the stored hierarchy is closed and acyclic.
    pub(super) fn closed(&self) -> bool {
        self.closed
    }

    /// The uids in `own` that some stored entity has among its ancestors.
    pub(super) fn below<'a>(
        &'a self,
        own: impl Iterator<Item = &'a EntityUid> + 'a,
    ) -> impl Iterator<Item = &'a EntityUid> + 'a {
        own.filter(|uid| self.ancestors.contains(*uid))
    }
}

/// Whether `entity` has every ancestor of its ancestor `a` (when stored).
fn holds_ancestors(entities: &Entities, entity: &ast::Entity, a: &ast::EntityUID) -> bool {
    entities.get(EntityUid::ref_cast(a)).is_none_or(|a| {
        AsRef::<ast::Entity>::as_ref(a)
            .ancestors()
            .all(|g| entity.is_descendant_of(g))
    })
}

/// Whether `entity` has one of `own` among its ancestors.
pub(super) fn has_ancestor_in(entity: &ast::Entity, own: &[EntityUid]) -> bool {
    own.iter().any(|uid| entity.is_descendant_of(uid.as_ref()))
}

/// The store of `entities`: as is when `closed` (the conditions of the
/// module docs hold), else closed by Cedar exactly as
/// `cedar_policy::Entities::from_entities` closes it.
pub(super) fn build(entities: Vec<Arc<ast::Entity>>, closed: bool) -> Result<Store, String> {
    let extensions = Extensions::all_available();
    let store = if closed {
        core::Entities::new().add_entities(
            entities,
            None::<&NoEntitiesSchema>,
            TCComputation::AssumeAlreadyComputed,
            extensions,
        )
    } else {
        core::Entities::from_entities(
            entities.into_iter().map(Arc::unwrap_or_clone),
            None::<&NoEntitiesSchema>,
            TCComputation::ComputeNow,
            extensions,
        )
    };
    store.map(Arc::new).map_err(|e| format!("entities: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
