//! `cedar-gate access`: the entitlement report. For each principal in entities.json
//! and "any workload in group G", against each model and tool (and "any model in
//! model group M", "any tool in tool set T"): allowed, denied or conditional, with the
//! determining policies, their owners, and for conditional cells the residual
//! condition (the policies specialized to the cell, see [`crate::analysis::fold`]).
//!
//! A cell is decided without the solver when specialization settles it (no permit
//! left: denied; an unconditional forbid: denied; an unconditional permit and no
//! forbid: allowed). Otherwise the solver proves whether some request is allowed and
//! some denied; only when both are possible is the cell conditional.

use cedar_policy::{Effect, EntityTypeName, RequestEnv};
use serde::Serialize;

use crate::analysis::cells::{Candidate, compile_residuals, meaning, signatures, specialize_in};
use crate::analysis::fold::{Residual, Subject};
use crate::analysis::setdir::PolicyDir;
use crate::analysis::{AnalysisError, Prover};
use crate::vocab::{GROUP, WORKLOAD};

/// Resource types reported, each with its group type.
const RESOURCES: [(&str, &str); 2] = [("Model", "ModelGroup"), ("Tool", "ToolSet")];

/// Allowed, denied, or depends on the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every request of the cell is allowed.
    Allowed,
    /// Every request of the cell is denied.
    Denied,
    /// Some are allowed, some denied: see the condition.
    Conditional,
}

// === impl Verdict ===

impl Verdict {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
            Verdict::Conditional => "conditional",
        }
    }
}

/// One cell: a principal, some actions, a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessCell {
    /// The principal (a uid, or `any Workload in Group::"g"`).
    pub principal: String,
    /// Actions with this same answer.
    pub actions: Vec<String>,
    /// The resource (a uid, or `any Model in ModelGroup::"m"`).
    pub resource: String,
    /// The answer.
    pub verdict: Verdict,
    /// Determining policies (`id (@owner)`): the permits that allow, the forbids
    /// that deny, or both for a conditional cell.
    pub policies: Vec<String>,
    /// For a conditional cell: when it is allowed, in Cedar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// Computes the report for one directory.
pub fn access(dir: &PolicyDir, prover: &mut Prover) -> Result<Vec<AccessCell>, AnalysisError> {
    let schema = dir.snapshot.schema();
    let entities = dir.snapshot.entities();
    let envs = signatures(schema);
    let mut out = Vec::new();
    let principals = principal_rows(dir);
    let mut memo: std::collections::HashMap<String, CellAnswer> = Default::default();
    for (rty, gty) in RESOURCES {
        let (Ok(rtype), Ok(gtype)) = (rty.parse::<EntityTypeName>(), gty.parse::<EntityTypeName>())
        else {
            continue;
        };
        let resources = resource_columns(dir, &rtype, &gtype);
        for p in &principals {
            let ptype = p.subject.uid.type_name();
            let here: Vec<&RequestEnv> = envs
                .iter()
                .filter(|e| e.principal() == ptype && e.resource() == &rtype)
                .collect();
            for r in &resources {
                let mut cells: Vec<AccessCell> = Vec::new();
                for env in &here {
                    let res = specialize_in(dir, schema, env, Some(p), Some(r));
                    // Cells whose specialized policies read alike have the same answer.
                    let ids: Vec<String> = res.iter().map(|r| r.id.to_string()).collect();
                    let key = format!(
                        "{} {} {:?} {:?}",
                        env.principal(),
                        env.resource(),
                        ids,
                        meaning(&res)
                    );
                    let answer = match memo.get(&key) {
                        Some(a) => a.clone(),
                        None => {
                            let a = decide_cell(dir, env, &res, prover)?;
                            memo.insert(key, a.clone());
                            a
                        }
                    };
                    let (verdict, policies, condition) = answer;
                    let action = env.action().id().unescaped().to_owned();
                    match cells.iter_mut().find(|c| {
                        c.verdict == verdict && c.policies == policies && c.condition == condition
                    }) {
                        Some(c) => c.actions.push(action),
                        None => cells.push(AccessCell {
                            principal: p.label.clone(),
                            actions: vec![action],
                            resource: r.label.clone(),
                            verdict,
                            policies,
                            condition,
                        }),
                    }
                }
                out.extend(cells);
            }
        }
        let _ = entities;
    }
    Ok(out)
}

fn owned(dir: &PolicyDir, r: &Residual) -> String {
    let info = dir.policy_info(&r.id);
    match info.owner {
        Some(o) => format!("{} (@{o})", info.id),
        None => info.id,
    }
}

type CellAnswer = (Verdict, Vec<String>, Option<String>);

