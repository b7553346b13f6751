//! Step-up authorization: when a token lacks a scope that a policy needs, say
//! which scopes would permit the request (RFC 6750 §3.1 `insufficient_scope`,
//! the MCP authorization specification's step-up flow), instead of a flat 403.
//!
//! A `permit` names the scopes that satisfy it with an annotation:
//! ```cedar
//! @scope("repo:write")
//! permit (principal, action == Action::"call_tool", resource in ToolSet::"github-write")
//! when { context.auth.scopes.contains("repo:write") };
//! ```
//! The annotation is a claim to check, never trusted on its own: on a deny
//! where no permit matched (never when a `forbid` did, never on an evaluation
//! error), the request is re-evaluated with every annotated scope added to
//! `context.auth.scopes`. If that allows, the scopes named by the permits
//! that then decided are the candidates, and a second re-evaluation with
//! exactly those added must allow too. Only then is the answer a challenge
//! listing them. Both evaluations bypass the decision cache and happen on a
//! token caller's `no_permit` deny only, so the allow path costs nothing.
//!
//! Scopes are flat strings: there is no scope hierarchy (`repo` does not
//! imply `repo:write`) unless a policy spells one out (`contains("repo") ||
//! contains("repo:write")`) and its annotation names the scope to ask for.

use std::collections::BTreeSet;

use cedar_policy::Effect;

use crate::policy::OnPolicyError;
use crate::policy::scope::{SCOPE_ANNOTATION, parse};
use crate::policy::snapshot::Snapshot;
use crate::vocab::{AuthzRequest, Value};

/// The scopes to ask the client for, or `None` when more scopes would not
/// turn this deny into an allow. `authz` is the denied request as evaluated.
pub fn required_scopes(
    snapshot: &Snapshot,
    mut authz: AuthzRequest,
    on_error: OnPolicyError,
) -> Option<Vec<String>> {
    let granted = granted(&authz)?;
    let offered: BTreeSet<String> = snapshot
        .policy_set()
        .policies()
        .filter(|p| p.effect() == Effect::Permit)
        .filter_map(|p| p.annotation(SCOPE_ANNOTATION).and_then(parse))
        .flatten()
        .collect();
    if offered.is_subset(&granted) {
        return None;
    }
    set_scopes(&mut authz, granted.union(&offered));
    let widened = snapshot.decide(&authz, on_error);
    if !widened.is_allow() {
        return None;
    }
    let needed: BTreeSet<String> = widened
        .policies
        .iter()
        .filter_map(|p| p.annotations.get(SCOPE_ANNOTATION).and_then(|s| parse(s)))
        .flatten()
        .collect();
    if needed.is_subset(&granted) {
        return None;
    }
    // The candidates alone must suffice: a permit that matched only thanks to
    // another policy's scope would otherwise send the client round in circles.
    set_scopes(&mut authz, granted.union(&needed));
    snapshot
        .decide(&authz, on_error)
        .is_allow()
        .then(|| needed.into_iter().collect())
}

/// `context.auth.scopes`; `None` without a token (nothing to step up).
fn granted(authz: &AuthzRequest) -> Option<BTreeSet<String>> {
    match scopes_ref(authz)? {
        Value::Set(items) => Some(
            items
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

fn scopes_ref(authz: &AuthzRequest) -> Option<&Value> {
    let auth = authz.context.iter().find(|(k, _)| k == "auth")?;
    match &auth.1 {
        Value::Record(fields) => fields.iter().find(|(k, _)| k == "scopes").map(|(_, v)| v),
        _ => None,
    }
}

fn set_scopes<'s>(authz: &mut AuthzRequest, scopes: impl Iterator<Item = &'s String>) {
    let value = Value::Set(scopes.map(Value::str).collect());
    for (k, v) in &mut authz.context {
        if k != "auth" {
            continue;
        }
        if let Value::Record(fields) = v {
            for (name, field) in fields.iter_mut() {
                if name == "scopes" {
                    *field = value.clone();
                }
            }
        }
    }
}
