//! Context validation, remembered by shape.
//!
//! Checking a context against the schema (what `Request::new` does with a
//! schema) is most of what building a Cedar request costs: Cedar copies the
//! whole context into expressions twice to do it. Yet whether a context is
//! valid for an action does not depend on most of its values. Cedar's check
//! (`validate_context`: the entity uids in it, then a typecheck against the
//! action's context type) reads:
//! - the record attribute names, the set elements (each checked alone, so a
//!   set's distinct element shapes are what counts), which leaves are
//!   strings, longs, booleans, which extension type a value has;
//! - an entity's type, and its id only when the type is an enumerated one or
//!   an action (both checked against the schema).
//!
//! So a context's [`shape`](Shapes::shape) keeps exactly that: strings and
//! longs become empty and zero, extension values keep their type, an entity
//! keeps its id only when the type is enumerated, an action or not declared
//! at all. A shape found valid once for an action is valid for every context
//! of that shape; a shape not known valid goes through Cedar's own check, so
//! an invalid context is refused with Cedar's own error, as before. Only valid
//! shapes are kept, per snapshot (a reload brings a new schema and an empty
//! set), at most [`SHAPE_CACHE_CAPACITY`].

use std::collections::HashMap;

use cedar_policy::{Context, EntityId, EntityTypeName, EntityUid, RequestValidationError, Schema};

use crate::vocab::Value;

/// Distinct (action, context shape) pairs kept per snapshot. A shape differs
/// by which optional attributes a request carries and by claim names, not by
/// caller, so a few per action are the rule.
pub(super) const SHAPE_CACHE_CAPACITY: u64 = 4_096;

/// Context shapes known valid, per action (see the module docs).
pub(super) struct Shapes {
    /// For each declared entity type whose ids the check does not read (not
    /// enumerated, not an action): the uid every id of it is shaped to.
    free: HashMap<EntityTypeName, EntityUid>,
    valid: moka::sync::Cache<ShapeKey, (), foldhash::quality::RandomState>,
}

/// An action and the shape of a context record.
type ShapeKey = (EntityUid, Vec<(String, Value)>);

// === impl Shapes ===

impl Shapes {
    pub(super) fn new(schema: &Schema, capacity: u64) -> Self {
        let free = schema
            .entity_types()
            .filter(|ty| !is_action_type(ty) && !is_enumerated(schema, ty))
            .map(|ty| {
                let uid = EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(""));
                (ty.clone(), uid)
            })
            .collect();
        let valid = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .build_with_hasher(foldhash::quality::RandomState::default());
        Self { free, valid }
    }

    /// Whether `context` (built from `values`) is valid for `action`: what
    /// Cedar's `Context::validate` answers, asked only for a shape not seen
    /// valid before.
    pub(super) fn validate(
        &self,
        schema: &Schema,
        action: &EntityUid,
        values: &[(String, Value)],
        context: &Context,
    ) -> Result<(), Box<RequestValidationError>> {
        let key = (action.clone(), self.record(values));
        if self.valid.get(&key).is_some() {
            return Ok(());
        }
        context.validate(schema, action).map_err(Box::new)?;
        self.valid.insert(key, ());
        Ok(())
    }

    fn record(&self, fields: &[(String, Value)]) -> Vec<(String, Value)> {
        fields
            .iter()
            .map(|(k, v)| (k.clone(), self.shape(v)))
            .collect()
    }

    /// `value` with everything the validity check does not read blanked.
    fn shape(&self, value: &Value) -> Value {
        match value {
            Value::Str(_) => Value::Str(String::new()),
            Value::Long(_) => Value::Long(0),
            Value::Bool(b) => Value::Bool(*b),
            Value::Ip(_) => Value::Ip(String::new()),
            Value::Datetime(_) => Value::Datetime(String::new()),
            Value::Entity(uid) => {
                Value::Entity(self.free.get(uid.type_name()).unwrap_or(uid).clone())
            }
            Value::Set(items) => {
                let mut shapes: Vec<Value> = Vec::new();
                for item in items {
                    let s = self.shape(item);
                    if !shapes.contains(&s) {
                        shapes.push(s);
                    }
                }
                Value::Set(shapes)
            }
            Value::Record(fields) => Value::Record(self.record(fields)),
        }
    }

    #[cfg(test)]
    pub(super) fn shape_of(&self, value: &Value) -> Value {
        self.shape(value)
    }
}

/// Whether `ty` is an action type (`Action`, `NS::Action`): its uids are
/// checked against the declared actions.
fn is_action_type(ty: &EntityTypeName) -> bool {
    ty.basename() == "Action"
}

/// Whether `ty` is an enumerated entity type (`entity Color enum ["red"]`).
/// The public schema API does not say, so ask Cedar to check a uid of it that
/// no enumeration holds (ids with NUL bytes, two of them in case one is
/// listed) as principal and resource of an undeclared action: a plain type
/// gets as far as the action, an enumerated one is refused as an invalid
/// member first. Any other answer counts as enumerated, which only keeps the
/// type's ids in the shape (fewer hits, never a wrong one).
fn is_enumerated(schema: &Schema, ty: &EntityTypeName) -> bool {
    // An action no schema declares: a type that passes the principal and
    // resource checks then fails on it.
    let Ok(action_type) = "Action".parse::<EntityTypeName>() else {
        return true;
    };
    let action = EntityUid::from_type_name_and_id(action_type, EntityId::new("\u{0}probe\u{0}"));
    [
        "\u{0}cedar-gate-probe-a\u{0}",
        "\u{0}cedar-gate-probe-b\u{0}",
    ]
    .iter()
    .any(|id| {
        let uid = EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id));
        !matches!(
            cedar_policy::validate_scope_variables(&uid, &action, &uid, schema),
            Err(RequestValidationError::UndeclaredAction(_))
        )
    })
}
