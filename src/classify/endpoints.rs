//! Every model-provider endpoint cedar-gate recognises, as data: one table
//! per protocol (and [`SERVING`], the model servers whose path names the
//! model, read with OpenAI's), one row per endpoint, first match wins. A request on a
//! provider route that no row matches is `Action::"unclassified"` (see
//! [`super::unclassified`]): the table is an allow-list of understood
//! spellings, never a deny-list.
//!
//! A row's `pattern` is matched against the *end* of the canonical path, so
//! any prefix works (`/v1/...`, `/openai/v1/...`, `/v1beta1/projects/p/...`),
//! literal segments ignoring ASCII case. Pattern segments:
//! - a literal, e.g. `chat`;
//! - `{id}`: any one non-empty segment;
//! - `{model}`: one non-empty segment, the model;
//! - `{model+}`: one or more segments, the model (Hugging Face ids
//!   `org/name`, Bedrock ARNs whose `/` arrived decoded);
//! - `{model}:verb`: a Gemini / Vertex method segment, the model before `:`.
//!
//! Sources per provider are listed in docs/ai-traffic.md; every row has a
//! sample in `classify::corpus`.

use crate::target::ends_with_ignore_case;

/// Where an endpoint's model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFrom {
    /// No model applies: the resource is the route (model listing).
    None,
    /// The `{model}` / `{model+}` part of the path.
    Path,
    /// A body field (a path of keys); required.
    Body(&'static [&'static str]),
    /// A body field; when it is absent the provider runs a model the gateway
    /// cannot see (an assistant's, a default), so the action becomes
    /// `opaque_inference` on the route.
    BodyOrOpaque(&'static [&'static str]),
    /// Body fields of which the request may send several (Bedrock
    /// `retrieveAndGenerate`'s knowledge-base and external-sources
    /// configurations): one at least, and every one sent names the same
    /// model (else `model_ambiguous`).
    Bodies(&'static [&'static [&'static str]]),
    /// A query parameter, else `opaque_inference`.
    QueryOrOpaque(&'static str),
    /// Never visible: `opaque_inference` on the route.
    Opaque,
}

/// Which reader fills `context.ai` from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The body is not read (GET, WebSocket upgrade, opaque endpoints).
    None,
    /// OpenAI-compatible JSON (also multipart on upload endpoints).
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// Gemini `generateContent` and friends.
    Gemini,
    /// Bedrock `converse`.
    BedrockConverse,
    /// Bedrock `invoke`: the model vendor's own body.
    BedrockInvoke,
    /// Only the model field (and its type) is read.
    ModelOnly,
}

/// One recognised endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// Upper-case HTTP method.
    pub method: &'static str,
    /// Path pattern matched against the end of the path (see the module doc).
    pub pattern: &'static str,
    /// Cedar action.
    pub action: &'static str,
    /// `context.ai.endpoint`.
    pub endpoint: &'static str,
    /// Where the model comes from.
    pub model: ModelFrom,
    /// How the body is read.
    pub fill: Fill,
    /// Whether the answer is streamed whatever the body says.
    pub stream: bool,
    /// Whether `multipart/form-data` is accepted (file uploads).
    pub upload: bool,
    /// `context.ai.provider` when the row names it (a model server's API),
    /// instead of the one told by protocol, host and path.
    pub vendor: Option<&'static str>,
    /// The pattern's segments: a path with fewer cannot match (every pattern
    /// segment, `{model+}` included, takes at least one path segment).
    segments: usize,
    /// Whether the pattern has a `{model+}` segment.
    plus: bool,
    /// Where the pattern's last segment starts.
    last: usize,
}

const fn row(
    method: &'static str,
    pattern: &'static str,
    action: &'static str,
    endpoint: &'static str,
    model: ModelFrom,
    fill: Fill,
) -> Endpoint {
    Endpoint {
        method,
        pattern,
        action,
        endpoint,
        model,
        fill,
        stream: false,
        upload: false,
        vendor: None,
        segments: segments(pattern),
        plus: contains(pattern, "{model+}"),
        last: last_segment(pattern),
    }
}

/// Where `pattern.rsplit('/').next()` starts, at compile time.
const fn last_segment(pattern: &str) -> usize {
    let bytes = pattern.as_bytes();
    let mut i = bytes.len();
    while i > 0 && bytes[i - 1] != b'/' {
        i -= 1;
    }
    i
}

/// `pattern.split('/').count()`, at compile time.
const fn segments(pattern: &str) -> usize {
    let bytes = pattern.as_bytes();
    let (mut n, mut i) = (1, 0);
    while i < bytes.len() {
        if bytes[i] == b'/' {
            n += 1;
        }
        i += 1;
    }
    n
}

/// `haystack.contains(needle)`, at compile time.
const fn contains(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let mut start = 0;
    while start + n.len() <= h.len() {
        let mut i = 0;
        while i < n.len() && h[start + i] == n[i] {
            i += 1;
        }
        if i == n.len() {
            return true;
        }
        start += 1;
    }
    false
}

