//! The decision cache's key taken from the request's own inputs, before any
//! Cedar request is built: a hit then skips building the principal's
//! attributes, the context records and the entity uids altogether.
//!
//! Sound only while it holds every input [`question::ask`] and
//! [`question::principal_specs`] read, other than the volatile ones (request id,
//! time, a token's age and remaining lifetime; see
//! `policy::reads::VOLATILE_CONTEXT`): the same raw
//! question then always builds the same Cedar question up to those. Holding
//! more than is read (a whole verified token) only costs hits, never
//! correctness. The cache uses it only when no policy that can apply to the
//! request's principal reads a volatile value (see `DecisionCache::decide_raw`).
//!
//! [`question::ask`]: crate::decide::question::ask
//! [`question::principal_specs`]: crate::decide::question::principal_specs

use std::net::IpAddr;
use std::sync::Arc;

use cedar_policy::EntityUid;

use crate::classify::Operation;
use crate::identity::Identity;
use crate::identity::issuers::PrincipalSource;
use crate::identity::jwt::VerifiedToken;
use crate::identity::keys::ApiKeyIdentity;
use crate::identity::spiffe::SpiffeId;
use crate::policy::cache::{RawKey, RawProbe};
use crate::request::HttpRequest;
use crate::vocab::Value;

/// One operation's question, in the request's terms, owned: what the cache
/// keeps. Compared (and hashed by the cache) through its [`RawView`] only.
#[derive(Debug, Clone)]
pub struct RawQuestion {
    token_principal: bool,
    method: String,
    host: String,
    path: String,
    scheme: String,
    source_ip: Option<IpAddr>,
    workload: Option<SpiffeId>,
    token: Option<Arc<VerifiedToken>>,
    api_key: Option<Arc<ApiKeyIdentity>>,
    action: EntityUid,
    resource: EntityUid,
    context: Vec<(String, Value)>,
}

/// One operation's question, borrowed from the request: what a cache hit is
/// looked up with (nothing cloned); [`RawQuestion`] is made from it on a miss.
/// Compared field by field; hashed by less (see its `Hash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawView<'a> {
    /// Whether the token subject is the principal when both a workload and a
    /// token are present (`identity.principal: token`).
    token_principal: bool,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    scheme: &'a str,
    source_ip: Option<IpAddr>,
    /// The workload's SPIFFE id: its uid, attributes and `context.auth`.
    workload: Option<&'a SpiffeId>,
    /// The verified token, compared by content: principal, groups and every
    /// claim that reaches `context.auth`.
    token: Option<&'a Arc<VerifiedToken>>,
    /// The API key's record, compared by content: its id, principal, groups,
    /// owner and lifetime (its age and remaining lifetime are volatile).
    api_key: Option<&'a Arc<ApiKeyIdentity>>,
    action: &'a EntityUid,
    resource: &'a EntityUid,
    /// The protocol records (`ai`, `mcp`).
    context: &'a [(String, Value)],
}

// === impl RawView ===

impl<'a> RawView<'a> {
    /// The question `question::ask` would build for `op` of `req` from
    /// `identity`, as a key.
    pub fn new(
        req: &'a HttpRequest,
        identity: &'a Identity,
        op: &'a Operation,
        choice: PrincipalSource,
    ) -> Self {
        Self {
            token_principal: choice == PrincipalSource::Token,
            method: &req.method,
            host: &req.host,
            path: &req.path,
            scheme: &req.scheme,
            source_ip: req.source.ip,
            workload: identity.workload.as_ref().map(|w| &w.id),
            token: identity.token.as_ref(),
            api_key: identity.api_key.as_ref(),
            action: &op.action,
            resource: &op.resource,
            context: &op.context,
        }
    }
}

