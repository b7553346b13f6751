//! Specializing policies to concrete entities: "what is left of this policy when the
//! principal is `Workload::"x"` with these groups, the action `chat`, and the resource
//! `Model::"o1"`?"
//!
//! Works on a policy's JSON form. The scope becomes a condition; every reference to
//! a concrete request entity is replaced by the entity, and what can be decided from
//! the entity data alone (`in`, `is`, `has`, attribute reads, `==`) is. Boolean
//! connectives over decided parts are simplified. What remains reads only the context
//! (and entities the context names): that is the residual condition the access
//! report prints and the solver reasons about.
//!
//! `X && false` folds to `false` even though `X` might error: for a decision, an
//! erroring policy is skipped by Cedar, exactly like a policy that does not match.

use std::collections::HashSet;

use cedar_policy::{Effect, Entities, EntityUid, Policy, PolicyId, PolicySet};
use serde_json::{Map, Value, json};

/// A concrete request entity: its uid, every ancestor, and its attributes when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The uid.
    pub uid: EntityUid,
    /// Every ancestor (transitively closed).
    pub ancestors: HashSet<EntityUid>,
    /// Attributes as Cedar JSON; `None` when unknown (then reads stay symbolic).
    pub attrs: Option<Map<String, Value>>,
}

// === impl Subject ===

impl Subject {
    /// The entity as `entities` stores it: stored attributes and ancestors, or, for
    /// an entity not in the store, none (Cedar's view of an unlisted entity).
    pub fn stored(uid: &EntityUid, entities: &Entities) -> Self {
        let ancestors: HashSet<EntityUid> = entities
            .ancestors(uid)
            .map(|a| a.cloned().collect())
            .unwrap_or_default();
        let attrs = entities
            .get(uid)
            .and_then(|e| e.to_json_value().ok())
            .and_then(|j| j.get("attrs").and_then(|a| a.as_object().cloned()))
            .unwrap_or_default();
        Self {
            uid: uid.clone(),
            ancestors,
            attrs: Some(attrs),
        }
    }

    /// A principal that is a member of `group` (and so of its ancestors) and of
    /// nothing else, with the given attributes.
    pub fn member_of(
        uid: EntityUid,
        group: &EntityUid,
        entities: &Entities,
        attrs: Map<String, Value>,
    ) -> Self {
        let mut ancestors: HashSet<EntityUid> = entities
            .ancestors(group)
            .map(|a| a.cloned().collect())
            .unwrap_or_default();
        ancestors.insert(group.clone());
        Self {
            uid,
            ancestors,
            attrs: Some(attrs),
        }
    }

    fn is(&self, v: &Value) -> bool {
        entity_of(v).is_some_and(|(ty, id)| same(&self.uid, ty, id))
    }

    fn is_in(&self, target: &Value) -> Option<bool> {
        let (ty, id) = entity_of(target)?;
        Some(same(&self.uid, ty, id) || self.ancestors.iter().any(|a| same(a, ty, id)))
    }

    fn literal(&self) -> Value {
        json!({"Value": {"__entity": {
            "type": self.uid.type_name().to_string(),
            "id": self.uid.id().unescaped(),
        }}})
    }
}

/// The concrete parts of one request: any of principal and resource may stay
/// symbolic (`None`); the action is always concrete.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The principal, when concrete.
    pub principal: Option<Subject>,
    /// The action.
    pub action: Subject,
    /// The resource, when concrete.
    pub resource: Option<Subject>,
}

// === impl Cell ===

impl Cell {
    /// The concrete subject `v` is a literal of, when `v` is one.
    fn subject_of(&self, v: Option<&Value>) -> Option<&Subject> {
        let v = v?.get("Value")?;
        [
            self.principal.as_ref(),
            Some(&self.action),
            self.resource.as_ref(),
        ]
        .into_iter()
        .flatten()
        .find(|s| s.is(v))
    }
}

/// One policy specialized to a cell.
#[derive(Debug, Clone)]
pub struct Residual {
    /// Its id.
    pub id: PolicyId,
    /// Permit or forbid.
    pub effect: Effect,
    /// The specialized policy's JSON form (same id); no scope constraints on
    /// concrete parts. Parsed back into a [`Policy`] only when needed.
    pub json: Value,
    /// True when it matches every request of the cell (no condition left).
    pub unconditional: bool,
    /// Comparable text of what is left (effect, scope, conditions; no annotations).
    pub key: String,
}

