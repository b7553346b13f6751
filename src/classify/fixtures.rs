//! The classifier against the hand-written provider fixtures in
//! `tests/fixtures/ai/`, through the route table shipped in
//! `config/cedar-gate.yaml`, and property tests: no input makes it panic.

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

fn fixture(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ai")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn request(method: &str, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> HttpRequest {
    let headers = crate::request::header_list(headers.iter().copied());
    HttpRequest {
        method: method.into(),
        host: "gateway.example.com".into(),
        path: path.into(),
        body,
        headers,
        ..Default::default()
    }
}

fn one(method: &str, path: &str, rel: &str) -> Operation {
    let body = if rel.is_empty() {
        Vec::new()
    } else {
        fixture(rel)
    };
    let mut ops = classify(&request(method, path, body, &[]), &shipped_routes())
        .unwrap_or_else(|r| panic!("{path}: {r:?}"));
    assert_eq!(ops.len(), 1);
    ops.remove(0)
}

#[test]
fn openai_chat_with_tools() {
    let op = one(
        "POST",
        "/v1/chat/completions",
        "openai/chat_completions_tools.json",
    );
    assert_eq!(op.protocol, Protocol::Openai);
    assert_eq!(op.action.to_string(), r#"Action::"chat""#);
    assert_eq!(op.resource.to_string(), r#"Model::"gpt-4o-mini""#);
    assert_eq!(op.long("max_output_tokens"), Some(1024));
    assert_eq!(op.long("temperature_milli"), Some(700));
    assert_eq!(op.long("message_count"), Some(2));
    assert!(op.long("prompt_chars").unwrap() > 40);
    assert!(op.flag("has_tools") == Some(true));
    assert_eq!(op.strings("tool_names"), ["get_current_weather"]);
    assert_ne!(op.flag("stream"), Some(true));
}

#[test]
fn openai_stream_and_response_format() {
    let op = one(
        "POST",
        "/v1/chat/completions",
        "openai/chat_completions_stream.json",
    );
    assert!(op.flag("stream") == Some(true));
    assert_eq!(op.long("max_output_tokens"), Some(300));
    assert_eq!(op.text("response_format").as_deref(), Some("json_object"));
    // The image URL is not prompt text.
    assert_eq!(
        op.long("prompt_chars"),
        Some(("You are a helpful assistant.".len() + "What is in this image?".len()) as i64)
    );
}

#[test]
fn openai_other_endpoints() {
    let cases = [
        (
            "/v1/responses",
            "openai/responses.json",
            "chat",
            "gpt-4o-mini",
        ),
        (
            "/v1/completions",
            "openai/completions.json",
            "complete",
            "gpt-3.5-turbo-instruct",
        ),
        (
            "/v1/embeddings",
            "openai/embeddings.json",
            "embed",
            "text-embedding-3-small",
        ),
        (
            "/v1/images/generations",
            "openai/images_generations.json",
            "image",
            "dall-e-3",
        ),
        (
            "/v1/moderations",
            "openai/moderations.json",
            "moderate",
            "omni-moderation-latest",
        ),
        (
            "/v1/audio/speech",
            "openai/audio_speech.json",
            "audio",
            "gpt-4o-mini-tts",
        ),
        (
            "/openai/v1/chat/completions",
            "openai/chat_completions_frontier.json",
            "chat",
            "gpt-4.5-preview",
        ),
    ];
    for (path, rel, action, model) in cases {
        let op = one("POST", path, rel);
        assert_eq!(
            op.action.to_string(),
            format!("Action::\"{action}\""),
            "{path}"
        );
        assert_eq!(op.model.as_deref(), Some(model), "{path}");
    }
    let op = one("POST", "/v1/responses", "openai/responses.json");
    assert_eq!(op.long("max_output_tokens"), Some(512));
    assert_eq!(op.strings("tool_names"), ["web_search_preview"]);
    assert_eq!(op.text("response_format").as_deref(), Some("text"));
}

#[test]
fn openai_models_and_azure() {
    let op = one("GET", "/v1/models", "");
    assert_eq!(op.action.to_string(), r#"Action::"list_models""#);
    assert_eq!(op.resource.to_string(), r#"Route::"/v1/models""#);
    let op = one("GET", "/v1/models/gpt-4o-mini", "");
    assert_eq!(op.action.to_string(), r#"Action::"get_model""#);
    assert_eq!(op.resource.to_string(), r#"Model::"gpt-4o-mini""#);
    let op = one(
        "POST",
        "/openai/deployments/gpt-4o-mini-prod/chat/completions",
        "openai/chat_completions_stream.json",
    );
    // The deployment is an alias of its model in the shipped route table.
    assert_eq!(op.resource.to_string(), r#"Model::"gpt-4o-mini""#);
    assert_eq!(
        op.text("model_as_sent").as_deref(),
        Some("gpt-4o-mini-prod")
    );
    assert_eq!(op.text("provider").as_deref(), Some("azure"));
}

#[test]
fn openai_multipart_transcription() {
    let body = b"--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"speech.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\n\x00\x01\x02\r\n--b0\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b0--\r\n";
    let req = request(
        "POST",
        "/v1/audio/transcriptions",
        body.to_vec(),
        &[("content-type", "multipart/form-data; boundary=b0")],
    );
    let ops = classify(&req, &shipped_routes()).unwrap();
    assert_eq!(ops[0].action.to_string(), r#"Action::"audio""#);
    assert_eq!(ops[0].model.as_deref(), Some("whisper-1"));
}

#[test]
fn anthropic_messages() {
    let op = one("POST", "/v1/messages", "anthropic/messages_tools.json");
    assert_eq!(op.protocol, Protocol::Anthropic);
    assert_eq!(
        op.resource.to_string(),
        r#"Model::"claude-3-5-haiku-latest""#
    );
    assert_eq!(op.long("max_output_tokens"), Some(1024));
    assert_eq!(op.strings("tool_names"), ["get_weather", "web_search"]);
    let op = one("POST", "/v1/messages", "anthropic/messages_stream.json");
    assert!(op.flag("stream") == Some(true));
    assert_eq!(op.long("max_output_tokens"), Some(8192));
    assert_eq!(op.long("message_count"), Some(3));
    assert_eq!(op.long("temperature_milli"), Some(1000));
}

#[test]
fn gemini_generate_content() {
    let op = one(
        "POST",
        "/v1beta/models/gemini-2.0-flash:generateContent",
        "gemini/generate_content_tools.json",
    );
    assert_eq!(op.protocol, Protocol::Gemini);
    assert_eq!(op.resource.to_string(), r#"Model::"gemini-2.0-flash""#);
    assert_eq!(op.long("max_output_tokens"), Some(800));
    assert_eq!(op.long("temperature_milli"), Some(900));
    assert_eq!(op.strings("tool_names"), ["find_theaters", "googleSearch"]);
    assert_eq!(
        op.text("response_format").as_deref(),
        Some("application/json")
    );
    let op = one(
        "POST",
        "/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent",
        "gemini/stream_generate_content.json",
    );
    assert!(op.flag("stream") == Some(true));
    assert_eq!(op.model.as_deref(), Some("gemini-2.5-pro"));
    let op = one(
        "POST",
        "/v1beta/models/text-embedding-004:embedContent",
        "gemini/embed_content.json",
    );
    assert_eq!(op.action.to_string(), r#"Action::"embed""#);
    let op = one("GET", "/v1beta/models", "");
    assert_eq!(op.action.to_string(), r#"Action::"list_models""#);
}

#[test]
fn bedrock_runtime() {
    let op = one(
        "POST",
        "/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
        "bedrock/converse_tools.json",
    );
    assert_eq!(op.protocol, Protocol::Bedrock);
    assert_eq!(
        op.resource.to_string(),
        r#"Model::"anthropic.claude-3-haiku-20240307-v1:0""#
    );
    assert_eq!(op.long("max_output_tokens"), Some(2000));
    assert_eq!(op.strings("tool_names"), ["top_song"]);
    for (model, rel) in [
        (
            "anthropic.claude-3-haiku-20240307-v1:0",
            "bedrock/invoke_anthropic.json",
        ),
        (
            "meta.llama3-1-8b-instruct-v1:0",
            "bedrock/invoke_llama.json",
        ),
        ("amazon.titan-text-express-v1", "bedrock/invoke_titan.json"),
    ] {
        let op = one("POST", &format!("/model/{model}/invoke"), rel);
        assert_eq!(op.long("max_output_tokens"), Some(512), "{rel}");
        assert_eq!(op.long("temperature_milli"), Some(500), "{rel}");
        assert!(op.long("prompt_chars").unwrap() > 20, "{rel}");
    }
    let op = one(
        "POST",
        "/model/meta.llama3-1-8b-instruct-v1:0/invoke-with-response-stream",
        "bedrock/invoke_llama.json",
    );
    assert!(op.flag("stream") == Some(true));
}

#[test]
fn mcp_messages() {
    let cases = [
        (
            "mcp/initialize.json",
            "initialize",
            r#"McpServer::"github""#,
        ),
        (
            "mcp/notification_initialized.json",
            "notification",
            r#"McpServer::"github""#,
        ),
        (
            "mcp/tools_list.json",
            "list_tools",
            r#"McpServer::"github""#,
        ),
        (
            "mcp/tools_call.json",
            "call_tool",
            r#"Tool::"github/search_issues""#,
        ),
        (
            "mcp/resources_read.json",
            "read_resource",
            r#"McpServer::"github""#,
        ),
        (
            "mcp/prompts_get.json",
            "get_prompt",
            r#"McpServer::"github""#,
        ),
    ];
    for (rel, action, resource) in cases {
        let op = one("POST", "/mcp/github", rel);
        assert_eq!(op.protocol, Protocol::Mcp);
        assert_eq!(
            op.action.to_string(),
            format!("Action::\"{action}\""),
            "{rel}"
        );
        assert_eq!(op.resource.to_string(), resource, "{rel}");
    }
    let op = one("POST", "/mcp/github", "mcp/tools_call.json");
    assert_eq!(op.strings("argument_names"), ["query", "repo"]);
    assert_eq!(op.text("tool").as_deref(), Some("search_issues"));
    let op = one("POST", "/mcp/files", "mcp/resources_read.json");
    assert_eq!(
        op.text("uri").as_deref(),
        Some("file:///project/src/main.rs")
    );
    let op = one("GET", "/mcp/github", "");
    assert_eq!(op.action.to_string(), r#"Action::"listen""#);
}

#[test]
fn mcp_batch_is_one_operation_per_element() {
    let req = request(
        "POST",
        "/mcp/github",
        fixture("mcp/batch_one_forbidden.json"),
        &[],
    );
    let ops = classify(&req, &shipped_routes()).unwrap();
    let tools: Vec<_> = ops.iter().map(|o| o.tool.clone().unwrap()).collect();
    assert_eq!(tools, ["github/search_issues", "github/delete_repository"]);
    assert!(ops.iter().all(|o| o.long("batch_size") == Some(2)));
}

#[test]
fn body_refusals_have_reasons() {
    let routes = shipped_routes();
    let refuse = |req: HttpRequest| classify(&req, &routes).unwrap_err().error.reason();
    let chat = || fixture("openai/chat_completions_tools.json");
    let path = "/v1/chat/completions";
    assert_eq!(
        refuse(request("POST", path, Vec::new(), &[])),
        Reason::BodyMissing
    );
    assert_eq!(
        refuse(request(
            "POST",
            path,
            chat(),
            &[("x-envoy-auth-partial-body", "true")]
        )),
        Reason::BodyPartial
    );
    assert_eq!(
        refuse(request(
            "POST",
            path,
            chat(),
            &[("content-encoding", "gzip")]
        )),
        Reason::BodyInvalid
    );
    assert_eq!(
        refuse(request("POST", path, vec![b' '; 70_000], &[])),
        Reason::BodyTooLarge
    );
    assert_eq!(
        refuse(request("POST", path, b"model=gpt-4o".to_vec(), &[])),
        Reason::BodyInvalid
    );
    assert_eq!(
        refuse(request(
            "POST",
            path,
            br#"{"model":"gpt-4o-mini","model":"o1"}"#.to_vec(),
            &[]
        )),
        Reason::BodyInvalid
    );
    let batch = format!(
        "[{}]",
        vec![r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#; 65].join(",")
    );
    assert_eq!(
        refuse(request("POST", "/mcp/files", batch.into_bytes(), &[])),
        Reason::BatchTooLarge
    );
}

#[test]
fn optional_body_classifies_from_the_path() {
    let routes: Routes = serde_norway::from_str(
        "- {path_prefix: /v1/, protocol: openai, body: optional}\n- {path_prefix: /g/, protocol: gemini, body: optional}\n",
    )
    .unwrap();
    let req = request("POST", "/v1/chat/completions", b"{oops".to_vec(), &[]);
    let ops = classify(&req, &routes).unwrap();
    assert_eq!(ops[0].action.to_string(), r#"Action::"chat""#);
    assert_eq!(
        ops[0].resource.to_string(),
        r#"Route::"/v1/chat/completions""#
    );
    // A wrong field type does not leak a half-read record either.
    let req = request(
        "POST",
        "/g/models/gemini-2.0-flash:generateContent",
        br#"{"generationConfig":{"maxOutputTokens":"many"}}"#.to_vec(),
        &[],
    );
    let ops = classify(&req, &routes).unwrap();
    assert_eq!(ops[0].model.as_deref(), Some("gemini-2.0-flash"));
    assert_eq!(ops[0].long("max_output_tokens"), None);
}

/// Arbitrary JSON values, nested a few levels, with the keys the parsers look for.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        Just("model".to_owned()),
        Just("messages".to_owned()),
        Just("max_tokens".to_owned()),
        Just("tools".to_owned()),
        Just("method".to_owned()),
        Just("params".to_owned()),
        Just("name".to_owned()),
        Just("arguments".to_owned()),
        Just("generationConfig".to_owned()),
        Just("inferenceConfig".to_owned()),
        Just("function".to_owned()),
        Just("jsonrpc".to_owned()),
        "[a-z]{1,6}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("2.0")),
        Just(serde_json::Value::from("tools/call")),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

const PATHS: &[&str] = &[
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/audio/transcriptions",
    "/openai/deployments/d/chat/completions",
    "/v1/messages",
    "/v1beta/models/gemini-2.0-flash:generateContent",
    "/model/m/converse",
    "/model/m/invoke",
    "/mcp/github",
];

proptest! {
    #[test]
    fn arbitrary_json_never_panics(value in json_value(), path in prop::sample::select(PATHS)) {
        let routes = shipped_routes();
        let body = serde_json::to_vec(&value).unwrap();
        let _ = classify(&request("POST", path, body, &[]), &routes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
        path in prop::sample::select(PATHS),
        multipart in any::<bool>(),
    ) {
        let routes = shipped_routes();
        let headers: &[(&str, &str)] = if multipart {
            &[("content-type", "multipart/form-data; boundary=x")]
        } else {
            &[]
        };
        let _ = classify(&request("POST", path, body, headers), &routes);
    }

    #[test]
    fn arbitrary_paths_never_panic(path in "/[a-zA-Z0-9:/%._-]{0,80}", method in prop::sample::select(&["GET", "POST", "DELETE"][..])) {
        let routes = shipped_routes();
        let _ = classify(&request(method, &path, b"{}".to_vec(), &[]), &routes);
    }

    #[test]
    fn operations_are_never_empty(value in json_value()) {
        let routes = shipped_routes();
        let body = serde_json::to_vec(&value).unwrap();
        if let Ok(ops) = classify(&request("POST", "/mcp/files", body, &[]), &routes) {
            prop_assert!(!ops.is_empty());
            prop_assert!(ops.len() <= mcp::MAX_BATCH);
        }
    }
}

#[test]
fn hostile_bodies_are_refused_cleanly() {
    let routes = shipped_routes();
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    for body in [
        deep.as_bytes(),
        deep_obj.as_bytes(),
        br#"{"model":"m","max_tokens":1e999}"#,
        br#"{"model":"m","max_tokens":99999999999999999999999999}"#,
        b"\xff\xfe{}",
        b"null",
        b"[]",
        br#"{"model":["a"]}"#,
        br#"{"model":"m","tools":{"a":1}}"#,
    ] {
        for path in PATHS {
            let r = classify(&request("POST", path, body.to_vec(), &[]), &routes);
            if let Ok(ops) = r {
                assert!(!ops.is_empty());
            }
        }
    }
    // A huge integer saturates instead of slipping under a cap.
    let op = classify(
        &request(
            "POST",
            "/v1/chat/completions",
            br#"{"model":"m","max_tokens":99999999999999999999999999}"#.to_vec(),
            &[],
        ),
        &routes,
    )
    .unwrap();
    assert_eq!(op[0].long("max_output_tokens"), Some(i64::MAX));
}
