//! Model Context Protocol over streamable HTTP (JSON-RPC 2.0).
//!
//! `POST` carries one message or, before protocol version 2026-07-28, a
//! batch; every batch element becomes its own operation, and the gate denies
//! the whole request if any is denied. Which version a request speaks, and
//! the rule that its mirrored headers (`Mcp-Method`, `Mcp-Name`, ...) agree
//! with its body, is [`super::mcp_headers`]. Before 2026-07-28, `GET` (open
//! the server-to-client stream) is `listen` and `DELETE` (end the session) is
//! `end_session`; from 2026-07-28 both are gone and the stream is the POST
//! `subscriptions/listen` (also `listen`). The server is named by the route,
//! so a tool is `Tool::"<server>/<tool>"`; every other MCP operation is on
//! `McpServer::"<server>"`, with the details (resource URI, prompt name) in
//! `context.mcp`. MCP cannot be understood without its body: with
//! `body: optional`, an unreadable body is `unclassified`, as are other HTTP
//! methods and JSON-RPC methods this module does not know (never plain
//! `http`). Tool names with control characters or surrounding whitespace are
//! refused (`name_invalid`). A REST bridge's tool call without the JSON-RPC
//! envelope (LiteLLM `/mcp-rest/tools/call`) is read by [`super::mcp_rest`].

use std::collections::BTreeSet;

use crate::classify::ai::{get, len, opt_str};
use crate::classify::body::{BodyError, BodyReader};
use crate::classify::json::{Json, folded};
use crate::classify::mcp_headers::{self, McpRefusal};
use crate::classify::mcp_rest;
use crate::classify::model::check_name;
use crate::classify::routes::Route;
use crate::classify::{ClassifyError, Operation, Protocol, UNCLASSIFIED, action, unclassified};
use crate::request::HttpRequest;
use crate::vocab::{EntityType, Value, builtin_uid};

/// Most elements in one JSON-RPC batch.
pub const MAX_BATCH: usize = 64;
/// Most argument names in `context.mcp.argument_names`; a call with more is
/// refused (a name past a cut could be the one a policy looks for).
const MAX_ARGUMENT_NAMES: usize = 128;
/// Most keys of `params.inputResponses` (an MRTR retry), and most resource
/// URIs of a `subscriptions/listen` filter; more are refused.
const MAX_KEYS: usize = 64;
/// The `subscriptions/listen` filter flags (2026-07-28).
const LISTEN_FLAGS: [&str; 3] = [
    "toolsListChanged",
    "promptsListChanged",
    "resourcesListChanged",
];

/// What one MCP message asks for, as policies see it in `context.mcp`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpInfo {
    /// The JSON-RPC method (`tools/call`), or `GET` / `DELETE` / `response`.
    pub method: String,
    /// The route's server name.
    pub server: String,
    /// `tools/call`: the tool name (without server).
    pub tool: Option<String>,
    /// `tools/call` / `prompts/get`: the argument names.
    pub argument_names: BTreeSet<String>,
    /// `resources/read` / `subscribe`: the resource URI.
    pub uri: Option<String>,
    /// `prompts/get`: the prompt name.
    pub prompt: Option<String>,
    /// Elements in the request (1 unless a batch).
    pub batch_size: i64,
    /// The `MCP-Protocol-Version` the request declares, if any.
    pub protocol_version: Option<String>,
    /// `Mcp-Param-*` headers (2026-07-28 and later): lower-case name, decoded
    /// value, sorted by name.
    pub params: Vec<(String, String)>,
    /// An MRTR retry (2026-07-28): the keys of `params.inputResponses`.
    pub input_responses: Option<BTreeSet<String>>,
    /// `subscriptions/listen`: the change notifications opted in to
    /// (`toolsListChanged`, ...), and the resource URIs subscribed to.
    pub subscriptions: Option<BTreeSet<String>>,
    /// `subscriptions/listen`: `resourceSubscriptions`.
    pub subscribed_uris: Option<BTreeSet<String>>,
}

// === impl McpInfo ===