/// Hashes a part of each field that equal views always share, chosen to be
/// cheap yet to tell apart the keys that differ in practice: the entity ids
/// without their types (Cedar's `EntityUid` hash walks type, namespace and id),
/// a token's subject and lifetime rather than every claim, an API key's id.
/// Equality still compares everything, so a collision costs a comparison,
/// never a wrong hit; every input a caller can vary freely (path, host,
/// context) is hashed whole.
impl std::hash::Hash for RawView<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.token_principal.hash(state);
        (self.method, self.host, self.path, self.scheme).hash(state);
        self.source_ip.hash(state);
        self.workload.map(SpiffeId::as_str).hash(state);
        self.token
            .map(|t| (&t.subject, t.expires_at, t.issued_at))
            .hash(state);
        self.api_key.map(|k| &k.id).hash(state);
        self.action.id().unescaped().hash(state);
        self.resource.id().unescaped().hash(state);
        self.context.hash(state);
    }
}

impl RawProbe for RawView<'_> {
    type Key = RawQuestion;

    fn view(&self) -> RawView<'_> {
        *self
    }

    fn to_key(&self) -> RawQuestion {
        RawQuestion {
            token_principal: self.token_principal,
            method: self.method.to_owned(),
            host: self.host.to_owned(),
            path: self.path.to_owned(),
            scheme: self.scheme.to_owned(),
            source_ip: self.source_ip,
            workload: self.workload.cloned(),
            token: self.token.cloned(),
            api_key: self.api_key.cloned(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            context: self.context.to_vec(),
        }
    }
}

// === impl RawQuestion ===

#[cfg(test)]
impl RawQuestion {
    /// [`RawView::new`], owned (tests; the cache makes its keys from views).
    pub fn new(
        req: &HttpRequest,
        identity: &Identity,
        op: &Operation,
        choice: PrincipalSource,
    ) -> Self {
        RawView::new(req, identity, op, choice).to_key()
    }
}

impl RawKey for RawQuestion {
    type View<'a> = RawView<'a>;

    fn view(&self) -> RawView<'_> {
        RawView {
            token_principal: self.token_principal,
            method: &self.method,
            host: &self.host,
            path: &self.path,
            scheme: &self.scheme,
            source_ip: self.source_ip,
            workload: self.workload.as_ref(),
            token: self.token.as_ref(),
            api_key: self.api_key.as_ref(),
            action: &self.action,
            resource: &self.resource,
            context: &self.context,
        }
    }
}

impl PartialEq for RawQuestion {
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

impl Eq for RawQuestion {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::decide::question;
    use crate::identity::{Workload, WorkloadSource};
    use crate::policy::OnPolicyError;
    use crate::policy::cache::{self, DecisionCache};
    use crate::policy::snapshot::Snapshot;

    const RESEARCH: &str = "spiffe://example.org/ns/agents/sa/research-agent";
    const ROGUE: &str = "spiffe://example.org/ns/agents/sa/rogue-agent";
    const OTHER_NS: &str = "spiffe://example.org/ns/web/sa/frontend";

    const POOL: &[&str] = &[
        r#"@id("approved-api") permit (principal in Group::"approved-agents", action == Action::"http", resource) when { context.request.path like "/v1/*" };"#,
        r#"@id("forbid-admin") forbid (principal, action == Action::"http", resource) when { context.request.path like "/admin*" };"#,
        r#"@id("anonymous-health") permit (principal, action == Action::"http", resource == Route::"/healthz") when { context.request.method == "GET" };"#,
        r#"@id("no-delete") forbid (principal, action, resource) when { context.request.method == "DELETE" };"#,
        r#"@id("agents-public") permit (principal is Workload, action, resource) when { principal has namespace && principal.namespace == "agents" && context.request.path like "/public/*" };"#,
        r#"@id("shadow-open") @shadow permit (principal, action, resource) when { context.request.path like "/public/*" };"#,
        r#"@id("agent-token-age") forbid (principal is Agent, action, resource) unless { context.auth has token_age_seconds && context.auth.token_age_seconds <= 60 };"#,
        r#"@id("overflows") forbid (principal, action, resource) when { context.request.path == "/boom" && 9223372036854775807 + 1 > 0 };"#,
        r#"@id("reads-time") forbid (principal, action, resource) when { context.request.time < datetime("2000-01-01") };"#,
    ];

    /// Reads a volatile value of API-key callers only.
    const KEY_AGE: &str = r#"@id("fresh-keys") forbid (principal is App, action, resource) unless { context.auth has api_key_age_seconds && context.auth.api_key_age_seconds <= 3600 };"#;

