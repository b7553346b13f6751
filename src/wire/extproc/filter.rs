//! Filtering list responses (MCP `tools/list`, `prompts/list`,
//! `resources/list`, `resources/templates/list`, model lists) down to what the
//! caller may use, over a JSON body or a Server-Sent Events stream.
//!
//! Fails closed: a body that cannot be read in full (not UTF-8, not JSON, an
//! SSE event whose data is not JSON, a list that is not an array, an item
//! without a name, over [`MAX_LIST_BYTES`]) is an error, which the caller
//! turns into a JSON-RPC error: never the unfiltered list.

use serde_json::Value as Json;

/// Most bytes of a list response filtered (Envoy's buffer limit is usually
/// lower: a larger response fails there first).
pub const MAX_LIST_BYTES: usize = 8 * 1024 * 1024;

/// Which list a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// MCP `tools/list`: `result.tools[].name`.
    Tools,
    /// MCP `prompts/list`: `result.prompts[].name`.
    Prompts,
    /// MCP `resources/list`: `result.resources[].uri`.
    Resources,
    /// MCP `resources/templates/list`: `result.resourceTemplates[].uriTemplate`.
    ResourceTemplates,
    /// OpenAI / Anthropic `GET /v1/models`: `data[].id`.
    Models,
}

/// Why a list response could not be filtered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    /// Over [`MAX_LIST_BYTES`].
    #[error("list response is {0} bytes, more than the {MAX_LIST_BYTES} filtered")]
    TooLarge(usize),
    /// Not UTF-8.
    #[error("list response is not UTF-8")]
    NotUtf8,
    /// Not JSON (or an SSE event's data is not).
    #[error("list response is not JSON: {0}")]
    NotJson(String),
    /// The list field is not an array, or an item has no name.
    #[error("list response has an unexpected shape: {0}")]
    Shape(&'static str),
    /// Compressed: the filter reads plain bodies only.
    #[error("list response is compressed (`content-encoding: {0}`)")]
    Encoded(String),
}

// === impl ListKind ===

impl ListKind {
    /// The list an MCP method returns.
    pub fn of_method(method: &str) -> Option<Self> {
        Some(match method {
            "tools/list" => ListKind::Tools,
            "prompts/list" => ListKind::Prompts,
            "resources/list" => ListKind::Resources,
            "resources/templates/list" => ListKind::ResourceTemplates,
            _ => return None,
        })
    }

    /// The field of `result` (MCP) or of the body (models) holding the list.
    fn key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
            ListKind::Models => "data",
        }
    }

    /// The item field naming what a caller would use.
    fn name_field(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::ResourceTemplates => "uriTemplate",
            ListKind::Models => "id",
        }
    }

    /// The action of the request that would use a listed item.
    pub fn use_action(self) -> &'static str {
        match self {
            ListKind::Tools => "call_tool",
            ListKind::Prompts => "get_prompt",
            ListKind::Resources | ListKind::ResourceTemplates => "read_resource",
            ListKind::Models => "get_model",
        }
    }

    /// A label for audit events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resource_templates",
            ListKind::Models => "models",
        }
    }
}

/// Whether the caller may use one listed item (`kind`, name).
pub type Visible<'a> = dyn FnMut(ListKind, &str) -> bool + 'a;

/// Filters a list response body for the lists the request asked for (a
/// legacy JSON-RPC batch may ask for several). `sse` when the response is
/// `text/event-stream`. The names of hidden items are pushed to `hidden`.
pub fn filter(
    body: &[u8],
    kinds: &[ListKind],
    sse: bool,
    visible: &mut Visible<'_>,
    hidden: &mut Vec<String>,
) -> Result<Vec<u8>, FilterError> {
    if body.len() > MAX_LIST_BYTES {
        return Err(FilterError::TooLarge(body.len()));
    }
    let text = std::str::from_utf8(body).map_err(|_| FilterError::NotUtf8)?;
    if sse {
        return filter_sse(text, kinds, visible, hidden).map(String::into_bytes);
    }
    let mut json: Json =
        serde_json::from_str(text).map_err(|e| FilterError::NotJson(e.to_string()))?;
    filter_json(&mut json, kinds, visible, hidden)?;
    serde_json::to_vec(&json).map_err(|e| FilterError::NotJson(e.to_string()))
}

/// Filters one JSON body: a JSON-RPC response (or a batch of them) for MCP,
/// the list object for models.
fn filter_json(
    json: &mut Json,
    kinds: &[ListKind],
    visible: &mut Visible<'_>,
    hidden: &mut Vec<String>,
) -> Result<(), FilterError> {
    if kinds.contains(&ListKind::Models) {
        // An answer without `data` lists no model (clients read `data`).
        if json.get(ListKind::Models.key()).is_none() {
            return Ok(());
        }
        return filter_items(json, ListKind::Models, visible, hidden);
    }
    match json {
        Json::Array(messages) => {
            for m in messages {
                filter_message(m, kinds, visible, hidden)?;
            }
            Ok(())
        }
        m => filter_message(m, kinds, visible, hidden),
    }
}

