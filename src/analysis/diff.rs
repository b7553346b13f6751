//! `cedar-gate diff OLD NEW`: who gains or loses access if a change merges.
//!
//! Two passes, both ending in counterexamples re-decided by the ordinary authorizer:
//! 1. **Policies, symbolically.** For every request signature whose applicable
//!    policies changed, symcc proves whether NEW allows a request OLD denies (a gain)
//!    or the reverse (a loss), over *every* possible request and entity data. A
//!    counterexample is then narrowed to principals and resources named in
//!    entities.json (stored ones, "a member of group G", an unlisted one) so that it
//!    is a request `cedar-gate check` reproduces; when none shows it, the abstract
//!    counterexample is reported with the entity data symcc chose.
//! 2. **Entities.** For every principal or resource whose groups or attributes differ,
//!    the cells it takes part in are compared with the policies specialized to it.

use std::collections::BTreeSet;

use cedar_policy::{Effect, EntityTypeName, EntityUid, RequestEnv, Schema};
use cedar_policy_symcc::{CompiledPolicySet, Env};
use serde::Serialize;
use serde_json::Value;

use crate::analysis::cells::{
    self, Candidate, Decided, Example, changed_entities, compile_residuals, meaning,
    principal_candidates, resource_candidates, signature, signatures, specialize_in,
};
use crate::analysis::fold::Subject;
use crate::analysis::setdir::{PolicyDir, PolicyInfo};
use crate::analysis::{AnalysisError, Prover};

/// Gain (NEW allows what OLD denied) or loss (the reverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// NEW allows a request OLD denied.
    Gain,
    /// NEW denies a request OLD allowed.
    Loss,
}

/// One gain or loss with its counterexample.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Gain or loss.
    pub kind: Kind,
    /// The request signature (`Workload chat Model`).
    pub signature: String,
    /// The principal: a uid, or `any Workload in Group::"g"`.
    pub principal: String,
    /// The actions (ids) the finding holds for: actions whose policies read alike
    /// are proved once, and the request is re-decided for each.
    pub actions: Vec<String>,
    /// The resource: a uid, or a description.
    pub resource: String,
    /// What was found: `policies` (pass 1) or `entities` (pass 2).
    pub source: &'static str,
    /// False when no principal or resource in entities.json shows it: the request is
    /// symcc's, with the entity data in `entities`.
    pub concrete: bool,
    /// The request (a `check` request file, for the first action) and both decisions.
    pub example: Example,
    /// For abstract findings: the entity data of the counterexample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities: Option<Value>,
}

/// A policy present on both sides whose text changed.
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    /// OLD's.
    pub old: PolicyInfo,
    /// NEW's.
    pub new: PolicyInfo,
    /// True when only annotations changed (same meaning).
    pub annotations_only: bool,
}

/// A policy that changed id but not meaning.
#[derive(Debug, Clone, Serialize)]
pub struct Renamed {
    /// OLD's.
    pub old: PolicyInfo,
    /// NEW's.
    pub new: PolicyInfo,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// OLD as named.
    pub old: String,
    /// NEW as named.
    pub new: String,
    /// Policies only in NEW.
    pub added: Vec<PolicyInfo>,
    /// Policies only in OLD.
    pub removed: Vec<PolicyInfo>,
    /// Same id, different text.
    pub changed: Vec<Changed>,
    /// Different id, same meaning (no access change by themselves).
    pub renamed: Vec<Renamed>,
    /// Entities whose groups or attributes changed.
    pub entities_changed: Vec<String>,
    /// Whether the schemas differ.
    pub schema_changed: bool,
    /// NEW allows what OLD denied.
    pub gains: Vec<Finding>,
    /// NEW denies what OLD allowed.
    pub losses: Vec<Finding>,
    /// Counterexamples that the ordinary authorizer did not confirm (should be none).
    pub unconfirmed: Vec<Finding>,
    /// Request signatures in NEW's schema.
    pub signatures: usize,
    /// Signatures whose applicable policies changed (proved by the solver).
    pub signatures_proved: usize,
    /// Solver queries made.
    pub solver_queries: u64,
}

