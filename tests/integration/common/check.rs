//! ext_authz `CheckRequest`s as Envoy builds them, and readers for the `CheckResponse`s
//! cedar-gate answers, for the gRPC-level tests.

use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, attribute_context,
};
use envoy_types::pb::google::protobuf::value::Kind;

pub use cedar_gate::wire::testkit::Check;

/// HTTP attributes: `method` and `path` on host `models.example.com` over https, with `headers`.
pub fn http(method: &str, path: &str, headers: &[(&str, &str)]) -> attribute_context::HttpRequest {
    Check::new(method, path).headers(headers).into_http()
}

/// A CheckRequest from the peer `principal` (as Envoy's `source.principal`) for `http`.
pub fn check_request(principal: &str, http: attribute_context::HttpRequest) -> CheckRequest {
    Check::get("/").peer(principal).with_http(http).build()
}

/// A CheckRequest from `principal` for [`http`], with Envoy's request id `id`.
pub fn request(
    id: &str,
    principal: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> CheckRequest {
    let mut http = http(method, path, headers);
    http.id = id.into();
    check_request(principal, http)
}

/// The HTTP attributes of `req`, to change them after building it.
pub fn http_mut(req: &mut CheckRequest) -> &mut attribute_context::HttpRequest {
    req.attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .expect("a CheckRequest with HTTP attributes")
}

/// The gRPC status code of the answer (0 allowed, 7 denied, 16 unauthenticated, ...);
/// -1 when there is none.
pub fn code(resp: &CheckResponse) -> i32 {
    resp.status.as_ref().map(|s| s.code).unwrap_or(-1)
}

/// The dynamic metadata `key` as text (numbers and booleans formatted).
pub fn meta(resp: &CheckResponse, key: &str) -> String {
    let v = resp
        .dynamic_metadata
        .as_ref()
        .and_then(|m| m.fields.get(key))
        .and_then(|v| v.kind.clone());
    match v {
        Some(Kind::StringValue(s)) => s,
        Some(Kind::NumberValue(n)) => n.to_string(),
        Some(Kind::BoolValue(b)) => b.to_string(),
        other => panic!("metadata `{key}` missing or odd: {other:?}"),
    }
}

/// A denial's HTTP status (0 if unset), parsed JSON body and headers. Panics on an allow.
pub fn denied(resp: &CheckResponse) -> (i32, serde_json::Value, Vec<(String, String)>) {
    match &resp.http_response {
        Some(HttpResponse::DeniedResponse(d)) => (
            d.status.as_ref().map(|s| s.code).unwrap_or(0),
            serde_json::from_str(&d.body).unwrap(),
            d.headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
        ),
        other => panic!("expected a denial, got {other:?}"),
    }
}

/// The value of header `name` on a denial. Panics on an allow.
pub fn denied_header(resp: &CheckResponse, name: &str) -> Option<String> {
    let Some(HttpResponse::DeniedResponse(d)) = &resp.http_response else {
        panic!("expected a denial, got {resp:?}");
    };
    d.headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key == name)
        .map(|h| h.value.clone())
}

/// The `www-authenticate` challenge of a 401. Panics on any other answer.
pub fn challenge(resp: &CheckResponse) -> String {
    let Some(HttpResponse::DeniedResponse(d)) = &resp.http_response else {
        panic!("expected a denial, got {resp:?}");
    };
    assert_eq!(d.status.as_ref().map(|s| s.code), Some(401), "{d:?}");
    denied_header(resp, "www-authenticate").expect("www-authenticate")
}

/// The identity rejection reason of a 401: its challenge's `error_description`.
pub fn rejection(resp: &CheckResponse) -> String {
    let challenge = challenge(resp);
    challenge
        .split("error_description=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no error_description in {challenge}"))
        .to_owned()
}

/// The machine-readable part of a cedar-gate refusal body, whatever its shape: the generic
/// body itself on plain HTTP routes, else where each protocol's shape keeps `reason`,
/// `decision_id`, `model` and `tool` (src/wire/refusal): the OpenAI / Anthropic error object,
/// Gemini's `ErrorInfo` metadata, Bedrock's top level, a JSON-RPC error's `data` (the first
/// of a batch). `None` when `body` is not a cedar-gate refusal.
pub fn refusal_fields(body: &serde_json::Value) -> Option<serde_json::Value> {
    let first = body.as_array().and_then(|a| a.first()).unwrap_or(body);
    let fields = if first["jsonrpc"] == "2.0" {
        &first["error"]["data"]
    } else if body["error"].is_string() || body["message"].is_string() {
        body
    } else if body["error"]["details"].is_array() {
        &body["error"]["details"][0]["metadata"]
    } else {
        &body["error"]
    };
    fields["reason"].is_string().then(|| fields.clone())
}
