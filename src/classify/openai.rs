//! OpenAI-compatible APIs (OpenAI, Azure OpenAI, vLLM, Ollama, LiteLLM, ...).
//!
//! The endpoint is recognised by the end of the path, so any prefix works
//! (`/v1/chat/completions`, `/openai/v1/chat/completions`, `/llm/v1/...`).
//! Azure's `/openai/deployments/{deployment}/...` names the model in the path
//! (the deployment); everywhere else the model comes from the body's `model`
//! (`GET .../models/{model}` excepted). A path that is not a known endpoint is
//! plain HTTP (`Action::"http"` on `Route::"<path>"`).

use serde_json::Value as Json;

use crate::classify::ai::{
    self, AiInfo, get, len, object, opt_array, opt_bool, opt_count, opt_milli, opt_str,
    required_model, text_chars, tool_names,
};
use crate::classify::body::{BodyError, BodyReader};
use crate::classify::{Operation, Protocol, http};
use crate::request::HttpRequest;

/// POST endpoints: path suffix, action. Longer suffixes first.
const ENDPOINTS: &[(&str, &str)] = &[
    ("chat/completions", "chat"),
    ("completions", "complete"),
    ("responses", "chat"),
    ("embeddings", "embed"),
    ("images/generations", "image"),
    ("images/edits", "image"),
    ("images/variations", "image"),
    ("audio/speech", "audio"),
    ("audio/transcriptions", "audio"),
    ("audio/translations", "audio"),
    ("moderations", "moderate"),
];

/// Classifies an OpenAI-compatible request.
pub fn parse(req: &HttpRequest, body: &BodyReader<'_>) -> Result<Operation, BodyError> {
    let (provider, deployment, tail) = split_path(&req.path);
    if req.method == "GET" {
        if tail == "models" || tail.ends_with("/models") {
            return Ok(AiInfo::new(provider, "models").operation(
                Protocol::Openai,
                "list_models",
                &req.path,
            ));
        }
        if let Some(model) = model_in_path(tail) {
            let mut info = AiInfo::new(provider, "models");
            info.model = Some(model.to_owned());
            return Ok(info.operation(Protocol::Openai, "get_model", &req.path));
        }
    }
    let endpoint = ENDPOINTS
        .iter()
        .find(|(suffix, _)| tail == *suffix || tail.ends_with(&format!("/{suffix}")));
    let (Some((endpoint, action)), "POST") = (endpoint, req.method.as_str()) else {
        return Ok(http::classify_as(req, Protocol::Openai));
    };
    let mut base = AiInfo::new(provider, endpoint);
    base.model = deployment.map(str::to_owned);
    // Only the upload endpoints take multipart; elsewhere the body must be JSON,
    // so a multipart content type cannot smuggle a second reading of the body.
    let upload = matches!(
        *endpoint,
        "audio/transcriptions" | "audio/translations" | "images/edits" | "images/variations"
    );
    let boundary = body.multipart_boundary().filter(|_| upload);
    let info = if let Some(boundary) = boundary {
        multipart(body, boundary, base)?
    } else {
        let from_path = deployment.is_some();
        ai::from_body(body, base, |info, json| {
            fill(info, json, endpoint, from_path)
        })?
    };
    Ok(info.operation(Protocol::Openai, action, &req.path))
}

/// `(provider, azure deployment, path after the version prefix)`.
fn split_path(path: &str) -> (&'static str, Option<&str>, &str) {
    if let Some((deployment, tail)) = path
        .strip_prefix("/openai/deployments/")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(d, _)| !d.is_empty())
    {
        return ("azure", Some(deployment), tail);
    }
    (
        "openai",
        None,
        path.trim_start_matches('/').trim_end_matches('/'),
    )
}

/// `.../models/{model}`: the model id may itself contain `/` (Hugging Face ids).
fn model_in_path(tail: &str) -> Option<&str> {
    let idx = if tail.starts_with("models/") {
        0
    } else {
        tail.find("/models/")? + 1
    };
    let id = &tail[idx + "models/".len()..];
    (!id.is_empty()).then_some(id)
}