const fn streamed(mut e: Endpoint) -> Endpoint {
    e.stream = true;
    e
}

const fn upload(mut e: Endpoint) -> Endpoint {
    e.upload = true;
    e
}

const fn served_by(vendor: &'static str, mut e: Endpoint) -> Endpoint {
    e.vendor = Some(vendor);
    e
}

const MODEL: ModelFrom = ModelFrom::Body(&["model"]);
const PATH: ModelFrom = ModelFrom::Path;

/// OpenAI and OpenAI-compatible servers (vLLM, Ollama, LiteLLM), Azure
/// OpenAI (deployments and `/openai/v1/`), the OpenAI-compatible endpoints of
/// Bedrock and Vertex AI.
#[rustfmt::skip]
pub const OPENAI: &[Endpoint] = &[
    // Azure deployments: the deployment names the model.
    row("POST", "deployments/{model}/chat/completions", "chat", "chat/completions", PATH, Fill::Openai),
    row("POST", "deployments/{model}/extensions/chat/completions", "chat", "chat/completions", PATH, Fill::Openai),
    row("POST", "deployments/{model}/completions", "complete", "completions", PATH, Fill::Openai),
    row("POST", "deployments/{model}/embeddings", "embed", "embeddings", PATH, Fill::Openai),
    row("POST", "deployments/{model}/images/generations", "image", "images/generations", PATH, Fill::Openai),
    upload(row("POST", "deployments/{model}/images/edits", "image", "images/edits", PATH, Fill::Openai)),
    row("POST", "deployments/{model}/audio/speech", "audio", "audio/speech", PATH, Fill::Openai),
    upload(row("POST", "deployments/{model}/audio/transcriptions", "audio", "audio/transcriptions", PATH, Fill::Openai)),
    upload(row("POST", "deployments/{model}/audio/translations", "audio", "audio/translations", PATH, Fill::Openai)),
    // The legacy engines API, still served by LiteLLM: the path names the
    // model, and wins over the body's.
    row("POST", "engines/{model}/chat/completions", "chat", "chat/completions", PATH, Fill::Openai),
    row("POST", "engines/{model}/completions", "complete", "completions", PATH, Fill::Openai),
    row("POST", "engines/{model}/embeddings", "embed", "embeddings", PATH, Fill::Openai),
    // Azure's realtime WebSocket names the deployment in the query.
    row("GET", "openai/realtime", "realtime", "realtime", ModelFrom::QueryOrOpaque("deployment"), Fill::None),
    // OpenAI.
    row("POST", "chat/completions", "chat", "chat/completions", MODEL, Fill::Openai),
    row("POST", "completions", "complete", "completions", MODEL, Fill::Openai),
    row("POST", "responses", "chat", "responses", MODEL, Fill::Openai),
    row("POST", "responses/compact", "chat", "responses/compact", MODEL, Fill::Openai),
    row("POST", "responses/input_tokens", "count_tokens", "responses/input_tokens", MODEL, Fill::Openai),
    row("POST", "embeddings", "embed", "embeddings", MODEL, Fill::Openai),
    row("POST", "images/generations", "image", "images/generations", MODEL, Fill::Openai),
    upload(row("POST", "images/edits", "image", "images/edits", MODEL, Fill::Openai)),
    upload(row("POST", "images/variations", "image", "images/variations", MODEL, Fill::Openai)),
    row("POST", "audio/speech", "audio", "audio/speech", MODEL, Fill::Openai),
    upload(row("POST", "audio/transcriptions", "audio", "audio/transcriptions", MODEL, Fill::Openai)),
    upload(row("POST", "audio/translations", "audio", "audio/translations", MODEL, Fill::Openai)),
    row("POST", "moderations", "moderate", "moderations", MODEL, Fill::Openai),
    upload(row("POST", "videos", "video", "videos", MODEL, Fill::Openai)),
    // A remix reuses the source video's model, which the request does not name.
    row("POST", "videos/{id}/remix", "opaque_inference", "videos/remix", ModelFrom::Opaque, Fill::None),
    row("POST", "realtime/sessions", "realtime", "realtime/sessions", MODEL, Fill::Openai),
    row("POST", "realtime/transcription_sessions", "opaque_inference", "realtime/transcription_sessions", ModelFrom::Opaque, Fill::None),
    row("POST", "realtime/client_secrets", "realtime", "realtime/client_secrets", ModelFrom::BodyOrOpaque(&["session", "model"]), Fill::ModelOnly),
    row("POST", "realtime/calls", "realtime", "realtime/calls", ModelFrom::QueryOrOpaque("model"), Fill::None),
    row("GET", "realtime", "realtime", "realtime", ModelFrom::QueryOrOpaque("model"), Fill::None),
    row("POST", "fine_tuning/jobs", "fine_tune", "fine_tuning/jobs", MODEL, Fill::ModelOnly),
    row("POST", "batches", "batch", "batches", ModelFrom::None, Fill::None),
    row("POST", "assistants", "configure_model", "assistants", MODEL, Fill::ModelOnly),
    row("POST", "assistants/{id}", "configure_model", "assistants", ModelFrom::BodyOrOpaque(&["model"]), Fill::ModelOnly),
    // A run uses the assistant's model unless the body overrides it.
    row("POST", "threads/{id}/runs", "chat", "threads/runs", ModelFrom::BodyOrOpaque(&["model"]), Fill::Openai),
    row("POST", "threads/runs", "chat", "threads/runs", ModelFrom::BodyOrOpaque(&["model"]), Fill::Openai),
    row("POST", "threads/{id}/runs/{id}/submit_tool_outputs", "opaque_inference", "threads/runs/submit_tool_outputs", ModelFrom::Opaque, Fill::None),
    row("GET", "models", "list_models", "models", ModelFrom::None, Fill::None),
    row("GET", "models/{model+}", "get_model", "models", PATH, Fill::None),
];

