//! Amazon Bedrock runtime: `POST /model/{modelId}/invoke`,
//! `/invoke-with-response-stream`, `/converse`, `/converse-stream` and
//! `/count-tokens`. The model id is in the path (percent-decoded: inference
//! profile ARNs arrive encoded). `converse` bodies have one shape; `invoke`
//! bodies are the model vendor's own, so the common fields of each family are
//! read (Anthropic `max_tokens`, Llama `max_gen_len`, Titan
//! `textGenerationConfig.maxTokenCount`, Nova `inferenceConfig.max_new_tokens`).

use serde_json::Value as Json;

use crate::classify::ai::{
    self, AiInfo, get, len, object, opt_array, opt_count, opt_milli, text_chars, tool_names,
};
use crate::classify::body::{BodyError, BodyReader};
use crate::classify::{Operation, Protocol, http};
use crate::request::HttpRequest;

/// Classifies a Bedrock runtime request.
pub fn parse(req: &HttpRequest, body: &BodyReader<'_>) -> Result<Operation, BodyError> {
    let Some((model, op)) = model_and_op(&req.path) else {
        return Ok(http::classify_as(req, Protocol::Bedrock));
    };
    let (action, stream, converse) = match (req.method.as_str(), op) {
        ("POST", "invoke") => ("chat", false, false),
        ("POST", "invoke-with-response-stream") => ("chat", true, false),
        ("POST", "converse") => ("chat", false, true),
        ("POST", "converse-stream") => ("chat", true, true),
        ("POST", "count-tokens") => ("count_tokens", false, false),
        _ => return Ok(http::classify_as(req, Protocol::Bedrock)),
    };
    let mut base = AiInfo::new("bedrock", op);
    base.model = Some(model);
    base.stream = stream;
    let info = if converse {
        ai::from_body(body, base, fill_converse)?
    } else {
        ai::from_body(body, base, fill_invoke)?
    };
    Ok(info.operation(Protocol::Bedrock, action, &req.path))
}

/// `.../model/{modelId}/{operation}` → (decoded model id, operation).
fn model_and_op(path: &str) -> Option<(String, &str)> {
    let (_, rest) = path.split_once("/model/")?;
    let (raw, op) = rest.rsplit_once('/')?;
    if raw.is_empty() || op.is_empty() {
        return None;
    }
    let model = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!model.chars().any(char::is_control)).then_some((model, op))
}

fn fill_converse(info: &mut AiInfo, json: &Json) -> Result<(), BodyError> {
    let obj = object(json)?;
    let messages = opt_array(obj, "messages")?;
    info.message_count = len(messages.len());
    info.prompt_chars = messages
        .iter()
        .chain(opt_array(obj, "system")?)
        .map(text_chars)
        .fold(0, i64::saturating_add);
    if let Some(config) = get(obj, "inferenceConfig") {
        let config = object(config)?;
        info.max_output_tokens = opt_count(config, "maxTokens")?;
        info.temperature_milli = opt_milli(config, "temperature")?;
    }
    if let Some(tools) = get(obj, "toolConfig") {
        tool_names(info, opt_array(tools, "tools")?, &[&["toolSpec", "name"]]);
    }
    Ok(())
}

fn fill_invoke(info: &mut AiInfo, json: &Json) -> Result<(), BodyError> {
    let obj = object(json)?;
    let mut max = [
        opt_count(obj, "max_tokens")?,
        opt_count(obj, "max_gen_len")?,
        opt_count(obj, "max_tokens_to_sample")?,
    ]
    .into_iter()
    .flatten()
    .max();
    info.temperature_milli = opt_milli(obj, "temperature")?;
    for (section, keys) in [
        ("textGenerationConfig", ["maxTokenCount", "maxTokenCount"]),
        ("inferenceConfig", ["max_new_tokens", "maxTokens"]),
    ] {
        if let Some(config) = get(obj, section) {
            let config = object(config)?;
            for key in keys {
                max = max.max(opt_count(config, key)?);
            }
            if info.temperature_milli.is_none() {
                info.temperature_milli = opt_milli(config, "temperature")?;
            }
        }
    }
    info.max_output_tokens = max;
    let messages = opt_array(obj, "messages")?;
    info.message_count = len(messages.len());
    info.prompt_chars = messages.iter().map(text_chars).fold(0, i64::saturating_add);
    for key in ["system", "prompt", "inputText"] {
        match get(obj, key) {
            None => {}
            Some(v @ (Json::String(_) | Json::Array(_))) => {
                if key != "system" {
                    info.message_count = info.message_count.max(1);
                }
                info.prompt_chars = info.prompt_chars.saturating_add(text_chars(v));
            }
            Some(_) => return Err(BodyError::field(key, "a string or an array")),
        }
    }
    tool_names(
        info,
        opt_array(obj, "tools")?,
        &[&["name"], &["toolSpec", "name"]],
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn model_ids() {
        assert_eq!(
            model_and_op("/model/anthropic.claude-3-haiku-20240307-v1:0/converse"),
            Some((
                "anthropic.claude-3-haiku-20240307-v1:0".to_owned(),
                "converse"
            ))
        );
        assert_eq!(
            model_and_op(
                "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.meta.llama3/invoke"
            ),
            Some((
                "arn:aws:bedrock:us-east-1:123:inference-profile/us.meta.llama3".to_owned(),
                "invoke"
            ))
        );
        // Envoy may already have decoded the `/` of an ARN.
        assert_eq!(
            model_and_op("/model/arn:aws:bedrock:x:1:inference-profile/us.m/converse-stream")
                .map(|(m, _)| m),
            Some("arn:aws:bedrock:x:1:inference-profile/us.m".to_owned())
        );
        assert_eq!(model_and_op("/model//invoke"), None);
        assert_eq!(model_and_op("/model/x%FF/invoke"), None);
    }
}