impl McpInfo {
    /// The Cedar record (fixed field order: it is part of the cache key).
    pub fn to_value(&self) -> Value {
        // Sized for every field: pushing past a small capacity reallocates.
        let mut fields = Vec::with_capacity(12);
        fields.push(("method".to_owned(), Value::str(&self.method)));
        fields.push(("server".to_owned(), Value::str(&self.server)));
        if let Some(t) = &self.tool {
            fields.push(("tool".to_owned(), Value::str(t)));
        }
        fields.push((
            "argument_names".to_owned(),
            Value::Set(self.argument_names.iter().map(Value::str).collect()),
        ));
        if let Some(u) = &self.uri {
            fields.push(("uri".to_owned(), Value::str(u)));
        }
        if let Some(p) = &self.prompt {
            fields.push(("prompt".to_owned(), Value::str(p)));
        }
        fields.push(("batch_size".to_owned(), Value::Long(self.batch_size)));
        if let Some(v) = &self.protocol_version {
            fields.push(("protocol_version".to_owned(), Value::str(v)));
        }
        if !self.params.is_empty() {
            let params = self.params.iter().map(|(name, value)| {
                Value::Record(vec![
                    ("name".to_owned(), Value::str(name)),
                    ("value".to_owned(), Value::str(value)),
                ])
            });
            fields.push(("params".to_owned(), Value::Set(params.collect())));
        }
        let sets = [
            ("input_responses", &self.input_responses),
            ("subscriptions", &self.subscriptions),
            ("subscribed_uris", &self.subscribed_uris),
        ];
        for (name, set) in sets {
            if let Some(set) = set {
                fields.push((
                    name.to_owned(),
                    Value::Set(set.iter().map(Value::str).collect()),
                ));
            }
        }
        Value::Record(fields)
    }

    fn operation(self, action_name: &str) -> Operation {
        let tool = self.tool.as_ref().map(|t| format!("{}/{t}", self.server));
        let resource = match &tool {
            Some(t) => builtin_uid(EntityType::Tool, t),
            None => builtin_uid(EntityType::McpServer, &self.server),
        };
        Operation {
            protocol: Protocol::Mcp,
            action: action(action_name),
            resource,
            model: None,
            tool,
            context: vec![("mcp".to_owned(), self.to_value())],
        }
    }
}

/// Classifies an MCP request into one operation per JSON-RPC message.
pub fn parse(
    req: &HttpRequest,
    route: &Route,
    body: &BodyReader<'_>,
) -> Result<Vec<Operation>, ClassifyError> {
    let refuse = |error, id| ClassifyError::Mcp(McpRefusal { error, id });
    let era = match mcp_headers::era(req, route.mcp_legacy) {
        Ok(era) => era,
        // Answered with the request's id when the body has one.
        Err(e) => {
            return Err(refuse(
                e,
                body.json().ok().flatten().and_then(|j| message_id(&j)),
            ));
        }
    };
    let info = |method: &str| McpInfo {
        method: method.to_owned(),
        server: route.server.clone(),
        batch_size: 1,
        protocol_version: era.version().map(str::to_owned),
        ..Default::default()
    };
    match req.method.as_str() {
        // 2026-07-28 removed the GET stream and sessions: nothing to authorize.
        "GET" | "DELETE" if era.is_modern() => return Ok(vec![unclassified(req, Protocol::Mcp)]),
        "GET" => return Ok(vec![info("GET").operation("listen")]),
        "DELETE" => return Ok(vec![info("DELETE").operation("end_session")]),
        "POST" => {}
        _ => return Ok(vec![unclassified(req, Protocol::Mcp)]),
    }
    let Some(json) = body.json()? else {
        return Ok(vec![unclassified(req, Protocol::Mcp)]);
    };
    // A REST bridge's tool call (LiteLLM `/mcp-rest/tools/call`): no
    // JSON-RPC envelope, so no mirrored headers to check either.
    let rest = mcp_rest::is_tool_call_path(&req.path);
    let read = if rest {
        mcp_rest::tool_call(&json, &route.server).map(|call| vec![call])
    } else {
        infos(&json, &route.server)
    };
    let infos = match read {
        // A bad tool name is refused whatever the body mode.
        Err(ClassifyError::Name(e)) => return Err(e.into()),
        Err(ClassifyError::Body(e)) => body.lenient(Err(e))?,
        other => Some(other?),
    };
    let Some(mut infos) = infos else {
        return Ok(vec![unclassified(req, Protocol::Mcp)]);
    };
    // The headers are checked against a body that parsed: what the upstream
    // runs is the body, so the body's own errors come first.
    let params = if rest {
        Vec::new()
    } else {
        mcp_headers::check(req, &era, &json).map_err(|e| refuse(e, message_id(&json)))?
    };
    if era.is_modern() && infos.iter().any(|(i, _)| i.method == "response") {
        return Err(BodyError::Invalid(
            "a client declaring MCP 2026-07-28 or later sends no JSON-RPC responses".to_owned(),
        )
        .into());
    }
    Ok(infos
        .drain(..)
        .map(|(mut i, action)| {
            i.protocol_version = era.version().map(str::to_owned);
            i.params.clone_from(&params);
            i.operation(action)
        })
        .collect())
}

/// The `id` of a single message (a batch has none of its own).
fn message_id(json: &Json<'_>) -> Option<serde_json::Value> {
    match json {
        Json::Object(_) => get(json, "id")
            .ok()
            .flatten()
            .filter(|v| v.is_string() || v.is_number())
            .map(Json::to_value),
        _ => None,
    }
}

