//! [`Outcome`] → `CheckResponse`: headers for the upstream, the deny answer,
//! and dynamic metadata for Envoy's access log. No policy text and no
//! credential ever goes into a response.

use envoy_types::ext_authz::v3::pb::{
    CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue, HeaderValueOption,
    HttpResponse, HttpStatus,
};
use envoy_types::pb::google::rpc;
use prost::Message;

use std::ops::Range;

use super::pbwrite::{self, Spans, Val, delimited_len};

use crate::config::ResponseConfig;
use crate::decide::Outcome;
use crate::request::HttpRequest;

/// Header naming the principal, for the upstream.
pub const PRINCIPAL_HEADER: &str = "x-cedar-gate-principal";
/// Header carrying the decision id, for the upstream.
pub const DECISION_ID_HEADER: &str = "x-cedar-gate-decision-id";

/// gRPC status codes Envoy reads from `CheckResponse.status`.
const CODE_OK: i32 = 0;
const CODE_INVALID_ARGUMENT: i32 = 3;
const CODE_PERMISSION_DENIED: i32 = 7;
const CODE_UNAUTHENTICATED: i32 = 16;

/// An answer to Envoy, encoded: the bytes of a `CheckResponse`, written by
/// [`build`] without an intermediate prost message on the allow path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded(Vec<u8>);

// === impl Encoded ===

impl Encoded {
    /// The encoded `CheckResponse`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The answer as a prost message (tests, tools; the server sends the bytes).
    pub fn decode(&self) -> Result<CheckResponse, prost::DecodeError> {
        CheckResponse::decode(self.0.as_slice())
    }

    fn message(m: &CheckResponse) -> Self {
        Self(m.encode_to_vec())
    }
}

/// `CheckResponse` fields.
const TAG_STATUS: u32 = 1;
const TAG_DENIED: u32 = 2;
const TAG_OK: u32 = 3;
const TAG_METADATA: u32 = 4;
/// `OkHttpResponse` fields.
const TAG_OK_HEADERS: u32 = 2;
const TAG_OK_HEADERS_TO_REMOVE: u32 = 5;
const TAG_OK_QUERY_TO_REMOVE: u32 = 8;
/// Every header we set replaces the client's.
const OVERWRITE: i32 = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;

/// Builds the answer to Envoy to `req`.
pub fn build(outcome: &Outcome, req: &HttpRequest, cfg: &ResponseConfig) -> Encoded {
    let policies = outcome.decision.policy_ids();
    let fields = metadata(outcome, &policies);
    if outcome.decision.is_allow() {
        if let Some(answer) = Kept::reuse(outcome, cfg, &fields) {
            return answer;
        }
        return Encoded(write_allow(outcome, cfg, &fields, &mut Spans::default()));
    }
    let metadata_len = pbwrite::struct_len(&fields);
    let (code, denied) = refusal(outcome, req, cfg);
    let len = denied.encoded_len();
    let mut out = Vec::with_capacity(
        status_len(code)
            + delimited_len(TAG_DENIED, len)
            + delimited_len(TAG_METADATA, metadata_len),
    );
    put_status(code, &mut out);
    prost::encoding::message::encode(TAG_DENIED, &denied, &mut out);
    pbwrite::put_delimited(TAG_METADATA, metadata_len, &mut out);
    pbwrite::put_struct(&fields, &mut out, &mut Spans::default());
    Encoded(out)
}

/// The metadata of an answer (see [`metadata`]).
type Fields<'a> = [(&'static str, Val<'a>); 14];

