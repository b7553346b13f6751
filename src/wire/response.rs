//! [`Outcome`] → `CheckResponse`: headers for the upstream, the deny answer,
//! and dynamic metadata for Envoy's access log. No policy text and no
//! credential ever goes into a response.

use envoy_types::ext_authz::v3::pb::{
    CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue, HeaderValueOption,
    HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value as PbValue, value::Kind};
use envoy_types::pb::google::rpc;

use crate::config::ResponseConfig;
use crate::decide::Outcome;

/// Header naming the principal, for the upstream.
pub const PRINCIPAL_HEADER: &str = "x-cedar-gate-principal";
/// Header carrying the decision id, for the upstream.
pub const DECISION_ID_HEADER: &str = "x-cedar-gate-decision-id";

/// gRPC status codes Envoy reads from `CheckResponse.status`.
const CODE_OK: i32 = 0;
const CODE_INVALID_ARGUMENT: i32 = 3;
const CODE_PERMISSION_DENIED: i32 = 7;
const CODE_UNAUTHENTICATED: i32 = 16;

/// Builds the answer to Envoy.
pub fn build(outcome: &Outcome, cfg: &ResponseConfig) -> CheckResponse {
    let (code, http_response) = if outcome.decision.is_allow() {
        (CODE_OK, HttpResponse::OkResponse(ok_response(outcome, cfg)))
    } else if outcome.is_unauthenticated() {
        (
            CODE_UNAUTHENTICATED,
            HttpResponse::DeniedResponse(denied(outcome, 401, Some(challenge(outcome, cfg)))),
        )
    } else if outcome.decision.reason.http_status() == 400 {
        (
            CODE_INVALID_ARGUMENT,
            HttpResponse::DeniedResponse(denied(outcome, 400, None)),
        )
    } else {
        (
            CODE_PERMISSION_DENIED,
            HttpResponse::DeniedResponse(denied(outcome, 403, None)),
        )
    };
    CheckResponse {
        status: Some(rpc::Status {
            code,
            message: String::new(),
            details: Vec::new(),
        }),
        http_response: Some(http_response),
        dynamic_metadata: Some(metadata(outcome)),
    }
}

fn ok_response(outcome: &Outcome, cfg: &ResponseConfig) -> OkHttpResponse {
    let mut headers = vec![
        header(
            PRINCIPAL_HEADER,
            &outcome.principal,
            HeaderAppendAction::OverwriteIfExistsOrAdd,
        ),
        header(
            DECISION_ID_HEADER,
            &outcome.decision_id,
            HeaderAppendAction::OverwriteIfExistsOrAdd,
        ),
    ];
    // Headers we set are overwritten; any other client-sent x-cedar-gate-*
    // header is removed so the upstream can trust the whole prefix.
    let mut headers_to_remove: Vec<String> = outcome
        .forged_headers
        .iter()
        .filter(|h| *h != PRINCIPAL_HEADER && *h != DECISION_ID_HEADER)
        .cloned()
        .collect();
    headers_to_remove.extend(cfg.remove_headers.iter().map(|h| h.as_str().to_owned()));
    let mut query_parameters_to_remove = Vec::new();
    if let Some(c) = &outcome.credential {
        // The caller's provider credentials go; the gateway's is set (overwrite).
        headers_to_remove.extend(c.remove_headers.iter().cloned());
        if let Some((name, value)) = &c.set {
            headers_to_remove.retain(|h| *h != **name);
            headers.push(header(
                name,
                value.expose(),
                HeaderAppendAction::OverwriteIfExistsOrAdd,
            ));
        }
        query_parameters_to_remove.extend(c.remove_query.iter().cloned());
    }
    OkHttpResponse {
        headers,
        headers_to_remove,
        query_parameters_to_remove,
        ..Default::default()
    }
}

