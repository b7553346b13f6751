//! The decision cache's key taken from the request's own inputs, before any
//! Cedar request is built: a hit then skips building the principal's
//! attributes, the context records and the entity uids altogether.
//!
//! Sound only while it holds every input `gate::build_request` and
//! `gate::principal_specs` read, other than the volatile ones (request id,
//! time, a token's age and remaining lifetime; see
//! [`VOLATILE_CONTEXT`](crate::policy::reads::VOLATILE_CONTEXT)): the same raw
//! question then always builds the same Cedar question up to those. Holding
//! more than is read (a whole verified token) only costs hits, never
//! correctness. The cache uses it only when no policy that can apply to the
//! request's principal reads a volatile value (see `DecisionCache::decide_raw`).

use std::net::IpAddr;
use std::sync::Arc;

use cedar_policy::EntityUid;

use crate::classify::Operation;
use crate::identity::Identity;
use crate::identity::issuers::PrincipalSource;
use crate::identity::jwt::VerifiedToken;
use crate::identity::spiffe::SpiffeId;
use crate::policy::model::Value;
use crate::request::HttpRequest;

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
    action: EntityUid,
    resource: EntityUid,
    /// The protocol records (`ai`, `mcp`).
    context: Vec<(String, Value)>,
}

// === impl RawQuestion ===

impl RawQuestion {
    /// The question `gate::build_request` would build for `op` of `req` from
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
            action: op.action.clone(),
            resource: op.resource.clone(),
            context: op.context.clone(),
        }
    }
}
