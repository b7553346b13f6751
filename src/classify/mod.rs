//! What is being asked for: a request becomes one or more [`Operation`]s (Cedar
//! action, resource and protocol context).
//!
//! The route table ([`routes`]) picks a protocol by host, path and method; the
//! protocol's parser reads the path and, bounded, the body ([`body`]). A JSON-RPC
//! batch (MCP) becomes one operation per element: every one is authorized.
//! [`classify`] is pure (no I/O, no clock), so it can be unit tested and fuzzed.

pub mod ai;
pub mod anthropic;
pub mod bedrock;
pub mod body;
pub mod endpoints;
pub mod form;
pub mod gemini;
pub mod http;
pub mod json;
pub mod mcp;
pub mod mcp_headers;
pub mod mcp_rest;
pub mod model;
pub mod openai;
pub mod provider;
pub mod resource;
pub mod routes;
pub mod sniff;

#[cfg(test)]
mod corpus;
#[cfg(test)]
mod fixtures;

use cedar_policy::EntityUid;

use crate::request::HttpRequest;
use crate::target::{TargetError, has_encoded_slash};
use crate::vocab::Reason;
use crate::vocab::{EntityType, Value, builtin_uid};

pub use body::BodyError;
pub use model::NameError;
pub use routes::{Route, Routes};

/// The action of a request on a provider or MCP route that no endpoint row
/// or JSON-RPC method matches. Never plain `http`, and in no action group:
/// an operator permits a pass-through endpoint by naming its `Route`.
pub const UNCLASSIFIED: &str = "unclassified";
/// The action of an endpoint that runs a model the request does not name
/// (an assistants run without a model override, a deployed Vertex endpoint).
pub const OPAQUE_INFERENCE: &str = "opaque_inference";

/// Headers that ask an upstream to run another method, or another URL, than
/// the request's: method-override middlewares (Rails, Express, Spring) and
/// URL rewriters (`X-Original-URL` / `X-Rewrite-URL`: IIS, Symfony, Zend,
/// Drupal behind a trusted proxy) route on them instead of the request line.
pub const METHOD_OVERRIDE_HEADERS: [&str; 5] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
];

/// The protocol a request was understood as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Plain HTTP: action `http`, resource `Route::"<path>"`.
    Http,
    /// OpenAI-compatible APIs (also Azure OpenAI, vLLM, Ollama, LiteLLM).
    Openai,
    /// Anthropic messages API.
    Anthropic,
    /// Google Gemini (Generative Language API and Vertex AI paths).
    Gemini,
    /// Amazon Bedrock runtime.
    Bedrock,
    /// Model Context Protocol over streamable HTTP (JSON-RPC 2.0).
    Mcp,
}

// === impl Protocol ===

impl Protocol {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Openai => "openai",
            Protocol::Anthropic => "anthropic",
            Protocol::Gemini => "gemini",
            Protocol::Bedrock => "bedrock",
            Protocol::Mcp => "mcp",
        }
    }
}

/// A request in Cedar's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// How the request was understood.
    pub protocol: Protocol,
    /// `Action::"<name>"`.
    pub action: EntityUid,
    /// The resource.
    pub resource: EntityUid,
    /// The model asked for (its entity id), if any (also in `context.ai.model`).
    pub model: Option<String>,
    /// The MCP tool called, as `<server>/<tool>`, if any.
    pub tool: Option<String>,
    /// Protocol context records added to the Cedar context (`ai`, `mcp`,
    /// `route`).
    pub context: Vec<(String, Value)>,
}

// === impl Operation ===

impl Operation {
    /// An operation without model, tool or protocol context.
    pub fn new(protocol: Protocol, action: EntityUid, resource: EntityUid) -> Self {
        Self {
            protocol,
            action,
            resource,
            model: None,
            tool: None,
            context: Vec::new(),
        }
    }

