//! One step of the decision: the Cedar question for an operation. The
//! principal (token subject, workload or `Anonymous`), the action and resource
//! from the operation, and the context: `context.request`, `context.auth`
//! (every credential, so a policy can say "user U, only through workload W")
//! and the protocol's records.

use std::time::SystemTime;

use cedar_policy::EntityUid;

use crate::classify::Operation;
use crate::identity::issuers::PrincipalSource;
use crate::identity::jwt::VerifiedToken;
use crate::identity::spiffe::workload_attrs;
use crate::identity::token::unix_now;
use crate::identity::{Identity, Workload};
use crate::request::HttpRequest;
use crate::vocab::{AuthzRequest, EntityType, PrincipalSpec, Value, builtin_uid, rfc3339_seconds};

/// The principal of a request, and the other entity it brings (the workload
/// behind a token, referenced from the context, so it must be in the store).
pub type Principal = (PrincipalSpec, Vec<PrincipalSpec>);

/// The uid of the single anonymous principal.
pub fn anonymous_uid() -> EntityUid {
    builtin_uid(EntityType::Anonymous, "anonymous")
}

fn workload_uid(w: &Workload) -> EntityUid {
    builtin_uid(EntityType::Workload, w.id.as_str())
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
    ask(req, identity, op, now, principal_specs(identity, choice))
}

/// Who the principal of a request is: the credential it comes from, and the
/// workload it brings along when a token is the principal.
enum Chosen<'a> {
    ApiKey(&'a crate::identity::keys::ApiKeyIdentity),
    Token(&'a VerifiedToken, Option<&'a Workload>),
    Workload(&'a Workload),
    Anonymous,
}

/// The one rule for picking the principal, shared by [`principal_uid`] and
/// [`principal_specs`] so the two can never disagree.
fn choose(identity: &Identity, choice: PrincipalSource) -> Chosen<'_> {
    // An API key, like a token, names the principal; its groups are parents.
    // It is always the principal: `principal: workload` is about tokens.
    if let Some(k) = &identity.api_key {
        return Chosen::ApiKey(k);
    }
    match (&identity.token, &identity.workload, choice) {
        (Some(t), w, PrincipalSource::Token) => Chosen::Token(t, w.as_ref()),
        (Some(_), Some(w), PrincipalSource::Workload) | (None, Some(w), _) => Chosen::Workload(w),
        (Some(t), None, PrincipalSource::Workload) => Chosen::Token(t, None),
        (None, None, _) => Chosen::Anonymous,
    }
}

/// The principal's uid alone: all a decision cache hit needs (the specs,
/// with attributes and parents, are built on a miss only).
pub fn principal_uid(identity: &Identity, choice: PrincipalSource) -> EntityUid {
    match choose(identity, choice) {
        Chosen::ApiKey(k) => k.principal.clone(),
        Chosen::Token(t, _) => t.principal.clone(),
        Chosen::Workload(w) => workload_uid(w),
        Chosen::Anonymous => anonymous_uid(),
    }
}

/// The principal of a request, and the other entity it brings.
pub fn principal_specs(identity: &Identity, choice: PrincipalSource) -> Principal {
    let workload_spec = |w: &Workload| PrincipalSpec {
        uid: workload_uid(w),
        attrs: workload_attrs(&w.id),
        parents: Vec::new(),
    };
    let groups = |gs: &[String]| -> Vec<EntityUid> {
        gs.iter()
            .map(|g| builtin_uid(EntityType::Group, g))
            .collect()
    };
    match choose(identity, choice) {
        // The workload behind an API key is brought along, as behind a token.
        Chosen::ApiKey(k) => (
            PrincipalSpec {
                uid: k.principal.clone(),
                attrs: Vec::new(),
                parents: groups(&k.groups),
            },
            identity.workload.iter().map(workload_spec).collect(),
        ),
        Chosen::Token(t, w) => (
            PrincipalSpec {
                uid: t.principal.clone(),
                attrs: Vec::new(),
                parents: groups(&t.groups),
            },
            w.into_iter().map(workload_spec).collect(),
        ),
        Chosen::Workload(w) => (workload_spec(w), Vec::new()),
        Chosen::Anonymous => (
            PrincipalSpec {
                uid: anonymous_uid(),
                attrs: Vec::new(),
                parents: Vec::new(),
            },
            Vec::new(),
        ),
    }
}

/// The question for one operation, with the principal already chosen.
pub fn ask(
    req: &HttpRequest,
    identity: &Identity,
    op: &Operation,
    now: SystemTime,
    (principal, extra): Principal,
) -> AuthzRequest {
    let mut context = vec![
        (
            "request".to_owned(),
            Value::Record(request_context(req, now)),
        ),
        (
            "auth".to_owned(),
            Value::Record(auth_context(identity, now)),
        ),
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

/// `context.request`.
fn request_context(req: &HttpRequest, now: SystemTime) -> Vec<(String, Value)> {
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
    request
}

/// `context.auth` (see `AuthInfo` in the schema).
fn auth_context(identity: &Identity, now: SystemTime) -> Vec<(String, Value)> {
    let mut auth = vec![("method".to_owned(), Value::str(identity.method()))];
    if let Some(w) = &identity.workload {
        auth.push(("workload".to_owned(), Value::Entity(workload_uid(w))));
        auth.push(("spiffe_id".to_owned(), Value::str(w.id.as_str())));
    }
    if let Some(t) = &identity.token {
        auth.extend(token_context(t, unix_now(now)));
    }
    if let Some(k) = &identity.api_key {
        auth.extend(crate::identity::keys::context(k, unix_now(now)));
    }
    auth
}

/// The token's part of `context.auth`.
pub fn token_context(t: &VerifiedToken, now: i64) -> Vec<(String, Value)> {
    let mut out = vec![
        ("issuer".to_owned(), Value::str(&t.issuer)),
        ("subject".to_owned(), Value::str(&t.subject)),
        ("audience".to_owned(), Value::str(&t.audience)),
        (
            "scopes".to_owned(),
            Value::Set(t.scopes.iter().map(Value::str).collect()),
        ),
        (
            "token_remaining_seconds".to_owned(),
            Value::Long(t.expires_at.saturating_sub(now).max(0)),
        ),
    ];
    if let Some(iat) = t.issued_at {
        out.push((
            "token_age_seconds".to_owned(),
            Value::Long(now.saturating_sub(iat).max(0)),
        ));
    }
    if let Some(jti) = &t.jti {
        out.push(("jti".to_owned(), Value::str(jti)));
    }
    if let Some(first) = t.actors.first() {
        out.push((
            "actor".to_owned(),
            Value::Record(vec![
                ("sub".to_owned(), Value::str(first)),
                (
                    "chain".to_owned(),
                    Value::Set(t.actors.iter().map(Value::str).collect()),
                ),
            ]),
        ));
    }
    if !t.claims.is_empty() {
        out.push((
            "claims".to_owned(),
            Value::Record(
                t.claims
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::str(v)))
                    .collect(),
            ),
        ));
    }
    out
}
