//! The `@scope("...")` annotation of step-up authorization (the challenge
//! itself is `decide::stepup`): which scopes would satisfy a `permit`. Checked
//! when the directory is loaded, since the scopes go into a
//! `WWW-Authenticate` header.

use cedar_policy::Effect;

/// The annotation on a `permit` naming the scopes (space-separated) that
/// would satisfy it.
pub const SCOPE_ANNOTATION: &str = "scope";

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
