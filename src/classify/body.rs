//! Reading a request body safely: bounded, never trusted, never panicking.
//!
//! A body a protocol needs but cannot read denies the request with a specific
//! reason, unless the route says `body: optional`. JSON is parsed strictly
//! ([`Json`]): duplicate object keys are refused, because the upstream may
//! keep a different duplicate than we do (`{"model":"small","model":"frontier"}`),
//! and nesting deeper than serde_json's recursion limit (128) is an error, not
//! a stack overflow.

use crate::classify::form::{self, Form};
use crate::classify::json::Json;
use crate::classify::routes::{BodyMode, Route};
use crate::request::HttpRequest;
use crate::vocab::Reason;

/// Header Envoy sets when it forwarded only the first `max_request_bytes`.
pub const PARTIAL_BODY_HEADER: &str = "x-envoy-auth-partial-body";

/// Why a body could not be used. The message goes to the audit log (never to
/// the client) and never quotes the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// No body, but the protocol needs one.
    #[error("the request has no body")]
    Missing,
    /// Envoy forwarded only part of the body.
    #[error("envoy forwarded a partial body (`{PARTIAL_BODY_HEADER}: true`)")]
    Partial,
    /// Fewer body bytes than the request's `content-length` (Envoy cut the body without
    /// marking it partial).
    #[error("envoy forwarded {len} of the {declared} body bytes (`content-length`)")]
    Truncated {
        /// Bytes forwarded.
        len: usize,
        /// The request's `content-length`.
        declared: u64,
    },
    /// Exactly the route's `max_body_bytes` and no `content-length` to prove the body ends
    /// there (chunked HTTP/1.1, HTTP/2): Envoy may have cut it without marking it partial.
    #[error(
        "the body is exactly the {0} bytes parsed at most and has no `content-length`; it may have been cut"
    )]
    AtLimit(usize),
    /// Longer than the route's `max_body_bytes`.
    #[error("the body is {len} bytes, more than the {max} parsed")]
    TooLarge {
        /// Body length.
        len: usize,
        /// The route's bound.
        max: usize,
    },
    /// Compressed, not JSON, malformed, or a field of the wrong type.
    #[error("invalid body: {0}")]
    Invalid(String),
    /// A JSON-RPC batch with more elements than allowed.
    #[error("JSON-RPC batch of {len} elements, more than the {max} allowed")]
    BatchTooLarge {
        /// Elements in the batch.
        len: usize,
        /// The bound.
        max: usize,
    },
}

// === impl BodyError ===

impl BodyError {
    /// The decision reason (a fixed metric label).
    pub fn reason(&self) -> Reason {
        match self {
            BodyError::Missing => Reason::BodyMissing,
            BodyError::Partial | BodyError::Truncated { .. } | BodyError::AtLimit(_) => {
                Reason::BodyPartial
            }
            BodyError::TooLarge { .. } => Reason::BodyTooLarge,
            BodyError::Invalid(_) => Reason::BodyInvalid,
            BodyError::BatchTooLarge { .. } => Reason::BatchTooLarge,
        }
    }

    /// A field of the wrong type.
    pub fn field(name: &str, expected: &str) -> Self {
        BodyError::Invalid(format!("`{name}` must be {expected}"))
    }
}

/// The body of one request, read under a route's rules.
#[derive(Debug)]
pub struct BodyReader<'a> {
    req: &'a HttpRequest,
    mode: BodyMode,
    max: usize,
}

// === impl BodyReader ===

impl<'a> BodyReader<'a> {
    /// A reader for `req` under `route`'s body rules.
    pub fn new(req: &'a HttpRequest, route: &Route) -> Self {
        Self {
            req,
            mode: route.body,
            max: route.max_body_bytes,
        }
    }

    /// A reader with explicit rules (tests, fuzzing).
    pub fn with_rules(req: &'a HttpRequest, mode: BodyMode, max: usize) -> Self {
        Self { req, mode, max }
    }

