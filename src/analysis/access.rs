//! `cedar-gate access`: the entitlement report. For each principal in entities.json
//! and "any workload in group G", against each model and tool (and "any model in
//! model group M", "any tool in tool set T"): allowed, denied or conditional, with the
//! determining policies, their owners, and for conditional cells the residual
//! condition (the policies specialized to the cell, see [`crate::analysis::fold`]).
//!
//! With a config (`--config`), the token principals its issuers give are rows too: for
//! each issuer, "any `entity_type` in G" for every group its `groups_claim` can carry
//! (the groups entities.json stores or the policies name, with the issuer's
//! `groups_prefix`), and "any `entity_type` in no group". Tokens bring groups that
//! entities.json need not list, so without these rows the report would not show who a
//! token may act as.
//!
//! A cell is decided without the solver when specialization settles it (no permit
//! left: denied; an unconditional forbid: denied; an unconditional permit and no
//! forbid: allowed). Otherwise the solver proves whether some request is allowed and
//! some denied; only when both are possible is the cell conditional.

use std::collections::HashMap;

use cedar_policy::{Effect, EntityTypeName, EntityUid, RequestEnv};
use serde::Serialize;

use crate::analysis::action_classes::{CellFolds, Signatures};
use crate::analysis::cells::{Candidate, compile_residuals, meaning, restore_in, signatures};
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

/// Where token principals come from: one configured issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSource {
    /// The issuer (`iss`), to name the rows.
    pub issuer: String,
    /// The Cedar entity type of its subjects.
    pub entity_type: String,
    /// `Some(prefix)` when the issuer has a `groups_claim` (every group it gives starts
    /// with the prefix), `None` when its tokens carry no groups.
    pub groups_prefix: Option<String>,
}

// === impl TokenSource ===

impl TokenSource {
    /// The token sources of a config's issuers.
    pub fn from_config(config: &crate::config::Config) -> Vec<TokenSource> {
        config
            .identity
            .issuers
            .iter()
            .map(|i| TokenSource {
                issuer: i.issuer.clone(),
                entity_type: i.entity_type.name().to_string(),
                groups_prefix: i.groups_claim.as_ref().map(|_| i.groups_prefix.clone()),
            })
            .collect()
    }
}

/// Computes the report for one directory; `tokens` adds the rows of token principals.
pub fn access(
    dir: &PolicyDir,
    tokens: &[TokenSource],
    prover: &mut Prover,
) -> Result<Vec<AccessCell>, AnalysisError> {
    let schema = dir.snapshot.schema();
    let envs = signatures(schema);
    let mut out = Vec::new();
    let mut principals = principal_rows(dir);
    principals.extend(token_rows(dir, tokens));
    let mut memo = Memo::default();
    for (rty, gty) in RESOURCES {
        let (Ok(rtype), Ok(gtype)) = (rty.parse::<EntityTypeName>(), gty.parse::<EntityTypeName>())
        else {
            continue;
        };
        let resources = resource_columns(dir, &rtype, &gtype);
        let r_subjects: Vec<Subject> = resources.iter().map(|r| restore_in(dir, r)).collect();
        // Per principal type: its signatures against `rtype`, read once.
        let mut by_type: HashMap<String, (Vec<&RequestEnv>, Signatures)> = HashMap::new();
        for p in &principals {
            let ptype = p.subject.uid.type_name();
            let (here, sigs) = by_type.entry(ptype.to_string()).or_insert_with(|| {
                let here: Vec<&RequestEnv> = envs
                    .iter()
                    .filter(|e| e.principal() == ptype && e.resource() == &rtype)
                    .collect();
                let sigs = Signatures::new(dir, schema, &here);
                (here, sigs)
            });
            let p_subject = restore_in(dir, p);
            for (r, r_subject) in resources.iter().zip(&r_subjects) {
                let row = Row {
                    principal: &p.label,
                    resource: &r.label,
                    envs: here,
                    sigs,
                };
                let folds = sigs.cell(p_subject.clone(), r_subject.clone());
                out.extend(row.cells(dir, folds, &mut memo, prover)?);
            }
        }
    }
    Ok(out)
}

/// Answers already decided, keyed by signature types, policy ids and specialized
/// meaning: cells whose specialized policies read alike have the same answer.
type Memo = HashMap<(String, String, Vec<String>, Vec<String>), CellAnswer>;

/// One principal against one resource, over the signatures of their types.
struct Row<'a> {
    principal: &'a str,
    resource: &'a str,
    envs: &'a [&'a RequestEnv],
    sigs: &'a Signatures,
}

// === impl Row ===

