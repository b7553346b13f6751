//! The whole path, as users deploy it: client ──mTLS──▶ Envoy ──Check──▶ cedar-gate, and
//! Envoy ──▶ upstream for allowed requests.

use std::path::Path;

use super::{CedarGate, ClientCert, Envoy, GateOptions, MtlsClient, TestPki, Upstream, repo_path};

/// Envoy, cedar-gate, an upstream and a PKI, started together.
///
/// Fields drop in declaration order: Envoy first, the PKI (its files) last.
pub struct Stack {
    /// The proxy.
    pub envoy: Envoy,
    /// The authorizer; `gate.stop()` simulates an outage.
    pub gate: CedarGate,
    /// The protected service.
    pub upstream: Upstream,
    /// Certificates for Envoy and the clients.
    pub pki: TestPki,
}

// === impl Stack ===

impl Stack {
    /// Shipped `envoy/envoy.yaml`, shipped `cedar/` policies, default gate config.
    pub async fn start() -> Self {
        Self::start_with(&repo_path("envoy/envoy.yaml"), GateOptions::default()).await
    }

    /// A given shipped Envoy config and gate options.
    pub async fn start_with(envoy_config: &Path, gate: GateOptions) -> Self {
        let pki = TestPki::new();
        let upstream = Upstream::start().await;
        let gate = CedarGate::start_with(gate).await;
        let envoy = Envoy::start_config(envoy_config, gate.grpc_addr(), upstream.addr(), &pki).await;
        Self { envoy, gate, upstream, pki }
    }

    /// A client certificate for `spiffe_id`, signed by the stack's CA.
    pub fn cert(&self, spiffe_id: &str) -> ClientCert {
        self.pki.client(spiffe_id)
    }

    /// An mTLS client to Envoy presenting a fresh certificate for `spiffe_id`.
    pub fn client(&self, spiffe_id: &str) -> MtlsClient {
        MtlsClient::new(&self.pki, &self.cert(spiffe_id), self.envoy.listener_port())
    }

    /// A client that presents no certificate.
    pub fn client_without_certificate(&self) -> MtlsClient {
        MtlsClient::without_certificate(&self.pki, self.envoy.listener_port())
    }
}