/// How many narrowing attempts per symbolic finding before falling back to the
/// abstract counterexample.
const MAX_NARROWING_QUERIES: usize = 24;

/// Compares two policy directories.
pub fn diff(
    old: &PolicyDir,
    new: &PolicyDir,
    prover: &mut Prover,
) -> Result<DiffReport, AnalysisError> {
    let mut report = policy_changes(old, new);
    report.schema_changed = old.schema_text != new.schema_text;
    let envs = signatures(new.snapshot.schema());
    report.signatures = envs.len();
    let mut seen: BTreeSet<(Kind, String, String, String)> = BTreeSet::new();

    // Pass 1: policies, symbolically. Signatures whose policies, once the action is
    // fixed, read alike on both sides are proved once.
    for group in group_signatures(old, new, &envs) {
        report.signatures_proved += group.len();
        for f in symbolic_findings(old, new, &group, prover)? {
            record(&mut report, &mut seen, f);
        }
    }

    // Pass 2: entities.
    let changed = changed_entities(old.snapshot.entities(), new.snapshot.entities());
    report.entities_changed = changed.keys().cloned().collect();
    for uid in changed.values() {
        for f in entity_findings(old, new, &envs, uid, prover)? {
            record(&mut report, &mut seen, f);
        }
    }
    report.solver_queries = prover.queries;
    Ok(report)
}

/// Splits signatures into groups whose policies, once the action is fixed, read
/// alike; signatures where OLD and NEW read alike are dropped.
fn group_signatures<'e>(
    old: &PolicyDir,
    new: &PolicyDir,
    envs: &'e [RequestEnv],
) -> Vec<Vec<&'e RequestEnv>> {
    let schema = new.snapshot.schema();
    let same_schema = old.schema_text == new.schema_text;
    let mut groups: Vec<(String, Vec<&RequestEnv>)> = Vec::new();
    for env in envs {
        // The same policy texts under the same schema and action groups cannot differ:
        // skip the specialization (most signatures of a one-line change).
        if same_schema
            && cells::action_subject(env, old.snapshot.entities())
                == cells::action_subject(env, new.snapshot.entities())
            && old.relevant_texts(env, schema) == new.relevant_texts(env, schema)
        {
            continue;
        }
        let old_res = specialize_in(old, schema, env, None, None);
        let new_res = specialize_in(new, schema, env, None, None);
        let (mo, mn) = (meaning(&old_res), meaning(&new_res));
        if mo == mn {
            continue;
        }
        let key = format!("{} {} {:?} {:?}", env.principal(), env.resource(), mo, mn);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(env),
            None => groups.push((key, vec![env])),
        }
    }
    groups.into_iter().map(|(_, l)| l).collect()
}

/// Pass 1 for one group of signatures: a gain and a loss proved on the first
/// signature, each narrowed to a concrete finding when one shows it.
fn symbolic_findings(
    old: &PolicyDir,
    new: &PolicyDir,
    group: &[&RequestEnv],
    prover: &mut Prover,
) -> Result<Vec<Finding>, AnalysisError> {
    let Some(env) = group.first().copied() else {
        return Ok(Vec::new());
    };
    let schema = new.snapshot.schema();
    let old_c = compile_residuals(&specialize_in(old, schema, env, None, None), env, schema)?;
    let new_c = compile_residuals(&specialize_in(new, schema, env, None, None), env, schema)?;
    let mut findings = Vec::new();
    for kind in [Kind::Gain, Kind::Loss] {
        let Some(cex) = counterexample(kind, &old_c, &new_c, prover)? else {
            continue;
        };
        findings.push(match narrow(old, new, group, kind, prover)? {
            Some(f) => f,
            None => abstract_finding(old, new, group, kind, &cex),
        });
    }
    Ok(findings)
}

/// A request showing a `kind` from `old` to `new`, if any.
fn counterexample(
    kind: Kind,
    old: &CompiledPolicySet,
    new: &CompiledPolicySet,
    prover: &mut Prover,
) -> Result<Option<Env>, AnalysisError> {
    Ok(match kind {
        Kind::Gain => prover.allowed_by_not(new, old)?,
        Kind::Loss => prover.allowed_by_not(old, new)?,
    })
}

