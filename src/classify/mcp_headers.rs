//! MCP request metadata headers: from protocol version 2026-07-28 the
//! Streamable HTTP transport mirrors body fields into headers
//! (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-{name}`) so
//! that intermediaries can route without reading the body.
//!
//! A gateway that authorizes on the body while something downstream routes
//! on a header (or the reverse) is a bypass: what is authorized must be what
//! runs (DESIGN invariant 10). So every disagreement is refused here, with
//! `400` and the JSON-RPC `HeaderMismatch` error (`-32020`) the specification
//! asks servers to answer with.
//!
//! Which rules apply depends on the protocol version the request declares:
//! - `MCP-Protocol-Version` 2026-07-28 or later (**modern**): one message per
//!   POST (a batch is refused); `Mcp-Method` is required on every request and
//!   `Mcp-Name` on `tools/call`, `resources/read` and `prompts/get`; the
//!   header must equal the body's `params._meta` protocol version; the GET
//!   stream and `DELETE` no longer exist (unclassified).
//! - 2025-03-26 .. 2025-11-25 (**legacy**), or no header at all (which the
//!   specification lets a server read as 2025-03-26): batches and sessions as
//!   before. A route with `mcp_legacy: refuse` refuses these.
//! - In every version, a mirrored header that *is* present must agree with
//!   the body, and a body that declares a modern version needs the same
//!   version header: a client cannot opt out of the checks by leaving the
//!   header off.
//!
//! `Mcp-Param-*` values become `context.mcp.params` only for modern requests:
//! only there must the server compare them with the body (the mapping from
//! header to argument lives in the tool's `inputSchema`, which the gateway
//! does not see, so the gateway checks that they are well-formed and the
//! server checks that they agree). Error messages name headers and fields,
//! never their values (an argument may be a secret).

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::classify::json::Json as BodyJson;
use crate::request::HttpRequest;
use crate::vocab::Reason;

/// `obj[key]` for the header checks. A key that case-insensitive readers
/// take for `key` is refused by the message's classification
/// (`classify::mcp`), which reads every field compared here; here it is
/// absent.
fn get<'a, 'b>(obj: &'a BodyJson<'b>, key: &str) -> Option<&'a BodyJson<'b>> {
    crate::classify::ai::get(obj, key).ok().flatten()
}

/// `MCP-Protocol-Version` (header names are lower case here).
pub const VERSION_HEADER: &str = "mcp-protocol-version";
/// `Mcp-Method`: mirrors the body's `method`.
pub const METHOD_HEADER: &str = "mcp-method";
/// `Mcp-Name`: mirrors `params.name` or `params.uri`.
pub const NAME_HEADER: &str = "mcp-name";
/// `Mcp-Param-{name}`: a tool argument the tool's schema marks `x-mcp-header`.
pub const PARAM_HEADER_PREFIX: &str = "mcp-param-";
/// The `_meta` key carrying the protocol version in the body.
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// The first protocol version whose headers mirror the body.
pub const FIRST_MODERN: &str = "2026-07-28";
/// JSON-RPC error code of `HeaderMismatch` (2026-07-28 schema).
pub const HEADER_MISMATCH: i64 = -32020;
/// JSON-RPC error code of `UnsupportedProtocolVersion` (2026-07-28 schema).
pub const UNSUPPORTED_VERSION: i64 = -32022;
/// JSON-RPC `Invalid Request`.
pub const INVALID_REQUEST: i64 = -32600;
/// Most `Mcp-Param-*` headers on one request.
pub const MAX_PARAMS: usize = 32;

/// The methods whose `Mcp-Name` header is required, and the field it mirrors.
const NAMED: [(&str, &str); 3] = [
    ("tools/call", "name"),
    ("prompts/get", "name"),
    ("resources/read", "uri"),
];
/// The Base64 sentinel around an encoded header value.
const SENTINEL_START: &str = "=?base64?";
const SENTINEL_END: &str = "?=";