// === impl Residual ===

impl Residual {
    /// The specialized policy.
    pub fn policy(&self) -> Option<Policy> {
        Policy::from_json(Some(self.id.clone()), self.json.clone()).ok()
    }

    /// The residual condition as Cedar text, `true` when unconditional.
    pub fn condition(&self) -> String {
        let mut bare = self.json.clone();
        if let Some(o) = bare.as_object_mut() {
            o.remove("annotations");
        }
        Policy::from_json(Some(self.id.clone()), bare)
            .map_or_else(|_| "?".to_owned(), |p| condition_text(&p))
    }
}

/// Policies with their JSON form, computed once.
pub type Prepared = Vec<(Policy, Value)>;

/// Pairs every policy of `set` with its JSON form.
pub fn prepare(set: &PolicySet) -> Prepared {
    set.policies()
        .filter_map(|p| Some((p.clone(), p.to_json().ok()?)))
        .collect()
}

/// Specializes every policy to `cell`; policies that cannot match are left out.
pub fn specialize(set: &Prepared, cell: &Cell) -> Vec<Residual> {
    let mut out: Vec<Residual> = set
        .iter()
        .filter_map(|(p, j)| fold_json(p, j, cell))
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Specializes one policy; `None` when it cannot match in this cell.
pub fn fold(policy: &Policy, cell: &Cell) -> Option<Residual> {
    fold_json(policy, &policy.to_json().ok()?, cell)
}

/// [`fold`] of a policy whose JSON form is already at hand ([`prepare`]).
pub fn fold_prepared(policy: &Policy, json: &Value, cell: &Cell) -> Option<Residual> {
    fold_json(policy, json, cell)
}

/// Whether the action scope of a policy (its JSON form) admits `action`; `None`
/// when the fold cannot tell.
pub fn action_scope(json: &Value, action: &Subject) -> Option<bool> {
    let Some(cond) = json.get("action").and_then(|s| scope_expr(s, "action")) else {
        return Some(true);
    };
    let cell = Cell {
        principal: None,
        action: action.clone(),
        resource: None,
    };
    as_bool(&fold_expr(cond, &cell))
}

/// Whether anything but the action scope of a policy (its JSON form) can read the
/// action: the `action` variable, or a literal of an action entity (a cell's action
/// is folded wherever its literal appears). When not, the action changes a fold
/// only through the action scope.
pub fn reads_action(json: &Value) -> bool {
    fn walk(v: &Value) -> bool {
        match v {
            Value::Object(m) => {
                m.get("Var").and_then(Value::as_str) == Some("action")
                    || m.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t == "Action" || t.ends_with("::Action"))
                    || m.values().any(walk)
            }
            Value::Array(items) => items.iter().any(walk),
            _ => false,
        }
    }
    ["principal", "resource", "conditions"]
        .iter()
        .any(|k| json.get(*k).is_some_and(walk))
}

fn fold_json(policy: &Policy, json: &Value, cell: &Cell) -> Option<Residual> {
    let mut kept = scope_conditions(json, cell)?;
    let mut json = json.clone();
    let obj = json.as_object_mut()?;
    for (slot, concrete) in [
        ("principal", cell.principal.is_some()),
        ("action", true),
        ("resource", cell.resource.is_some()),
    ] {
        if concrete {
            obj.insert(slot.to_owned(), json!({"op": "All"}));
        }
    }
    // Taken, not removed: the key keeps its place when the result is put back.
    let conditions = match obj.get_mut("conditions").map(Value::take) {
        Some(Value::Array(c)) => c,
        _ => Vec::new(),
    };
    for mut c in conditions {
        let unless = c.get("kind").and_then(|k| k.as_str()) == Some("unless");
        let body = fold_expr(
            c.get_mut("body").map(Value::take).unwrap_or(Value::Null),
            cell,
        );
        match (as_bool(&body), unless) {
            (Some(b), false) if !b => return None,
            (Some(b), true) if b => return None,
            (Some(_), _) => {}
            (None, _) => {
                kept.push(json!({"kind": if unless {"unless"} else {"when"}, "body": body}))
            }
        }
    }
    let unconditional = kept.is_empty()
        && ["principal", "resource"]
            .iter()
            .all(|s| obj.get(*s).and_then(|v| v.get("op")) == Some(&json!("All")));
    obj.insert("conditions".to_owned(), Value::Array(kept));
    let annotations = obj.remove("annotations");
    let key = serde_json::to_string(&json).unwrap_or_default();
    if let (Some(a), Some(obj)) = (annotations, json.as_object_mut()) {
        obj.insert("annotations".to_owned(), a);
    }
    Some(Residual {
        id: policy.id().clone(),
        effect: policy.effect(),
        json,
        unconditional,
        key,
    })
}

