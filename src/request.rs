//! The HTTP request Envoy asks about, as the decision core sees it; the edge
//! converts it from the wire type (`wire::request`).

use std::net::IpAddr;

pub use bytestring::ByteString;

/// Prefix of the headers cedar-gate sets; client-sent ones are never trusted.
pub const HEADER_PREFIX: &str = "x-cedar-gate-";

/// Most request headers accepted in one Check (Envoy's own default limit is 100).
pub const MAX_HEADERS: usize = 256;
/// Longest path plus query string accepted, in bytes. Envoy bounds all request headers
/// together (60 KiB by default), but a gRPC caller talking to cedar-gate directly is bounded
/// only by the message size (4 MiB), and the path is matched, copied into the Cedar context,
/// the resource uid and the audit event: a multi-megabyte path costs seconds per Check.
pub const MAX_PATH_BYTES: usize = 16 * 1024;
/// Longest `:authority` (host) accepted, in bytes: a DNS name is at most 253, plus a port.
pub const MAX_HOST_BYTES: usize = 1024;
/// Longest single request header (name plus value) accepted, in bytes; above Envoy's default
/// limit for all headers together (60 KiB), so only a direct caller or an Envoy with a raised
/// `max_request_headers_kb` can reach it.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// A header name from the config, lower-cased once when the config is read
/// (Envoy sends header names in lower case).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct HeaderName(String);

// === impl HeaderName ===

impl HeaderName {
    /// A header name, lower-cased; `None` when `name` is empty or has a byte
    /// outside `[A-Za-z0-9_-]`.
    pub fn new(name: &str) -> Option<Self> {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(name.to_ascii_lowercase()))
    }

    /// The lower-case name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HeaderName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::new(&name).ok_or_else(|| format!("`{name}` is not a header name"))
    }
}

/// The direct peer, as Envoy saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// Socket address IP, if Envoy sent one.
    pub ip: Option<IpAddr>,
    /// `source.principal`: the peer certificate's URI SAN (or subject).
    pub principal: String,
    /// `source.certificate`: URL-encoded PEM, when forwarded.
    pub certificate: String,
}

/// One HTTP request, as cedar-gate's logic sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRequest {
    /// `x-request-id` or Envoy's request id.
    pub id: String,
    /// Upper-case method.
    pub method: String,
    /// Host (`:authority`), canonical: lower case, no port, no trailing dot
    /// ([`crate::target`]).
    pub host: String,
    /// The canonical path without query string ([`crate::target`]): what
    /// routes, classification, policies and the audit read.
    pub path: String,
    /// The path as the client sent it (without query), when it differs from
    /// [`HttpRequest::path`]; empty otherwise.
    pub raw_path: String,
    /// Why the path or host cannot be made canonical: the request is refused
    /// (`400`) before it is classified.
    pub target_error: Option<crate::target::TargetError>,
    /// Query string (without `?`).
    pub query: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Headers, names lower-case, sorted by name (multiple values joined by `,`).
    /// Each is a slice of the gRPC message the request came in (UTF-8 checked),
    /// not a copy: see [`crate::wire::lean`].
    pub headers: Vec<(ByteString, ByteString)>,
    /// Names of headers that came more than once in a raw header map
    /// (`encode_raw_headers`); Envoy's plain map joins repeats with `,` itself.
    pub repeated_headers: Vec<String>,
    /// The body bytes Envoy forwarded (possibly partial).
    pub body: Vec<u8>,
    /// The direct peer.
    pub source: Peer,
    /// `metadata_context.filter_metadata` as JSON, by namespace (for example
    /// Envoy's `jwt_authn` payload when the ext_authz filter forwards it).
    pub filter_metadata: std::collections::BTreeMap<String, serde_json::Value>,
}

/// `headers` as [`HttpRequest::headers`] holds them: names lower case,
/// sorted (tests and tools; the server converts the wire request in
/// `wire::request`).
pub fn header_list<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(ByteString, ByteString)> {
    let mut list: Vec<(ByteString, ByteString)> = headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase().into(), v.into()))
        .collect();
    list.sort();
    list
}