/// One operation per message; any malformed element invalidates the batch.
pub fn messages(json: &Json<'_>, server: &str) -> Result<Vec<Operation>, ClassifyError> {
    Ok(infos(json, server)?
        .into_iter()
        .map(|(info, action)| info.operation(action))
        .collect())
}

fn infos(json: &Json<'_>, server: &str) -> Result<Vec<(McpInfo, &'static str)>, ClassifyError> {
    let items: &[Json<'_>] = match json {
        Json::Array(items) if items.is_empty() => {
            return Err(BodyError::Invalid("empty JSON-RPC batch".to_owned()).into());
        }
        Json::Array(items) if items.len() > MAX_BATCH => {
            return Err(BodyError::BatchTooLarge {
                len: items.len(),
                max: MAX_BATCH,
            }
            .into());
        }
        Json::Array(items) => items,
        single => std::slice::from_ref(single),
    };
    let batch_size = len(items.len());
    items
        .iter()
        .enumerate()
        .map(|(i, msg)| {
            message(msg, server, batch_size).map_err(|e| match e {
                ClassifyError::Body(BodyError::Invalid(m)) if items.len() > 1 => {
                    BodyError::Invalid(format!("batch element {i}: {m}")).into()
                }
                other => other,
            })
        })
        .collect()
}

fn message(
    msg: &Json<'_>,
    server: &str,
    batch_size: i64,
) -> Result<(McpInfo, &'static str), ClassifyError> {
    if !msg.is_object() {
        return Err(BodyError::Invalid("a JSON-RPC message must be an object".to_owned()).into());
    }
    if get(msg, "jsonrpc")?.is_some_and(|v| v.as_str() != Some("2.0")) {
        return Err(BodyError::Invalid("`jsonrpc` must be \"2.0\"".to_owned()).into());
    }
    let mut info = McpInfo {
        server: server.to_owned(),
        batch_size,
        ..Default::default()
    };
    let Some(method) = opt_str(msg, "method")? else {
        if get(msg, "result")?.is_some() || get(msg, "error")?.is_some() {
            info.method = "response".to_owned();
            return Ok((info, "response"));
        }
        return Err(BodyError::Invalid(
            "a JSON-RPC message needs a `method`, a `result` or an `error`".to_owned(),
        )
        .into());
    };
    let params = match get(msg, "params")? {
        None => &Json::Null,
        Some(p @ Json::Object(_)) => p,
        Some(_) => return Err(BodyError::field("params", "an object").into()),
    };
    info.method = method.clone();
    let action_name = match method.as_str() {
        "initialize" => "initialize",
        "ping" => "ping",
        "server/discover" => "discover",
        "subscriptions/listen" => {
            listen_filter(params, &mut info)?;
            "listen"
        }
        m if m.starts_with("notifications/") => "notification",
        "tools/list" => "list_tools",
        "tools/call" => {
            let tool = required_name(params, "name")?;
            check_name("tool", &tool)?;
            info.tool = Some(tool);
            info.argument_names = argument_names(params)?;
            info.input_responses = input_responses(params)?;
            "call_tool"
        }
        "resources/list" | "resources/templates/list" => "list_resources",
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            info.uri = Some(required_name(params, "uri")?);
            info.input_responses = input_responses(params)?;
            "read_resource"
        }
        "prompts/list" => "list_prompts",
        "prompts/get" => {
            info.prompt = Some(required_name(params, "name")?);
            info.argument_names = argument_names(params)?;
            info.input_responses = input_responses(params)?;
            "get_prompt"
        }
        _ => UNCLASSIFIED,
    };
    Ok((info, action_name))
}

/// The keys of `params.inputResponses`: the client answering the server's
/// `inputRequests` on a retry (MRTR, 2026-07-28).
fn input_responses(params: &Json<'_>) -> Result<Option<BTreeSet<String>>, BodyError> {
    match get(params, "inputResponses")? {
        None => Ok(None),
        Some(Json::Object(map)) if map.len() > MAX_KEYS => Err(BodyError::Invalid(format!(
            "`params.inputResponses` has more than {MAX_KEYS} keys"
        ))),
        Some(Json::Object(map)) => Ok(Some(
            map.iter().map(|(k, _)| k.as_ref().to_owned()).collect(),
        )),
        Some(_) => Err(BodyError::field("params.inputResponses", "an object")),
    }
}

