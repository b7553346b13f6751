//! The step after the decision on routes where the gateway holds the provider
//! credential ([`crate::credentials`]): refuse a caller that sent its own
//! provider key, and on allow name the credential the answer injects, or
//! refuse the allow when none can be (never forwarded bare).

use crate::classify::Routes;
use crate::credentials::{CREDENTIAL_ANNOTATION, ProviderCredentials, Refusal};
use crate::decide::outcome::Outcome;
use crate::request::HttpRequest;
use crate::vocab::{Effect, Reason};

/// Applies the credential rules of the request's route to its outcome.
/// `identity_header` carried the caller's accepted token or API key.
pub fn finish(
    credentials: &ProviderCredentials,
    outcome: &mut Outcome,
    req: &HttpRequest,
    routes: &Routes,
    identity_header: Option<&str>,
) {
    // Refused credentials and unreadable requests keep their answer. A caller
    // with no identity at all that sends a provider key is told so: the key is
    // what it must stop sending.
    if outcome.decision.reason == Reason::InvalidIdentity
        || outcome.decision.reason.http_status() == 400
    {
        return;
    }
    let Some(route) = routes.find(req).map(|r| r.name.as_str()) else {
        return;
    };
    if !credentials.binds(route) {
        return;
    }
    if let Err(refusal) = credentials.check_presented(route, req, identity_header) {
        refuse(outcome, refusal);
        return;
    }
    if !outcome.decision.is_allow() {
        return;
    }
    let named: Vec<&str> = outcome
        .decision
        .policies
        .iter()
        .filter_map(|p| p.annotations.get(CREDENTIAL_ANNOTATION).map(String::as_str))
        .collect();
    match credentials.select(route, named, identity_header) {
        Some(Ok(injection)) => outcome.credential = Some(injection),
        Some(Err(refusal)) => refuse(outcome, refusal),
        None => {}
    }
}

/// Turns an answer into a refusal, keeping the determining policies in the
/// audit (an allow refused for want of a credential names the permit).
fn refuse(outcome: &mut Outcome, refusal: Refusal) {
    outcome.decision.effect = Effect::Deny;
    outcome.decision.reason = refusal.reason;
    outcome.decision.errors.push(refusal.message);
    outcome.credential = None;
}
