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
use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::request::name_order;

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

/// `AttributeContext.HttpRequest`, without `fragment`, `size` and `protocol`:
/// the header map read by [`merge_header`], every other field by prost.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct Http {
    /// `headers` (`map<string, string>`, field 3), entries in wire order.
    pub headers: Vec<Header>,
    /// The other fields.
    pub fields: HttpFields,
}

/// The fields of `AttributeContext.HttpRequest` other than `headers`.
#[derive(Clone, PartialEq, Message)]
pub struct HttpFields {
    /// `id`.
    #[prost(string, tag = "1")]
    pub id: String,
    /// `method`.
    #[prost(string, tag = "2")]
    pub method: String,
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

/// `AttributeContext.HttpRequest.headers`.
const TAG_HEADERS: u32 = 3;

impl Message for Http {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.fields.encode_raw(buf);
        prost::encoding::message::encode_repeated(TAG_HEADERS, &self.headers, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag == TAG_HEADERS {
            merge_header(&mut self.headers, wire_type, buf, ctx)
        } else {
            self.fields.merge_field(tag, wire_type, buf, ctx)
        }
    }

    fn encoded_len(&self) -> usize {
        self.fields.encoded_len()
            + prost::encoding::message::encoded_len_repeated(TAG_HEADERS, &self.headers)
    }

