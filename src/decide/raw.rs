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
use crate::policy::cache::RawKey;
use crate::request::HttpRequest;
use crate::vocab::Value;

/// One operation's question, in the request's terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawQuestion {
    /// Whether the token subject is the principal when both a workload and a
    /// token are present (`identity.principal: token`).
    token_principal: bool,
    method: String,
    host: String,
    path: String,
    scheme: String,
    source_ip: Option<IpAddr>,
    /// The workload's SPIFFE id: its uid, attributes and `context.auth`.
    workload: Option<SpiffeId>,
    /// The verified token, compared by content: principal, groups and every
    /// claim that reaches `context.auth`.
    token: Option<Arc<VerifiedToken>>,
    /// The API key's record, compared by content: its id, principal, groups,
    /// owner and lifetime (its age and remaining lifetime are volatile).
    api_key: Option<Arc<ApiKeyIdentity>>,
    action: EntityUid,
    resource: EntityUid,
    /// The protocol records (`ai`, `mcp`).
    context: Vec<(String, Value)>,
}

// === impl RawQuestion ===

impl RawQuestion {
    /// The question `question::ask` would build for `op` of `req` from
    /// `identity`, as a key.
    pub fn new(
        req: &HttpRequest,
        identity: &Identity,
        op: &Operation,
        choice: PrincipalSource,
    ) -> Self {
        Self {
            token_principal: choice == PrincipalSource::Token,
            method: req.method.clone(),
            host: req.host.clone(),
            path: req.path.clone(),
            scheme: req.scheme.clone(),
            source_ip: req.source.ip,
            workload: identity.workload.as_ref().map(|w| w.id.clone()),
            token: identity.token.clone(),
            api_key: identity.api_key.clone(),
            action: op.action.clone(),
            resource: op.resource.clone(),
            context: op.context.clone(),
        }
    }
}

impl RawKey for RawQuestion {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::decide::question;
    use crate::identity::{Workload, WorkloadSource};
    use crate::policy::OnPolicyError;
    use crate::policy::cache::DecisionCache;
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
                                RawQuestion::new(&req, &identity, &op, PrincipalSource::Token),
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
}