impl Row<'_> {
    /// The report's cells: the signatures' actions grouped by answer, in signature
    /// order. A class of signatures specializes alike, so it is decided once.
    fn cells(
        &self,
        dir: &PolicyDir,
        mut folds: CellFolds<'_>,
        memo: &mut Memo,
        prover: &mut Prover,
    ) -> Result<Vec<AccessCell>, AnalysisError> {
        let mut by_class: HashMap<usize, CellAnswer> = HashMap::new();
        let mut cells: Vec<AccessCell> = Vec::new();
        for (i, env) in self.envs.iter().enumerate() {
            let class = self.sigs.class(i);
            let answer = match class.and_then(|c| by_class.get(&c)) {
                Some(a) => a.clone(),
                None => {
                    let a = remembered(dir, env, &folds.specialize(i), memo, prover)?;
                    if let Some(c) = class {
                        by_class.insert(c, a.clone());
                    }
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
                    principal: self.principal.to_owned(),
                    actions: vec![action],
                    resource: self.resource.to_owned(),
                    verdict,
                    policies,
                    condition,
                }),
            }
        }
        Ok(cells)
    }
}

/// The answer for specialized policies `res` of signature `env`, from `memo` when
/// policies that read alike were decided before.
fn remembered(
    dir: &PolicyDir,
    env: &RequestEnv,
    res: &[Residual],
    memo: &mut Memo,
    prover: &mut Prover,
) -> Result<CellAnswer, AnalysisError> {
    let ids: Vec<String> = res.iter().map(|r| r.id.to_string()).collect();
    let key = (
        env.principal().to_string(),
        env.resource().to_string(),
        ids,
        meaning(res),
    );
    if let Some(a) = memo.get(&key) {
        return Ok(a.clone());
    }
    let a = decide_cell(dir, env, res, prover)?;
    memo.insert(key, a.clone());
    Ok(a)
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
    // `Schema::principals` names a type once per action that takes it: each type once,
    // in the order it first comes, or every stored principal is a row many times over.
    let mut types: Vec<&EntityTypeName> = Vec::new();
    for ty in dir.snapshot.schema().principals() {
        if !types.contains(&ty) {
            types.push(ty);
        }
    }
    for ty in types {
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

/// The rows of token principals: per issuer, a member of each group its groups claim
/// can carry, and one in no group. Issuers whose entity type the schema does not take
/// as a principal give none (`serve` refuses such a config against this schema).
fn token_rows(dir: &PolicyDir, tokens: &[TokenSource]) -> Vec<Candidate> {
    let entities = dir.snapshot.entities();
    let principal_types: Vec<String> = dir
        .snapshot
        .schema()
        .principals()
        .map(|t| t.to_string())
        .collect();
    let groups = groups_known(dir);
    let mut rows = Vec::new();
    for t in tokens {
        if !principal_types.contains(&t.entity_type) {
            continue;
        }
        let source = format!("token of {}", t.issuer);
        if let Some(prefix) = &t.groups_prefix {
            for g in groups
                .iter()
                .filter(|g| g.id().unescaped().starts_with(prefix.as_str()))
            {
                let Ok(uid) =
                    crate::vocab::uid(&t.entity_type, &format!("member-of-{}", g.id().unescaped()))
                else {
                    continue;
                };
                rows.push(Candidate {
                    label: format!("any {} in {g} ({source})", t.entity_type),
                    subject: Subject::member_of(uid, g, entities, Default::default()),
                    parents: vec![g.clone()],
                });
            }
        }
        let Ok(uid) = crate::vocab::uid(&t.entity_type, "unlisted") else {
            continue;
        };
        rows.push(Candidate {
            label: format!("any {} in no group ({source})", t.entity_type),
            subject: Subject {
                uid,
                ancestors: Default::default(),
                attrs: Some(Default::default()),
            },
            parents: Vec::new(),
        });
    }
    rows
}

/// Every `Group` entities.json stores or a policy names, sorted.
fn groups_known(dir: &PolicyDir) -> Vec<EntityUid> {
    fn walk(v: &serde_json::Value, out: &mut std::collections::BTreeSet<EntityUid>) {
        match v {
            serde_json::Value::Object(m) => {
                if let (Some(serde_json::Value::String(ty)), Some(serde_json::Value::String(id))) =
                    (m.get("type"), m.get("id"))
                    && ty == GROUP
                    && let Ok(uid) = crate::vocab::uid(GROUP, id)
                {
                    out.insert(uid);
                }
                m.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out: std::collections::BTreeSet<EntityUid> = dir
        .snapshot
        .entities()
        .iter()
        .map(|e| e.uid())
        .filter(|u| u.type_name().to_string() == GROUP)
        .collect();
    for p in dir.enforced().policies() {
        if let Ok(j) = p.to_json() {
            walk(&j, &mut out);
        }
    }
    out.into_iter().collect()
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
