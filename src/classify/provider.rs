//! The model-provider protocols, read through their endpoint tables
//! ([`endpoints`]): find the row, take the model from the path, the query or
//! the body, fill `context.ai` with the protocol's reader, and resolve the
//! model to its one entity ([`model`]). A request no row matches is
//! `unclassified`, never plain `http`.

use crate::classify::ai::{self, AiInfo, object};
use crate::classify::body::{BodyError, BodyReader};
use crate::classify::endpoints::{self, Endpoint, Fill, ModelFrom};
use crate::classify::json::Json;
use crate::classify::{
    ClassifyError, NameError, OPAQUE_INFERENCE, Operation, Route, anthropic, bedrock, gemini,
    model, openai, unclassified,
};
use crate::request::HttpRequest;
use crate::target::{decode_segment, ends_with_ignore_case, starts_with_ignore_case};

/// Classifies a request on a provider route with the protocol's tables.
pub fn parse(
    req: &HttpRequest,
    route: &Route,
    body: &BodyReader<'_>,
    tables: &[&'static [Endpoint]],
) -> Result<Operation, ClassifyError> {
    let protocol = route.protocol;
    let found = endpoints::find_in(tables, &req.method, &req.path);
    let query_model = query_model(&req.query, found.as_ref().map(|f| f.endpoint.model))?;
    let Some(found) = found else {
        if query_model.is_some() {
            return Err(ModelError::QueryOnUnknownEndpoint.into());
        }
        return Ok(unclassified(req, protocol));
    };
    model_in_prefix(found.prefix, route.own_segments())?;
    let e = found.endpoint;
    if let Some((_, header)) = endpoints::MODEL_HEADERS
        .iter()
        .find(|(vendor, h)| e.vendor == Some(*vendor) && req.header(h).is_some())
    {
        return Err(ModelError::InHeader(header).into());
    }
    let vendor = e.vendor.unwrap_or_else(|| provider(req, route));
    let mut base = AiInfo::new(vendor, e.endpoint);
    base.stream = e.stream;
    base.model = match e.model {
        ModelFrom::Path => {
            let raw = found.model.unwrap_or_default();
            Some(decode_segment(raw).ok_or(NameError::NotUtf8("model"))?)
        }
        ModelFrom::QueryOrOpaque(key) => query_param(&req.query, key)?,
        _ => None,
    };
    let mut fallbacks = Vec::new();
    let mut named = Vec::new();
    let info = if e.fill == Fill::None {
        base
    } else if let Some(boundary) = upload_boundary(body, e)? {
        openai::multipart(body, boundary, base, body_model(e.model).is_some())?
    } else {
        ai::from_body(body, base, |info, json| {
            read_body(e, info, json)?;
            if let ModelFrom::Bodies(fields) = e.model {
                named = body_models(json, fields)?;
                info.model = named.first().map(|(_, m)| m.clone());
            }
            if e.fill == Fill::Openai {
                fallbacks = fallback_models(json)?;
            }
            Ok(())
        })?
    };
    // Every other place the request names a model must name the request's
    // model (compared as entities: spellings of one model agree).
    let same = |sent: &str| {
        info.model.as_deref().is_some_and(|m| {
            model::canonical(protocol, m, &route.model_aliases).ok()
                == model::canonical(protocol, sent, &route.model_aliases).ok()
        })
    };
    // Models a server runs when the request's model fails (OpenRouter
    // `models`, LiteLLM `fallbacks`): a caller can make the first one fail on
    // purpose.
    if let Some((key, _)) = fallbacks.iter().find(|(_, sent)| !same(sent)) {
        return Err(ModelError::Fallback(key).into());
    }
    // Fields naming the model (Bedrock `retrieveAndGenerate`): the server
    // reads the one its configuration `type` selects, which the gate does not
    // follow.
    if let Some((key, _)) = named.iter().skip(1).find(|(_, sent)| !same(sent)) {
        return Err(ModelError::FieldsDisagree(key.clone()).into());
    }
    // The query: some servers read it, others the body (a run with
    // `?model=o1` and no body model).
    if let Some((key, _)) = query_model.filter(|(_, sent)| !same(sent)) {
        return Err(ModelError::QueryDisagrees(key).into());
    }
    finish(info, e, route, req)
}

/// The form boundary of an upload endpoint's `multipart/form-data` body. A
/// form content type that could be read two ways is refused (or, on a
/// `body: optional` route, classified from the path alone, like any
/// unreadable body).
fn upload_boundary<'a>(body: &BodyReader<'a>, e: &Endpoint) -> Result<Option<&'a str>, BodyError> {
    if !e.upload {
        return Ok(None);
    }
    Ok(body.lenient(body.form_boundary())?.flatten())
}

