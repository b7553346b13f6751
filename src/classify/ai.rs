//! The `ai` context record shared by the model-provider protocols, and the
//! careful field readers they use.
//!
//! Cedar has no floating point: `temperature` becomes `temperature_milli`
//! (`0.7` → `700`, rounded), and token counts that are fractional or beyond
//! 64 bits saturate (so a `max_tokens` cap still denies them). A field of the
//! wrong type is `body_invalid`: a lenient upstream might coerce
//! `"max_tokens": "100000"`, and a policy must not be bypassed by a string.

use std::collections::BTreeSet;

use crate::classify::body::{BodyError, BodyReader};
use crate::classify::json::Json;
use crate::classify::{Operation, Protocol, action};
use crate::vocab::{EntityType, Value, builtin_uid};

/// Most tool names kept in `context.ai.tool_names`; `has_tools` stays exact.
const MAX_TOOL_NAMES: usize = 128;

/// What a model request asks for, as policies see it in `context.ai`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AiInfo {
    /// `openai`, `azure`, `anthropic`, `gemini`, `bedrock`.
    pub provider: String,
    /// The provider's endpoint, e.g. `chat/completions`, `messages`, `converse`.
    pub endpoint: String,
    /// The model's entity id (see `classify::model`), from the body, the path
    /// or the query.
    pub model: Option<String>,
    /// The model as the request spelled it, when that differs from `model`.
    pub model_as_sent: Option<String>,
    /// Whether the answer is streamed.
    pub stream: bool,
    /// The output token limit per choice, whichever field the protocol uses.
    pub max_output_tokens: Option<i64>,
    /// How many answers are generated (`n`, `best_of`, `candidateCount`); 1
    /// unless the request asks for more.
    pub choices: i64,
    /// Thinking / reasoning token budget (`thinking.budget_tokens`,
    /// `thinkingConfig.thinkingBudget`).
    pub thinking_budget_tokens: Option<i64>,
    /// Reasoning effort (`reasoning_effort`, `reasoning.effort`,
    /// `thinkingConfig.thinkingLevel`), lower-cased.
    pub reasoning_effort: Option<String>,
    /// Temperature × 1000, rounded.
    pub temperature_milli: Option<i64>,
    /// Messages (or contents / input items) in the request.
    pub message_count: i64,
    /// Approximate prompt size: characters of the text in the messages.
    pub prompt_chars: i64,
    /// Whether the request offers tools / functions to the model.
    pub has_tools: bool,
    /// Names of the offered tools / functions.
    pub tool_names: BTreeSet<String>,
    /// Requested response format (`json_object`, `json_schema`, a MIME type).
    pub response_format: Option<String>,
}

// === impl AiInfo ===

