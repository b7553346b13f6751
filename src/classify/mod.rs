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
pub mod gemini;
pub mod http;
pub mod mcp;
pub mod openai;
pub mod routes;

#[cfg(test)]
mod fixtures;

use cedar_policy::EntityUid;

use crate::policy::model::{ACTION, Value, builtin_uid};
use crate::request::HttpRequest;

pub use body::BodyError;
pub use routes::{Route, Routes};

/// Entity type of models (id: the model name as the caller asked for it).
pub const MODEL: &str = "Model";
/// Entity type of MCP tools (id: `<server>/<tool>`).
pub const TOOL: &str = "Tool";
/// Entity type of MCP servers (id: the route's `server`); the resource of every
/// MCP operation that is not a tool call.
pub const MCP_SERVER: &str = "McpServer";

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
    /// The model asked for, if any (also in `context.ai.model`).
    pub model: Option<String>,
    /// The MCP tool called, as `<server>/<tool>`, if any.
    pub tool: Option<String>,
    /// Protocol context records added to the Cedar context (`ai`, `mcp`).
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
}

/// A request that a protocol needed to read but could not: denied with the
/// error's reason (fail closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The protocol of the matched route.
    pub protocol: Protocol,
    /// What was wrong with the body.
    pub error: BodyError,
}

/// The uid of an action by name.
pub fn action(name: &str) -> EntityUid {
    builtin_uid(ACTION, name)
}

/// Classifies a request with a route table: one operation, or one per element
/// of a JSON-RPC batch (never empty), or a refusal. Never panics.
pub fn classify(req: &HttpRequest, routes: &Routes) -> Result<Vec<Operation>, Refusal> {
    let Some(route) = routes.find(req) else {
        return Ok(vec![http::classify(req)]);
    };
    let body = body::BodyReader::new(req, route);
    let result = match route.protocol {
        Protocol::Http => Ok(vec![http::classify(req)]),
        Protocol::Openai => openai::parse(req, &body).map(|op| vec![op]),
        Protocol::Anthropic => anthropic::parse(req, &body).map(|op| vec![op]),
        Protocol::Gemini => gemini::parse(req, &body).map(|op| vec![op]),
        Protocol::Bedrock => bedrock::parse(req, &body).map(|op| vec![op]),
        Protocol::Mcp => mcp::parse(req, route, &body),
    };
    result.map_err(|error| Refusal {
        protocol: route.protocol,
        error,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builtin_types_parse() {
        for ty in [MODEL, TOOL, MCP_SERVER] {
            assert!(
                <cedar_policy::EntityTypeName as std::str::FromStr>::from_str(ty).is_ok(),
                "{ty}"
            );
        }
    }

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
}