/// Writes an allow's answer, noting in `spans` where each of its values went.
fn write_allow(
    outcome: &Outcome,
    cfg: &ResponseConfig,
    fields: &Fields<'_>,
    spans: &mut Spans,
) -> Vec<u8> {
    let metadata_len = pbwrite::struct_len(fields);
    let len = ok_len(outcome, cfg);
    let mut out = Vec::with_capacity(
        status_len(CODE_OK)
            + delimited_len(TAG_OK, len)
            + delimited_len(TAG_METADATA, metadata_len),
    );
    put_status(CODE_OK, &mut out);
    pbwrite::put_delimited(TAG_OK, len, &mut out);
    put_ok(outcome, cfg, &mut out, spans);
    pbwrite::put_delimited(TAG_METADATA, metadata_len, &mut out);
    pbwrite::put_struct(fields, &mut out, spans);
    out
}

/// An allow's answer as written for a cached decision, kept with it (its
/// [`Memo`](crate::policy::cache::Memo)): a later hit whose answer would
/// write the same values, all but its own decision id, copies these bytes
/// and writes its decision id in (issue 17: about 5k instructions a hit,
/// down to well under 1k). What is compared is every value the answer
/// writes, so a kept answer is used only where it is, byte for byte, the
/// answer [`write_allow`] would write.
#[derive(Debug)]
struct Kept {
    bytes: Box<[u8]>,
    /// Where each value was written, in writing order.
    spans: Box<[Range<usize>]>,
}

impl Kept {
    /// The answer to `outcome` from its cached decision's kept answer (kept
    /// now if there is none yet), when it applies.
    fn reuse(outcome: &Outcome, cfg: &ResponseConfig, fields: &Fields<'_>) -> Option<Encoded> {
        // A provider credential is never kept: the memo would hold a secret.
        if outcome.credential.is_some() {
            return None;
        }
        let memo = outcome.memo.as_ref()?;
        memo.get_or_init(|| Kept::write(outcome, cfg, fields))?
            .answer(outcome, cfg, fields)
    }

    fn write(outcome: &Outcome, cfg: &ResponseConfig, fields: &Fields<'_>) -> Self {
        let mut spans = Spans::noting();
        let bytes = write_allow(outcome, cfg, fields, &mut spans);
        Self {
            bytes: bytes.into_boxed_slice(),
            spans: spans.into_inner().into_boxed_slice(),
        }
    }

    /// These bytes with `outcome`'s decision id, if every other value
    /// `outcome`'s answer writes is the one written here. The values are
    /// taken in [`write_allow`]'s order, for an answer without a provider
    /// credential: the headers' values (principal, decision id), the headers
    /// removed, the metadata's values; and there must be exactly as many as
    /// were written. (A straight walk: the iterator chains `write_allow`
    /// goes through cost more than the rest of this check.)
    fn answer(
        &self,
        outcome: &Outcome,
        cfg: &ResponseConfig,
        fields: &Fields<'_>,
    ) -> Option<Encoded> {
        let mut walk = Walk {
            kept: self,
            next: 0,
            ids: [None; 2],
        };
        walk.value(Val::Str(&outcome.principal))?;
        walk.id(&outcome.decision_id)?;
        for h in removed_headers(outcome, cfg) {
            walk.value(Val::Str(h))?;
        }
        for &(name, v) in fields {
            match (name, v) {
                ("decision_id", Val::Str(id)) => walk.id(id)?,
                _ => walk.value(v)?,
            }
        }
        walk.finish(&outcome.decision_id)
    }
}

/// [`Kept::answer`]'s walk over the kept spans.
struct Walk<'k> {
    kept: &'k Kept,
    next: usize,
    /// Where the decision id goes.
    ids: [Option<&'k Range<usize>>; 2],
}

