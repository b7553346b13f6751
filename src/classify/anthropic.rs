//! Anthropic Messages API bodies (`POST /v1/messages`, `count_tokens`, the
//! legacy `/v1/complete`), and the Anthropic-format bodies of partner models
//! on Vertex AI (`:rawPredict`). The endpoints are rows of
//! `classify::endpoints::ANTHROPIC`; the model is read by the caller.

use crate::classify::ai::{
    AiInfo, get, len, nested_count, opt_array, opt_bool, opt_count, opt_milli, text_chars,
    tool_names,
};
use crate::classify::body::BodyError;
use crate::classify::json::Json;

/// Fills `context.ai` from an Anthropic Messages body.
pub fn fill(info: &mut AiInfo, obj: &Json<'_>) -> Result<(), BodyError> {
    info.stream = info.stream || opt_bool(obj, "stream")?;
    info.max_output_tokens = opt_count(obj, "max_tokens")?
        .into_iter()
        .chain(opt_count(obj, "max_tokens_to_sample")?)
        .max();
    // Extended thinking: its budget counts within `max_tokens`.
    info.thinking_budget_tokens = nested_count(obj, &["thinking", "budget_tokens"])?;
    info.temperature_milli = opt_milli(obj, "temperature")?;
    let messages = opt_array(obj, "messages")?;
    info.message_count = len(messages.len());
    info.prompt_chars = messages.iter().map(text_chars).fold(0, i64::saturating_add);
    for key in ["system", "prompt"] {
        match get(obj, key)? {
            None => {}
            Some(v @ (Json::String(_) | Json::Array(_))) => {
                info.prompt_chars = info.prompt_chars.saturating_add(text_chars(v));
            }
            Some(_) => return Err(BodyError::field(key, "a string or an array")),
        }
    }
    // Client tools have a `name`; server tools (web search, code execution)
    // also carry a `type`.
    tool_names(info, opt_array(obj, "tools")?, &[&["name"], &["type"]])?;
    Ok(())
}
