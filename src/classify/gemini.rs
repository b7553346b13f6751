//! Google Gemini bodies: `generateContent` and its siblings, whose endpoints
//! are rows of `classify::endpoints::GEMINI`. The model is in the path, so
//! the same code serves the Generative Language API (`/v1beta/models/...`,
//! `/v1/models/...`) and Vertex AI
//! (`/v1/projects/{p}/locations/{l}/publishers/{publisher}/models/...`).
//! Fields are read in both JSON spellings the API accepts
//! (`maxOutputTokens`, `max_output_tokens`); both at once are refused.

use crate::classify::ai::{
    AiInfo, get, len, object, opt_array, opt_count, opt_milli, opt_str, text_chars,
};
use crate::classify::body::BodyError;
use crate::classify::json::Json;

/// A field in camelCase or snake_case. Both at once is refused: which one
/// the upstream keeps is not ours to guess.
fn either<'a>(obj: &Json<'_>, camel: &'a str, snake: &'a str) -> Result<&'a str, BodyError> {
    match (get(obj, camel)?.is_some(), get(obj, snake)?.is_some()) {
        (true, true) => Err(BodyError::Invalid(format!(
            "both `{camel}` and `{snake}` are set"
        ))),
        (true, false) => Ok(camel),
        _ => Ok(snake),
    }
}

/// Fills `context.ai` from a Gemini / Vertex body (the model is in the path).
pub fn fill(info: &mut AiInfo, obj: &Json<'_>) -> Result<(), BodyError> {
    let contents = opt_array(obj, "contents")?;
    let requests = opt_array(obj, "requests")?;
    info.message_count = len(contents.len().max(requests.len()));
    info.prompt_chars = contents
        .iter()
        .chain(requests)
        .map(text_chars)
        .fold(0, i64::saturating_add);
    for key in [
        "content",
        either(obj, "systemInstruction", "system_instruction")?,
    ] {
        match get(obj, key)? {
            None => {}
            Some(v @ Json::Object(_)) => {
                info.prompt_chars = info.prompt_chars.saturating_add(text_chars(v));
                if key == "content" {
                    info.message_count = info.message_count.max(1);
                }
            }
            Some(_) => return Err(BodyError::field(key, "an object")),
        }
    }
    if let Some(config) = get(obj, either(obj, "generationConfig", "generation_config")?)? {
        let config = object(config)?;
        info.max_output_tokens = opt_count(
            config,
            either(config, "maxOutputTokens", "max_output_tokens")?,
        )?;
        info.temperature_milli = opt_milli(config, "temperature")?;
        info.response_format = opt_str(
            config,
            either(config, "responseMimeType", "response_mime_type")?,
        )?;
        info.add_choices(opt_count(
            config,
            either(config, "candidateCount", "candidate_count")?,
        )?);
        if let Some(thinking) = get(config, either(config, "thinkingConfig", "thinking_config")?)? {
            let thinking = object(thinking)?;
            info.thinking_budget_tokens = opt_count(
                thinking,
                either(thinking, "thinkingBudget", "thinking_budget")?,
            )?;
            info.reasoning_effort = opt_str(
                thinking,
                either(thinking, "thinkingLevel", "thinking_level")?,
            )?
            .map(|l| l.to_lowercase());
        }
    }
    // `:predict` bodies (Imagen, Veo, embeddings): `parameters.sampleCount`.
    if let Some(parameters) = get(obj, "parameters")? {
        let parameters = object(parameters)?;
        info.add_choices(opt_count(parameters, "sampleCount")?);
    }
    for tool in opt_array(obj, "tools")? {
        info.has_tools = true;
        let Json::Object(kinds) = tool else {
            return Err(BodyError::field("tools", "an array of objects"));
        };
        for (kind, decl) in kinds {
            if kind == "functionDeclarations" || kind == "function_declarations" {
                let Json::Array(functions) = decl else {
                    return Err(BodyError::field(kind, "an array"));
                };
                for f in functions {
                    if let Some(name) = opt_str(f, "name")? {
                        info.add_tool(&name)?;
                    }
                }
            } else {
                // Built-in tools: `googleSearch`, `codeExecution`, `urlContext`, ...
                info.add_tool(kind)?;
            }
        }
    }
    Ok(())
}