    /// The body as strict JSON. `Ok(None)` when the body is unusable and the
    /// route opted out of fail-closed parsing.
    pub fn json(&self) -> Result<Option<Json<'a>>, BodyError> {
        self.lenient(self.bytes().and_then(parse_json))
    }

    /// Applies the route's mode to an extraction result: with `body:
    /// optional`, an error becomes `None` (classify from the path alone).
    pub fn lenient<T>(&self, r: Result<T, BodyError>) -> Result<Option<T>, BodyError> {
        match (r, self.mode) {
            (Ok(v), _) => Ok(Some(v)),
            (Err(_), BodyMode::Optional) => Ok(None),
            (Err(e), BodyMode::Required) => Err(e),
        }
    }

    /// The raw body after the checks every protocol shares.
    pub fn bytes(&self) -> Result<&'a [u8], BodyError> {
        let body = self.req.body.as_slice();
        if self
            .req
            .header(PARTIAL_BODY_HEADER)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            return Err(BodyError::Partial);
        }
        // Envoy sets the partial-body header only when it had buffered *more* than
        // `max_request_bytes` when it asked: a body whose first bytes fill its buffer
        // exactly (a client pausing there, or TLS records adding up) comes with
        // `false` and is cut all the same. The request's own length tells the truth;
        // without one, a body of exactly the limit (`max_body_bytes` is documented to
        // equal Envoy's `max_request_bytes`) cannot be told from a cut one. An empty
        // body is left to `Missing` (Envoy not configured to send bodies).
        let declared = self
            .req
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        match declared {
            Some(declared) if !body.is_empty() && declared > body.len() as u64 => {
                return Err(BodyError::Truncated {
                    len: body.len(),
                    declared,
                });
            }
            None if !body.is_empty() && body.len() == self.max => {
                return Err(BodyError::AtLimit(body.len()));
            }
            _ => {}
        }
        if let Some(enc) = self.req.header("content-encoding") {
            let enc = enc.trim();
            if !enc.is_empty() && !enc.eq_ignore_ascii_case("identity") {
                return Err(BodyError::Invalid(
                    "compressed body (`content-encoding` is not `identity`)".to_owned(),
                ));
            }
        }
        if body.len() > self.max {
            return Err(BodyError::TooLarge {
                len: body.len(),
                max: self.max,
            });
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(BodyError::Missing);
        }
        Ok(body)
    }

    /// The boundary of a `multipart/form-data` body: `Ok(None)` for any
    /// other content type (see `classify::form`).
    pub fn form_boundary(&self) -> Result<Option<&'a str>, BodyError> {
        self.req
            .header("content-type")
            .map_or(Ok(None), form::boundary)
    }

    /// The body as a strictly parsed `multipart/form-data` form.
    pub fn form(&self, boundary: &str) -> Result<Form<'a>, BodyError> {
        form::parse(self.bytes()?, boundary)
    }
}

