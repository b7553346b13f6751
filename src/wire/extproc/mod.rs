//! The ext_proc v3 service (`envoy.service.ext_proc.v3.ExternalProcessor`),
//! served on the ext_authz gRPC port: it filters list responses down to what
//! the caller may use. ext_authz decides whether `tools/list` may be called;
//! this decides which tools the answer shows. A tool the caller may not call
//! is hidden (and still refused by ext_authz if called by name).
//!
//! Per HTTP exchange Envoy opens one stream:
//! 1. request headers: the request as ext_authz sees it (identity from the
//!    same headers and the peer certificate's URI SAN, passed as the
//!    `connection.uri_san_peer_certificate` attribute). `accept-encoding` is
//!    removed on filtered routes so the list comes back readable.
//! 2. request body (buffered): which JSON-RPC method it is (legacy clients
//!    send no `Mcp-Method`).
//! 3. response headers: for a list, the response body mode is switched to
//!    `BUFFERED` (`mode_override`; the shipped filter config sends no
//!    response body otherwise, so tool calls keep streaming).
//! 4. response body: each item is decided as the request that would use it
//!    (`tools/call` of the tool, `prompts/get`, `resources/read`, `GET
//!    /v1/models/<id>`) with the same identity, policy snapshot and decision
//!    cache as ext_authz; the rest are removed. One audit event records the
//!    hidden names. Anything unreadable replaces the body with a JSON-RPC
//!    error: never the unfiltered list.

pub mod conditional;
pub mod filter;

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, attribute_context,
};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessor;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyMutation, BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, HttpHeaders,
    ProcessingRequest, ProcessingResponse, TrailersResponse, body_mutation, processing_request,
    processing_response,
};
use serde_json::Value as Json;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::classify::Protocol;
use crate::classify::mcp_headers::{FIRST_MODERN, META_VERSION};
use crate::decide::Gate;
pub use crate::decide::outcome::ListFilterAudit;
use crate::policy::PolicyStore;
use crate::policy::snapshot::Snapshot;
use crate::record::audit::{AuditEvent, AuditLog};
use crate::request::HttpRequest;

pub use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessorServer;

use filter::{FilterError, ListKind};

/// The ext_proc attribute carrying the peer certificate's URI SAN.
const PEER_SAN_ATTRIBUTE: &str = "connection.uri_san_peer_certificate";
/// The ext_proc attribute carrying the downstream address.
const SOURCE_ADDRESS_ATTRIBUTE: &str = "source.address";

/// The list-filtering service.
#[derive(Debug, Clone)]
pub struct ListFilterService {
    store: Arc<PolicyStore>,
    gate: Gate,
    audit: AuditLog,
}

/// What one stream has learnt about its exchange.
#[derive(Debug, Default)]
struct Exchange {
    /// The request (headers, then body).
    req: Option<HttpRequest>,
    /// The route's protocol, when the request is on a route that can list.
    protocol: Option<Protocol>,
    /// The list the request asks for (the first, for a legacy batch).
    list: Option<ListKind>,
    /// Every list a legacy batch asks for.
    lists: Vec<ListKind>,
    /// The JSON-RPC id of the list request.
    id: Json,
    /// Whether the response is an SSE stream.
    sse: bool,
    /// `content-encoding` of the response, when not `identity`.
    encoding: Option<String>,
    /// Whether the response has a `content-length` (set again when the body changes).
    sized: bool,
}

// === impl ListFilterService ===

impl ListFilterService {
    /// A service deciding with the store's snapshot.
    pub fn new(store: Arc<PolicyStore>, gate: Gate, audit: AuditLog) -> Self {
        Self { store, gate, audit }
    }

    /// Answers one message of the stream.
    fn step(&self, ex: &mut Exchange, msg: ProcessingRequest) -> ProcessingResponse {
        use processing_request::Request as In;
        use processing_response::Response as Out;
        let response = match msg.request {
            Some(In::RequestHeaders(mut h)) => {
                // Envoy sends the attributes beside the headers (older versions inside).
                h.attributes.extend(msg.attributes);
                Out::RequestHeaders(self.request_headers(ex, h))
            }
            Some(In::RequestBody(b)) => {
                request_body(ex, b.body);
                Out::RequestBody(BodyResponse::default())
            }
            Some(In::ResponseHeaders(h)) => {
                let (headers, mode) = response_headers(ex, &h);
                return ProcessingResponse {
                    response: Some(Out::ResponseHeaders(headers)),
                    mode_override: mode,
                    ..Default::default()
                };
            }
            Some(In::ResponseBody(b)) => Out::ResponseBody(self.response_body(ex, &b.body)),
            Some(In::RequestTrailers(_)) => Out::RequestTrailers(TrailersResponse::default()),
            Some(In::ResponseTrailers(_)) | None => {
                Out::ResponseTrailers(TrailersResponse::default())
            }
        };
        ProcessingResponse {
            response: Some(response),
            ..Default::default()
        }
    }