impl<'k> Walk<'k> {
    fn span(&mut self) -> Option<&'k Range<usize>> {
        let span = self.kept.spans.get(self.next)?;
        self.next += 1;
        Some(span)
    }

    /// The next value written is `v`.
    fn value(&mut self, v: Val<'_>) -> Option<()> {
        let span = self.span()?;
        v.written_as(&self.kept.bytes[span.clone()]).then_some(())
    }

    /// The next value written is a decision id as long as `id`.
    fn id(&mut self, id: &str) -> Option<()> {
        let span = self.span()?;
        let slot = self.ids.iter_mut().find(|slot| slot.is_none())?;
        *slot = Some(span).filter(|s| s.len() == id.len());
        slot.map(|_| ())
    }

    /// The kept bytes with `id` written in, when every value was walked.
    fn finish(self, id: &str) -> Option<Encoded> {
        if self.next != self.kept.spans.len() {
            return None;
        }
        let mut out = self.kept.bytes.to_vec();
        for span in self.ids.into_iter().flatten() {
            out[span.clone()].copy_from_slice(id.as_bytes());
        }
        Some(Encoded(out))
    }
}

/// The gRPC status code and the denied response of a refusal.
fn refusal(
    outcome: &Outcome,
    req: &HttpRequest,
    cfg: &ResponseConfig,
) -> (i32, DeniedHttpResponse) {
    if outcome.is_unauthenticated() {
        (
            CODE_UNAUTHENTICATED,
            denied(outcome, req, 401, Some(challenge(outcome, cfg))),
        )
    } else if outcome.decision.reason.http_status() == 400 {
        (CODE_INVALID_ARGUMENT, denied(outcome, req, 400, None))
    } else if !outcome.required_scopes.is_empty() {
        (
            CODE_PERMISSION_DENIED,
            denied(outcome, req, 403, Some(step_up(outcome, cfg))),
        )
    } else {
        (CODE_PERMISSION_DENIED, denied(outcome, req, 403, None))
    }
}

/// `google.rpc.Status { code }`, present even when OK (as prost writes it).
fn status_len(code: i32) -> usize {
    delimited_len(TAG_STATUS, pbwrite::int_len(1, code))
}

fn put_status(code: i32, out: &mut Vec<u8>) {
    pbwrite::put_delimited(TAG_STATUS, pbwrite::int_len(1, code), out);
    pbwrite::put_int(1, code, out);
}

/// The headers an allow sets: who was decided about, the decision id, and
/// the gateway's provider credential when one is injected.
fn allow_headers(outcome: &Outcome) -> impl Iterator<Item = (&str, &str)> {
    let credential = outcome.credential.as_ref().and_then(|c| c.set.as_ref());
    [
        (PRINCIPAL_HEADER, outcome.principal.as_str()),
        (DECISION_ID_HEADER, outcome.decision_id.as_str()),
    ]
    .into_iter()
    .chain(credential.map(|(name, value)| (&**name, value.expose())))
}

/// The headers an allow removes. Headers we set are overwritten; any other
/// client-sent x-cedar-gate-* header is removed so the upstream can trust
/// the whole prefix; on provider routes the caller's provider credentials go
/// (but never the header the gateway's credential is set in).
fn removed_headers<'a>(
    outcome: &'a Outcome,
    cfg: &'a ResponseConfig,
) -> impl Iterator<Item = &'a str> {
    let set = outcome
        .credential
        .as_ref()
        .and_then(|c| c.set.as_ref())
        .map(|(name, _)| &**name);
    let forged = outcome
        .forged_headers
        .iter()
        .map(String::as_str)
        .filter(|h| *h != PRINCIPAL_HEADER && *h != DECISION_ID_HEADER);
    let configured = cfg.remove_headers.iter().map(|h| h.as_str());
    let provider = outcome
        .credential
        .iter()
        .flat_map(|c| c.remove_headers.iter().map(String::as_str));
    forged
        .chain(configured)
        .chain(provider)
        .filter(move |h| Some(*h) != set)
}

/// The query parameters an allow removes (the caller's `?key=` on provider routes).
fn removed_query(outcome: &Outcome) -> impl Iterator<Item = &str> {
    outcome
        .credential
        .iter()
        .flat_map(|c| c.remove_query.iter().map(String::as_str))
}