/// The scope constraints on the cell's concrete parts (the action always; principal
/// and resource when concrete), folded: `None` when one is false (the policy cannot
/// match), else those left undecided, as `when` conditions. Decided before the
/// policy's JSON is copied: about half the policies of a cell stop here.
fn scope_conditions(json: &Value, cell: &Cell) -> Option<Vec<Value>> {
    let mut pre: Vec<Value> = Vec::new();
    for (var, concrete) in [
        ("principal", cell.principal.is_some()),
        ("action", true),
        ("resource", cell.resource.is_some()),
    ] {
        if !concrete {
            continue;
        }
        let Some(cond) = json.get(var).and_then(|scope| scope_expr(scope, var)) else {
            continue;
        };
        let body = fold_expr(cond, cell);
        match as_bool(&body) {
            Some(false) => return None,
            Some(true) => {}
            None => pre.push(json!({"kind": "when", "body": body})),
        }
    }
    Some(pre)
}

/// The Cedar text of a specialized policy's conditions (`true` when none).
fn condition_text(policy: &Policy) -> String {
    let text = policy.to_cedar().unwrap_or_default();
    // Printed as `permit(principal, action, resource) when { ... } unless { ... };`:
    // keep what follows the scope.
    let after = text
        .find(')')
        .and_then(|i| text.get(i + 1..))
        .unwrap_or("")
        .trim()
        .trim_end_matches(';')
        .trim();
    if after.is_empty() {
        "true".to_owned()
    } else {
        after.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// A scope constraint as an expression over `var` (`None` for an unconstrained scope).
fn scope_expr(scope: &Value, var: &str) -> Option<Value> {
    let v = json!({"Var": var});
    let ent = |e: &Value| json!({"Value": {"__entity": e}});
    match scope.get("op").and_then(|o| o.as_str())? {
        "==" => Some(json!({"==": {"left": v, "right": ent(scope.get("entity")?)}})),
        "in" => match (scope.get("entity"), scope.get("entities")) {
            (Some(e), _) => Some(json!({"in": {"left": v, "right": ent(e)}})),
            (None, Some(Value::Array(list))) => Some(json!({"in": {"left": v, "right": {
                "Set": list.iter().map(ent).collect::<Vec<_>>()
            }}})),
            _ => None,
        },
        "is" => {
            let mut is = Map::new();
            is.insert("left".into(), v);
            is.insert("entity_type".into(), scope.get("entity_type")?.clone());
            if let Some(e) = scope.get("in").and_then(|i| i.get("entity")) {
                is.insert("in".into(), ent(e));
            }
            Some(json!({"is": is}))
        }
        _ => None,
    }
}

fn fold_expr(e: Value, cell: &Cell) -> Value {
    let Value::Object(map) = e else { return e };
    if map.len() != 1 {
        return Value::Object(map);
    }
    let Some((op, arg)) = map.into_iter().next() else {
        return Value::Null;
    };
    match op.as_str() {
        "Var" => return fold_var(arg, cell),
        "Value" => return json!({"Value": arg}),
        _ => {}
    }
    let arg = fold_children(arg, cell);
    match fold_op(&op, &arg, cell) {
        // A folded expression: booleans and entity data become literals again.
        Some(Value::Bool(b)) => json!({"Value": b}),
        Some(v) if v.get("Value").is_some() || v.as_object().is_some_and(|o| o.len() == 1) => v,
        Some(v) => json!({"Value": v}),
        None => json!({ op: arg }),
    }
}

/// A variable: the cell's subject as a literal when it is concrete.
fn fold_var(name: Value, cell: &Cell) -> Value {
    let subject = match name.as_str() {
        Some("principal") => cell.principal.as_ref(),
        Some("action") => Some(&cell.action),
        Some("resource") => cell.resource.as_ref(),
        _ => None,
    };
    subject.map_or_else(|| json!({"Var": name}), Subject::literal)
}

/// An operator's argument with every sub-expression folded (attribute names, entity
/// types and patterns are not expressions).
fn fold_children(arg: Value, cell: &Cell) -> Value {
    match arg {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "attr" | "entity_type" | "pattern" => v,
                        _ => fold_expr(v, cell),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|x| fold_expr(x, cell)).collect())
        }
        other => other,
    }
}

