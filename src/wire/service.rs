//! The ext_authz v3 gRPC service: thin glue between tonic and [`Gate`].
//!
//! The service is routed by hand rather than through envoy-types' generated
//! `AuthorizationServer`, for two reasons that are both per-Check cost
//! (issue 17): the answer goes out as the bytes `response::build` wrote
//! (a codec that decodes the parts of `CheckRequest` cedar-gate reads,
//! [`WireCheckRequest`], and sends [`Encoded`] as it is), and the decision,
//! which never waits, is a ready future instead of two boxed ones.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use prost::bytes::BufMut;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstDecoder;

use crate::decide::Gate;
use crate::policy::PolicyStore;
use crate::record::audit::AuditLog;
use crate::record::metrics;
use crate::request::HttpRequest;
use crate::wire::lean::WireCheckRequest;
use crate::wire::response::{self, Encoded};

/// The gRPC method Envoy calls.
const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The ext_authz gRPC service around `service`, refusing messages over
/// `max_message_bytes`.
pub fn server(service: AuthzService, max_message_bytes: usize) -> AuthzServer {
    AuthzServer {
        service: Arc::new(service),
        max_message_bytes,
    }
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

    /// Answers one Check. The only gRPC error is `unavailable` before the
    /// first policy snapshot; Envoy then applies its own `failure_mode_allow`
    /// (false in every shipped config: deny).
    // A debug-level span: at the default `info` level it costs nothing per
    // Check; the deny log line below names the decision id itself.
    #[tracing::instrument(name = "check", level = "debug", skip_all, fields(decision_id))]
    pub fn check(&self, request: WireCheckRequest) -> Result<Encoded, Status> {
        let started = Instant::now();
        let Some(snapshot) = self.store.current() else {
            metrics::record_check_error("not_ready");
            return Err(Status::unavailable("no policy snapshot loaded yet"));
        };
        let req = match HttpRequest::try_from(request) {
            Ok(req) => req,
            Err(e) => {
                metrics::record_check_error("invalid_request");
                tracing::info!(error = %e, "check request refused");
                return Ok(response::bad_request(&e.to_string()));
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
        // formats the line off the request path. The line never holds headers
        // or the body: they are released here, so a queue of lines waiting
        // for the writer holds no request buffers (the headers are slices of
        // the received gRPC message).
        let mut req = req;
        drop(std::mem::take(&mut req.headers));
        drop(std::mem::take(&mut req.body));
        self.audit.record_check(outcome, req, now, elapsed);
        Ok(answer)
    }
}

/// The routed gRPC service (`envoy.service.auth.v3.Authorization`): `Check`,
/// and `unimplemented` for any other method.
#[derive(Debug, Clone)]
pub struct AuthzServer {
    service: Arc<AuthzService>,
    max_message_bytes: usize,
}

impl NamedService for AuthzServer {
    const NAME: &'static str = "envoy.service.auth.v3.Authorization";
}

impl<B> Service<http::Request<B>> for AuthzServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != CHECK_PATH {
            return Box::pin(ready(Ok(Status::unimplemented("").into_http())));
        }
        let method = Unary(self.service.clone());
        let mut grpc =
            Grpc::new(CheckCodec).apply_max_message_size_config(Some(self.max_message_bytes), None);
        Box::pin(async move { Ok(grpc.unary(method, req).await) })
    }
}

/// `Check` as tonic calls it: decided at once, no future to box.
struct Unary(Arc<AuthzService>);

impl UnaryService<WireCheckRequest> for Unary {
    type Response = Encoded;
    type Future = Ready<Result<Response<Encoded>, Status>>;

    fn call(&mut self, request: Request<WireCheckRequest>) -> Self::Future {
        ready(self.0.check(request.into_inner()).map(Response::new))
    }
}

/// `CheckRequest` in with prost (the parts read, [`WireCheckRequest`]), an
/// [`Encoded`] answer out as it is.
#[derive(Debug, Clone, Copy, Default)]
struct CheckCodec;

impl Codec for CheckCodec {
    type Encode = Encoded;
    type Decode = WireCheckRequest;
    type Encoder = EncodedEncoder;
    type Decoder = ProstDecoder<WireCheckRequest>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::default())
    }
}

/// Copies the answer's bytes into tonic's frame.
#[derive(Debug, Clone, Copy, Default)]
struct EncodedEncoder;

impl Encoder for EncodedEncoder {
    type Item = Encoded;
    type Error = Status;

    fn encode(&mut self, item: Encoded, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(item.as_bytes());
        Ok(())
    }
}