/// Bytes of the `OkHttpResponse` (content).
fn ok_len(outcome: &Outcome, cfg: &ResponseConfig) -> usize {
    let headers: usize = allow_headers(outcome)
        .map(|(k, v)| delimited_len(TAG_OK_HEADERS, pbwrite::header_option_len(k, v, OVERWRITE)))
        .sum();
    let removed: usize = removed_headers(outcome, cfg)
        .map(|h| delimited_len(TAG_OK_HEADERS_TO_REMOVE, h.len()))
        .sum();
    let query: usize = removed_query(outcome)
        .map(|q| delimited_len(TAG_OK_QUERY_TO_REMOVE, q.len()))
        .sum();
    headers + removed + query
}

/// Writes the `OkHttpResponse` (content), fields in tag order, noting where
/// each value went.
fn put_ok(outcome: &Outcome, cfg: &ResponseConfig, out: &mut Vec<u8>, spans: &mut Spans) {
    for (k, v) in allow_headers(outcome) {
        pbwrite::put_delimited(
            TAG_OK_HEADERS,
            pbwrite::header_option_len(k, v, OVERWRITE),
            out,
        );
        pbwrite::put_header_option((k, v), OVERWRITE, out, spans);
    }
    for h in removed_headers(outcome, cfg) {
        pbwrite::put_str_noted(TAG_OK_HEADERS_TO_REMOVE, h, out, spans);
    }
    for q in removed_query(outcome) {
        pbwrite::put_str_noted(TAG_OK_QUERY_TO_REMOVE, q, out, spans);
    }
}

fn denied(
    outcome: &Outcome,
    req: &HttpRequest,
    status: i32,
    www_authenticate: Option<String>,
) -> DeniedHttpResponse {
    let mut headers = vec![header(
        "content-type",
        "application/json",
        HeaderAppendAction::OverwriteIfExistsOrAdd,
    )];
    if let Some(challenge) = www_authenticate {
        headers.push(header(
            "www-authenticate",
            &challenge,
            HeaderAppendAction::OverwriteIfExistsOrAdd,
        ));
    }
    // A protocol's own error for this refusal (MCP 2026-07-28: the JSON-RPC
    // `HeaderMismatch` the specification prescribes) wins over every shape.
    if let Some(body) = &outcome.refusal_body {
        return DeniedHttpResponse {
            status: Some(HttpStatus { code: status }),
            headers,
            body: body.clone(),
        };
    }
    // Provider and MCP routes: the error shape the caller's SDK reads.
    if let Some(shaped) = super::refusal::shape(outcome, status, &req.body) {
        for (key, value) in shaped.headers {
            headers.push(header(
                key,
                value,
                HeaderAppendAction::OverwriteIfExistsOrAdd,
            ));
        }
        return DeniedHttpResponse {
            status: Some(HttpStatus { code: status }),
            headers,
            body: shaped.body,
        };
    }
    let error = match status {
        400 => "bad_request",
        401 => "unauthenticated",
        _ if !outcome.required_scopes.is_empty() => "insufficient_scope",
        _ => "forbidden",
    };
    let mut body = serde_json::json!({
        "error": error,
        "decision_id": outcome.decision_id,
        "reason": outcome.decision.reason.as_str(),
    });
    // What could not be read one way only (the class, never the request).
    if status == 400
        && let Some(message) = outcome.decision.errors.first()
    {
        body["message"] = message.as_str().into();
    }
    // Step-up: the scopes to ask the authorization server for.
    if !outcome.required_scopes.is_empty() {
        body["scopes"] = outcome.required_scopes.clone().into();
    }
    // Which model or tool was refused (what the caller asked for, never why).
    if status == 403 {
        if let Some(model) = &outcome.model {
            body["model"] = model.as_str().into();
        }
        if let Some(tool) = &outcome.tool {
            body["tool"] = tool.as_str().into();
        }
    }
    DeniedHttpResponse {
        status: Some(HttpStatus { code: status }),
        headers,
        body: body.to_string(),
    }
}

