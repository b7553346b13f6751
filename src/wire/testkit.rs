//! Builders for tests, fuzz seeds, benchmarks and examples: one way to write the
//! `CheckRequest` Envoy sends (and the [`HttpRequest`] it becomes). Compiled for the
//! crate's own unit tests and with the `testkit` feature, never into the server.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, attribute_context,
};

use crate::request::{HttpRequest, RequestError};

/// A `CheckRequest` as Envoy builds it: `GET /` on `models.example.com` over https, from
/// no peer, unless told otherwise.
#[derive(Debug, Clone)]
pub struct Check {
    http: attribute_context::HttpRequest,
    principal: String,
    address: Option<String>,
}

// === impl Check ===

impl Check {
    /// `method path` with no headers, Envoy's request id `envoy-req-1`.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            http: attribute_context::HttpRequest {
                id: "envoy-req-1".into(),
                method: method.into(),
                path: path.into(),
                host: "models.example.com".into(),
                scheme: "https".into(),
                ..Default::default()
            },
            principal: String::new(),
            address: None,
        }
    }

    /// A `GET` of `path`.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// A `POST` of `path`.
    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    /// The peer's `source.principal` (a SPIFFE id, or "" for none).
    pub fn peer(mut self, principal: &str) -> Self {
        principal.clone_into(&mut self.principal);
        self
    }

    /// The peer's socket address IP.
    pub fn peer_ip(mut self, ip: &str) -> Self {
        self.address = Some(ip.to_owned());
        self
    }

    /// Envoy's request id.
    pub fn id(mut self, id: &str) -> Self {
        id.clone_into(&mut self.http.id);
        self
    }

    /// The `:authority`.
    pub fn host(mut self, host: &str) -> Self {
        host.clone_into(&mut self.http.host);
        self
    }

    /// The `:protocol` Envoy reports (`HTTP/1.1`, `HTTP/2`).
    pub fn protocol(mut self, protocol: &str) -> Self {
        protocol.clone_into(&mut self.http.protocol);
        self
    }

    /// One request header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.http.headers.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Several request headers.
    pub fn headers(mut self, headers: &[(&str, &str)]) -> Self {
        self.http.headers.extend(
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// The body as Envoy packs it with `pack_as_bytes: true` (`raw_body`), and its size.
    pub fn raw_body(mut self, body: &[u8]) -> Self {
        self.http.raw_body = body.to_vec();
        self.http.size = i64::try_from(body.len()).unwrap_or(-1);
        self
    }

    /// The body as Envoy packs it without `pack_as_bytes` (`body`, UTF-8 text).
    pub fn text_body(mut self, body: &str) -> Self {
        body.clone_into(&mut self.http.body);
        self.http.size = i64::try_from(body.len()).unwrap_or(-1);
        self
    }

    /// These HTTP attributes instead of the builder's.
    pub fn with_http(mut self, http: attribute_context::HttpRequest) -> Self {
        self.http = http;
        self
    }

    /// The HTTP attributes, to change what the builder has no method for.
    pub fn http_mut(&mut self) -> &mut attribute_context::HttpRequest {
        &mut self.http
    }

    /// The HTTP attributes alone.
    pub fn into_http(self) -> attribute_context::HttpRequest {
        self.http
    }

    /// The `CheckRequest`.
    pub fn build(self) -> CheckRequest {
        let address = self.address.map(|ip| Address {
            address: Some(AddressKind::SocketAddress(SocketAddress {
                address: ip,
                ..Default::default()
            })),
        });
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(attribute_context::Peer {
                    principal: self.principal,
                    address,
                    ..Default::default()
                }),
                request: Some(attribute_context::Request {
                    http: Some(self.http),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    /// The [`HttpRequest`] the server makes of it (canonical target).
    pub fn http_request(self) -> Result<HttpRequest, RequestError> {
        HttpRequest::try_from(self.build())
    }
}

/// For property tests over a request's inputs: `GET`, `POST` or `DELETE` (`method` 0 to 2)
/// of `path`, with Envoy request id `req-a`, `req-b` or `req-c` (`id` 0 to 2), converted.
pub fn varied(method: usize, path: &str, id: usize) -> Result<HttpRequest, RequestError> {
    Check::new(["GET", "POST", "DELETE"][method], path)
        .id(["req-a", "req-b", "req-c"][id])
        .http_request()
}

/// A `CheckRequest` carrying only `http` (no peer), as the request tests write it.
pub fn check_of(http: attribute_context::HttpRequest) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// Headers as Envoy's `headers` map.
pub fn header_map(headers: &[(&str, &str)]) -> HashMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
