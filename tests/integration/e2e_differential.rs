//! Differential end-to-end test (issue 12): does the upstream run what cedar-gate decided?
//!
//! A real Envoy runs in three path-handling profiles derived from the shipped
//! `envoy/envoy.yaml` ([`Profile`]). Its upstream is a real model-server router
//! (`tests/upstream/router.py`, Starlette on uvicorn) that records which handler ran on which
//! model or tool. cedar-gate runs with the shipped route table under two policy sets: the
//! shipped `cedar/`, and a deny list ([`DENY_LIST`]: permit everything, forbid `Model::"o1"`
//! and `Tool::"github/delete_repository"`). Every base request ([`bases`]: allowed and refused
//! models on each provider endpoint, allowed and forbidden MCP tools, an admin path) is sent
//! in every spelling of [`SPELLINGS`], as raw HTTP/1.1 over mTLS so that it reaches Envoy
//! byte for byte.
//!
//! The invariant, for every policy set, profile, base and spelling:
//! - nothing ran upstream (cedar-gate refused it, or Envoy or the router's HTTP parser did), or
//! - the handler that ran is the one cedar-gate classified (its audit event, found by the
//!   `x-cedar-gate-decision-id` the router received: action, model or tool, path) and
//!   cedar-gate allowed it;
//! - and when the plain spelling is refused by cedar-gate, no spelling of it runs the same
//!   handler on the same model or tool.
//!
//! On failure it prints one compact table per policy set (a character per spelling and
//! profile) and every violation with the spelling, the profile and what ran.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::ai::shipped_routes_yaml;
use crate::common::gate::DEFAULT_CONFIG;
use crate::common::ids::RESEARCH_AGENT;
use crate::common::pyrouter::PyRouter;
use crate::common::raw::{RawClient, RawResponse, head};
use crate::common::{CedarGate, Envoy, GateOptions, TestPki, repo_path};

/// The model the research agent may not use: frontier in `cedar/`, forbidden by [`DENY_LIST`].
const REFUSED_MODEL: &str = "o1";
/// The same on Bedrock, whose model ids are `<vendor>.<model>`.
const REFUSED_BEDROCK: &str = "anthropic.claude-opus-4-1-20250805-v1:0";
/// Requests in flight at once (two shared cores; Envoy's ext_authz timeout is 0.5 s).
const IN_FLIGHT: usize = 6;
/// Bound on one answer.
const ANSWER: Duration = Duration::from_secs(10);

/// Permit everything, forbid one model (and its Bedrock counterpart) and one tool: a refused
/// model or tool must stay refused whatever else a broad permit lets through.
const DENY_LIST: &str = r#"
@id("e2e-permit-everything")
@owner("e2e")
permit (principal, action, resource);

@id("e2e-forbid-o1")
@owner("e2e")
forbid (principal, action, resource == Model::"o1");

@id("e2e-forbid-claude-opus-on-bedrock")
@owner("e2e")
forbid (principal, action, resource == Model::"anthropic.claude-opus-4-1-20250805-v1:0");

@id("e2e-forbid-delete-repository")
@owner("e2e")
forbid (principal, action, resource == Tool::"github/delete_repository");
"#;

// === Envoy path-handling profiles ===

#[derive(Clone, Copy, Debug, PartialEq)]
enum Profile {
    /// `envoy/envoy.yaml` as shipped: normalize_path, merge_slashes, UNESCAPE_AND_FORWARD.
    Shipped,
    /// Istio's default (`meshConfig.pathNormalization` BASE): normalize_path true,
    /// merge_slashes false, escaped slashes KEEP_UNCHANGED (istio
    /// pilot/pkg/networking/core listener builder; istio.io "Authorization Policy
    /// Normalization").
    IstioBase,
    /// Envoy's defaults: normalize_path false, merge_slashes false, escaped slashes
    /// IMPLEMENTATION_SPECIFIC_DEFAULT, which is KEEP_UNCHANGED (envoyproxy.io HCM runtime).
    EnvoyDefaults,
}

const PROFILES: [Profile; 3] = [Profile::Shipped, Profile::IstioBase, Profile::EnvoyDefaults];

const NORMALIZE: &str = "normalize_path: true";
const MERGE: &str = "merge_slashes: true";
const ESCAPED: &str = "path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD";

// === impl Profile ===

