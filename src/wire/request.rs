//! `CheckRequest` → [`HttpRequest`]: the Envoy request attributes converted once,
//! bounded (see the limits in [`crate::request`]) and canonicalised.

use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;

use crate::request::{
    ByteString, HttpRequest, MAX_HEADER_BYTES, MAX_HEADERS, MAX_HOST_BYTES, MAX_PATH_BYTES, Peer,
    RequestError, name_order, printable_name,
};
use crate::wire::lean::{Header, WireCheckRequest};
use prost::bytes::Bytes;

impl TryFrom<CheckRequest> for HttpRequest {
    type Error = RequestError;

    /// The full message, as tests and tools build it: read the way the
    /// server reads it ([`WireCheckRequest`]).
    fn try_from(req: CheckRequest) -> Result<Self, Self::Error> {
        Self::try_from(WireCheckRequest::from(&req))
    }
}

impl TryFrom<WireCheckRequest> for HttpRequest {
    type Error = RequestError;

    fn try_from(req: WireCheckRequest) -> Result<Self, Self::Error> {
        let attrs = req.attributes.unwrap_or_default();
        let filter_metadata = attrs
            .metadata_context
            .map(|m| {
                m.filter_metadata
                    .into_iter()
                    .map(|(k, v)| (k, struct_json(v)))
                    .collect()
            })
            .unwrap_or_default();
        let source = attrs.source.unwrap_or_default();
        let ip = source
            .address
            .and_then(|a| a.address)
            .and_then(|a| match a {
                Address::SocketAddress(s) => s.address.parse().ok(),
                _ => None,
            });
        let mut http = attrs
            .request
            .and_then(|r| r.http)
            .ok_or(RequestError::NotHttp)?;
        // Checked before anything is copied or parsed (see the constants for why).
        let path_len = http.fields.path.len() + http.fields.query.len();
        if path_len > MAX_PATH_BYTES {
            return Err(RequestError::PathTooLong(path_len));
        }
        if http.fields.host.len() > MAX_HOST_BYTES {
            return Err(RequestError::HostTooLong(http.fields.host.len()));
        }

        let flat = http.flat_headers();
        let fields = http.fields;
        let (headers, repeated_headers) = headers(flat, fields.header_map)?;

        // Envoy puts the path with query in `path`; split it off.
        let (path, query) = match fields.path.split_once('?') {
            Some((p, q)) => (p.to_owned(), q.to_owned()),
            None => (fields.path, fields.query),
        };
        let mut out = HttpRequest {
            id: fields.id,
            method: upper_case(fields.method),
            host: fields.host,
            path,
            raw_path: String::new(),
            target_error: None,
            query,
            scheme: fields.scheme,
            headers,
            repeated_headers,
            body: if fields.raw_body.is_empty() {
                fields.body.into_bytes()
            } else {
                fields.raw_body
            },
            source: Peer {
                ip,
                principal: source.principal,
                certificate: source.certificate,
            },
            filter_metadata,
        };
        if let Some(rid) = out.header("x-request-id") {
            out.id = rid.to_owned();
        }
        out.canonicalize();
        Ok(out)
    }
}

/// Header (name, value) pairs, names lower case, sorted by name.
type Headers = Vec<(ByteString, ByteString)>;

/// The request's headers: names lower-cased, sorted, repeated names joined,
/// within the limits. `flat` is the `headers` map's entries, one per name
/// and sorted ([`crate::wire::lean::Http::flat_headers`]); `header_map` is
/// what `encode_raw_headers: true` sends instead.
fn headers(
    flat: Vec<Header>,
    header_map: Option<envoy_types::pb::envoy::config::core::v3::HeaderMap>,
) -> Result<(Headers, Vec<String>), RequestError> {
    let mut headers: Headers = if !flat.is_empty() {
        if flat.len() > MAX_HEADERS {
            return Err(RequestError::TooManyHeaders(flat.len()));
        }
        let mut list = Vec::with_capacity(flat.len());
        for Header { key, value } in flat {
            let Ok(value) = ByteString::try_from(value) else {
                return Err(not_utf8(&key));
            };
            list.push((header_name(key)?, value));
        }
        list
    } else {
        // `encode_raw_headers: true` sends `header_map` instead.
        header_map
            .map(|m| m.headers)
            .unwrap_or_default()
            .into_iter()
            .map(|h| {
                let v = if h.raw_value.is_empty() {
                    h.value
                } else {
                    String::from_utf8_lossy(&h.raw_value).into_owned()
                };
                (lower_case(h.key.into()), v.into())
            })
            .collect()
    };
    if headers.len() > MAX_HEADERS {
        return Err(RequestError::TooManyHeaders(headers.len()));
    }
    if let Some((name, value)) = headers
        .iter()
        .find(|(k, v)| k.len() + v.len() > MAX_HEADER_BYTES)
    {
        return Err(RequestError::HeaderTooLong {
            // Echoed in the 400 and the log: cut, and nothing but printable ASCII.
            name: printable_name(name.as_bytes()),
            len: name.len() + value.len(),
        });
    }
    // Envoy's map arrives sorted by `flat_headers`, and Envoy sends names in
    // lower case: sorting again is for raw header maps and odd callers.
    if !headers.is_sorted_by(|a, b| name_order(a.0.as_bytes(), b.0.as_bytes()).is_le()) {
        headers.sort_by(|a, b| name_order(a.0.as_bytes(), b.0.as_bytes()));
    }
    // Join repeated names (raw header maps may repeat them), and remember
    // which: some protocols refuse a repeated header outright.
    let mut repeated: Vec<String> = Vec::new();
    headers.dedup_by(|later, earlier| {
        if later.0 == earlier.0 {
            if repeated.last().map(String::as_str) != Some(&*earlier.0) {
                repeated.push(earlier.0.to_string());
            }
            earlier.1 = format!("{},{}", earlier.1, later.1).into();
            true
        } else {
            false
        }
    });
    Ok((headers, repeated))
}