/// `subscriptions/listen`: which change notifications, which resources.
fn listen_filter(params: &Json<'_>, info: &mut McpInfo) -> Result<(), BodyError> {
    let filter = match get(params, "notifications")? {
        None => &Json::Null,
        Some(f @ Json::Object(_)) => f,
        Some(_) => return Err(BodyError::field("params.notifications", "an object")),
    };
    let mut flags = BTreeSet::new();
    for flag in LISTEN_FLAGS {
        if crate::classify::ai::opt_bool(filter, flag)? {
            flags.insert(flag.to_owned());
        }
    }
    let uris = match get(filter, "resourceSubscriptions")? {
        None => BTreeSet::new(),
        Some(Json::Array(items)) if items.len() > MAX_KEYS => {
            return Err(BodyError::Invalid(format!(
                "`params.notifications.resourceSubscriptions` lists more than {MAX_KEYS} URIs"
            )));
        }
        Some(Json::Array(items)) => items
            .iter()
            .map(|u| u.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                BodyError::field(
                    "params.notifications.resourceSubscriptions",
                    "an array of strings",
                )
            })?,
        Some(_) => {
            return Err(BodyError::field(
                "params.notifications.resourceSubscriptions",
                "an array of strings",
            ));
        }
    };
    if !uris.is_empty() {
        flags.insert("resourceSubscriptions".to_owned());
    }
    info.subscriptions = Some(flags);
    info.subscribed_uris = Some(uris);
    Ok(())
}

pub(super) fn required_name(params: &Json<'_>, key: &str) -> Result<String, BodyError> {
    match opt_str(params, key) {
        Ok(Some(s)) if !s.is_empty() => Ok(s),
        _ => Err(BodyError::Invalid(format!(
            "`params.{key}` must be a non-empty string"
        ))),
    }
}

pub(super) fn argument_names(params: &Json<'_>) -> Result<BTreeSet<String>, BodyError> {
    match get(params, "arguments")? {
        None => Ok(BTreeSet::new()),
        Some(Json::Object(args)) if args.len() > MAX_ARGUMENT_NAMES => Err(BodyError::Invalid(
            format!("`params.arguments` has more than {MAX_ARGUMENT_NAMES} names"),
        )),
        Some(Json::Object(args)) => Ok(with_folded(args.iter().map(|(k, _)| k.as_ref()))),
        Some(_) => Err(BodyError::field("params.arguments", "an object")),
    }
}

/// Each argument name as sent and, where it differs, as case-insensitive
/// readers take it ([`folded`]): a Go typed handler fills its `path` field
/// from `"Path"` or `"PAT\u{212A}"`, so a policy's
/// `argument_names.contains("path")` must see those too. Write argument
/// names in policies in lower case.
fn with_folded<'k>(names: impl Iterator<Item = &'k str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for name in names {
        out.insert(folded(name).into_owned());
        out.insert(name.to_owned());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ops(body: &str) -> Result<Vec<Operation>, ClassifyError> {
        messages(
            &crate::classify::body::parse_json(body.as_bytes())?,
            "files",
        )
    }

    #[test]
    fn tool_call() {
        let o = ops(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/a"}}}"#).unwrap();
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].resource.to_string(), r#"Tool::"files/read_file""#);
        assert_eq!(o[0].action.to_string(), r#"Action::"call_tool""#);
        assert_eq!(o[0].tool.as_deref(), Some("files/read_file"));
    }

    #[test]
    fn argument_names_hold_what_case_insensitive_readers_read() {
        let o = ops(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"Path":"/etc/passwd","dry_run":true,"\u017Fize":1,"Fil\u212Aey":2,"m\u00f6de":3}}}"#).unwrap();
        assert_eq!(
            o[0].strings("argument_names"),
            [
                "Fil\u{212A}ey",
                "Path",
                "dry_run",
                "filkey",
                "m\u{f6}de",
                "path",
                "size",
                "\u{17F}ize"
            ]
        );
        let o = ops(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","arguments":{"PATH":"x"}}}"#).unwrap();
        assert_eq!(o[0].strings("argument_names"), ["PATH", "path"]);
    }

    #[test]
    fn batches() {
        let o = ops(r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":7,"result":{}}]"#).unwrap();
        let actions: Vec<String> = o.iter().map(|o| o.action.to_string()).collect();
        assert_eq!(
            actions,
            [
                r#"Action::"list_tools""#,
                r#"Action::"notification""#,
                r#"Action::"response""#
            ]
        );
        assert!(ops("[]").is_err());
        let big = format!(
            "[{}]",
            vec![r#"{"jsonrpc":"2.0","method":"ping","id":1}"#; 65].join(",")
        );
        assert!(matches!(
            ops(&big),
            Err(ClassifyError::Body(BodyError::BatchTooLarge {
                len: 65,
                ..
            }))
        ));
    }

    #[test]
    fn malformed() {
        for bad in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","method":7}"#,
            r#"[1]"#,
            r#""x""#,
        ] {
            assert!(ops(bad).is_err(), "{bad}");
        }
    }
}