impl Profile {
    fn label(self) -> &'static str {
        match self {
            Self::Shipped => "(a) shipped",
            Self::IstioBase => "(b) istio BASE",
            Self::EnvoyDefaults => "(c) envoy defaults",
        }
    }

    /// The shipped config with this profile's path handling, by text substitution.
    fn config(self, shipped: &str) -> String {
        for setting in [NORMALIZE, MERGE, ESCAPED] {
            assert_eq!(
                shipped.matches(setting).count(),
                1,
                "envoy/envoy.yaml must set `{setting}` once for the path profiles"
            );
        }
        match self {
            Self::Shipped => shipped.to_owned(),
            Self::IstioBase => shipped
                .replace(MERGE, "merge_slashes: false")
                .replace(ESCAPED, "path_with_escaped_slashes_action: KEEP_UNCHANGED"),
            Self::EnvoyDefaults => shipped
                .lines()
                .filter(|l| ![NORMALIZE, MERGE, ESCAPED].contains(&l.trim()))
                .map(|l| format!("{l}\n"))
                .collect(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Policies {
    Shipped,
    DenyList,
}

const POLICIES: [Policies; 2] = [Policies::Shipped, Policies::DenyList];

// === base requests ===

/// What the plain spelling of a base request must do under a policy set.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    /// Reach its handler.
    Runs,
    /// Be refused by cedar-gate.
    Refused,
    /// Either (what the shipped examples grant there is theirs to decide).
    Either,
}

/// One request as a provider or MCP client sends it.
struct Base {
    name: &'static str,
    method: &'static str,
    path: String,
    query: &'static str,
    body: Option<Value>,
    /// The router handler the plain spelling runs.
    handler: &'static str,
    /// The model or tool it runs on (as the router records it).
    subject: Option<String>,
    /// The model id inside `path`, for the model spellings.
    path_model: Option<String>,
    shipped: Want,
    deny_list: Want,
    /// Sent as `multipart/form-data` (an upload endpoint): a small file, then the string
    /// fields of `body`, the model last.
    form: bool,
}

// === impl Base ===

impl Base {
    fn new(name: &'static str, method: &'static str, path: &str, handler: &'static str) -> Self {
        Self {
            name,
            method,
            path: path.to_owned(),
            query: "",
            body: None,
            handler,
            subject: None,
            path_model: None,
            shipped: Want::Either,
            deny_list: Want::Runs,
            form: false,
        }
    }
    /// The fields of `body`, sent as a form.
    fn form(mut self, body: Value) -> Self {
        self.form = true;
        self.body(body)
    }
    fn body(mut self, body: Value) -> Self {
        if let Some(m) = body["model"].as_str() {
            self.subject = Some(m.to_owned());
        }
        self.body = Some(body);
        self
    }
    fn path_model(mut self, model: &str) -> Self {
        self.subject = Some(model.to_owned());
        self.path_model = Some(model.to_owned());
        self
    }
    fn query(mut self, query: &'static str) -> Self {
        self.query = query;
        self
    }
    fn subject(mut self, subject: &str) -> Self {
        self.subject = Some(subject.to_owned());
        self
    }
    fn want(mut self, shipped: Want, deny_list: Want) -> Self {
        self.shipped = shipped;
        self.deny_list = deny_list;
        self
    }
    /// A refused model or tool: refused under both policy sets.
    fn refused(self) -> Self {
        self.want(Want::Refused, Want::Refused)
    }
    fn wants(&self, policies: Policies) -> Want {
        match policies {
            Policies::Shipped => self.shipped,
            Policies::DenyList => self.deny_list,
        }
    }
}

fn messages() -> Value {
    json!([{"role": "user", "content": "hi"}])
}

fn mcp_call(tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": tool, "arguments": {}}})
}

/// The base requests: a refused model on every model-carrying endpoint of every provider
/// the route table knows, an allowed one as a control, MCP tools, an admin path.
#[rustfmt::skip]
fn bases() -> Vec<Base> {
    use Want::{Either, Refused, Runs};
    let m = REFUSED_MODEL;
    let br = REFUSED_BEDROCK;
    let chat = |model: &str| json!({"model": model, "messages": messages()});
    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let claude = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
                        "messages": messages()});
    let vertex = "/v1/projects/p1/locations/us-east5/publishers";
    vec![
        // OpenAI and OpenAI-compatible servers.
        Base::new("chat-allowed", "POST", "/v1/chat/completions", "chat_completions").body(chat("gpt-4o-mini")).want(Runs, Runs),
        Base::new("chat", "POST", "/v1/chat/completions", "chat_completions").body(chat(m)).refused(),
        Base::new("completions", "POST", "/v1/completions", "completions").body(json!({"model": m, "prompt": "hi"})).refused(),
        Base::new("embeddings", "POST", "/v1/embeddings", "embeddings").body(json!({"model": m, "input": "hi"})).refused(),
        Base::new("responses", "POST", "/v1/responses", "responses").body(json!({"model": m, "input": "hi"})).refused(),
        Base::new("threads-runs", "POST", "/v1/threads/thread_1/runs", "threads_runs").body(json!({"assistant_id": "asst_1", "model": m})).refused(),
        Base::new("assistants", "POST", "/v1/assistants", "assistants").body(json!({"model": m, "name": "helper"})).refused(),
        Base::new("realtime", "GET", "/v1/realtime", "realtime").query("model=o1").subject(m).refused(),
        Base::new("models-list", "GET", "/v1/models", "models_list").want(Runs, Runs),
        Base::new("models-get", "GET", "/v1/models/o1", "models_get").path_model(m).want(Either, Either),
        // An upload endpoint: the model is a form field.
        Base::new("transcription", "POST", "/v1/audio/transcriptions", "audio_transcriptions").form(json!({"language": "en", "model": m})).refused(),
        Base::new("files", "POST", "/v1/files", "files").body(json!({"purpose": "batch"})),
        // Batches run models the gateway cannot see: never permitted broadly by the examples.
        Base::new("batches", "POST", "/v1/batches", "batches").body(json!({"input_file_id": "file-1", "endpoint": "/v1/chat/completions", "completion_window": "24h"})).want(Refused, Runs),
        // Azure OpenAI: the deployment is the model.
        Base::new("azure", "POST", "/openai/deployments/o1/chat/completions", "azure_chat").query("api-version=2024-10-21").body(json!({"messages": messages()})).path_model(m).refused(),
        // LiteLLM's engines API: the path's model runs, whatever the body says.
        Base::new("engines", "POST", "/v1/engines/o1/chat/completions", "engines_chat").body(chat("gpt-4o-mini")).path_model(m).refused(),
        Base::new("anthropic", "POST", "/v1/messages", "anthropic_messages").body(json!({"model": m, "max_tokens": 64, "messages": messages()})).refused(),
        // Gemini (beta and stable) and Vertex AI, Google's and partner models.
        Base::new("gemini-v1beta", "POST", "/v1beta/models/o1:generateContent", "gemini:generateContent").body(gemini.clone()).path_model(m).refused(),
        Base::new("gemini-v1", "POST", "/v1/models/o1:generateContent", "gemini:generateContent").body(gemini.clone()).path_model(m).refused(),
        Base::new("vertex-google", "POST", &format!("{vertex}/google/models/o1:generateContent"), "vertex:generateContent").body(gemini).path_model(m).refused(),
        Base::new("vertex-anthropic", "POST", &format!("{vertex}/anthropic/models/o1:rawPredict"), "vertex:rawPredict").body(json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 64, "messages": messages()})).path_model(m).refused(),
        // Bedrock; it decodes the percent-encoded ARN in the model segment, and a cross-region
        // inference profile runs the model it names.
        Base::new("bedrock-invoke", "POST", &format!("/model/{br}/invoke"), "bedrock_invoke").body(claude.clone()).path_model(br).refused(),
        Base::new("bedrock-converse", "POST", &format!("/model/{br}/converse"), "bedrock_converse").body(json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]})).path_model(br).refused(),
        Base::new("bedrock-arn", "POST", &format!("/model/arn:aws:bedrock:us-east-1::foundation-model%2F{br}/invoke"), "bedrock_invoke").body(claude.clone()).subject(&format!("arn:aws:bedrock:us-east-1::foundation-model/{br}")).refused(),
        Base::new("bedrock-profile", "POST", &format!("/model/us.{br}/invoke"), "bedrock_invoke").body(claude).path_model(&format!("us.{br}")).refused(),
        // MCP servers: tools the research agent may and may not call.
        Base::new("mcp-allowed", "POST", "/mcp/github", "mcp_github").body(mcp_call("search_issues")).subject("github/search_issues").want(Runs, Runs),
        Base::new("mcp-forbidden", "POST", "/mcp/github", "mcp_github").body(mcp_call("delete_repository")).subject("github/delete_repository").refused(),
        Base::new("mcp-files-read", "POST", "/mcp/files", "mcp_files").body(mcp_call("read_file")).subject("files/read_file").want(Runs, Runs),
        Base::new("mcp-files-write", "POST", "/mcp/files", "mcp_files").body(mcp_call("write_file")).subject("files/write_file").want(Refused, Runs),
        // Model and MCP servers on paths no route names: a provider endpoint is read as on
        // its provider's route, anything else that looks like a model call is unclassified
        // on the model it names (an MCP message names none, so a deny-list lets it through).
        Base::new("unrouted-chat", "POST", "/chat/completions", "chat_unversioned").body(chat(m)).refused(),
        Base::new("ollama-chat", "POST", "/api/chat", "ollama_chat").body(chat(m)).refused(),
        Base::new("mcp-unrouted", "POST", "/mcp", "mcp_unrouted").body(mcp_call("delete_repository")).subject("unrouted/delete_repository").want(Refused, Either),
        Base::new("admin", "GET", "/admin", "admin").want(Refused, Runs),
    ]
}