/// Pass 2 for one changed entity: the cells it takes part in as principal, then as
/// resource, with every candidate for the other role.
fn entity_findings(
    old: &PolicyDir,
    new: &PolicyDir,
    envs: &[RequestEnv],
    uid: &EntityUid,
    prover: &mut Prover,
) -> Result<Vec<Finding>, AnalysisError> {
    let entities = new.snapshot.entities();
    let fixed = Candidate {
        label: uid.to_string(),
        subject: Subject::stored(uid, entities),
        parents: Vec::new(),
    };
    let mut findings = Vec::new();
    for as_principal in [true, false] {
        for (other_ty, envs_here) in by_other_type(envs, uid.type_name(), as_principal) {
            let others = if as_principal {
                resource_candidates(other_ty, entities)
            } else {
                principal_candidates(other_ty, entities)
            };
            for other in &others {
                let (p, r) = if as_principal {
                    (&fixed, other)
                } else {
                    (other, &fixed)
                };
                findings.extend(pair_findings(old, new, &envs_here, p, r, prover)?);
            }
        }
    }
    Ok(findings)
}

/// The signatures with type `ty` as principal (`as_principal`) or as resource,
/// grouped by the type in the other role.
fn by_other_type<'e>(
    envs: &'e [RequestEnv],
    ty: &EntityTypeName,
    as_principal: bool,
) -> Vec<(&'e EntityTypeName, Vec<&'e RequestEnv>)> {
    let mut by_other: Vec<(&EntityTypeName, Vec<&RequestEnv>)> = Vec::new();
    for env in envs {
        let (mine, other) = if as_principal {
            (env.principal(), env.resource())
        } else {
            (env.resource(), env.principal())
        };
        if mine != ty {
            continue;
        }
        match by_other.iter_mut().find(|(t, _)| *t == other) {
            Some((_, l)) => l.push(env),
            None => by_other.push((other, vec![env])),
        }
    }
    by_other
}

/// Pass 2 for one principal and resource: a gain and a loss in each group of
/// signatures where OLD and NEW differ.
fn pair_findings(
    old: &PolicyDir,
    new: &PolicyDir,
    envs: &[&RequestEnv],
    p: &Candidate,
    r: &Candidate,
    prover: &mut Prover,
) -> Result<Vec<Finding>, AnalysisError> {
    let mut findings = Vec::new();
    for group in group_cells(old, new, envs, p, r) {
        for kind in [Kind::Gain, Kind::Loss] {
            let finding = cell_finding(old, new, &group, kind, p, r, "entities", prover)?;
            findings.extend(finding);
        }
    }
    Ok(findings)
}

fn record(
    report: &mut DiffReport,
    seen: &mut BTreeSet<(Kind, String, String, String)>,
    f: Finding,
) {
    if !seen.insert((
        f.kind,
        f.principal.clone(),
        f.actions.join(","),
        f.resource.clone(),
    )) {
        return;
    }
    let confirmed = confirms(f.kind, &f.example);
    match (confirmed, f.kind) {
        (false, _) => report.unconfirmed.push(f),
        (true, Kind::Gain) => report.gains.push(f),
        (true, Kind::Loss) => report.losses.push(f),
    }
}

/// Splits signatures into groups whose policies, specialized to `p` and `r`, read
/// alike; signatures where OLD and NEW read alike are dropped.
fn group_cells<'e>(
    old: &PolicyDir,
    new: &PolicyDir,
    envs: &[&'e RequestEnv],
    p: &Candidate,
    r: &Candidate,
) -> Vec<Vec<&'e RequestEnv>> {
    let schema = new.snapshot.schema();
    let mut groups: Vec<(Vec<String>, Vec<String>, Vec<&RequestEnv>)> = Vec::new();
    for env in envs {
        let mo = meaning(&specialize_in(old, schema, env, Some(p), Some(r)));
        let mn = meaning(&specialize_in(new, schema, env, Some(p), Some(r)));
        if mo == mn {
            continue;
        }
        match groups.iter_mut().find(|(a, b, _)| *a == mo && *b == mn) {
            Some((_, _, l)) => l.push(env),
            None => groups.push((mo, mn, vec![env])),
        }
    }
    groups.into_iter().map(|(_, _, l)| l).collect()
}