/// Path segments after which some server reads the next segment as the
/// model: LiteLLM's `/engines/{model}/…` and `/openai/deployments/{model:path}/…`
/// (where the path wins over the body), Azure deployments, Gemini and Vertex
/// `models/` and `tunedModels/`, KServe `models/`, Vertex `endpoints/{id}`
/// (a deployed model) and SageMaker `endpoints/{name}`, Bedrock `model/`,
/// TorchServe `predictions/` and `explanations/`.
const MODEL_CONTAINERS: [&str; 8] = [
    "engines",
    "deployments",
    "models",
    "model",
    "tunedmodels",
    "endpoints",
    "predictions",
    "explanations",
];

/// The part of the path before the recognised endpoint must not name a model
/// of its own (`/engines/o1/chat/completions` matched as `chat/completions`
/// with the body's model): a server that reads the path would run another
/// model than the one decided on. The route's own prefix is the operator's
/// and is not looked at.
fn model_in_prefix(prefix: &str, own_segments: usize) -> Result<(), ModelError> {
    let mut segments = prefix
        .split('/')
        .filter(|s| !s.is_empty())
        .skip(own_segments)
        .peekable();
    let mut previous = "";
    while let Some(seg) = segments.next() {
        let more = segments.peek().is_some();
        if more && MODEL_CONTAINERS.iter().any(|c| seg.eq_ignore_ascii_case(c)) {
            return Err(ModelError::InPrefix(seg.to_ascii_lowercase()));
        }
        // Workers AI: `ai/run/` and the rest of the path is the model.
        if more && previous.eq_ignore_ascii_case("ai") && seg.eq_ignore_ascii_case("run") {
            return Err(ModelError::InPrefix("ai/run".to_owned()));
        }
        previous = seg;
    }
    Ok(())
}

/// Query parameters that name a model to some server.
pub(crate) const QUERY_MODEL_KEYS: [&str; 4] = ["model", "deployment", "modelId", "model_id"];

/// A model named in the query under a key the endpoint does not read it from:
/// `(key, value)`. The endpoint's own query key (realtime `?model=`) is not
/// returned; a key sent twice is refused.
fn query_model(
    query: &str,
    from: Option<ModelFrom>,
) -> Result<Option<(&'static str, String)>, ClassifyError> {
    if query.is_empty() {
        return Ok(None);
    }
    for key in QUERY_MODEL_KEYS {
        if from == Some(ModelFrom::QueryOrOpaque(key)) {
            continue;
        }
        if let Some(value) = query_param(query, key)? {
            return Ok(Some((key, value)));
        }
    }
    Ok(None)
}

/// `(name, value)` pairs of a query string split at `separators`,
/// percent-decoded (`+` is a space in values); undecodable pairs are kept as
/// sent.
fn query_params<'q>(
    query: &'q str,
    separators: &'q [char],
) -> impl Iterator<Item = (String, String)> + 'q {
    query
        .split(separators)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| decode_segment(s).unwrap_or_else(|| s.to_owned());
            (decode(k), decode(&v.replace('+', " ")))
        })
}