// === spellings ===

/// One request on the wire.
struct Req {
    method: String,
    target: Vec<u8>,
    headers: Vec<Vec<u8>>,
    body: Vec<u8>,
    /// The body's media type when it is not JSON.
    content_type: Option<String>,
}

// === impl Req ===

impl Req {
    /// `base` with its path spelled `path` (query and body unchanged).
    fn path(base: &Base, path: &str) -> Option<Self> {
        let (content_type, body) = if base.form {
            (
                Some(FORM_TYPE.to_owned()),
                form_body(base, |m| field("name=\"model\"", m))?,
            )
        } else {
            let json = base.body.as_ref().map(Value::to_string);
            (None, json.unwrap_or_default().into_bytes())
        };
        Some(Self {
            method: base.method.to_owned(),
            target: target(path, base.query, ""),
            headers: Vec::new(),
            body,
            content_type,
        })
    }
}

fn target(path: &str, query: &str, fragment: &str) -> Vec<u8> {
    let mut t = path.to_owned();
    if !query.is_empty() {
        t = format!("{t}?{query}");
    }
    format!("{t}{fragment}").into_bytes()
}

type Spell = fn(&Base) -> Option<Req>;

/// The byte offsets of the slashes in `path`.
fn slashes(path: &str) -> Vec<usize> {
    path.match_indices('/').map(|(i, _)| i).collect()
}

/// `path` with the one-byte character at byte `at` (a `/` or `:`) replaced by `with`.
fn replace_at(path: &str, at: usize, with: &str) -> String {
    format!("{}{with}{}", &path[..at], &path[at + 1..])
}

/// Replaces the last slash (before the last segment) by `with`.
fn last_slash(b: &Base, with: &str) -> Option<Req> {
    let s = slashes(&b.path);
    (s.len() >= 2)
        .then(|| replace_at(&b.path, s[s.len() - 1], with))
        .and_then(|p| Req::path(b, &p))
}

/// Inserts `text` right after the slash before the last segment.
fn before_last_segment(b: &Base, text: &str) -> Option<Req> {
    let at = slashes(&b.path).last()? + 1;
    Req::path(b, &format!("{}{text}{}", &b.path[..at], &b.path[at..]))
}

/// Percent-encodes the ASCII letter at byte `at` of the path.
fn encode_letter(b: &Base, at: usize) -> Option<Req> {
    let c = *b.path.as_bytes().get(at)?;
    c.is_ascii_alphabetic().then_some(())?;
    Req::path(
        b,
        &format!("{}%{c:02X}{}", &b.path[..at], &b.path[at + 1..]),
    )
}

/// Appends `junk` to the path (before the query).
fn trailing(b: &Base, junk: &str) -> Option<Req> {
    Req::path(b, &format!("{}{junk}", b.path))
}

/// The model of a model-in-path base, spelled `spell(model)`.
fn model_spelled(b: &Base, spell: impl Fn(&str) -> String) -> Option<Req> {
    let model = b.path_model.as_deref()?;
    Req::path(b, &b.path.replacen(model, &spell(model), 1))
}

/// The JSON body's text rewritten by `spell`.
fn body_spelled(b: &Base, spell: impl Fn(&str) -> Option<String>) -> Option<Req> {
    let mut r = Req::path(b, &b.path)?;
    r.body = spell(std::str::from_utf8(&r.body).ok()?)?.into_bytes();
    Some(r)
}

// === form spellings ===

const BOUNDARY: &str = "d1ffB0undary";
const FORM_TYPE: &str = "multipart/form-data; boundary=d1ffB0undary";

