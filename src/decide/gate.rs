//! The decision core's one entry: resolve, classify, ask, decide, answer.

use std::sync::Arc;
use std::time::SystemTime;

use crate::classify::resource::AudienceMode;
use crate::classify::{self, Operation, Refusal};
use crate::config::Config;
use crate::credentials::ProviderCredentials;
use crate::decide::batch::Batch;
use crate::decide::credentials;
use crate::decide::outcome::{Answer, Outcome};
use crate::decide::question;
use crate::decide::raw::{RawQuestion, RawView};
use crate::decide::stepup;
use crate::identity::jwt::TokenError;
use crate::identity::keys::ApiKeys;
use crate::identity::token::TokenVerifier;
use crate::identity::{Identity, Resolver};
use crate::identity::{IdentityError, IdentityRejection, Rejection};
use crate::policy::cache::DecisionCache;
use crate::policy::snapshot::Snapshot;
use crate::request::HttpRequest;
use crate::vocab::Reason;
use crate::vocab::uid_string;

/// Decides requests against a snapshot.
#[derive(Debug, Clone)]
pub struct Gate {
    config: Arc<Config>,
    resolver: Resolver,
    cache: Option<Arc<DecisionCache<RawQuestion>>>,
    /// Provider credentials injected on allow; `None` when none is configured.
    credentials: Option<Arc<ProviderCredentials>>,
}

// === impl Gate ===

impl Gate {
    /// A gate with the given configuration.
    pub fn new(config: Arc<Config>) -> Self {
        let keys = config.api_keys.as_ref().map(|k| Arc::new(ApiKeys::new(k)));
        let resolver = Resolver::new(Arc::new(config.identity.clone())).with_keys(keys);
        let cache = DecisionCache::from_config_raw(&config.cache).map(Arc::new);
        let credentials = ProviderCredentials::new(&config.provider_credentials).map(Arc::new);
        Self {
            config,
            resolver,
            cache,
            credentials,
        }
    }

    /// The API keys, when configured (their watcher is started by the server).
    pub fn keys(&self) -> Option<&Arc<ApiKeys>> {
        self.resolver.keys()
    }

    /// The provider credentials, when configured (their watcher is started by
    /// the server).
    pub fn credentials(&self) -> Option<&Arc<ProviderCredentials>> {
        self.credentials.as_ref()
    }

    /// The decision cache, when enabled.
    pub fn cache(&self) -> Option<&DecisionCache<RawQuestion>> {
        self.cache.as_deref()
    }

    /// The token verifier, when issuers are configured (its key refresh tasks
    /// are started by the server; readiness waits for required issuers).
    pub fn tokens(&self) -> Option<&Arc<TokenVerifier>> {
        self.resolver.tokens()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Decides one request: who is asking, what for, and what the policies
    /// say, as one [`Outcome`].
    pub fn check(&self, snapshot: &Snapshot, req: &HttpRequest, now: SystemTime) -> Outcome {
        let classified = classify::classify(req, &self.config.routes);
        let answer = match self
            .resolver
            .resolve(req, now)
            .and_then(|identity| self.audience(req, identity))
        {
            Err(rejection) => Answer::Refused(rejection),
            Ok(identity) => self.answer(snapshot, req, identity, &classified, now),
        };
        let mut outcome = Outcome::new(snapshot, req, &classified, answer);
        self.inject(&mut outcome, req);
        outcome
    }

    /// On provider routes, when `provider_credentials` is configured: the
    /// caller's own provider key refused, the gateway's credential named on
    /// allow, or the allow refused when none can be named.
    fn inject(&self, outcome: &mut Outcome, req: &HttpRequest) {
        let Some(credentials) = &self.credentials else {
            return;
        };
        let identity_header = self.resolver.identity_header(&outcome.identity);
        credentials::finish(
            credentials,
            outcome,
            req,
            &self.config.routes,
            identity_header,
        );
    }

    /// RFC 8707: on a route serving one resource, the token must be for it
    /// (`classify::resource`); a token for another server is refused (401).
    fn audience(&self, req: &HttpRequest, mut identity: Identity) -> Result<Identity, Rejection> {
        let (Some(route), Some(token)) = (self.config.routes.find(req), &identity.token) else {
            return Ok(identity);
        };
        match (&route.resource, route.audience) {
            (Some(resource), AudienceMode::Resource) if !token.audiences.contains(resource) => {
                let e = IdentityError::Token(TokenError::ResourceMismatch);
                // The audit names the workload that presented the refused token.
                identity.token = None;
                Err(Rejection {
                    error: IdentityRejection {
                        code: e.reason(),
                        message: e.to_string(),
                    },
                    accepted: identity,
                })
            }
            _ => Ok(identity),
        }
    }

    /// Asks the policies about every operation of a request whose caller is known.
    fn answer<'o>(
        &self,
        snapshot: &Snapshot,
        req: &HttpRequest,
        identity: Identity,
        classified: &'o Result<Vec<Operation>, Refusal>,
        now: SystemTime,
    ) -> Answer<'o> {
        let choice = self.config.identity.principal;
        // The uid is all a cache hit needs; the specs (attributes, parents)
        // are built for each miss only.
        let principal = question::principal_uid(&identity, choice);
        let principal_uid = uid_string(&principal);
        let ops = match classified {
            Ok(ops) => ops,
            Err(refusal) => {
                return Answer::Unreadable {
                    identity,
                    principal: principal_uid,
                    refusal,
                };
            }
        };
        let on_error = self.config.authorization.on_policy_error;
        let mut batch = Batch {
            snapshot,
            cache: self.cache.as_deref(),
            on_error,
            valid_until: identity.valid_until(),
            now,
        }
        .decide(
            ops,
            &principal,
            identity.is_anonymous(),
            |op| RawView::new(req, &identity, op, choice),
            |op| {
                question::ask(
                    req,
                    &identity,
                    op,
                    now,
                    question::principal_specs(&identity, choice),
                )
            },
        );
        if let (Reason::NoPermit, Some(op), Some(_)) =
            (batch.decision.reason, batch.denied, &identity.token)
        {
            // Would more scopes permit it? Asked on a deny only (never a forbid).
            let principal = question::principal_specs(&identity, self.config.identity.principal);
            let authz = question::ask(req, &identity, op, now, principal);
            if let Some(scopes) = stepup::required_scopes(snapshot, authz, on_error) {
                batch.decision.reason = Reason::InsufficientScope;
                batch.required_scopes = scopes;
            }
        }
        Answer::Decided {
            identity,
            principal: principal_uid,
            batch,
        }
    }
}
