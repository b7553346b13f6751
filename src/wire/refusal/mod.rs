//! Refusals the caller's SDK can show.
//!
//! A client library turns a non-2xx answer into an exception from the error body it
//! expects: the OpenAI SDK reads `error.message`, the Anthropic SDK prints the whole
//! `{"type":"error","error":{...}}`, Google's clients read `error.status`, the AWS SDKs
//! read `x-amzn-errortype` and `message`, and the MCP SDK surfaces a JSON-RPC error
//! whose `id` it can match. Given cedar-gate's own `{"error":"forbidden",...}` body,
//! each of them shows only "Error code: 403" or an internal error with no hint of
//! policy. So on provider and MCP routes the 400 / 401 / 403 body takes that protocol's
//! shape, and its message names the refused model or tool, why, and the decision id
//! (what an operator needs to find the audit line). Plain HTTP routes keep the generic
//! body ([`shape`] answers `None`).
//!
//! What a message may carry: the caller's own model or tool name, the fixed reason
//! code, a fixed identity rejection code, the decision id, and, for requests refused
//! before any policy ran, the class of what could not be read. Never a policy, a
//! policy error (it can quote policy text) or a credential.

use serde_json::{Value, json};

use crate::classify::Protocol;
use crate::decide::Outcome;
use crate::vocab::Reason;

/// JSON-RPC 2.0 "Invalid Request": the request could not be read one way only.
const RPC_INVALID_REQUEST: i32 = -32600;
/// Implementation-defined server error (JSON-RPC reserves -32000..-32099 for these):
/// refused by policy.
const RPC_FORBIDDEN: i32 = -32003;
/// Implementation-defined server error: no acceptable credentials.
const RPC_UNAUTHENTICATED: i32 = -32004;

/// A refusal body in the caller's protocol, with the headers that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shaped {
    /// The JSON body.
    pub body: String,
    /// Extra response headers (Bedrock's `x-amzn-errortype`).
    pub headers: Vec<(&'static str, &'static str)>,
}

/// The refusal of `outcome` with HTTP `status` in the shape its protocol's clients
/// parse; `None` on plain HTTP routes. `request_body` is read only on MCP routes, for
/// the JSON-RPC id(s) to answer.
pub(crate) fn shape(outcome: &Outcome, status: i32, request_body: &[u8]) -> Option<Shaped> {
    let refusal = Refusal {
        outcome,
        status,
        message: message(outcome),
        reason: outcome.decision.reason.as_str(),
        id: outcome.decision_id.as_str(),
    };
    let (body, headers) = match outcome.protocol {
        Protocol::Http => return None,
        Protocol::Openai => (refusal.openai(), Vec::new()),
        Protocol::Anthropic => (refusal.anthropic(), Vec::new()),
        Protocol::Gemini => (refusal.gemini(), Vec::new()),
        Protocol::Bedrock => {
            let (body, code) = refusal.bedrock();
            (body, vec![("x-amzn-errortype", code)])
        }
        Protocol::Mcp => (refusal.mcp(request_body), Vec::new()),
    };
    Some(Shaped {
        body: body.to_string(),
        headers,
    })
}

/// What every shape says about one refusal.
struct Refusal<'a> {
    outcome: &'a Outcome,
    status: i32,
    /// The sentence the user sees ([`message`]).
    message: String,
    reason: &'static str,
    id: &'a str,
}

// === impl Refusal ===

impl Refusal<'_> {
    /// `reason` and `decision_id`, with what was refused (`model`, `tool`).
    fn fields(&self) -> Value {
        let mut fields = json!({ "reason": self.reason, "decision_id": self.id });
        named(&mut fields, self.outcome);
        fields
    }

    /// OpenAI's `{"error":{"message","type","param","code"}}`.
    fn openai(&self) -> Value {
        let (kind, param) = match self.status {
            400 => ("invalid_request_error", None),
            401 => ("authentication_error", None),
            _ => (
                "permission_error",
                self.outcome.model.as_ref().map(|_| "model"),
            ),
        };
        let mut error = self.fields();
        error["message"] = self.message.as_str().into();
        error["type"] = kind.into();
        error["param"] = param.into();
        error["code"] = self.reason.into();
        json!({ "error": error })
    }

    /// Anthropic's `{"type":"error","error":{"type","message"}}`.
    fn anthropic(&self) -> Value {
        let kind = match self.status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            _ => "permission_error",
        };
        let mut error = self.fields();
        error["type"] = kind.into();
        error["message"] = self.message.as_str().into();
        json!({ "type": "error", "error": error })
    }

    /// google.rpc.Status as Google's JSON APIs render it; the machine-readable part
    /// goes into the standard `ErrorInfo` detail (AIP-193).
    fn gemini(&self) -> Value {
        let grpc_status = match self.status {
            400 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            _ => "PERMISSION_DENIED",
        };
        json!({ "error": {
            "code": self.status, "message": self.message, "status": grpc_status,
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": self.reason.to_ascii_uppercase(),
                "domain": "cedar-gate",
                "metadata": self.fields(),
            }],
        }})
    }

    /// AWS's REST-JSON protocol: `{"message"}`, the error code in `x-amzn-errortype`.
    fn bedrock(&self) -> (Value, &'static str) {
        let code = match self.status {
            400 => "ValidationException",
            401 => "UnrecognizedClientException",
            _ => "AccessDeniedException",
        };
        let mut body = self.fields();
        body["message"] = self.message.as_str().into();
        (body, code)
    }

    /// A JSON-RPC error answering the id(s) of `request_body`.
    fn mcp(&self, request_body: &[u8]) -> Value {
        let data = self.fields();
        let code = rpc_code(self.outcome.decision.reason, self.status);
        match rpc_ids(request_body) {
            RpcIds::Single(rpc_id) => rpc_error(rpc_id, code, &self.message, &data),
            RpcIds::Batch(ids) => ids
                .into_iter()
                .map(|rpc_id| rpc_error(rpc_id, code, &self.message, &data))
                .collect(),
        }
    }
}

