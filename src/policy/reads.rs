//! Which *volatile* context values the policies read.
//!
//! Some context values change on every request (`context.request.time`,
//! `context.request.request_id`). If no policy reads them, a decision does not
//! depend on them and the decision cache may leave them out of its key; if a
//! policy does read one, every decision depends on it and caching would be
//! useless (or, with the value left out, wrong). This module finds out, once
//! per snapshot, by walking each policy's JSON form.
//!
//! The analysis is conservative: `context` or `context.request` used as a whole
//! value (compared, passed to a function) counts as reading every volatile path
//! below it.

use cedar_policy::{EntityTypeName, Policy, PrincipalConstraint};
use serde_json::Value;

/// Context paths (below `context`) whose values change on every request.
/// A credential's age or remaining lifetime, if the context ever carries
/// them, belong here too.
pub const VOLATILE_CONTEXT: &[&str] = &[
    "request.time",
    "request.request_id",
    "auth.token_age_seconds",
    "auth.token_remaining_seconds",
    "auth.api_key_age_seconds",
    "auth.api_key_remaining_seconds",
];

/// The volatile paths (`context.request.time`, ...) that any of `policies` reads.
pub fn volatile_reads<'a>(policies: impl Iterator<Item = &'a Policy>) -> Vec<String> {
    let mut found: Vec<String> = scoped_volatile_reads(policies)
        .into_iter()
        .map(|r| r.path)
        .collect();
    found.sort();
    found.dedup();
    found
}

/// A volatile path some policy reads, and the principal type that policy is
/// limited to by its scope (`principal is Agent`, `principal == Agent::"a"`).
/// Cedar evaluates a policy's conditions only when its scope matches, so a
/// request whose principal has another type never depends on such a read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VolatileRead {
    /// `context.request.time`, ...
    pub path: String,
    /// The principal type the reading policy applies to; `None`: any.
    pub principal_type: Option<EntityTypeName>,
}

/// Every (path, principal type) pair read by `policies`, deduplicated.
pub fn scoped_volatile_reads<'a>(policies: impl Iterator<Item = &'a Policy>) -> Vec<VolatileRead> {
    let mut out: Vec<VolatileRead> = Vec::new();
    for policy in policies {
        let mut found: Vec<String> = Vec::new();
        match policy.to_json() {
            Ok(json) => walk(&json, &mut found),
            // Cannot tell: assume the worst.
            Err(_) => add_all(&mut found),
        }
        let principal_type = match policy.principal_constraint() {
            PrincipalConstraint::Eq(uid) => Some(uid.type_name().clone()),
            PrincipalConstraint::Is(ty) | PrincipalConstraint::IsIn(ty, _) => Some(ty),
            PrincipalConstraint::Any | PrincipalConstraint::In(_) => None,
        };
        out.extend(found.into_iter().map(|path| VolatileRead {
            path,
            principal_type: principal_type.clone(),
        }));
    }
    out.sort();
    out.dedup();
    out
}

fn walk(v: &Value, found: &mut Vec<String>) {
    if let Some(path) = context_path(v) {
        // A maximal access chain rooted at `context`: `path` is what it reads.
        let read = path.join(".");
        for volatile in VOLATILE_CONTEXT {
            let covers = read.is_empty()
                || *volatile == read
                || volatile.starts_with(&format!("{read}."))
                || read.starts_with(&format!("{volatile}."));
            if covers {
                found.push(format!("context.{volatile}"));
            }
        }
        return;
    }
    match v {
        Value::Object(map) => map.values().for_each(|x| walk(x, found)),
        Value::Array(items) => items.iter().for_each(|x| walk(x, found)),
        _ => {}
    }
}

/// If `v` is `context` followed by attribute accesses (`.a`, `["a"]`, `has a`),
/// the attribute names in order.
pub(crate) fn context_path(v: &Value) -> Option<Vec<String>> {
    let map = v.as_object()?;
    if map.get("Var").and_then(Value::as_str) == Some("context") {
        return Some(Vec::new());
    }
    for op in [".", "has"] {
        if let Some(inner) = map.get(op) {
            let left = inner.get("left")?;
            let attr = inner.get("attr")?.as_str()?;
            let mut path = context_path(left)?;
            path.push(attr.to_owned());
            return Some(path);
        }
    }
    None
}

fn add_all(found: &mut Vec<String>) {
    found.extend(VOLATILE_CONTEXT.iter().map(|p| format!("context.{p}")));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn reads(text: &str) -> Vec<String> {
        let set = cedar_policy::PolicySet::from_str(text).unwrap();
        volatile_reads(set.policies())
    }

    #[test]
    fn ordinary_context_reads_are_not_volatile() {
        assert!(
            reads(
                r#"permit(principal, action, resource) when { context.request.path like "/v1/*" && context.auth.method == "mtls" && context.request has source_ip };"#
            )
            .is_empty()
        );
    }

    #[test]
    fn time_and_request_id_reads_are_found() {
        assert_eq!(
            reads(
                r#"forbid(principal, action, resource) when { context.request.time > datetime("2030-01-01") };"#
            ),
            ["context.request.time"]
        );
        assert_eq!(
            reads(
                r#"permit(principal, action, resource) when { context["request"]["request_id"] == "x" };"#
            ),
            ["context.request.request_id"]
        );
        assert_eq!(
            reads(r#"permit(principal, action, resource) when { context.request has time };"#),
            ["context.request.time"]
        );
    }

    #[test]
    fn token_age_reads_are_found() {
        assert_eq!(
            reads(
                r#"forbid(principal, action, resource) when { context.auth has token_age_seconds && context.auth.token_age_seconds > 300 };"#
            ),
            ["context.auth.token_age_seconds"]
        );
    }

    #[test]
    fn reads_are_scoped_to_the_principal_type_of_the_policy() {
        let set = cedar_policy::PolicySet::from_str(
            r#"forbid(principal is Agent, action, resource) unless { context.auth.token_age_seconds < 60 };
               forbid(principal == User::"u", action, resource) when { context.request.request_id == "x" };
               forbid(principal in Group::"g", action, resource) when { context.request.time < datetime("2000-01-01") };"#,
        )
        .unwrap();
        let reads = scoped_volatile_reads(set.policies());
        let ty = |t: &str| Some(EntityTypeName::from_str(t).unwrap());
        assert_eq!(
            reads,
            [
                VolatileRead {
                    path: "context.auth.token_age_seconds".into(),
                    principal_type: ty("Agent")
                },
                VolatileRead {
                    path: "context.request.request_id".into(),
                    principal_type: ty("User")
                },
                VolatileRead {
                    path: "context.request.time".into(),
                    principal_type: None
                },
            ]
        );
    }

    #[test]
    fn whole_records_count_as_reading_everything() {
        assert_eq!(
            reads(
                r#"permit(principal, action, resource) when { context.request == context.request };"#
            ),
            ["context.request.request_id", "context.request.time"]
        );
        let mut all: Vec<String> = VOLATILE_CONTEXT
            .iter()
            .map(|p| format!("context.{p}"))
            .collect();
        all.sort();
        assert_eq!(
            reads(r#"permit(principal, action, resource) when { context == context };"#),
            all
        );
    }
}