/// Anthropic Messages API.
#[rustfmt::skip]
pub const ANTHROPIC: &[Endpoint] = &[
    row("POST", "v1/messages", "chat", "messages", MODEL, Fill::Anthropic),
    row("POST", "v1/messages/count_tokens", "count_tokens", "messages/count_tokens", MODEL, Fill::Anthropic),
    row("POST", "v1/complete", "complete", "complete", MODEL, Fill::Anthropic),
    row("POST", "v1/messages/batches", "batch", "messages/batches", ModelFrom::None, Fill::None),
    row("GET", "v1/models", "list_models", "models", ModelFrom::None, Fill::None),
    row("GET", "v1/models/{model}", "get_model", "models", PATH, Fill::None),
];

/// Google Gemini API (v1, v1beta) and Vertex AI (v1, v1beta1, every
/// publisher), whose model is in the path.
#[rustfmt::skip]
pub const GEMINI: &[Endpoint] = &[
    row("POST", "models/{model}:generateContent", "chat", "generateContent", PATH, Fill::Gemini),
    streamed(row("POST", "models/{model}:streamGenerateContent", "chat", "streamGenerateContent", PATH, Fill::Gemini)),
    row("POST", "models/{model}:countTokens", "count_tokens", "countTokens", PATH, Fill::Gemini),
    row("POST", "models/{model}:computeTokens", "count_tokens", "computeTokens", PATH, Fill::Gemini),
    row("POST", "models/{model}:embedContent", "embed", "embedContent", PATH, Fill::Gemini),
    row("POST", "models/{model}:batchEmbedContents", "embed", "batchEmbedContents", PATH, Fill::Gemini),
    row("POST", "models/{model}:predict", "predict", "predict", PATH, Fill::Gemini),
    row("POST", "models/{model}:predictLongRunning", "predict", "predictLongRunning", PATH, Fill::Gemini),
    streamed(row("POST", "models/{model}:serverStreamingPredict", "predict", "serverStreamingPredict", PATH, Fill::Gemini)),
    streamed(row("POST", "models/{model}:streamingPredict", "predict", "streamingPredict", PATH, Fill::Gemini)),
    // Vertex partner models (Anthropic, Meta, Mistral, ...): the vendor's body.
    row("POST", "models/{model}:rawPredict", "chat", "rawPredict", PATH, Fill::Anthropic),
    streamed(row("POST", "models/{model}:streamRawPredict", "chat", "streamRawPredict", PATH, Fill::Anthropic)),
    row("POST", "models/{model}:batchGenerateContent", "batch", "batchGenerateContent", PATH, Fill::None),
    row("POST", "models/{model}:asyncBatchEmbedContent", "batch", "asyncBatchEmbedContent", PATH, Fill::None),
    row("POST", "tunedModels/{model}:generateContent", "chat", "generateContent", PATH, Fill::Gemini),
    streamed(row("POST", "tunedModels/{model}:streamGenerateContent", "chat", "streamGenerateContent", PATH, Fill::Gemini)),
    // The Live API: a WebSocket whose first message names the model.
    row("GET", "{id}.GenerativeService.BidiGenerateContent", "opaque_inference", "bidiGenerateContent", ModelFrom::Opaque, Fill::None),
    row("GET", "{id}.GenerativeService.BidiGenerateContentConstrained", "opaque_inference", "bidiGenerateContent", ModelFrom::Opaque, Fill::None),
    row("GET", "{id}.LlmBidiService/BidiGenerateContent", "opaque_inference", "bidiGenerateContent", ModelFrom::Opaque, Fill::None),
    // Vertex AI's OpenAI-compatible endpoint: `model` is `publisher/model`.
    row("POST", "endpoints/openapi/chat/completions", "chat", "chat/completions", MODEL, Fill::Openai),
    row("POST", "endpoints/openapi/embeddings", "embed", "embeddings", MODEL, Fill::Openai),
    // A deployed endpoint serves whatever model was deployed to it.
    row("POST", "endpoints/{id}:predict", "opaque_inference", "predict", ModelFrom::Opaque, Fill::None),
    row("POST", "endpoints/{id}:rawPredict", "opaque_inference", "rawPredict", ModelFrom::Opaque, Fill::None),
    row("POST", "endpoints/{id}:streamRawPredict", "opaque_inference", "streamRawPredict", ModelFrom::Opaque, Fill::None),
    row("POST", "endpoints/{id}:generateContent", "opaque_inference", "generateContent", ModelFrom::Opaque, Fill::None),
    row("POST", "endpoints/{id}:streamGenerateContent", "opaque_inference", "streamGenerateContent", ModelFrom::Opaque, Fill::None),
    row("POST", "cachedContents", "cache_content", "cachedContents", MODEL, Fill::Gemini),
    row("GET", "models", "list_models", "models", ModelFrom::None, Fill::None),
    row("GET", "tunedModels", "list_models", "models", ModelFrom::None, Fill::None),
    row("GET", "models/{model}", "get_model", "models", PATH, Fill::None),
    row("GET", "tunedModels/{model}", "get_model", "models", PATH, Fill::None),
];