/// What `op` over its folded `arg` comes to when the cell's entity data and the
/// literals in `arg` decide it; `None` when it stays symbolic.
fn fold_op(op: &str, arg: &Value, cell: &Cell) -> Option<Value> {
    let left = arg.get("left");
    let right = arg.get("right");
    match op {
        "in" => fold_in(cell.subject_of(left)?, right?).map(Value::Bool),
        "is" => fold_is(cell.subject_of(left)?, arg).map(Value::Bool),
        "has" => {
            let s = cell.subject_of(left)?;
            let attr = arg.get("attr")?.as_str()?;
            Some(Value::Bool(s.attrs.as_ref()?.contains_key(attr)))
        }
        "." => {
            let s = cell.subject_of(left)?;
            let attr = arg.get("attr")?.as_str()?;
            s.attrs.as_ref()?.get(attr).map(|v| json!({"Value": v}))
        }
        "==" | "!=" => {
            let (l, r) = (left?.get("Value")?, right?.get("Value")?);
            (is_plain(l) && is_plain(r)).then(|| Value::Bool((l == r) == (op == "==")))
        }
        "&&" => match (left.and_then(as_bool), right.and_then(as_bool)) {
            (Some(false), _) | (_, Some(false)) => Some(Value::Bool(false)),
            (Some(true), _) => right.cloned().map(unwrap_value),
            (_, Some(true)) => left.cloned().map(unwrap_value),
            _ => None,
        },
        "||" => match (left.and_then(as_bool), right.and_then(as_bool)) {
            (Some(true), _) | (_, Some(true)) => Some(Value::Bool(true)),
            (Some(false), _) => right.cloned().map(unwrap_value),
            (_, Some(false)) => left.cloned().map(unwrap_value),
            _ => None,
        },
        "!" => arg.get("arg").and_then(as_bool).map(|b| Value::Bool(!b)),
        "if-then-else" => match arg.get("if").and_then(as_bool) {
            Some(true) => arg.get("then").cloned().map(unwrap_value),
            Some(false) => arg.get("else").cloned().map(unwrap_value),
            None => None,
        },
        _ => None,
    }
}

/// `s in target`, when `target` is an entity literal, a literal set of them, or a
/// set expression of literals.
fn fold_in(s: &Subject, target: &Value) -> Option<bool> {
    if let Some(v) = target.get("Value") {
        match v {
            Value::Array(items) => Some(items.iter().any(|i| s.is_in(i) == Some(true))),
            _ => s.is_in(v),
        }
    } else if let Some(Value::Array(items)) = target.get("Set") {
        let vals: Option<Vec<&Value>> = items.iter().map(|i| i.get("Value")).collect();
        vals.map(|vals| vals.iter().any(|v| s.is_in(v) == Some(true)))
    } else {
        None
    }
}

/// `s is T` or `s is T in target`, from the arguments of an `is`.
fn fold_is(s: &Subject, arg: &Value) -> Option<bool> {
    let ty = arg.get("entity_type")?.as_str()?;
    let type_ok = s.uid.type_name().to_string() == ty;
    match arg.get("in") {
        None => Some(type_ok),
        Some(target) => {
            let inside = s.is_in(target.get("Value")?)?;
            Some(type_ok && inside)
        }
    }
}

/// Values whose JSON equality is Cedar equality (no extension values, no sets or
/// records whose order could differ).
fn is_plain(v: &Value) -> bool {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
        Value::Object(o) => o.len() == 1 && o.contains_key("__entity"),
        _ => false,
    }
}