/// Whether an MCP route accepts clients older than 2026-07-28 (route option
/// `mcp_legacy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Legacy {
    /// 2025-03-26 .. 2025-11-25 clients, and requests without a version
    /// header, are classified as before (batches, sessions, GET stream).
    #[default]
    Accept,
    /// Only requests declaring 2026-07-28 or later are classified; the rest
    /// get `400` (`mcp_version_refused`).
    Refuse,
}

/// The protocol era a request declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    /// Before 2026-07-28, or no version header.
    Legacy(Option<String>),
    /// 2026-07-28 or later: the headers mirror the body.
    Modern(String),
}

// === impl Era ===

impl Era {
    /// Whether the request declares 2026-07-28 or later.
    pub fn is_modern(&self) -> bool {
        matches!(self, Era::Modern(_))
    }

    /// The declared version, if any.
    pub fn version(&self) -> Option<&str> {
        match self {
            Era::Legacy(v) => v.as_deref(),
            Era::Modern(v) => Some(v),
        }
    }
}

/// Why an MCP request is refused for its headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpHeaderError {
    /// A mirrored header disagrees with the body, is missing, repeated or
    /// malformed.
    #[error("Header mismatch: {0}")]
    Mismatch(String),
    /// A 2026-07-28 request carries a JSON-RPC batch.
    #[error("a request declaring MCP {0} carries one JSON-RPC message, not a batch")]
    Batch(String),
    /// The route refuses clients older than 2026-07-28.
    #[error("this route accepts MCP {FIRST_MODERN} or later; the request declares {0}")]
    VersionRefused(String),
}

/// A refused MCP request: the error and the JSON-RPC id to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct McpRefusal {
    /// What is wrong.
    pub error: McpHeaderError,
    /// The request's `id` (string or number), when the body had one.
    pub id: Option<Json>,
}

// === impl McpRefusal ===

impl McpRefusal {
    /// The decision reason (a fixed metric label).
    pub fn reason(&self) -> Reason {
        match self.error {
            McpHeaderError::Mismatch(_) => Reason::McpHeaderMismatch,
            McpHeaderError::Batch(_) => Reason::McpBatchRefused,
            McpHeaderError::VersionRefused(_) => Reason::McpVersionRefused,
        }
    }

    /// The `400` body: a JSON-RPC error response with the request's id.
    pub fn body(&self) -> String {
        let (code, data) = match &self.error {
            McpHeaderError::Mismatch(_) => (HEADER_MISMATCH, None),
            McpHeaderError::Batch(_) => (INVALID_REQUEST, None),
            McpHeaderError::VersionRefused(_) => (
                UNSUPPORTED_VERSION,
                Some(serde_json::json!({ "supported": [FIRST_MODERN] })),
            ),
        };
        jsonrpc_error_body(code, &self.error.to_string(), self.id.as_ref(), data)
    }
}

/// A JSON-RPC 2.0 error response (`id` null when unknown). The one place the
/// MCP refusal body is written.
pub fn jsonrpc_error_body(
    code: i64,
    message: &str,
    id: Option<&Json>,
    data: Option<Json>,
) -> String {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let Some(data) = data {
        error["data"] = data;
    }
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Json::Null),
        "error": error,
    })
    .to_string()
}

fn mismatch(message: impl Into<String>) -> McpHeaderError {
    McpHeaderError::Mismatch(message.into())
}