/// Amazon Bedrock runtime.
#[rustfmt::skip]
pub const BEDROCK: &[Endpoint] = &[
    row("POST", "model/{model+}/invoke", "chat", "invoke", PATH, Fill::BedrockInvoke),
    streamed(row("POST", "model/{model+}/invoke-with-response-stream", "chat", "invoke-with-response-stream", PATH, Fill::BedrockInvoke)),
    row("POST", "model/{model+}/converse", "chat", "converse", PATH, Fill::BedrockConverse),
    streamed(row("POST", "model/{model+}/converse-stream", "chat", "converse-stream", PATH, Fill::BedrockConverse)),
    row("POST", "model/{model+}/count-tokens", "count_tokens", "count-tokens", PATH, Fill::None),
    row("POST", "async-invoke", "chat", "async-invoke", ModelFrom::Body(&["modelId"]), Fill::ModelOnly),
    // Bedrock Agent Runtime: the model generating the answer is nested.
    row("POST", "retrieveAndGenerate", "chat", "retrieveAndGenerate", RAG_MODEL, Fill::ModelOnly),
    streamed(row("POST", "retrieveAndGenerateStream", "chat", "retrieveAndGenerateStream", RAG_MODEL, Fill::ModelOnly)),
];

/// Where `retrieveAndGenerate` names its model: the knowledge base's or the
/// external sources' configuration.
const RAG_MODEL: ModelFrom = ModelFrom::Bodies(&[
    &[
        "retrieveAndGenerateConfiguration",
        "knowledgeBaseConfiguration",
        "modelArn",
    ],
    &[
        "retrieveAndGenerateConfiguration",
        "externalSourcesConfiguration",
        "modelArn",
    ],
]);

/// Model servers whose path names the model they run: KServe v2 and Triton
/// (`/v2/models/{model}/infer`), KServe v1 (`/v1/models/{model}:predict`,
/// `:explain`), TorchServe (`/predictions/{model}`), SageMaker runtime
/// (`/endpoints/{name}/invocations`, a deployment name that `model_aliases`
/// maps, as an Azure deployment's; see [`MODEL_HEADERS`]) and Cloudflare Workers AI
/// (`/ai/run/@cf/meta/llama-3-8b-instruct`). Read on OpenAI-compatible
/// routes after [`OPENAI`], and off every route. The body is not read: it is
/// a tensor, an image or the model's own format, and the server runs the
/// path's model whatever it says.
#[rustfmt::skip]
pub const SERVING: &[Endpoint] = &[
    served_by("kserve", row("POST", "models/{model}/infer", "predict", "infer", PATH, Fill::None)),
    served_by("kserve", row("POST", "models/{model}/versions/{id}/infer", "predict", "infer", PATH, Fill::None)),
    served_by("kserve", row("POST", "models/{model}/generate", "complete", "generate", PATH, Fill::None)),
    served_by("kserve", row("POST", "models/{model}/versions/{id}/generate", "complete", "generate", PATH, Fill::None)),
    served_by("kserve", streamed(row("POST", "models/{model}/generate_stream", "complete", "generate_stream", PATH, Fill::None))),
    served_by("kserve", streamed(row("POST", "models/{model}/versions/{id}/generate_stream", "complete", "generate_stream", PATH, Fill::None))),
    // KServe v1: also Gemini's `:predict` row, which is read first off every
    // route and on `gemini` routes; this one serves `openai` routes.
    served_by("kserve", row("POST", "models/{model}:predict", "predict", "predict", PATH, Fill::None)),
    served_by("kserve", row("POST", "models/{model}:explain", "predict", "explain", PATH, Fill::None)),
    // TorchServe takes `PUT` as well (`curl -T`). The versioned row first:
    // TorchServe reads `/predictions/a/b` as model `a`, version `b`.
    served_by("torchserve", row("POST", "predictions/{model}/{id}", "predict", "predictions", PATH, Fill::None)),
    served_by("torchserve", row("POST", "predictions/{model}", "predict", "predictions", PATH, Fill::None)),
    served_by("torchserve", row("PUT", "predictions/{model}/{id}", "predict", "predictions", PATH, Fill::None)),
    served_by("torchserve", row("PUT", "predictions/{model}", "predict", "predictions", PATH, Fill::None)),
    served_by("torchserve", row("POST", "explanations/{model}/{id}", "predict", "explanations", PATH, Fill::None)),
    served_by("torchserve", row("POST", "explanations/{model}", "predict", "explanations", PATH, Fill::None)),
    served_by("sagemaker", row("POST", "endpoints/{model}/invocations", "predict", "invocations", PATH, Fill::None)),
    served_by("sagemaker", streamed(row("POST", "endpoints/{model}/invocations-response-stream", "predict", "invocations-response-stream", PATH, Fill::None))),
    served_by("sagemaker", row("POST", "endpoints/{model}/async-invocations", "predict", "async-invocations", PATH, Fill::None)),
    // `/client/v4/accounts/{account}/ai/run/{model}` and a Worker's `/ai/run/`.
    served_by("cloudflare", row("POST", "ai/run/{model+}", "predict", "run", PATH, Fill::None)),
];

