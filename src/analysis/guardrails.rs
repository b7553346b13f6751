//! `validate --prove`, the guardrail proof: no combination of forbids always denies a
//! group that the examples (the policy directory's test cases) say is allowed.
//!
//! For each case that expects `allow`, the permits that allow it (or, when the case is
//! denied today, the permits that could match it) give the claim: "any member of the
//! permit's principal group (or the principal it names) may do the case's action on
//! the case's resource". The policies are specialized to that cell, principal
//! attributes and context left free, and the solver looks for one request the cell
//! allows (some permit matches and no forbid does). When there is none, the claim is
//! an always-deny, and the finding names the smallest set of forbids that together
//! cause it (each one dropped in turn, kept only if the deny no longer holds without
//! it).

use std::collections::HashMap;
use std::time::SystemTime;

use cedar_policy::{Effect, EntityUid, PolicyId, PrincipalConstraint, RequestEnv};

use crate::analysis::cells::{compile_residuals, meaning, signatures};
use crate::analysis::fold::{Cell, Residual, Subject, specialize};
use crate::analysis::prove::{Problem, ProveFinding};
use crate::analysis::setdir::{PolicyDir, PolicyInfo};
use crate::analysis::{AnalysisError, Prover};
use crate::decide::request_file::RequestFile;
use crate::policy::OnPolicyError;

/// One example: a case of a cases file that expects `allow`.
#[derive(Debug, Clone)]
pub struct Example {
    /// `file:line` of the case.
    pub at: String,
    /// The case name.
    pub name: String,
    /// The request.
    pub request: RequestFile,
}

/// A claim to prove: a principal (or any member of a group), an action, a resource.
struct Claim {
    label: String,
    principal: Option<Subject>,
}

/// Proves, for every example, that its group is not always denied; one finding per
/// example whose claim no request satisfies.
pub fn prove_examples(
    dir: &PolicyDir,
    examples: &[Example],
    prover: &mut Prover,
) -> Result<Vec<ProveFinding>, AnalysisError> {
    let schema = dir.snapshot.schema();
    let entities = dir.snapshot.entities();
    let envs = signatures(schema);
    let mut memo: HashMap<String, Option<Vec<PolicyId>>> = HashMap::new();
    let mut findings = Vec::new();
    for example in examples {
        let Ok(authz) = example.request.to_authz(SystemTime::now()) else {
            // `test` reports a request it cannot build; nothing to prove here.
            continue;
        };
        let principal = &authz.principal.uid;
        let Some(env) = envs.iter().find(|e| {
            e.principal() == principal.type_name()
                && e.action() == &authz.action
                && e.resource() == authz.resource.type_name()
        }) else {
            continue;
        };
        let concrete = concrete_principal(&authz.principal.uid, &authz.principal.parents, dir);
        let action = Subject::stored(&authz.action, entities);
        let resource = Subject::stored(&authz.resource, entities);
        let decision = dir.snapshot.decide(&authz, OnPolicyError::Deny);
        let permits: Vec<PolicyId> = if decision.is_allow() {
            decision
                .policies
                .iter()
                .map(|p| PolicyId::new(p.id.as_str()))
                .collect()
        } else {
            let cell = Cell {
                principal: Some(concrete.clone()),
                action: action.clone(),
                resource: Some(resource.clone()),
            };
            specialize(&dir.relevant(env, schema), &cell)
                .into_iter()
                .filter(|r| r.effect == Effect::Permit)
                .map(|r| r.id)
                .collect()
        };
        let mut claims: Vec<Claim> = Vec::new();
        for id in &permits {
            let Some(policy) = dir.enforced().policy(id) else {
                continue;
            };
            let claim = claim_of(policy.principal_constraint(), principal, &concrete, dir);
            if !claims.iter().any(|c| c.label == claim.label) {
                claims.push(claim);
            }
        }
        let Some(blocked) = blocking(dir, env, &claims, &action, &resource, &mut memo, prover)?
        else {
            continue;
        };
        let what = format!("`{}` on {}", authz.action.id().unescaped(), authz.resource);
        findings.push(always_denied(example, &what, principal, blocked, dir));
    }
    Ok(findings)
}