fn fill(
    info: &mut AiInfo,
    json: &Json,
    endpoint: &str,
    model_from_path: bool,
) -> Result<(), BodyError> {
    let obj = object(json)?;
    if !model_from_path {
        info.model = Some(required_model(obj)?);
    } else {
        // Azure ignores the body's model; still refuse a malformed one.
        opt_str(obj, "model")?;
    }
    info.stream = opt_bool(obj, "stream")?;
    info.max_output_tokens = [
        opt_count(obj, "max_completion_tokens")?,
        opt_count(obj, "max_tokens")?,
        opt_count(obj, "max_output_tokens")?,
    ]
    .into_iter()
    .flatten()
    .max();
    info.temperature_milli = opt_milli(obj, "temperature")?;
    // What carries the prompt depends on the endpoint.
    let prompt_keys: &[&str] = match endpoint {
        "chat/completions" => &["messages"],
        "responses" => &["input", "instructions"],
        "completions" => &["prompt", "suffix"],
        "images/generations" | "audio/speech" => &["prompt", "input"],
        _ => &["input"],
    };
    for key in prompt_keys {
        match get(obj, key) {
            None => {}
            Some(Json::Array(items)) => {
                info.message_count = info.message_count.saturating_add(len(items.len()));
                info.prompt_chars = items
                    .iter()
                    .map(text_chars)
                    .fold(info.prompt_chars, i64::saturating_add);
            }
            Some(v @ Json::String(_)) if *key != "messages" => {
                if *key != "instructions" && *key != "suffix" {
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
    );
    tool_names(info, opt_array(obj, "functions")?, &[&["name"]]);
    info.response_format = match get(obj, "response_format") {
        None => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(f) => Some(opt_str(f, "type")?.unwrap_or_default()),
    };
    if let Some(format) = get(obj, "text").and_then(|t| get(t, "format")) {
        info.response_format = opt_str(format, "type")?;
    }
    Ok(())
}

/// Audio transcription and image edits upload files as `multipart/form-data`;
/// only the small text fields are read.
fn multipart(body: &BodyReader<'_>, boundary: &str, base: AiInfo) -> Result<AiInfo, BodyError> {
    let model_from_path = base.model.is_some();
    let read = || -> Result<AiInfo, BodyError> {
        let mut info = base.clone();
        if !model_from_path {
            let model = body.multipart_field(boundary, "model")?;
            info.model = Some(
                model
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| BodyError::Invalid("`model` is required".to_owned()))?,
            );
        }
        info.stream = body.multipart_field(boundary, "stream")?.as_deref() == Some("true");
        if let Some(prompt) = body.multipart_field(boundary, "prompt")? {
            info.prompt_chars = len(prompt.chars().count());
        }
        Ok(info)
    };
    Ok(body.lenient(read())?.unwrap_or(base))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::classify::routes::BodyMode;

    fn post(path: &str, body: &str) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path: path.into(),
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn run(req: &HttpRequest) -> Result<Operation, BodyError> {
        parse(req, &BodyReader::with_rules(req, BodyMode::Required, 65536))
    }

    #[test]
    fn paths() {
        assert_eq!(split_path("/v1/chat/completions").2, "v1/chat/completions");
        let (p, d, t) = split_path("/openai/deployments/gpt-4o/chat/completions");
        assert_eq!((p, d, t), ("azure", Some("gpt-4o"), "chat/completions"));
        assert_eq!(
            model_in_path("v1/models/meta-llama/Llama-3"),
            Some("meta-llama/Llama-3")
        );
        assert_eq!(model_in_path("v1/models/"), None);
    }

    #[test]
    fn azure_deployment_is_the_model() {
        let op = run(&post(
            "/openai/deployments/gpt-4o-prod/chat/completions",
            r#"{"messages":[{"role":"user","content":"hi"}]}"#,
        ))
        .unwrap();
        assert_eq!(op.resource.to_string(), r#"Model::"gpt-4o-prod""#);
        assert_eq!(op.action.to_string(), r#"Action::"chat""#);
    }

    #[test]
    fn multipart_only_on_upload_endpoints() {
        let mut req = post(
            "/v1/chat/completions",
            "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-4o-mini\r\n--b--\r\n",
        );
        req.headers = vec![(
            "content-type".into(),
            "multipart/form-data; boundary=b".into(),
        )];
        assert!(matches!(run(&req), Err(BodyError::Invalid(_))));
        req.path = "/v1/audio/transcriptions".into();
        assert_eq!(run(&req).unwrap().model.as_deref(), Some("gpt-4o-mini"));
    }

    #[test]
    fn unknown_endpoint_is_http() {
        let op = run(&post("/v1/files", "")).unwrap();
        assert_eq!(op.action.to_string(), r#"Action::"http""#);
        assert_eq!(op.protocol, Protocol::Openai);
    }

    #[test]
    fn model_is_required_and_typed() {
        assert!(run(&post("/v1/chat/completions", r#"{"messages":[]}"#)).is_err());
        assert!(run(&post("/v1/chat/completions", r#"{"model":7}"#)).is_err());
        assert!(
            run(&post(
                "/v1/chat/completions",
                r#"{"model":"m","max_tokens":"9"}"#
            ))
            .is_err()
        );
        assert!(
            run(&post(
                "/v1/chat/completions",
                r#"{"model":"m","messages":"x"}"#
            ))
            .is_err()
        );
    }
}