/// One form part: `form-data; <params>`, then the value.
fn field(params: &str, value: &[u8]) -> Vec<u8> {
    let head = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; {params}\r\n\r\n");
    [head.as_bytes(), value, b"\r\n"].concat()
}

/// A form base's body: a file, its other string fields, then `model(model)` and the close
/// delimiter.
fn form_body(b: &Base, model: impl Fn(&[u8]) -> Vec<u8>) -> Option<Vec<u8>> {
    let fields = b.body.as_ref()?.as_object()?;
    let mut out = field(r#"name="file"; filename="a.wav""#, b"RIFF\0\0\0\0WAVEfmt ");
    for (k, v) in fields.iter().filter(|(k, _)| *k != "model") {
        out.extend(field(&format!("name=\"{k}\""), v.as_str()?.as_bytes()));
    }
    out.extend(model(fields.get("model")?.as_str()?.as_bytes()));
    out.extend(format!("--{BOUNDARY}--\r\n").into_bytes());
    Some(out)
}

/// A form base sent with content type `ct` and the model part spelled by `model`.
fn form_spelled(b: &Base, ct: &str, model: impl Fn(&[u8]) -> Vec<u8>) -> Option<Req> {
    b.form.then_some(())?;
    let mut r = Req::path(b, &b.path)?;
    r.body = form_body(b, model)?;
    r.content_type = Some(ct.to_owned());
    Some(r)
}

/// A harmless model first, then the base's model in a part spelled `params`: Starlette keeps
/// the last of two same-named fields.
fn form_twice(b: &Base, params: &'static str) -> Option<Req> {
    form_spelled(b, FORM_TYPE, |m| {
        [field(r#"name="model""#, b"whisper-1"), field(params, m)].concat()
    })
}

/// Sent to a harmless path (`/v1/files` for a POST, `/v1/models` for a GET), the real one
/// named in a URL-override header.
fn url_override(b: &Base, header: &str) -> Option<Req> {
    let disguise = if b.method == "POST" {
        "/v1/files"
    } else {
        "/v1/models"
    };
    let mut r = Req::path(b, disguise)?;
    let real = String::from_utf8(target(&b.path, b.query, "")).ok()?;
    r.headers.push(format!("{header}: {real}").into_bytes());
    Some(r)
}

/// The method flipped (POST <-> GET), the original named in an override header.
fn method_override(b: &Base, header: &str) -> Option<Req> {
    let mut r = Req::path(b, &b.path)?;
    r.method = if b.method == "POST" { "GET" } else { "POST" }.to_owned();
    r.headers
        .push(format!("{header}: {}", b.method).into_bytes());
    Some(r)
}

/// Every spelling, in table order (the first one is the plain spelling).
#[rustfmt::skip]
const SPELLINGS: &[(&str, Spell)] = &[
    ("plain", |b| Req::path(b, &b.path)),
    ("%XX letter, first segment", |b| encode_letter(b, 1)),
    ("%XX letter, last segment", |b| encode_letter(b, slashes(&b.path).last()? + 1)),
    ("%XX letter in the model", |b| model_spelled(b, |m| format!("%{:02X}{}", m.as_bytes()[0], &m[1..]))),
    ("upper-case model", |b| model_spelled(b, str::to_ascii_uppercase)),
    ("%3A for the colon", |b| b.path.rfind(':').and_then(|at| Req::path(b, &replace_at(&b.path, at, "%3A")))),
    ("%2F, second slash", |b| slashes(&b.path).get(1).and_then(|&at| Req::path(b, &replace_at(&b.path, at, "%2F")))),
    ("%2f, last slash", |b| last_slash(b, "%2f")),
    ("%5C, last slash", |b| last_slash(b, "%5C")),
    ("raw \\, last slash", |b| last_slash(b, "\\")),
    ("%252F, last slash", |b| last_slash(b, "%252F")),
    (";x=y after first segment", |b| {
        let at = slashes(&b.path).get(1).copied().unwrap_or(b.path.len());
        Req::path(b, &format!("{};x=y{}", &b.path[..at], &b.path[at..]))
    }),
    ("/./", |b| before_last_segment(b, "./")),
    ("/x/../", |b| before_last_segment(b, "x/../")),
    ("/x/%2e%2e/", |b| before_last_segment(b, "x/%2e%2e/")),
    ("/%2e/", |b| before_last_segment(b, "%2e/")),
    ("// leading", |b| Req::path(b, &format!("/{}", b.path))),
    ("// last slash", |b| last_slash(b, "//")),
    ("UPPER CASE", |b| Req::path(b, &b.path.to_ascii_uppercase())),
    ("Mixed case, first segment", |b| {
        let end = slashes(&b.path).get(1).copied().unwrap_or(b.path.len());
        Req::path(b, &format!("{}{}", b.path[..end].to_ascii_uppercase(), &b.path[end..]))
    }),
    ("trailing /", |b| trailing(b, "/")),
    ("trailing %00", |b| trailing(b, "%00")),
    ("trailing %0A", |b| trailing(b, "%0A")),
    ("trailing %09", |b| trailing(b, "%09")),
    ("trailing %20", |b| trailing(b, "%20")),
    ("trailing raw tab", |b| trailing(b, "\t")),
    ("#frag", |b| {
        let mut r = Req::path(b, &b.path)?;
        r.target = target(&b.path, b.query, "#frag");
        Some(r)
    }),
    ("?model= instead of the body", |b| {
        (!b.form).then_some(())?;
        let mut body = b.body.clone()?;
        let model = body.as_object_mut()?.remove("model")?;
        let query = [b.query, &format!("model={}", model.as_str()?)].join("&");
        let mut r = Req::path(b, &b.path)?;
        r.target = target(&b.path, query.trim_start_matches('&'), "");
        r.body = body.to_string().into_bytes();
        Some(r)
    }),
    // Body spellings: Python's json keeps the last of duplicate keys and decodes escaped ones.
    ("duplicate JSON key, harmless value first", |b| body_spelled(b, |t| {
        if t.contains("\"model\":") {
            Some(t.replacen("\"model\":", "\"model\":\"gpt-4o-mini\",\"model\":", 1))
        } else {
            t.contains("tools/call").then(|| t.replacen('{', r#"{"method":"ping","params":{"name":"search_issues"},"#, 1))
        }
    })),
    ("\\u-escaped JSON key", |b| body_spelled(b, |t| {
        let key = ["model", "name"].into_iter().find(|k| t.contains(&format!("\"{k}\":")))?;
        Some(t.replacen(&format!("\"{key}\":"), &format!("\"\\u{:04x}{}\":", key.as_bytes()[0], &key[1..]), 1))
    })),
    // Python's json.loads reads UTF-16 and UTF-32 bytes too, told apart by where the NULs are.
    ("UTF-16 JSON body", |b| {
        if b.form {
            return None;
        }
        let mut r = body_spelled(b, |t| (!t.is_empty()).then(|| t.to_owned()))?;
        let text = String::from_utf8(std::mem::take(&mut r.body)).ok()?;
        r.body = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        Some(r)
    }),
    // Form spellings (upload endpoints): each is read another way by some form parser.
    ("form: model twice, unquoted last", |b| form_twice(b, "name=model")),
    ("form: model twice, NAME= last", |b| form_twice(b, r#"NAME="model""#)),
    ("form: model twice, spaced last", |b| form_twice(b, r#"name = "model""#)),
    ("form: model twice, quoted", |b| form_twice(b, r#"name="model""#)),
    ("form: RFC 2231 name*=", |b| form_spelled(b, FORM_TYPE, |m| field("name*=utf-8''model", m))),
    ("form: model as a file", |b| form_spelled(b, FORM_TYPE, |m| field(r#"name="model"; filename="m""#, m))),
    ("form: two boundary params", |b| form_spelled(b, &format!("multipart/form-data; boundary=zz; boundary={BOUNDARY}"), |m| field(r#"name="model""#, m))),
    ("form: quoted boundary, upper case", |b| form_spelled(b, &format!("MULTIPART/FORM-DATA; BOUNDARY=\"{BOUNDARY}\""), |m| field(r#"name="model""#, m))),
    ("form: charset=utf-16 model", |b| form_spelled(b, &format!("{FORM_TYPE}; charset=utf-16"), |m| {
        field(r#"name="model""#, &m.iter().flat_map(|&c| [c, 0]).collect::<Vec<u8>>())
    })),
    ("form: bare LF", |b| {
        let mut r = form_spelled(b, FORM_TYPE, |m| field(r#"name="model""#, m))?;
        r.body.retain(|&c| c != b'\r');
        Some(r)
    }),
    ("form: urlencoded", |b| {
        let model = b.body.as_ref()?.get("model")?.as_str()?;
        let mut r = form_spelled(b, "application/x-www-form-urlencoded", |_| Vec::new())?;
        r.body = format!("model={model}").into_bytes();
        Some(r)
    }),
    ("X-Original-URL", |b| url_override(b, "X-Original-URL")),
    ("X-Rewrite-URL", |b| url_override(b, "X-Rewrite-URL")),
    ("X-HTTP-Method-Override", |b| method_override(b, "X-HTTP-Method-Override")),
    ("X-Method-Override", |b| method_override(b, "X-Method-Override")),
];

// === outcomes ===

/// What happened to one request.
#[derive(Clone, Debug)]
enum Outcome {
    /// cedar-gate refused it (its JSON answer); nothing ran upstream.
    Gate { status: u16, reason: String },
    /// Nothing ran upstream and cedar-gate did not answer: Envoy's codec, the router's HTTP
    /// parser or a redirect refused it.
    NotRun(Option<u16>),
    /// A handler ran.
    Ran(Run),
    /// The test cannot tell (several runs, no answer, the authorizer timing out), or the
    /// plain spelling did not do what its base request wants.
    Unknown(String),
}

/// A handler run and how it compares with cedar-gate's decision.
#[derive(Clone, Debug)]
struct Run {
    handler: String,
    /// The model or tool it ran on, as the router saw it.
    subject: Option<String>,
    /// The path the router routed on.
    path: String,
    /// cedar-gate's decision, from the audit event.
    decided: String,
    /// Why this run breaks the invariant, if it does.
    violation: Option<String>,
    /// A model or tool cedar-gate refuses in the plain spelling ran.
    bypass: bool,
}

// === impl Outcome ===

impl Outcome {
    fn cell(&self) -> char {
        match self {
            Self::Gate { status: 400, .. } => 'g',
            Self::Gate { .. } => 'G',
            Self::NotRun(_) => 'e',
            Self::Ran(Run { bypass: true, .. }) => 'X',
            Self::Ran(Run {
                violation: Some(_), ..
            }) => 'x',
            Self::Ran(_) => '.',
            Self::Unknown(_) => '?',
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Gate { status, reason } => format!("cedar-gate {status} {reason}"),
            Self::NotRun(status) => format!("not run upstream ({status:?})"),
            Self::Ran(run) => format!(
                "RAN {} on {:?} (router path {:?}); cedar-gate: {}{}",
                run.handler,
                run.subject,
                run.path,
                run.decided,
                run.violation
                    .as_ref()
                    .map(|v| format!(": {v}"))
                    .unwrap_or_default()
            ),
            Self::Unknown(why) => format!("UNKNOWN: {why}"),
        }
    }
}

/// The model id as the provider resolves it (the router's path parameters arrive decoded):
/// case-insensitive, Bedrock ARNs and inference-profile prefixes stripped, Gemini's
/// `models/` stripped.
fn canon_model(model: &str) -> String {
    let mut m = model.trim().to_ascii_lowercase();
    if m.starts_with("arn:")
        && let Some(at) = m.rfind('/')
    {
        m = m[at + 1..].to_owned();
    }
    if let Some(rest) = m.strip_prefix("models/") {
        m = rest.to_owned();
    }
    for prefix in [
        "us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca.",
    ] {
        // `us.anthropic.claude-...`: a cross-region profile of a `<vendor>.<model>` id.
        if let Some(rest) = m.strip_prefix(prefix)
            && rest.contains('.')
        {
            m = rest.to_owned();
            break;
        }
    }
    m
}

/// `Type::"id"` -> (`Type`, `id`).
fn uid(s: &str) -> Option<(&str, &str)> {
    let (ty, rest) = s.split_once("::\"")?;
    Some((ty, rest.strip_suffix('"')?))
}

/// How cedar-gate must have classified a request for `handler` to be the one that ran.
enum Expect {
    /// A model ran: one of these actions, on the model the router ran.
    Model(&'static [&'static str]),
    /// An MCP server: `tools/call` must be `call_tool` on the tool that ran.
    Tool,
    /// No model: cedar-gate must have decided on the path the router routed on.
    Path,
    /// The catch-all: nothing governed ran.
    Inert,
}

fn expect(handler: &str) -> Expect {
    match handler.split(':').next().unwrap_or_default() {
        "chat_completions" | "responses" | "anthropic_messages" | "azure_chat" | "engines_chat" => {
            Expect::Model(&["chat"])
        }
        "bedrock_invoke" | "bedrock_converse" | "gemini" => Expect::Model(&["chat"]),
        "completions" => Expect::Model(&["complete"]),
        "audio_transcriptions" => Expect::Model(&["audio"]),
        "embeddings" => Expect::Model(&["embed"]),
        // Metadata, no model runs: `/v1/models/` (empty id) is a listing to some routers.
        "models_get" => Expect::Model(&["get_model", "list_models"]),
        "vertex" => Expect::Model(&["chat"]),
        // A run without a model override runs the assistant's: unseen by the gateway.
        "threads_runs" => Expect::Model(&["chat", "opaque_inference"]),
        "realtime" => Expect::Model(&["realtime", "opaque_inference"]),
        "assistants" => Expect::Model(&["configure_model"]),
        "mcp_files" | "mcp_github" => Expect::Tool,
        "catch_all" => Expect::Inert,
        _ => Expect::Path,
    }
}

/// Checks one handler run against cedar-gate's audit event for it; `Some(why)` if it breaks
/// the invariant.
fn check_run(rec: &Value, audit: Option<&Value>) -> (String, Option<String>) {
    let Some(audit) = audit else {
        let why = match rec["decision_id"].as_str() {
            None => "reached the upstream without a cedar-gate decision id",
            Some(_) => "no audit event for the decision id the upstream received",
        };
        return ("nothing".to_owned(), Some(why.to_owned()));
    };
    let action = audit["action"]
        .as_str()
        .and_then(uid)
        .map_or("?", |(_, a)| a);
    let resource = audit["resource"].as_str().unwrap_or_default();
    let decided = format!(
        "{} {action} on {resource} (path {:?})",
        audit["decision"].as_str().unwrap_or("?"),
        audit["path"].as_str().unwrap_or("?")
    );
    if audit["decision"] != "allow" {
        return (decided, Some("cedar-gate did not allow it".to_owned()));
    }
    let handler = rec["handler"].as_str().unwrap_or_default();
    let resource_of = |ty: &str| match uid(resource) {
        Some((t, id)) if t == ty => Some(id.to_owned()),
        _ => None,
    };
    let why = match expect(handler) {
        Expect::Model(actions) => {
            let ran = rec["model"].as_str().map(canon_model);
            let model = resource_of("Model").or_else(|| audit["model"].as_str().map(str::to_owned));
            if ran.is_some() && ran != model.as_deref().map(canon_model) {
                Some(format!(
                    "the upstream ran model {ran:?}, cedar-gate decided on {model:?}"
                ))
            } else if !actions.contains(&action) {
                Some(format!(
                    "the upstream ran {handler}, cedar-gate classified `{action}`"
                ))
            } else {
                None
            }
        }
        Expect::Tool if rec["rpc"] == "tools/call" => {
            let ran = rec["tool"].as_str();
            let tool = resource_of("Tool").or_else(|| audit["tool"].as_str().map(str::to_owned));
            (action != "call_tool" || tool.as_deref() != ran).then(|| {
                format!("the upstream ran tool {ran:?}, cedar-gate decided {action} on {tool:?}")
            })
        }
        Expect::Tool | Expect::Path => {
            let ran = rec["path"].as_str().unwrap_or_default();
            let seen = audit["path"].as_str().unwrap_or_default();
            let seen = seen.split('?').next().unwrap_or_default();
            (!seen.eq_ignore_ascii_case(ran))
                .then(|| format!("the upstream routed on {ran:?}, cedar-gate decided on {seen:?}"))
        }
        Expect::Inert => None,
    };
    (decided, why)
}

/// The outcome of one request from its answer, the router's records for it and the audit.
fn outcome(resp: &RawResponse, runs: &[&Value], audits: &HashMap<String, Value>) -> Outcome {
    match runs {
        [] => {
            let json = resp.json();
            if let (Some(status), Some(_)) = (resp.status, json["error"].as_str()) {
                let reason = json["reason"].as_str().unwrap_or("?").to_owned();
                Outcome::Gate { status, reason }
            } else if resp.timed_out {
                Outcome::Unknown(format!("no complete answer within {ANSWER:?}"))
            } else if resp.status == Some(503) {
                Outcome::Unknown("503: the authorizer did not answer in time".to_owned())
            } else if resp.status == Some(200) {
                Outcome::Unknown("200 without any handler run".to_owned())
            } else {
                Outcome::NotRun(resp.status)
            }
        }
        [rec] => {
            let audit = rec["decision_id"].as_str().and_then(|id| audits.get(id));
            let (decided, violation) = check_run(rec, audit);
            Outcome::Ran(Run {
                handler: rec["handler"].as_str().unwrap_or_default().to_owned(),
                subject: rec["model"]
                    .as_str()
                    .or_else(|| rec["tool"].as_str())
                    .map(str::to_owned),
                path: rec["path"].as_str().unwrap_or_default().to_owned(),
                decided,
                violation,
                bypass: false,
            })
        }
        more => Outcome::Unknown(format!("{} handler runs for one request", more.len())),
    }
}

/// The audit events of `wanted` decision ids from every gate's audit file, by decision id,
/// waiting (bounded) for the audit writer to catch up. Missing ones are simply absent. Every
/// event is checked against `proto/audit.proto` on the way.
async fn audit_events(gates: &[CedarGate], wanted: &[&str]) -> HashMap<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let events: HashMap<String, Value> = gates
            .iter()
            .flat_map(CedarGate::audit_lines)
            .filter_map(|e| Some((e["decision_id"].as_str()?.to_owned(), e.clone())))
            .collect();
        if wanted.iter().all(|id| events.contains_key(*id)) || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// === the test ===

/// One request's key: (policy set, profile, base, spelling) indices.
type Key = (usize, usize, usize, usize);

fn test_id((p, f, b, s): Key) -> String {
    format!("diff-{p}-{f}-{b}-{s}")
}

async fn send(raw: RawClient, req: Req, id: String) -> RawResponse {
    let mut headers = vec![
        format!("x-test-id: {id}").into_bytes(),
        b"connection: close".to_vec(),
    ];
    headers.extend(req.headers);
    if !req.body.is_empty() {
        let ct = req.content_type.as_deref().unwrap_or("application/json");
        headers.push(format!("content-type: {ct}").into_bytes());
        headers.push(format!("content-length: {}", req.body.len()).into_bytes());
    }
    let head = head(&req.method, &req.target, &headers);
    // A 503 is Envoy giving up on the authorizer (0.5 s) on a busy machine: ask again.
    let mut resp = RawResponse::default();
    for attempt in 0..5u64 {
        resp = raw
            .send(head.clone(), req.body.clone(), false, ANSWER)
            .await;
        if resp.status != Some(503) && !resp.timed_out {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
    }
    resp
}

/// The policy directory of a policy set.
fn policy_dir(policies: Policies, scratch: &Path) -> std::path::PathBuf {
    match policies {
        Policies::Shipped => repo_path("cedar"),
        Policies::DenyList => {
            let dir = scratch.join("deny-list");
            std::fs::create_dir_all(&dir).unwrap();
            for file in ["schema.cedarschema", "entities.json"] {
                std::fs::copy(repo_path("cedar").join(file), dir.join(file)).unwrap();
            }
            std::fs::write(dir.join("deny-list.cedar"), DENY_LIST).unwrap();
            dir
        }
    }
}

/// Checks the plain spellings against what their base requests want, and marks every run
/// of a model or tool that cedar-gate refuses in a plain spelling, under one policy set and
/// profile, as a bypass.
fn judge((p, f): (usize, usize), bases: &[Base], outcomes: &mut HashMap<Key, Outcome>) {
    let mut refused = Vec::new();
    for (b, base) in bases.iter().enumerate() {
        let Some(plain) = outcomes.get_mut(&(p, f, b, 0)) else {
            continue;
        };
        let wrong = match (&*plain, base.wants(POLICIES[p])) {
            (Outcome::Ran(run), Want::Runs) if run.handler == base.handler => None,
            (_, Want::Runs) => Some("reach its handler"),
            (Outcome::Gate { status: 403, .. }, Want::Refused) => None,
            (_, Want::Refused) => Some("be refused with cedar-gate's 403"),
            (_, Want::Either) => None,
        };
        match (wrong, &mut *plain) {
            (Some(wrong), Outcome::Ran(run)) => {
                run.violation = Some(format!("the plain spelling must {wrong}"));
            }
            (Some(wrong), other) => {
                *other = Outcome::Unknown(format!(
                    "the plain spelling must {wrong}; got {}",
                    other.describe()
                ));
            }
            (None, _) => {}
        }
        if matches!(plain, Outcome::Gate { .. }) {
            refused.push(refused_key(base.handler, base.subject.as_deref()));
        }
    }
    for ((kp, kf, _, _), outcome) in outcomes.iter_mut() {
        if (*kp, *kf) != (p, f) {
            continue;
        }
        if let Outcome::Ran(run) = outcome
            && let Some(key) = governed_key(&run.handler, run.subject.as_deref())
            && refused.contains(&key)
        {
            run.bypass = true;
            run.violation.get_or_insert_with(|| {
                "refused in its plain spelling, it ran in this one".to_owned()
            });
        }
    }
}

/// What a refusal protects: a model (on any handler that runs models), a tool, or a
/// subjectless handler (the admin path).
fn refused_key(handler: &str, subject: Option<&str>) -> String {
    match subject {
        Some(s) if s.contains('/') && handler.starts_with("mcp_") => format!("tool {s}"),
        Some(s) => format!("model {}", canon_model(s)),
        None => format!("handler {handler}"),
    }
}

/// The [`refused_key`] of a run, if the run is governed: running a model (not reading its
/// metadata), calling a tool, or a subjectless handler other than the catch-all.
fn governed_key(handler: &str, subject: Option<&str>) -> Option<String> {
    match (expect(handler), subject) {
        (Expect::Inert, _) => None,
        (Expect::Model(actions), _) if actions.contains(&"get_model") => None,
        (Expect::Model(_) | Expect::Tool, None) => None,
        (_, subject) => Some(refused_key(handler, subject)),
    }
}

/// The compact table of one policy set (a character per spelling, per profile), counts per
/// profile, and the failing cells in words (bypasses first). Returns the failure count.
fn report(
    policies: Policies,
    bases: &[Base],
    outcomes: &HashMap<Key, Outcome>,
    p: usize,
) -> (String, usize) {
    let mut out = format!("\n== policies: {policies:?} ==\n{:<18}", "base");
    for profile in PROFILES {
        let _ = write!(out, " {:<width$}", profile.label(), width = SPELLINGS.len());
    }
    out.push('\n');
    let (mut bypasses, mut others) = (Vec::new(), Vec::new());
    let mut counts = vec![HashMap::<char, usize>::new(); PROFILES.len()];
    for (b, base) in bases.iter().enumerate() {
        let _ = write!(out, "{:<18}", base.name);
        for (f, profile) in PROFILES.iter().enumerate() {
            out.push(' ');
            for (s, (spelling, _)) in SPELLINGS.iter().enumerate() {
                let Some(o) = outcomes.get(&(p, f, b, s)) else {
                    out.push(' ');
                    continue;
                };
                let cell = o.cell();
                out.push(cell);
                *counts[f].entry(cell).or_default() += 1;
                let line = format!(
                    "  {policies:?} {} {} [{spelling}]: {}",
                    profile.label(),
                    base.name,
                    o.describe()
                );
                match cell {
                    'X' => bypasses.push(line),
                    'x' | '?' => others.push(line),
                    _ => {}
                }
            }
        }
        out.push('\n');
    }
    for (profile, counts) in PROFILES.iter().zip(&counts) {
        let mut counts: Vec<_> = counts.iter().collect();
        counts.sort();
        let _ = writeln!(out, "  {}: {counts:?}", profile.label());
    }
    let failures = bypasses.len() + others.len();
    for (what, lines, cap) in [
        ("bypasses", &bypasses, 150),
        ("other failures", &others, 60),
    ] {
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(out, "  -- {} {what}:", lines.len());
        for line in lines.iter().take(cap) {
            let _ = writeln!(out, "{line}");
        }
        if lines.len() > cap {
            let _ = writeln!(out, "  ... and {} more", lines.len() - cap);
        }
    }
    (out, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_differential_every_spelling_runs_what_cedar_gate_decided() {
    let scratch = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let router = PyRouter::start().await;
    let shipped_envoy = std::fs::read_to_string(repo_path("envoy/envoy.yaml")).unwrap();
    let bases = Arc::new(bases());

    let mut gates = Vec::new();
    let mut envoys = Vec::new();
    for (p, policies) in POLICIES.into_iter().enumerate() {
        let gate = CedarGate::start_with(GateOptions {
            policy_dir: policy_dir(policies, scratch.path()),
            config: format!("{DEFAULT_CONFIG}{}", shipped_routes_yaml()),
        })
        .await;
        for (f, profile) in PROFILES.into_iter().enumerate() {
            let config = scratch.path().join(format!("envoy-{p}-{f}.yaml"));
            std::fs::write(&config, profile.config(&shipped_envoy)).unwrap();
            let envoy = Envoy::start_config(&config, gate.grpc_addr(), router.addr(), &pki).await;
            envoys.push(((p, f), envoy));
        }
        gates.push(gate);
    }

    let cert = pki.client(RESEARCH_AGENT);
    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = JoinSet::new();
    for ((p, f), envoy) in &envoys {
        let raw = RawClient::new(&pki, &cert, envoy.listener_port());
        for (b, base) in bases.iter().enumerate() {
            for (s, (_, spell)) in SPELLINGS.iter().enumerate() {
                let Some(req) = spell(base) else { continue };
                let key = (*p, *f, b, s);
                let (raw, limit) = (raw.clone(), limit.clone());
                tasks.spawn(async move {
                    let _permit = limit.acquire_owned().await.unwrap();
                    (key, send(raw, req, test_id(key)).await)
                });
            }
        }
    }
    let mut answers = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (key, resp) = done.unwrap();
        answers.insert(key, resp);
    }
    eprintln!(
        "differential: {} requests answered after {:?}",
        answers.len(),
        started.elapsed()
    );

    // Every handler run, by test id; every audit event of a run, by decision id.
    let records = router.records();
    let mut runs: HashMap<String, Vec<&Value>> = HashMap::new();
    let mut unattributed = Vec::new();
    for rec in &records {
        match rec["test_id"].as_str() {
            Some(id) if id.starts_with("diff-") => runs.entry(id.to_owned()).or_default().push(rec),
            _ => unattributed.push(rec.to_string()),
        }
    }
    let wanted: Vec<&str> = records
        .iter()
        .filter_map(|r| r["decision_id"].as_str())
        .collect();
    let audits = audit_events(&gates, &wanted).await;
    eprintln!("differential: audit read after {:?}", started.elapsed());

    let mut outcomes: HashMap<Key, Outcome> = HashMap::new();
    for (&key, resp) in &answers {
        let these = runs
            .get(&test_id(key))
            .map(Vec::as_slice)
            .unwrap_or_default();
        outcomes.insert(key, outcome(resp, these, &audits));
    }

    for &(key, _) in &envoys {
        judge(key, &bases, &mut outcomes);
    }

    let mut text = String::new();
    let mut failures = 0;
    for (p, policies) in POLICIES.into_iter().enumerate() {
        let (table, count) = report(policies, &bases, &outcomes, p);
        text.push_str(&table);
        failures += count;
    }
    let legend: Vec<String> = SPELLINGS
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{}={name}", i % 10))
        .collect();
    eprintln!(
        "{text}\nlegend: one character per spelling ({}), per profile\n  \
         G = cedar-gate refused (g: its 400), e = refused before or after cedar-gate, nothing \
         ran, . = the handler cedar-gate classified ran, X = BYPASS (a model or tool refused \
         in the plain spelling ran), x = the handler that ran is not the one cedar-gate \
         classified, ? = unknown\n\
         {} requests, {failures} failing",
        legend.join(", "),
        answers.len()
    );
    assert!(
        unattributed.is_empty(),
        "handler runs without a test id: {unattributed:#?}"
    );
    assert_eq!(
        failures, 0,
        "differential test: {failures} failing cells (table above)"
    );
}