/// The `WWW-Authenticate` challenge of a 401 (RFC 6750 form).
fn challenge(outcome: &Outcome, cfg: &ResponseConfig) -> String {
    let mut out = format!("Bearer realm=\"{}\"", cfg.realm);
    if let Some(rejection) = &outcome.identity_error {
        // The code is a fixed identifier: safe to quote, never a credential.
        out.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{}\"",
            rejection.code
        ));
    }
    if let Some(url) = &cfg.resource_metadata {
        // RFC 9728 §5.1: where the client finds how to obtain a token.
        out.push_str(&format!(", resource_metadata=\"{url}\""));
    }
    out
}

/// The step-up challenge of a 403 (RFC 6750 §3.1, MCP authorization
/// "insufficient scope"). The scopes are RFC 6749 scope tokens (checked when
/// read from the annotation): no quote or backslash can break out.
fn step_up(outcome: &Outcome, cfg: &ResponseConfig) -> String {
    let mut out = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{}\"",
        outcome.required_scopes.join(" ")
    );
    if let Some(url) = &cfg.resource_metadata {
        out.push_str(&format!(", resource_metadata=\"{url}\""));
    }
    out
}

fn header(key: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
    #[allow(deprecated)]
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            raw_value: Vec::new(),
        }),
        append: None,
        append_action: action.into(),
        keep_empty_value: false,
    }
}

/// The dynamic metadata for Envoy's access log: ids and names only.
fn metadata<'a>(outcome: &'a Outcome, policies: &'a str) -> Fields<'a> {
    let d = &outcome.decision;
    [
        (
            "decision",
            Val::Str(if d.is_allow() { "allow" } else { "deny" }),
        ),
        ("decision_id", Val::Str(&outcome.decision_id)),
        ("reason", Val::Str(d.reason.as_str())),
        ("principal", Val::Str(&outcome.principal)),
        ("action", Val::Str(&outcome.action)),
        ("resource", Val::Str(&outcome.resource)),
        ("protocol", Val::Str(outcome.protocol.as_str())),
        ("policies", Val::Str(policies)),
        (
            "model",
            Val::Str(outcome.model.as_deref().unwrap_or_default()),
        ),
        (
            "tool",
            Val::Str(outcome.tool.as_deref().unwrap_or_default()),
        ),
        // Ids only: the injected provider credential and the caller's API key.
        (
            "credential",
            Val::Str(
                outcome
                    .credential
                    .as_ref()
                    .and_then(|c| c.id.as_deref())
                    .unwrap_or_default(),
            ),
        ),
        (
            "api_key_id",
            Val::Str(
                outcome
                    .identity
                    .api_key
                    .as_ref()
                    .map_or("", |k| k.id.as_str()),
            ),
        ),
        (
            "policy_generation",
            Val::Num(outcome.policy_generation as f64),
        ),
        ("cache_hit", Val::Bool(outcome.cache_hit)),
    ]
}

/// The answer to a Check that could not be understood: a 400, no decision.
pub fn bad_request(message: &str) -> Encoded {
    let body = serde_json::json!({ "error": "bad_request", "reason": "invalid_request", "message": message });
    Encoded::message(&CheckResponse {
        status: Some(rpc::Status {
            code: CODE_INVALID_ARGUMENT,
            message: String::new(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: 400 }),
            headers: vec![header(
                "content-type",
                "application/json",
                HeaderAppendAction::OverwriteIfExistsOrAdd,
            )],
            body: body.to_string(),
        })),
        dynamic_metadata: None,
    })
}

/// The answer to `outcome` from its cached decision's kept answer, when
/// that applies (tests: the kept path alone).
#[cfg(test)]
pub(super) fn from_kept(outcome: &Outcome, cfg: &ResponseConfig) -> Option<Encoded> {
    let policies = outcome.decision.policy_ids();
    Kept::reuse(outcome, cfg, &metadata(outcome, &policies))
}
