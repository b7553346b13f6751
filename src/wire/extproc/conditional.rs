//! Which denied list items are *conditional*: denied for the bare call the
//! filter asks about (no arguments), but possibly allowed with other
//! arguments. Those stay in the list (and are counted); an item is hidden
//! only when no call could use it.
//!
//! The filter decides each item as a call with empty
//! `context.mcp.argument_names` and no `context.mcp.params` (the list request says nothing about the
//! arguments a later call will carry). A deny is final only when no policy
//! that could take part in the decision reads those call-specific values:
//! - a forbid decided it and none of the determining forbids reads them
//!   (a forbid that reads them might not apply to another call);
//! - no permit matched and no permit whose action scope covers the item's
//!   action reads them (one might match another call).
//!
//! The analysis is conservative: a policy that uses `context` or
//! `context.mcp` as a whole, or reads `context.ai` (the model-call
//! parameters), counts as reading them.

use std::collections::HashSet;

use cedar_policy::{ActionConstraint, Effect, EntityUid, Policy, ResourceConstraint};
use serde_json::Value;

use crate::policy::reads::context_path;
use crate::policy::snapshot::Snapshot;
use crate::vocab::{Decision, Reason};

/// Context paths (below `context`) a later call fills in differently from
/// the bare call the filter decides.
const CALL_CONTEXT: &[&str] = &[
    "mcp.argument_names",
    "mcp.params",
    "mcp.input_responses",
    "ai",
];

/// What can make a denied item usable by another call, for one action.
#[derive(Debug, Default)]
pub struct CallContextReads {
    /// Ids of forbids that read call-specific context.
    forbids: HashSet<String>,
    /// The resource scopes of the permits that cover the action and read
    /// call-specific context.
    permits: Vec<ResourceConstraint>,
}

/// How a listed item is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// The bare call is allowed.
    Visible,
    /// Denied for the bare call, maybe allowed for another: kept, counted.
    Conditional,
    /// No call can use it.
    Hidden,
}

// === impl CallContextReads ===

impl CallContextReads {
    /// The policies of `snapshot` that read call-specific context, for `action`.
    pub fn new(snapshot: &Snapshot, action: &EntityUid) -> Self {
        let mut out = Self::default();
        for policy in snapshot.policy_set().policies() {
            if !reads_call_context(policy) {
                continue;
            }
            match policy.effect() {
                Effect::Forbid => {
                    out.forbids.insert(policy.id().to_string());
                }
                Effect::Permit => {
                    if covers(snapshot, policy, action) {
                        out.permits.push(policy.resource_constraint());
                    }
                }
            }
        }
        out
    }

    /// How an item whose bare call on `resource` was decided `decision` is
    /// shown.
    pub fn visibility(
        &self,
        snapshot: &Snapshot,
        resource: Option<&EntityUid>,
        decision: &Decision,
    ) -> Visibility {
        if decision.is_allow() {
            return Visibility::Visible;
        }
        let conditional = match decision.reason {
            Reason::PolicyForbid => decision
                .policies
                .iter()
                .any(|p| self.forbids.contains(&p.id)),
            Reason::NoPermit | Reason::InsufficientScope => self
                .permits
                .iter()
                .any(|scope| resource.is_none_or(|r| in_scope(snapshot, scope, r))),
            // Refused credentials, evaluation errors, refused requests: fail closed.
            _ => false,
        };
        if conditional {
            Visibility::Conditional
        } else {
            Visibility::Hidden
        }
    }
}

/// Whether `resource` can be in a policy's resource scope.
fn in_scope(snapshot: &Snapshot, scope: &ResourceConstraint, resource: &EntityUid) -> bool {
    let within = |group: &EntityUid| {
        group == resource
            || snapshot
                .entities()
                .ancestors(resource)
                .is_some_and(|mut a| a.any(|g| g == group))
    };
    match scope {
        ResourceConstraint::Any => true,
        ResourceConstraint::Eq(uid) => uid == resource,
        ResourceConstraint::In(group) => within(group),
        ResourceConstraint::Is(ty) => ty == resource.type_name(),
        ResourceConstraint::IsIn(ty, group) => ty == resource.type_name() && within(group),
    }
}

/// Whether the policy's action scope can include `action`.
fn covers(snapshot: &Snapshot, policy: &Policy, action: &EntityUid) -> bool {
    let within = |group: &EntityUid| {
        group == action
            || snapshot
                .entities()
                .ancestors(action)
                .is_some_and(|mut a| a.any(|g| g == group))
    };
    match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(uid) => uid == *action,
        ActionConstraint::In(groups) => groups.iter().any(within),
    }
}

/// Whether the policy reads a call-specific context value (or cannot be
/// analysed: then it is assumed to).
fn reads_call_context(policy: &Policy) -> bool {
    match policy.to_json() {
        Ok(json) => walk(&json),
        Err(_) => true,
    }
}

fn walk(v: &Value) -> bool {
    if let Some(path) = context_path(v) {
        let read = path.join(".");
        let below = |c: &&str| *c == read || read.starts_with(&format!("{c}."));
        // `context has mcp` tests presence only: the bare call has the same
        // `mcp` record. A value used whole covers everything below it.
        let presence = v.as_object().is_some_and(|m| m.contains_key("has"));
        return if presence {
            CALL_CONTEXT.iter().any(below)
        } else {
            CALL_CONTEXT
                .iter()
                .any(|c| read.is_empty() || below(c) || c.starts_with(&format!("{read}.")))
        };
    }
    match v {
        Value::Object(map) => map.values().any(walk),
        Value::Array(items) => items.iter().any(walk),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn reads(text: &str) -> bool {
        let set = cedar_policy::PolicySet::from_str(text).unwrap();
        set.policies().all(reads_call_context)
    }

    #[test]
    fn call_context_reads_are_found() {
        assert!(reads(
            r#"permit(principal, action, resource) when { context.mcp.argument_names.contains("dry_run") };"#
        ));
        assert!(reads(
            r#"forbid(principal, action, resource) when { context has mcp && context.mcp has params };"#
        ));
        assert!(reads(
            r#"forbid(principal, action, resource) when { context.ai.stream };"#
        ));
        assert!(reads(
            r#"permit(principal, action, resource) when { context.mcp == context.mcp };"#
        ));
        assert!(!reads(
            r#"permit(principal, action, resource) when { context.mcp.tool == "x" && context.auth.method == "mtls" };"#
        ));
        assert!(!reads(
            r#"permit(principal, action, resource) when { context has mcp && context.mcp has tool };"#
        ));
    }
}
