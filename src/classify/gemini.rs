//! Google Gemini: `POST .../models/{model}:generateContent` and
//! `:streamGenerateContent`, `:countTokens`, `:embedContent`,
//! `:batchEmbedContents`; `GET .../models` and `.../models/{model}`. The
//! model is in the path, so the same code serves the Generative Language API
//! (`/v1beta/models/...`) and Vertex AI
//! (`/v1/projects/{p}/locations/{l}/publishers/google/models/...`). Fields are
//! read in both JSON spellings the API accepts (`maxOutputTokens`,
//! `max_output_tokens`).

use serde_json::Value as Json;

use crate::classify::ai::{
    self, AiInfo, get, len, object, opt_array, opt_count, opt_milli, opt_str, text_chars,
};
use crate::classify::body::{BodyError, BodyReader};
use crate::classify::{Operation, Protocol, http};
use crate::request::HttpRequest;

/// Classifies a Gemini API request.
pub fn parse(req: &HttpRequest, body: &BodyReader<'_>) -> Result<Operation, BodyError> {
    let path = req.path.trim_end_matches('/');
    let Some((model, method)) = model_and_method(path) else {
        if req.method == "GET" && (path.ends_with("/models") || path.ends_with("/tunedModels")) {
            return Ok(AiInfo::new("gemini", "models").operation(
                Protocol::Gemini,
                "list_models",
                &req.path,
            ));
        }
        return Ok(http::classify_as(req, Protocol::Gemini));
    };
    let mut base = AiInfo::new("gemini", method.unwrap_or("models"));
    base.model = Some(model.to_owned());
    let action = match (req.method.as_str(), method) {
        ("GET", None) => return Ok(base.operation(Protocol::Gemini, "get_model", &req.path)),
        ("POST", Some("generateContent")) => "chat",
        ("POST", Some("streamGenerateContent")) => {
            base.stream = true;
            "chat"
        }
        ("POST", Some("countTokens")) => "count_tokens",
        ("POST", Some("embedContent" | "batchEmbedContents")) => "embed",
        _ => return Ok(http::classify_as(req, Protocol::Gemini)),
    };
    let info = ai::from_body(body, base, fill)?;
    Ok(info.operation(Protocol::Gemini, action, &req.path))
}

/// `.../models/{model}[:method]` → (`{model}`, method). Tuned models keep
/// their collection prefix (`tunedModels/{id}`) so they never collide with a
/// base model's name.
fn model_and_method(path: &str) -> Option<(&str, Option<&str>)> {
    let (collection, rest) = if let Some((_, rest)) = path.rsplit_once("/tunedModels/") {
        (true, rest)
    } else {
        (false, path.rsplit_once("/models/")?.1)
    };
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    let (model, method) = match rest.rsplit_once(':') {
        Some((m, method)) => (m, Some(method)),
        None => (rest, None),
    };
    if model.is_empty() {
        return None;
    }
    if collection {
        // The `/tunedModels/` marker sits right before `rest` in `path`.
        let start = path.len() - rest.len() - "tunedModels/".len();
        return Some((
            &path[start..start + "tunedModels/".len() + model.len()],
            method,
        ));
    }
    Some((model, method))
}

/// A field in camelCase or snake_case. Both at once is refused: which one
/// the upstream keeps is not ours to guess.
fn either<'a>(obj: &Json, camel: &'a str, snake: &'a str) -> Result<&'a str, BodyError> {
    match (get(obj, camel).is_some(), get(obj, snake).is_some()) {
        (true, true) => Err(BodyError::Invalid(format!(
            "both `{camel}` and `{snake}` are set"
        ))),
        (true, false) => Ok(camel),
        _ => Ok(snake),
    }
}

fn fill(info: &mut AiInfo, json: &Json) -> Result<(), BodyError> {
    let obj = object(json)?;
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
        match get(obj, key) {
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
    if let Some(config) = get(obj, either(obj, "generationConfig", "generation_config")?) {
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
                        info.add_tool(&name);
                    }
                }
            } else {
                // Built-in tools: `googleSearch`, `codeExecution`, `urlContext`, ...
                info.add_tool(kind);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_at_once_are_refused() {
        let req = HttpRequest {
            method: "POST".into(),
            path: "/v1beta/models/gemini-2.0-flash:generateContent".into(),
            body: br#"{"generationConfig":{"maxOutputTokens":10,"max_output_tokens":99999}}"#
                .to_vec(),
            ..Default::default()
        };
        let body = BodyReader::with_rules(&req, crate::classify::routes::BodyMode::Required, 4096);
        assert!(matches!(parse(&req, &body), Err(BodyError::Invalid(_))));
    }

    #[test]
    fn model_paths() {
        assert_eq!(
            model_and_method("/v1beta/models/gemini-2.0-flash:generateContent"),
            Some(("gemini-2.0-flash", Some("generateContent")))
        );
        assert_eq!(
            model_and_method(
                "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-1.5-pro:streamGenerateContent"
            ),
            Some(("gemini-1.5-pro", Some("streamGenerateContent")))
        );
        assert_eq!(
            model_and_method("/v1beta/tunedModels/my-model-42:generateContent"),
            Some(("tunedModels/my-model-42", Some("generateContent")))
        );
        assert_eq!(model_and_method("/v1beta/models/x"), Some(("x", None)));
        assert_eq!(model_and_method("/v1beta/models"), None);
        assert_eq!(model_and_method("/v1beta/models/:generateContent"), None);
    }
}