/// `method` in upper case, in place.
fn upper_case(mut method: String) -> String {
    method.make_ascii_uppercase();
    method
}

/// `name` in lower case, copied only when it is not already.
fn lower_case(name: ByteString) -> ByteString {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        name.to_ascii_lowercase().into()
    } else {
        name
    }
}

/// A header name from the wire: UTF-8, in lower case. Envoy sends names in
/// lower case ASCII, which is taken as it is, without a copy.
fn header_name(key: Bytes) -> Result<ByteString, RequestError> {
    if !key.iter().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        return match std::str::from_utf8(&key) {
            Ok(name) => Ok(name.to_ascii_lowercase().into()),
            Err(_) => Err(not_utf8(&key)),
        };
    }
    // ASCII is UTF-8: this cannot fail.
    ByteString::try_from(key).map_err(|_| not_utf8(b""))
}

fn not_utf8(key: &[u8]) -> RequestError {
    RequestError::HeaderNotUtf8 {
        name: printable_name(key),
    }
}

/// A protobuf `Struct` as JSON (numbers that are whole stay integers, so
/// NumericDate claims read as they were written).
fn struct_json(s: envoy_types::pb::google::protobuf::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .into_iter()
            .map(|(k, v)| (k, value_json(v)))
            .collect(),
    )
}