/// The era the request declares, or a refusal (malformed or repeated version
/// header, or a legacy client on a route that refuses them).
pub fn era(req: &HttpRequest, legacy: Legacy) -> Result<Era, McpHeaderError> {
    let era = match header(req, VERSION_HEADER, "MCP-Protocol-Version")? {
        None => Era::Legacy(None),
        Some(v) if !is_version(v) => {
            return Err(mismatch(
                "`MCP-Protocol-Version` is not a protocol version (YYYY-MM-DD)",
            ));
        }
        // Dates in this fixed form order as strings.
        Some(v) if v >= FIRST_MODERN => Era::Modern(v.to_owned()),
        Some(v) => Era::Legacy(Some(v.to_owned())),
    };
    if legacy == Legacy::Refuse && !era.is_modern() {
        return Err(McpHeaderError::VersionRefused(
            era.version().unwrap_or("no version").to_owned(),
        ));
    }
    Ok(era)
}

/// Checks the mirrored headers against the body (`json`: the whole body, a
/// message or a batch) and returns the `Mcp-Param-*` values for
/// `context.mcp.params` (modern requests only; name lower case, value
/// decoded, sorted by name).
pub fn check(
    req: &HttpRequest,
    era: &Era,
    json: &BodyJson<'_>,
) -> Result<Vec<(String, String)>, McpHeaderError> {
    let method_header = header(req, METHOD_HEADER, "Mcp-Method")?;
    let name_header = header(req, NAME_HEADER, "Mcp-Name")?
        .map(|v| decode("Mcp-Name", v))
        .transpose()?;
    let params = params(req)?;
    let msg = match json {
        BodyJson::Array(_) if era.is_modern() => {
            return Err(McpHeaderError::Batch(
                era.version().unwrap_or_default().to_owned(),
            ));
        }
        // A batch cannot be mirrored into one set of headers: a legacy batch
        // carrying them is ambiguous to whatever routes on them.
        BodyJson::Array(_) if method_header.is_some() || name_header.is_some() => {
            return Err(mismatch(
                "a JSON-RPC batch cannot carry `Mcp-Method` or `Mcp-Name`",
            ));
        }
        BodyJson::Array(_) => return Ok(Vec::new()),
        msg => msg,
    };
    let method = get(msg, "method").and_then(BodyJson::as_str);
    let is_request = method.is_some() && get(msg, "id").is_some();
    let body_params = get(msg, "params");
    check_version(era, body_params, is_request)?;
    check_method(era, method_header, method, is_request)?;
    check_name(era, name_header.as_deref(), method, body_params, is_request)?;
    Ok(if era.is_modern() { params } else { Vec::new() })
}

/// `MCP-Protocol-Version` <-> `params._meta` protocol version.
fn check_version(
    era: &Era,
    body_params: Option<&BodyJson<'_>>,
    is_request: bool,
) -> Result<(), McpHeaderError> {
    let body_version = body_params
        .and_then(|p| get(p, "_meta"))
        .and_then(|m| get(m, META_VERSION));
    match (era, body_version) {
        (_, Some(BodyJson::String(b))) if Some(b.as_ref()) == era.version() => Ok(()),
        (_, Some(BodyJson::String(b))) if b.as_ref() >= FIRST_MODERN || era.is_modern() => Err(
            mismatch("`MCP-Protocol-Version` does not match `params._meta` protocol version"),
        ),
        (_, Some(BodyJson::String(_))) => Ok(()),
        (_, Some(_)) => Err(mismatch("`params._meta` protocol version is not a string")),
        (Era::Modern(_), None) if is_request => Err(mismatch(
            "`MCP-Protocol-Version` is set but `params._meta` has no protocol version",
        )),
        _ => Ok(()),
    }
}

/// `Mcp-Method` <-> `method`.
fn check_method(
    era: &Era,
    method_header: Option<&str>,
    method: Option<&str>,
    is_request: bool,
) -> Result<(), McpHeaderError> {
    match (method_header, method) {
        (Some(h), Some(b)) if h == b => Ok(()),
        (Some(_), Some(_)) => Err(mismatch("`Mcp-Method` does not match `method`")),
        (Some(_), None) => Err(mismatch(
            "`Mcp-Method` is set but the message has no `method`",
        )),
        (None, Some(_)) if era.is_modern() && is_request => {
            Err(mismatch("`Mcp-Method` is required"))
        }
        _ => Ok(()),
    }
}

