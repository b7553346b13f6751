//! The JSON form of a Cedar request used by `check` (and policy tests):
//!
//! ```json
//! {
//!   "principal": {"type": "Workload", "id": "spiffe://example.org/ns/agents/sa/bot",
//!                 "attrs": {}, "parents": [{"type": "Group", "id": "approved-agents"}]},
//!   "action": "http",
//!   "resource": {"type": "Route", "id": "/v1/models"},
//!   "context": {"request": {"method": "POST"}}
//! }
//! ```
//! `attrs`, `parents` and `context` are optional. A `Workload` principal gets
//! the attributes derived from its SPIFFE id, as in the server. The context is
//! merged over the one the server would build for such a request, so a file
//! names only what matters to it.

use std::time::SystemTime;

use cedar_policy::EntityUid;
use serde::Deserialize;

use crate::identity::spiffe::{SpiffeId, workload_attrs};
use crate::identity::{Identity, Workload, WorkloadSource};
use crate::request::HttpRequest;
use crate::vocab::{AuthzRequest, PrincipalSpec};
use crate::vocab::{EntityType, ROUTE, Value, WORKLOAD, builtin_uid, uid_from_json};

/// A request file's content.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFile {
    /// The principal.
    pub principal: PrincipalJson,
    /// The action id (`"http"`) or uid (`{"type": "Action", "id": "http"}`).
    pub action: serde_json::Value,
    /// The resource uid.
    pub resource: serde_json::Value,
    /// Context entries to set (merged over the defaults).
    #[serde(default)]
    pub context: Option<serde_json::Value>,
    /// For a token principal: the SPIFFE id of the workload that carried the token
    /// (`context.auth.workload`, with its groups from entities.json, as the server sees it).
    #[serde(default)]
    pub workload: Option<String>,
}

/// A principal with optional attributes and parents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalJson {
    /// Entity type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Entity id.
    pub id: String,
    /// Attributes (Cedar JSON).
    #[serde(default)]
    pub attrs: serde_json::Map<String, serde_json::Value>,
    /// Parent uids.
    #[serde(default)]
    pub parents: Vec<serde_json::Value>,
}

// === impl RequestFile ===

impl RequestFile {
    /// Converts to the question the server would ask Cedar.
    pub fn to_authz(&self, now: SystemTime) -> Result<AuthzRequest, String> {
        let mut identity = Identity::default();
        let principal = self.principal_spec(&mut identity)?;
        let action = match &self.action {
            serde_json::Value::String(s) if !s.contains("::") => builtin_uid(EntityType::Action, s),
            other => uid_from_json(other).map_err(|e| format!("action: {e}"))?,
        };
        let resource = uid_from_json(&self.resource).map_err(|e| format!("resource: {e}"))?;

        // Default context: what the server would send for such a request.
        let req = HttpRequest {
            id: "cedar-gate-check".to_owned(),
            method: "GET".to_owned(),
            scheme: "https".to_owned(),
            path: if resource.type_name().to_string() == ROUTE {
                resource.id().unescaped().to_owned()
            } else {
                String::new()
            },
            ..Default::default()
        };
        let op = crate::classify::Operation::new(
            crate::classify::Protocol::Http,
            action.clone(),
            resource.clone(),
        );
        let carrier = self.carrier(&mut identity)?;
        let mut authz = crate::decide::question::authz_request(&req, &identity, &op, now);
        authz.principal = principal;
        // The workload behind a token is an entity of the request, as in the server.
        authz.extra.extend(carrier);
        if let Some(ctx) = &self.context {
            let Value::Record(given) =
                Value::from_json(ctx, "context").map_err(|e| e.to_string())?
            else {
                return Err("context must be a JSON object".to_owned());
            };
            merge(&mut authz.context, given);
        }
        Ok(authz)
    }

    /// The principal entity; a workload principal is also the request's
    /// workload identity.
    fn principal_spec(&self, identity: &mut Identity) -> Result<PrincipalSpec, String> {
        let uid = crate::vocab::uid(&self.principal.ty, &self.principal.id)
            .map_err(|e| format!("principal: bad type `{}`: {e}", self.principal.ty))?;
        let mut attrs = Vec::new();
        if self.principal.ty == WORKLOAD {
            let id = SpiffeId::parse(&self.principal.id).map_err(|e| format!("principal: {e}"))?;
            if id.path().is_empty() {
                // The server refuses it (`trust_domain_id`): a test must not pass on it.
                return Err(format!(
                    "principal: `{id}` names a trust domain, not a workload"
                ));
            }
            attrs = workload_attrs(&id);
            identity.workload = Some(Workload {
                id,
                source: WorkloadSource::PeerPrincipal,
                not_after: None,
            });
        }
        for (k, v) in &self.principal.attrs {
            let v =
                Value::from_json(v, &format!("principal.attrs.{k}")).map_err(|e| e.to_string())?;
            attrs.retain(|(name, _)| name != k);
            attrs.push((k.clone(), v));
        }
        let parents = self
            .principal
            .parents
            .iter()
            .map(|p| uid_from_json(p).map_err(|e| format!("principal.parents: {e}")))
            .collect::<Result<Vec<EntityUid>, String>>()?;
        Ok(PrincipalSpec {
            uid,
            attrs,
            parents,
        })
    }

    /// The workload a non-workload principal came through (`workload`), as
    /// an entity of the request and the request's workload identity.
    fn carrier(&self, identity: &mut Identity) -> Result<Option<PrincipalSpec>, String> {
        let Some(w) = &self.workload else {
            return Ok(None);
        };
        if self.principal.ty == WORKLOAD {
            return Ok(None);
        }
        let id = SpiffeId::parse(w).map_err(|e| format!("workload: {e}"))?;
        let carrier = PrincipalSpec {
            uid: crate::vocab::uid(WORKLOAD, w).map_err(|e| format!("workload: {e}"))?,
            attrs: workload_attrs(&id),
            parents: Vec::new(),
        };
        identity.workload = Some(Workload {
            id,
            source: WorkloadSource::PeerPrincipal,
            not_after: None,
        });
        Ok(Some(carrier))
    }
}

/// Merges `given` over `base`: records recursively, anything else replaced.
fn merge(base: &mut Vec<(String, Value)>, given: Vec<(String, Value)>) {
    for (k, v) in given {
        match (base.iter_mut().find(|(name, _)| *name == k), v) {
            (Some((_, Value::Record(inner))), Value::Record(more)) => merge(inner, more),
            (Some(slot), v) => slot.1 = v,
            (None, v) => base.push((k, v)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file(id: &str) -> RequestFile {
        serde_json::from_value(serde_json::json!({
            "principal": {"type": "Workload", "id": id},
            "action": "chat",
            "resource": {"type": "Model", "id": "gpt-4o"},
        }))
        .unwrap()
    }

    #[test]
    fn workload_principal_needs_a_path() {
        assert!(
            file("spiffe://example.org/ns/a/sa/b")
                .to_authz(SystemTime::now())
                .is_ok()
        );
        let e = file("spiffe://example.org")
            .to_authz(SystemTime::now())
            .unwrap_err();
        assert!(e.contains("names a trust domain"), "{e}");
    }
}
