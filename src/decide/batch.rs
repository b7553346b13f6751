//! One step of the decision: the operations of a request decided as one. A
//! JSON-RPC batch is several operations; each is asked, the first denial is
//! the answer, and an allow names the policies of every operation. The shadow
//! set's answers fold the same way.

use std::time::{Instant, SystemTime};

use cedar_policy::EntityUid;

use crate::classify::Operation;
use crate::decide::raw::{RawQuestion, RawView};
use crate::policy::OnPolicyError;
use crate::policy::cache::{self, Decided, DecisionCache, Memo};
use crate::policy::snapshot::Snapshot;
use crate::record::metrics;
use crate::vocab::{AuthzRequest, Decision, Reason};

/// What a batch is decided with.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The policies.
    pub snapshot: &'a Snapshot,
    /// The decision cache, when enabled.
    pub cache: Option<&'a DecisionCache<RawQuestion>>,
    /// What a policy error means.
    pub on_error: OnPolicyError,
    /// When the caller's credentials stop being valid (no cached decision
    /// outlives it).
    pub valid_until: Option<SystemTime>,
    /// The caller's clock.
    pub now: SystemTime,
}

/// What a batch came to.
#[derive(Debug, Clone)]
pub struct BatchDecision<'o> {
    /// The first denial, or every allow merged.
    pub decision: Decision,
    /// The operation that was denied, when one was.
    pub denied: Option<&'o Operation>,
    /// Whether every decision asked came from the cache.
    pub cache_hit: bool,
    /// The shadow set's answer over the same operations.
    pub shadow: Option<Decision>,
    /// Step-up: the scopes that would permit the denied operation (reason
    /// `insufficient_scope`, see [`crate::decide::stepup`]); empty otherwise.
    pub required_scopes: Vec<String>,
    /// The cached decision's memo, when the batch is one operation decided
    /// from the cache.
    pub memo: Option<Memo>,
}

// === impl Batch ===

impl Batch<'_> {
    /// Decides `ops` in order for the principal `principal`, stopping at the
    /// first denial. `anonymous`: the caller presented no credentials, so a
    /// missing permit asks for them (`unauthenticated`). `question` builds each
    /// operation's Cedar question (principal specs included), on a cache miss
    /// only; `key` is its cache key, borrowed from the request's inputs.
    pub fn decide<'o: 'k, 'k>(
        &self,
        ops: &'o [Operation],
        principal: &EntityUid,
        anonymous: bool,
        mut key: impl FnMut(&'k Operation) -> RawView<'k>,
        mut question: impl FnMut(&Operation) -> AuthzRequest,
    ) -> BatchDecision<'o> {
        let mut allowed: Option<Decision> = None;
        let mut shadow: Option<Decision> = None;
        let mut cache_hit = false;
        let mut all_hits = true;
        let mut memo = None;
        for op in ops {
            let decided = self.evaluate(op, principal, &mut key, &mut question);
            all_hits &= decided.cache_hit;
            memo = decided.memo.filter(|_| ops.len() == 1);
            cache_hit = all_hits;
            if let Some(s) = decided.shadow {
                fold_shadow(&mut shadow, s);
            }
            let mut decision = decided.decision;
            if decision.reason == Reason::NoPermit && anonymous {
                // No credentials and no policy for Anonymous: ask for credentials.
                decision.reason = Reason::Unauthenticated;
            }
            if !decision.is_allow() {
                return BatchDecision {
                    decision,
                    denied: Some(op),
                    cache_hit,
                    shadow,
                    required_scopes: Vec::new(),
                    memo,
                };
            }
            match &mut allowed {
                None => allowed = Some(decision),
                Some(merged) => merge_allow(merged, decision),
            }
        }
        BatchDecision {
            // No operation at all cannot happen (classification never returns
            // an empty batch); it would be denied.
            decision: allowed
                .unwrap_or_else(|| Decision::deny(Reason::InvalidIdentity, Vec::new())),
            denied: None,
            cache_hit,
            shadow,
            required_scopes: Vec::new(),
            memo,
        }
    }

    /// One question, from the cache when it can be (keyed by the request's
    /// inputs: the Cedar question is built on a miss only).
    fn evaluate<'k>(
        &self,
        op: &'k Operation,
        principal: &EntityUid,
        key: &mut impl FnMut(&'k Operation) -> RawView<'k>,
        question: &mut impl FnMut(&Operation) -> AuthzRequest,
    ) -> Decided {
        let started = Instant::now();
        let decided = match self.cache {
            Some(c) => c.decide_raw(
                self.snapshot,
                &key(op),
                principal,
                || question(op),
                self.on_error,
                self.valid_until,
                self.now,
            ),
            None => cache::evaluate(self.snapshot, &question(op), self.on_error),
        };
        if !decided.cache_hit {
            metrics::record_evaluation(started.elapsed());
        }
        decided
    }
}

/// Folds one operation's shadow decision into the batch's: the first denial
/// stands, allows merge like the enforced ones.
fn fold_shadow(acc: &mut Option<Decision>, next: Decision) {
    match acc {
        None => *acc = Some(next),
        Some(d) if !d.is_allow() => {}
        Some(_) if !next.is_allow() => *acc = Some(next),
        Some(d) => merge_allow(d, next),
    }
}

/// Folds one more allow of a batch into the batch's allow: the policies of
/// every operation (each once, sorted) and every error.
fn merge_allow(merged: &mut Decision, more: Decision) {
    for p in more.policies {
        if !merged.policies.iter().any(|q| q.id == p.id) {
            merged.policies.push(p);
        }
    }
    merged.policies.sort_by(|a, b| a.id.cmp(&b.id));
    merged.errors.extend(more.errors);
}
