//! Request mixes. Each scenario turns a sequence number into one `CheckRequest`, shaped
//! like what Envoy sends with the shipped `envoy/envoy.yaml` (minus the peer certificate).
//!
//! To add a scenario (JWT, OpenAI body, MCP...): add a variant, its `--scenario` name via
//! `clap::ValueEnum`, and a branch in [`Scenario::request`]. Keep the work done here small
//! and allocation-light: it runs on the load generator's own CPU budget.

use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, attribute_context,
};

/// The SPIFFE id of bench workload `n`: `scripts/gen_policies.py` puts workload `n` in
/// `Group::"team-{n % groups}"` for `n < workloads`; ids past that are unknown to the
/// entity store (no group, so no permit: a deny).
pub fn workload_id(n: u64) -> String {
    format!("spiffe://example.org/ns/bench/sa/agent-{n}")
}

/// A request mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// A different workload principal on every request, cycling over `--principals` ids:
    /// a decision cache sees only misses while `--principals` exceeds its capacity.
    SpiffeDistinct,
    /// The same workload principal (`agent-0`) on every request: a decision cache sees hits.
    SpiffeRepeat,
}

/// Scenario settings from the command line.
#[derive(Debug, Clone)]
pub struct Params {
    /// Distinct principals `spiffe-distinct` cycles over.
    pub principals: u64,
}

// === impl Scenario ===

impl Scenario {
    /// The `--scenario` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SpiffeDistinct => "spiffe-distinct",
            Self::SpiffeRepeat => "spiffe-repeat",
        }
    }

    /// Request number `seq` of this scenario.
    pub fn request(self, seq: u64, params: &Params) -> CheckRequest {
        match self {
            Self::SpiffeDistinct => {
                spiffe_request(&workload_id(seq % params.principals.max(1)), seq)
            }
            Self::SpiffeRepeat => spiffe_request(&workload_id(0), seq),
        }
    }
}

/// A plain HTTP POST to a model route, from a workload authenticated by mTLS.
fn spiffe_request(principal: &str, seq: u64) -> CheckRequest {
    let headers = [
        (":authority", "models.example.com"),
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":scheme", "https"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("user-agent", "bench-agent/1.0"),
        ("x-forwarded-proto", "https"),
    ];
    let mut headers: std::collections::HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let id = format!("bench-{seq}");
    headers.insert("x-request-id".to_owned(), id.clone());
    let http = attribute_context::HttpRequest {
        id,
        method: "POST".to_owned(),
        path: "/v1/chat/completions".to_owned(),
        host: "models.example.com".to_owned(),
        scheme: "https".to_owned(),
        protocol: "HTTP/2".to_owned(),
        headers,
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                principal: principal.to_owned(),
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "127.0.0.1".to_owned(),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}
