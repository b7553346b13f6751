//! The decision core: identity → operation → Cedar → [`Outcome`]. Plain
//! synchronous Rust, no tonic: the gRPC handler converts at the edges.

use std::time::SystemTime;

use cedar_policy::EntityUid;

use crate::cache::{self, DecisionCache};
use crate::classify::{self, Operation, Protocol};
use crate::config::Config;
use crate::identity::issuers::PrincipalSource;
use crate::identity::token::{TokenVerifier, unix_now};
use crate::identity::{self, Identity, IdentityError};
use crate::policy::eval::{AuthzRequest, Decision, PrincipalSpec, Reason};
use crate::policy::model::{
    ANONYMOUS, GROUP, Value, WORKLOAD, builtin_uid, uid_string, workload_attrs,
};
use crate::policy::snapshot::Snapshot;
use crate::request::HttpRequest;
use crate::shadow::ShadowOutcome;

/// Prefix of the headers cedar-gate sets; client-sent ones are never trusted.
pub const HEADER_PREFIX: &str = "x-cedar-gate-";

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
    pub policy_hash: String,
    /// Whether the decision came from the cache.
    pub cache_hit: bool,
    /// Client-sent `x-cedar-gate-*` header names, to strip before upstream.
    pub forged_headers: Vec<String>,
    /// The shadow set's decision, when the snapshot has `@shadow` policies.
    pub shadow: Option<ShadowOutcome>,
}

/// A refused credential: a fixed code and a safe message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRejection {
    /// Fixed snake_case code (metrics label).
    pub code: &'static str,
    /// Human-readable message; never contains a credential.
    pub message: String,
}

// === impl Outcome ===

impl Outcome {
    /// Whether the answer is a 401 (no acceptable credentials) rather than a 403.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self.decision.reason,
            Reason::Unauthenticated | Reason::InvalidIdentity
        )
    }
}

/// Decides requests against a snapshot.
#[derive(Debug, Clone)]
pub struct Gate {
    config: std::sync::Arc<Config>,
    /// Token verification (issuers, keys, cache); `None` without issuers.
    tokens: Option<std::sync::Arc<TokenVerifier>>,
    cache: Option<std::sync::Arc<DecisionCache>>,
}

// === impl Gate ===

impl Gate {
    /// A gate with the given configuration.
    pub fn new(config: std::sync::Arc<Config>) -> Self {
        let tokens = TokenVerifier::new(&config.identity).map(std::sync::Arc::new);
        let cache = DecisionCache::from_config(&config.cache).map(std::sync::Arc::new);
        Self {
            config,
            tokens,
            cache,
        }
    }

    /// The decision cache, when enabled.
    pub fn cache(&self) -> Option<&DecisionCache> {
        self.cache.as_deref()
    }

