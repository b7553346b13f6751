//! One authorization question and its answer, in cedar-gate's terms.
//!
//! Authorization semantics are Cedar's: a matching `forbid` wins, otherwise a
//! matching `permit` allows, otherwise deny. cedar-gate adds one rule: when any
//! policy failed to evaluate, the answer is deny with reason `policy_error`
//! (unless configured otherwise), because Cedar skips erroring policies and a
//! skipped `forbid` would otherwise allow.

use std::collections::BTreeMap;
use std::sync::Arc;

use cedar_policy::EntityUid;
use serde::Serialize;

use super::Value;

/// The principal of a request: its uid, request-time attributes, and the
/// parents it brings with it (for example groups from a token). Parents and
/// attributes recorded for the same uid in `entities.json` are added at
/// evaluation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrincipalSpec {
    /// The principal's uid.
    pub uid: EntityUid,
    /// Attributes computed for this request.
    pub attrs: Vec<(String, Value)>,
    /// Parents carried by the credential.
    pub parents: Vec<EntityUid>,
}

/// A complete Cedar question. `Eq + Hash` so it can key the decision cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthzRequest {
    /// Who.
    pub principal: PrincipalSpec,
    /// Other entities the request brings (for example the workload behind a
    /// token, referenced from the context); static parents are added likewise.
    pub extra: Vec<PrincipalSpec>,
    /// Which action (`Action::"..."`).
    pub action: EntityUid,
    /// On what.
    pub resource: EntityUid,
    /// The context record.
    pub context: Vec<(String, Value)>,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The request may proceed.
    Allow,
    /// The request is refused.
    Deny,
}

/// Why a decision came out as it did. A fixed set, so it can label metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A `permit` matched and no `forbid` did.
    PolicyPermit,
    /// A `forbid` matched.
    PolicyForbid,
    /// No `permit` matched (Cedar's default deny).
    NoPermit,
    /// A policy failed to evaluate; denied to fail closed.
    PolicyError,
    /// The request does not fit the schema (for example an undeclared action).
    InvalidRequest,
    /// No credentials, and no policy permits `Anonymous`.
    Unauthenticated,
    /// Credentials were presented but are not acceptable.
    InvalidIdentity,
    /// The protocol needs the request body and there is none.
    BodyMissing,
    /// Envoy forwarded only part of a body the protocol needs.
    BodyPartial,
    /// A needed body is compressed, not JSON, malformed or mistyped.
    BodyInvalid,
    /// A needed body is longer than the route's `max_body_bytes`.
    BodyTooLarge,
    /// A JSON-RPC batch has more elements than allowed.
    BatchTooLarge,
    /// The path cannot be made canonical: upstreams could read it differently
    /// (`400`).
    PathNotCanonical,
    /// The host is not a DNS name or IP literal (`400`).
    HostNotCanonical,
    /// The request asks to override its method or URL (`X-HTTP-Method-Override`,
    /// `X-Original-URL`, ...): the upstream might run another method or path
    /// than the one decided on (`400`).
    MethodOverride,
    /// A model or tool name that no provider accepts as it is (control
    /// characters, surrounding whitespace, not UTF-8).
    NameInvalid,
    /// The request names its model in two places that disagree (the body and
    /// a `?model=` query parameter): which one runs depends on the server.
    ModelAmbiguous,
    /// An MCP request's mirrored headers (`Mcp-Method`, `Mcp-Name`,
    /// `MCP-Protocol-Version`, `Mcp-Param-*`) disagree with its body, or are
    /// missing, repeated or malformed (`400`, JSON-RPC `HeaderMismatch`).
    McpHeaderMismatch,
    /// A request declaring MCP 2026-07-28 or later carries a JSON-RPC batch
    /// (`400`).
    McpBatchRefused,
    /// The MCP route accepts 2026-07-28 or later only (`mcp_legacy: refuse`)
    /// and the request declares an older version or none (`400`).
    McpVersionRefused,
    /// No permit matched, and one annotated `@scope` would have with scopes
    /// the token lacks: a step-up challenge (`403`, `insufficient_scope`).
    InsufficientScope,
    /// The caller sent its own provider key on a route where the gateway
    /// injects one (`crate::credentials`).
    ProviderCredentialPresented,
    /// Allowed, but the route needs a provider credential and none was selected.
    CredentialMissing,
    /// The selected provider credential is not configured or has no value.
    CredentialUnavailable,
    /// The determining policies name different provider credentials.
    CredentialConflict,
}

// === impl Reason ===

