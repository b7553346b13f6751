//! The audit stream: one JSON line per decision, on its own sink (stdout or
//! a file), separate from diagnostic logs. The schema is `proto/audit.proto`.
//!
//! Lines are handed to a writer thread through a bounded channel, so the Check
//! path never waits on disk or a pipe unless the channel is full (then it
//! blocks rather than drop an event: an audit trail with holes is worse than
//! back-pressure).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use crate::decide::Outcome;
use crate::request::HttpRequest;
use crate::vocab::DeterminingPolicy;

mod escape;
mod json;
mod log;

use json::{JsonObject, key};
pub use log::AuditLog;

/// One decision, as written to the audit log. Never a token, a cookie or a body.
#[derive(Debug, Serialize)]
pub struct AuditEvent<'a> {
    /// Time of the decision (RFC 3339 in the line).
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    /// Unique decision id (also in the response and upstream headers).
    pub decision_id: &'a str,
    /// `x-request-id`.
    pub request_id: &'a str,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// Fixed reason code.
    pub reason: &'static str,
    /// Principal uid.
    pub principal: &'a str,
    /// SPIFFE id of the calling workload, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<&'a str>,
    /// Where the workload identity came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_source: Option<crate::identity::WorkloadSource>,
    /// Why credentials were refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_error: Option<&'a str>,
    /// The fixed code of `identity_error` (as in the 401 and the metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_reason: Option<&'static str>,
    /// How the caller authenticated: `mtls`, `jwt`, `mtls+jwt` or `none`.
    pub auth_method: &'static str,
    /// The verified token's identity (never the token itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenAudit<'a>>,
    /// Action uid.
    pub action: &'a str,
    /// Resource uid.
    pub resource: &'a str,
    /// How the request was understood.
    pub protocol: &'static str,
    /// Determining policies with their annotations.
    #[serde(serialize_with = "policy_list")]
    pub policies: &'a [Arc<DeterminingPolicy>],
    /// Snapshot generation that decided.
    pub policy_generation: u64,
    /// Snapshot content hash.
    pub policy_hash: &'a str,
    /// Evaluation errors.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub errors: &'a [String],
    /// Whether the decision came from the cache.
    pub cache_hit: bool,
    /// Time spent deciding, in microseconds.
    pub latency_us: u64,
    /// Peer IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<IpAddr>,
    /// HTTP method.
    pub method: &'a str,
    /// Host.
    pub host: &'a str,
    /// The canonical path (without query).
    pub path: &'a str,
    /// The path as the client sent it, when it differs from `path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_path: Option<&'a str>,
    /// The model asked for (the denied operation's, on a deny).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
    /// The MCP tool called, as `<server>/<tool>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<&'a str>,
    /// Operations decided, when more than one (a JSON-RPC batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operations: Option<usize>,
    /// The decided operation's prompt controls and names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<&'a crate::classify::Summary>,
    /// Every operation of a batch, with its action and resource.
    #[serde(skip_serializing_if = "<[crate::classify::Summary]>::is_empty")]
    pub batch: &'a [crate::classify::Summary],
    /// What the shadow policy set decided, when the snapshot has `@shadow` policies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowAudit<'a>>,
    /// Step-up: the scopes the 403 challenge asked for.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub required_scopes: &'a [String],
    /// ext_proc: the filtered list, what it hid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_filter: Option<&'a crate::decide::outcome::ListFilterAudit>,
    /// The gateway-issued API key's id (never the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<&'a str>,
    /// The injected provider credential's id (never its value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<&'a str>,
}

/// The shadow set's decision in an audit event.
#[derive(Debug, Serialize)]
pub struct ShadowAudit<'a> {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// Fixed reason code.
    pub reason: &'static str,
    /// Whether it differs from the enforced decision.
    pub disagrees: bool,
    /// Its determining policies with their annotations.
    #[serde(serialize_with = "policy_list")]
    pub policies: &'a [Arc<DeterminingPolicy>],
    /// Its evaluation errors.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub errors: &'a [String],
}

impl<'a> ShadowAudit<'a> {
    fn new(shadow: &'a crate::policy::shadow::ShadowOutcome) -> Self {
        let d = &shadow.decision;
        Self {
            decision: if d.is_allow() { "allow" } else { "deny" },
            reason: d.reason.as_str(),
            disagrees: shadow.disagrees,
            policies: &d.policies,
            errors: &d.errors,
        }
    }
}

// === impl AuditEvent ===