    /// The token verifier, when issuers are configured (its key refresh tasks
    /// are started by the server; readiness waits for required issuers).
    pub fn tokens(&self) -> Option<&std::sync::Arc<TokenVerifier>> {
        self.tokens.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Decides one request. A JSON-RPC batch is several operations: each is
    /// decided, the first denial is the answer, and an allow names the
    /// policies of every operation.
    pub fn check(&self, snapshot: &Snapshot, req: &HttpRequest, now: SystemTime) -> Outcome {
        let classified = classify::classify(req, &self.config.routes);
        let first = match &classified {
            Ok(ops) => ops.first().cloned(),
            Err(refusal) => Some(classify::unclassified(req, refusal.protocol)),
        }
        .unwrap_or_else(|| classify::http::classify(req));
        let mut outcome = Outcome {
            decision_id: uuid::Uuid::now_v7().to_string(),
            decision: Decision::deny(Reason::InvalidIdentity, Vec::new()),
            principal: String::new(),
            identity: Identity::default(),
            identity_error: None,
            protocol: first.protocol,
            action: uid_string(&first.action),
            resource: uid_string(&first.resource),
            model: first.model.clone(),
            tool: first.tool.clone(),
            operations: classified.as_ref().map_or(1, Vec::len),
            summary: Some(classify::Summary::of(&first, false)).filter(|s| !s.is_empty()),
            batch: match &classified {
                Ok(ops) if ops.len() > 1 => ops
                    .iter()
                    .map(|op| classify::Summary::of(op, true))
                    .collect(),
                _ => Vec::new(),
            },
            policy_generation: snapshot.generation,
            policy_hash: snapshot.hash.clone(),
            cache_hit: false,
            forged_headers: req
                .headers
                .iter()
                .filter(|(k, _)| k.starts_with(HEADER_PREFIX))
                .map(|(k, _)| k.clone())
                .collect(),
            shadow: None,
        };
        let mut identity = match identity::resolve(req, &self.config.identity, now) {
            Ok(identity) => identity,
            Err(e) => {
                outcome.identity_error = Some(rejection(&e));
                return outcome;
            }
        };
        if let Some(tokens) = &self.tokens {
            // A presented token that fails is a 401, even when a workload
            // identity would have sufficed: never fall back past a bad credential.
            match tokens.resolve(req, now) {
                Ok(token) => identity.token = token,
                Err(e) => {
                    outcome.identity_error = Some(rejection(&IdentityError::Token(e)));
                    // Keep the (accepted) workload for the audit trail: which
                    // workload presented the refused token.
                    outcome.identity = identity;
                    return outcome;
                }
            }
        }
        let anonymous = identity.workload.is_none() && identity.token.is_none();
        let specs = principal_specs(&identity, self.config.identity.principal);
        outcome.principal = uid_string(&specs.0.uid);
        let valid_until = credential_expiry(&identity);
        outcome.identity = identity;
        let ops = match classified {
            Ok(ops) => ops,
            Err(refusal) => {
                // Fail closed: a body the protocol needs but cannot read.
                outcome.decision =
                    Decision::deny(refusal.error.reason(), vec![refusal.error.to_string()]);
                return outcome;
            }
        };
        let mut allowed: Option<Decision> = None;
        // The shadow set's answer over the same operations (first denial wins).
        let mut shadow: Option<Decision> = None;
        let mut all_hits = true;
        let on_error = self.config.authorization.on_policy_error;
        let last = ops.len().saturating_sub(1);
        let mut specs = Some(specs);
        for (i, op) in ops.iter().enumerate() {
            // The last operation takes the principal; earlier ones copy it.
            let taken = if i == last {
                specs.take()
            } else {
                specs.clone()
            };
            let Some((principal, extra)) = taken else {
                break; // unreachable: only the last operation takes it
            };
            let evaluation = std::time::Instant::now();
            let identity = &outcome.identity;
            let uid = principal.uid.clone();
            let decided = match &self.cache {
                // Keyed by the request's inputs: the Cedar request is built on
                // a miss only.
                Some(c) => c.decide_raw(
                    snapshot,
                    cache::RawQuestion::new(req, identity, op, self.config.identity.principal),
                    &uid,
                    || build_request(req, identity, op, now, principal, extra),
                    on_error,
                    valid_until,
                    now,
                ),
                None => {
                    let authz = build_request(req, identity, op, now, principal, extra);
                    cache::evaluate(snapshot, &authz, on_error)
                }
            };
            if !decided.cache_hit {
                crate::metrics::record_evaluation(evaluation.elapsed());
            }
            all_hits &= decided.cache_hit;
            outcome.cache_hit = all_hits;
            if let Some(s) = decided.shadow {
                fold_shadow(&mut shadow, s);
            }
            let mut decision = decided.decision;
            if decision.reason == Reason::NoPermit && anonymous {
                // No credentials and no policy for Anonymous: ask for credentials.
                decision.reason = Reason::Unauthenticated;
            }
            if !decision.is_allow() {
                outcome.protocol = op.protocol;
                outcome.action = uid_string(&op.action);
                outcome.resource = uid_string(&op.resource);
                outcome.model = op.model.clone();
                outcome.tool = op.tool.clone();
                outcome.summary = Some(classify::Summary::of(op, false)).filter(|s| !s.is_empty());
                outcome.shadow =
                    shadow.map(|s| ShadowOutcome::new(snapshot, &op.action, &decision, s));
                outcome.decision = decision;
                return outcome;
            }
            match &mut allowed {
                None => allowed = Some(decision),
                Some(merged) => merge_allow(merged, decision),
            }
        }
        if let Some(decision) = allowed {
            outcome.decision = decision;
        }
        outcome.shadow =
            shadow.map(|s| ShadowOutcome::new(snapshot, &first.action, &outcome.decision, s));
        outcome
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

/// When the caller's credentials stop being valid: nothing decided for them
/// (a cached decision) may outlive this. The earliest of the certificate's
/// not-after and the token's `exp` (without leeway).
pub fn credential_expiry(identity: &Identity) -> Option<SystemTime> {
    let token = identity.token.as_ref().map(|t| {
        let exp = u64::try_from(t.expires_at).unwrap_or(0);
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(exp)
    });
    [identity.workload.as_ref().and_then(|w| w.not_after), token]
        .into_iter()
        .flatten()
        .min()
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

fn rejection(e: &IdentityError) -> IdentityRejection {
    IdentityRejection {
        code: e.reason(),
        message: e.to_string(),
    }
}

/// The uid of the single anonymous principal.
pub fn anonymous_uid() -> EntityUid {
    builtin_uid(ANONYMOUS, "anonymous")
}

/// Builds the Cedar question for a request (the token subject is the
/// principal when there is one).
pub fn authz_request(
    req: &HttpRequest,
    identity: &Identity,
    op: &Operation,
    now: SystemTime,
) -> AuthzRequest {
    authz_request_for(req, identity, op, now, PrincipalSource::Token)
}

fn workload_uid(w: &crate::identity::Workload) -> EntityUid {
    builtin_uid(WORKLOAD, w.id.as_str())
}

/// The principal of a request, and the other entity it brings (the workload
/// behind a token, referenced from the context, so it must be in the store).
pub fn principal_specs(
    identity: &Identity,
    choice: PrincipalSource,
) -> (PrincipalSpec, Vec<PrincipalSpec>) {
    let workload_spec = identity.workload.as_ref().map(|w| PrincipalSpec {
        uid: workload_uid(w),
        attrs: workload_attrs(&w.id),
        parents: Vec::new(),
    });
    let token_spec = identity.token.as_ref().map(|t| PrincipalSpec {
        uid: t.principal.clone(),
        attrs: Vec::new(),
        parents: t.groups.iter().map(|g| builtin_uid(GROUP, g)).collect(),
    });
    match (token_spec, workload_spec, choice) {
        (Some(t), Some(w), PrincipalSource::Token) => (t, vec![w]),
        (Some(_), Some(w), PrincipalSource::Workload) | (None, Some(w), _) => (w, Vec::new()),
        (Some(t), None, _) => (t, Vec::new()),
        (None, None, _) => (
            PrincipalSpec {
                uid: anonymous_uid(),
                attrs: Vec::new(),
                parents: Vec::new(),
            },
            Vec::new(),
        ),
    }
}

/// Builds the Cedar question, `choice` naming the principal when the request
/// has both a workload and a token. The other identity is always in
/// `context.auth`, so a policy can say "user U, only through workload W".
pub fn authz_request_for(
    req: &HttpRequest,
    identity: &Identity,
    op: &Operation,
    now: SystemTime,
    choice: PrincipalSource,
) -> AuthzRequest {
    let (principal, extra) = principal_specs(identity, choice);
    build_request(req, identity, op, now, principal, extra)
}

fn build_request(
    req: &HttpRequest,
    identity: &Identity,
    op: &Operation,
    now: SystemTime,
    principal: PrincipalSpec,
    extra: Vec<PrincipalSpec>,
) -> AuthzRequest {
    let workload = identity.workload.as_ref().map(workload_uid);

    let mut request = vec![
        ("method".to_owned(), Value::str(&req.method)),
        ("host".to_owned(), Value::str(&req.host)),
        ("path".to_owned(), Value::str(&req.path)),
        ("scheme".to_owned(), Value::str(&req.scheme)),
        ("request_id".to_owned(), Value::str(&req.id)),
        ("time".to_owned(), Value::Datetime(rfc3339_seconds(now))),
    ];
    if let Some(ip) = req.source.ip {
        request.push(("source_ip".to_owned(), Value::Ip(ip.to_string())));
    }
    let mut auth = vec![("method".to_owned(), Value::str(identity.method()))];
    if let Some(uid) = workload {
        auth.push(("workload".to_owned(), Value::Entity(uid)));
    }
    if let Some(w) = &identity.workload {
        auth.push(("spiffe_id".to_owned(), Value::str(w.id.as_str())));
    }
    if let Some(t) = &identity.token {
        auth.extend(crate::identity::token::context(t, unix_now(now)));
    }
    let mut context = vec![
        ("request".to_owned(), Value::Record(request)),
        ("auth".to_owned(), Value::Record(auth)),
    ];
    // Protocol records (`ai`, `mcp`), optional in the schema.
    context.extend(op.context.iter().cloned());
    AuthzRequest {
        principal,
        extra,
        action: op.action.clone(),
        resource: op.resource.clone(),
        context,
    }
}

/// RFC 3339 UTC to the second: `context.request.time`. A second is all a
/// time-of-day or expiry policy needs, and consecutive requests then share the
/// value (see `policy::model::extension`).
pub fn rfc3339_seconds(t: SystemTime) -> String {
    with_seconds(t, |seconds| {
        let mut out = String::with_capacity(seconds.len() + 1);
        out.push_str(seconds);
        out.push('Z');
        out
    })
}

/// RFC 3339 UTC with milliseconds, the form Cedar's `datetime` accepts.
pub fn rfc3339(t: SystemTime) -> String {
    let millis = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    with_seconds(t, |seconds| {
        let mut out = String::with_capacity(seconds.len() + 5);
        out.push_str(seconds);
        out.push('.');
        for digit in [millis / 100, millis / 10 % 10, millis % 10] {
            out.push(char::from_digit(digit, 10).unwrap_or('0'));
        }
        out.push('Z');
        out
    })
}

/// Calls `f` with `t` as `YYYY-MM-DDTHH:MM:SS` (UTC). Formatting a date costs
/// more than the rest of building a request, and every Check of the same
/// second shares it, so each thread remembers the last second it formatted.
fn with_seconds<R>(t: SystemTime, f: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        static LAST: std::cell::RefCell<(Option<u64>, String)> =
            const { std::cell::RefCell::new((None, String::new())) };
    }
    let Ok(since) = t.duration_since(SystemTime::UNIX_EPOCH) else {
        return f(&format_seconds(t));
    };
    let secs = since.as_secs();
    LAST.with_borrow_mut(|(last, text)| {
        if *last != Some(secs) {
            *text = format_seconds(t);
            *last = Some(secs);
        }
        f(text)
    })
}

fn format_seconds(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
    }

    #[test]
    fn rfc3339_forms_across_a_second_boundary() {
        // Same second twice (the remembered text), then the next second.
        assert_eq!(rfc3339(at(1_764_000_123_045)), "2025-11-24T16:02:03.045Z");
        assert_eq!(rfc3339(at(1_764_000_123_999)), "2025-11-24T16:02:03.999Z");
        assert_eq!(
            rfc3339_seconds(at(1_764_000_123_999)),
            "2025-11-24T16:02:03Z"
        );
        assert_eq!(rfc3339(at(1_764_000_124_000)), "2025-11-24T16:02:04.000Z");
        assert_eq!(
            rfc3339_seconds(at(1_764_000_124_000)),
            "2025-11-24T16:02:04Z"
        );
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00.000Z");
        // Before the epoch: formatted directly, not remembered.
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339_seconds(before), "1969-12-31T23:59:59Z");
    }
}
