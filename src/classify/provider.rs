//! The model-provider protocols, read through their endpoint tables
//! ([`endpoints`]): find the row, take the model from the path, the query or
//! the body, fill `context.ai` with the protocol's reader, and resolve the
//! model to its one entity ([`model`]). A request no row matches is
//! `unclassified`, never plain `http`.

use serde_json::Value as Json;

use crate::classify::ai::{self, AiInfo, get, object};
use crate::classify::body::{BodyError, BodyReader};
use crate::classify::endpoints::{self, Endpoint, Fill, ModelFrom};
use crate::classify::{
    ClassifyError, NameError, OPAQUE_INFERENCE, Operation, Route, anthropic, bedrock, gemini,
    model, openai, unclassified,
};
use crate::request::HttpRequest;
use crate::target::{decode_segment, ends_with_ignore_case, starts_with_ignore_case};

/// Classifies a request on a provider route with the protocol's table.
pub fn parse(
    req: &HttpRequest,
    route: &Route,
    body: &BodyReader<'_>,
    table: &'static [Endpoint],
) -> Result<Operation, ClassifyError> {
    let protocol = route.protocol;
    let Some(found) = endpoints::find(table, &req.method, &req.path) else {
        return Ok(unclassified(req, protocol));
    };
    let e = found.endpoint;
    let mut base = AiInfo::new(provider(req, route), e.endpoint);
    base.stream = e.stream;
    base.model = match e.model {
        ModelFrom::Path => {
            let raw = found.model.unwrap_or_default();
            Some(decode_segment(raw).ok_or(NameError::NotUtf8("model"))?)
        }
        ModelFrom::QueryOrOpaque(key) => query_param(&req.query, key)?,
        _ => None,
    };
    let info = if e.fill == Fill::None {
        base
    } else if let Some(boundary) = body.multipart_boundary().filter(|_| e.upload) {
        openai::multipart(body, boundary, base, body_model(e.model).is_some())?
    } else {
        ai::from_body(body, base, |info, json| read_body(e, info, json))?
    };
    finish(info, e, route, req)
}

/// The body field naming the model, if the row reads one.
fn body_model(from: ModelFrom) -> Option<(&'static [&'static str], bool)> {
    match from {
        ModelFrom::Body(keys) => Some((keys, true)),
        ModelFrom::BodyOrOpaque(keys) => Some((keys, false)),
        _ => None,
    }
}

fn read_body(e: &Endpoint, info: &mut AiInfo, json: &Json) -> Result<(), BodyError> {
    let obj = object(json)?;
    match body_model(e.model) {
        Some((keys, required)) => {
            let mut cur = Some(obj);
            for key in keys {
                cur = cur.and_then(|c| get(c, key));
            }
            match cur {
                Some(Json::String(m)) if !m.is_empty() => info.model = Some(m.clone()),
                None if !required => {}
                Some(Json::String(_)) | None => {
                    return Err(BodyError::Invalid(format!(
                        "`{}` is required",
                        keys.join(".")
                    )));
                }
                Some(_) => return Err(BodyError::field(&keys.join("."), "a string")),
            }
        }
        // The model is in the path; the upstream ignores a body `model`, but a
        // malformed one is still refused.
        None => {
            ai::opt_str(obj, "model")?;
        }
    }
    match e.fill {
        Fill::None | Fill::ModelOnly => Ok(()),
        Fill::Openai => openai::fill(info, obj, e.endpoint),
        Fill::Anthropic => anthropic::fill(info, obj),
        Fill::Gemini => gemini::fill(info, obj),
        Fill::BedrockConverse => bedrock::fill_converse(info, obj),
        Fill::BedrockInvoke => bedrock::fill_invoke(info, obj),
    }
}

/// The operation: the model resolved to its entity, or `opaque_inference`
/// where the row's model is absent, or the route when no model applies.
fn finish(
    mut info: AiInfo,
    e: &Endpoint,
    route: &Route,
    req: &HttpRequest,
) -> Result<Operation, ClassifyError> {
    let mut action = e.action;
    match (info.model.take(), e.model) {
        (Some(sent), _) => {
            let id = model::canonical(route.protocol, &sent, &route.model_aliases)?;
            info.model_as_sent = (id != sent).then_some(sent);
            info.model = Some(id);
        }
        (None, ModelFrom::Opaque | ModelFrom::BodyOrOpaque(_) | ModelFrom::QueryOrOpaque(_)) => {
            action = OPAQUE_INFERENCE;
        }
        (None, _) => {}
    }
    Ok(info.operation(route.protocol, action, &req.path))
}

/// One query parameter, percent-decoded; a parameter sent twice is refused
/// (which one the upstream keeps is not ours to guess).
fn query_param(query: &str, key: &str) -> Result<Option<String>, ClassifyError> {
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if decode_segment(k).as_deref() != Some(key) {
            continue;
        }
        if found.is_some() {
            return Err(
                BodyError::Invalid(format!("query parameter `{key}` is sent twice")).into(),
            );
        }
        let v = decode_segment(&v.replace('+', " ")).ok_or(NameError::NotUtf8("model"))?;
        found = Some(v);
    }
    Ok(found.filter(|v| !v.is_empty()))
}

/// `context.ai.provider`: the protocol's vendor, told apart by host and path
/// where one protocol serves several (Azure OpenAI, Vertex AI, Bedrock's
/// OpenAI-compatible API).
fn provider(req: &HttpRequest, route: &Route) -> &'static str {
    use crate::classify::Protocol;
    let azure_host = [
        ".openai.azure.com",
        ".cognitiveservices.azure.com",
        ".services.ai.azure.com",
    ]
    .iter()
    .any(|s| ends_with_ignore_case(&req.host, s));
    match route.protocol {
        Protocol::Openai
            if azure_host
                || req
                    .path
                    .to_ascii_lowercase()
                    .contains("/openai/deployments/") =>
        {
            "azure"
        }
        Protocol::Openai if ends_with_ignore_case(&req.host, ".amazonaws.com") => "bedrock",
        Protocol::Openai => "openai",
        Protocol::Anthropic => "anthropic",
        Protocol::Gemini
            if req.path.to_ascii_lowercase().contains("/projects/")
                || starts_with_ignore_case(&req.path, "/ws/google.cloud.aiplatform") =>
        {
            "vertex"
        }
        Protocol::Gemini => "gemini",
        Protocol::Bedrock => "bedrock",
        Protocol::Http | Protocol::Mcp => "",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        assert_eq!(
            query_param("model=gpt-realtime", "model")
                .unwrap()
                .as_deref(),
            Some("gpt-realtime")
        );
        assert_eq!(
            query_param("a=1&mod%65l=x%2Dy", "model")
                .unwrap()
                .as_deref(),
            Some("x-y")
        );
        assert_eq!(query_param("model=", "model").unwrap(), None);
        assert_eq!(query_param("", "model").unwrap(), None);
        assert!(query_param("model=a&model=b", "model").is_err());
    }
}