/// Why a CheckRequest could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// No `attributes.request.http`: not an HTTP check.
    #[error("check request has no HTTP attributes")]
    NotHttp,
    /// More headers than [`MAX_HEADERS`].
    #[error("request has {0} headers, more than the {MAX_HEADERS} allowed")]
    TooManyHeaders(usize),
    /// Path and query longer than [`MAX_PATH_BYTES`].
    #[error("request path is {0} bytes, more than the {MAX_PATH_BYTES} allowed")]
    PathTooLong(usize),
    /// Host longer than [`MAX_HOST_BYTES`].
    #[error("request host is {0} bytes, more than the {MAX_HOST_BYTES} allowed")]
    HostTooLong(usize),
    /// One header (name plus value) longer than [`MAX_HEADER_BYTES`].
    #[error("request header `{name}` is {len} bytes, more than the {MAX_HEADER_BYTES} allowed")]
    HeaderTooLong {
        /// The header name, cut to its first 64 bytes, `?` for anything but printable ASCII.
        name: String,
        /// Name plus value, in bytes.
        len: usize,
    },
    /// A header name or value that is not UTF-8 (a `string` in the protobuf).
    #[error("request header `{name}` is not UTF-8")]
    HeaderNotUtf8 {
        /// The header name, cut to its first 64 bytes, `?` for anything
        /// but printable ASCII.
        name: String,
    },
}

/// `name` cut to 64 bytes, with `?` for anything but printable ASCII:
/// what an error may echo of a header name (in a 400 and the log).
pub(crate) fn printable_name(name: &[u8]) -> String {
    name.iter()
        .take(64)
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

// === impl HttpRequest ===

impl HttpRequest {
    /// Replaces the path and host by their canonical forms (step 0 of every
    /// Check). On failure the request keeps them as sent, for the audit, and
    /// records the error: the gate refuses it before classifying anything.
    pub fn canonicalize(&mut self) {
        match crate::target::canonical_path(&self.path) {
            Ok(std::borrow::Cow::Owned(path)) if path != self.path => {
                self.raw_path = std::mem::replace(&mut self.path, path);
            }
            Ok(_) => {}
            Err(e) => self.target_error = Some(e),
        }
        match crate::target::canonical_host(&self.host) {
            Ok(std::borrow::Cow::Owned(host)) => self.host = host,
            Ok(std::borrow::Cow::Borrowed(_)) => {}
            Err(e) => {
                self.target_error.get_or_insert(e);
            }
        }
    }

    /// A header's value by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .binary_search_by(|(k, _)| name_order(k.as_bytes(), name.as_bytes()))
            .ok()
            .and_then(|i| self.headers.get(i))
            .map(|(_, v)| &**v)
    }
}

/// `a.cmp(b)`, deciding by the first byte where it can: most header names
/// compared differ there, and the general comparison is a `memcmp` call
/// (several per lookup, dozens per sort of a request's headers).
pub fn name_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::{HttpRequest, header_list, name_order};

    proptest! {
        #[test]
        fn name_order_is_byte_order(a in "[:a-z-]{0,6}", b in "[:a-z-]{0,6}") {
            prop_assert_eq!(name_order(a.as_bytes(), b.as_bytes()), a.as_bytes().cmp(b.as_bytes()));
        }

        #[test]
        fn every_header_is_found_and_no_other(
            names in prop::collection::btree_set("[:a-z-]{1,8}", 0..16),
            probe in "[:a-z-]{0,8}",
        ) {
            let pairs = names.iter().map(|n| (n.as_str(), n.as_str()));
            let req = HttpRequest { headers: header_list(pairs), ..HttpRequest::default() };
            for name in &names {
                prop_assert_eq!(req.header(name), Some(name.as_str()));
            }
            prop_assert_eq!(req.header(&probe).is_some(), names.contains(&probe));
        }
    }
}
