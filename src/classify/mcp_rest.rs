//! MCP tool calls over a REST bridge: LiteLLM's `POST /mcp-rest/tools/call`
//! (and any `…/tools/call` on an MCP route) takes `{"name": ..., "arguments":
//! {...}, "server_id": ...}`, no JSON-RPC envelope. It runs the tool it names,
//! so it is `call_tool` on `Tool::"<server>/<name>"` like a JSON-RPC
//! `tools/call`, with the same argument names.
//!
//! The server is the route's. A body that selects another upstream server
//! (`server_id`, `server_name`, `mcp_server_name` other than the route's
//! `server`) is `unclassified`: the gate does not guess which server's tool
//! runs (name the route's `server` after the bridge's server id). A body
//! that also carries JSON-RPC keys (`jsonrpc`, `method`, `params`) is read
//! two ways and refused. Off every route the server cannot be known, so
//! such a path is `unclassified` (see `sniff`).

use crate::classify::ai::{get, opt_str};
use crate::classify::body::BodyError;
use crate::classify::json::Json;
use crate::classify::mcp::{McpInfo, argument_names, required_name};
use crate::classify::model::check_name;
use crate::classify::{ClassifyError, UNCLASSIFIED};
use crate::target::ends_with_ignore_case;

/// Keys a REST bridge reads to pick the upstream server.
const SERVER_KEYS: [&str; 3] = ["server_id", "server_name", "mcp_server_name"];
/// Keys of a JSON-RPC message: with them the body means something else to an
/// MCP server than to the bridge.
const RPC_KEYS: [&str; 3] = ["jsonrpc", "method", "params"];

/// Whether the canonical path is a REST bridge's tool call: it ends with
/// `/tools/call` (LiteLLM's `/mcp-rest/tools/call`, its older
/// `/mcp/tools/call`) or `/call_tool` (LiteLLM's first `/mcp/call_tool`),
/// ignoring ASCII case and a trailing `/`.
pub fn is_tool_call_path(path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    ends_with_ignore_case(path, "/tools/call") || ends_with_ignore_case(path, "/call_tool")
}

/// The operation of a REST tool call on an MCP route of `server`.
pub fn tool_call(json: &Json<'_>, server: &str) -> Result<(McpInfo, &'static str), ClassifyError> {
    if !json.is_object() {
        return Err(BodyError::Invalid("a REST tool call must be an object".to_owned()).into());
    }
    for key in RPC_KEYS {
        if get(json, key)?.is_some() {
            return Err(BodyError::Invalid(format!(
                "a REST tool call carries the JSON-RPC key `{key}`: an MCP server and a REST bridge read it differently"
            ))
            .into());
        }
    }
    let mut info = McpInfo {
        method: "tools/call".to_owned(),
        server: server.to_owned(),
        batch_size: 1,
        ..Default::default()
    };
    for key in SERVER_KEYS {
        if opt_str(json, key)?.is_some_and(|s| s != server) {
            return Ok((info, UNCLASSIFIED));
        }
    }
    let tool = required_name(json, "name")?;
    check_name("tool", &tool)?;
    info.tool = Some(tool);
    info.argument_names = argument_names(json)?;
    Ok((info, "call_tool"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_paths() {
        for path in [
            "/mcp-rest/tools/call",
            "/MCP-REST/Tools/Call/",
            "/litellm/mcp-rest/tools/call",
            "/mcp/tools/call",
            "/mcp/call_tool",
        ] {
            assert!(is_tool_call_path(path), "{path}");
        }
        for path in [
            "/mcp-rest/tools/list",
            "/tools/caller",
            "/x-tools/call/y",
            "/mcp/github",
        ] {
            assert!(!is_tool_call_path(path), "{path}");
        }
    }
}