/// One JSON-RPC message: a result carrying the list is filtered; errors,
/// notifications and server requests pass unchanged.
fn filter_message(
    message: &mut Json,
    kinds: &[ListKind],
    visible: &mut Visible<'_>,
    hidden: &mut Vec<String>,
) -> Result<(), FilterError> {
    let Some(obj) = message.as_object_mut() else {
        return Err(FilterError::Shape("a JSON-RPC message is not an object"));
    };
    let Some(result @ Json::Object(_)) = obj.get_mut("result") else {
        return Ok(());
    };
    // A result without the list: the server answered something else (an
    // empty result is an empty list to a client).
    for &kind in kinds {
        if result.get(kind.key()).is_some() {
            filter_items(result, kind, visible, hidden)?;
        }
    }
    Ok(())
}

/// Keeps the visible items of `holder[kind.key()]`.
fn filter_items(
    holder: &mut Json,
    kind: ListKind,
    visible: &mut Visible<'_>,
    hidden: &mut Vec<String>,
) -> Result<(), FilterError> {
    let Some(Json::Array(items)) = holder.get_mut(kind.key()) else {
        return Err(FilterError::Shape("the list is not an array"));
    };
    let mut kept = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        let Some(name) = item.get(kind.name_field()).and_then(Json::as_str) else {
            return Err(FilterError::Shape("a listed item has no name"));
        };
        if visible(kind, name) {
            kept.push(item);
        } else {
            hidden.push(name.to_owned());
        }
    }
    *items = kept;
    Ok(())
}

/// Filters every event of an SSE stream whose data is a JSON-RPC message;
/// other fields (`event`, `id`, `retry`, comments) are kept as they were.
fn filter_sse(
    text: &str,
    kinds: &[ListKind],
    visible: &mut Visible<'_>,
    hidden: &mut Vec<String>,
) -> Result<String, FilterError> {
    let mut out = String::with_capacity(text.len());
    let mut fields: Vec<&str> = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    // `lines()` splits on `\n` and drops one `\r` before it; a bare `\r` line
    // ending (allowed by the SSE grammar) is rare enough to refuse below.
    let mut lines = text.lines().peekable();
    loop {
        let line = lines.next();
        match line {
            Some(l) if !l.is_empty() => {
                if l.contains('\r') {
                    return Err(FilterError::Shape("SSE line ends with a bare CR"));
                }
                match l.strip_prefix("data:") {
                    Some(d) => data.push(d.strip_prefix(' ').unwrap_or(d)),
                    None => fields.push(l),
                }
                continue;
            }
            _ => {}
        }
        // End of an event (blank line, or the end of the stream).
        if !fields.is_empty() || !data.is_empty() {
            for f in &fields {
                out.push_str(f);
                out.push('\n');
            }
            if !data.is_empty() {
                let joined = data.join("\n");
                let mut json: Json = serde_json::from_str(&joined)
                    .map_err(|e| FilterError::NotJson(format!("SSE event data: {e}")))?;
                filter_json(&mut json, kinds, visible, hidden)?;
                out.push_str("data: ");
                out.push_str(&json.to_string());
                out.push('\n');
            }
            out.push('\n');
            fields.clear();
            data.clear();
        }
        if line.is_none() {
            break;
        }
    }
    Ok(out)
}

/// The body replacing a list that could not be filtered: a JSON-RPC error
/// with the request's id (an SSE event when the response was a stream), or
/// for model lists an empty list.
pub fn refusal(kind: ListKind, id: &Json, sse: bool, error: &FilterError) -> Vec<u8> {
    let body = if kind == ListKind::Models {
        serde_json::json!({"object": "list", "data": [], "error": {
            "type": "list_unfiltered", "message": "cedar-gate could not filter the model list"}})
    } else {
        serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {
            "code": INTERNAL_ERROR,
            "message": "cedar-gate could not filter the list response",
            "data": {"reason": "list_unfiltered", "detail": error.to_string()}}})
    };
    if sse {
        format!("event: message\ndata: {body}\n\n").into_bytes()
    } else {
        body.to_string().into_bytes()
    }
}