    fn request_headers(&self, ex: &mut Exchange, h: HttpHeaders) -> HeadersResponse {
        let Ok(req) = HttpRequest::try_from(check_request(h)) else {
            // Out of bounds: ext_authz refuses it before it gets here.
            return HeadersResponse::default();
        };
        let protocol = self
            .gate
            .config()
            .routes
            .find(&req)
            .map(|r| r.protocol)
            .filter(|p| matches!(p, Protocol::Mcp | Protocol::Openai | Protocol::Anthropic));
        ex.protocol = protocol;
        match protocol {
            Some(Protocol::Mcp) => {
                ex.list = req
                    .header(crate::classify::mcp_headers::METHOD_HEADER)
                    .and_then(ListKind::of_method);
            }
            Some(_) if req.method == "GET" => {
                if let Ok(ops) = crate::classify::classify(&req, &self.gate.config().routes)
                    && ops
                        .first()
                        .is_some_and(|op| op.action.id().unescaped() == "list_models")
                {
                    ex.list = Some(ListKind::Models);
                }
            }
            _ => {}
        }
        let filtered = protocol == Some(Protocol::Mcp) || ex.list.is_some();
        ex.req = Some(req);
        if !filtered {
            return HeadersResponse::default();
        }
        // The filter reads plain bodies only: ask the upstream for one.
        HeadersResponse {
            response: Some(CommonResponse {
                header_mutation: Some(HeaderMutation {
                    remove_headers: vec!["accept-encoding".to_owned()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    fn response_body(&self, ex: &mut Exchange, body: &[u8]) -> BodyResponse {
        let (Some(kind), Some(req)) = (ex.list, ex.req.as_ref()) else {
            return BodyResponse::default();
        };
        let Some(snapshot) = self.store.current() else {
            return replace(
                ex,
                filter::refusal(
                    kind,
                    &ex.id,
                    ex.sse,
                    &FilterError::Shape("no policy snapshot loaded"),
                ),
            );
        };
        let now = SystemTime::now();
        let started = std::time::Instant::now();
        let mut hidden = Vec::new();
        let mut judge = Judge::new(&self.gate, &snapshot, req, now);
        let result = match &ex.encoding {
            Some(e) => Err(FilterError::Encoded(e.clone())),
            None => {
                let mut visible = |kind: ListKind, name: &str| judge.visible(kind, name);
                let mut kinds = ex.lists.clone();
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
                filter::filter(body, &kinds, ex.sse, &mut visible, &mut hidden)
            }
        };
        let mut outcome = self.gate.check(&snapshot, req, now);
        let conditional = judge.conditional;
        crate::record::metrics::record_list_filtered(
            kind.as_str(),
            hidden.len(),
            conditional.len(),
        );
        let mut audit = ListFilterAudit {
            list: kind.as_str(),
            hidden,
            conditional,
            error: None,
        };
        let answer = match result {
            // Nothing hidden: the body goes on byte for byte.
            Ok(_) if audit.hidden.is_empty() => BodyResponse::default(),
            Ok(filtered) => replace(ex, filtered),
            Err(e) => {
                tracing::warn!(decision_id = %outcome.decision_id, error = %e, "list response not filtered: refused");
                audit.error = Some(e.to_string());
                replace(ex, filter::refusal(kind, &ex.id, ex.sse, &e))
            }
        };
        outcome.list_filter = Some(audit);
        self.audit
            .record(&AuditEvent::new(&outcome, req, now, started.elapsed()));
        answer
    }
}

/// Decides the items of one list for one caller.
pub(crate) struct Judge<'a> {
    gate: &'a Gate,
    snapshot: &'a Snapshot,
    req: &'a HttpRequest,
    now: SystemTime,
    /// Per list kind (per action), computed on first use.
    reads: Vec<(ListKind, conditional::CallContextReads)>,
    /// The items kept although their bare call was denied.
    pub(crate) conditional: Vec<String>,
}

// === impl Judge ===

impl<'a> Judge<'a> {
    pub(crate) fn new(
        gate: &'a Gate,
        snapshot: &'a Snapshot,
        req: &'a HttpRequest,
        now: SystemTime,
    ) -> Self {
        Self {
            gate,
            snapshot,
            req,
            now,
            reads: Vec::new(),
            conditional: Vec::new(),
        }
    }

    /// Whether a listed item stays: the call that would use it, decided like
    /// any Check; a denied one stays when another call might be allowed.
    pub(crate) fn visible(&mut self, kind: ListKind, name: &str) -> bool {
        let item = item_request(self.req, kind, name);
        let outcome = self.gate.check(self.snapshot, &item, self.now);
        let i = match self.reads.iter().position(|(k, _)| *k == kind) {
            Some(i) => i,
            None => {
                let action = crate::classify::action(kind.use_action());
                let reads = conditional::CallContextReads::new(self.snapshot, &action);
                self.reads.push((kind, reads));
                self.reads.len() - 1
            }
        };
        let Some((_, reads)) = self.reads.get(i) else {
            return false;
        };
        let resource = outcome.resource.parse::<cedar_policy::EntityUid>().ok();
        match reads.visibility(self.snapshot, resource.as_ref(), &outcome.decision) {
            conditional::Visibility::Visible => true,
            conditional::Visibility::Conditional => {
                self.conditional.push(name.to_owned());
                true
            }
            conditional::Visibility::Hidden => false,
        }
    }
}

#[tonic::async_trait]
impl ExternalProcessor for ListFilterService {
    type ProcessStream = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let this = self.clone();
        tokio::spawn(async move {
            let mut ex = Exchange::default();
            while let Ok(Some(msg)) = inbound.message().await {
                // Deciding the items of a list costs about a Check each (cached
                // decisions after the first list): done inline.
                let answer = this.step(&mut ex, msg);
                if tx.send(Ok(answer)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// The request body: which JSON-RPC method (for clients that send no
/// `Mcp-Method`), and its id for an error answer.
fn request_body(ex: &mut Exchange, body: Vec<u8>) {
    let Some(req) = ex.req.as_mut() else {
        return;
    };
    if ex.protocol == Some(Protocol::Mcp)
        && let Ok(json) = serde_json::from_slice::<Json>(&body)
    {
        // A legacy batch: the first list request in it decides the kind.
        let messages: Vec<&Json> = match &json {
            Json::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for m in messages {
            let Some(kind) = m
                .get("method")
                .and_then(Json::as_str)
                .and_then(ListKind::of_method)
            else {
                continue;
            };
            if ex.list.is_none() {
                ex.list = Some(kind);
                ex.id = m.get("id").cloned().unwrap_or(Json::Null);
            }
            if !ex.lists.contains(&kind) {
                ex.lists.push(kind);
            }
        }
    }
    req.body = body;
}

/// Response headers: switch to a buffered body when the list will be
/// filtered.
fn response_headers(
    ex: &mut Exchange,
    h: &HttpHeaders,
) -> (HeadersResponse, Option<ProcessingMode>) {
    if ex.list.is_none() {
        return (HeadersResponse::default(), None);
    }
    let header = |name: &str| -> Option<String> {
        h.headers
            .as_ref()?
            .headers
            .iter()
            .find(|v| v.key.eq_ignore_ascii_case(name))
            .map(|v| {
                if v.raw_value.is_empty() {
                    v.value.clone()
                } else {
                    String::from_utf8_lossy(&v.raw_value).into_owned()
                }
            })
    };
    let ok = header(":status").is_some_and(|s| s.starts_with('2'));
    if !ok {
        // An error answer carries no list.
        ex.list = None;
        return (HeadersResponse::default(), None);
    }
    ex.sse = header("content-type").is_some_and(|t| {
        t.trim_start()
            .to_ascii_lowercase()
            .starts_with("text/event-stream")
    });
    ex.encoding = header("content-encoding").filter(|e| !e.trim().eq_ignore_ascii_case("identity"));
    ex.sized = header("content-length").is_some();
    // Buffered, Envoy holds the headers until the body is answered: the body
    // answer fixes `content-length` when it changes the body.
    let mode = ProcessingMode {
        response_body_mode: BodySendMode::Buffered as i32,
        ..Default::default()
    };
    (HeadersResponse::default(), Some(mode))
}

/// A body response replacing the body (a buffered body: the headers can
/// still change). A compressed body is only ever replaced by plain text.
fn replace(ex: &Exchange, body: Vec<u8>) -> BodyResponse {
    let mut mutation = HeaderMutation::default();
    if ex.sized {
        mutation.set_headers.push(HeaderValueOption {
            header: Some(HeaderValue {
                key: "content-length".to_owned(),
                raw_value: body.len().to_string().into_bytes(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if ex.encoding.is_some() {
        mutation.remove_headers.push("content-encoding".to_owned());
    }
    BodyResponse {
        response: Some(CommonResponse {
            header_mutation: Some(mutation),
            body_mutation: Some(BodyMutation {
                mutation: Some(body_mutation::Mutation::Body(body)),
            }),
            ..Default::default()
        }),
    }
}

/// The ext_authz form of the request headers, so that the request is read
/// (bounds, canonical target, identity) exactly as a Check reads it.
fn check_request(h: HttpHeaders) -> CheckRequest {
    let mut http = attribute_context::HttpRequest::default();
    let mut headers: Vec<(String, String)> = Vec::new();
    for v in h.headers.unwrap_or_default().headers {
        let value = if v.raw_value.is_empty() {
            v.value
        } else {
            String::from_utf8_lossy(&v.raw_value).into_owned()
        };
        match v.key.as_str() {
            ":method" => http.method = value,
            ":path" => http.path = value,
            ":authority" => http.host = value,
            ":scheme" => http.scheme = value,
            k if k.starts_with(':') => {}
            _ => headers.push((v.key, value)),
        }
    }
    // Repeated names stay repeated (the raw map), as with `encode_raw_headers`.
    http.header_map = Some(HeaderMap {
        headers: headers
            .into_iter()
            .map(
                |(key, value)| envoy_types::pb::envoy::config::core::v3::HeaderValue {
                    key,
                    value,
                    ..Default::default()
                },
            )
            .collect(),
    });
    let attribute = |name: &str| {
        h.attributes
            .values()
            .find_map(|s| match s.fields.get(name)?.kind.as_ref()? {
                envoy_types::pb::google::protobuf::value::Kind::StringValue(v) => Some(v.clone()),
                _ => None,
            })
    };
    let address = attribute(SOURCE_ADDRESS_ATTRIBUTE).and_then(|a| {
        let ip = a
            .parse::<std::net::SocketAddr>()
            .map(|s| s.ip().to_string())
            .ok()?;
        Some(envoy_types::pb::envoy::config::core::v3::Address {
            address: Some(
                envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(
                    envoy_types::pb::envoy::config::core::v3::SocketAddress {
                        address: ip,
                        ..Default::default()
                    },
                ),
            ),
        })
    });
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                principal: attribute(PEER_SAN_ATTRIBUTE).unwrap_or_default(),
                address,
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// The request that would use a listed item: the same caller, path and
/// headers, another method. For MCP 2026-07-28 requests the mirrored headers
/// are set to match (the name always Base64-encoded: any name is a valid
/// header value then).
pub fn item_request(base: &HttpRequest, kind: ListKind, name: &str) -> HttpRequest {
    let mut req = base.clone();
    req.repeated_headers.clear();
    if kind == ListKind::Models {
        req.method = "GET".to_owned();
        req.body.clear();
        req.query.clear();
        req.path = format!("{}/{name}", base.path.trim_end_matches('/'));
        req.raw_path.clear();
        req.canonicalize();
        return req;
    }
    let (method, field) = match kind {
        ListKind::Tools => ("tools/call", "name"),
        ListKind::Prompts => ("prompts/get", "name"),
        _ => ("resources/read", "uri"),
    };
    let modern = base
        .header(crate::classify::mcp_headers::VERSION_HEADER)
        .filter(|v| *v >= FIRST_MODERN)
        .map(str::to_owned);
    let mut params = serde_json::json!({ field: name });
    if kind == ListKind::Tools {
        params["arguments"] = serde_json::json!({});
    }
    if let Some(v) = &modern {
        params["_meta"] = serde_json::json!({ META_VERSION: v });
    }
    req.method = "POST".to_owned();
    req.body = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": method, "params": params})
        .to_string()
        .into_bytes();
    req.headers.retain(|(k, _)| {
        !(k == "mcp-method"
            || k == "mcp-name"
            || k == "content-length"
            || k == "content-type"
            || k.starts_with(crate::classify::mcp_headers::PARAM_HEADER_PREFIX))
    });
    req.headers
        .push(("content-type".into(), "application/json".into()));
    if modern.is_some() {
        req.headers.push(("mcp-method".into(), method.into()));
        let encoded = base64::engine::general_purpose::STANDARD.encode(name);
        req.headers
            .push(("mcp-name".into(), format!("=?base64?{encoded}?=").into()));
    }
    req.headers.sort_by(|a, b| a.0.cmp(&b.0));
    req
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    use super::*;
    use crate::config::Config;
    use crate::request::Peer;

    const RESEARCH_AGENT: &str = "spiffe://example.org/ns/agents/sa/research-agent";

    fn list_request(version: Option<&str>) -> HttpRequest {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(v) = version {
            headers.push(("mcp-method", "tools/list"));
            headers.push(("mcp-protocol-version", v));
        }
        let headers = crate::request::header_list(headers);
        HttpRequest {
            method: "POST".to_owned(),
            host: "mcp.example.com".to_owned(),
            path: "/mcp/github".to_owned(),
            scheme: "https".to_owned(),
            headers,
            body: br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec(),
            source: Peer {
                principal: RESEARCH_AGENT.to_owned(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn gate(cache: bool) -> (Gate, Arc<Snapshot>) {
        let config = Config::from_yaml(&format!(
            "identity:\n  trust_domains: [example.org]\ncache:\n  enabled: {cache}\nroutes:\n  - {{ path_prefix: /mcp/github, protocol: mcp, server: github }}\n"
        ))
        .unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cedar");
        let snapshot = crate::policy::load::load_dir(&dir, 1).unwrap();
        (Gate::new(Arc::new(config)), Arc::new(snapshot))
    }

    fn tools_list(n: usize) -> Vec<u8> {
        let mut tools: Vec<Json> = (0..n.saturating_sub(3))
            .map(|i| serde_json::json!({"name": format!("tool_{i}"), "inputSchema": {"type": "object"}}))
            .collect();
        for name in ["search_issues", "create_issue", "delete_repository"] {
            tools.push(serde_json::json!({"name": name, "inputSchema": {"type": "object"}}));
        }
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}})
            .to_string()
            .into_bytes()
    }

    fn filter_with(
        gate: &Gate,
        snapshot: &Snapshot,
        req: &HttpRequest,
        body: &[u8],
    ) -> Vec<String> {
        let mut judge = Judge::new(gate, snapshot, req, SystemTime::now());
        let mut hidden = Vec::new();
        let mut visible = |kind: ListKind, name: &str| judge.visible(kind, name);
        let out =
            filter::filter(body, &[ListKind::Tools], false, &mut visible, &mut hidden).unwrap();
        let out: Json = serde_json::from_slice(&out).unwrap();
        let mut kept: Vec<String> = out["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        kept.sort();
        kept
    }

    #[test]
    fn items_are_decided_as_the_calls_that_would_use_them() {
        let (gate, snapshot) = gate(true);
        for version in [None, Some("2025-11-25"), Some("2026-07-28")] {
            let req = list_request(version);
            let kept = filter_with(&gate, &snapshot, &req, &tools_list(10));
            // The research agent's allow-list (cedar/), less the destructive tool.
            assert_eq!(kept, ["create_issue", "search_issues"], "{version:?}");
        }
        // A 2026-07-28 item request carries mirrored headers that agree with its body
        // (else ext_authz's rules would refuse it and hide everything).
        let req = item_request(
            &list_request(Some("2026-07-28")),
            ListKind::Tools,
            "ünï tool",
        );
        let outcome = gate.check(&snapshot, &req, SystemTime::now());
        assert_eq!(
            outcome.tool.as_deref(),
            Some("github/ünï tool"),
            "{outcome:?}"
        );
        assert_ne!(outcome.decision.reason.as_str(), "mcp_header_mismatch");
        // A model list item is the GET of that model.
        let mut models = list_request(None);
        models.method = "GET".to_owned();
        models.path = "/v1/models".to_owned();
        let req = item_request(&models, ListKind::Models, "gpt-4o");
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("GET", "/v1/models/gpt-4o")
        );
    }

    #[test]
    fn the_exchange_learns_the_lists_and_buffers_list_answers_only() {
        use envoy_types::pb::envoy::config::core::v3::HeaderValue as Hv;
        let headers = |pairs: &[(&str, &str)]| HttpHeaders {
            headers: Some(HeaderMap {
                headers: pairs
                    .iter()
                    .map(|(k, v)| Hv {
                        key: (*k).to_owned(),
                        raw_value: v.as_bytes().to_vec(),
                        ..Default::default()
                    })
                    .collect(),
            }),
            ..Default::default()
        };
        let mut ex = Exchange {
            req: Some(list_request(None)),
            protocol: Some(Protocol::Mcp),
            ..Default::default()
        };
        let batch = br#"[{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}},
            {"jsonrpc":"2.0","id":"b","method":"prompts/list"},{"jsonrpc":"2.0","id":"c","method":"tools/list"}]"#;
        request_body(&mut ex, batch.to_vec());
        assert_eq!(ex.list, Some(ListKind::Prompts));
        assert_eq!(ex.lists, [ListKind::Prompts, ListKind::Tools]);
        assert_eq!(ex.id, Json::from("b"));
        let (_, mode) = response_headers(
            &mut ex,
            &headers(&[
                (":status", "200"),
                ("content-type", "text/event-stream"),
                ("content-length", "9"),
            ]),
        );
        assert_eq!(
            mode.map(|m| m.response_body_mode),
            Some(BodySendMode::Buffered as i32)
        );
        assert!(ex.sse && ex.sized && ex.encoding.is_none());
        // An error answer carries no list: not buffered.
        let (_, mode) = response_headers(&mut ex, &headers(&[(":status", "403")]));
        assert!(mode.is_none() && ex.list.is_none());
        // A request that lists nothing is never buffered.
        let mut call = Exchange {
            req: Some(list_request(None)),
            protocol: Some(Protocol::Mcp),
            ..Default::default()
        };
        request_body(
            &mut call,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#.to_vec(),
        );
        let (_, mode) = response_headers(&mut call, &headers(&[(":status", "200")]));
        assert!(mode.is_none());
    }

    #[test]
    fn items_another_call_could_use_stay_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cedar");
        for entry in std::fs::read_dir(&shipped).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        std::fs::write(
            dir.path().join("conditional.cedar"),
            r#"
            @id("deploy-dry-run-only")
            permit (principal, action == Action::"call_tool", resource == Tool::"github/deploy")
            when { context has mcp && context.mcp.argument_names.contains("dry_run") };
            @id("search-needs-a-repo")
            forbid (principal, action == Action::"call_tool", resource == Tool::"github/search_issues")
            unless { context has mcp && context.mcp.argument_names.contains("repo") };
            @id("no-create")
            forbid (principal, action == Action::"call_tool", resource == Tool::"github/create_issue");
            "#,
        )
        .unwrap();
        let snapshot = crate::policy::load::load_dir(dir.path(), 1).unwrap();
        let (gate, _) = gate(true);
        let req = list_request(Some("2026-07-28"));
        let mut judge = Judge::new(&gate, &snapshot, &req, SystemTime::now());
        let shown: Vec<&str> = ["deploy", "search_issues", "create_issue", "admin_shell"]
            .into_iter()
            .filter(|name| judge.visible(ListKind::Tools, name))
            .collect();
        // deploy: a permit reads the arguments; search_issues: the forbid that denied it
        // reads them; create_issue: an unconditional forbid; admin_shell: no permit whose
        // scope can include it reads the arguments.
        assert_eq!(shown, ["deploy", "search_issues"]);
        assert_eq!(judge.conditional, ["deploy", "search_issues"]);
    }

    /// The cost of filtering a 100-tool `tools/list` (BENCHMARKS.md, "List filtering"):
    /// `cargo test --release --lib extproc::tests::list_filter_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a test"]
    fn list_filter_cost() {
        let body = tools_list(100);
        let req = list_request(Some("2026-07-28"));
        let rounds = 200;
        for cache in [false, true] {
            let (gate, snapshot) = gate(cache);
            filter_with(&gate, &snapshot, &req, &body); // warm-up (and the cache)
            let started = Instant::now();
            for _ in 0..rounds {
                filter_with(&gate, &snapshot, &req, &body);
            }
            let per_list = started.elapsed() / rounds;
            let call = item_request(&req, ListKind::Tools, "search_issues");
            let started = Instant::now();
            for _ in 0..rounds * 100 {
                gate.check(&snapshot, &call, SystemTime::now());
            }
            let per_check = started.elapsed() / (rounds * 100);
            println!(
                "decision cache {}: 100-tool tools/list filtered in {:?} ({:?} per tool); one tools/call Check {:?}",
                if cache { "on" } else { "off" },
                per_list,
                per_list / 100,
                per_check
            );
            assert!(per_list < Duration::from_secs(1));
        }
    }
}
