//! Amazon Bedrock runtime bodies. The endpoints (`/model/{modelId}/invoke`,
//! `/invoke-with-response-stream`, `/converse`, `/converse-stream`,
//! `/count-tokens`, `/async-invoke`) are rows of
//! `classify::endpoints::BEDROCK`. The model id is in the path, where Bedrock
//! percent-decodes it (inference-profile ARNs arrive with `%2F`): the one
//! segment where cedar-gate accepts an encoded `/`. `converse` bodies have one shape; `invoke`
//! bodies are the model vendor's own, so the common fields of each family are
//! read (Anthropic `max_tokens`, Llama `max_gen_len`, Titan
//! `textGenerationConfig.maxTokenCount`, Nova `inferenceConfig.max_new_tokens`).

use crate::classify::ai::{
    AiInfo, get, len, nested_count, nested_lower, object, opt_array, opt_count, opt_milli,
    text_chars, tool_names,
};
use crate::classify::body::BodyError;
use crate::classify::json::Json;

/// Whether every encoded `/` of a canonical path is inside the model
/// segment of `.../model/{modelId}/{operation}`, the one place Bedrock
/// decodes it (inference-profile ARNs).
pub fn encoded_slash_in_model_only(path: &str) -> bool {
    let Some((_, rest)) = crate::target::rsplit_once_ignore_case(path, "/model/") else {
        return false;
    };
    let Some((model, op)) = rest.split_once('/') else {
        return false;
    };
    !op.contains("%2F") && !path[..path.len() - rest.len()].contains("%2F") && !model.is_empty()
}

/// Fills `context.ai` from a `converse` body.
pub fn fill_converse(info: &mut AiInfo, obj: &Json<'_>) -> Result<(), BodyError> {
    let messages = opt_array(obj, "messages")?;
    info.message_count = len(messages.len());
    info.prompt_chars = messages
        .iter()
        .chain(opt_array(obj, "system")?)
        .map(text_chars)
        .fold(0, i64::saturating_add);
    if let Some(config) = get(obj, "inferenceConfig")? {
        let config = object(config)?;
        info.max_output_tokens = opt_count(config, "maxTokens")?;
        info.temperature_milli = opt_milli(config, "temperature")?;
    }
    if let Some(tools) = get(obj, "toolConfig")? {
        tool_names(info, opt_array(tools, "tools")?, &[&["toolSpec", "name"]])?;
    }
    // Model-specific fields pass through `additionalModelRequestFields`.
    let extra = ["additionalModelRequestFields"];
    info.thinking_budget_tokens = nested_count(obj, &[extra[0], "thinking", "budget_tokens"])?.or(
        nested_count(obj, &[extra[0], "reasoning_config", "budget_tokens"])?,
    );
    info.reasoning_effort = nested_lower(obj, &[extra[0], "reasoning_effort"])?;
    Ok(())
}

/// Fills `context.ai` from an `invoke` body (the model vendor's own).
pub fn fill_invoke(info: &mut AiInfo, obj: &Json<'_>) -> Result<(), BodyError> {
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
        if let Some(config) = get(obj, section)? {
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
    info.thinking_budget_tokens = nested_count(obj, &["thinking", "budget_tokens"])?;
    // Titan `numberOfResults`, Cohere `num_generations`, Mistral / Llama `n`.
    for key in ["n", "num_generations"] {
        info.add_choices(opt_count(obj, key)?);
    }
    if let Some(config) = get(obj, "textGenerationConfig")? {
        info.add_choices(opt_count(config, "numberOfResults")?);
    }
    let messages = opt_array(obj, "messages")?;
    info.message_count = len(messages.len());
    info.prompt_chars = messages.iter().map(text_chars).fold(0, i64::saturating_add);
    for key in ["system", "prompt", "inputText"] {
        match get(obj, key)? {
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
    )?;
    Ok(())
}