    fn snapshot(policies: &[&str]) -> Snapshot {
        let dir = tempfile::tempdir().unwrap();
        let members = [(RESEARCH, "approved-agents")];
        crate::policy::testkit::write_dir(dir.path(), "p.cedar", &policies.join("\n"), &members);
        crate::policy::load_dir(dir.path(), 1).unwrap()
    }

    /// Two keys of one `App` principal, one in `approved-agents`, one in no
    /// group: the same principal must not share decisions across its keys.
    fn api_key(approved: bool) -> ApiKeyIdentity {
        ApiKeyIdentity {
            id: if approved { "k-approved" } else { "k-none" }.to_owned(),
            principal: crate::vocab::uid("App", "notebook").unwrap(),
            groups: if approved {
                vec!["approved-agents".to_owned()]
            } else {
                Vec::new()
            },
            owner: "alice@example.com".to_owned(),
            created: 1_799_999_000,
            expires: 1_900_000_000,
        }
    }

    /// A request, its caller and its operation: `who` 0 is anonymous, 1 to 3
    /// workloads, 4 and 5 API keys (see [`api_key`]).
    fn inputs(
        who: usize,
        path: usize,
        method: usize,
        id: usize,
    ) -> (HttpRequest, Identity, Operation) {
        let identity = Identity {
            workload: [
                None,
                Some(RESEARCH),
                Some(ROGUE),
                Some(OTHER_NS),
                None,
                None,
            ][who]
                .map(|p| Workload {
                    id: SpiffeId::parse(p).unwrap(),
                    source: WorkloadSource::PeerPrincipal,
                    not_after: None,
                }),
            token: None,
            api_key: (who >= 4).then(|| Arc::new(api_key(who == 4))),
        };
        let path = [
            "/v1/models",
            "/admin/users",
            "/healthz",
            "/public/x",
            "/boom",
        ][path];
        let req = crate::wire::testkit::varied(method, path, id).unwrap();
        let op = crate::classify::http::classify(&req);
        (req, identity, op)
    }

