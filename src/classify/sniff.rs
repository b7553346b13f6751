//! What a request names when no provider table reads it: a request on no
//! route whose path is no provider endpoint, or an unknown endpoint on a
//! provider route.
//!
//! Off every route, with a route table configured, a request that looks like
//! a model call or an MCP message is `Action::"unclassified"`, not plain
//! `http`: the upstream behind that path may well run a model (Ollama's
//! `/api/chat`, a vLLM `/rerank`, an MCP server at `/mcp`), and a permit
//! written for a plain route must not cover it. An operator whose own API
//! only looks like one declares a `protocol: http` route for it.
//!
//! When such a request names a model, the `unclassified` operation's
//! resource is that `Model`, not the route, so a policy that forbids the
//! model forbids it there too (a deny-list's `permit (principal, action,
//! resource)` must not run a forbidden model on an endpoint cedar-gate does
//! not know). Several different models: refused as `model_ambiguous`.
//!
//! Looks like a model call or an MCP message:
//! - the body is JSON (whatever the `content-type`: Go and many Python
//!   servers ignore it) whose top-level object, or a batch's first object,
//!   has a key `model`, `modelId`, `foundationModel` (Bedrock
//!   `invokeInlineAgent`) or `jsonrpc`, compared as Go's
//!   `encoding/json` matches keys (case folded: `JSONRPC`, and `jſonrpc`
//!   with U+017F, count), escapes decoded; or any later object of a batch
//!   has a key `jsonrpc` (a JSON-RPC 2.0 server runs the valid elements of
//!   a batch whatever the invalid ones are);
//! - the body is a form with a `model` field (urlencoded, or multipart,
//!   where a part named `model` in any case, or named with RFC 2231
//!   `name*=`, counts);
//! - the query names a model (`model`, `deployment`, `modelId`, `model_id`);
//! - the path is a model server's that names its model
//!   ([`endpoints::SERVING`]: `/predictions/{model}`, `/v2/models/{model}/infer`,
//!   ...), whatever the method: TorchServe runs `PUT` too, and a server may
//!   take a method its row does not list;
//! - the JSON body's top-level object has the keys `name` and `arguments` (a
//!   tool call without a JSON-RPC envelope), or the path is a REST bridge's
//!   tool call (`…/tools/call`, `…/call_tool`: LiteLLM's `/mcp-rest/tools/call`);
//! - the body is a Bedrock `retrieveAndGenerate` request: a top-level
//!   `retrieveAndGenerateConfiguration`, whose
//!   `knowledgeBaseConfiguration.modelArn` and
//!   `externalSourcesConfiguration.modelArn` are the models it names.
//!
//! Refused (`body_invalid`): a body that starts like JSON but cannot be read
//! to its end (cut by Envoy at `max_request_bytes`, padded, malformed), a
//! JSON `model` that is not a string, a multipart form whose model part
//! cannot be read strictly. The gate cannot rule a model out, so it fails
//! closed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::classify::ai;
use crate::classify::body::BodyError;
use crate::classify::json::{Json, Strict, folds_to};
use crate::classify::{
    ClassifyError, NameError, Protocol, endpoints, form, mcp_rest, model, provider,
};
use crate::request::HttpRequest;
use crate::target::decode_segment;

/// Top-level JSON keys that name a model (`foundationModel`: Bedrock Agent
/// Runtime's `invokeInlineAgent`).
const MODEL_KEYS: &[&str] = &["model", "modelId", "foundationModel"];
/// The top-level JSON key of a JSON-RPC message.
const RPC_KEY: &str = "jsonrpc";
/// The top-level key of a Bedrock `retrieveAndGenerate` request, and where
/// under it the model is named.
const RAG_KEY: &str = "retrieveAndGenerateConfiguration";
const RAG_MODELS: [&str; 2] = ["knowledgeBaseConfiguration", "externalSourcesConfiguration"];

/// What a request not read by any provider table names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sniffed {
    /// It looks like a model call or an MCP message.
    pub ai: bool,
    /// The models it names (body, form or query), as sent: a server may run
    /// any of them.
    pub models: Vec<String>,
}

