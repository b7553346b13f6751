//! The request signatures of one principal type and resource type, grouped by what
//! their action does to the applicable policies, and a cell's policies specialized
//! once for all of them.
//!
//! The action enters a specialization ([`crate::analysis::fold`]) through the action
//! scope, which the fold always decides, and through whatever else reads the action.
//! A policy that nothing but its scope lets read the action specializes alike for
//! every action its scope admits; so in one cell (a principal, a resource) it is
//! folded once, not once per signature. Signatures whose applicable policies are all
//! such, and admit the same ones, form a class: they specialize alike in every cell,
//! so the report decides a class once per cell.

use cedar_policy::{Policy, PolicyId, RequestEnv, Schema};
use serde_json::Value;

use crate::analysis::cells::action_subject;
use crate::analysis::fold::{Cell, Residual, Subject, action_scope, fold_prepared, reads_action};
use crate::analysis::setdir::PolicyDir;

/// How a signature uses one applicable policy (an index into the policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Its scope admits the action and nothing else reads it: one fold per cell.
    Shared(usize),
    /// It reads the action (or the fold cannot decide its scope): folded per signature.
    Own(usize),
}

/// One signature: its action as the fold sees it, the applicable policies its action
/// scope does not exclude, and its class.
#[derive(Debug)]
struct Sig {
    action: Subject,
    uses: Vec<Use>,
    class: Option<usize>,
}

/// The signatures of one principal type and resource type, in the caller's order.
#[derive(Debug)]
pub(crate) struct Signatures {
    /// Every policy that applies to one of the signatures, with its JSON form.
    policies: Vec<(Policy, Value)>,
    sigs: Vec<Sig>,
}

// === impl Signatures ===

impl Signatures {
    /// Reads what each signature's action does to its applicable policies.
    pub(crate) fn new(dir: &PolicyDir, schema: &Schema, envs: &[&RequestEnv]) -> Self {
        let entities = dir.snapshot.entities();
        let mut policies: Vec<(Policy, Value)> = Vec::new();
        let mut index: std::collections::HashMap<PolicyId, (usize, bool)> = Default::default();
        let mut classes: Vec<Vec<usize>> = Vec::new();
        let mut sigs = Vec::with_capacity(envs.len());
        for env in envs {
            let action = action_subject(env, entities);
            let mut uses = Vec::new();
            for (p, j) in dir.relevant(env, schema).iter() {
                let (i, reads) = *index.entry(p.id().clone()).or_insert_with(|| {
                    policies.push((p.clone(), j.clone()));
                    (policies.len() - 1, reads_action(j))
                });
                match (reads, action_scope(j, &action)) {
                    (false, Some(false)) => {}
                    (false, Some(true)) => uses.push(Use::Shared(i)),
                    _ => uses.push(Use::Own(i)),
                }
            }
            let class = class_of(&uses, &mut classes);
            sigs.push(Sig {
                action,
                uses,
                class,
            });
        }
        Self { policies, sigs }
    }

    /// The class of signature `i`: signatures of one class specialize alike in every
    /// cell. `None` when it specializes alike only with itself.
    pub(crate) fn class(&self, i: usize) -> Option<usize> {
        self.sigs.get(i).and_then(|s| s.class)
    }

    /// The specializations of one cell, computed as asked.
    pub(crate) fn cell(&self, principal: Subject, resource: Subject) -> CellFolds<'_> {
        CellFolds {
            sigs: self,
            principal,
            resource,
            folds: vec![None; self.policies.len()],
        }
    }
}

/// The class of a signature with these uses, added to `classes` when new; `None` when
/// a policy reads its action.
fn class_of(uses: &[Use], classes: &mut Vec<Vec<usize>>) -> Option<usize> {
    let shared: Vec<usize> = uses
        .iter()
        .map(|u| match u {
            Use::Shared(i) => Some(*i),
            Use::Own(_) => None,
        })
        .collect::<Option<_>>()?;
    if let Some(c) = classes.iter().position(|c| *c == shared) {
        return Some(c);
    }
    classes.push(shared);
    Some(classes.len() - 1)
}

/// One cell (a concrete principal and resource) across the signatures: each shared
/// policy folded at most once.
#[derive(Debug)]
pub(crate) struct CellFolds<'s> {
    sigs: &'s Signatures,
    principal: Subject,
    resource: Subject,
    /// Per policy: its fold in this cell, once computed (shared uses only).
    folds: Vec<Option<Option<Residual>>>,
}

// === impl CellFolds ===