/// Looks for a symbolic finding among concrete principals and resources.
fn narrow(
    old: &PolicyDir,
    new: &PolicyDir,
    group: &[&RequestEnv],
    kind: Kind,
    prover: &mut Prover,
) -> Result<Option<Finding>, AnalysisError> {
    let Some(env) = group.first() else {
        return Ok(None);
    };
    let entities = new.snapshot.entities();
    let principals = principal_candidates(env.principal(), entities);
    let resources = resource_candidates(env.resource(), entities);
    let mut budget = MAX_NARROWING_QUERIES;
    for p in &principals {
        for r in &resources {
            if budget == 0 {
                return Ok(None);
            }
            let before = prover.queries;
            if let Some(f) = cell_finding(old, new, group, kind, p, r, "policies", prover)? {
                return Ok(Some(f));
            }
            if prover.queries > before {
                budget -= 1;
            }
        }
    }
    Ok(None)
}

/// Compares OLD and NEW in one concrete cell, for a group of signatures whose
/// specialized policies read alike (proved on the first, re-decided for each); a
/// finding of `kind` when the authorizer confirms one.
#[allow(clippy::too_many_arguments)]
fn cell_finding(
    old: &PolicyDir,
    new: &PolicyDir,
    group: &[&RequestEnv],
    kind: Kind,
    p: &Candidate,
    r: &Candidate,
    source: &'static str,
    prover: &mut Prover,
) -> Result<Option<Finding>, AnalysisError> {
    let Some(env) = group.first().copied() else {
        return Ok(None);
    };
    let schema: &Schema = new.snapshot.schema();
    let old_res = specialize_in(old, schema, env, Some(p), Some(r));
    let new_res = specialize_in(new, schema, env, Some(p), Some(r));
    if meaning(&old_res) == meaning(&new_res) {
        return Ok(None);
    }
    // Only a side with a permit left can allow.
    let allower = match kind {
        Kind::Gain => &new_res,
        Kind::Loss => &old_res,
    };
    if !allower.iter().any(|x| x.effect == Effect::Permit) {
        return Ok(None);
    }
    let old_c = compile_residuals(&old_res, env, schema)?;
    let new_c = compile_residuals(&new_res, env, schema)?;
    let Some(cex) = counterexample(kind, &old_c, &new_c, prover)? else {
        return Ok(None);
    };
    let mut first: Option<Example> = None;
    let mut actions = Vec::new();
    for e in group {
        let request = cells::request_file(&cex, e, Some(p), Some(r), Some(new.snapshot.entities()));
        let example = Example {
            old: decide(old, &request),
            new: decide(new, &request),
            request,
        };
        if confirms(kind, &example) {
            actions.push(e.action().id().unescaped().to_owned());
            first.get_or_insert(example);
        }
    }
    let Some(example) = first else {
        return Ok(None);
    };
    Ok(Some(Finding {
        kind,
        signature: signature(env),
        principal: p.label.clone(),
        actions,
        resource: r.label.clone(),
        source,
        concrete: true,
        example,
        entities: None,
    }))
}

fn decide(dir: &PolicyDir, request: &Value) -> Decided {
    cells::decide_file(dir, request).unwrap_or_else(|e| Decided {
        decision: "error",
        reason: "invalid_request",
        policies: vec![e],
    })
}

fn confirms(kind: Kind, e: &Example) -> bool {
    match kind {
        Kind::Gain => e.old.decision == "deny" && e.new.decision == "allow",
        Kind::Loss => e.old.decision == "allow" && e.new.decision == "deny",
    }
}