/// JSON-RPC `Internal error`.
const INTERNAL_ERROR: i64 = -32603;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    #[test]
    fn every_list_kind_is_registered_at_zero() {
        for kind in [
            ListKind::Tools,
            ListKind::Prompts,
            ListKind::Resources,
            ListKind::ResourceTemplates,
            ListKind::Models,
        ] {
            assert!(
                crate::record::metrics::LIST_LABELS.contains(&kind.as_str()),
                "{kind:?}"
            );
        }
    }

    use serde_json::json;

    use super::*;

    fn run(body: &str, kind: ListKind, sse: bool) -> Result<(String, Vec<String>), FilterError> {
        let mut hidden = Vec::new();
        let mut visible = |_: ListKind, name: &str| !name.starts_with("secret");
        let out = filter(body.as_bytes(), &[kind], sse, &mut visible, &mut hidden)?;
        Ok((String::from_utf8(out).unwrap(), hidden))
    }

    #[test]
    fn json_lists_keep_visible_items_only() {
        let body = json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": [
            {"name": "search", "inputSchema": {}}, {"name": "secret_delete"}, {"name": "get"}],
            "nextCursor": "c2"}});
        let (out, hidden) = run(&body.to_string(), ListKind::Tools, false).unwrap();
        let out: Json = serde_json::from_str(&out).unwrap();
        assert_eq!(out["result"]["tools"].as_array().unwrap().len(), 2);
        assert_eq!(out["result"]["nextCursor"], "c2");
        assert_eq!(out["id"], 3);
        assert_eq!(hidden, ["secret_delete"]);
        for (kind, key, field) in [
            (ListKind::Prompts, "prompts", "name"),
            (ListKind::Resources, "resources", "uri"),
            (
                ListKind::ResourceTemplates,
                "resourceTemplates",
                "uriTemplate",
            ),
        ] {
            let body = json!({"jsonrpc": "2.0", "id": "a", "result": {key: [
                {field: "x"}, {field: "secret-y"}]}});
            let (out, hidden) = run(&body.to_string(), kind, false).unwrap();
            assert!(!out.contains("secret"), "{out}");
            assert_eq!(hidden, ["secret-y"]);
        }
        let other = json!({"ok": true});
        let (out, hidden) = run(&other.to_string(), ListKind::Models, false).unwrap();
        assert_eq!((out.as_str(), hidden.len()), (r#"{"ok":true}"#, 0));
        let models = json!({"object": "list", "data": [{"id": "gpt-4o"}, {"id": "secret-model"}]});
        let (out, hidden) = run(&models.to_string(), ListKind::Models, false).unwrap();
        assert!(out.contains("gpt-4o") && !out.contains("secret"), "{out}");
        assert_eq!(hidden, ["secret-model"]);
    }

    #[test]
    fn a_batch_asking_for_two_lists_gets_both_filtered() {
        let body = json!([
            {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a"}, {"name": "secret-t"}]}},
            {"jsonrpc": "2.0", "id": 2, "result": {"prompts": [{"name": "secret-p"}, {"name": "b"}]}},
        ]);
        let mut hidden = Vec::new();
        let mut visible = |_: ListKind, name: &str| !name.starts_with("secret");
        let kinds = [ListKind::Tools, ListKind::Prompts];
        let out = filter(
            body.to_string().as_bytes(),
            &kinds,
            false,
            &mut visible,
            &mut hidden,
        )
        .unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("secret"));
        assert_eq!(hidden, ["secret-t", "secret-p"]);
    }

    #[test]
    fn errors_and_other_messages_pass() {
        let error = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "x"}});
        let (out, hidden) = run(&error.to_string(), ListKind::Tools, false).unwrap();
        assert_eq!(serde_json::from_str::<Json>(&out).unwrap(), error);
        assert!(hidden.is_empty());
    }

    #[test]
    fn sse_streams_are_filtered_event_by_event() {
        let stream = concat!(
            ": keep-alive\n\n",
            "event: message\nid: 7\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n",
            "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\r\ndata: \"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"secret\"}]}}\r\n\r\n",
        );
        let (out, hidden) = run(stream, ListKind::Tools, true).unwrap();
        assert_eq!(hidden, ["secret"]);
        assert!(
            out.starts_with(": keep-alive\n\nevent: message\nid: 7\ndata: "),
            "{out}"
        );
        assert!(
            out.contains(r#"{"id":1,"jsonrpc":"2.0","result":{"tools":[{"name":"a"}]}}"#)
                || out.contains(r#""tools":[{"name":"a"}]"#),
            "{out}"
        );
        assert!(!out.contains("secret"));
        assert!(out.ends_with("\n\n"));
    }

    #[test]
    fn unreadable_lists_fail_closed() {
        for (body, sse) in [
            ("{not json", false),
            ("\u{feff}", false),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"a"}}}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"title":"a"}]}}"#,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":7}]}}"#,
                false,
            ),
            ("[1]", false),
            ("data: {\"jsonrpc\"\n\n", true),
            ("data: {}\rdata: x\n\n", true),
        ] {
            assert!(run(body, ListKind::Tools, sse).is_err(), "{body:?}");
        }
        let mut hidden = Vec::new();
        let big = vec![b' '; MAX_LIST_BYTES + 1];
        assert_eq!(
            filter(
                &big,
                &[ListKind::Tools],
                false,
                &mut |_, _| true,
                &mut hidden
            ),
            Err(FilterError::TooLarge(MAX_LIST_BYTES + 1))
        );
        assert_eq!(
            filter(
                &[0xff],
                &[ListKind::Tools],
                false,
                &mut |_, _| true,
                &mut hidden
            ),
            Err(FilterError::NotUtf8)
        );
        let refusal = refusal(ListKind::Tools, &json!(9), true, &FilterError::NotUtf8);
        let text = String::from_utf8(refusal).unwrap();
        assert!(text.starts_with("event: message\ndata: {") && text.contains("\"id\":9"));
    }
}
