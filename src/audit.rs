//! The audit stream: one JSON line per decision, on its own sink (stdout or
//! a file), separate from diagnostic logs. The schema is `proto/audit.proto`.
//!
//! Lines are handed to a writer thread through a bounded channel, so the Check
//! path never waits on disk or a pipe unless the channel is full (then it
//! blocks rather than drop an event: an audit trail with holes is worse than
//! back-pressure). A Check's event is not even formatted on the Check path:
//! the handler moves its finished [`Outcome`] and request to the writer
//! ([`AuditLog::record_check`]), which builds and writes the line.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::{AuditConfig, AuditSink};
use crate::gate::Outcome;
use crate::policy::eval::DeterminingPolicy;
use crate::request::HttpRequest;

/// Events buffered between the Check path and the writer thread.
const CHANNEL_CAPACITY: usize = 65_536;

/// What travels to the writer thread.
enum Pending {
    /// A line formatted by the caller.
    Line(String),
    /// A Check's outcome and request, formatted by the writer.
    Check(Box<CheckRecord>),
}

/// One Check's audit material, moved (not copied) from the handler, which is
/// done with it: the line is formatted from it on the writer thread.
struct CheckRecord {
    outcome: Outcome,
    request: HttpRequest,
    now: SystemTime,
    latency: Duration,
}

// === impl Pending ===

impl Pending {
    fn into_line(self) -> String {
        match self {
            Self::Line(line) => line,
            Self::Check(c) => AuditEvent::new(&c.outcome, &c.request, c.now, c.latency).to_json(),
        }
    }
}

/// One decision, as written to the audit log. Never a token, a cookie or a body.
#[derive(Debug, Serialize)]
pub struct AuditEvent<'a> {
    /// RFC 3339 time of the decision.
    pub time: String,
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
    pub policies: Vec<&'a DeterminingPolicy>,
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
    pub source_ip: Option<String>,
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
    pub policies: Vec<&'a DeterminingPolicy>,
    /// Its evaluation errors.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub errors: &'a [String],
}

impl<'a> ShadowAudit<'a> {
    fn new(shadow: &'a crate::shadow::ShadowOutcome) -> Self {
        let d = &shadow.decision;
        Self {
            decision: if d.is_allow() { "allow" } else { "deny" },
            reason: d.reason.as_str(),
            disagrees: shadow.disagrees,
            policies: d.policies.iter().map(|p| p.as_ref()).collect(),
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
            time: crate::gate::rfc3339(now),
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
            policies: outcome
                .decision
                .policies
                .iter()
                .map(|p| p.as_ref())
                .collect(),
            policy_generation: outcome.policy_generation,
            policy_hash: &outcome.policy_hash,
            errors: &outcome.decision.errors,
            cache_hit: outcome.cache_hit,
            latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            source_ip: req.source.ip.map(|ip| ip.to_string()),
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
        let mut o = JsonObject::with_capacity(1024);
        o.str("time", &self.time);
        o.str("decision_id", self.decision_id);
        o.str("request_id", self.request_id);
        o.str("decision", self.decision);
        o.str("reason", self.reason);
        o.str("principal", self.principal);
        o.opt_str("spiffe_id", self.spiffe_id);
        if let Some(source) = self.workload_source {
            o.serde("workload_source", &source);
        }
        o.opt_str("identity_error", self.identity_error);
        o.opt_str("identity_reason", self.identity_reason);
        o.str("auth_method", self.auth_method);
        if let Some(token) = &self.token {
            o.serde("token", token);
        }
        o.str("action", self.action);
        o.str("resource", self.resource);
        o.str("protocol", self.protocol);
        o.raw_list("policies", self.policies.iter().map(|p| p.json()));
        o.num("policy_generation", self.policy_generation);
        o.str("policy_hash", self.policy_hash);
        if !self.errors.is_empty() {
            o.serde("errors", &self.errors);
        }
        o.bool("cache_hit", self.cache_hit);
        o.num("latency_us", self.latency_us);
        o.opt_str("source_ip", self.source_ip.as_deref());
        o.str("method", self.method);
        o.str("host", self.host);
        o.str("path", self.path);
        o.opt_str("raw_path", self.raw_path);
        o.opt_str("model", self.model);
        o.opt_str("tool", self.tool);
        if let Some(n) = self.operations {
            o.num("operations", n as u64);
        }
        if let Some(summary) = self.summary {
            o.serde("summary", summary);
        }
        if !self.batch.is_empty() {
            o.serde("batch", &self.batch);
        }
        if let Some(shadow) = &self.shadow {
            o.serde("shadow", shadow);
        }
        o.finish()
    }
}

/// A JSON object written field by field. Keys are trusted literals; values
/// are escaped as serde_json escapes them.
struct JsonObject {
    out: String,
}

impl JsonObject {
    fn with_capacity(n: usize) -> Self {
        let mut out = String::with_capacity(n);
        out.push('{');
        Self { out }
    }

    fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_str(&mut self.out, value);
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    fn num(&mut self, key: &str, value: u64) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn raw_list<'a>(&mut self, key: &str, items: impl Iterator<Item = &'a str>) {
        self.key(key);
        self.out.push('[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(item);
        }
        self.out.push(']');
    }

    fn serde(&mut self, key: &str, value: &impl Serialize) {
        self.key(key);
        // Plain data (strings, numbers, string maps) cannot fail to serialize.
        match serde_json::to_string(value) {
            Ok(json) => self.out.push_str(&json),
            Err(_) => self.out.push_str("null"),
        }
    }

    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Appends `s` as a JSON string: verbatim when nothing needs escaping (the
/// common case), through serde_json otherwise.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        match serde_json::to_string(s) {
            Ok(json) => out.push_str(&json),
            Err(_) => out.push_str("\"\""),
        }
    }
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

/// Where audit lines go.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: Option<SyncSender<Pending>>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

// === impl AuditLog ===

impl AuditLog {
    /// Opens the configured sink.
    pub fn open(cfg: &AuditConfig) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match (cfg.sink, &cfg.path) {
            (AuditSink::Off, _) => {
                return Ok(Self {
                    tx: None,
                    writer: Arc::new(Mutex::new(None)),
                });
            }
            (AuditSink::Stdout, _) => Box::new(std::io::stdout()),
            (AuditSink::File, Some(path)) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            (AuditSink::File, None) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "audit.path is required",
                ));
            }
        };
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        let handle = std::thread::Builder::new()
            .name("cedar-gate-audit".into())
            .spawn(move || write_loop(rx, out))?;
        Ok(Self {
            tx: Some(tx),
            writer: Arc::new(Mutex::new(Some(handle))),
        })
    }

    /// Records one event.
    pub fn record(&self, event: &AuditEvent<'_>) {
        let Some(tx) = &self.tx else { return };
        if tx.send(Pending::Line(event.to_json())).is_err() {
            tracing::error!(target: "cedar_gate::audit", "audit writer has stopped; event lost");
        }
    }

    /// Records one Check: the same line as [`AuditEvent::new`] gives, built on
    /// the writer thread from the moved outcome and request.
    pub fn record_check(
        &self,
        outcome: Outcome,
        request: HttpRequest,
        now: SystemTime,
        latency: Duration,
    ) {
        let Some(tx) = &self.tx else { return };
        let record = CheckRecord {
            outcome,
            request,
            now,
            latency,
        };
        if tx.send(Pending::Check(Box::new(record))).is_err() {
            tracing::error!(target: "cedar_gate::audit", "audit writer has stopped; event lost");
        }
    }

    /// Flushes and stops the writer (after the last `record`).
    pub fn close(mut self) {
        self.tx = None;
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            // Other clones may still hold senders; the writer ends when all are dropped.
            drop(self);
            let _ = handle.join();
        }
    }
}

/// How long the writer gathers lines after the first one of a batch. Waking
/// the writer for every Check costs a context switch per request (measured as
/// the largest item in a loaded server's profile); with this window a busy
/// server wakes it a few hundred times a second. An idle writer blocks in
/// `recv` and costs nothing.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