/// Headers with which a model server runs another model than its path
/// names: SageMaker's multi-model (`Target-Model`), inference component and
/// production variant selectors. The gate cannot tell that model, so a
/// request carrying one on such a row is refused (`model_ambiguous`).
pub const MODEL_HEADERS: &[(&str, &str)] = &[
    ("sagemaker", "x-amzn-sagemaker-target-model"),
    ("sagemaker", "x-amzn-sagemaker-inference-component"),
    ("sagemaker", "x-amzn-sagemaker-target-variant"),
    ("sagemaker", "x-amzn-sagemaker-target-container-hostname"),
];

/// The tables an `openai` route reads, in order.
pub const OPENAI_TABLES: &[&[Endpoint]] = &[OPENAI, SERVING];

/// What a matched row captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'a> {
    /// The row.
    pub endpoint: &'static Endpoint,
    /// The model part of the path, as in the canonical path (still encoded).
    pub model: Option<&'a str>,
    /// The segments before the part the pattern matched (no leading `/`):
    /// `openai/v1` for `/openai/v1/chat/completions`.
    pub prefix: &'a str,
}

/// The first row of `table` matching the method and canonical path.
pub fn find<'a>(table: &'static [Endpoint], method: &str, path: &'a str) -> Option<Matched<'a>> {
    find_row(table, Some(method), path)
}

/// The first row of the first of `tables` that has one (see [`find`]).
pub fn find_in<'a>(
    tables: &[&'static [Endpoint]],
    method: &str,
    path: &'a str,
) -> Option<Matched<'a>> {
    tables.iter().find_map(|table| find(table, method, path))
}

/// The model a model server's path names ([`SERVING`]), whatever the
/// method: a server may run it for a method its row does not list, so a
/// request cedar-gate does not classify still names it (still encoded).
pub fn serving_model(path: &str) -> Option<&str> {
    find_row(SERVING, None, path).and_then(|m| m.model)
}

/// [`find`], for one method or any.
fn find_row<'a>(
    table: &'static [Endpoint],
    method: Option<&str>,
    path: &'a str,
) -> Option<Matched<'a>> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let path = path.strip_prefix('/').unwrap_or(path);
    // Rows with more segments than the path are skipped before any pattern is
    // split: most rows of a table are longer than a request's path.
    let path_segments = path.bytes().filter(|&b| b == b'/').count() + 1;
    // And rows whose last segment cannot be the path's: both pattern matchers
    // test it first.
    let path_last = RSegments::new(path).next().unwrap_or_default();
    let fits = |e: &&Endpoint| {
        let last = e.pattern.get(e.last..).unwrap_or_default();
        // Cheapest first. A literal segment (every other one starts with `{`)
        // matches only a path segment of its length.
        e.segments <= path_segments
            && (last.starts_with('{') || last.len() == path_last.len())
            && method.is_none_or(|m| e.method == m)
            && last_fits(last, path_last)
    };
    table.iter().filter(fits).find_map(|e| {
        let (model, start) = match_pattern(e, path)?;
        let prefix = match start {
            Start::Segment(n) => path.splitn(n + 1, '/').take(n).map(str::len).sum::<usize>() + n,
            Start::FromEnd(n) => {
                let matched: usize = path.rsplitn(n + 1, '/').take(n).map(|s| s.len() + 1).sum();
                path.len().saturating_sub(matched)
            }
        };
        Some(Matched {
            endpoint: e,
            model,
            prefix: path[..prefix.min(path.len())].trim_end_matches('/'),
        })
    })
}

/// Whether a row's last pattern segment can match the path's last segment:
/// `{model+}`, or what [`segment`] says. A literal (every pattern segment
/// that does not start with `{`) is compared directly: `segment` would first
/// rule out each placeholder spelling, for every row tried on every Check.
fn last_fits(last: &str, seg: &str) -> bool {
    if last.starts_with('{') {
        last == "{model+}" || segment(last, seg).is_some()
    } else {
        !seg.is_empty() && seg.eq_ignore_ascii_case(last)
    }
}

