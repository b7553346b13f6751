//! The attack corpus: every endpoint row of every provider table has a sample
//! request here, and every sample is sent in every spelling class an upstream
//! might read differently, through the shipped route table. Each spelling
//! must classify exactly as the sample does, or be refused with its reason.
//! A property test then checks that no path on a provider or MCP route is
//! ever plain `http`, and that canonicalisation is idempotent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::config::Config;
use crate::vocab::Reason;

fn shipped_routes() -> Routes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cedar-gate.yaml");
    Config::load(&path).unwrap().routes
}

/// A request as it arrives from Envoy: raw path, canonicalised like the wire
/// conversion does.
fn request(method: &str, raw_path: &str, body: &str, headers: &[(&str, &str)]) -> HttpRequest {
    let headers = crate::request::header_list(headers.iter().copied());
    // `https://host/path` names the host; otherwise a gateway's.
    let (host, raw_path) = match raw_path.strip_prefix("https://") {
        Some(rest) => rest.split_at(rest.find('/').unwrap_or(rest.len())),
        None => ("Gateway.Example.com:8443", raw_path),
    };
    let (path, query) = raw_path.split_once('?').unwrap_or((raw_path, ""));
    let mut req = HttpRequest {
        method: method.into(),
        host: host.into(),
        path: path.into(),
        query: query.into(),
        body: body.as_bytes().to_vec(),
        headers,
        ..Default::default()
    };
    req.canonicalize();
    req
}

/// What a request became: `(action, resource)`, or the refusal reason.
fn outcome(req: &HttpRequest, routes: &Routes) -> Result<Vec<(String, String)>, Reason> {
    classify(req, routes)
        .map(|ops| {
            ops.iter()
                .map(|o| (o.action.to_string(), o.resource.to_string()))
                .collect()
        })
        .map_err(|r| r.error.reason())
}

const CHAT: &str =
    r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":100}"#;
const ANTHROPIC: &str = r#"{"model":"claude-3-5-haiku-latest","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#;
const GEMINI: &str = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":100}}"#;
const VERTEX_ANTHROPIC: &str = r#"{"anthropic_version":"vertex-2023-10-16","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#;
const CONVERSE: &str = r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":100}}"#;
const INVOKE: &str = r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#;
const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const RAG: &str = r#"{"input":{"text":"hi"},"retrieveAndGenerateConfiguration":{"type":"KNOWLEDGE_BASE","knowledgeBaseConfiguration":{"knowledgeBaseId":"KB1","modelArn":"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"}}}"#;
const RAG_EXTERNAL: &str = r#"{"input":{"text":"hi"},"retrieveAndGenerateConfiguration":{"type":"EXTERNAL_SOURCES","externalSourcesConfiguration":{"modelArn":"us.anthropic.claude-3-haiku-20240307-v1:0","sources":[]}}}"#;