fn decide_cell(
    dir: &PolicyDir,
    env: &RequestEnv,
    res: &[Residual],
    prover: &mut Prover,
) -> Result<CellAnswer, AnalysisError> {
    let permits: Vec<&Residual> = res.iter().filter(|r| r.effect == Effect::Permit).collect();
    let forbids: Vec<&Residual> = res.iter().filter(|r| r.effect == Effect::Forbid).collect();
    if permits.is_empty() {
        return Ok((Verdict::Denied, Vec::new(), None));
    }
    let hard: Vec<String> = forbids
        .iter()
        .filter(|f| f.unconditional)
        .map(|f| owned(dir, f))
        .collect();
    if !hard.is_empty() {
        return Ok((Verdict::Denied, hard, None));
    }
    let permit_ids: Vec<String> = permits.iter().map(|p| owned(dir, p)).collect();
    if forbids.is_empty() && permits.iter().any(|p| p.unconditional) {
        return Ok((Verdict::Allowed, permit_ids, None));
    }
    let compiled = compile_residuals(res, env, dir.snapshot.schema())?;
    if prover.some_allow(&compiled)?.is_none() {
        let ids = forbids.iter().map(|f| owned(dir, f)).collect();
        return Ok((Verdict::Denied, ids, None));
    }
    if prover.some_deny(&compiled)?.is_none() {
        return Ok((Verdict::Allowed, permit_ids, None));
    }
    let allow = permits
        .iter()
        .map(|p| {
            if p.unconditional {
                "true".to_owned()
            } else {
                format!("({})", p.condition())
            }
        })
        .collect::<Vec<_>>()
        .join(" or ");
    let deny = forbids
        .iter()
        .map(|f| format!("{} ({})", dir.policy_info(&f.id).id, f.condition()))
        .collect::<Vec<_>>()
        .join(", ");
    let condition = if deny.is_empty() {
        format!("allowed when {allow}")
    } else if allow == "true" {
        format!("allowed unless {deny}")
    } else {
        format!("allowed when {allow}, unless {deny}")
    };
    let mut ids = permit_ids;
    ids.extend(forbids.iter().map(|f| owned(dir, f)));
    Ok((Verdict::Conditional, ids, Some(condition)))
}

/// Stored principals of every type, then "any workload in group G" for each group.
fn principal_rows(dir: &PolicyDir) -> Vec<Candidate> {
    let entities = dir.snapshot.entities();
    let mut rows: Vec<Candidate> = Vec::new();
    for ty in dir.snapshot.schema().principals() {
        let tyname = ty.to_string();
        if tyname == GROUP {
            continue;
        }
        let mut stored: Vec<_> = entities
            .iter()
            .map(|e| e.uid())
            .filter(|u| u.type_name() == ty)
            .collect();
        stored.sort();
        for uid in stored {
            rows.push(Candidate {
                label: uid.to_string(),
                subject: Subject::stored(&uid, entities),
                parents: Vec::new(),
            });
        }
    }
    if let Ok(wty) = WORKLOAD.parse::<EntityTypeName>() {
        rows.extend(
            crate::analysis::cells::principal_candidates(&wty, entities)
                .into_iter()
                .filter(|c| !c.parents.is_empty()),
        );
    }
    rows.dedup_by(|a, b| a.label == b.label);
    rows
}

/// Stored resources of `rtype`, then "any `rtype` in G" for each stored group of `gtype`.
fn resource_columns(
    dir: &PolicyDir,
    rtype: &EntityTypeName,
    gtype: &EntityTypeName,
) -> Vec<Candidate> {
    let entities = dir.snapshot.entities();
    let mut cols: Vec<Candidate> = Vec::new();
    let mut uids: Vec<_> = entities
        .iter()
        .map(|e| e.uid())
        .filter(|u| u.type_name() == rtype)
        .collect();
    uids.sort();
    for uid in uids {
        cols.push(Candidate {
            label: uid.to_string(),
            subject: Subject::stored(&uid, entities),
            parents: Vec::new(),
        });
    }
    let mut groups: Vec<_> = entities
        .iter()
        .map(|e| e.uid())
        .filter(|u| u.type_name() == gtype)
        .collect();
    groups.sort();
    for g in groups {
        let Ok(uid) = crate::vocab::uid(
            &rtype.to_string(),
            &format!("any-in-{}", g.id().unescaped()),
        ) else {
            continue;
        };
        cols.push(Candidate {
            label: format!("any {rtype} in {g}"),
            subject: Subject::member_of(uid, &g, entities, Default::default()),
            parents: vec![g.clone()],
        });
    }
    cols
}

/// The cells of `new` that differ from `old` (by principal, resource and action).
pub fn changed_cells(
    old: &[AccessCell],
    new: &[AccessCell],
) -> Vec<(Option<AccessCell>, Option<AccessCell>)> {
    let explode = |cells: &[AccessCell]| {
        let mut m = std::collections::BTreeMap::new();
        for c in cells {
            for a in &c.actions {
                let mut one = c.clone();
                one.actions = vec![a.clone()];
                m.insert((c.principal.clone(), c.resource.clone(), a.clone()), one);
            }
        }
        m
    };
    let (o, n) = (explode(old), explode(new));
    let mut keys: Vec<_> = o.keys().chain(n.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    let mut out: Vec<(Option<AccessCell>, Option<AccessCell>)> = Vec::new();
    for k in keys {
        let (a, b) = (o.get(&k), n.get(&k));
        let same = match (a, b) {
            (Some(a), Some(b)) => {
                a.verdict == b.verdict && a.condition == b.condition && a.policies == b.policies
            }
            _ => false,
        };
        if same {
            continue;
        }
        // Merge with the previous change when only the action differs.
        if let Some((pa, pb)) = out.last_mut()
            && same_but_action(pa.as_ref(), a)
            && same_but_action(pb.as_ref(), b)
        {
            if let Some(pa) = pa.as_mut() {
                pa.actions.push(k.2.clone());
            }
            if let Some(pb) = pb.as_mut() {
                pb.actions.push(k.2.clone());
            }
            continue;
        }
        out.push((a.cloned(), b.cloned()));
    }
    out
}

fn same_but_action(a: Option<&AccessCell>, b: Option<&AccessCell>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.principal == b.principal
                && a.resource == b.resource
                && a.verdict == b.verdict
                && a.policies == b.policies
                && a.condition == b.condition
        }
        _ => false,
    }
}