/// Whether a row of `tables` other than the model listings matches: the
/// request runs a model, or configures or batches one.
pub fn runs_a_model(tables: &[&'static [Endpoint]], method: &str, path: &str) -> bool {
    find_in(tables, method, path)
        .is_some_and(|m| !matches!(m.endpoint.action, "list_models" | "get_model"))
}

/// Where a pattern's match starts.
enum Start {
    /// At this segment, counted from the start.
    Segment(usize),
    /// This many segments before the end.
    FromEnd(usize),
}

/// Matches `pattern` against the end of `path` (no leading `/`); returns the
/// model capture (or `Some(None)` without one). Allocation-free except for
/// `{model+}` patterns whose last segment matches: every Check on a provider
/// route tries rows until one fits.
fn match_pattern<'a>(e: &Endpoint, path: &'a str) -> Option<(Option<&'a str>, Start)> {
    let pattern = e.pattern;
    if e.plus {
        return match_plus(pattern, path);
    }
    let mut model = None;
    let mut segs = RSegments::new(path);
    let mut matched = 0;
    for p in RSegments::new(pattern) {
        if let Some(m) = segment(p, segs.next()?)? {
            model = Some(m);
        }
        matched += 1;
    }
    Some((model, Start::FromEnd(matched)))
}

/// `s.rsplit('/')` for the few short segments of a path or pattern: a byte
/// scan, where `rsplit`'s searcher costs more to set up than the segment
/// costs to read (every Check on a provider route tries several rows).
struct RSegments<'a> {
    rest: Option<&'a str>,
}

// === impl RSegments ===

impl<'a> RSegments<'a> {
    fn new(s: &'a str) -> Self {
        Self { rest: Some(s) }
    }
}

impl<'a> Iterator for RSegments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.bytes().rposition(|b| b == b'/') {
            // `/` is ASCII: both slices are on character boundaries.
            Some(i) => {
                self.rest = rest.get(..i);
                rest.get(i + 1..)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// `A / {model+} / B`: B at the end, A at its first place before that, and
/// the model the one or more non-empty segments between.
fn match_plus<'a>(pattern: &str, path: &'a str) -> Option<(Option<&'a str>, Start)> {
    let (last_pattern, last_segment) = (pattern.rsplit('/').next()?, path.rsplit('/').next()?);
    if last_pattern != "{model+}" {
        segment(last_pattern, last_segment)?;
    }
    let pat: Vec<&str> = pattern.split('/').collect();
    let segs: Vec<&'a str> = path.split('/').collect();
    let plus = pat.iter().position(|p| *p == "{model+}")?;
    let (before, after) = (&pat[..plus], &pat[plus + 1..]);
    if segs.len() < before.len() + after.len() + 1 {
        return None;
    }
    let end = segs.len() - after.len();
    for (p, s) in after.iter().zip(&segs[end..]) {
        segment(p, s)?;
    }
    (0..=end.saturating_sub(before.len() + 1)).find_map(|start| {
        let fits = before
            .iter()
            .zip(&segs[start..])
            .all(|(p, s)| segment(p, s).is_some());
        let from = start + before.len();
        (fits && from < end && segs[from..end].iter().all(|s| !s.is_empty())).then(|| {
            // The model spans segments `from..end` of `path`.
            let offset: usize = segs[..from].iter().map(|s| s.len() + 1).sum();
            let len: usize = segs[from..end].iter().map(|s| s.len() + 1).sum::<usize>() - 1;
            (Some(&path[offset..offset + len]), Start::Segment(start))
        })
    })
}