impl AiInfo {
    /// A blank record for a provider and endpoint.
    pub fn new(provider: &str, endpoint: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            endpoint: endpoint.to_owned(),
            choices: 1,
            ..Default::default()
        }
    }

    /// The output tokens the request may produce in all: the per-choice
    /// limit times the choices (saturating), when there is a limit.
    pub fn total_output_tokens(&self) -> Option<i64> {
        self.max_output_tokens
            .map(|n| n.saturating_mul(self.choices.max(1)))
    }

    /// Records a choice count; the largest of the fields wins (`best_of`
    /// generates that many even when `n` returns fewer).
    pub fn add_choices(&mut self, n: Option<i64>) {
        if let Some(n) = n {
            self.choices = self.choices.max(n);
        }
    }

    /// The Cedar record (fixed field order: it is part of the cache key).
    pub fn to_value(&self) -> Value {
        // Sized for every field: pushing past a small capacity reallocates.
        let mut fields = Vec::with_capacity(16);
        fields.push(("provider".to_owned(), Value::str(&self.provider)));
        fields.push(("endpoint".to_owned(), Value::str(&self.endpoint)));
        if let Some(m) = &self.model {
            fields.push(("model".to_owned(), Value::str(m)));
        }
        if let Some(m) = &self.model_as_sent {
            fields.push(("model_as_sent".to_owned(), Value::str(m)));
        }
        fields.push(("stream".to_owned(), Value::Bool(self.stream)));
        if let Some(n) = self.max_output_tokens {
            fields.push(("max_output_tokens".to_owned(), Value::Long(n)));
        }
        fields.push(("choices".to_owned(), Value::Long(self.choices)));
        if let Some(n) = self.total_output_tokens() {
            fields.push(("total_output_tokens".to_owned(), Value::Long(n)));
        }
        if let Some(n) = self.thinking_budget_tokens {
            fields.push(("thinking_budget_tokens".to_owned(), Value::Long(n)));
        }
        if let Some(e) = &self.reasoning_effort {
            fields.push(("reasoning_effort".to_owned(), Value::str(e)));
        }
        if let Some(t) = self.temperature_milli {
            fields.push(("temperature_milli".to_owned(), Value::Long(t)));
        }
        fields.push(("message_count".to_owned(), Value::Long(self.message_count)));
        fields.push(("prompt_chars".to_owned(), Value::Long(self.prompt_chars)));
        fields.push(("has_tools".to_owned(), Value::Bool(self.has_tools)));
        fields.push((
            "tool_names".to_owned(),
            Value::Set(self.tool_names.iter().map(Value::str).collect()),
        ));
        if let Some(f) = &self.response_format {
            fields.push(("response_format".to_owned(), Value::str(f)));
        }
        Value::Record(fields)
    }

    /// Adds a tool name. More than [`MAX_TOOL_NAMES`] different names are
    /// refused, not cut: a policy on `tool_names` must see every tool the
    /// model is offered (OpenAI itself takes at most 128).
    pub fn add_tool(&mut self, name: &str) -> Result<(), BodyError> {
        self.has_tools = true;
        if self.tool_names.len() >= MAX_TOOL_NAMES && !self.tool_names.contains(name) {
            return Err(BodyError::Invalid(format!(
                "more than {MAX_TOOL_NAMES} different tools are offered to the model"
            )));
        }
        self.tool_names.insert(name.to_owned());
        Ok(())
    }

    /// The operation: `action` on `Model::"<model>"`, or on `Route::"<path>"`
    /// when no model applies (model listing, or an unreadable optional body).
    pub fn operation(self, protocol: Protocol, action_name: &str, path: &str) -> Operation {
        let resource = match &self.model {
            Some(m) => builtin_uid(EntityType::Model, m),
            None => builtin_uid(EntityType::Route, path),
        };
        Operation {
            protocol,
            action: action(action_name),
            resource,
            model: self.model.clone(),
            tool: None,
            context: vec![("ai".to_owned(), self.to_value())],
        }
    }
}