/// Reads what a request names without knowing its endpoint (see the module
/// doc). A body that starts like JSON but cannot be read to its end, a
/// `model` that is not a string, or a form that names its model in a way an
/// upstream could read otherwise is an error: the gate cannot rule a model
/// out, so the request is refused.
pub fn sniff(req: &HttpRequest) -> Result<Sniffed, ClassifyError> {
    let mut found = Sniffed::default();
    let encoded = req
        .header("content-encoding")
        .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
    if encoded && !req.body.is_empty() {
        return Err(BodyError::Invalid(
            "compressed body (`content-encoding` is not `identity`): it may name a model"
                .to_owned(),
        )
        .into());
    }
    match wide_text(&req.body) {
        Some(text) => json(text.as_bytes(), &mut found)?,
        None => json(&req.body, &mut found)?,
    }
    forms(req, &mut found)?;
    // A REST bridge's MCP tool call (LiteLLM `/mcp-rest/tools/call`) runs a
    // tool on a server only the bridge knows.
    if mcp_rest::is_tool_call_path(&req.path) {
        found.ai = true;
    }
    // A model server's path (`/predictions/{model}`) names its model for any
    // method; the row's own method is classified before this is asked.
    if let Some(raw) = endpoints::serving_model(&req.path) {
        found.ai = true;
        found
            .models
            .push(decode_segment(raw).ok_or(NameError::NotUtf8("model"))?);
    }
    for key in provider::QUERY_MODEL_KEYS {
        if let Some(model) = provider::query_param(&req.query, key)? {
            found.ai = true;
            found.models.push(model);
        }
    }
    Ok(found)
}

/// Whether a request on no route looks like a model call or an MCP message.
/// A request that cannot be read far enough to tell looks like one.
pub fn looks_like_ai(req: &HttpRequest) -> bool {
    sniff(req).map_or(true, |s| s.ai)
}

/// A JSON body's top-level keys: models and JSON-RPC.
fn json(body: &[u8], found: &mut Sniffed) -> Result<(), ClassifyError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let Some(first) = body.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Ok(());
    };
    if !matches!(first, b'{' | b'[') {
        return Ok(());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    TopLevel { found: &mut *found }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| {
            BodyError::Invalid(format!(
                "the body starts like JSON but cannot be read to its end ({e}), so it may name a model"
            ))
            .into()
        })
}

/// A body in UTF-16 or UTF-32, told apart the way Python's `json.loads`
/// does for bytes (a byte-order mark, else where the NUL bytes are), as
/// UTF-8 text: a Python upstream reads such a body as JSON. `None` for any
/// other body, or one that does not decode.
fn wide_text(b: &[u8]) -> Option<String> {
    let (units, big, skip) = match b {
        [0, 0, 0xFE, 0xFF, ..] => (4, true, 4),
        [0xFF, 0xFE, 0, 0, ..] => (4, false, 4),
        [0xFE, 0xFF, ..] => (2, true, 2),
        [0xFF, 0xFE, ..] => (2, false, 2),
        [0, 0, _, _, ..] => (4, true, 0),
        [0, _, _, _, ..] => (2, true, 0),
        [_, 0, 0, 0, ..] => (4, false, 0),
        [_, 0, _, _, ..] => (2, false, 0),
        [0, _] => (2, true, 0),
        [_, 0] => (2, false, 0),
        _ => return None,
    };
    let rest = &b[skip..];
    if !rest.len().is_multiple_of(units) {
        return None;
    }
    let word = |c: &[u8]| -> u32 {
        let c = c.iter().map(|&x| u32::from(x));
        if big {
            c.fold(0, |acc, x| (acc << 8) | x)
        } else {
            c.rev().fold(0, |acc, x| (acc << 8) | x)
        }
    };
    if units == 2 {
        let words = rest.chunks_exact(2).map(|c| word(c) as u16);
        char::decode_utf16(words)
            .collect::<Result<String, _>>()
            .ok()
    } else {
        rest.chunks_exact(4)
            .map(|c| char::from_u32(word(c)))
            .collect()
    }
}