/// A model named where the classifier cannot take it as the request's model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The query names a model (`?model=`) that the body or path does not.
    #[error(
        "the query parameter `{0}` names another model than the request, or the request names none: which one runs depends on the server"
    )]
    QueryDisagrees(&'static str),
    /// The query names a model in a form servers read differently.
    #[error(
        "the query or form names a model in a form servers read differently (`;` separators, `model[]`): which one runs depends on the server"
    )]
    QuerySpelling,
    /// The query names a model on an endpoint cedar-gate does not recognise.
    #[error("the query names a model on an endpoint cedar-gate does not recognise")]
    QueryOnUnknownEndpoint,
    /// The path names a model before the endpoint it ends with.
    #[error(
        "the path names a model (`{0}/…`) before the endpoint: a server that reads it would run another model than the one decided on"
    )]
    InPrefix(String),
    /// The body names a fallback model other than the request's.
    #[error(
        "the body's `{0}` names another model than the request's, which some servers run when the first one fails: which one runs depends on the server"
    )]
    Fallback(&'static str),
    /// A header makes the server run another model than the path names.
    #[error("the header `{0}` selects a model inside the endpoint, which cedar-gate cannot tell")]
    InHeader(&'static str),
    /// The body names the model in two fields, differently.
    #[error(
        "the body's `{0}` names another model than the request's: which one runs depends on the server"
    )]
    FieldsDisagree(String),
    /// A request no provider table reads names several different models.
    #[error(
        "the request names several different models (body, form or query) on an endpoint cedar-gate does not recognise: which one runs depends on the server"
    )]
    Several,
}

/// Top-level fields of an OpenAI-compatible body naming models a server
/// falls back to: OpenRouter's `models` (strings), LiteLLM's `fallbacks`
/// (strings, or objects with a `model`).
const FALLBACK_FIELDS: [&str; 2] = ["models", "fallbacks"];

/// The models an OpenAI-compatible body names as fallbacks, with the field
/// naming each. A field of another shape is refused: it could name a model.
fn fallback_models(json: &Json<'_>) -> Result<Vec<(&'static str, String)>, BodyError> {
    let mut out = Vec::new();
    for key in FALLBACK_FIELDS {
        for item in ai::opt_array(json, key)? {
            let model = match item {
                Json::String(m) => Some(m.as_ref()),
                Json::Object(_) => ai::get(item, "model")?.and_then(Json::as_str),
                _ => None,
            };
            let model = model.ok_or_else(|| {
                BodyError::field(key, "an array of model names (or objects with a `model`)")
            })?;
            out.push((key, model.to_owned()));
        }
    }
    Ok(out)
}

/// The models the body names in `fields` (each a path of keys), with the
/// field naming each; one at least.
fn body_models(json: &Json<'_>, fields: &[&[&str]]) -> Result<Vec<(String, String)>, BodyError> {
    let obj = object(json)?;
    let mut out = Vec::new();
    for keys in fields {
        let key = keys.join(".");
        match ai::nested(obj, keys)? {
            None => {}
            Some(Json::String(m)) if !m.is_empty() => out.push((key, m.as_ref().to_owned())),
            Some(_) => return Err(BodyError::field(&key, "a non-empty string")),
        }
    }
    if out.is_empty() {
        let keys: Vec<String> = fields
            .iter()
            .map(|k| format!("`{}`", k.join(".")))
            .collect();
        return Err(BodyError::Invalid(format!(
            "{} is required",
            keys.join(" or ")
        )));
    }
    Ok(out)
}

/// The body field naming the model, if the row reads one.
fn body_model(from: ModelFrom) -> Option<(&'static [&'static str], bool)> {
    match from {
        ModelFrom::Body(keys) => Some((keys, true)),
        ModelFrom::BodyOrOpaque(keys) => Some((keys, false)),
        _ => None,
    }
}

