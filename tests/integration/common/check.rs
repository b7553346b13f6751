//! ext_authz `CheckRequest`s as Envoy builds them, for the in-process gRPC tests.

use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, attribute_context,
};

/// HTTP attributes: `method` and `path` on host `models.example.com` over https, with `headers`.
pub fn http(method: &str, path: &str, headers: &[(&str, &str)]) -> attribute_context::HttpRequest {
    attribute_context::HttpRequest {
        id: "envoy-req-1".into(),
        method: method.into(),
        path: path.into(),
        host: "models.example.com".into(),
        scheme: "https".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// A CheckRequest from the peer `principal` (as Envoy's `source.principal`) for `http`.
pub fn check_request(principal: &str, http: attribute_context::HttpRequest) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                principal: principal.into(),
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
