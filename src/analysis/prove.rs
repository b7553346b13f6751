//! `validate --prove`: per policy, proofs that it
//! - never errors at run time (an error fails closed: the request is denied, and a
//!   forbid that errors is skipped by Cedar itself),
//! - is not dead (some request matches it),
//! - as a permit, is not completely overridden by forbids (some request it matches
//!   is allowed).
//!
//! Each proof runs per request signature the policy applies to; signatures whose
//! policy reads alike once the action is fixed are proved once.

use cedar_policy::{Effect, Entities, Policy, PolicySet, RequestEnv};
use cedar_policy_symcc::{CompiledPolicy, Env};
use serde::Serialize;
use serde_json::Value;

use crate::analysis::cells::{action_subject, compile_residuals, signature};
use crate::analysis::fold::{Cell, Residual, fold};
use crate::analysis::setdir::{PolicyDir, PolicyInfo};
use crate::analysis::{AnalysisError, Prover};

/// What a proof found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// Some request makes the policy error.
    MayError,
    /// No request matches the policy.
    Dead,
    /// Every request the permit matches is denied by a forbid.
    Overridden,
    /// A group an example says is allowed is denied every request (see
    /// [`crate::analysis::guardrails`]).
    AlwaysDenied,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct ProveFinding {
    /// What is wrong.
    pub problem: Problem,
    /// The policy, with file and line.
    pub policy: PolicyInfo,
    /// In words.
    pub message: String,
    /// A request showing it (Cedar request and entities), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
    /// For an always-deny: the forbids that together cause it, each needed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocking: Vec<PolicyInfo>,
}

/// All proofs over one directory.
#[derive(Debug, Clone, Serialize)]
pub struct ProveReport {
    /// Policies proved (enforced and shadow).
    pub policies: usize,
    /// Problems found.
    pub findings: Vec<ProveFinding>,
    /// Solver queries made.
    pub solver_queries: u64,
}

/// Proves every policy of `dir`.
pub fn prove(dir: &PolicyDir, prover: &mut Prover) -> Result<ProveReport, AnalysisError> {
    let schema = dir.snapshot.schema();
    let all = dir.with_shadow();
    let forbids: Vec<&Policy> = dir
        .enforced()
        .policies()
        .filter(|p| p.effect() == Effect::Forbid)
        .collect();
    let mut findings = Vec::new();
    let mut policies: Vec<&Policy> = all.policies().collect();
    policies.sort_by_key(|p| {
        let i = dir.policy_info(p.id());
        (i.file, i.line)
    });
    for policy in &policies {
        let info = dir.policy_info(policy.id());
        let mut envs: Vec<RequestEnv> = policy.get_valid_request_envs(schema).collect();
        envs.sort_by_key(signature);
        let groups = signature_groups(policy, &envs, dir.snapshot.entities());
        let proved = prove_groups(dir, policy, &info, &groups, &forbids, prover)?;
        findings.extend(proved.findings(policy, &info, envs.is_empty()));
    }
    Ok(ProveReport {
        policies: policies.len(),
        findings,
        solver_queries: prover.queries,
    })
}

/// One group of request signatures: the key it is grouped by, its first signature
/// and what the policy says there.
type Group = (String, RequestEnv, Residual);

/// Groups the signatures `envs` by what `policy` says once the action is fixed, in
/// first-seen order; signatures where it cannot match are left out.
fn signature_groups(policy: &Policy, envs: &[RequestEnv], entities: &Entities) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for env in envs {
        let Some(res) = fold(policy, &action_cell(env, entities)) else {
            continue;
        };
        let key = format!("{} {} {}", env.principal(), env.resource(), res.key);
        if !groups.iter().any(|(k, _, _)| *k == key) {
            groups.push((key, env.clone(), res));
        }
    }
    groups
}

/// The cell of a signature with only its action concrete.
fn action_cell(env: &RequestEnv, entities: &Entities) -> Cell {
    Cell {
        principal: None,
        action: action_subject(env, entities),
        resource: None,
    }
}

/// What the solver showed of one policy over its signature groups.
#[derive(Default)]
struct Proved {
    /// Some request matches it.
    matched: bool,
    /// For a permit: some request it matches is allowed despite the forbids.
    allowed: bool,
    /// The first signature with a request that makes it error, and that request.
    error: Option<(String, Env)>,
}