fn write_loop(rx: Receiver<Pending>, out: Box<dyn Write + Send>) {
    use std::sync::mpsc::TryRecvError;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        let mut ok = writeln!(out, "{}", line.into_line()).is_ok();
        std::thread::sleep(BATCH_WINDOW);
        let mut open = true;
        loop {
            match rx.try_recv() {
                Ok(line) => ok &= writeln!(out, "{}", line.into_line()).is_ok(),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        ok &= out.flush().is_ok();
        if !ok {
            tracing::error!(target: "cedar_gate::audit", "cannot write audit events");
        }
        if !open {
            break;
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::policy::eval::DeterminingPolicy;

    fn event<'a>(policies: &'a [Arc<DeterminingPolicy>], errors: &'a [String]) -> AuditEvent<'a> {
        AuditEvent {
            time: "2026-11-29T15:17:28.652Z".into(),
            decision_id: "01a227e1-f1cc-76c0-afe4-8032bea7f193",
            request_id: "bench-0",
            decision: "allow",
            reason: "policy_permit",
            principal: "Workload::\"spiffe://example.org/ns/a/sa/b\"",
            spiffe_id: Some("spiffe://example.org/ns/a/sa/b"),
            workload_source: Some(crate::identity::WorkloadSource::Xfcc),
            identity_error: None,
            identity_reason: None,
            auth_method: "mtls",
            token: None,
            action: "Action::\"chat\"",
            resource: "Model::\"gpt-4o\"",
            protocol: "openai",
            policies: policies.iter().map(|p| p.as_ref()).collect(),
            policy_generation: 7,
            policy_hash: "13140f3bf17c",
            errors,
            cache_hit: true,
            latency_us: 12,
            source_ip: Some("10.0.0.1".into()),
            method: "POST",
            host: "models.example.com",
            path: "/v1/chat/completions",
            raw_path: None,
            model: Some("gpt-4o"),
            tool: None,
            operations: None,
            summary: None,
            batch: &[],
            shadow: None,
        }
    }

    /// The hand-written line is byte for byte what serde writes, for plain
    /// values, values that need escaping, and every optional part.
    #[test]
    fn to_json_is_serdes() {
        let annotations = BTreeMap::from([
            ("owner".to_owned(), "team \"ai\"\n".to_owned()),
            ("ticket".to_owned(), "SEC-1".to_owned()),
        ]);
        let policies = vec![
            Arc::new(DeterminingPolicy::new("allow-chat".into(), annotations)),
            Arc::new(DeterminingPolicy::new("p\\2".into(), BTreeMap::new())),
        ];
        let errors = vec!["policy `x` failed: \u{1}".to_owned()];
        let actors = vec!["agent-1".to_owned()];
        let shadow = crate::shadow::ShadowOutcome {
            decision: crate::policy::eval::Decision::deny(
                crate::policy::eval::Reason::PolicyForbid,
                Vec::new(),
            ),
            disagrees: true,
            action_label: "chat".into(),
        };
        let plain = event(&policies, &[]);
        let mut odd = event(&policies[..1], &errors);
        odd.path = "/a\"b\\c\td\u{7f}\u{1f}é/\u{2028}";
        odd.decision = "deny";
        odd.identity_error = Some("bad \"token\"");
        odd.identity_reason = Some("invalid_token");
        odd.spiffe_id = None;
        odd.workload_source = None;
        odd.source_ip = None;
        odd.model = None;
        odd.tool = Some("github/create_issue");
        odd.operations = Some(3);
        odd.token = Some(TokenAudit {
            issuer: "https://idp",
            subject: "alice",
            jti: Some("j-1"),
            actors: &actors,
            expires_at: 1_764_000_000,
            scopes: &actors,
        });
        odd.shadow = Some(ShadowAudit::new(&shadow));
        odd.raw_path = Some("/a/%2e/\u{0}");
        let summary = crate::classify::Summary {
            model_as_sent: Some("GPT-4o".into()),
            choices: Some(2),
            tool_names: vec!["x\"".into()],
            ..Default::default()
        };
        odd.summary = Some(&summary);
        let batch = [
            crate::classify::Summary {
                action: Some("Action::\"call_tool\"".into()),
                tool: Some("files/read".into()),
                ..Default::default()
            },
            summary.clone(),
        ];
        odd.batch = &batch;
        let empty = event(&[], &[]);
        for e in [plain, odd, empty] {
            assert_eq!(e.to_json(), serde_json::to_string(&e).unwrap());
        }
    }
}
