//! OpenAI-compatible APIs (OpenAI, Azure OpenAI, vLLM, Ollama, LiteLLM, ...).
//!
//! The endpoints are rows of `classify::endpoints::OPENAI`; this module reads
//! their bodies. Azure's `/openai/deployments/{deployment}/...` names the
//! model in the path (the deployment); elsewhere the model comes from the
//! body's `model` (or the query, for realtime WebSockets).

use crate::classify::ai::{
    AiInfo, get, len, nested, nested_lower, opt_array, opt_bool, opt_count, opt_milli, opt_str,
    text_chars, tool_names,
};
use crate::classify::body::{BodyError, BodyReader};
use crate::classify::json::Json;

/// Fills `context.ai` from an OpenAI-compatible JSON body (the model is read
/// by the caller, see `classify::provider`).
pub fn fill(info: &mut AiInfo, obj: &Json<'_>, endpoint: &str) -> Result<(), BodyError> {
    info.stream = info.stream || opt_bool(obj, "stream")?;
    info.max_output_tokens = [
        opt_count(obj, "max_completion_tokens")?,
        opt_count(obj, "max_tokens")?,
        opt_count(obj, "max_output_tokens")?,
        opt_count(obj, "max_response_output_tokens")?,
    ]
    .into_iter()
    .flatten()
    .max();
    // `n` answers, and `best_of` generated server-side to return them.
    info.add_choices(opt_count(obj, "n")?);
    info.add_choices(opt_count(obj, "best_of")?);
    info.reasoning_effort = match nested_lower(obj, &["reasoning", "effort"])? {
        Some(e) => Some(e),
        None => opt_str(obj, "reasoning_effort")?.map(|e| e.to_lowercase()),
    };
    info.temperature_milli = opt_milli(obj, "temperature")?;
    // What carries the prompt depends on the endpoint.
    let prompt_keys: &[&str] = match endpoint {
        "chat/completions" => &["messages"],
        "responses" | "responses/compact" | "responses/input_tokens" => &["input", "instructions"],
        "completions" => &["prompt", "suffix"],
        "images/generations" | "audio/speech" | "videos" => &["prompt", "input"],
        "threads/runs" => &[
            "additional_messages",
            "instructions",
            "additional_instructions",
        ],
        "realtime/sessions" => &["instructions"],
        _ => &["input"],
    };
    for key in prompt_keys {
        match get(obj, key)? {
            None => {}
            Some(Json::Array(items)) => {
                info.message_count = info.message_count.saturating_add(len(items.len()));
                info.prompt_chars = items
                    .iter()
                    .map(text_chars)
                    .fold(info.prompt_chars, i64::saturating_add);
            }
            Some(v @ Json::String(_)) if *key != "messages" => {
                if !key.ends_with("instructions") && *key != "suffix" {
                    info.message_count = info.message_count.saturating_add(1);
                }
                info.prompt_chars = info.prompt_chars.saturating_add(text_chars(v));
            }
            Some(_) if *key == "messages" => return Err(BodyError::field(key, "an array")),
            Some(_) => return Err(BodyError::field(key, "a string or an array")),
        }
    }
    tool_names(
        info,
        opt_array(obj, "tools")?,
        &[&["function", "name"], &["name"], &["type"]],
    )?;
    tool_names(info, opt_array(obj, "functions")?, &[&["name"]])?;
    info.response_format = match get(obj, "response_format")? {
        None => None,
        Some(Json::String(s)) => Some(s.as_ref().to_owned()),
        Some(f) => Some(opt_str(f, "type")?.unwrap_or_default()),
    };
    if let Some(format) = nested(obj, &["text", "format"])? {
        info.response_format = opt_str(format, "type")?;
    }
    Ok(())
}

/// Uploads (audio transcription, image edits, videos) send
/// `multipart/form-data`; only the small text fields are read, from a form
/// parsed strictly (see `classify::form`).
pub fn multipart(
    body: &BodyReader<'_>,
    boundary: &str,
    base: AiInfo,
    model_in_body: bool,
) -> Result<AiInfo, BodyError> {
    let read = || -> Result<AiInfo, BodyError> {
        let form = body.form(boundary)?;
        let mut info = base.clone();
        if model_in_body {
            let model = form.text("model")?;
            info.model = Some(
                model
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| BodyError::Invalid("`model` is required".to_owned()))?
                    .to_owned(),
            );
        }
        // Form values are text: read `stream` the way the SDKs send it, and
        // refuse the other spellings a lenient upstream might take for true.
        info.stream = match form.text("stream")? {
            None => info.stream,
            Some(s) if s.eq_ignore_ascii_case("true") => true,
            Some(s) if s.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(BodyError::field("stream", "`true` or `false`")),
        };
        if let Some(n) = form.text("n")? {
            let n = n
                .trim()
                .parse::<i64>()
                .map_err(|_| BodyError::field("n", "a whole number"))?;
            info.add_choices(Some(n));
        }
        if let Some(prompt) = form.text("prompt")? {
            info.prompt_chars = len(prompt.chars().count());
        }
        Ok(info)
    };
    Ok(body.lenient(read())?.unwrap_or(base))
}