/// Runs the proofs of `policy` group by group; each question is asked only until
/// one group answers it.
fn prove_groups(
    dir: &PolicyDir,
    policy: &Policy,
    info: &PolicyInfo,
    groups: &[Group],
    forbids: &[&Policy],
    prover: &mut Prover,
) -> Result<Proved, AnalysisError> {
    let schema = dir.snapshot.schema();
    let mut proved = Proved::default();
    for (_, env, res) in groups {
        let Some(folded) = res.policy() else {
            continue;
        };
        let compiled =
            CompiledPolicy::compile(&folded, env, schema).map_err(|e| AnalysisError::Compile {
                what: format!("policy `{}` for {}", info.id, signature(env)),
                message: e.to_string(),
            })?;
        if proved.error.is_none()
            && !res.unconditional
            && let Some(cex) = prover.may_error(&compiled)?
        {
            proved.error = Some((signature(env), cex));
        }
        if !proved.matched {
            proved.matched = res.unconditional || prover.some_match(&compiled)?.is_some();
        }
        if proved.matched && policy.effect() == Effect::Permit && !proved.allowed {
            proved.allowed = allowed_despite_forbids(dir, env, res, forbids, prover)?;
        }
    }
    Ok(proved)
}

/// Whether some request the permit `res` matches in `env` is allowed by it together
/// with the forbids that apply to `env`.
fn allowed_despite_forbids(
    dir: &PolicyDir,
    env: &RequestEnv,
    res: &Residual,
    forbids: &[&Policy],
    prover: &mut Prover,
) -> Result<bool, AnalysisError> {
    let schema = dir.snapshot.schema();
    let cell = action_cell(env, dir.snapshot.entities());
    let relevant = dir.relevant(env, schema);
    let mut set: Vec<Residual> = vec![res.clone()];
    set.extend(
        forbids
            .iter()
            .filter(|f| relevant.iter().any(|(p, _)| p.id() == f.id()))
            .filter_map(|f| fold(f, &cell)),
    );
    let compiled = compile_residuals(&set, env, schema)?;
    Ok(prover.some_allow(&compiled)?.is_some())
}

// === impl Proved ===

impl Proved {
    /// The findings for `policy`; `no_signature` when its scope fits no request
    /// signature of the schema.
    fn findings(self, policy: &Policy, info: &PolicyInfo, no_signature: bool) -> Vec<ProveFinding> {
        let mut findings = Vec::new();
        if let Some((sig, cex)) = self.error {
            findings.push(may_error_finding(policy, info, &sig, &cex));
        }
        if !self.matched {
            findings.push(ProveFinding {
                problem: Problem::Dead,
                message: if no_signature {
                    "is dead: its scope fits no request signature of the schema".to_owned()
                } else {
                    "is dead: no request matches it".to_owned()
                },
                policy: info.clone(),
                example: None,
                blocking: Vec::new(),
            });
        } else if policy.effect() == Effect::Permit && !self.allowed {
            findings.push(ProveFinding {
                problem: Problem::Overridden,
                message: "is overridden: every request it permits is denied by a forbid".to_owned(),
                policy: info.clone(),
                example: None,
                blocking: Vec::new(),
            });
        }
        findings
    }
}

/// The finding for a policy that errors on `cex` in signature `sig`.
fn may_error_finding(policy: &Policy, info: &PolicyInfo, sig: &str, cex: &Env) -> ProveFinding {
    let errors = errors_of(policy, cex);
    ProveFinding {
        problem: Problem::MayError,
        message: format!(
            "can error at run time ({sig}){}: the request is then denied (policy_error), and a forbid that errors does not apply",
            if errors.is_empty() {
                String::new()
            } else {
                format!(": {}", errors.join("; "))
            }
        ),
        policy: info.clone(),
        example: Some(env_json(cex)),
        blocking: Vec::new(),
    }
}

/// The errors the policy alone raises on a counterexample (the authorizer's re-check).
fn errors_of(policy: &Policy, cex: &Env) -> Vec<String> {
    let mut set = PolicySet::new();
    let _ = set.add(policy.clone());
    let response = cedar_policy::Authorizer::new().is_authorized(&cex.request, &set, &cex.entities);
    response
        .diagnostics()
        .errors()
        .map(|e| e.to_string())
        .collect()
}

fn env_json(cex: &Env) -> Value {
    serde_json::json!({
        "principal": cex.request.principal().map(|u| u.to_string()),
        "action": cex.request.action().map(|u| u.to_string()),
        "resource": cex.request.resource().map(|u| u.to_string()),
        "context": cex.request.context().and_then(|c| c.to_json_value().ok()),
        "entities": cex.entities.to_json_value().ok().map(sorted_by_uid),
    })
}

/// Cedar's `Entities` iterate in no fixed order: sorted by uid, the same
/// counterexample prints the same on every run.
fn sorted_by_uid(mut entities: Value) -> Value {
    if let Value::Array(list) = &mut entities {
        list.sort_by_cached_key(|e| e["uid"].to_string());
    }
    entities
}