impl<'a> AuditEvent<'a> {
    /// Builds the event for one decision.
    pub fn new(
        outcome: &'a Outcome,
        req: &'a HttpRequest,
        now: SystemTime,
        latency: Duration,
    ) -> Self {
        let workload = outcome.identity.workload.as_ref();
        Self {
            time: now,
            decision_id: &outcome.decision_id,
            request_id: &req.id,
            decision: if outcome.decision.is_allow() {
                "allow"
            } else {
                "deny"
            },
            reason: outcome.decision.reason.as_str(),
            principal: &outcome.principal,
            spiffe_id: workload.map(|w| w.id.as_str()),
            workload_source: workload.map(|w| w.source),
            identity_error: outcome.identity_error.as_ref().map(|e| e.message.as_str()),
            identity_reason: outcome.identity_error.as_ref().map(|e| e.code),
            auth_method: outcome.identity.method(),
            token: outcome.identity.token.as_deref().map(|t| TokenAudit {
                issuer: &t.issuer,
                subject: &t.subject,
                jti: t.jti.as_deref(),
                actors: &t.actors,
                expires_at: t.expires_at,
                scopes: &t.scopes,
            }),
            action: &outcome.action,
            resource: &outcome.resource,
            protocol: outcome.protocol.as_str(),
            policies: &outcome.decision.policies,
            policy_generation: outcome.policy_generation,
            policy_hash: &outcome.policy_hash,
            errors: &outcome.decision.errors,
            cache_hit: outcome.cache_hit,
            latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            source_ip: req.source.ip,
            method: &req.method,
            host: &req.host,
            path: &req.path,
            raw_path: (!req.raw_path.is_empty()).then_some(req.raw_path.as_str()),
            model: outcome.model.as_deref(),
            tool: outcome.tool.as_deref(),
            operations: (outcome.operations > 1).then_some(outcome.operations),
            summary: outcome.summary.as_ref(),
            batch: &outcome.batch,
            shadow: outcome.shadow.as_ref().map(ShadowAudit::new),
            required_scopes: &outcome.required_scopes,
            list_filter: outcome.list_filter.as_ref(),
            api_key_id: outcome.identity.api_key.as_ref().map(|k| k.id.as_str()),
            credential: outcome.credential.as_ref().and_then(|c| c.id.as_deref()),
        }
    }
}

impl AuditEvent<'_> {
    /// The event as one line of JSON: exactly what `serde_json::to_string`
    /// writes for it (a test holds the two together), written by hand
    /// because serializing every audit line through serde cost more than
    /// the rest of a cache-hit Check. The rarer nested parts (token, shadow,
    /// errors) still go through serde; policies are rendered once per
    /// snapshot ([`DeterminingPolicy::json`]).
    pub fn to_json(&self) -> String {
        let mut line = String::with_capacity(1024);
        self.write_json(&mut line);
        line
    }

    /// Appends [`AuditEvent::to_json`]'s line to `out` (the writer thread
    /// reuses one buffer for every line).
    pub fn write_json(&self, out: &mut String) {
        let mut o = JsonObject::begin(out);
        o.time(key!("time"), self.time);
        o.str(key!("decision_id"), self.decision_id);
        o.str(key!("request_id"), self.request_id);
        o.str(key!("decision"), self.decision);
        o.str(key!("reason"), self.reason);
        o.str(key!("principal"), self.principal);
        o.opt_str(key!("spiffe_id"), self.spiffe_id);
        if let Some(source) = self.workload_source {
            o.str(key!("workload_source"), source.as_str());
        }
        o.opt_str(key!("identity_error"), self.identity_error);
        o.opt_str(key!("identity_reason"), self.identity_reason);
        o.str(key!("auth_method"), self.auth_method);
        if let Some(token) = &self.token {
            o.serde(key!("token"), token);
        }
        o.str(key!("action"), self.action);
        o.str(key!("resource"), self.resource);
        o.str(key!("protocol"), self.protocol);
        o.raw_list(key!("policies"), self.policies.iter().map(|p| p.json()));
        o.num(key!("policy_generation"), self.policy_generation);
        o.str(key!("policy_hash"), self.policy_hash);
        if !self.errors.is_empty() {
            o.serde(key!("errors"), &self.errors);
        }
        o.bool(key!("cache_hit"), self.cache_hit);
        o.num(key!("latency_us"), self.latency_us);
        if let Some(ip) = self.source_ip {
            o.ip(key!("source_ip"), ip);
        }
        o.str(key!("method"), self.method);
        o.str(key!("host"), self.host);
        o.str(key!("path"), self.path);
        o.opt_str(key!("raw_path"), self.raw_path);
        o.opt_str(key!("model"), self.model);
        o.opt_str(key!("tool"), self.tool);
        if let Some(n) = self.operations {
            o.num(key!("operations"), n as u64);
        }
        if let Some(summary) = self.summary {
            o.serde(key!("summary"), summary);
        }
        if !self.batch.is_empty() {
            o.serde(key!("batch"), &self.batch);
        }
        if let Some(shadow) = &self.shadow {
            o.serde(key!("shadow"), shadow);
        }
        if !self.required_scopes.is_empty() {
            o.serde(key!("required_scopes"), &self.required_scopes);
        }
        if let Some(list_filter) = self.list_filter {
            o.serde(key!("list_filter"), list_filter);
        }
        o.opt_str(key!("api_key_id"), self.api_key_id);
        o.opt_str(key!("credential"), self.credential);
        o.finish();
    }
}

/// `time` as the line carries it.
fn rfc3339<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::vocab::rfc3339(*time))
}

/// The policies as a list of their values (serde has no `Arc` without its
/// `rc` feature; the events borrow the decision's list rather than collect
/// a new one per line).
fn policy_list<S: Serializer>(
    policies: &[Arc<DeterminingPolicy>],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(policies.iter().map(|p| p.as_ref()))
}

/// Who a token said the caller is.
#[derive(Debug, Serialize)]
pub struct TokenAudit<'a> {
    /// `iss`.
    pub issuer: &'a str,
    /// The subject claim.
    pub subject: &'a str,
    /// `jti`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<&'a str>,
    /// RFC 8693 `act` chain, acting party first.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub actors: &'a [String],
    /// `exp` (Unix seconds).
    pub expires_at: i64,
    /// Granted scopes (`scope` / `scp`).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub scopes: &'a [String],
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