/// One pattern segment against one path segment: `None` if it does not
/// match, `Some(Some(model))` if it captured the model.
fn segment<'a>(pattern: &str, seg: &'a str) -> Option<Option<&'a str>> {
    if seg.is_empty() {
        return None;
    }
    match pattern {
        "{id}" => Some(None),
        "{model}" => Some(Some(seg)),
        _ => {
            if let Some(rest) = pattern.strip_prefix("{model}") {
                // `{model}:verb`
                return (ends_with_ignore_case(seg, rest) && seg.len() > rest.len())
                    .then(|| Some(&seg[..seg.len() - rest.len()]));
            }
            if let Some(rest) = pattern.strip_prefix("{id}") {
                return (ends_with_ignore_case(seg, rest) && seg.len() > rest.len())
                    .then_some(None);
            }
            seg.eq_ignore_ascii_case(pattern).then_some(None)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn model(
        table: &'static [Endpoint],
        method: &str,
        path: &str,
    ) -> Option<(&'static str, Option<String>)> {
        find(table, method, path).map(|m| (m.endpoint.action, m.model.map(str::to_owned)))
    }

    #[test]
    fn prefixes() {
        let prefix = |table, method, path| find(table, method, path).map(|m| m.prefix);
        assert_eq!(prefix(OPENAI, "POST", "/v1/chat/completions"), Some("v1"));
        assert_eq!(prefix(OPENAI, "POST", "/chat/completions"), Some(""));
        assert_eq!(
            prefix(OPENAI, "POST", "/openai/deployments/d/chat/completions"),
            Some("openai")
        );
        assert_eq!(
            prefix(OPENAI, "POST", "/a/b/engines/o1/chat/completions/"),
            Some("a/b")
        );
        assert_eq!(
            prefix(
                BEDROCK,
                "POST",
                "/x/model/arn:aws:bedrock:us-east-1::foundation-model/m/invoke"
            ),
            Some("x")
        );
        assert_eq!(prefix(BEDROCK, "POST", "/model/m/invoke"), Some(""));
        assert_eq!(
            prefix(
                GEMINI,
                "POST",
                "/v1beta/models/gemini-2.0-flash:generateContent"
            ),
            Some("v1beta")
        );
    }

    #[test]
    fn patterns() {
        assert_eq!(
            model(OPENAI, "POST", "/v1/chat/completions"),
            Some(("chat", None))
        );
        assert_eq!(
            model(OPENAI, "POST", "/V1/Chat/Completions/"),
            Some(("chat", None))
        );
        assert_eq!(
            model(OPENAI, "POST", "/openai/deployments/GPT4/chat/completions"),
            Some(("chat", Some("GPT4".into())))
        );
        assert_eq!(
            model(OPENAI, "GET", "/v1/models/meta-llama/Llama-3"),
            Some(("get_model", Some("meta-llama/Llama-3".into())))
        );
        assert_eq!(
            model(OPENAI, "GET", "/v1/models"),
            Some(("list_models", None))
        );
        assert_eq!(
            model(OPENAI, "GET", "/v1/models/"),
            Some(("list_models", None))
        );
        assert_eq!(
            model(OPENAI, "POST", "/v1/threads/t1/runs"),
            Some(("chat", None))
        );
        assert_eq!(model(OPENAI, "POST", "/v1/files"), None);
        assert_eq!(
            model(
                GEMINI,
                "POST",
                "/v1/projects/p/locations/l/publishers/anthropic/models/claude-x@1:rawPredict"
            ),
            Some(("chat", Some("claude-x@1".into())))
        );
        assert_eq!(
            model(
                GEMINI,
                "POST",
                "/v1beta/models/gemini-2.0-flash:GENERATECONTENT"
            ),
            Some(("chat", Some("gemini-2.0-flash".into())))
        );
        assert_eq!(
            model(GEMINI, "POST", "/v1beta/models/:generateContent"),
            None
        );
        assert_eq!(
            model(
                BEDROCK,
                "POST",
                "/model/arn:aws:bedrock:x:1:inference-profile/us.m/converse-stream"
            ),
            Some((
                "chat",
                Some("arn:aws:bedrock:x:1:inference-profile/us.m".into())
            ))
        );
        assert_eq!(model(BEDROCK, "POST", "/model//invoke"), None);
        assert_eq!(model(BEDROCK, "POST", "/model/invoke"), None);
        assert_eq!(
            model(
                GEMINI,
                "GET",
                "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
            ),
            Some(("opaque_inference", None))
        );
    }

    #[test]
    fn model_servers_name_the_model_in_the_path() {
        for (method, path, want) in [
            ("POST", "/v2/models/resnet/infer", ("predict", "resnet")),
            (
                "POST",
                "/v2/models/resnet/versions/3/infer",
                ("predict", "resnet"),
            ),
            ("POST", "/v2/models/llama/generate", ("complete", "llama")),
            (
                "POST",
                "/v2/models/llama/versions/1/generate_stream",
                ("complete", "llama"),
            ),
            (
                "POST",
                "/v1/models/sklearn-iris:explain",
                ("predict", "sklearn-iris"),
            ),
            ("POST", "/predictions/densenet", ("predict", "densenet")),
            ("PUT", "/predictions/densenet/2.0", ("predict", "densenet")),
            (
                "POST",
                "/predictions/predictions/2.0",
                ("predict", "predictions"),
            ),
            ("POST", "/explanations/densenet", ("predict", "densenet")),
            (
                "POST",
                "/endpoints/prod-llm/invocations",
                ("predict", "prod-llm"),
            ),
            (
                "POST",
                "/endpoints/prod-llm/invocations-response-stream",
                ("predict", "prod-llm"),
            ),
            (
                "POST",
                "/ai/run/@cf/meta/llama-3-8b-instruct",
                ("predict", "@cf/meta/llama-3-8b-instruct"),
            ),
            (
                "POST",
                "/client/v4/accounts/0123abc/ai/run/@cf/meta/llama-3-8b-instruct/",
                ("predict", "@cf/meta/llama-3-8b-instruct"),
            ),
        ] {
            let (action, m) = want;
            assert_eq!(
                model(SERVING, method, path),
                Some((action, Some(m.to_owned()))),
                "{method} {path}"
            );
            assert_eq!(serving_model(path), Some(m), "{path}");
        }
        // Any method names the model; only the rows' methods classify.
        assert_eq!(serving_model("/predictions/densenet"), Some("densenet"));
        assert_eq!(model(SERVING, "GET", "/predictions/densenet"), None);
        for path in [
            "/v2/models/m",
            "/v2/models/m/ready",
            "/ai/run",
            "/ai/run/",
            "/predictions",
        ] {
            assert_eq!(serving_model(path), None, "{path}");
        }
        assert_eq!(
            find(SERVING, "POST", "/client/v4/accounts/a/ai/run/@cf/m").map(|m| m.prefix),
            Some("client/v4/accounts/a")
        );
    }

    #[test]
    fn every_row_is_well_formed() {
        for table in [OPENAI, ANTHROPIC, GEMINI, BEDROCK, SERVING] {
            for e in table {
                let captures = e.pattern.matches("{model").count();
                assert_eq!(e.segments, e.pattern.split('/').count(), "{e:?}");
                assert_eq!(e.plus, e.pattern.contains("{model+}"), "{e:?}");
                assert_eq!(
                    Some(&e.pattern[e.last..]),
                    e.pattern.rsplit('/').next(),
                    "{e:?}"
                );
                assert_eq!(captures == 1, e.model == ModelFrom::Path, "{e:?}");
                // `PUT` only where a model server takes it (TorchServe).
                assert!(
                    e.method == "GET"
                        || e.method == "POST"
                        || (e.method == "PUT" && e.vendor.is_some()),
                    "{e:?}"
                );
                assert!(
                    !e.pattern.starts_with('/') && !e.pattern.ends_with('/'),
                    "{e:?}"
                );
                // `find` takes a segment without `{` for a literal.
                for seg in e.pattern.split('/') {
                    assert!(!seg.contains('{') || seg.starts_with('{'), "{e:?}");
                }
            }
        }
    }

    #[test]
    fn rsegments_are_rsplit() {
        for s in [
            "",
            "/",
            "//",
            "a",
            "a/b",
            "/a/b/",
            "v1/chat/completions",
            "é/ü//x",
            "a:b/{model}",
        ] {
            let ours: Vec<&str> = RSegments::new(s).collect();
            let std: Vec<&str> = s.rsplit('/').collect();
            assert_eq!(ours, std, "{s:?}");
        }
    }

    /// Paths built from the tables' own segments (and a few others), so
    /// that most of them match some row, or nearly.
    fn table_path() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let mut words: Vec<String> = [OPENAI, ANTHROPIC, GEMINI, BEDROCK, SERVING]
            .iter()
            .flat_map(|t| t.iter())
            .flat_map(|e| e.pattern.split('/'))
            .map(|w| {
                w.replace("{model}", "m")
                    .replace("{id}", "i")
                    .replace("{model+}", "a")
            })
            .collect();
        words.extend(["v1", "", "x", "a:b", "Chat"].map(str::to_owned));
        words.sort();
        words.dedup();
        prop::collection::vec(prop::sample::select(words), 0..8)
            .prop_map(|segs| format!("/{}", segs.join("/")))
    }

    proptest::proptest! {
        /// `last_fits` is the test it replaced in `find`, for every last
        /// segment of the tables and arbitrary ones, on arbitrary segments.
        #[test]
        fn last_fits_is_the_segment_test(
            pick in proptest::prelude::any::<proptest::sample::Index>(),
            own in "[{}a-zA-Z:+-]{0,12}",
            use_own in proptest::prelude::any::<bool>(),
            seg in "[{}a-zA-Z:+é-]{0,14}",
        ) {
            let lasts: Vec<&str> = [OPENAI, ANTHROPIC, GEMINI, BEDROCK, SERVING]
                .iter()
                .flat_map(|t| t.iter())
                .map(|e| e.pattern.get(e.last..).unwrap_or_default())
                .collect();
            let last = if use_own { own.as_str() } else { lasts[pick.index(lasts.len())] };
            for seg in [seg.as_str(), last, &last.to_ascii_uppercase()] {
                let before = last == "{model+}" || segment(last, seg).is_some();
                proptest::prop_assert_eq!(last_fits(last, seg), before, "{:?} {:?}", last, seg);
            }
        }
    }

    proptest::proptest! {
        /// Skipping rows longer than the path, or whose last segment does not
        /// match, finds what trying every row finds.
        #[test]
        fn skipping_long_rows_changes_nothing(
            path in table_path(),
            post in proptest::prelude::any::<bool>(),
        ) {
            let method = if post { "POST" } else { "GET" };
            for table in [OPENAI, ANTHROPIC, GEMINI, BEDROCK, SERVING] {
                let trimmed = path.strip_suffix('/').unwrap_or(&path);
                let trimmed = trimmed.strip_prefix('/').unwrap_or(trimmed);
                let every_row = table
                    .iter()
                    .filter(|e| e.method == method)
                    .find_map(|e| match_pattern(e, trimmed).map(|(m, _)| (e.action, e.pattern, m)));
                let found = find(table, method, &path).map(|m| (m.endpoint.action, m.endpoint.pattern, m.model));
                proptest::prop_assert_eq!(found, every_row);
            }
        }
    }
}