impl Reason {
    /// The snake_case name used in metrics, metadata and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PolicyPermit => "policy_permit",
            Reason::PolicyForbid => "policy_forbid",
            Reason::NoPermit => "no_permit",
            Reason::PolicyError => "policy_error",
            Reason::InvalidRequest => "invalid_request",
            Reason::Unauthenticated => "unauthenticated",
            Reason::InvalidIdentity => "invalid_identity",
            Reason::BodyMissing => "body_missing",
            Reason::BodyPartial => "body_partial",
            Reason::BodyInvalid => "body_invalid",
            Reason::BodyTooLarge => "body_too_large",
            Reason::BatchTooLarge => "batch_too_large",
            Reason::PathNotCanonical => "path_not_canonical",
            Reason::HostNotCanonical => "host_not_canonical",
            Reason::MethodOverride => "method_override",
            Reason::NameInvalid => "name_invalid",
            Reason::ModelAmbiguous => "model_ambiguous",
            Reason::McpHeaderMismatch => "mcp_header_mismatch",
            Reason::McpBatchRefused => "mcp_batch_refused",
            Reason::McpVersionRefused => "mcp_version_refused",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::ProviderCredentialPresented => "provider_credential_presented",
            Reason::CredentialMissing => "credential_missing",
            Reason::CredentialUnavailable => "credential_unavailable",
            Reason::CredentialConflict => "credential_conflict",
        }
    }

    /// The HTTP status of a denial for this reason: `400` for a request that
    /// cannot be read one way only, `401` for credentials, `403` otherwise.
    pub fn http_status(self) -> i32 {
        match self {
            Reason::PathNotCanonical
            | Reason::HostNotCanonical
            | Reason::MethodOverride
            | Reason::McpHeaderMismatch
            | Reason::McpBatchRefused
            | Reason::McpVersionRefused => 400,
            Reason::Unauthenticated | Reason::InvalidIdentity => 401,
            _ => 403,
        }
    }

    /// Every reason, for pre-registering metric series.
    pub const ALL: [Reason; 25] = [
        Reason::PolicyPermit,
        Reason::PolicyForbid,
        Reason::NoPermit,
        Reason::PolicyError,
        Reason::InvalidRequest,
        Reason::Unauthenticated,
        Reason::InvalidIdentity,
        Reason::BodyMissing,
        Reason::BodyPartial,
        Reason::BodyInvalid,
        Reason::BodyTooLarge,
        Reason::BatchTooLarge,
        Reason::PathNotCanonical,
        Reason::HostNotCanonical,
        Reason::MethodOverride,
        Reason::NameInvalid,
        Reason::ModelAmbiguous,
        Reason::McpHeaderMismatch,
        Reason::McpBatchRefused,
        Reason::McpVersionRefused,
        Reason::InsufficientScope,
        Reason::ProviderCredentialPresented,
        Reason::CredentialMissing,
        Reason::CredentialUnavailable,
        Reason::CredentialConflict,
    ];
}

/// A policy that determined a decision, with its annotations (for example
/// `@owner`), so the audit trail names the policy and its owning team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeterminingPolicy {
    /// The `@id` annotation, or `<file>#<n>` for policies without one.
    pub id: String,
    /// All annotations except `id`.
    pub annotations: BTreeMap<String, String>,
    /// This value as JSON, rendered once: every audit event names its
    /// determining policies.
    #[serde(skip)]
    json: String,
}

// === impl DeterminingPolicy ===

impl DeterminingPolicy {
    /// A determining policy with its annotations.
    pub fn new(id: String, annotations: BTreeMap<String, String>) -> Self {
        let mut policy = Self {
            id,
            annotations,
            json: String::new(),
        };
        // Serializing strings and a string map cannot fail.
        policy.json = serde_json::to_string(&policy).unwrap_or_default();
        policy
    }

    /// This value as JSON (`{"id":...,"annotations":{...}}`).
    pub fn json(&self) -> &str {
        &self.json
    }
}

/// The answer to an [`AuthzRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow or deny.
    pub effect: Effect,
    /// Why.
    pub reason: Reason,
    /// The policies that determined it (permits for allow, forbids for a forbid).
    pub policies: Vec<Arc<DeterminingPolicy>>,
    /// Evaluation errors, each naming its policy. Never includes policy text.
    pub errors: Vec<String>,
}

// === impl Decision ===

impl Decision {
    /// A deny that no policy took part in.
    pub fn deny(reason: Reason, errors: Vec<String>) -> Self {
        Self {
            effect: Effect::Deny,
            reason,
            policies: Vec::new(),
            errors,
        }
    }

    /// Whether the request may proceed.
    pub fn is_allow(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// The determining policy ids, comma-separated. Sized first: one
    /// allocation, where growing from empty took the reallocation path.
    pub fn policy_ids(&self) -> String {
        let len: usize = self.policies.iter().map(|p| p.id.len() + 1).sum();
        let mut out = String::with_capacity(len.saturating_sub(1));
        for (i, p) in self.policies.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&p.id);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_ids_are_comma_separated() {
        let policy = |id: &str| Arc::new(DeterminingPolicy::new(id.to_owned(), BTreeMap::new()));
        let mut decision = Decision::deny(Reason::NoPermit, Vec::new());
        assert_eq!(decision.policy_ids(), "");
        decision.policies.push(policy("a"));
        assert_eq!(decision.policy_ids(), "a");
        decision.policies.extend([policy(""), policy("files#3")]);
        assert_eq!(decision.policy_ids(), "a,,files#3");
    }
}