/// `Mcp-Name` <-> `params.name` / `params.uri`.
fn check_name(
    era: &Era,
    name_header: Option<&str>,
    method: Option<&str>,
    body_params: Option<&BodyJson<'_>>,
    is_request: bool,
) -> Result<(), McpHeaderError> {
    let field = |key: &str| body_params.and_then(|p| get(p, key));
    let required = method.and_then(|m| NAMED.iter().find(|(n, _)| *n == m).map(|(_, f)| *f));
    let source = required.or_else(|| ["name", "uri"].into_iter().find(|k| field(k).is_some()));
    let body_name = source.and_then(|k| field(k).map(|v| (k, v)));
    match (name_header, body_name) {
        (Some(h), Some((_, BodyJson::String(b)))) if h == b.as_ref() => Ok(()),
        (Some(_), Some((k, _))) => Err(mismatch(format!("`Mcp-Name` does not match `params.{k}`"))),
        (Some(_), None) => Err(mismatch(
            "`Mcp-Name` is set but the message has no `params.name` or `params.uri`",
        )),
        (None, Some((k, _))) if era.is_modern() && is_request && required.is_some() => {
            Err(mismatch(format!(
                "`Mcp-Name` is required and must mirror `params.{k}`"
            )))
        }
        _ => Ok(()),
    }
}

/// A mirrored header's value: `None` when absent; refused when repeated or
/// holding characters a header value may not.
fn header<'r>(
    req: &'r HttpRequest,
    name: &str,
    display: &str,
) -> Result<Option<&'r str>, McpHeaderError> {
    let Some(v) = req.header(name) else {
        return Ok(None);
    };
    // Envoy joins a repeated header's values with `,` (none of the values
    // of these two headers may contain one); a raw header map says so itself.
    let joined = (name == VERSION_HEADER || name == METHOD_HEADER) && v.contains(',');
    if joined || req.repeated_headers.iter().any(|h| h == name) {
        return Err(mismatch(format!("`{display}` is repeated")));
    }
    if !v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return Err(mismatch(format!("`{display}` has invalid characters")));
    }
    Ok(Some(v))
}

/// Every `Mcp-Param-*` header, checked and decoded.
fn params(req: &HttpRequest) -> Result<Vec<(String, String)>, McpHeaderError> {
    let mut out = Vec::new();
    // Headers are sorted by name: the params are too.
    for (name, _) in req
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with(PARAM_HEADER_PREFIX))
    {
        let param = &name[PARAM_HEADER_PREFIX.len()..];
        if param.is_empty() {
            return Err(mismatch("`Mcp-Param-` has no parameter name"));
        }
        if out.len() == MAX_PARAMS {
            return Err(mismatch(format!(
                "more than {MAX_PARAMS} `Mcp-Param-*` headers"
            )));
        }
        let display = format!("Mcp-Param-{param}");
        let Some(value) = header(req, name, &display)? else {
            continue;
        };
        out.push((param.to_owned(), decode(&display, value)?));
    }
    Ok(out)
}

/// A header value with the Base64 sentinel (`=?base64?...?=`) decoded.
pub fn decode(display: &str, v: &str) -> Result<String, McpHeaderError> {
    let Some(inner) = v
        .strip_prefix(SENTINEL_START)
        .and_then(|s| s.strip_suffix(SENTINEL_END))
    else {
        return Ok(v.to_owned());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .map_err(|_| mismatch(format!("`{display}` has an invalid Base64 value")))?;
    String::from_utf8(bytes)
        .map_err(|_| mismatch(format!("`{display}` decodes to bytes that are not UTF-8")))
}

/// `YYYY-MM-DD`.
fn is_version(v: &str) -> bool {
    v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

#[cfg(test)]
#[path = "mcp_headers_tests.rs"]
mod tests;