fn denied(outcome: &Outcome, status: i32, www_authenticate: Option<String>) -> DeniedHttpResponse {
    let error = match status {
        400 => "bad_request",
        401 => "unauthenticated",
        _ => "forbidden",
    };
    let mut body = serde_json::json!({
        "error": error,
        "decision_id": outcome.decision_id,
        "reason": outcome.decision.reason.as_str(),
    });
    // What could not be read one way only (the class, never the request).
    if status == 400
        && let Some(message) = outcome.decision.errors.first()
    {
        body["message"] = message.as_str().into();
    }
    // Which model or tool was refused (what the caller asked for, never why).
    if status == 403 {
        if let Some(model) = &outcome.model {
            body["model"] = model.as_str().into();
        }
        if let Some(tool) = &outcome.tool {
            body["tool"] = tool.as_str().into();
        }
    }
    let mut headers = vec![header(
        "content-type",
        "application/json",
        HeaderAppendAction::OverwriteIfExistsOrAdd,
    )];
    if let Some(challenge) = www_authenticate {
        headers.push(header(
            "www-authenticate",
            &challenge,
            HeaderAppendAction::OverwriteIfExistsOrAdd,
        ));
    }
    DeniedHttpResponse {
        status: Some(HttpStatus { code: status }),
        headers,
        body: body.to_string(),
    }
}

/// The `WWW-Authenticate` challenge of a 401 (RFC 6750 form).
fn challenge(outcome: &Outcome, cfg: &ResponseConfig) -> String {
    let mut out = format!("Bearer realm=\"{}\"", cfg.realm);
    if let Some(rejection) = &outcome.identity_error {
        // The code is a fixed identifier: safe to quote, never a credential.
        out.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{}\"",
            rejection.code
        ));
    }
    if let Some(url) = &cfg.resource_metadata {
        // RFC 9728 §5.1: where the client finds how to obtain a token.
        out.push_str(&format!(", resource_metadata=\"{url}\""));
    }
    out
}

fn header(key: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
    #[allow(deprecated)]
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            raw_value: Vec::new(),
        }),
        append: None,
        append_action: action.into(),
        keep_empty_value: false,
    }
}

fn metadata(outcome: &Outcome) -> Struct {
    let d = &outcome.decision;
    let fields = [
        ("decision", s(if d.is_allow() { "allow" } else { "deny" })),
        ("decision_id", s(&outcome.decision_id)),
        ("reason", s(d.reason.as_str())),
        ("principal", s(&outcome.principal)),
        ("action", s(&outcome.action)),
        ("resource", s(&outcome.resource)),
        ("protocol", s(outcome.protocol.as_str())),
        ("policies", s(&d.policy_ids())),
        ("model", s(outcome.model.as_deref().unwrap_or_default())),
        ("tool", s(outcome.tool.as_deref().unwrap_or_default())),
        // Ids only: the injected provider credential and the caller's API key.
        (
            "credential",
            s(outcome
                .credential
                .as_ref()
                .and_then(|c| c.id.as_deref())
                .unwrap_or_default()),
        ),
        (
            "api_key_id",
            s(outcome
                .identity
                .api_key
                .as_ref()
                .map_or("", |k| k.id.as_str())),
        ),
        (
            "policy_generation",
            PbValue {
                kind: Some(Kind::NumberValue(outcome.policy_generation as f64)),
            },
        ),
        (
            "cache_hit",
            PbValue {
                kind: Some(Kind::BoolValue(outcome.cache_hit)),
            },
        ),
    ];
    Struct {
        fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

fn s(v: &str) -> PbValue {
    PbValue {
        kind: Some(Kind::StringValue(v.to_owned())),
    }
}

/// The answer to a Check that could not be understood: a 400, no decision.
pub fn bad_request(message: &str) -> CheckResponse {
    let body = serde_json::json!({ "error": "bad_request", "reason": "invalid_request", "message": message });
    CheckResponse {
        status: Some(rpc::Status {
            code: 3,
            message: String::new(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: 400 }),
            headers: vec![header(
                "content-type",
                "application/json",
                HeaderAppendAction::OverwriteIfExistsOrAdd,
            )],
            body: body.to_string(),
        })),
        dynamic_metadata: None,
    }
}