    #[test]
    fn raw_keyed_decisions_equal_uncached_ones() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // Without and with a policy reading `context.request.time` (then every
        // request takes the Cedar-request key and is bypassed), and with one
        // reading a key's age (then only API-key callers are).
        let key_age = [&POOL[..8], &[KEY_AGE][..]].concat();
        for (policies, reads_time, reads_key_age) in [
            (&POOL[..8], false, false),
            (POOL, true, false),
            (&key_age[..], false, true),
        ] {
            let s = snapshot(policies);
            let cache = DecisionCache::<RawQuestion>::new_raw(100, Duration::from_secs(60));
            for round in 0..2 {
                let now = t0 + Duration::from_secs(round * 7);
                for who in 0..6 {
                    for path in 0..5 {
                        for method in 0..3 {
                            let (req, identity, op) = inputs(who, path, method, round as usize);
                            let principal =
                                question::principal_specs(&identity, PrincipalSource::Token);
                            let uid = principal.0.uid.clone();
                            // What a hit is asked with: the uid alone.
                            for choice in [PrincipalSource::Token, PrincipalSource::Workload] {
                                assert_eq!(
                                    question::principal_uid(&identity, choice),
                                    question::principal_specs(&identity, choice).0.uid
                                );
                            }
                            let authz = question::ask(&req, &identity, &op, now, principal);
                            let got = cache.decide_raw(
                                &s,
                                &RawView::new(&req, &identity, &op, PrincipalSource::Token),
                                &uid,
                                || authz.clone(),
                                OnPolicyError::Deny,
                                None,
                                now,
                            );
                            let (want, want_shadow) =
                                s.decide_with_shadow(&authz, OnPolicyError::Deny);
                            let at = format!(
                                "time {reads_time} key age {reads_key_age} who {who} path {path} method {method} round {round}"
                            );
                            assert_eq!(got.decision, want, "{at}");
                            assert_eq!(got.shadow, want_shadow, "{at}");
                            // A clean decision asked again (new id, new time) is a hit.
                            let clean = want.errors.is_empty()
                                && want_shadow.as_ref().is_none_or(|d| d.errors.is_empty());
                            let bypassed = reads_time || (reads_key_age && who >= 4);
                            assert_eq!(got.cache_hit, round == 1 && clean && !bypassed, "{at}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn raw_questions_differ_in_every_input_but_the_volatile_ones() {
        let key = |who, path, method, id| {
            let (req, identity, op) = inputs(who, path, method, id);
            RawQuestion::new(&req, &identity, &op, PrincipalSource::Token)
        };
        assert_eq!(key(1, 0, 0, 0), key(1, 0, 0, 2), "request id is volatile");
        assert_ne!(key(1, 0, 0, 0), key(2, 0, 0, 0), "workload");
        assert_ne!(key(1, 0, 0, 0), key(0, 0, 0, 0), "anonymous");
        assert_ne!(key(1, 0, 0, 0), key(1, 3, 0, 0), "path");
        assert_ne!(key(1, 0, 0, 0), key(1, 0, 1, 0), "method");
        assert_eq!(key(4, 0, 0, 0), key(4, 0, 0, 1), "an API key's request id");
        assert_ne!(
            key(4, 0, 0, 0),
            key(5, 0, 0, 0),
            "the API key (same principal)"
        );
        assert_ne!(key(4, 0, 0, 0), key(0, 0, 0, 0), "an API key against none");
        let (mut req, identity, op) = inputs(1, 0, 0, 0);
        let base = RawQuestion::new(&req, &identity, &op, PrincipalSource::Token);
        let again = |req: &HttpRequest, op: &Operation, choice| {
            RawQuestion::new(req, &identity, op, choice)
        };
        req.host = "other.example.com".to_owned();
        assert_ne!(base, again(&req, &op, PrincipalSource::Token), "host");
        req.host = "models.example.com".to_owned();
        req.scheme = "http".to_owned();
        assert_ne!(base, again(&req, &op, PrincipalSource::Token), "scheme");
        req.scheme = "https".to_owned();
        req.source.ip = Some(std::net::IpAddr::from([10, 0, 0, 1]));
        assert_ne!(base, again(&req, &op, PrincipalSource::Token), "source ip");
        req.source.ip = None;
        assert_ne!(base, again(&req, &op, PrincipalSource::Workload), "choice");
        let mut op2 = op.clone();
        op2.context
            .push(("ai".to_owned(), Value::Record(Vec::new())));
        assert_ne!(
            base,
            again(&req, &op2, PrincipalSource::Token),
            "op context"
        );
    }

    /// A token of `subject`; `fresh` changes only its `jti` and lifetime.
    fn token(subject: &str, fresh: bool) -> VerifiedToken {
        VerifiedToken {
            issuer: "https://idp.example.com".to_owned(),
            principal: crate::vocab::uid("User", subject).unwrap(),
            subject: subject.to_owned(),
            audience: "gate".to_owned(),
            audiences: vec!["gate".to_owned()],
            scopes: vec!["read".to_owned()],
            groups: Vec::new(),
            issued_at: Some(1_799_999_000 + i64::from(fresh)),
            not_before: None,
            expires_at: 1_900_000_000 + i64::from(fresh),
            leeway: 30,
            jti: fresh.then(|| "j-2".to_owned()),
            actors: Vec::new(),
            claims: Vec::new(),
            source: crate::identity::jwt::TokenSource::Header,
        }
    }

    /// Every input of a raw question, each drawn from two or three values
    /// (so that equal questions are frequent), plus the request id, which is
    /// not one: the model a question must be equal by.
    type Picks = ([usize; 12], usize);

    fn picks() -> impl proptest::strategy::Strategy<Value = Picks> {
        let sizes: [usize; 12] = [3, 2, 2, 2, 3, 3, 4, 3, 2, 3, 4, 2];
        (sizes.map(|n| 0..n), 0..3usize)
    }

    /// Two questions: mostly the second is the first with one input (or only
    /// the request id) drawn again, so that equal and nearly equal pairs are
    /// frequent; sometimes two unrelated ones.
    fn pairs() -> impl proptest::strategy::Strategy<Value = (Picks, Picks)> {
        use proptest::strategy::Strategy;
        (picks(), picks(), 0..14usize).prop_map(|(a, fresh, which)| {
            let b = match which {
                12 => (a.0, fresh.1),
                13 => fresh,
                i => {
                    let mut inputs = a.0;
                    inputs[i] = fresh.0[i];
                    (inputs, fresh.1)
                }
            };
            (a, b)
        })
    }

    /// The request, caller and operation `picks` names, and its principal source.
    fn picked(
        (
            [
                method,
                host,
                path,
                scheme,
                ip,
                workload,
                tok,
                key,
                action,
                resource,
                context,
                choice,
            ],
            id,
        ): Picks,
    ) -> (HttpRequest, Identity, Operation, PrincipalSource) {
        let mut req =
            crate::wire::testkit::varied(method, ["/v1/models", "/public/x"][path], id).unwrap();
        req.host = ["models.example.com", "other.example.com"][host].to_owned();
        req.scheme = ["https", "http"][scheme].to_owned();
        req.source.ip = [None, Some([10, 0, 0, 1].into()), Some([10, 0, 0, 2].into())][ip];
        let identity = Identity {
            workload: [None, Some(RESEARCH), Some(ROGUE)][workload].map(|p| Workload {
                id: SpiffeId::parse(p).unwrap(),
                source: WorkloadSource::PeerPrincipal,
                not_after: None,
            }),
            token: [
                None,
                Some(("alice", false)),
                Some(("alice", true)),
                Some(("bob", false)),
            ][tok]
                .map(|(subject, fresh)| Arc::new(token(subject, fresh))),
            api_key: [None, Some(true), Some(false)][key].map(|a| Arc::new(api_key(a))),
        };
        let uid = |t, id| crate::vocab::uid(t, id).unwrap();
        // Same entity id, other type: only the type tells them apart.
        let resource = [
            uid("Route", "/v1/models"),
            uid("Model", "/v1/models"),
            uid("Route", "/public/x"),
        ][resource]
            .clone();
        let mut op = Operation::new(
            crate::classify::Protocol::Http,
            [uid("Action", "http"), uid("Action", "mcp")][action].clone(),
            resource,
        );
        let model = |m: &str| vec![("model".to_owned(), Value::str(m))];
        op.context = match context {
            0 => Vec::new(),
            1 => vec![("ai".to_owned(), Value::Record(model("a")))],
            2 => vec![("ai".to_owned(), Value::Record(model("b")))],
            _ => vec![("mcp".to_owned(), Value::Record(model("a")))],
        };
        let choice = [PrincipalSource::Token, PrincipalSource::Workload][choice];
        (req, identity, op, choice)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        /// A hit is looked up with the borrowed view, an entry stored under the
        /// owned key: the cache must hash the two alike and find an entry by a
        /// probe exactly when the owned keys are equal, which is exactly when
        /// every input but the request id is.
        #[test]
        fn borrowed_and_owned_keys_agree((a, b) in pairs()) {
            let (req_a, id_a, op_a, choice_a) = picked(a);
            let (req_b, id_b, op_b, choice_b) = picked(b);
            let view_a = RawView::new(&req_a, &id_a, &op_a, choice_a);
            let view_b = RawView::new(&req_b, &id_b, &op_b, choice_b);
            let (owned_a, owned_b) = (view_a.to_key(), view_b.to_key());
            let same = a.0 == b.0;
            proptest::prop_assert_eq!(owned_a == owned_b, same);
            proptest::prop_assert_eq!(view_a == view_b, same);
            let (probe_a, key_a, finds_own) = cache::probe_against(&view_a, owned_a.clone());
            proptest::prop_assert!(finds_own);
            proptest::prop_assert_eq!(probe_a, key_a);
            let (probe_b, key_b, finds_b) = cache::probe_against(&view_b, owned_a.clone());
            proptest::prop_assert_eq!(finds_b, same);
            proptest::prop_assert_eq!(key_b, key_a);
            let (_, key_of_b, finds_a) = cache::probe_against(&view_a, owned_b);
            proptest::prop_assert_eq!(finds_a, same);
            if same {
                proptest::prop_assert_eq!(probe_b, key_a);
                proptest::prop_assert_eq!(key_of_b, key_a);
            }
            // The owned key holds what the view borrows.
            proptest::prop_assert!(owned_a.view() == view_a);
        }
    }
}