impl CellFolds<'_> {
    /// The policies specialized to this cell and signature `i`: what
    /// [`crate::analysis::cells::specialize_subjects`] gives for them.
    pub(crate) fn specialize(&mut self, i: usize) -> Vec<Residual> {
        let sigs = self.sigs;
        let Some(sig) = sigs.sigs.get(i) else {
            return Vec::new();
        };
        let cell = Cell {
            principal: Some(self.principal.clone()),
            action: sig.action.clone(),
            resource: Some(self.resource.clone()),
        };
        let mut out: Vec<Residual> = Vec::new();
        for u in &sig.uses {
            let (Use::Shared(k) | Use::Own(k)) = *u;
            let Some((p, j)) = sigs.policies.get(k) else {
                continue;
            };
            let folded = match u {
                // INVARIANT: a shared policy's scope admits this action and nothing
                // else reads it, so its fold under any action it admits is this one.
                Use::Shared(_) => match self.folds.get(k) {
                    Some(Some(done)) => done.clone(),
                    _ => {
                        let f = fold_prepared(p, j, &cell);
                        if let Some(slot) = self.folds.get_mut(k) {
                            *slot = Some(f.clone());
                        }
                        f
                    }
                },
                Use::Own(_) => fold_prepared(p, j, &cell),
            };
            out.extend(folded);
        }
        // As `fold::specialize` orders them.
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use crate::analysis::cells::{
        principal_candidates, resource_candidates, restore_in, signatures, specialize_subjects,
    };
    use cedar_policy::EntityTypeName;

    /// What a specialization says, comparably.
    fn said(res: &[Residual]) -> Vec<(String, String, bool, String)> {
        res.iter()
            .map(|r| {
                let id = r.id.to_string();
                (id, r.key.clone(), r.unconditional, r.json.to_string())
            })
            .collect()
    }

    /// Over every Workload signature against `rty`, for the first `n` principals and
    /// resources: one cell's folds give what specializing each signature alone gives,
    /// and signatures of one class give the same. Returns the largest class's size and
    /// how many signatures have none.
    fn same_as_alone(dir: &PolicyDir, rty: &str, n: usize) -> (usize, usize) {
        let schema = dir.snapshot.schema();
        let entities = dir.snapshot.entities();
        let (wty, rtype): (EntityTypeName, EntityTypeName) =
            ("Workload".parse().unwrap(), rty.parse().unwrap());
        let envs = signatures(schema);
        let here: Vec<&RequestEnv> = envs
            .iter()
            .filter(|e| e.principal() == &wty && e.resource() == &rtype)
            .collect();
        let sigs = Signatures::new(dir, schema, &here);
        let mut largest = 0;
        for p in principal_candidates(&wty, entities).iter().take(n) {
            for r in resource_candidates(&rtype, entities).iter().take(n) {
                let (ps, rs) = (restore_in(dir, p), restore_in(dir, r));
                let mut folds = sigs.cell(ps.clone(), rs.clone());
                let mut by_class: HashMap<usize, Vec<_>> = HashMap::new();
                for (i, env) in here.iter().enumerate() {
                    let alone =
                        specialize_subjects(dir, schema, env, Some(ps.clone()), Some(rs.clone()));
                    let got = said(&folds.specialize(i));
                    assert_eq!(got, said(&alone), "{} {env:?}", p.label);
                    if let Some(c) = sigs.class(i) {
                        by_class.entry(c).or_default().push(got);
                    }
                }
                for members in by_class.values() {
                    assert!(members.iter().all(|m| m == &members[0]));
                    largest = largest.max(members.len());
                }
            }
        }
        let classless = (0..here.len()).filter(|i| sigs.class(*i).is_none());
        (largest, classless.count())
    }

    #[test]
    fn shipped_set_folds_once_per_cell_as_per_signature() {
        let dir = PolicyDir::load(concat!(env!("CARGO_MANIFEST_DIR"), "/cedar")).unwrap();
        // The inference actions share a class: the saving this module is for.
        let (largest, _) = same_as_alone(&dir, "Model", 4);
        assert!(largest > 1, "{largest}");
        same_as_alone(&dir, "Tool", 4);
    }

    #[test]
    fn a_policy_that_reads_the_action_is_folded_per_signature() {
        let t = tempfile::tempdir().unwrap();
        let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/cedar/schema.cedarschema");
        std::fs::copy(schema, t.path().join("schema.cedarschema")).unwrap();
        std::fs::write(
            t.path().join("p.cedar"),
            r#"permit (principal in Group::"g", action in Action::"inference", resource)
when { action == Action::"chat" || context has ai };
forbid (principal, action, resource) unless { principal in Group::"g" };
"#,
        )
        .unwrap();
        let w = "spiffe://example.org/ns/a/sa/w";
        let entities = serde_json::json!([
            {"uid": {"type": "Group", "id": "g"}, "attrs": {}, "parents": []},
            {"uid": {"type": "Model", "id": "m"}, "attrs": {}, "parents": []},
            {"uid": {"type": "Workload", "id": w}, "attrs": {}, "parents": [{"type": "Group", "id": "g"}]},
        ]);
        std::fs::write(t.path().join("entities.json"), entities.to_string()).unwrap();
        let dir = PolicyDir::load(t.path().to_str().unwrap()).unwrap();
        // The 14 inference actions, each on its own; fine_tune, batch, unclassified
        // (only the forbid) share a class.
        assert_eq!(same_as_alone(&dir, "Model", 10), (3, 14));
        let policies = dir.enforced().policies();
        let reads: Vec<bool> = policies
            .map(|p| reads_action(&p.to_json().unwrap()))
            .collect();
        assert_eq!(reads.iter().filter(|r| **r).count(), 1);
    }
}