/// Who is always denied (a claim's label) and by which forbids.
type Blocked = (String, Vec<PolicyId>);

/// Whether every claim of who the example is for is always denied: `None`
/// when one of them holds, else the first blocked claim and its forbids
/// (`Some(None)` when there is no claim at all). Answers are memoised by the
/// claim and the specialised policies' meaning.
fn blocking(
    dir: &PolicyDir,
    env: &RequestEnv,
    claims: &[Claim],
    action: &Subject,
    resource: &Subject,
    memo: &mut HashMap<String, Option<Vec<PolicyId>>>,
    prover: &mut Prover,
) -> Result<Option<Option<Blocked>>, AnalysisError> {
    let schema = dir.snapshot.schema();
    let mut blocked: Option<Blocked> = None;
    for claim in claims {
        let cell = Cell {
            principal: claim.principal.clone(),
            action: action.clone(),
            resource: Some(resource.clone()),
        };
        let res = specialize(&dir.relevant(env, schema), &cell);
        let key = format!(
            "{} {} {} {:?}",
            claim.label,
            env.principal(),
            env.resource(),
            meaning(&res)
        );
        let answer = match memo.get(&key) {
            Some(a) => a.clone(),
            None => {
                let a = always_denied_by(dir, env, &res, prover)?;
                memo.insert(key, a.clone());
                a
            }
        };
        match answer {
            None => return Ok(None),
            Some(set) => {
                blocked.get_or_insert((claim.label.clone(), set));
            }
        }
    }
    Ok(Some(blocked))
}

/// The finding for an example that expects allow but is always denied:
/// `blocked` is who was blocked and by which forbids, if any.
fn always_denied(
    example: &Example,
    what: &str,
    principal: &EntityUid,
    blocked: Option<Blocked>,
    dir: &PolicyDir,
) -> ProveFinding {
    let (finding_policy, message, blocking) = match blocked {
        Some((who, set)) if !set.is_empty() => {
            let infos: Vec<PolicyInfo> = set.iter().map(|id| dir.policy_info(id)).collect();
            let names = infos.iter().map(describe).collect::<Vec<_>>().join(", ");
            (
                infos.first().cloned(),
                format!(
                    "is an always-deny for {who}: example {} `{}` expects allow, but no request from {who} for {what} is allowed; {} together deny every one ({names})",
                    example.at,
                    example.name,
                    if infos.len() == 1 {
                        "this forbid alone does"
                    } else {
                        "these forbids"
                    }
                ),
                infos,
            )
        }
        Some((who, _)) => (
            None,
            format!(
                "example {} `{}` expects allow, but no permit can match a request from {who} for {what}",
                example.at, example.name
            ),
            Vec::new(),
        ),
        None => (
            None,
            format!(
                "example {} `{}` expects allow, but no permit applies to {what} for {principal}",
                example.at, example.name
            ),
            Vec::new(),
        ),
    };
    let policy = finding_policy.unwrap_or_else(|| example_as_policy(example));
    ProveFinding {
        problem: Problem::AlwaysDenied,
        policy,
        message,
        example: None,
        blocking,
    }
}

fn describe(i: &PolicyInfo) -> String {
    let owner = i
        .owner
        .as_deref()
        .map_or_else(String::new, |o| format!(" @owner {o}"));
    format!("`{}`{owner} {}:{}", i.id, i.file, i.line)
}

/// A finding with no forbid to blame is located at the example itself.
fn example_as_policy(example: &Example) -> PolicyInfo {
    let (file, line) = example
        .at
        .rsplit_once(':')
        .map_or((example.at.clone(), 0), |(f, l)| {
            (f.to_owned(), l.parse().unwrap_or(0))
        });
    PolicyInfo {
        id: example.name.clone(),
        effect: "example",
        owner: None,
        file,
        line,
        shadow: false,
    }
}

