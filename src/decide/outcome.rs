//! The last step of the decision: everything decided about one request,
//! built once from the steps' typed results.

use crate::classify::{self, Operation, Protocol, Refusal};
use crate::decide::batch::BatchDecision;
use crate::identity::{Identity, IdentityRejection, Rejection};
use crate::policy::cache::Memo;
use crate::policy::shadow::ShadowOutcome;
use crate::policy::snapshot::Snapshot;
use crate::record::metrics::CheckFigures;
use crate::request::HttpRequest;
use crate::vocab::{Decision, Reason, uid_string};

pub use crate::request::HEADER_PREFIX;

/// Everything decided about one request: what the response, the audit event
/// and the metrics are built from.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Unique id of this decision (UUIDv7, time-ordered).
    pub decision_id: String,
    /// The decision.
    pub decision: Decision,
    /// The principal uid as Cedar prints it, e.g. `Workload::"spiffe://..."`.
    pub principal: String,
    /// The resolved identity (empty when credentials were refused; only the
    /// workload when a token was refused).
    pub identity: Identity,
    /// Why credentials were refused, when they were.
    pub identity_error: Option<IdentityRejection>,
    /// How the request was understood.
    pub protocol: Protocol,
    /// `Action::"..."`.
    pub action: String,
    /// The resource uid.
    pub resource: String,
    /// The model asked for, if any (the denied operation's, on a deny).
    pub model: Option<String>,
    /// The MCP tool called, as `<server>/<tool>`, if any.
    pub tool: Option<String>,
    /// Operations decided: 1, or the JSON-RPC batch size.
    pub operations: usize,
    /// The decided operation's prompt controls and names (the denied one on
    /// a deny), for the audit.
    pub summary: Option<classify::Summary>,
    /// Every operation of a batch with its target, so an allowed batch names
    /// each tool it ran; empty for a single operation.
    pub batch: Vec<classify::Summary>,
    /// Generation of the snapshot that decided.
    pub policy_generation: u64,
    /// Content hash of that snapshot.
    pub policy_hash: std::sync::Arc<str>,
    /// Whether the decision came from the cache.
    pub cache_hit: bool,
    /// Client-sent `x-cedar-gate-*` header names, to strip before upstream.
    /// Copies, not slices of the request's buffer: the outcome goes on to the
    /// audit queue, which must hold no request buffers.
    pub forged_headers: Vec<String>,
    /// The shadow set's decision, when the snapshot has `@shadow` policies.
    pub shadow: Option<ShadowOutcome>,
    /// The provider credential injected on allow ([`crate::credentials`]).
    pub credential: Option<crate::credentials::Injection>,
    /// The body of a refusal in the protocol's own error shape (an MCP
    /// JSON-RPC error), when classification refused the request.
    pub refusal_body: Option<String>,
    /// Step-up: the scopes that would permit the denied request (reason
    /// `insufficient_scope`, see [`crate::decide::stepup`]); empty otherwise.
    pub required_scopes: Vec<String>,
    /// ext_proc list filtering (`wire::extproc`); `None` on Checks.
    pub list_filter: Option<ListFilterAudit>,
    /// The cached decision's memo, when one operation was decided from the
    /// cache: where the wire layer keeps the answer it wrote for it.
    pub memo: Option<Memo>,
}

/// The audit record of a list filtered by ext_proc.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ListFilterAudit {
    /// Which list (`tools`, `prompts`, `resources`, `resource_templates`, `models`).
    pub list: &'static str,
    /// The names removed.
    pub hidden: Vec<String>,
    /// The names kept although the bare call was denied: another call (other
    /// arguments) might be allowed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditional: Vec<String>,
    /// Why the response could not be filtered (it was replaced by an error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How a request was answered.
#[derive(Debug)]
pub enum Answer<'o> {
    /// The credentials were refused.
    Refused(Rejection),
    /// The caller is known, but the request cannot be read one way only
    /// (fail closed).
    Unreadable {
        /// The caller.
        identity: Identity,
        /// The principal uid as Cedar prints it.
        principal: String,
        /// Why the request cannot be read.
        refusal: &'o Refusal,
    },
    /// The policies decided.
    Decided {
        /// The caller.
        identity: Identity,
        /// The principal uid as Cedar prints it.
        principal: String,
        /// What the operations came to.
        batch: BatchDecision<'o>,
    },
}

