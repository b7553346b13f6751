//! The ext_authz v3 gRPC handler: thin glue between tonic and [`Gate`].

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse,
};
use tonic::{Request, Response, Status};

use crate::decide::Gate;
use crate::policy::PolicyStore;
use crate::record::audit::AuditLog;
use crate::record::metrics;
use crate::request::HttpRequest;
use crate::wire::response;

/// The ext_authz gRPC service around `service`, refusing messages over
/// `max_message_bytes`.
pub fn server(
    service: AuthzService,
    max_message_bytes: usize,
) -> AuthorizationServer<AuthzService> {
    AuthorizationServer::new(service).max_decoding_message_size(max_message_bytes)
}

/// The Authorization service.
#[derive(Debug, Clone)]
pub struct AuthzService {
    store: Arc<PolicyStore>,
    gate: Gate,
    audit: AuditLog,
}

// === impl AuthzService ===

impl AuthzService {
    /// A service deciding with the store's snapshot.
    pub fn new(store: Arc<PolicyStore>, gate: Gate, audit: AuditLog) -> Self {
        Self { store, gate, audit }
    }
}

#[tonic::async_trait]
impl Authorization for AuthzService {
    // A debug-level span: at the default `info` level it costs nothing per
    // Check; the deny log line below names the decision id itself.
    #[tracing::instrument(name = "check", level = "debug", skip_all, fields(decision_id))]
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let started = Instant::now();
        // The only gRPC error we return. Envoy then applies its own
        // `failure_mode_allow` (false in every shipped config: deny).
        let Some(snapshot) = self.store.current() else {
            metrics::record_check_error("not_ready");
            return Err(Status::unavailable("no policy snapshot loaded yet"));
        };
        let req = match HttpRequest::try_from(request.into_inner()) {
            Ok(req) => req,
            Err(e) => {
                metrics::record_check_error("invalid_request");
                tracing::info!(error = %e, "check request refused");
                return Ok(Response::new(response::bad_request(&e.to_string())));
            }
        };
        let now = SystemTime::now();
        let outcome = self.gate.check(&snapshot, &req, now);
        let answer = response::build(&outcome, &req, &self.gate.config().response);
        let elapsed = started.elapsed();

        tracing::Span::current().record("decision_id", outcome.decision_id.as_str());
        metrics::record_check(&outcome.figures(elapsed));
        if !outcome.decision.is_allow() {
            tracing::info!(
                decision_id = %outcome.decision_id,
                decision.reason = outcome.decision.reason.as_str(),
                principal = %outcome.principal,
                action = %outcome.action,
                resource = %outcome.resource,
                model = outcome.model.as_deref(),
                tool = outcome.tool.as_deref(),
                identity.error = outcome.identity_error.as_ref().map(|e| e.message.as_str()),
                "denied"
            );
        }
        // Last: the outcome and the request move to the audit writer, which
        // formats the line off the request path.
        self.audit.record_check(outcome, req, now, elapsed);
        Ok(Response::new(answer))
    }
}