/// The example's principal: its stored groups plus those the request carries;
/// attributes left free.
fn concrete_principal(uid: &EntityUid, parents: &[EntityUid], dir: &PolicyDir) -> Subject {
    let entities = dir.snapshot.entities();
    let mut s = Subject::stored(uid, entities);
    for p in parents {
        s.ancestors.insert(p.clone());
        if let Some(up) = entities.ancestors(p) {
            s.ancestors.extend(up.cloned());
        }
    }
    s.attrs = None;
    s
}

/// What a permit's principal scope claims: any member of its group, the principal it
/// names, or any principal of the type.
fn claim_of(
    scope: PrincipalConstraint,
    principal: &EntityUid,
    concrete: &Subject,
    dir: &PolicyDir,
) -> Claim {
    let ty = principal.type_name().to_string();
    let group = match &scope {
        PrincipalConstraint::In(g) | PrincipalConstraint::IsIn(_, g) => Some(g.clone()),
        _ => None,
    };
    if let Some(g) = group {
        let id = if ty == crate::vocab::WORKLOAD {
            format!(
                "spiffe://{}/ns/any/sa/member-of-{}",
                crate::analysis::cells::SYNTHETIC_TRUST_DOMAIN,
                g.id().unescaped()
            )
        } else {
            format!("member-of-{}", g.id().unescaped())
        };
        if let Ok(uid) = crate::vocab::uid(&ty, &id) {
            let mut s = Subject::member_of(uid, &g, dir.snapshot.entities(), Default::default());
            s.attrs = None;
            return Claim {
                label: format!("any {ty} in {g}"),
                principal: Some(s),
            };
        }
    }
    match scope {
        PrincipalConstraint::Eq(_) => Claim {
            label: principal.to_string(),
            principal: Some(concrete.clone()),
        },
        _ => Claim {
            label: format!("any {ty}"),
            principal: None,
        },
    }
}

/// `None` when some request of the cell is allowed; else the smallest set of forbids
/// that together deny every request (empty when no permit can match at all).
fn always_denied_by(
    dir: &PolicyDir,
    env: &RequestEnv,
    res: &[Residual],
    prover: &mut Prover,
) -> Result<Option<Vec<PolicyId>>, AnalysisError> {
    let schema = dir.snapshot.schema();
    let permits: Vec<Residual> = res
        .iter()
        .filter(|r| r.effect == Effect::Permit)
        .cloned()
        .collect();
    let mut forbids: Vec<Residual> = res
        .iter()
        .filter(|r| r.effect == Effect::Forbid)
        .cloned()
        .collect();
    if permits.is_empty() {
        return Ok(Some(Vec::new()));
    }
    if let Some(hard) = forbids.iter().find(|f| f.unconditional) {
        return Ok(Some(vec![hard.id.clone()]));
    }
    if forbids.is_empty() && permits.iter().any(|p| p.unconditional) {
        return Ok(None);
    }
    let denies = |forbids: &[Residual], prover: &mut Prover| -> Result<bool, AnalysisError> {
        let mut set = permits.clone();
        set.extend(forbids.iter().cloned());
        let compiled = compile_residuals(&set, env, schema)?;
        Ok(prover.some_allow(&compiled)?.is_none())
    };
    if !denies(&forbids, prover)? {
        return Ok(None);
    }
    // Deletion: a forbid stays only if the deny needs it.
    let mut i = 0;
    while i < forbids.len() {
        let mut without = forbids.clone();
        without.remove(i);
        if denies(&without, prover)? {
            forbids = without;
        } else {
            i += 1;
        }
    }
    Ok(Some(forbids.into_iter().map(|f| f.id).collect()))
}