fn abstract_finding(
    old: &PolicyDir,
    new: &PolicyDir,
    group: &[&RequestEnv],
    kind: Kind,
    cex: &Env,
) -> Finding {
    let env = group.first().copied();
    let request = env.map_or(Value::Null, |e| {
        cells::request_file(cex, e, None, None, None)
    });
    let schema = new.snapshot.schema();
    let mut first: Option<Example> = None;
    let mut actions = Vec::new();
    for e in group {
        let Some(req) = cells::with_action(&cex.request, e.action()) else {
            continue;
        };
        let one = Env {
            request: req,
            entities: cex.entities.clone(),
        };
        let example = Example {
            old: cells::decide_abstract(&cells::relevant(old.enforced(), e, schema), old, &one),
            new: cells::decide_abstract(&cells::relevant(new.enforced(), e, schema), new, &one),
            request: cells::request_file(&one, e, None, None, None),
        };
        if confirms(kind, &example) {
            actions.push(e.action().id().unescaped().to_owned());
            first.get_or_insert(example);
        }
    }
    let unconfirmed = Example {
        old: Decided {
            decision: "unconfirmed",
            reason: "",
            policies: Vec::new(),
        },
        new: Decided {
            decision: "unconfirmed",
            reason: "",
            policies: Vec::new(),
        },
        request,
    };
    Finding {
        kind,
        signature: env.map(signature).unwrap_or_default(),
        principal: cex
            .request
            .principal()
            .map(|u| u.to_string())
            .unwrap_or_default(),
        actions,
        resource: cex
            .request
            .resource()
            .map(|u| u.to_string())
            .unwrap_or_default(),
        source: "policies",
        concrete: false,
        example: first.unwrap_or(unconfirmed),
        entities: Some(cells::cex_entities(cex)),
    }
}

/// Added, removed, changed and renamed policies (enforced and shadow).
fn policy_changes(old: &PolicyDir, new: &PolicyDir) -> DiffReport {
    let body = |dir: &PolicyDir, id: &str| -> Option<String> {
        let p = dir.with_shadow().policy(&cedar_policy::PolicyId::new(id))?;
        let mut j = p.to_json().ok()?;
        j.as_object_mut()?.remove("annotations");
        serde_json::to_string(&j).ok()
    };
    let full = |dir: &PolicyDir, id: &str| -> Option<String> {
        dir.with_shadow()
            .policy(&cedar_policy::PolicyId::new(id))
            .and_then(|p| p.to_json().ok())
            .map(|j| j.to_string())
    };
    let mut added: Vec<PolicyInfo> = Vec::new();
    let mut removed: Vec<PolicyInfo> = Vec::new();
    let mut changed = Vec::new();
    for (id, info) in &new.info {
        match old.info.get(id) {
            None => added.push(info.clone()),
            Some(o) if full(old, id) != full(new, id) => changed.push(Changed {
                old: o.clone(),
                new: info.clone(),
                annotations_only: body(old, id) == body(new, id),
            }),
            Some(_) => {}
        }
    }
    for (id, info) in &old.info {
        if !new.info.contains_key(id) {
            removed.push(info.clone());
        }
    }
    let mut renamed = Vec::new();
    removed.retain(|r| {
        let b = body(old, &r.id);
        match added
            .iter()
            .position(|a| body(new, &a.id) == b && b.is_some())
        {
            Some(i) => {
                renamed.push(Renamed {
                    old: r.clone(),
                    new: added.remove(i),
                });
                false
            }
            None => true,
        }
    });
    DiffReport {
        old: old.label.clone(),
        new: new.label.clone(),
        added,
        removed,
        changed,
        renamed,
        entities_changed: Vec::new(),
        schema_changed: false,
        gains: Vec::new(),
        losses: Vec::new(),
        unconfirmed: Vec::new(),
        signatures: 0,
        signatures_proved: 0,
        solver_queries: 0,
    }
}

// === impl DiffReport ===

impl DiffReport {
    /// Whether the report shows any access change.
    pub fn has(&self, kind: Kind) -> bool {
        match kind {
            Kind::Gain => !self.gains.is_empty(),
            Kind::Loss => !self.losses.is_empty(),
        }
    }
}