/// One JSON-RPC 2.0 error response. The one place such a body is built.
pub(crate) fn rpc_error(id: Value, code: i32, message: &str, data: &Value) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message, "data": data },
    })
}

/// The JSON-RPC error code of a refusal.
fn rpc_code(reason: Reason, status: i32) -> i32 {
    match reason {
        Reason::Unauthenticated | Reason::InvalidIdentity => RPC_UNAUTHENTICATED,
        Reason::NoPermit | Reason::PolicyForbid | Reason::PolicyError | Reason::InvalidRequest => {
            RPC_FORBIDDEN
        }
        // Every other reason is a request that could not be read one way only.
        _ if status == 401 => RPC_UNAUTHENTICATED,
        _ => RPC_INVALID_REQUEST,
    }
}

/// The ids a JSON-RPC refusal answers.
#[derive(Debug, PartialEq)]
enum RpcIds {
    /// One message (its id, `null` when it has none or the body cannot be read).
    Single(Value),
    /// A batch: one error per request in it (notifications get no response).
    Batch(Vec<Value>),
}

/// The request id(s) of a JSON-RPC body. A body that cannot be read, or a batch with
/// no request in it, is answered once with id `null` (JSON-RPC 2.0 §5).
fn rpc_ids(body: &[u8]) -> RpcIds {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(messages)) => {
            let ids: Vec<Value> = messages
                .iter()
                .filter(|m| m.get("method").is_some())
                .filter_map(|m| m.get("id"))
                .map(valid_id)
                .collect();
            if ids.is_empty() {
                RpcIds::Single(Value::Null)
            } else {
                RpcIds::Batch(ids)
            }
        }
        Ok(message) => RpcIds::Single(message.get("id").map_or(Value::Null, valid_id)),
        Err(_) => RpcIds::Single(Value::Null),
    }
}

/// A JSON-RPC id is a string, a number or null; anything else is answered as null.
fn valid_id(id: &Value) -> Value {
    match id {
        Value::String(_) | Value::Number(_) => id.clone(),
        _ => Value::Null,
    }
}

/// Adds what was refused (`model`, `tool`) to a JSON object.
fn named(object: &mut Value, outcome: &Outcome) {
    if let Some(model) = &outcome.model {
        object["model"] = model.as_str().into();
    }
    if let Some(tool) = &outcome.tool {
        object["tool"] = tool.as_str().into();
    }
}

/// The sentence the user sees: what was refused, why, and the decision id.
fn message(outcome: &Outcome) -> String {
    let what = match (&outcome.model, &outcome.tool) {
        (_, Some(tool)) => format!("tool `{tool}`"),
        (Some(model), None) => format!("model `{model}`"),
        (None, None) => "request".to_owned(),
    };
    let reason = outcome.decision.reason;
    format!(
        "cedar-gate refused {what}: {why} (reason `{}`, decision id `{}`)",
        reason.as_str(),
        outcome.decision_id,
        why = why(outcome, reason),
    )
}

/// Why, in words. Policy reasons never quote an evaluation error (it can carry
/// policy text); requests refused before any policy ran say what could not be read.
fn why(outcome: &Outcome, reason: Reason) -> String {
    match reason {
        Reason::NoPermit => "no policy permits it".to_owned(),
        Reason::PolicyForbid => "a policy forbids it".to_owned(),
        Reason::PolicyError => "a policy failed to evaluate, so it is denied".to_owned(),
        Reason::InvalidRequest => "the request does not fit the policy schema".to_owned(),
        Reason::Unauthenticated => "no credentials were presented".to_owned(),
        Reason::InvalidIdentity => match &outcome.identity_error {
            // The code is a fixed identifier, never a credential.
            Some(rejection) => format!("the credentials were refused (`{}`)", rejection.code),
            None => "the credentials were refused".to_owned(),
        },
        Reason::ProviderCredentialPresented => {
            "it carries its own provider credential, on a route where the gateway injects one"
                .to_owned()
        }
        // Fixed words: the evaluation's text names the gateway's credential ids.
        Reason::CredentialMissing | Reason::CredentialUnavailable | Reason::CredentialConflict => {
            "the gateway has no provider credential to send with it".to_owned()
        }
        _ => outcome.decision.errors.first().map_or_else(
            || "the request cannot be read one way only".to_owned(),
            Clone::clone,
        ),
    }
}

#[cfg(test)]
mod tests;