/// Parses JSON strictly (see `classify::json`): duplicate keys and trailing
/// data are errors; depth is bounded by serde_json's recursion limit.
pub fn parse_json(bytes: &[u8]) -> Result<Json<'_>, BodyError> {
    // serde_json's messages name a position, not content (with
    // `deserialize_any` no type error quotes a value); a duplicate key is
    // quoted truncated.
    Json::parse(bytes).map_err(|e| BodyError::Invalid(format!("not valid JSON: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(body: &[u8], headers: &[(&str, &str)]) -> HttpRequest {
        let headers = crate::request::header_list(headers.iter().copied());
        HttpRequest {
            method: "POST".into(),
            body: body.to_vec(),
            headers,
            ..Default::default()
        }
    }

    fn json(r: &HttpRequest, mode: BodyMode) -> Result<Option<Json<'_>>, BodyError> {
        BodyReader::with_rules(r, mode, 1024).json()
    }

    #[test]
    fn reasons() {
        let required = BodyMode::Required;
        assert_eq!(json(&req(b"", &[]), required), Err(BodyError::Missing));
        assert_eq!(
            json(&req(b"{}", &[(PARTIAL_BODY_HEADER, "true")]), required),
            Err(BodyError::Partial)
        );
        assert!(matches!(
            json(&req(b"{}", &[("content-encoding", "gzip")]), required),
            Err(BodyError::Invalid(_))
        ));
        assert!(json(&req(b"{}", &[("content-encoding", "identity")]), required).is_ok());
        // Cut short without the partial marker (Envoy at exactly `max_request_bytes`).
        let cut = req(
            b"{}",
            &[("content-length", "65537"), (PARTIAL_BODY_HEADER, "false")],
        );
        assert_eq!(
            json(&cut, required),
            Err(BodyError::Truncated {
                len: 2,
                declared: 65537
            })
        );
        assert_eq!(
            BodyError::Truncated {
                len: 2,
                declared: 65537
            }
            .reason(),
            Reason::BodyPartial
        );
        assert_eq!(json(&cut, BodyMode::Optional), Ok(None));
        assert!(json(&req(b"{}", &[("content-length", " 2 ")]), required).is_ok());
        // A body that was never forwarded is missing, whatever its length.
        assert_eq!(
            json(&req(b"", &[("content-length", "10")]), required),
            Err(BodyError::Missing)
        );
        // Not a number: nothing to compare, the body is judged on its own.
        assert!(json(&req(b"{}", &[("content-length", "lots")]), required).is_ok());
        // Exactly the limit with nothing to say where the body ends (chunked, HTTP/2):
        // possibly cut. With a matching `content-length` it is whole; one byte under the
        // limit it is whole either way.
        let mut at_limit = vec![b' '; 1024];
        at_limit[..2].copy_from_slice(b"{}");
        assert_eq!(
            json(&req(&at_limit, &[]), required),
            Err(BodyError::AtLimit(1024))
        );
        assert_eq!(BodyError::AtLimit(1024).reason(), Reason::BodyPartial);
        assert!(json(&req(&at_limit, &[("content-length", "1024")]), required).is_ok());
        assert!(json(&req(&at_limit[..1023], &[]), required).is_ok());
        assert!(matches!(
            json(&req(&[b' '; 2000], &[]), required),
            Err(BodyError::TooLarge { .. })
        ));
        assert!(matches!(
            json(&req(b"{", &[]), required),
            Err(BodyError::Invalid(_))
        ));
        assert_eq!(json(&req(b"{", &[]), BodyMode::Optional), Ok(None));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(parse_json(br#"{"model":"a","model":"b"}"#).is_err());
        assert!(parse_json(br#"{"x":[{"a":1,"a":2}]}"#).is_err());
        assert!(parse_json(br#"{"a":1,"b":{"a":2}}"#).is_ok());
    }

    #[test]
    fn deep_nesting_and_huge_numbers_error_cleanly() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_json(deep.as_bytes()).is_err());
        let deep_obj = "{\"a\":".repeat(10_000);
        assert!(parse_json(deep_obj.as_bytes()).is_err());
        assert!(parse_json(b"1e999").is_err());
        let big = parse_json(b"123456789012345678901234567890").unwrap();
        assert!(matches!(big, Json::Number(n) if n.is_f64()));
        assert!(parse_json(b"{} {}").is_err());
    }

    #[test]
    fn multipart_model_field() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\r\nBINARY\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ--\r\n";
        let r = req(
            body,
            &[("content-type", "multipart/form-data; boundary=XyZ")],
        );
        let reader = BodyReader::with_rules(&r, BodyMode::Required, 1024);
        let b = reader.form_boundary().unwrap().unwrap();
        assert_eq!(b, "XyZ");
        let form = reader.form(b).unwrap();
        assert_eq!(form.text("model").unwrap(), Some("whisper-1"));
        assert_eq!(form.text("nope").unwrap(), None);
        let twice = [
            &body[..body.len() - 9],
            b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\no1\r\n--XyZ--\r\n",
        ]
        .concat();
        let r = req(
            &twice,
            &[("content-type", "multipart/form-data; boundary=XyZ")],
        );
        let reader = BodyReader::with_rules(&r, BodyMode::Required, 1024);
        assert!(reader.form("XyZ").unwrap().text("model").is_err());
    }
}