/// `Value` nodes handed up unchanged keep their wrapper; this strips nothing but
/// exists so the `&&` / `||` arms read as "the other side".
fn unwrap_value(v: Value) -> Value {
    v
}

fn as_bool(v: &Value) -> Option<bool> {
    v.get("Value").and_then(|b| b.as_bool())
}

fn entity_of(v: &Value) -> Option<(&str, &str)> {
    let e = v.get("__entity").unwrap_or(v);
    Some((e.get("type")?.as_str()?, e.get("id")?.as_str()?))
}

fn same(uid: &EntityUid, ty: &str, id: &str) -> bool {
    uid.id().unescaped() == id && uid.type_name().to_string() == ty
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn uid(ty: &str, id: &str) -> EntityUid {
        EntityUid::from_str(&format!("{ty}::\"{id}\"")).unwrap()
    }

    fn cell(groups: &[&str]) -> Cell {
        Cell {
            principal: Some(Subject {
                uid: uid("Workload", "w"),
                ancestors: groups.iter().map(|g| uid("Group", g)).collect(),
                attrs: Some(Map::new()),
            }),
            action: Subject {
                uid: uid("Action", "chat"),
                ancestors: [uid("Action", "inference")].into_iter().collect(),
                attrs: Some(Map::new()),
            },
            resource: Some(Subject {
                uid: uid("Model", "m"),
                ancestors: [uid("ModelGroup", "standard")].into_iter().collect(),
                attrs: Some(json!({"tier": "standard"}).as_object().cloned().unwrap()),
            }),
        }
    }

    fn one(text: &str) -> Policy {
        Policy::from_str(text).unwrap()
    }

    #[test]
    fn scope_decides_membership() {
        let p = one(
            r#"permit(principal in Group::"a", action in Action::"inference", resource in ModelGroup::"standard");"#,
        );
        let r = fold(&p, &cell(&["a"])).unwrap();
        assert!(r.unconditional, "{}", r.condition());
        assert!(fold(&p, &cell(&["b"])).is_none());
    }

    #[test]
    fn context_stays_and_entity_reads_fold() {
        let p = one(
            r#"forbid(principal, action, resource) when { resource has tier && resource.tier == "standard" && context.n > 3 };"#,
        );
        let r = fold(&p, &cell(&[])).unwrap();
        assert!(!r.unconditional);
        // Cedar prints `a > b` in its normal form `!(a <= b)`.
        assert_eq!(r.condition(), "when { !(context.n <= 3) }");
        let q = one(
            r#"forbid(principal, action, resource) when { resource.tier == "frontier" && context.n > 3 };"#,
        );
        assert!(fold(&q, &cell(&[])).is_none());
    }

    #[test]
    fn action_scope_and_what_reads_the_action() {
        let c = cell(&[]);
        let scoped = |scope: &str| {
            let p = one(&format!(
                "permit(principal, {scope}, resource) when {{ context.n > 3 }};"
            ));
            action_scope(&p.to_json().unwrap(), &c.action)
        };
        assert_eq!(scoped("action"), Some(true));
        assert_eq!(scoped(r#"action in Action::"inference""#), Some(true));
        assert_eq!(
            scoped(r#"action in [Action::"x", Action::"chat"]"#),
            Some(true)
        );
        assert_eq!(scoped(r#"action == Action::"x""#), Some(false));
        let reads = |text: &str| reads_action(&one(text).to_json().unwrap());
        assert!(!reads(
            r#"permit(principal, action == Action::"x", resource) when { context.n > 3 };"#
        ));
        assert!(reads(
            r#"permit(principal, action, resource) when { action == Action::"chat" };"#
        ));
        assert!(reads(
            r#"permit(principal, action, resource) when { Action::"chat" in Action::"inference" };"#
        ));
    }

    #[test]
    fn unless_true_drops_policy() {
        let p = one(r#"forbid(principal, action, resource) unless { principal in Group::"ok" };"#);
        assert!(fold(&p, &cell(&["ok"])).is_none());
        assert!(fold(&p, &cell(&[])).unwrap().unconditional);
    }
}