    /// A field of the operation's `ai` or `mcp` record, for the audit summary.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.context.iter().find_map(|(_, v)| match v {
            Value::Record(fields) => fields.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        })
    }

    /// A `Long` field (see [`Operation::field`]).
    pub fn long(&self, name: &str) -> Option<i64> {
        match self.field(name) {
            Some(Value::Long(n)) => Some(*n),
            _ => None,
        }
    }

    /// A `String` field.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.field(name) {
            Some(Value::Str(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// A `Bool` field.
    pub fn flag(&self, name: &str) -> Option<bool> {
        match self.field(name) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// A `Set<String>` field (empty when absent).
    pub fn strings(&self, name: &str) -> Vec<String> {
        match self.field(name) {
            Some(Value::Set(items)) => items
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// What the audit records of one operation beyond action and resource: the
/// prompt controls and names a reviewer looks for, never prompt text.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// `Action::"..."`, for the operations of a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The resource uid, for the operations of a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The model's entity id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The model as the request spelled it, when that differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_as_sent: Option<String>,
    /// The MCP tool, `<server>/<tool>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Streamed answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Answers generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<i64>,
    /// Output tokens over every answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_output_tokens: Option<i64>,
    /// Thinking budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_budget_tokens: Option<i64>,
    /// Reasoning effort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// Tools offered to the model.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_names: Vec<String>,
    /// MCP argument names (never values).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mcp_arguments: Vec<String>,
}

// === impl Summary ===

impl Summary {
    /// The summary of one operation; `with_target` adds its action and
    /// resource (for the operations of a batch).
    pub fn of(op: &Operation, with_target: bool) -> Self {
        Self {
            action: with_target.then(|| crate::vocab::uid_string(&op.action)),
            resource: with_target.then(|| crate::vocab::uid_string(&op.resource)),
            model: with_target.then(|| op.model.clone()).flatten(),
            model_as_sent: op.text("model_as_sent"),
            tool: with_target.then(|| op.tool.clone()).flatten(),
            stream: op.flag("stream"),
            choices: op.long("choices"),
            total_output_tokens: op.long("total_output_tokens"),
            thinking_budget_tokens: op.long("thinking_budget_tokens"),
            reasoning_effort: op.text("reasoning_effort"),
            tool_names: op.strings("tool_names"),
            mcp_arguments: op.strings("argument_names"),
        }
    }

    /// Whether there is nothing to record.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Why a request is refused before any policy is asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    /// The path or host cannot be made canonical.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A method- or URL-override header is present.
    #[error(
        "the request carries `{0}`: the upstream could run another method or URL than the one decided on"
    )]
    MethodOverride(&'static str),
    /// A body the protocol needs cannot be read.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A model or tool name no provider would take as it is.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The request names its model in two places that disagree.
    #[error(transparent)]
    Model(#[from] provider::ModelError),
    /// An MCP request whose mirrored headers disagree with its body, a
    /// 2026-07-28 batch, or a version the route refuses.
    #[error(transparent)]
    Mcp(#[from] mcp_headers::McpRefusal),
}

// === impl ClassifyError ===

impl ClassifyError {
    /// The decision reason (a fixed metric label).
    pub fn reason(&self) -> Reason {
        match self {
            ClassifyError::Target(e) if e.is_host() => Reason::HostNotCanonical,
            ClassifyError::Target(_) => Reason::PathNotCanonical,
            ClassifyError::MethodOverride(_) => Reason::MethodOverride,
            ClassifyError::Body(e) => e.reason(),
            ClassifyError::Name(_) => Reason::NameInvalid,
            ClassifyError::Model(_) => Reason::ModelAmbiguous,
            ClassifyError::Mcp(e) => e.reason(),
        }
    }

    /// A protocol-specific body for the refusal (MCP: a JSON-RPC error with
    /// the request's id), instead of the generic JSON one.
    pub fn body(&self) -> Option<String> {
        match self {
            ClassifyError::Mcp(e) => Some(e.body()),
            _ => None,
        }
    }
}

/// A request refused before any policy is asked (fail closed): denied with
/// the error's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The protocol of the matched route (`http` when none matched yet).
    pub protocol: Protocol,
    /// What was wrong.
    pub error: ClassifyError,
}

/// The uid of an action by name.
pub fn action(name: &str) -> EntityUid {
    builtin_uid(EntityType::Action, name)
}

/// A request on a provider or MCP route that is not understood:
/// `Action::"unclassified"` on `Route::"<canonical path>"`, never `http`.
pub fn unclassified(req: &HttpRequest, protocol: Protocol) -> Operation {
    Operation::new(
        protocol,
        action(UNCLASSIFIED),
        builtin_uid(EntityType::Route, &req.path),
    )
}

/// Classifies a request with a route table: one operation, or one per element
/// of a JSON-RPC batch (never empty), or a refusal. Never panics.
///
/// The request's path and host are canonical ([`crate::target`]); a request
/// whose target could not be made canonical is refused here first.
pub fn classify(req: &HttpRequest, routes: &Routes) -> Result<Vec<Operation>, Refusal> {
    let refuse = |protocol, error: ClassifyError| Refusal { protocol, error };
    if let Some(e) = &req.target_error {
        return Err(refuse(Protocol::Http, e.clone().into()));
    }
    if let Some(h) = method_override(req) {
        return Err(refuse(Protocol::Http, ClassifyError::MethodOverride(h)));
    }
    let inferred;
    let route = match routes.find(req) {
        Some(route) => route,
        None => {
            if encoded_slash(&req.path) {
                return Err(refuse(Protocol::Http, TargetError::EncodedSlash.into()));
            }
            if routes.is_empty() {
                return Ok(vec![http::classify(req)]);
            }
            // Off every route, a model call is still a model call: an
            // upstream may serve `/chat/completions` without `/v1`, and a
            // permit on a plain route must not cover it. A provider endpoint
            // is read as on that provider's route (so a forbidden model stays
            // forbidden); anything else that looks like a model call or an
            // MCP message is `unclassified`.
            match inferred_protocol(req) {
                Some(protocol) => {
                    inferred = Route::inferred(protocol);
                    &inferred
                }
                None => {
                    let refuse = |error| refuse(Protocol::Http, error);
                    let sniffed = sniff::sniff(req).map_err(refuse)?;
                    if !sniffed.ai {
                        return Ok(vec![http::classify(req)]);
                    }
                    let mut op = unclassified(req, Protocol::Http);
                    name_the_model(&mut op, &sniffed.models, &Route::inferred(Protocol::Http))
                        .map_err(refuse)?;
                    return Ok(vec![op]);
                }
            }
        }
    };
    if encoded_slash(&req.path)
        && !(route.protocol == Protocol::Bedrock && bedrock::encoded_slash_in_model_only(&req.path))
    {
        return Err(refuse(route.protocol, TargetError::EncodedSlash.into()));
    }
    let body = body::BodyReader::new(req, route);
    let result = match route.protocol {
        Protocol::Http => Ok(vec![http::classify(req)]),
        Protocol::Openai => {
            provider::parse(req, route, &body, endpoints::OPENAI_TABLES).map(|op| vec![op])
        }
        Protocol::Anthropic => {
            provider::parse(req, route, &body, &[endpoints::ANTHROPIC]).map(|op| vec![op])
        }
        Protocol::Gemini => {
            provider::parse(req, route, &body, &[endpoints::GEMINI]).map(|op| vec![op])
        }
        Protocol::Bedrock => {
            provider::parse(req, route, &body, &[endpoints::BEDROCK]).map(|op| vec![op])
        }
        Protocol::Mcp => mcp::parse(req, route, &body),
    };
    let mut ops = result.map_err(|error| refuse(route.protocol, error))?;
    describe_unclassified(req, route, &mut ops).map_err(|error| refuse(route.protocol, error))?;
    Ok(ops)
}

/// [`has_encoded_slash`], after a byte search for its `%`: the substring
/// search sets up a searcher on every call, and almost no path has a `%`.
fn encoded_slash(path: &str) -> bool {
    path.as_bytes().contains(&b'%') && has_encoded_slash(path)
}

/// The first of [`METHOD_OVERRIDE_HEADERS`] (in that order) the request
/// carries. One pass over the header names, most of which are ruled out by
/// their first two bytes (every override header starts with `x-`), instead
/// of a binary search per name: every Check asks, and almost none has one.
/// Unlike a binary search it does not rely on the names being sorted.
fn method_override(req: &HttpRequest) -> Option<&'static str> {
    let mut first: Option<usize> = None;
    for (name, _) in &req.headers {
        if !name.starts_with("x-") {
            continue;
        }
        if let Some(i) = METHOD_OVERRIDE_HEADERS.iter().position(|h| *h == &**name) {
            first = Some(first.map_or(i, |f| f.min(i)));
        }
    }
    first.map(|i| METHOD_OVERRIDE_HEADERS[i])
}

/// An unclassified operation carries the route it was found on, and on a
/// provider route the model its body or query names, if any.
fn describe_unclassified(
    req: &HttpRequest,
    route: &Route,
    ops: &mut [Operation],
) -> Result<(), ClassifyError> {
    let unclassified = action(UNCLASSIFIED);
    for op in ops.iter_mut().filter(|op| op.action == unclassified) {
        if route.protocol != Protocol::Mcp {
            let sniffed = sniff::sniff(req)?;
            name_the_model(op, &sniffed.models, route)?;
        }
        op.context.push((
            "route".to_owned(),
            Value::Record(vec![
                ("name".to_owned(), Value::str(&route.name)),
                ("protocol".to_owned(), Value::str(route.protocol.as_str())),
            ]),
        ));
    }
    Ok(())
}

/// Makes an `unclassified` operation's resource the model the request
/// names (see `sniff`), so that a policy forbidding the model forbids it on
/// an endpoint cedar-gate does not know; several different models are
/// refused.
fn name_the_model(op: &mut Operation, sent: &[String], route: &Route) -> Result<(), ClassifyError> {
    let mut named: Option<String> = None;
    for m in sent {
        let id = model::canonical(route.protocol, m, &route.model_aliases)?;
        match &named {
            Some(first) if *first != id => return Err(provider::ModelError::Several.into()),
            _ => named = Some(id),
        }
    }
    if let Some(id) = named {
        op.resource = builtin_uid(EntityType::Model, &id);
        op.model = Some(id);
    }
    Ok(())
}

/// The provider whose table has a row for this request that runs a model,
/// for a request no route matches. The tables whose paths are specific
/// (`v1/messages`, `models/{model}:verb`, `model/{model+}/invoke`) are tried
/// before OpenAI's, whose rows are the shortest suffixes; the model servers'
/// ([`endpoints::SERVING`]) are read with OpenAI's, as on an `openai` route.
fn inferred_protocol(req: &HttpRequest) -> Option<Protocol> {
    [
        (Protocol::Anthropic, &[endpoints::ANTHROPIC][..]),
        (Protocol::Gemini, &[endpoints::GEMINI]),
        (Protocol::Bedrock, &[endpoints::BEDROCK]),
        (Protocol::Openai, endpoints::OPENAI_TABLES),
    ]
    .into_iter()
    .find(|(_, tables)| endpoints::runs_a_model(tables, &req.method, &req.path))
    .map(|(protocol, _)| protocol)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn no_route_is_plain_http() {
        let req = HttpRequest {
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            ..Default::default()
        };
        let ops = classify(&req, &Routes::default()).unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].protocol, Protocol::Http);
    }

    /// The lookup `method_override` replaced: one binary search per name.
    fn method_override_by_lookup(req: &HttpRequest) -> Option<&'static str> {
        METHOD_OVERRIDE_HEADERS
            .iter()
            .find(|h| req.header(h).is_some())
            .copied()
    }

    fn with_headers(names: &[String]) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            path: "/".into(),
            headers: crate::request::header_list(names.iter().map(|n| (n.as_str(), "v"))),
            ..Default::default()
        }
    }

    #[test]
    fn method_override_names_the_first_listed_header() {
        for (names, expected) in [
            (vec![], None),
            (vec!["x-request-id", "accept"], None),
            (vec!["x-http-method"], Some("x-http-method")),
            (
                vec!["X-Rewrite-URL", "x-original-url"],
                Some("x-original-url"),
            ),
            (
                vec![
                    "x-rewrite-url",
                    "x-method-override",
                    "x-http-method-override",
                ],
                Some("x-http-method-override"),
            ),
            (vec!["x-http-method-overrides", "x-http-metho", "x-"], None),
        ] {
            let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
            let req = with_headers(&names);
            assert_eq!(method_override(&req), expected, "{names:?}");
            assert_eq!(method_override_by_lookup(&req), expected, "{names:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn encoded_slash_is_has_encoded_slash(path in "[%2Ff/a]{0,10}") {
            proptest::prop_assert_eq!(encoded_slash(&path), has_encoded_slash(&path));
        }

        /// The one-pass scan refuses exactly what the per-name lookup did,
        /// naming the same header, whatever else the request carries.
        #[test]
        fn method_override_agrees_with_the_lookup(
            names in proptest::collection::vec(
                "x-http-method-override|x-http-method|x-method-override|x-original-url|x-rewrite-url|X-HTTP-Method|x-[a-z-]{0,22}|[a-z:-]{0,12}",
                0..12,
            )
        ) {
            let req = with_headers(&names);
            proptest::prop_assert_eq!(method_override(&req), method_override_by_lookup(&req));
        }
    }
}