/// One sample per endpoint row: method, path, body, expected action and
/// resource.
#[rustfmt::skip]
const SAMPLES: &[(&str, &str, &str, &str, &str)] = &[
    // OpenAI, Azure deployments, Azure realtime.
    ("POST", "/v1/engines/gpt-4o-mini/chat/completions", CHAT, "chat", r#"Model::"gpt-4o-mini""#),
    ("POST", "/v1/engines/davinci/completions", r#"{"prompt":"x"}"#, "complete", r#"Model::"davinci""#),
    ("POST", "/openai/engines/emb/embeddings", r#"{"input":"x"}"#, "embed", r#"Model::"emb""#),
    ("POST", "/openai/deployments/gpt-4o-mini-prod/chat/completions?api-version=2024-10-21", r#"{"messages":[]}"#, "chat", r#"Model::"gpt-4o-mini""#),
    ("POST", "/openai/deployments/gpt-4o-mini-prod/extensions/chat/completions", r#"{"messages":[]}"#, "chat", r#"Model::"gpt-4o-mini""#),
    ("POST", "/openai/deployments/davinci/completions", r#"{"prompt":"x"}"#, "complete", r#"Model::"davinci""#),
    ("POST", "/openai/deployments/emb/embeddings", r#"{"input":"x"}"#, "embed", r#"Model::"emb""#),
    ("POST", "/openai/deployments/dalle/images/generations", r#"{"prompt":"x"}"#, "image", r#"Model::"dalle""#),
    ("POST", "/openai/deployments/dalle/images/edits", r#"{"prompt":"x"}"#, "image", r#"Model::"dalle""#),
    ("POST", "/openai/deployments/tts/audio/speech", r#"{"input":"x"}"#, "audio", r#"Model::"tts""#),
    ("POST", "/openai/deployments/whisper/audio/transcriptions", r#"{"prompt":"x"}"#, "audio", r#"Model::"whisper""#),
    ("POST", "/openai/deployments/whisper/audio/translations", r#"{"prompt":"x"}"#, "audio", r#"Model::"whisper""#),
    ("GET", "/openai/realtime?api-version=2025-04-01&deployment=gpt-4o-realtime", "", "realtime", r#"Model::"gpt-4o-realtime""#),
    ("POST", "/v1/chat/completions", CHAT, "chat", r#"Model::"gpt-4o-mini""#),
    ("POST", "/openai/v1/chat/completions", CHAT, "chat", r#"Model::"gpt-4o-mini""#),
    ("POST", "/v1/completions", r#"{"model":"gpt-3.5-turbo-instruct","prompt":"x"}"#, "complete", r#"Model::"gpt-3.5-turbo-instruct""#),
    ("POST", "/v1/responses", r#"{"model":"o1","input":"x"}"#, "chat", r#"Model::"o1""#),
    ("POST", "/v1/responses/compact", r#"{"model":"o1","input":[]}"#, "chat", r#"Model::"o1""#),
    ("POST", "/v1/responses/input_tokens", r#"{"model":"o1","input":"x"}"#, "count_tokens", r#"Model::"o1""#),
    ("POST", "/v1/embeddings", r#"{"model":"text-embedding-3-small","input":"x"}"#, "embed", r#"Model::"text-embedding-3-small""#),
    ("POST", "/v1/images/generations", r#"{"model":"gpt-image-1","prompt":"x"}"#, "image", r#"Model::"gpt-image-1""#),
    ("POST", "/v1/images/edits", r#"{"model":"gpt-image-1","prompt":"x"}"#, "image", r#"Model::"gpt-image-1""#),
    ("POST", "/v1/images/variations", r#"{"model":"dall-e-2"}"#, "image", r#"Model::"dall-e-2""#),
    ("POST", "/v1/audio/speech", r#"{"model":"tts-1","input":"x"}"#, "audio", r#"Model::"tts-1""#),
    ("POST", "/v1/audio/transcriptions", r#"{"model":"whisper-1"}"#, "audio", r#"Model::"whisper-1""#),
    ("POST", "/v1/audio/translations", r#"{"model":"whisper-1"}"#, "audio", r#"Model::"whisper-1""#),
    ("POST", "/v1/moderations", r#"{"model":"omni-moderation-latest","input":"x"}"#, "moderate", r#"Model::"omni-moderation-latest""#),
    ("POST", "/v1/videos", r#"{"model":"sora-2","prompt":"x"}"#, "video", r#"Model::"sora-2""#),
    ("POST", "/v1/videos/video_1/remix", r#"{"prompt":"x"}"#, "opaque_inference", r#"Route::"/v1/videos/video_1/remix""#),
    ("POST", "/v1/realtime/sessions", r#"{"model":"gpt-realtime"}"#, "realtime", r#"Model::"gpt-realtime""#),
    ("POST", "/v1/realtime/transcription_sessions", r#"{}"#, "opaque_inference", r#"Route::"/v1/realtime/transcription_sessions""#),
    ("POST", "/v1/realtime/client_secrets", r#"{"session":{"type":"realtime","model":"gpt-realtime"}}"#, "realtime", r#"Model::"gpt-realtime""#),
    ("POST", "/v1/realtime/calls?model=gpt-realtime", "v=0", "realtime", r#"Model::"gpt-realtime""#),
    ("GET", "/v1/realtime?model=gpt-realtime", "", "realtime", r#"Model::"gpt-realtime""#),
    ("POST", "/v1/fine_tuning/jobs", r#"{"model":"gpt-4o-mini","training_file":"file-1"}"#, "fine_tune", r#"Model::"gpt-4o-mini""#),
    ("POST", "/v1/batches", r#"{"input_file_id":"file-1","endpoint":"/v1/chat/completions"}"#, "batch", r#"Route::"/v1/batches""#),
    ("POST", "/v1/assistants", r#"{"model":"o1"}"#, "configure_model", r#"Model::"o1""#),
    ("POST", "/v1/assistants/asst_1", r#"{"name":"x"}"#, "opaque_inference", r#"Route::"/v1/assistants/asst_1""#),
    ("POST", "/v1/threads/thread_1/runs", r#"{"assistant_id":"asst_1"}"#, "opaque_inference", r#"Route::"/v1/threads/thread_1/runs""#),
    ("POST", "/v1/threads/runs", r#"{"assistant_id":"asst_1","model":"o1"}"#, "chat", r#"Model::"o1""#),
    ("POST", "/v1/threads/thread_1/runs/run_1/submit_tool_outputs", r#"{"tool_outputs":[]}"#, "opaque_inference", r#"Route::"/v1/threads/thread_1/runs/run_1/submit_tool_outputs""#),
    ("GET", "/v1/models", "", "list_models", r#"Route::"/v1/models""#),
    ("GET", "/v1/models/meta-llama/Llama-3.1-8B-Instruct", "", "get_model", r#"Model::"meta-llama/llama-3.1-8b-instruct""#),
    // Anthropic.
    ("POST", "/v1/messages", ANTHROPIC, "chat", r#"Model::"claude-3-5-haiku-latest""#),
    ("POST", "/v1/messages/count_tokens", ANTHROPIC, "count_tokens", r#"Model::"claude-3-5-haiku-latest""#),
    ("POST", "/v1/complete", r#"{"model":"claude-2.1","prompt":"x","max_tokens_to_sample":10}"#, "complete", r#"Model::"claude-2.1""#),
    ("POST", "/v1/messages/batches", r#"{"requests":[]}"#, "batch", r#"Route::"/v1/messages/batches""#),
    ("GET", "https://api.anthropic.com/v1/models", "", "list_models", r#"Route::"/v1/models""#),
    ("GET", "https://api.anthropic.com/v1/models/claude-opus-4-1", "", "get_model", r#"Model::"claude-opus-4-1""#),
    // Gemini, v1beta and v1; Vertex AI, every publisher.
    ("POST", "/v1beta/models/gemini-2.0-flash:generateContent", GEMINI, "chat", r#"Model::"gemini-2.0-flash""#),
    ("POST", "/v1/models/gemini-2.0-flash:generateContent", GEMINI, "chat", r#"Model::"gemini-2.0-flash""#),
    ("POST", "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", GEMINI, "chat", r#"Model::"gemini-2.0-flash""#),
    ("POST", "/v1beta/models/gemini-2.0-flash:countTokens", GEMINI, "count_tokens", r#"Model::"gemini-2.0-flash""#),
    ("POST", "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:computeTokens", GEMINI, "count_tokens", r#"Model::"gemini-2.0-flash""#),
    ("POST", "/v1beta/models/text-embedding-004:embedContent", r#"{"content":{"parts":[{"text":"x"}]}}"#, "embed", r#"Model::"text-embedding-004""#),
    ("POST", "/v1beta/models/text-embedding-004:batchEmbedContents", r#"{"requests":[]}"#, "embed", r#"Model::"text-embedding-004""#),
    ("POST", "/v1/projects/p/locations/l/publishers/google/models/imagen-3.0:predict", r#"{"instances":[],"parameters":{"sampleCount":4}}"#, "predict", r#"Model::"imagen-3.0""#),
    ("POST", "/v1beta/models/veo-3.0:predictLongRunning", r#"{"instances":[]}"#, "predict", r#"Model::"veo-3.0""#),
    ("POST", "/v1/projects/p/locations/l/publishers/google/models/m:serverStreamingPredict", r#"{"inputs":[]}"#, "predict", r#"Model::"m""#),
    ("POST", "/v1/projects/p/locations/l/publishers/google/models/m:streamingPredict", r#"{"inputs":[]}"#, "predict", r#"Model::"m""#),
    ("POST", "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-opus-4-1@20250805:rawPredict", VERTEX_ANTHROPIC, "chat", r#"Model::"claude-opus-4-1@20250805""#),
    ("POST", "/v1beta1/projects/p/locations/us-east5/publishers/meta/models/llama-3.1-405b:streamRawPredict", r#"{"messages":[],"max_tokens":10}"#, "chat", r#"Model::"llama-3.1-405b""#),
    ("POST", "/v1beta/models/gemini-2.0-flash:batchGenerateContent", r#"{"batch":{}}"#, "batch", r#"Model::"gemini-2.0-flash""#),
    ("POST", "/v1beta/models/text-embedding-004:asyncBatchEmbedContent", r#"{"batch":{}}"#, "batch", r#"Model::"text-embedding-004""#),
    ("POST", "/v1beta/tunedModels/my-model-42:generateContent", GEMINI, "chat", r#"Model::"my-model-42""#),
    ("POST", "/v1beta/tunedModels/my-model-42:streamGenerateContent", GEMINI, "chat", r#"Model::"my-model-42""#),
    ("GET", "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent?key=k", "", "opaque_inference", r#"Route::"/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent""#),
    ("GET", "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained", "", "opaque_inference", r#"Route::"/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained""#),
    ("GET", "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent", "", "opaque_inference", r#"Route::"/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent""#),
    ("POST", "/v1/projects/p/locations/l/endpoints/openapi/chat/completions", r#"{"model":"google/gemini-2.0-flash","messages":[]}"#, "chat", r#"Model::"gemini-2.0-flash""#),
    ("POST", "/v1beta1/projects/p/locations/l/endpoints/openapi/embeddings", r#"{"model":"google/text-embedding-004","input":"x"}"#, "embed", r#"Model::"text-embedding-004""#),
    ("POST", "/v1/projects/p/locations/l/endpoints/123:predict", r#"{"instances":[]}"#, "opaque_inference", r#"Route::"/v1/projects/p/locations/l/endpoints/123:predict""#),
    ("POST", "/v1/projects/p/locations/l/endpoints/123:rawPredict", "{}", "opaque_inference", r#"Route::"/v1/projects/p/locations/l/endpoints/123:rawPredict""#),
    ("POST", "/v1/projects/p/locations/l/endpoints/123:streamRawPredict", "{}", "opaque_inference", r#"Route::"/v1/projects/p/locations/l/endpoints/123:streamRawPredict""#),
    ("POST", "/v1/projects/p/locations/l/endpoints/123:generateContent", "{}", "opaque_inference", r#"Route::"/v1/projects/p/locations/l/endpoints/123:generateContent""#),
    ("POST", "/v1/projects/p/locations/l/endpoints/123:streamGenerateContent", "{}", "opaque_inference", r#"Route::"/v1/projects/p/locations/l/endpoints/123:streamGenerateContent""#),
    ("POST", "/v1beta/cachedContents", r#"{"model":"models/gemini-2.0-flash","contents":[]}"#, "cache_content", r#"Model::"gemini-2.0-flash""#),
    ("GET", "/v1beta/models", "", "list_models", r#"Route::"/v1beta/models""#),
    ("GET", "/v1beta/tunedModels", "", "list_models", r#"Route::"/v1beta/tunedModels""#),
    ("GET", "/v1beta/models/gemini-2.0-flash", "", "get_model", r#"Model::"gemini-2.0-flash""#),
    ("GET", "/v1beta/tunedModels/my-model-42", "", "get_model", r#"Model::"my-model-42""#),
    // Bedrock: bare id, ARN (encoded), inference profile; async invoke.
    ("POST", "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke", INVOKE, "chat", r#"Model::"anthropic.claude-3-haiku-20240307-v1:0""#),
    ("POST", "/model/us.anthropic.claude-3-haiku-20240307-v1:0/invoke-with-response-stream", INVOKE, "chat", r#"Model::"anthropic.claude-3-haiku-20240307-v1:0""#),
    ("POST", "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Fanthropic.claude-3-haiku-20240307-v1%3A0/converse", CONVERSE, "chat", r#"Model::"anthropic.claude-3-haiku-20240307-v1:0""#),
    ("POST", "/model/arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0/converse-stream", CONVERSE, "chat", r#"Model::"anthropic.claude-3-haiku-20240307-v1:0""#),
    ("POST", "/model/anthropic.claude-3-haiku-20240307-v1:0/count-tokens", r#"{"input":{}}"#, "count_tokens", r#"Model::"anthropic.claude-3-haiku-20240307-v1:0""#),
    ("POST", "/async-invoke", r#"{"modelId":"amazon.nova-reel-v1:0","modelInput":{},"outputDataConfig":{}}"#, "chat", r#"Model::"amazon.nova-reel-v1:0""#),
    // Bedrock Agent Runtime (no shipped route: read as on a `bedrock` route).
    ("POST", "/retrieveAndGenerate", RAG, "chat", r#"Model::"anthropic.claude-3-haiku-20240307-v1:0""#),
    ("POST", "/retrieveAndGenerateStream", RAG_EXTERNAL, "chat", r#"Model::"anthropic.claude-3-haiku-20240307-v1:0""#),
    // Model servers (no shipped route: on no route, read as on an `openai`
    // route; or under `/openai/` and `/v1/`, which are `openai` routes).
    ("POST", "/v2/models/resnet50/infer", r#"{"inputs":[]}"#, "predict", r#"Model::"resnet50""#),
    ("POST", "/v1/v2/models/resnet50/versions/2/infer", r#"{"inputs":[]}"#, "predict", r#"Model::"resnet50""#),
    ("POST", "/v2/models/llama-3-8b/generate", r#"{"text_input":"hi"}"#, "complete", r#"Model::"llama-3-8b""#),
    ("POST", "/v2/models/llama-3-8b/versions/1/generate", r#"{"text_input":"hi"}"#, "complete", r#"Model::"llama-3-8b""#),
    ("POST", "/v2/models/llama-3-8b/generate_stream", r#"{"text_input":"hi"}"#, "complete", r#"Model::"llama-3-8b""#),
    ("POST", "/openai/v2/models/llama-3-8b/versions/1/generate_stream", r#"{"text_input":"hi"}"#, "complete", r#"Model::"llama-3-8b""#),
    ("POST", "/openai/v1/models/sklearn-iris:predict", r#"{"instances":[]}"#, "predict", r#"Model::"sklearn-iris""#),
    ("POST", "/kserve/v1/models/sklearn-iris:explain", r#"{"instances":[]}"#, "predict", r#"Model::"sklearn-iris""#),
    ("POST", "/predictions/densenet161", "\u{89}PNG", "predict", r#"Model::"densenet161""#),
    ("POST", "/predictions/densenet161/2.0", "x", "predict", r#"Model::"densenet161""#),
    ("PUT", "/predictions/densenet161", "x", "predict", r#"Model::"densenet161""#),
    ("PUT", "/predictions/densenet161/2.0", "x", "predict", r#"Model::"densenet161""#),
    ("POST", "/explanations/densenet161", "x", "predict", r#"Model::"densenet161""#),
    ("POST", "/explanations/densenet161/2.0", "x", "predict", r#"Model::"densenet161""#),
    ("POST", "/endpoints/llm-prod/invocations", r#"{"inputs":"hi"}"#, "predict", r#"Model::"llm-prod""#),
    ("POST", "/endpoints/llm-prod/invocations-response-stream", r#"{"inputs":"hi"}"#, "predict", r#"Model::"llm-prod""#),
    ("POST", "/openai/endpoints/gpt-4o-mini-prod/async-invocations", "", "predict", r#"Model::"gpt-4o-mini""#),
    ("POST", "/client/v4/accounts/0123abc/ai/run/@cf/meta/llama-3-8b-instruct", r#"{"prompt":"hi"}"#, "predict", r#"Model::"@cf/meta/llama-3-8b-instruct""#),
];

#[test]
fn every_endpoint_row_has_a_sample() {
    let routes = shipped_routes();
    for table in [
        endpoints::OPENAI,
        endpoints::ANTHROPIC,
        endpoints::GEMINI,
        endpoints::BEDROCK,
    ] {
        for row in table {
            // Bedrock Agent Runtime has no shipped route: off every route it
            // is read as on a `bedrock` route.
            let unrouted = row.endpoint.starts_with("retrieveAndGenerate");
            let covered = SAMPLES.iter().any(|(m, p, ..)| {
                let req = request(m, p, "", &[]);
                (unrouted || routes.find(&req).is_some())
                    && endpoints::find(table, &req.method, &req.path)
                        .is_some_and(|found| std::ptr::eq(found.endpoint, row))
            });
            assert!(covered, "no sample for {row:?}");
        }
    }
    // The model servers have no shipped route: a sample on no route (read as
    // on an `openai` route) covers a row as well.
    for row in endpoints::SERVING {
        let covered = SAMPLES.iter().any(|(m, p, ..)| {
            let req = request(m, p, "", &[]);
            // By value: a `const` table used in two places need not be one
            // array in memory, and no two rows are equal.
            endpoints::find(endpoints::SERVING, &req.method, &req.path)
                .is_some_and(|found| found.endpoint == row)
        });
        assert!(covered, "no sample for {row:?}");
    }
}

#[test]
fn every_sample_classifies_as_expected() {
    let routes = shipped_routes();
    for (method, path, body, action, resource) in SAMPLES {
        let req = request(method, path, body, &[]);
        let got = outcome(&req, &routes);
        let want = vec![(format!("Action::\"{action}\""), (*resource).to_owned())];
        assert_eq!(got, Ok(want), "{method} {path}");
    }
    // One model, one entity: the Bedrock spellings above all name `HAIKU`.
    assert!(SAMPLES.iter().filter(|s| s.4.contains(HAIKU)).count() >= 4);
}

/// Spellings that mean the same request to every upstream: classified as the
/// original.
fn same_meaning(path: &str) -> Vec<String> {
    let (p, q) = path
        .split_once('?')
        .map_or((path, None), |(p, q)| (p, Some(q)));
    let with_query = |p: String| match q {
        Some(q) => format!("{p}?{q}"),
        None => p,
    };
    let mut out = vec![
        with_query(p.to_ascii_uppercase()),
        with_query(format!("/{p}")),
        with_query(p.replacen('/', "//", 2)),
        with_query(format!("{p}/")),
    ];
    // Each letter of the last segment percent-encoded, in both hex cases.
    let last = p.rfind('/').unwrap_or(0) + 1;
    if let Some((i, c)) = p[last..]
        .char_indices()
        .find(|(_, c)| c.is_ascii_alphabetic())
    {
        let at = last + i;
        for enc in [format!("%{:02X}", c as u32), format!("%{:02x}", c as u32)] {
            out.push(with_query(format!("{}{enc}{}", &p[..at], &p[at + 1..])));
        }
    }
    out.push(match q {
        Some(q) => format!("{p}?{q}&x=%2F..%2F"),
        None => format!("{p}?x=/../admin"),
    });
    out
}

/// Spellings that two upstreams could route differently: refused.
fn ambiguous(path: &str) -> Vec<String> {
    let p = path.split('?').next().unwrap_or(path);
    let mid = p[1..].find('/').map_or(p.len(), |i| i + 1);
    let (head, tail) = p.split_at(mid);
    let mut out = vec![
        format!("{head}%2F{}", tail.trim_start_matches('/')),
        format!("{head}%2f{}", tail.trim_start_matches('/')),
        format!("{head}\\{}", tail.trim_start_matches('/')),
        format!("{head}%5C{}", tail.trim_start_matches('/')),
        format!("{head};x=y{tail}"),
        format!("{head}%3Bx{tail}"),
        format!("{head}/.{tail}"),
        format!("{head}/x/..{tail}"),
        format!("{head}/%2e{tail}"),
        format!("{head}/x/%2E%2e{tail}"),
        format!("{p}%00"),
        format!("{p}%0A"),
        format!("{p}%0d%0a"),
        format!("{p}%09"),
        format!("{p}\t"),
        format!("{p}%20"),
        format!("{p} "),
        format!("{p}%C2%A0"),
        format!("{p}%E2%80%8B%E2%80%A8"),
        format!("{p}#frag"),
        format!("{p}%23frag"),
        format!("{head}%252F{}", tail.trim_start_matches('/')),
        format!("{p}%3Fx"),
        format!("{p}%"),
        format!("{p}%G1"),
    ];
    out.retain(|s| s != p);
    out
}

#[test]
fn spellings_classify_as_the_original_or_are_refused() {
    let routes = shipped_routes();
    let mut checked = 0;
    for (method, sample, body, ..) in SAMPLES {
        let original = outcome(&request(method, sample, body, &[]), &routes);
        // Spell the path; keep the sample's host.
        let origin_len = sample.strip_prefix("https://").map_or(0, |rest| {
            "https://".len() + rest.find('/').unwrap_or(rest.len())
        });
        let (origin, path) = sample.split_at(origin_len);
        let same = same_meaning(path)
            .into_iter()
            .map(|p| format!("{origin}{p}"));
        let refused = ambiguous(path).into_iter().map(|p| format!("{origin}{p}"));
        for spelled in same {
            let got = outcome(&request(method, &spelled, body, &[]), &routes);
            // Route resources keep the path's spelling of case and slashes.
            let got = got.map(lower_routes);
            let want = original.clone().map(lower_routes);
            assert_eq!(got, want, "{method} {spelled} (spelling of {path})");
            checked += 1;
        }
        for spelled in refused {
            let got = outcome(&request(method, &spelled, body, &[]), &routes);
            // Bedrock defines `%2F` in its model segment only: anywhere else it
            // is refused like on every other route.
            assert!(
                matches!(got, Err(Reason::PathNotCanonical)),
                "{method} {spelled:?} (spelling of {path}): {got:?}"
            );
            checked += 1;
        }
        for header in METHOD_OVERRIDE_HEADERS {
            let got = outcome(&request(method, sample, body, &[(header, "GET")]), &routes);
            assert_eq!(got, Err(Reason::MethodOverride), "{header} on {path}");
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked}");
}

/// Route resources keep the path's case; compare them case-insensitively.
fn lower_routes(ops: Vec<(String, String)>) -> Vec<(String, String)> {
    ops.into_iter()
        .map(|(a, r)| {
            let r = if r.starts_with("Route::") {
                r.to_ascii_lowercase()
            } else {
                r
            };
            (a, r.trim_end_matches('"').trim_end_matches('/').to_owned())
        })
        .collect()
}

#[test]
fn unknown_endpoints_on_provider_routes_are_unclassified() {
    let routes = shipped_routes();
    for (method, path, body) in [
        ("POST", "/v1/files", "x"),
        ("GET", "/v1/files/file-1/content", ""),
        ("POST", "/v1/chat/completions/cmpl_1", "{}"),
        ("DELETE", "/v1/models/ft:gpt-4o:org", ""),
        ("PUT", "/v1/chat/completions", CHAT),
        ("GET", "/v1/chat/completions", ""),
        ("POST", "/v1/Chat/Completion", CHAT),
        (
            "POST",
            "/v1beta/models/gemini-2.0-flash:unknownVerb",
            GEMINI,
        ),
        (
            "POST",
            "/v1/projects/p/locations/l/publishers/google/models/x:somethingNew",
            "{}",
        ),
        (
            "GET",
            "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke",
            "",
        ),
        (
            "POST",
            "/model/anthropic.claude-3-haiku-20240307-v1:0/other",
            INVOKE,
        ),
        ("GET", "/async-invoke", ""),
        ("POST", "/openai/deployments/gpt4/files", "{}"),
        ("PATCH", "/v1/messages", ANTHROPIC),
    ] {
        let got = outcome(&request(method, path, body, &[]), &routes);
        // A body naming a model makes the model the resource.
        let resource = match serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|b| b.get("model").and_then(|m| m.as_str()).map(str::to_owned))
        {
            Some(model) => format!("Model::\"{model}\""),
            None => format!("Route::\"{path}\""),
        };
        let want = vec![("Action::\"unclassified\"".to_owned(), resource)];
        assert_eq!(got, Ok(want), "{method} {path}");
    }
    // MCP: unknown methods (JSON-RPC or HTTP) are unclassified too.
    for (method, body) in [
        (
            "POST",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/execute","params":{"name":"x"}}"#,
        ),
        (
            "PUT",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#,
        ),
    ] {
        let got = outcome(&request(method, "/mcp/files", body, &[]), &routes).unwrap();
        assert_eq!(got[0].0, "Action::\"unclassified\"", "{method} {body}");
    }
}

#[test]
fn model_calls_off_every_route_are_read_as_model_calls() {
    let routes = shipped_routes();
    let run = |method: &str, path: &str, body: &str| {
        outcome(
            &request(method, path, body, &[("upgrade", "websocket")]),
            &routes,
        )
    };
    // A provider endpoint's path on no route is read as on the provider's
    // route: the same operation (or refusal) as its routed spelling.
    for (method, unrouted, routed, body) in [
        ("POST", "/chat/completions", "/v1/chat/completions", CHAT),
        (
            "POST",
            "/api/v2/chat/completions",
            "/v1/chat/completions",
            CHAT,
        ),
        (
            "POST",
            "/api/v2/embeddings",
            "/v1/embeddings",
            r#"{"model":"o1","input":"x"}"#,
        ),
        ("POST", "/api/v2/embeddings", "/v1/embeddings", "{}"),
        ("POST", "/anthropic/v1/messages", "/v1/messages", ANTHROPIC),
        (
            "POST",
            "/google/models/gemini-2.0-flash:generateContent",
            "/v1beta/models/gemini-2.0-flash:generateContent",
            GEMINI,
        ),
        (
            "POST",
            "/bedrock/model/anthropic.claude-3-haiku-20240307-v1:0/invoke",
            "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke",
            INVOKE,
        ),
        (
            "GET",
            "/live/realtime?model=o1",
            "/v1/realtime?model=o1",
            "",
        ),
    ] {
        let got = run(method, unrouted, body);
        let want = run(method, routed, body);
        assert_eq!(got, want, "{method} {unrouted} vs {routed}");
        // Without a route table every request is plain HTTP, as before.
        let got = outcome(&request(method, unrouted, body, &[]), &Routes::default()).unwrap();
        assert_eq!(got[0].0, "Action::\"http\"", "{method} {unrouted}");
    }
    // Anything else that looks like a model call or an MCP message is
    // unclassified, on the model it names if any.
    for (method, path, body, resource) in [
        (
            "POST",
            "/api/chat",
            r#"{"model":"o1","messages":[]}"#,
            r#"Model::"o1""#,
        ),
        (
            "POST",
            "/api/generate",
            r#"{"Model":"O1","prompt":"x"}"#,
            r#"Model::"o1""#,
        ),
        (
            "POST",
            "/rerank",
            r#"{"model":"bge","query":"q"}"#,
            r#"Model::"bge""#,
        ),
        (
            "POST",
            "/api/chat?model=o1",
            r#"{"messages":[]}"#,
            r#"Model::"o1""#,
        ),
        (
            "POST",
            "/api/chat?model=o1",
            r#"{"model":"O1"}"#,
            r#"Model::"o1""#,
        ),
        (
            "GET",
            "/socket?model=gpt-4o-realtime",
            "",
            r#"Model::"gpt-4o-realtime""#,
        ),
        (
            "POST",
            "/mcp",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"Route::"/mcp""#,
        ),
    ] {
        let got = run(method, path, body);
        let want = vec![("Action::\"unclassified\"".to_owned(), resource.to_owned())];
        assert_eq!(got, Ok(want), "{method} {path} {body}");
    }
    // Refused: two models, or a body that cannot be read far enough to rule one out.
    for (path, body, reason) in [
        (
            "/api/chat?model=o1",
            r#"{"model":"gpt-4o-mini"}"#,
            Reason::ModelAmbiguous,
        ),
        (
            "/api/chat",
            r#"{"model":"gpt-4o-mini","MODEL":"o1"}"#,
            Reason::ModelAmbiguous,
        ),
        (
            "/api/tasks",
            r#"{"padding":"cut by en"#,
            Reason::BodyInvalid,
        ),
        (
            "/api/tasks",
            r#"{"model":{"id":"o1"}}"#,
            Reason::BodyInvalid,
        ),
    ] {
        assert_eq!(run("POST", path, body), Err(reason), "{path} {body}");
    }
    // Plain requests off every route stay plain HTTP.
    for (method, path, body) in [
        ("GET", "/healthz", ""),
        (
            "POST",
            "/api/tasks",
            r#"{"name":"x","spec":{"model":"nested"}}"#,
        ),
        ("GET", "/v2/models", ""),
        ("GET", "/v2/models/o1", ""),
    ] {
        let got = outcome(&request(method, path, body, &[]), &routes).unwrap();
        assert_eq!(got[0].0, "Action::\"http\"", "{method} {path}");
    }
}

#[test]
fn a_model_in_the_query_must_be_the_request_model() {
    let routes = shipped_routes();
    let run = |path: &str, body: &str| outcome(&request("POST", path, body, &[]), &routes);
    // A run without a body model, but `?model=` for servers that read the query.
    for (path, body) in [
        (
            "/v1/threads/thread_1/runs?model=o1",
            r#"{"assistant_id":"asst_1"}"#,
        ),
        (
            "/v1/threads/thread_1/runs?Model=o1",
            r#"{"assistant_id":"asst_1"}"#,
        ),
        ("/v1/chat/completions?model=o1", CHAT),
        (
            "/v1beta/models/gemini-2.0-flash:generateContent?model=gemini-2.5-pro",
            GEMINI,
        ),
        (
            "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke?modelId=o1",
            INVOKE,
        ),
        ("/v1/files?model=o1", "{}"),
        ("/v1/realtime/calls?model=gpt-realtime&MODEL=o1", "v=0"),
        // A model named in the path before the endpoint (LiteLLM reads it, and
        // it wins over the body's).
        ("/v1/engines/o1/x/chat/completions", CHAT),
        ("/openai/deployments/azure/o1/chat/completions", CHAT),
        ("/v1/Models/o1/chat/completions", CHAT),
        ("/openai/endpoints/123/chat/completions", CHAT),
        ("/openai/model/o1/v1/chat/completions", CHAT),
        (
            "/openai/tunedModels/o1/v1/embeddings",
            r#"{"model":"emb","input":"x"}"#,
        ),
    ] {
        assert_eq!(run(path, body), Err(Reason::ModelAmbiguous), "{path}");
    }
    // The same model in both places, in any spelling, is one request.
    for (path, body) in [
        ("/v1/chat/completions?model=GPT-4o-mini", CHAT),
        (
            "/openai/deployments/gpt-4o-mini-prod/chat/completions?deployment=gpt-4o-mini",
            "{}",
        ),
        (
            "/v1beta/models/gemini-2.0-flash:generateContent?key=k&alt=sse",
            GEMINI,
        ),
    ] {
        assert!(run(path, body).is_ok(), "{path}");
    }
}

#[test]
fn bad_model_and_tool_names_are_refused() {
    let routes = shipped_routes();
    for (path, body) in [
        (
            "/v1/chat/completions",
            r#"{"model":"o1\u0000","messages":[]}"#,
        ),
        ("/v1/chat/completions", r#"{"model":" o1","messages":[]}"#),
        ("/v1/chat/completions", r#"{"model":"o1\n","messages":[]}"#),
        ("/v1beta/models/gemini%C2%A0:generateContent", GEMINI),
        ("/model/%E2%80%8Banthropic.claude/invoke", INVOKE),
        (
            "/mcp/files",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file\u0000"}}"#,
        ),
        (
            "/mcp/files",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file "}}"#,
        ),
    ] {
        let got = outcome(&request("POST", path, body, &[]), &routes);
        assert!(
            matches!(got, Err(Reason::NameInvalid | Reason::PathNotCanonical)),
            "{path} {body}: {got:?}"
        );
    }
}

#[test]
fn model_spellings_are_one_entity() {
    let routes = shipped_routes();
    let resource = |path: &str, body: &str| {
        outcome(&request("POST", path, body, &[]), &routes).unwrap()[0]
            .1
            .clone()
    };
    let o1 = r#"Model::"o1""#;
    assert_eq!(
        resource("/v1/chat/completions", r#"{"model":"O1","messages":[]}"#),
        o1
    );
    assert_eq!(
        resource("/v1/chat/completions", r#"{"model":"o1","messages":[]}"#),
        o1
    );
    let flash = r#"Model::"gemini-2.0-flash""#;
    assert_eq!(
        resource("/v1beta/models/Gemini-2.0-Flash:generateContent", GEMINI),
        flash
    );
    assert_eq!(
        resource("/v1beta/models/gemini%2D2.0-flash:generateContent", GEMINI),
        flash
    );
    assert_eq!(
        resource(
            "/openai/deployments/GPT-4o-mini-PROD/chat/completions",
            "{}"
        ),
        r#"Model::"gpt-4o-mini""#
    );
}

#[test]
fn prompt_controls_that_multiply() {
    let routes = shipped_routes();
    let ai = |path: &str, body: &str| {
        let ops = classify(&request("POST", path, body, &[]), &routes).unwrap();
        let op = ops.into_iter().next().unwrap();
        let get = |name: &str| match op.field(name) {
            Some(Value::Long(n)) => Some(*n),
            _ => None,
        };
        let effort = match op.field("reasoning_effort") {
            Some(Value::Str(s)) => Some(s.clone()),
            _ => None,
        };
        (
            get("choices"),
            get("total_output_tokens"),
            get("thinking_budget_tokens"),
            effort,
        )
    };
    assert_eq!(
        ai(
            "/v1/chat/completions",
            r#"{"model":"m","max_tokens":4000,"n":50}"#
        ),
        (Some(50), Some(200_000), None, None)
    );
    assert_eq!(
        ai(
            "/v1/completions",
            r#"{"model":"m","max_tokens":100,"n":2,"best_of":5}"#
        ),
        (Some(5), Some(500), None, None)
    );
    assert_eq!(
        ai(
            "/v1/chat/completions",
            r#"{"model":"m","max_completion_tokens":10,"reasoning_effort":"HIGH"}"#
        ),
        (Some(1), Some(10), None, Some("high".into()))
    );
    assert_eq!(
        ai(
            "/v1/responses",
            r#"{"model":"m","max_output_tokens":10,"reasoning":{"effort":"low"}}"#
        ),
        (Some(1), Some(10), None, Some("low".into()))
    );
    assert_eq!(
        ai(
            "/v1/messages",
            r#"{"model":"m","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":1024}}"#
        ),
        (Some(1), Some(2000), Some(1024), None)
    );
    assert_eq!(
        ai(
            "/v1beta/models/g:generateContent",
            r#"{"generationConfig":{"maxOutputTokens":1000,"candidateCount":8,"thinkingConfig":{"thinkingBudget":512}}}"#
        ),
        (Some(8), Some(8000), Some(512), None)
    );
    assert_eq!(
        ai(
            "/model/m.x/converse",
            r#"{"inferenceConfig":{"maxTokens":100},"additionalModelRequestFields":{"thinking":{"budget_tokens":64}}}"#
        ),
        (Some(1), Some(100), Some(64), None)
    );
    assert_eq!(
        ai(
            "/v1/chat/completions",
            r#"{"model":"m","max_tokens":9223372036854775807,"n":3}"#
        ),
        (Some(3), Some(i64::MAX), None, None)
    );
    // A negative limit is no limit where a server takes it (Ollama,
    // llama.cpp, LM Studio `-1`; Gemini's dynamic `thinkingBudget: -1`):
    // never under a cap, and never hiding a smaller field's limit.
    assert_eq!(
        ai("/v1/chat/completions", r#"{"model":"m","max_tokens":-1}"#),
        (Some(1), Some(i64::MAX), None, None)
    );
    assert_eq!(
        ai(
            "/v1/chat/completions",
            r#"{"model":"m","max_tokens":100,"max_completion_tokens":-2}"#
        ),
        (Some(1), Some(i64::MAX), None, None)
    );
    assert_eq!(
        ai(
            "/v1beta/models/g:generateContent",
            r#"{"generationConfig":{"maxOutputTokens":100,"thinkingConfig":{"thinkingBudget":-1}}}"#
        ),
        (Some(1), Some(100), Some(i64::MAX), None)
    );
    // Mistyped multipliers are refused, not ignored.
    for body in [
        r#"{"model":"m","n":"50"}"#,
        r#"{"model":"m","reasoning":"high"}"#,
    ] {
        assert!(
            classify(&request("POST", "/v1/chat/completions", body, &[]), &routes).is_err(),
            "{body}"
        );
    }
}

fn provider_or_mcp_path() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec![
        "/v1/",
        "/V1/",
        "/openai/",
        "/v1beta/",
        "/v1alpha/",
        "/v1/projects/p/",
        "/v1beta1/",
        "/model/",
        "/async-invoke",
        "/mcp/files",
        "/mcp/github/",
        "/v1/messages",
        "/ws/",
        "/v1/models/",
    ]);
    (prefix, "[a-zA-Z0-9/:._%;~-]{0,40}").prop_map(|(p, rest)| format!("{p}{rest}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// On a provider or MCP route nothing is ever plain `http`; refused or
    /// not, classification never panics; the canonical path is a fixed point.
    #[test]
    fn provider_routes_never_answer_plain_http(
        method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
        path in provider_or_mcp_path(),
        body in prop::sample::select(vec!["", "{}", CHAT, GEMINI, r#"{"jsonrpc":"2.0","id":1,"method":"x"}"#]),
    ) {
        let routes = shipped_routes();
        let req = request(method, &path, body, &[]);
        if let Some(route) = routes.find(&req)
            && let Ok(ops) = classify(&req, &routes)
        {
            for op in ops {
                prop_assert!(
                    route.protocol == Protocol::Http || op.action.to_string() != "Action::\"http\"",
                    "{} {} -> {}", method, path, op.action
                );
            }
        }
        if req.target_error.is_none() {
            let mut again = req.clone();
            again.canonicalize();
            prop_assert_eq!(&again.path, &req.path);
            prop_assert!(again.target_error.is_none());
        }
    }
}

/// A key that Go's `encoding/json` takes for one the gate reads (it folds
/// case, also U+212A KELVIN SIGN to `k` and U+017F LONG S to `s`, and keeps
/// the last match) is refused: a Go upstream (Ollama, Go MCP servers, Go
/// OpenAI-compatible gateways) would run the other model, tool or limit.
#[test]
fn keys_go_reads_as_another_are_refused() {
    let routes = shipped_routes();
    for (path, body) in [
        // Two spellings of one field: Go keeps the last.
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","Model":"o1","messages":[]}"#,
        ),
        (
            "/v1/chat/completions",
            r#"{"MODEL":"o1","model":"gpt-4o-mini","messages":[]}"#,
        ),
        // One spelling the gate does not read: Go sets the field from it.
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[],"MAX_TOKENS":100000}"#,
        ),
        (
            "/v1/chat/completions",
            "{\"model\":\"gpt-4o-mini\",\"messages\":[],\"max_to\u{212A}ens\":100000}",
        ),
        (
            "/v1/chat/completions",
            "{\"model\":\"gpt-4o-mini\",\"messages\":[],\"\u{17F}tream\":true}",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[],"n":1,"N":50}"#,
        ),
        (
            "/v1/chat/completions",
            "{\"model\":\"gpt-4o-mini\",\"messages\":[],\"max_complet\u{131}on_tokens\":100000}",
        ),
        ("/v1/threads/t1/runs", r#"{"Model":"gpt-4o-mini"}"#),
        (
            "/v1/messages",
            r#"{"model":"claude-3-5-haiku-latest","max_tokens":100,"Max_Tokens":100000,"messages":[]}"#,
        ),
        (
            "/v1beta/models/gemini-2.0-flash:generateContent",
            r#"{"contents":[],"generationConfig":{"maxOutputTokens":100,"MaxOutputTokens":100000}}"#,
        ),
        (
            "/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
            r#"{"messages":[],"inferenceConfig":{"maxTokens":100,"MaxTokens":100000}}"#,
        ),
        // MCP: the tool, the method, the params.
        (
            "/mcp/github",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_code","Name":"delete_repository"}}"#,
        ),
        (
            "/mcp/github",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"delete_repository"}}"#,
        ),
        (
            "/mcp/github",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"search_code\"},\"param\u{17F}\":{\"name\":\"delete_repository\"}}",
        ),
        (
            "/mcp/github",
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping","METHOD":"tools/call","params":{"name":"delete_repository"}}]"#,
        ),
    ] {
        let got = outcome(&request("POST", path, body, &[]), &routes);
        assert_eq!(got, Err(Reason::BodyInvalid), "{path} {body}");
    }
    // Objects the gate does not read keep whatever keys they have.
    for (path, body, expected) in [
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"Name":{},"name":{}}}}}]}"#,
            r#"Model::"gpt-4o-mini""#,
        ),
        (
            "/mcp/github",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_code","arguments":{"Path":"a","path":"b"}}}"#,
            r#"Tool::"github/search_code""#,
        ),
    ] {
        let got = outcome(&request("POST", path, body, &[]), &routes).unwrap();
        assert_eq!(got[0].1, expected, "{path} {body}");
    }
    // Off every route, `jsonrpc` spelled with U+017F is still an MCP message.
    let got = outcome(
        &request(
            "POST",
            "/agent/rpc",
            "{\"j\u{17F}onrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}",
            &[],
        ),
        &routes,
    )
    .unwrap();
    assert_eq!(got[0].0, r#"Action::"unclassified""#);
}

/// Models a server falls back to when the request's model fails (OpenRouter
/// `models`, LiteLLM `fallbacks`) must be the request's model: a caller can
/// make the first one fail on purpose.
#[test]
fn fallback_models_must_be_the_request_model() {
    let routes = shipped_routes();
    for body in [
        r#"{"model":"gpt-4o-mini","messages":[],"models":["gpt-4o-mini","o1"]}"#,
        r#"{"model":"gpt-4o-mini","messages":[],"fallbacks":["o1"],"mock_testing_fallbacks":true}"#,
        r#"{"model":"gpt-4o-mini","messages":[],"fallbacks":[{"model":"o1"}]}"#,
    ] {
        let got = outcome(&request("POST", "/v1/chat/completions", body, &[]), &routes);
        assert_eq!(got, Err(Reason::ModelAmbiguous), "{body}");
    }
    for body in [
        r#"{"model":"gpt-4o-mini","messages":[],"models":"o1"}"#,
        r#"{"model":"gpt-4o-mini","messages":[],"fallbacks":[{"name":"o1"}]}"#,
        r#"{"model":"gpt-4o-mini","messages":[],"fallbacks":[1]}"#,
    ] {
        let got = outcome(&request("POST", "/v1/chat/completions", body, &[]), &routes);
        assert_eq!(got, Err(Reason::BodyInvalid), "{body}");
    }
    for (path, body) in [
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[],"models":["GPT-4o-mini"],"fallbacks":[]}"#,
        ),
        (
            "/openai/deployments/gpt-4o-mini-prod/chat/completions",
            r#"{"messages":[],"fallbacks":["gpt-4o-mini"]}"#,
        ),
    ] {
        let got = outcome(&request("POST", path, body, &[]), &routes).unwrap();
        assert_eq!(got[0].1, r#"Model::"gpt-4o-mini""#, "{body}");
    }
}

/// Names a policy looks for are never cut off: more tools offered, or more
/// MCP argument names, than the context holds are refused, so a `path`
/// argument or a forbidden tool cannot hide behind 128 others.
#[test]
fn names_past_the_bound_are_refused_not_cut() {
    let routes = shipped_routes();
    let tools = |n: usize| {
        (0..n)
            .map(|i| format!(r#"{{"type":"function","function":{{"name":"t{i}"}}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    };
    let chat = |n| {
        format!(
            r#"{{"model":"gpt-4o-mini","messages":[],"tools":[{}]}}"#,
            tools(n)
        )
    };
    let ok = outcome(
        &request("POST", "/v1/chat/completions", &chat(128), &[]),
        &routes,
    );
    assert!(ok.is_ok(), "{ok:?}");
    assert_eq!(
        outcome(
            &request("POST", "/v1/chat/completions", &chat(129), &[]),
            &routes
        ),
        Err(Reason::BodyInvalid)
    );
    let args = |n: usize| {
        (0..n)
            .map(|i| format!(r#""a{i:03}":1"#))
            .chain(std::iter::once(r#""path":"/etc/passwd""#.to_owned()))
            .collect::<Vec<_>>()
            .join(",")
    };
    let call = |n| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"search_code","arguments":{{{}}}}}}}"#,
            args(n)
        )
    };
    let ok = classify(&request("POST", "/mcp/github", &call(127), &[]), &routes).unwrap();
    assert!(ok[0].strings("argument_names").contains(&"path".to_owned()));
    assert_eq!(
        outcome(&request("POST", "/mcp/github", &call(128), &[]), &routes),
        Err(Reason::BodyInvalid)
    );
}

/// A model named in the query or an urlencoded form in a spelling some
/// servers read and others do not (`;` separators: python-multipart behind
/// Starlette forms, Rack 2, old Go; `model[]`: PHP, Rails) is refused.
#[test]
fn query_models_servers_read_differently_are_refused() {
    let routes = shipped_routes();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    for (path, body, headers) in [
        ("/api/chat?a=1;model=o1", r#"{"messages":[]}"#, &[][..]),
        ("/v1/realtime?x=1;model=o1", "", &[][..]),
        (
            "/v1/chat/completions?model[]=o1",
            r#"{"model":"gpt-4o-mini","messages":[]}"#,
            &[][..],
        ),
        ("/agent/upload", "a=1;model=o1", &form[..]),
    ] {
        let method = if path.starts_with("/v1/realtime") {
            "GET"
        } else {
            "POST"
        };
        let got = outcome(&request(method, path, body, headers), &routes);
        assert_eq!(got, Err(Reason::ModelAmbiguous), "{path} {body}");
    }
}

/// Gemini's `v1alpha` is a provider route: a method cedar-gate does not know
/// there is `unclassified`, never plain `http`.
#[test]
fn gemini_v1alpha_is_a_provider_route() {
    let routes = shipped_routes();
    for (path, action) in [
        ("/v1alpha/models/o1:generateContent", r#"Action::"chat""#),
        (
            "/v1alpha/models/o1:generateAnswer",
            r#"Action::"unclassified""#,
        ),
        (
            "/v1alpha/models/o1:bidiGenerateContent",
            r#"Action::"unclassified""#,
        ),
    ] {
        let got = outcome(&request("POST", path, GEMINI, &[]), &routes).unwrap();
        assert_eq!(got[0].0, action, "{path}");
    }
}

/// A model server's path names its model on any route and off every route:
/// the row's method is classified on it; any other method, or the path on a
/// route of another protocol, is `unclassified` on that model (a deny-list's
/// forbid on the model holds); a model named elsewhere as well must agree.
#[test]
fn model_servers_paths_name_their_model() {
    let routes = shipped_routes();
    let run =
        |method: &str, path: &str, body: &str| outcome(&request(method, path, body, &[]), &routes);
    let unclassified = |model: &str| {
        Ok(vec![(
            "Action::\"unclassified\"".to_owned(),
            format!("Model::\"{model}\""),
        )])
    };
    for (method, path, body, model) in [
        // Methods no row lists.
        ("GET", "/predictions/densenet161", "", "densenet161"),
        ("PATCH", "/v2/models/resnet50/infer", "{}", "resnet50"),
        ("DELETE", "/endpoints/llm-prod/invocations", "", "llm-prod"),
        ("PUT", "/v1/v2/models/Resnet50/infer", "{}", "resnet50"),
        // On a `gemini` route (`/v1/models/*`), whose table has no `:explain`.
        (
            "POST",
            "/v1/models/sklearn-iris:explain",
            r#"{"instances":[]}"#,
            "sklearn-iris",
        ),
        // On an `anthropic` route.
        ("POST", "/v1/messages/predictions/o1", "{}", "o1"),
        // Encoded, cased, doubled slashes, trailing slash: one model.
        ("GET", "//predictions//%64ensenet161/", "", "densenet161"),
        (
            "GET",
            "/AI/RUN/@CF/Meta/Llama-3-8b-Instruct",
            "",
            "@cf/meta/llama-3-8b-instruct",
        ),
    ] {
        assert_eq!(
            run(method, path, body),
            unclassified(model),
            "{method} {path}"
        );
    }
    // The path's model and another one: refused, whichever a server reads.
    for (method, path, body) in [
        ("POST", "/v2/models/resnet50/infer?model=o1", "{}"),
        ("GET", "/predictions/densenet161", r#"{"model":"o1"}"#),
        (
            "POST",
            "/v1/models/sklearn-iris:explain",
            r#"{"model":"o1"}"#,
        ),
        // A model server's model before another endpoint.
        ("POST", "/ai/run/@cf/x/chat/completions", CHAT),
        ("POST", "/predictions/a/predictions/b", "x"),
        ("POST", "/v2/models/a/versions/1/x/models/b/infer", "x"),
    ] {
        assert_eq!(
            run(method, path, body),
            Err(Reason::ModelAmbiguous),
            "{method} {path}"
        );
    }
    // Plain paths that only resemble them stay plain HTTP.
    for (method, path) in [
        ("GET", "/v2/models/resnet50"),
        ("GET", "/v2/models/resnet50/ready"),
        ("POST", "/ai/run"),
        ("GET", "/predictions"),
    ] {
        let got = run(method, path, "").unwrap();
        assert_eq!(got[0].0, "Action::\"http\"", "{method} {path}");
    }
    // A SageMaker header selecting a model inside the endpoint: refused, as
    // the model that runs is not the one the path names.
    for header in [
        "X-Amzn-SageMaker-Target-Model",
        "x-amzn-sagemaker-inference-component",
    ] {
        let req = request(
            "POST",
            "/endpoints/llm-prod/invocations",
            "{}",
            &[(header, "m2.tar.gz")],
        );
        assert_eq!(
            outcome(&req, &routes),
            Err(Reason::ModelAmbiguous),
            "{header}"
        );
    }
    // KServe v1 on an `openai` route; off every route, Gemini's row (the same
    // operation); `GET /v1/models/{m}` stays OpenAI's model lookup.
    assert_eq!(
        run("POST", "/kserve/v1/models/Sklearn-Iris:predict", "{}"),
        Ok(vec![(
            "Action::\"predict\"".to_owned(),
            "Model::\"sklearn-iris\"".to_owned()
        )])
    );
    assert_eq!(
        run("GET", "/v1/models/gpt-4o", ""),
        Ok(vec![(
            "Action::\"get_model\"".to_owned(),
            "Model::\"gpt-4o\"".to_owned()
        )])
    );
    // `context.ai.provider` names the server's API.
    let ops = classify(
        &request(
            "POST",
            "/endpoints/llm-prod/invocations-response-stream",
            "{}",
            &[],
        ),
        &routes,
    )
    .unwrap();
    assert_eq!(ops[0].text("provider").as_deref(), Some("sagemaker"));
    assert_eq!(ops[0].flag("stream"), Some(true));
    let ops = classify(
        &request("POST", "/ai/run/@cf/meta/llama-3-8b-instruct", "{}", &[]),
        &routes,
    )
    .unwrap();
    assert_eq!(ops[0].text("provider").as_deref(), Some("cloudflare"));
}

/// Bedrock `retrieveAndGenerate` names its model in a nested configuration:
/// read on its path, found by the sniffer on any other, and refused when two
/// configurations disagree.
#[test]
fn retrieve_and_generate_names_its_model() {
    let routes = shipped_routes();
    let run = |path: &str, body: &str| outcome(&request("POST", path, body, &[]), &routes);
    let both = |kb: &str, ext: &str| {
        format!(
            r#"{{"input":{{"text":"hi"}},"retrieveAndGenerateConfiguration":{{"type":"KNOWLEDGE_BASE","knowledgeBaseConfiguration":{{"knowledgeBaseId":"K","modelArn":"{kb}"}},"externalSourcesConfiguration":{{"modelArn":"{ext}","sources":[]}}}}}}"#
        )
    };
    let haiku = || {
        Ok(vec![(
            "Action::\"chat\"".to_owned(),
            format!("Model::\"{HAIKU}\""),
        )])
    };
    // The same model twice, in two spellings: one model.
    let same = both(
        HAIKU,
        &format!("arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"),
    );
    assert_eq!(run("/retrieveAndGenerate", &same), haiku());
    assert_eq!(run("/agent-runtime/retrieveAndGenerate", RAG), haiku());
    // Two models: refused, whichever the configuration's `type` selects.
    let two = both(HAIKU, "anthropic.claude-3-opus-20240229-v1:0");
    assert_eq!(
        run("/retrieveAndGenerate", &two),
        Err(Reason::ModelAmbiguous)
    );
    // No model, or one of the wrong type, or spelled as Go would read it.
    for body in [
        r#"{"input":{"text":"hi"},"retrieveAndGenerateConfiguration":{"type":"KNOWLEDGE_BASE","knowledgeBaseConfiguration":{"knowledgeBaseId":"K"}}}"#,
        r#"{"retrieveAndGenerateConfiguration":{"knowledgeBaseConfiguration":{"modelArn":7}}}"#,
        r#"{"retrieveAndGenerateConfiguration":{"knowledgeBaseConfiguration":{"modelArn":"a","ModelArn":"b"}}}"#,
    ] {
        assert_eq!(
            run("/retrieveAndGenerate", body),
            Err(Reason::BodyInvalid),
            "{body}"
        );
    }
    // On a path no table knows, the sniffer finds the nested model.
    let unclassified = |model: &str| {
        Ok(vec![(
            "Action::\"unclassified\"".to_owned(),
            format!("Model::\"{model}\""),
        )])
    };
    // As on a `bedrock` route, the ARN and the inference profile are the model.
    assert_eq!(run("/rag", RAG), unclassified(HAIKU));
    assert_eq!(run("/rag", RAG_EXTERNAL), unclassified(HAIKU));
    assert_eq!(run("/rag", &two), Err(Reason::ModelAmbiguous));
    for body in [
        r#"{"retrieveAndGenerateConfiguration":{"knowledgeBaseConfiguration":{"modelArn":7}}}"#,
        r#"{"retrieveAndGenerateConfiguration":{"knowledgeBaseConfiguration":{"modelArn":"a","modelArn":"b"}}}"#,
        r#"{"retrieveAndGenerateConfiguration":{"knowledgeBaseConfiguration":{"modelArn":"a","MODELARN":"b"}}}"#,
    ] {
        assert_eq!(run("/rag", body), Err(Reason::BodyInvalid), "{body}");
    }
    let got = run("/rag", r#"{"RetrieveAndGenerateConfiguration":{}}"#).unwrap();
    assert_eq!(got[0].0, "Action::\"unclassified\"");
}

/// A REST bridge's MCP tool call (LiteLLM `/mcp-rest/tools/call`): on an MCP
/// route, `call_tool` on the tool it names (argument names as for JSON-RPC);
/// another server selected in the body, or off every route, `unclassified`.
#[test]
fn rest_tool_calls_are_tool_calls() {
    let routes = shipped_routes();
    let run = |path: &str, body: &str| outcome(&request("POST", path, body, &[]), &routes);
    let call = r#"{"name":"delete_repository","arguments":{"Repo":"x"}}"#;
    let want = Ok(vec![(
        "Action::\"call_tool\"".to_owned(),
        "Tool::\"github/delete_repository\"".to_owned(),
    )]);
    for path in [
        "/mcp/github/mcp-rest/tools/call",
        "/mcp/github/MCP-REST/Tools/Call/",
        "/mcp/github//mcp-rest/%74ools/call",
        "/mcp/github/mcp/call_tool",
    ] {
        assert_eq!(run(path, call), want, "{path}");
    }
    let same_server = r#"{"server_id":"github","name":"delete_repository","arguments":{}}"#;
    assert_eq!(run("/mcp/github/mcp-rest/tools/call", same_server), want);
    let ops = classify(
        &request("POST", "/mcp/github/mcp-rest/tools/call", call, &[]),
        &routes,
    )
    .unwrap();
    assert_eq!(ops[0].strings("argument_names"), ["Repo", "repo"]);
    // Another server's tool: which one runs is the bridge's choice.
    let other = r#"{"server_id":"3f2a-uuid","name":"delete_repository","arguments":{}}"#;
    let got = run("/mcp/github/mcp-rest/tools/call", other).unwrap();
    assert_eq!(
        got,
        [(
            "Action::\"unclassified\"".to_owned(),
            "McpServer::\"github\"".to_owned()
        )]
    );
    // Read two ways, or without a tool: refused.
    for body in [
        r#"{"jsonrpc":"2.0","method":"tools/list","name":"delete_repository","arguments":{}}"#,
        r#"{"method":"x","name":"delete_repository"}"#,
        r#"{"arguments":{}}"#,
        r#"{"name":"delete_repository","arguments":[]}"#,
        r#"{"name":"delete_repository","Name":"list_repos"}"#,
        r#"[{"name":"delete_repository"}]"#,
    ] {
        assert_eq!(
            run("/mcp/github/mcp-rest/tools/call", body),
            Err(Reason::BodyInvalid),
            "{body}"
        );
    }
    // Off every route the server cannot be known: unclassified, never http.
    for (path, body) in [
        ("/mcp-rest/tools/call", call),
        ("/MCP-REST//TOOLS/CALL/", call),
        ("/mcp-rest/tools/call", "{}"),
        ("/mcp/call_tool", ""),
        ("/bridge/run", call),
        ("/bridge/run", r#"{"NAME":"x","Arguments":null}"#),
    ] {
        let got = run(path, body).unwrap();
        assert_eq!(got[0].0, "Action::\"unclassified\"", "{path} {body}");
    }
    let got = run("/api/users", r#"{"name":"x","email":"y"}"#).unwrap();
    assert_eq!(got[0].0, "Action::\"http\"");
}
