//! The parts of an ext_authz v3 `CheckRequest` cedar-gate reads, decoded
//! straight from the wire: the same field numbers and types as envoy-types'
//! message, without the fields nothing reads (destination, request time,
//! TLS session, context extensions, ...), which prost skips unparsed, and with
//! the header map read as its entries in order instead of into a SipHash
//! `HashMap` (a map field is a repeated `{key = 1, value = 2}` message on the
//! wire). Decoding the full message was the largest single cost of a
//! cache-hit Check (issue 17, BENCHMARKS.md).
//!
//! The header map's keys and values are read as `bytes` (the same wire type
//! as `string`): each is a slice of the received message, a reference count
//! instead of an allocation and a copy per string, which was most of what
//! decoding cost. Their UTF-8 is checked when the request is converted
//! (`wire::request`): a header that is not UTF-8 refuses the request, as
//! prost's `string` decoding refused the message. Every other string field
//! keeps its protobuf type, so prost checks it. The map's semantics (a
//! repeated key: the last one wins) are kept by [`Http::flat_headers`].

use envoy_types::pb::envoy::config::core::v3::{Address, HeaderMap, Metadata};
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use prost::Message;
use prost::bytes::Bytes;

/// `envoy.service.auth.v3.CheckRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct WireCheckRequest {
    /// `attributes`.
    #[prost(message, optional, tag = "1")]
    pub attributes: Option<Attributes>,
}

/// `envoy.service.auth.v3.AttributeContext`: `source`, `request`, `metadata_context`.
#[derive(Clone, PartialEq, Message)]
pub struct Attributes {
    /// `source`: the downstream peer.
    #[prost(message, optional, tag = "1")]
    pub source: Option<Peer>,
    /// `request`.
    #[prost(message, optional, tag = "4")]
    pub request: Option<Request>,
    /// `metadata_context`: dynamic metadata of earlier filters (jwt_authn).
    #[prost(message, optional, tag = "11")]
    pub metadata_context: Option<Metadata>,
}

/// `AttributeContext.Peer`: `address`, `principal`, `certificate`.
#[derive(Clone, PartialEq, Message)]
pub struct Peer {
    /// `address`.
    #[prost(message, optional, tag = "1")]
    pub address: Option<Address>,
    /// `principal`: the SAN Envoy verified (a SPIFFE id).
    #[prost(string, tag = "4")]
    pub principal: String,
    /// `certificate`: the URL-encoded PEM of the client certificate.
    #[prost(string, tag = "5")]
    pub certificate: String,
}

/// `AttributeContext.Request`: `http`.
#[derive(Clone, PartialEq, Message)]
pub struct Request {
    /// `http`.
    #[prost(message, optional, tag = "2")]
    pub http: Option<Http>,
}

/// `AttributeContext.HttpRequest`, without `fragment`, `size` and `protocol`.
#[derive(Clone, PartialEq, Message)]
pub struct Http {
    /// `id`.
    #[prost(string, tag = "1")]
    pub id: String,
    /// `method`.
    #[prost(string, tag = "2")]
    pub method: String,
    /// `headers` (`map<string, string>`), entries in wire order.
    #[prost(message, repeated, tag = "3")]
    pub headers: Vec<Header>,
    /// `header_map` (sent instead with `encode_raw_headers: true`).
    #[prost(message, optional, tag = "13")]
    pub header_map: Option<HeaderMap>,
    /// `path`.
    #[prost(string, tag = "4")]
    pub path: String,
    /// `host`.
    #[prost(string, tag = "5")]
    pub host: String,
    /// `scheme`.
    #[prost(string, tag = "6")]
    pub scheme: String,
    /// `query`.
    #[prost(string, tag = "7")]
    pub query: String,
    /// `body`.
    #[prost(string, tag = "11")]
    pub body: String,
    /// `raw_body`.
    #[prost(bytes = "vec", tag = "12")]
    pub raw_body: Vec<u8>,
}

/// One entry of the `headers` map (`string` keys and values on the wire;
/// UTF-8 checked by `wire::request`).
#[derive(Clone, PartialEq, Message)]
pub struct Header {
    /// The header name, as Envoy sent it.
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// The value (repeated headers joined by Envoy).
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

// === impl Http ===

impl Http {
    /// The `headers` map's entries with a map's semantics: one per name, the
    /// last value of a name sent twice (Envoy never does).
    pub fn flat_headers(&mut self) -> Vec<Header> {
        let mut headers = std::mem::take(&mut self.headers);
        if headers.len() > 1 {
            // Stable: equal names keep their wire order, so the last is last.
            headers.sort_by(|a, b| a.key.cmp(&b.key));
            headers.dedup_by(|later, earlier| {
                if later.key == earlier.key {
                    std::mem::swap(&mut earlier.value, &mut later.value);
                    true
                } else {
                    false
                }
            });
        }
        headers
    }
}

// === impl WireCheckRequest ===

impl From<&CheckRequest> for WireCheckRequest {
    /// The same request as the server decodes it (tests, tools, fuzzing).
    fn from(req: &CheckRequest) -> Self {
        // Bytes prost just encoded from a valid message decode.
        Self::decode(req.encode_to_vec().as_slice()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use envoy_types::pb::envoy::service::auth::v3::attribute_context;

    use super::*;
    use crate::wire::testkit::check_of;

    #[test]
    fn the_header_map_reads_as_its_entries_with_the_last_of_a_repeated_name() {
        let http = attribute_context::HttpRequest {
            headers: HashMap::from([
                ("b".to_owned(), "2".to_owned()),
                ("a".to_owned(), "1".to_owned()),
            ]),
            path: "/v1/x".into(),
            raw_body: b"{}".to_vec(),
            ..Default::default()
        };
        let wire = WireCheckRequest::from(&check_of(http));
        let mut http = wire.attributes.unwrap().request.unwrap().http.unwrap();
        assert_eq!(http.path, "/v1/x");
        assert_eq!(http.raw_body, b"{}");
        let headers: Vec<(Bytes, Bytes)> = http
            .flat_headers()
            .into_iter()
            .map(|h| (h.key, h.value))
            .collect();
        assert_eq!(
            headers,
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );

        // A name sent twice on the wire: the map kept the last; so do we.
        let mut bytes = Vec::new();
        for (k, v) in [("x", "first"), ("y", "other"), ("x", "last")] {
            prost::encoding::message::encode(
                3,
                &Header {
                    key: Bytes::from_static(k.as_bytes()),
                    value: Bytes::from_static(v.as_bytes()),
                },
                &mut bytes,
            );
        }
        let mut http = Http::decode(bytes.as_slice()).unwrap();
        let as_map = attribute_context::HttpRequest::decode(bytes.as_slice()).unwrap();
        let flat: HashMap<String, String> = http
            .flat_headers()
            .into_iter()
            .map(|h| (utf8(h.key), utf8(h.value)))
            .collect();
        assert_eq!(flat, as_map.headers);
        assert_eq!(flat["x"], "last");
    }

    fn utf8(b: Bytes) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn invalid_utf8_in_a_string_field_is_refused_as_before() {
        // `method` (field 2) holding 0xff.
        let bytes = [0x12, 0x01, 0xff];
        assert!(attribute_context::HttpRequest::decode(&bytes[..]).is_err());
        assert!(Http::decode(&bytes[..]).is_err());
    }
}
