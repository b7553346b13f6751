//! Anthropic messages API: `POST /v1/messages` (model in the body),
//! `/v1/messages/count_tokens`, the legacy `/v1/complete`, and model listing.
//! Other paths (for example message batches) are plain HTTP.

use serde_json::Value as Json;

use crate::classify::ai::{
    self, AiInfo, get, len, object, opt_array, opt_bool, opt_count, opt_milli, required_model,
    text_chars, tool_names,
};
use crate::classify::body::{BodyError, BodyReader};
use crate::classify::{Operation, Protocol, http};
use crate::request::HttpRequest;

/// Classifies an Anthropic API request.
pub fn parse(req: &HttpRequest, body: &BodyReader<'_>) -> Result<Operation, BodyError> {
    let path = req.path.trim_end_matches('/');
    let (endpoint, action) = match (req.method.as_str(), path) {
        ("POST", p) if p.ends_with("/v1/messages") => ("messages", "chat"),
        ("POST", p) if p.ends_with("/v1/messages/count_tokens") => {
            ("messages/count_tokens", "count_tokens")
        }
        ("POST", p) if p.ends_with("/v1/complete") => ("complete", "complete"),
        ("GET", p) if p.ends_with("/v1/models") => {
            return Ok(AiInfo::new("anthropic", "models").operation(
                Protocol::Anthropic,
                "list_models",
                &req.path,
            ));
        }
        ("GET", p) => match p.rsplit_once("/v1/models/") {
            Some((_, id)) if !id.is_empty() && !id.contains('/') => {
                let mut info = AiInfo::new("anthropic", "models");
                info.model = Some(id.to_owned());
                return Ok(info.operation(Protocol::Anthropic, "get_model", &req.path));
            }
            _ => return Ok(http::classify_as(req, Protocol::Anthropic)),
        },
        _ => return Ok(http::classify_as(req, Protocol::Anthropic)),
    };
    let info = ai::from_body(body, AiInfo::new("anthropic", endpoint), fill)?;
    Ok(info.operation(Protocol::Anthropic, action, &req.path))
}

fn fill(info: &mut AiInfo, json: &Json) -> Result<(), BodyError> {
    let obj = object(json)?;
    info.model = Some(required_model(obj)?);
    info.stream = opt_bool(obj, "stream")?;
    info.max_output_tokens = opt_count(obj, "max_tokens")?
        .into_iter()
        .chain(opt_count(obj, "max_tokens_to_sample")?)
        .max();
    info.temperature_milli = opt_milli(obj, "temperature")?;
    let messages = opt_array(obj, "messages")?;
    info.message_count = len(messages.len());
    info.prompt_chars = messages.iter().map(text_chars).fold(0, i64::saturating_add);
    for key in ["system", "prompt"] {
        match get(obj, key) {
            None => {}
            Some(v @ (Json::String(_) | Json::Array(_))) => {
                info.prompt_chars = info.prompt_chars.saturating_add(text_chars(v));
            }
            Some(_) => return Err(BodyError::field(key, "a string or an array")),
        }
    }
    // Client tools have a `name`; server tools (web search, code execution)
    // also carry a `type`.
    tool_names(info, opt_array(obj, "tools")?, &[&["name"], &["type"]]);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::classify::routes::BodyMode;

    fn run(method: &str, path: &str, body: &str) -> Result<Operation, BodyError> {
        let req = HttpRequest {
            method: method.into(),
            path: path.into(),
            body: body.as_bytes().to_vec(),
            ..Default::default()
        };
        parse(
            &req,
            &BodyReader::with_rules(&req, BodyMode::Required, 65536),
        )
    }

    #[test]
    fn endpoints() {
        let op = run(
            "POST",
            "/v1/messages",
            r#"{"model":"claude-x","max_tokens":10,"messages":[]}"#,
        )
        .unwrap();
        assert_eq!(op.action.to_string(), r#"Action::"chat""#);
        assert_eq!(op.model.as_deref(), Some("claude-x"));
        let op = run("GET", "/v1/models/claude-x", "").unwrap();
        assert_eq!(op.action.to_string(), r#"Action::"get_model""#);
        let op = run("GET", "/v1/models", "").unwrap();
        assert_eq!(op.resource.to_string(), r#"Route::"/v1/models""#);
        let op = run("POST", "/v1/messages/batches", "").unwrap();
        assert_eq!(op.action.to_string(), r#"Action::"http""#);
        assert!(run("POST", "/v1/messages", "").is_err());
        assert!(run("POST", "/v1/messages", r#"{"model":"m","system":5}"#).is_err());
    }
}