/// An [`Answer`] with the operation it is about.
struct Verdict<'o> {
    decision: Decision,
    principal: String,
    identity: Identity,
    identity_error: Option<IdentityRejection>,
    cache_hit: bool,
    /// The denied operation on a deny, else the first.
    operation: &'o Operation,
    shadow: Option<ShadowOutcome>,
    refusal_body: Option<String>,
    required_scopes: Vec<String>,
    memo: Option<Memo>,
}

// === impl Outcome ===

impl Outcome {
    /// The outcome of one request, built once from its typed parts: the
    /// operations (or the refusal to read them) and the answer.
    pub fn new(
        snapshot: &Snapshot,
        req: &HttpRequest,
        classified: &Result<Vec<Operation>, Refusal>,
        answer: Answer<'_>,
    ) -> Self {
        let fallback;
        let first = match classified {
            Ok(ops) => match ops.first() {
                Some(op) => op,
                None => {
                    fallback = classify::http::classify(req);
                    &fallback
                }
            },
            Err(refusal) => {
                fallback = classify::unclassified(req, refusal.protocol);
                &fallback
            }
        };
        let verdict = answer.verdict(snapshot, first);
        let op = verdict.operation;
        Self {
            decision_id: crate::vocab::decision_id(),
            decision: verdict.decision,
            principal: verdict.principal,
            identity: verdict.identity,
            identity_error: verdict.identity_error,
            protocol: op.protocol,
            action: uid_string(&op.action),
            resource: uid_string(&op.resource),
            model: op.model.clone(),
            tool: op.tool.clone(),
            operations: classified.as_ref().map_or(1, Vec::len),
            summary: Some(classify::Summary::of(op, false)).filter(|s| !s.is_empty()),
            batch: match classified {
                Ok(ops) if ops.len() > 1 => ops
                    .iter()
                    .map(|op| classify::Summary::of(op, true))
                    .collect(),
                _ => Vec::new(),
            },
            policy_generation: snapshot.generation,
            policy_hash: snapshot.hash.clone(),
            cache_hit: verdict.cache_hit,
            forged_headers: req
                .headers
                .iter()
                .filter(|(k, _)| k.starts_with(HEADER_PREFIX))
                .map(|(k, _)| k.to_string())
                .collect(),
            shadow: verdict.shadow,
            refusal_body: verdict.refusal_body,
            required_scopes: verdict.required_scopes,
            list_filter: None,
            credential: None,
            memo: verdict.memo,
        }
    }

    /// Whether the answer is a 401 (no acceptable credentials) rather than a 403.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self.decision.reason,
            Reason::Unauthenticated | Reason::InvalidIdentity
        )
    }

    /// What this decision adds to the metrics.
    pub fn figures(&self, elapsed: std::time::Duration) -> CheckFigures<'_> {
        CheckFigures {
            allow: self.decision.is_allow(),
            reason: self.decision.reason,
            identity_rejection: self.identity_error.as_ref().map(|r| r.code),
            shadow_disagreement: self
                .shadow
                .as_ref()
                .filter(|s| s.disagrees)
                .map(|s| (s.action_label.as_str(), s.decision.is_allow())),
            elapsed,
        }
    }
}

// === impl Answer ===

impl<'o> Answer<'o> {
    fn verdict(self, snapshot: &Snapshot, first: &'o Operation) -> Verdict<'o> {
        match self {
            Answer::Refused(rejection) => Verdict {
                decision: Decision::deny(Reason::InvalidIdentity, Vec::new()),
                principal: String::new(),
                identity: rejection.accepted,
                identity_error: Some(rejection.error),
                cache_hit: false,
                operation: first,
                shadow: None,
                refusal_body: None,
                required_scopes: Vec::new(),
                memo: None,
            },
            Answer::Unreadable {
                identity,
                principal,
                refusal,
            } => Verdict {
                decision: Decision::deny(refusal.error.reason(), vec![refusal.error.to_string()]),
                principal,
                identity,
                identity_error: None,
                cache_hit: false,
                operation: first,
                shadow: None,
                refusal_body: refusal.error.body(),
                required_scopes: Vec::new(),
                memo: None,
            },
            Answer::Decided {
                identity,
                principal,
                batch,
            } => {
                let operation = batch.denied.unwrap_or(first);
                let shadow = batch
                    .shadow
                    .map(|s| ShadowOutcome::new(snapshot, &operation.action, &batch.decision, s));
                Verdict {
                    decision: batch.decision,
                    principal,
                    identity,
                    identity_error: None,
                    cache_hit: batch.cache_hit,
                    operation,
                    shadow,
                    required_scopes: batch.required_scopes,
                    refusal_body: None,
                    memo: batch.memo,
                }
            }
        }
    }
}
