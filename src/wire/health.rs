//! The gRPC health of the ext_authz service, by the name Envoy's
//! `grpc_health_check` asks for (`envoy.service.auth.v3.Authorization`), so
//! that the wiring and the admin server need not name the Envoy types.

use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_server::Health;
use tonic_health::server::{HealthReporter, HealthService};

use crate::wire::service::AuthzServer;

/// The ext_authz service's gRPC name.
pub const SERVICE: &str = <AuthzServer as NamedService>::NAME;

/// Marks the ext_authz service SERVING (`true`) or NOT_SERVING.
pub async fn set(reporter: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    reporter.set_service_status(SERVICE, status).await;
}

/// Whether gRPC health answers SERVING for the ext_authz service now.
pub async fn is_serving(health: &HealthService) -> bool {
    let request = tonic::Request::new(HealthCheckRequest {
        service: SERVICE.to_owned(),
    });
    health.check(request).await.is_ok_and(|r| {
        r.into_inner().status() == tonic_health::pb::health_check_response::ServingStatus::Serving
    })
}
