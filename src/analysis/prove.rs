//! `validate --prove`: per policy, proofs that it
//! - never errors at run time (an error fails closed: the request is denied, and a
//!   forbid that errors is skipped by Cedar itself),
//! - is not dead (some request matches it),
//! - as a permit, is not completely overridden by forbids (some request it matches
//!   is allowed).
//!
//! Each proof runs per request signature the policy applies to; signatures whose
//! policy reads alike once the action is fixed are proved once.

use cedar_policy::{Effect, Policy, PolicySet, RequestEnv};
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
    let entities = dir.snapshot.entities();
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
        // Group signatures by what the policy says once the action is fixed.
        let mut groups: Vec<(String, RequestEnv, Residual)> = Vec::new();
        for env in &envs {
            let cell = Cell {
                principal: None,
                action: action_subject(env, entities),
                resource: None,
            };
            let Some(res) = fold(policy, &cell) else {
                continue;
            };
            let key = format!("{} {} {}", env.principal(), env.resource(), res.key);
            if !groups.iter().any(|(k, _, _)| *k == key) {
                groups.push((key, env.clone(), res));
            }
        }
        let mut matched = false;
        let mut allowed = false;
        let mut error: Option<(String, Env)> = None;
        for (_, env, res) in &groups {
            let Some(folded) = res.policy() else {
                continue;
            };
            let compiled = CompiledPolicy::compile(&folded, env, schema).map_err(|e| {
                AnalysisError::Compile {
                    what: format!("policy `{}` for {}", info.id, signature(env)),
                    message: e.to_string(),
                }
            })?;
            if error.is_none()
                && !res.unconditional
                && let Some(cex) = prover.may_error(&compiled)?
            {
                error = Some((signature(env), cex));
            }
            if !matched {
                matched = res.unconditional || prover.some_match(&compiled)?.is_some();
            }
            if matched && policy.effect() == Effect::Permit && !allowed {
                let mut set: Vec<Residual> = vec![res.clone()];
                let cell = Cell {
                    principal: None,
                    action: action_subject(env, entities),
                    resource: None,
                };
                let relevant = dir.relevant(env, schema);
                set.extend(
                    forbids
                        .iter()
                        .filter(|f| relevant.iter().any(|(p, _)| p.id() == f.id()))
                        .filter_map(|f| fold(f, &cell)),
                );
                let compiled = compile_residuals(&set, env, schema)?;
                allowed = prover.some_allow(&compiled)?.is_some();
            }
        }
        if let Some((sig, cex)) = error {
            let errors = errors_of(policy, &cex);
            findings.push(ProveFinding {
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
                example: Some(env_json(&cex)),
                blocking: Vec::new(),
            });
        }
        if !matched {
            findings.push(ProveFinding {
                problem: Problem::Dead,
                message: if envs.is_empty() {
                    "is dead: its scope fits no request signature of the schema".to_owned()
                } else {
                    "is dead: no request matches it".to_owned()
                },
                policy: info.clone(),
                example: None,
                blocking: Vec::new(),
            });
        } else if policy.effect() == Effect::Permit && !allowed {
            findings.push(ProveFinding {
                problem: Problem::Overridden,
                message: "is overridden: every request it permits is denied by a forbid".to_owned(),
                policy: info.clone(),
                example: None,
                blocking: Vec::new(),
            });
        }
    }
    Ok(ProveReport {
        policies: policies.len(),
        findings,
        solver_queries: prover.queries,
    })
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
        "entities": cex.entities.to_json_value().ok(),
    })
}