fn value_json(v: envoy_types::pb::google::protobuf::Value) -> serde_json::Value {
    use envoy_types::pb::google::protobuf::value::Kind;
    match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                serde_json::Value::from(n as i64)
            } else {
                serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, Into::into)
            }
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::StructValue(s)) => struct_json(s),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.into_iter().map(value_json).collect())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context;

    use crate::wire::testkit::check_of as check;

    #[test]
    fn splits_query_and_prefers_request_id_header() {
        let mut http = attribute_context::HttpRequest {
            id: "envoy-id".into(),
            method: "post".into(),
            path: "/v1/x?a=b".into(),
            ..Default::default()
        };
        http.headers.insert("X-Request-Id".into(), "rid-1".into());
        let r = HttpRequest::try_from(check(http)).unwrap();
        assert_eq!(r.path, "/v1/x");
        assert_eq!(r.query, "a=b");
        assert_eq!(r.method, "POST");
        assert_eq!(r.id, "rid-1");
        assert_eq!(r.header("x-request-id"), Some("rid-1"));
    }

    #[test]
    fn not_http_is_an_error() {
        assert_eq!(
            HttpRequest::try_from(CheckRequest::default()),
            Err(RequestError::NotHttp)
        );
    }

    #[test]
    fn too_many_headers() {
        let mut http = attribute_context::HttpRequest::default();
        for i in 0..=MAX_HEADERS {
            http.headers.insert(format!("h{i}"), "v".into());
        }
        assert_eq!(
            HttpRequest::try_from(check(http)),
            Err(RequestError::TooManyHeaders(MAX_HEADERS + 1))
        );
    }

    #[test]
    fn path_and_query_are_bounded_together() {
        // At the bound: accepted, whether the query is in `path` or in `query`.
        let at = format!("/v1/{}", "a".repeat(MAX_PATH_BYTES - 4));
        let http = attribute_context::HttpRequest {
            path: at.clone(),
            ..Default::default()
        };
        assert_eq!(HttpRequest::try_from(check(http)).unwrap().path, at);
        let (p, q) = at.split_at(MAX_PATH_BYTES / 2);
        let http = attribute_context::HttpRequest {
            path: format!("{p}?{}", &q[1..]),
            ..Default::default()
        };
        assert!(HttpRequest::try_from(check(http)).is_ok());

        // One byte over, in the path, in the query string, or split between the two fields.
        let over = format!("{at}b");
        let http = attribute_context::HttpRequest {
            path: over.clone(),
            ..Default::default()
        };
        assert_eq!(
            HttpRequest::try_from(check(http)),
            Err(RequestError::PathTooLong(MAX_PATH_BYTES + 1))
        );
        let http = attribute_context::HttpRequest {
            path: "/v1/x".into(),
            query: "q".repeat(MAX_PATH_BYTES),
            ..Default::default()
        };
        assert_eq!(
            HttpRequest::try_from(check(http)),
            Err(RequestError::PathTooLong(MAX_PATH_BYTES + 5))
        );
        let http = attribute_context::HttpRequest {
            path: format!("/v1/{}", "a".repeat(3 << 20)),
            ..Default::default()
        };
        let err = HttpRequest::try_from(check(http)).unwrap_err();
        assert_eq!(err, RequestError::PathTooLong(4 + (3 << 20)));
        assert_eq!(
            err.to_string(),
            format!(
                "request path is {} bytes, more than the 16384 allowed",
                4 + (3 << 20)
            )
        );
    }

    #[test]
    fn host_is_bounded() {
        let http = attribute_context::HttpRequest {
            host: "h".repeat(MAX_HOST_BYTES),
            ..Default::default()
        };
        assert!(HttpRequest::try_from(check(http)).is_ok());
        let http = attribute_context::HttpRequest {
            host: format!("{}.example.com:443", "h".repeat(MAX_HOST_BYTES)),
            ..Default::default()
        };
        assert_eq!(
            HttpRequest::try_from(check(http)),
            Err(RequestError::HostTooLong(MAX_HOST_BYTES + 16))
        );
    }

    #[test]
    fn one_header_is_bounded_and_its_name_is_echoed_safely() {
        let ok = "v".repeat(MAX_HEADER_BYTES - "x-big".len());
        let mut http = attribute_context::HttpRequest::default();
        http.headers.insert("x-big".into(), ok.clone());
        assert_eq!(
            HttpRequest::try_from(check(http)).unwrap().header("x-big"),
            Some(ok.as_str())
        );

        let mut http = attribute_context::HttpRequest::default();
        http.headers.insert("x-big".into(), format!("{ok}v"));
        assert_eq!(
            HttpRequest::try_from(check(http)),
            Err(RequestError::HeaderTooLong {
                name: "x-big".into(),
                len: MAX_HEADER_BYTES + 1
            })
        );

        // A raw header map (`encode_raw_headers`), a name that is itself the long part and
        // holds bytes that must not reach a log line or the 400 body as they are.
        let name = format!("x-\n\u{1b}[31m{}", "n".repeat(MAX_HEADER_BYTES));
        let http = attribute_context::HttpRequest {
            header_map: Some(HeaderMap {
                headers: vec![HeaderValue {
                    key: name.clone(),
                    raw_value: b"v".to_vec(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        };
        let Err(RequestError::HeaderTooLong { name: echoed, len }) =
            HttpRequest::try_from(check(http))
        else {
            panic!("a long header name is refused");
        };
        assert_eq!(len, name.len() + 1);
        assert_eq!(echoed.chars().count(), 64);
        assert!(echoed.starts_with("x-??[31m"), "{echoed}");
        assert!(echoed.chars().all(|c| c.is_ascii_graphic()), "{echoed}");
    }

    /// A CheckRequest whose `headers` map holds (`key`, `value`) as raw bytes.
    fn with_raw_header(key: &[u8], value: &[u8]) -> WireCheckRequest {
        use prost::Message;
        let mut wire = WireCheckRequest::from(&check(attribute_context::HttpRequest {
            path: "/v1/x".into(),
            ..Default::default()
        }));
        let http = wire
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
            .unwrap();
        http.headers.push(Header {
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
        });
        // Through the wire, as the server reads it.
        WireCheckRequest::decode(wire.encode_to_vec().as_slice()).unwrap()
    }

    #[test]
    fn header_names_and_values_must_be_utf8_and_names_are_lower_cased() {
        assert_eq!(
            HttpRequest::try_from(with_raw_header(b"x-bad", b"v\xff")),
            Err(RequestError::HeaderNotUtf8 {
                name: "x-bad".into()
            })
        );
        assert_eq!(
            HttpRequest::try_from(with_raw_header(b"x-\xc3\n", b"v")),
            Err(RequestError::HeaderNotUtf8 {
                name: "x-??".into()
            })
        );
        let r = HttpRequest::try_from(with_raw_header(
            "X-Caf\u{e9}".as_bytes(),
            "\u{e9}t\u{e9}".as_bytes(),
        ))
        .unwrap();
        assert_eq!(r.header("x-caf\u{e9}"), Some("\u{e9}t\u{e9}"));
        let r = HttpRequest::try_from(with_raw_header(b"content-type", b"text/plain")).unwrap();
        assert_eq!(r.header("content-type"), Some("text/plain"));
    }
}