/// Records the top-level object's (or a batch's first element's) model
/// strings and JSON-RPC marker; other values are skipped without being kept.
struct TopLevel<'f> {
    found: &'f mut Sniffed,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // `name` with `arguments`: a tool call without a JSON-RPC envelope
        // (a REST bridge's `{"name": ..., "arguments": {...}}`).
        let (mut name, mut arguments) = (false, false);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            name |= folds_to(&key, "name");
            arguments |= folds_to(&key, "arguments");
            self.found.ai |= name && arguments;
            if MODEL_KEYS.iter().any(|k| *k == key || folds_to(&key, k)) {
                self.found.ai = true;
                let model = map.next_value::<serde_json::Value>()?;
                match model {
                    serde_json::Value::String(m) => self.found.models.push(m),
                    serde_json::Value::Null => {}
                    _ => {
                        return Err(serde::de::Error::custom(format_args!(
                            "`{key}` is not a string"
                        )));
                    }
                }
                continue;
            }
            if key == RPC_KEY || folds_to(&key, RPC_KEY) {
                self.found.ai = true;
            }
            if folds_to(&key, RAG_KEY) {
                self.found.ai = true;
                let config = map.next_value_seed(Strict)?;
                rag_models(&config, &mut self.found.models).map_err(serde::de::Error::custom)?;
                continue;
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // A JSON-RPC batch: its first element is read like the top level, and
        // every later one for the JSON-RPC marker. A server following
        // JSON-RPC 2.0 answers an invalid element (`{}`, `1`) with an error
        // and still runs the others, so a first element that is no message
        // says nothing about the rest.
        if seq
            .next_element_seed(TopLevel { found: self.found })?
            .is_some()
        {
            while let Some(rpc) = seq.next_element_seed(RpcMarker)? {
                self.found.ai |= rpc;
            }
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The models a Bedrock `retrieveAndGenerateConfiguration` names
/// (`knowledgeBaseConfiguration.modelArn`, `externalSourcesConfiguration.modelArn`),
/// read as the provider readers read them: a duplicate key, a key that
/// case-insensitive readers take for one of these, or a `modelArn` that is
/// not a string is an error (it could name a model).
fn rag_models(config: &Json<'_>, models: &mut Vec<String>) -> Result<(), BodyError> {
    for part in RAG_MODELS {
        match ai::nested(config, &[part, "modelArn"])? {
            None => {}
            // A Bedrock model: its ARN or inference profile is the model
            // id it names, as on a `bedrock` route, whatever route it is
            // read on (a bad name is refused there).
            Some(Json::String(m)) => models.push(
                model::canonical(Protocol::Bedrock, m, &BTreeMap::new())
                    .unwrap_or_else(|_| m.as_ref().to_owned()),
            ),
            Some(_) => return Err(BodyError::field(&format!("{part}.modelArn"), "a string")),
        }
    }
    Ok(())
}

/// Whether a later element of a batch is an object with a JSON-RPC marker
/// (other values are skipped).
struct RpcMarker;

impl<'de> DeserializeSeed<'de> for RpcMarker {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RpcMarker {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut rpc = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            rpc |= key == RPC_KEY || folds_to(&key, RPC_KEY);
            map.next_value::<IgnoredAny>()?;
        }
        Ok(rpc)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// A form body's `model` field: an `application/x-www-form-urlencoded` key,
/// or a `multipart/form-data` part. A multipart body is first scanned
/// loosely, line by line, for a part named `model` in any case or named with
/// RFC 2231 `name*=`; only then is it read strictly for the value.
fn forms(req: &HttpRequest, found: &mut Sniffed) -> Result<(), ClassifyError> {
    let Some(ct) = req.header("content-type") else {
        return Ok(());
    };
    let is = |media: &str| {
        ct.trim_start()
            .get(..media.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(media))
    };
    if is("application/x-www-form-urlencoded") {
        let text = String::from_utf8_lossy(&req.body);
        if let Some(model) = provider::query_param(&text, "model")? {
            found.ai = true;
            found.models.push(model);
        }
        return Ok(());
    }
    if !is("multipart/form-data") || !names_a_model_part(&req.body) {
        return Ok(());
    }
    found.ai = true;
    let boundary =
        form::boundary(ct)?.ok_or_else(|| BodyError::field("content-type", "a form boundary"))?;
    let form = form::parse(&req.body, boundary)?;
    match form.text("model")? {
        Some(model) => found.models.push(model.to_owned()),
        None => {
            return Err(BodyError::Invalid(
                "a form part is named `model` in a way an upstream may read as the model"
                    .to_owned(),
            )
            .into());
        }
    }
    Ok(())
}

/// Whether a multipart body has a `Content-Disposition` naming a part
/// `model` (any case) or naming a part with `name*=`.
fn names_a_model_part(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).split('\n').any(|line| {
        let Some((name, params)) = line.trim_start().split_once(':') else {
            return false;
        };
        name.trim().eq_ignore_ascii_case("content-disposition")
            && params.split(';').skip(1).any(|p| {
                let Some((k, v)) = p.split_once('=') else {
                    return false;
                };
                let k = k.trim();
                let v = v.trim().trim_end_matches('\r').trim().trim_matches('"');
                k.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("name*"))
                    || (k.eq_ignore_ascii_case("name") && v.eq_ignore_ascii_case("model"))
            })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn post(body: &str, headers: &[(&str, &str)]) -> HttpRequest {
        let headers = crate::request::header_list(headers.iter().copied());
        HttpRequest {
            method: "POST".into(),
            path: "/x".into(),
            body: body.as_bytes().to_vec(),
            headers,
            ..Default::default()
        }
    }

    fn models(req: &HttpRequest) -> Vec<String> {
        let s = sniff(req).unwrap();
        assert!(s.ai, "{req:?}");
        s.models
    }

    #[test]
    fn json_bodies_naming_a_model_or_rpc() {
        for (body, want) in [
            (r#"{"model":"llama3","messages":[]}"#, vec!["llama3"]),
            (r#"  {"stream":false,"MODEL":"llama3"}"#, vec!["llama3"]),
            (r#"{"mod\u0065l":"bge"}"#, vec!["bge"]),
            ("\u{FEFF}{\"modelId\":\"m\"}", vec!["m"]),
            (
                "{\"FoundationModel\":\"m\",\"instruction\":\"x\"}",
                vec!["m"],
            ),
            (
                r#"{"retrieveAndGenerateConfiguration":{"externalSourcesConfiguration":{"modelArn":"arn:aws:bedrock:us-east-1::foundation-model/Meta.X"}}}"#,
                vec!["meta.x"],
            ),
            (r#"{"name":"delete_repository","arguments":{}}"#, vec![]),
            (r#"{"Arguments":{},"NAME":"t"}"#, vec![]),
            (r#"{"model":"a","Model":"b"}"#, vec!["a", "b"]),
            (r#"{"model":null,"jsonrpc":"2.0"}"#, vec![]),
            (
                r#"[{"jsonrpc":"2.0","method":"tools/call","id":1}]"#,
                vec![],
            ),
            (r#"{"a":[1,2,{"b":"c"}],"jsonrpc":"2.0"}"#, vec![]),
        ] {
            assert_eq!(models(&post(body, &[])), want, "{body}");
        }
    }

    #[test]
    fn wide_json_is_read_like_python_reads_it() {
        let json = r#"{"model":"o1"}"#;
        let utf16 = |big: bool, bom: bool| -> Vec<u8> {
            let mut out: Vec<u8> = if bom {
                if big {
                    vec![0xFE, 0xFF]
                } else {
                    vec![0xFF, 0xFE]
                }
            } else {
                vec![]
            };
            for u in json.encode_utf16() {
                out.extend(if big {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                });
            }
            out
        };
        let utf32 = |big: bool| -> Vec<u8> {
            json.chars()
                .flat_map(|c| {
                    if big {
                        u32::from(c).to_be_bytes()
                    } else {
                        u32::from(c).to_le_bytes()
                    }
                })
                .collect()
        };
        for body in [
            utf16(true, true),
            utf16(false, true),
            utf16(true, false),
            utf16(false, false),
            utf32(true),
            utf32(false),
        ] {
            let mut req = post("", &[]);
            req.body = body;
            assert_eq!(models(&req), vec!["o1"], "{:?}", req.body);
        }
        // A binary upload that only starts with a NUL is not text.
        let mut req = post("", &[]);
        req.body = vec![0, 0xD8, 0, 0, 1, 2, 3];
        assert_eq!(sniff(&req).unwrap(), Sniffed::default());
    }

    #[test]
    fn compressed_bodies_are_refused() {
        let req = post(r#"{"model":"o1"}"#, &[("content-encoding", "gzip")]);
        assert!(matches!(sniff(&req), Err(ClassifyError::Body(_))));
        let req = post("", &[("content-encoding", "gzip")]);
        assert_eq!(sniff(&req).unwrap(), Sniffed::default());
        let req = post(r#"{"model":"o1"}"#, &[("content-encoding", "identity")]);
        assert_eq!(models(&req), vec!["o1"]);
    }

    #[test]
    fn unreadable_json_is_refused() {
        for body in [
            r#"{"padding":"aaaaaaaa"#,
            r#"{"a":1}{"model":"x"}"#,
            r#"{"a":1,}"#,
            r#"{"model":{"name":"o1"}}"#,
            r#"{"model":["o1"]}"#,
        ] {
            let err = sniff(&post(body, &[])).unwrap_err();
            assert!(matches!(err, ClassifyError::Body(_)), "{body}: {err:?}");
            assert!(looks_like_ai(&post(body, &[])));
        }
    }

    #[test]
    fn plain_requests_do_not_look_like_ai() {
        for body in [
            r#"{"name":"x","nested":{"model":"not top level"}}"#,
            r#"[{"name":"x"},{"model":"only the first element counts"}]"#,
            "model=gpt-4o",
            "",
            "  ",
            "[1,2,3]",
        ] {
            assert_eq!(
                sniff(&post(body, &[])).unwrap(),
                Sniffed::default(),
                "{body}"
            );
        }
    }

    #[test]
    fn a_json_rpc_message_anywhere_in_a_batch_looks_like_ai() {
        for body in [
            r#"[{}, {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}]"#,
            r#"[1, [], {"JSONRPC":"2.0","id":1,"method":"tools/call"}]"#,
            "[null, {\"j\u{17F}onrpc\":\"2.0\",\"method\":\"tools/call\"}]",
        ] {
            let found = sniff(&post(body, &[])).unwrap();
            assert!(found.ai, "{body}");
            assert!(found.models.is_empty(), "{body}");
        }
    }

    #[test]
    fn forms_naming_a_model() {
        let ct = [("content-type", "multipart/form-data; boundary=b")];
        let form = |part: &str| format!("--b\r\n{part}\r\n\r\nwhisper-1\r\n--b--\r\n");
        let body = form("Content-Disposition: form-data; name=\"model\"");
        assert_eq!(models(&post(&body, &ct)), vec!["whisper-1"]);
        for part in [
            "content-disposition: form-data; NAME=Model",
            "Content-Disposition: form-data; name*=UTF-8''model",
            "Content-Disposition: form-data; name=\"file\"; name=\"model\"",
        ] {
            let err = sniff(&post(&form(part), &ct)).unwrap_err();
            assert!(matches!(err, ClassifyError::Body(_)), "{part}");
        }
        let file = form("Content-Disposition: form-data; name=\"file\"; filename=\"model\"");
        assert_eq!(sniff(&post(&file, &ct)).unwrap(), Sniffed::default());
        assert_eq!(
            sniff(&post(&body, &[("content-type", "text/plain")])).unwrap(),
            Sniffed::default()
        );
        let urlencoded = [("content-type", "application/x-www-form-urlencoded")];
        assert_eq!(models(&post("a=1&Model=x", &urlencoded)), vec!["x"]);
        assert_eq!(
            sniff(&post("a=model", &urlencoded)).unwrap(),
            Sniffed::default()
        );
    }

    #[test]
    fn queries_naming_a_model() {
        let mut req = post("", &[]);
        for (q, want) in [
            ("model=gpt-4o-realtime", "gpt-4o-realtime"),
            ("a=1&MODEL=x", "x"),
            ("%6Dodel=x", "x"),
            ("deployment=gpt4-prod", "gpt4-prod"),
        ] {
            req.query = q.into();
            assert_eq!(models(&req), vec![want], "{q}");
        }
        req.query = "models=x".into();
        assert_eq!(sniff(&req).unwrap(), Sniffed::default());
        req.query = "model=a&model=b".into();
        assert!(sniff(&req).is_err());
    }
}