fn read_body(e: &Endpoint, info: &mut AiInfo, json: &Json<'_>) -> Result<(), BodyError> {
    let obj = object(json)?;
    match body_model(e.model) {
        Some((keys, required)) => match ai::nested(obj, keys)? {
            Some(Json::String(m)) if !m.is_empty() => info.model = Some(m.as_ref().to_owned()),
            None if !required => {}
            Some(Json::String(_)) | None => {
                return Err(BodyError::Invalid(format!(
                    "`{}` is required",
                    keys.join(".")
                )));
            }
            Some(_) => return Err(BodyError::field(&keys.join("."), "a string")),
        },
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
        // `Bodies` without a model: a `body: optional` route that could not
        // read the body; the server runs a model the gate did not see.
        (
            None,
            ModelFrom::Opaque
            | ModelFrom::BodyOrOpaque(_)
            | ModelFrom::QueryOrOpaque(_)
            | ModelFrom::Bodies(_),
        ) => {
            action = OPAQUE_INFERENCE;
        }
        (None, _) => {}
    }
    Ok(info.operation(route.protocol, action, &req.path))
}

/// One query parameter (name compared ignoring ASCII case), percent-decoded;
/// a parameter sent twice is refused (which one the upstream keeps is not
/// ours to guess).
///
/// Read the way every server reads it, or refused: a parameter some servers
/// find and others do not, or read with another value, is ambiguous. Some
/// split at `;` as well as `&` (python-multipart, behind Starlette's and
/// FastAPI's urlencoded forms; Rack before 3; Go before 1.17), and PHP and
/// Rails read `model[]=o1` and `model[0]=o1` as `model`.
pub(crate) fn query_param(query: &str, key: &str) -> Result<Option<String>, ClassifyError> {
    let mut values = query_params(query, &['&'])
        .filter(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v);
    let first = values.next();
    if values.next().is_some() {
        return Err(ModelError::QueryDisagrees("model").into());
    }
    if query.contains([';', '[']) {
        let array_key = |k: &str| {
            k.split_once('[')
                .is_some_and(|(k, _)| k.eq_ignore_ascii_case(key))
        };
        let mut loose = query_params(query, &['&', ';'])
            .filter(|(k, _)| k.eq_ignore_ascii_case(key) || array_key(k))
            .map(|(_, v)| v);
        if loose.next() != first || loose.next().is_some() {
            return Err(ModelError::QuerySpelling.into());
        }
    }
    Ok(first.filter(|v| !v.is_empty()))
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
            if azure_host || contains_ignore_case(&req.path, "/openai/deployments/") =>
        {
            "azure"
        }
        Protocol::Openai if ends_with_ignore_case(&req.host, ".amazonaws.com") => "bedrock",
        Protocol::Openai => "openai",
        Protocol::Anthropic => "anthropic",
        Protocol::Gemini
            if contains_ignore_case(&req.path, "/projects/")
                || starts_with_ignore_case(&req.path, "/ws/google.cloud.aiplatform") =>
        {
            "vertex"
        }
        Protocol::Gemini => "gemini",
        Protocol::Bedrock => "bedrock",
        Protocol::Http | Protocol::Mcp => "",
    }
}

/// ASCII-case-insensitive `contains`, without allocating.
fn contains_ignore_case(s: &str, needle: &str) -> bool {
    s.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
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
        assert!(query_param("MODEL=a&model=b", "model").is_err());
        assert_eq!(query_param("", "model").unwrap(), None);
        assert!(query_param("model=a&model=b", "model").is_err());
        // Read alike by every server, or refused.
        for query in [
            "a=1;model=o1",
            "model=gpt-4o-mini;model=o1",
            "model=o1;x=1",
            "model[]=o1",
            "Model[0]=o1",
            "model=gpt-4o-mini&model[]=o1",
            "x=1%3Bmodel%3Do1;model=o1",
        ] {
            assert_eq!(
                query_param(query, "model"),
                Err(ModelError::QuerySpelling.into()),
                "{query}"
            );
        }
        for (query, want) in [
            ("a=1;b=2&model=o1", Some("o1")),
            ("models[]=x&model=o1", Some("o1")),
            ("a[b]=c", None),
        ] {
            assert_eq!(
                query_param(query, "model").unwrap().as_deref(),
                want,
                "{query}"
            );
        }
    }
}