/// `obj[k0][k1]...`, with `null` read as absent.
pub fn nested<'a, 'b>(obj: &'a Json<'b>, keys: &[&str]) -> Result<Option<&'a Json<'b>>, BodyError> {
    let mut cur = obj;
    for key in keys {
        match get(cur, key)? {
            Some(v) => cur = v,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// A thinking budget or count at a nested path, typed.
pub fn nested_count(obj: &Json<'_>, keys: &[&str]) -> Result<Option<i64>, BodyError> {
    match keys.split_last() {
        Some((last, parents)) => match nested(obj, parents)? {
            Some(parent) if parent.is_object() => opt_count(parent, last),
            Some(_) => Err(BodyError::field(&parents.join("."), "an object")),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

/// A string at a nested path, typed, lower-cased.
pub fn nested_lower(obj: &Json<'_>, keys: &[&str]) -> Result<Option<String>, BodyError> {
    match keys.split_last() {
        Some((last, parents)) => match nested(obj, parents)? {
            Some(parent) if parent.is_object() => {
                Ok(opt_str(parent, last)?.map(|s| s.to_lowercase()))
            }
            Some(_) => Err(BodyError::field(&parents.join("."), "an object")),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

/// Reads the JSON body into `base` with `fill`. Under `body: optional`, any
/// problem (unreadable body, wrong field type) leaves `base` as it was: the
/// request is then classified from its path alone.
pub fn from_body(
    body: &BodyReader<'_>,
    base: AiInfo,
    fill: impl FnOnce(&mut AiInfo, &Json<'_>) -> Result<(), BodyError>,
) -> Result<AiInfo, BodyError> {
    let Some(json) = body.json()? else {
        return Ok(base);
    };
    let mut info = base.clone();
    match body.lenient(fill(&mut info, &json))? {
        Some(()) => Ok(info),
        None => Ok(base),
    }
}

/// `obj[key]`, with `null` read as absent. A key that case-insensitive
/// readers take for `key` (`"Model"`, `"MAX_TOKENS"`, see [`Json::lookup`])
/// is refused: some upstream reads it, and what it says is not decided on.
pub fn get<'a, 'b>(obj: &'a Json<'b>, key: &str) -> Result<Option<&'a Json<'b>>, BodyError> {
    match obj.lookup(key) {
        Ok(v) => Ok(v.filter(|v| !v.is_null())),
        Err(variant) => {
            let shown: String = variant.chars().take(64).collect();
            Err(BodyError::Invalid(format!(
                "the key `{}` is `{key}` to case-insensitive JSON readers (Go's encoding/json, ASP.NET Core)",
                shown.escape_debug()
            )))
        }
    }
}

/// A string field, if present.
pub fn opt_str(obj: &Json<'_>, key: &str) -> Result<Option<String>, BodyError> {
    match get(obj, key)? {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.as_ref().to_owned())),
        Some(_) => Err(BodyError::field(key, "a string")),
    }
}

/// A boolean field, absent = false.
pub fn opt_bool(obj: &Json<'_>, key: &str) -> Result<bool, BodyError> {
    match get(obj, key)? {
        None => Ok(false),
        Some(Json::Bool(b)) => Ok(*b),
        Some(_) => Err(BodyError::field(key, "a boolean")),
    }
}

/// A count such as `max_tokens`: fractions round up and anything beyond 64
/// bits saturates, so a cap is never evaded by the number's form. A negative
/// count is read as no limit at all (`i64::MAX`): that is what it means to
/// the servers that take it (Ollama's and llama.cpp's `-1` and `-2`, LM
/// Studio's `max_tokens: -1`, Gemini's `thinkingBudget: -1`), and the
/// servers that do not refuse it.
pub fn opt_count(obj: &Json<'_>, key: &str) -> Result<Option<i64>, BodyError> {
    match get(obj, key)? {
        None => Ok(None),
        Some(Json::Number(n)) => Ok(Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) if i < 0 => i64::MAX,
            (Some(i), _, _) => i,
            (None, Some(_), _) => i64::MAX,
            // `as` saturates (and maps NaN to 0; JSON has no NaN); `-0.5`
            // rounds up to 0.
            (None, None, Some(f)) if f.ceil() < 0.0 => i64::MAX,
            (None, None, Some(f)) => f.ceil() as i64,
            (None, None, None) => i64::MAX,
        })),
        Some(_) => Err(BodyError::field(key, "a number")),
    }
}

/// A fraction such as `temperature`, × 1000 and rounded.
pub fn opt_milli(obj: &Json<'_>, key: &str) -> Result<Option<i64>, BodyError> {
    match get(obj, key)? {
        None => Ok(None),
        Some(Json::Number(n)) => Ok(n.as_f64().map(|f| (f * 1000.0).round() as i64)),
        Some(_) => Err(BodyError::field(key, "a number")),
    }
}

/// An array field, if present.
pub fn opt_array<'a, 'b>(obj: &'a Json<'b>, key: &str) -> Result<&'a [Json<'b>], BodyError> {
    match get(obj, key)? {
        None => Ok(&[]),
        Some(Json::Array(items)) => Ok(items),
        Some(_) => Err(BodyError::field(key, "an array")),
    }
}

/// The body must be a JSON object.
pub fn object<'a, 'b>(body: &'a Json<'b>) -> Result<&'a Json<'b>, BodyError> {
    if body.is_object() {
        Ok(body)
    } else {
        Err(BodyError::Invalid(
            "the body must be a JSON object".to_owned(),
        ))
    }
}

/// Approximate prompt size: characters in every string under `v`, except
/// structural fields (`role`, `type`) and inline binary data.
pub fn text_chars(v: &Json<'_>) -> i64 {
    fn walk(v: &Json<'_>, total: &mut usize) {
        match v {
            Json::String(s) => *total = total.saturating_add(s.chars().count()),
            Json::Array(items) => items.iter().for_each(|x| walk(x, total)),
            Json::Object(map) => {
                for (k, x) in map {
                    if !matches!(
                        k.as_ref(),
                        "role" | "type" | "data" | "image_url" | "inlineData" | "inline_data"
                    ) {
                        walk(x, total);
                    }
                }
            }
            _ => {}
        }
    }
    // Depth is bounded by the JSON parser's recursion limit.
    let mut total = 0usize;
    walk(v, &mut total);
    i64::try_from(total).unwrap_or(i64::MAX)
}

/// Tool names from a `tools` array whose elements hold the name at one of
/// `paths` (each a list of keys), e.g. `["function", "name"]`.
pub fn tool_names(
    info: &mut AiInfo,
    tools: &[Json<'_>],
    paths: &[&[&str]],
) -> Result<(), BodyError> {
    for tool in tools {
        info.has_tools = true;
        for path in paths {
            if let Some(Json::String(name)) = nested(tool, path)? {
                info.add_tool(name)?;
                break;
            }
        }
    }
    Ok(())
}

/// `i64` from a length.
pub fn len(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The body `v` serializes to, as the readers see it.
    fn bytes(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn counts_saturate_and_round_up() {
        let body = bytes(
            json!({"a": 10, "b": 1.5, "c": 1e300, "d": 18446744073709551615u64, "e": "9", "f": -3,
                   "g": -1.5, "h": -0.5, "i": -1e300, "j": 0}),
        );
        let v = Json::parse(&body).unwrap();
        assert_eq!(opt_count(&v, "a").unwrap(), Some(10));
        assert_eq!(opt_count(&v, "b").unwrap(), Some(2));
        assert_eq!(opt_count(&v, "c").unwrap(), Some(i64::MAX));
        assert_eq!(opt_count(&v, "d").unwrap(), Some(i64::MAX));
        assert!(opt_count(&v, "e").is_err());
        // Negative: no limit to the servers that take it.
        assert_eq!(opt_count(&v, "f").unwrap(), Some(i64::MAX));
        assert_eq!(opt_count(&v, "g").unwrap(), Some(i64::MAX));
        assert_eq!(opt_count(&v, "h").unwrap(), Some(0));
        assert_eq!(opt_count(&v, "i").unwrap(), Some(i64::MAX));
        assert_eq!(opt_count(&v, "j").unwrap(), Some(0));
        assert_eq!(opt_count(&v, "zz").unwrap(), None);
    }

    #[test]
    fn temperature_is_milli() {
        let body = bytes(json!({"t": 0.7, "u": 2, "w": 1e300, "x": true}));
        let v = Json::parse(&body).unwrap();
        assert_eq!(opt_milli(&v, "t").unwrap(), Some(700));
        assert_eq!(opt_milli(&v, "u").unwrap(), Some(2000));
        assert_eq!(opt_milli(&v, "w").unwrap(), Some(i64::MAX));
        assert!(opt_milli(&v, "x").is_err());
    }

    #[test]
    fn prompt_chars_skip_structure() {
        let body = bytes(
            json!([{"role": "user", "content": [{"type": "text", "text": "héllo"}, {"type": "image_url", "image_url": {"url": "data:xxxx"}}]}]),
        );
        let v = Json::parse(&body).unwrap();
        assert_eq!(text_chars(&v), 5);
    }
}