    fn clear(&mut self) {
        self.headers.clear();
        self.fields.clear();
    }
}

/// Reads one entry of the header map. An entry as Envoy writes it, exactly
/// `{1: key, 2: value}` in that order, is read here straight from the
/// buffer: two slices of it, where prost's generic path (a default message,
/// its field loop, a key, a length and a `Bytes` per field, a recursion
/// check) cost about 850 instructions an entry, the largest part of
/// decoding. Anything else (another order, a missing, repeated or unknown
/// field, a non-minimal key, an entry across buffer chunks, a wrong wire
/// type) goes to prost untouched, which reads or refuses it as it always has.
fn merge_header(
    headers: &mut Vec<Header>,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    if wire_type == WireType::LengthDelimited
        && let Some(entry) = EntryShape::of(buf.chunk())
    {
        buf.advance(entry.key_start);
        let key = buf.copy_to_bytes(entry.key_len);
        buf.advance(entry.value_start - entry.key_start - entry.key_len);
        let value = buf.copy_to_bytes(entry.value_len);
        headers.push(Header { key, value });
        return Ok(());
    }
    prost::encoding::message::merge_repeated(wire_type, headers, buf, ctx).map_err(|mut e| {
        // Where, as prost's derived code says it.
        e.push("Http", "headers");
        e
    })
}

/// Where the key and the value of a `{1: key, 2: value}` entry are, counted
/// from the entry's length prefix.
#[derive(Debug, PartialEq, Eq)]
struct EntryShape {
    key_start: usize,
    key_len: usize,
    value_start: usize,
    value_len: usize,
}

impl EntryShape {
    /// The shape of the length-delimited entry at the start of `chunk`, when
    /// it is exactly key then value and lies wholly in `chunk`.
    fn of(chunk: &[u8]) -> Option<Self> {
        let (len, at) = varint(chunk)?;
        let end = at.checked_add(len)?;
        let entry = chunk.get(..end)?;
        let (key_start, key_len) = field(entry, at, 0x0a)?;
        let (value_start, value_len) = field(entry, key_start + key_len, 0x12)?;
        (value_start + value_len == end).then_some(Self {
            key_start,
            key_len,
            value_start,
            value_len,
        })
    }
}

/// The content (start, length) of the length-delimited field at `at` in
/// `entry`, when its key is the one byte `key`.
fn field(entry: &[u8], at: usize, key: u8) -> Option<(usize, usize)> {
    if *entry.get(at)? != key {
        return None;
    }
    let (len, n) = varint(entry.get(at + 1..)?)?;
    let start = at + 1 + n;
    (start.checked_add(len)? <= entry.len()).then_some((start, len))
}

/// A length varint at the start of `bytes` and its size in bytes; `None`
/// past 4 bytes (256 MiB: more than a Check may hold), which prost then reads.
fn varint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, &b) in bytes.iter().take(4).enumerate() {
        value |= usize::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some((value, i + 1));
        }
    }
    None
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
            headers.sort_by(|a, b| name_order(&a.key, &b.key));
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
    use proptest::prelude::*;

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
        assert_eq!(http.fields.path, "/v1/x");
        assert_eq!(http.fields.raw_body, b"{}");
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

    /// `AttributeContext.HttpRequest` read by prost's generic path alone (as
    /// [`Http`] was derived before it read the header map by hand): what
    /// [`Http`] must read every input as.
    #[derive(Clone, PartialEq, Message)]
    struct PlainHttp {
        #[prost(message, repeated, tag = "3")]
        headers: Vec<Header>,
        #[prost(string, tag = "1")]
        id: String,
        #[prost(string, tag = "2")]
        method: String,
        #[prost(message, optional, tag = "13")]
        header_map: Option<HeaderMap>,
        #[prost(string, tag = "4")]
        path: String,
        #[prost(string, tag = "5")]
        host: String,
        #[prost(string, tag = "6")]
        scheme: String,
        #[prost(string, tag = "7")]
        query: String,
        #[prost(string, tag = "11")]
        body: String,
        #[prost(bytes = "vec", tag = "12")]
        raw_body: Vec<u8>,
    }

    type Read = Result<(Vec<Header>, HttpFields), String>;

    fn read_both(bytes: &[u8]) -> (Read, Read) {
        let ours = Http::decode(bytes).map(|h| (h.headers, h.fields));
        // From `Bytes` too, as the server reads them (zero-copy slices).
        let ours_bytes = Http::decode(Bytes::copy_from_slice(bytes)).map(|h| (h.headers, h.fields));
        assert_eq!(
            ours.as_ref().map_err(|e| e.to_string()),
            ours_bytes.as_ref().map_err(|e| e.to_string())
        );
        let plain = PlainHttp::decode(bytes).map(|p| {
            let fields = HttpFields {
                id: p.id,
                method: p.method,
                header_map: p.header_map,
                path: p.path,
                host: p.host,
                scheme: p.scheme,
                query: p.query,
                body: p.body,
                raw_body: p.raw_body,
            };
            (p.headers, fields)
        });
        // The same error, whichever struct's name prost put before it.
        let error = |e: DecodeError| e.to_string().rsplit(": ").next().unwrap().to_owned();
        (ours.map_err(error), plain.map_err(error))
    }

    /// One map entry written in one of the ways protobuf allows (or not).
    fn entry(key: &[u8], value: &[u8], way: u8) -> Vec<u8> {
        let field = |tag: u8, b: &[u8]| {
            let mut out = vec![tag];
            prost::encoding::encode_varint(b.len() as u64, &mut out);
            out.extend_from_slice(b);
            out
        };
        let content = match way % 8 {
            0 => [field(0x0a, key), field(0x12, value)].concat(),
            1 => [field(0x12, value), field(0x0a, key)].concat(),
            2 => field(0x0a, key),
            3 => field(0x12, value),
            4 => [field(0x0a, key), field(0x12, value), field(0x1a, b"x")].concat(),
            5 => [field(0x0a, key), field(0x0a, value), field(0x12, key)].concat(),
            // A non-minimal key for field 1 (0x8a 0x00).
            6 => [
                vec![0x8a, 0x00],
                field(0x12, key)[1..].to_vec(),
                field(0x12, value),
            ]
            .concat(),
            _ => [field(0x0a, key), field(0x12, value)].concat()[..key.len() / 2].to_vec(),
        };
        let mut out = vec![0x1a];
        if way >= 8 {
            // The entry's length as a non-minimal varint.
            out.extend_from_slice(&[(content.len() as u8 & 0x7f) | 0x80, 0x00]);
        } else {
            prost::encoding::encode_varint(content.len() as u64, &mut out);
        }
        out.extend_from_slice(&content);
        out
    }

    #[test]
    fn header_entries_as_envoy_writes_them_take_the_short_path() {
        let bytes = entry(b"content-type", b"application/json", 0);
        assert_eq!(
            EntryShape::of(&bytes[1..]),
            Some(EntryShape {
                key_start: 3,
                key_len: 12,
                value_start: 17,
                value_len: 16
            })
        );
        for way in 1..8 {
            assert_eq!(EntryShape::of(&entry(b"k", b"v", way)[1..]), None, "{way}");
        }
        // Cut short: not the short path, and prost refuses it.
        assert_eq!(EntryShape::of(&bytes[1..bytes.len() - 1]), None);
        let (ours, plain) = read_both(&bytes[..bytes.len() - 1]);
        assert!(ours.is_err());
        assert_eq!(ours, plain);
    }

    proptest! {
        /// Every header map, written any way, reads as prost's generic path
        /// reads it: the same entries, or refused both ways.
        #[test]
        fn header_entries_read_as_prost_reads_them(
            entries in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..20),
                 proptest::collection::vec(any::<u8>(), 0..200),
                 0u8..16),
                0..6),
            cut in any::<prop::sample::Index>(),
            tail in proptest::collection::vec(any::<u8>(), 0..4),
        ) {
            let mut bytes: Vec<u8> = entries.iter().flat_map(|(k, v, way)| entry(k, v, *way)).collect();
            let (ours, plain) = read_both(&bytes);
            prop_assert_eq!(ours, plain);
            // Cut anywhere, and with trailing bytes.
            let at = cut.index(bytes.len() + 1);
            let (ours, plain) = read_both(&bytes[..at]);
            prop_assert_eq!(ours, plain);
            bytes.extend_from_slice(&tail);
            let (ours, plain) = read_both(&bytes);
            prop_assert_eq!(ours, plain);
        }

        #[test]
        fn arbitrary_bytes_read_as_prost_reads_them(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            entry_first in any::<bool>(),
        ) {
            let (ours, plain) = read_both(&bytes);
            prop_assert_eq!(ours, plain);
            // As the content of a header entry.
            let mut input = vec![0x1a];
            if entry_first {
                prost::encoding::encode_varint(bytes.len() as u64, &mut input);
            }
            input.extend_from_slice(&bytes);
            let (ours, plain) = read_both(&input);
            prop_assert_eq!(ours, plain);
        }
    }
}
