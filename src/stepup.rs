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

use crate::config::OnPolicyError;
use crate::policy::eval::AuthzRequest;
use crate::policy::model::Value;
use crate::policy::snapshot::Snapshot;

/// The annotation on a `permit` naming the scopes (space-separated) that
/// would satisfy it.
pub const SCOPE_ANNOTATION: &str = "scope";

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

/// The scopes of an annotation, or `None` when it holds anything but
/// RFC 6749 scope tokens (it goes into a `WWW-Authenticate` header).
pub fn parse(annotation: &str) -> Option<Vec<String>> {
    let scopes: Vec<String> = annotation
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let token = |s: &String| {
        s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    };
    (!scopes.is_empty() && scopes.iter().all(token)).then_some(scopes)
}

/// What is wrong with a policy's `@scope` annotation, if anything: it must
/// sit on a `permit` and hold scope tokens only.
pub(crate) fn annotation_problem(policy: &cedar_policy::Policy) -> Option<String> {
    let value = policy.annotation(SCOPE_ANNOTATION)?;
    if policy.effect() != Effect::Permit {
        return Some("`@scope` belongs on a `permit` (a forbid is never stepped up)".to_owned());
    }
    match parse(value) {
        Some(_) => None,
        None => Some(format!(
            "`@scope({value:?})` must list one or more space-separated OAuth scope tokens \
             (printable ASCII without space, `\"` or `\\`)"
        )),
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn annotations_hold_scope_tokens_only() {
        assert_eq!(
            parse("repo:write  read"),
            Some(vec!["repo:write".to_owned(), "read".to_owned()])
        );
        for bad in ["", "  ", "a\"b", "a\\b", "caf\u{e9}", "a\tb", "a,b\""] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_annotation_is_a_load_problem() {
        let policy = |text: &str| cedar_policy::Policy::parse(None, text).unwrap();
        let ok = policy(r#"@scope("a:b c") permit (principal, action, resource);"#);
        assert_eq!(annotation_problem(&ok), None);
        let none = policy("permit (principal, action, resource);");
        assert_eq!(annotation_problem(&none), None);
        let on_forbid = policy(r#"@scope("a") forbid (principal, action, resource);"#);
        assert!(annotation_problem(&on_forbid).unwrap().contains("permit"));
        let bad = policy(r#"@scope("a\"b") permit (principal, action, resource);"#);
        assert!(annotation_problem(&bad).unwrap().contains("scope tokens"));
    }
}
