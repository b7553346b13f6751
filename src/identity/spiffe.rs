//! SPIFFE ids (`spiffe://trust-domain/path`), validated per the SPIFFE-ID spec
//! (<https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md>).
//!
//! Validation is strict on purpose: the id becomes a Cedar principal, so two spellings of
//! one workload (upper case, `.` segments, a port) must never both be accepted.

use std::fmt;
use std::str::FromStr;

use crate::vocab::Value;

const SCHEME: &str = "spiffe://";
const MAX_ID_BYTES: usize = 2048;
const MAX_TRUST_DOMAIN_BYTES: usize = 255;

/// A SPIFFE id, validated per the SPIFFE-ID spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    id: String,
    // INVARIANT: `id[..SCHEME.len()] == SCHEME`, `SCHEME.len() < path_start <= id.len()`,
    // and `id[path_start..]` is empty or starts with `/`; all are ASCII char boundaries.
    path_start: usize,
}

/// Why a string is not a valid SPIFFE id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    /// The input is empty.
    #[error("SPIFFE id is empty")]
    Empty,
    /// The whole id is longer than 2048 bytes.
    #[error("SPIFFE id is {len} bytes, more than the 2048 allowed")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
    },
    /// The id does not start with the lower-case `spiffe://` scheme.
    #[error("SPIFFE id must start with `spiffe://`")]
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("SPIFFE id has an empty trust domain")]
    EmptyTrustDomain,
    /// The trust domain is longer than 255 bytes.
    #[error("SPIFFE trust domain is {len} bytes, more than the 255 allowed")]
    TrustDomainTooLong {
        /// Length of the trust domain in bytes.
        len: usize,
    },
    /// The trust domain has a character outside `[a-z0-9._-]`.
    #[error(
        "SPIFFE trust domain contains `{}`; only `a-z`, `0-9`, `.`, `-` and `_` are allowed",
        .0.escape_debug()
    )]
    InvalidTrustDomainChar(char),
    /// The trust domain carries a port (`:`).
    #[error("SPIFFE trust domain must not contain a port")]
    Port,
    /// The trust domain carries user info (`@`).
    #[error("SPIFFE trust domain must not contain user info")]
    UserInfo,
    /// The path has an empty segment (`//`).
    #[error("SPIFFE id path has an empty segment")]
    EmptySegment,
    /// The path has a `.` or `..` segment.
    #[error("SPIFFE id path has a `.` or `..` segment")]
    DotSegment,
    /// The path has a character outside `[a-zA-Z0-9._-]`.
    #[error(
        "SPIFFE id path contains `{}`; only `a-z`, `A-Z`, `0-9`, `.`, `-` and `_` are allowed",
        .0.escape_debug()
    )]
    InvalidPathChar(char),
    /// The path ends with `/`.
    #[error("SPIFFE id path must not end with `/`")]
    TrailingSlash,
    /// The id has a query (`?`).
    #[error("SPIFFE id must not contain a query")]
    Query,
    /// The id has a fragment (`#`).
    #[error("SPIFFE id must not contain a fragment")]
    Fragment,
}

// === impl SpiffeId ===

impl SpiffeId {
    /// Parses and validates a SPIFFE id such as `spiffe://example.org/ns/default/sa/agent`.
    pub fn parse(s: &str) -> Result<SpiffeId, SpiffeIdError> {
        if s.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if s.len() > MAX_ID_BYTES {
            return Err(SpiffeIdError::TooLong { len: s.len() });
        }
        let rest = s.strip_prefix(SCHEME).ok_or(SpiffeIdError::WrongScheme)?;
        let td_end = match well_formed(rest) {
            Some(td_end) => td_end,
            None => Self::refusal(rest)?,
        };
        Ok(SpiffeId {
            id: s.to_owned(),
            path_start: SCHEME.len() + td_end,
        })
    }

    /// Why `rest` (the id after the scheme) is not a SPIFFE id, check by
    /// check so the error names the likely mistake; the trust domain's
    /// length when it is one after all ([`well_formed`] is the common case).
    fn refusal(rest: &str) -> Result<usize, SpiffeIdError> {
        // Checked before splitting, so `spiffe://td?x` reads as a query, not a bad character.
        if let Some(i) = rest.find(['?', '#']) {
            return Err(if rest[i..].starts_with('?') {
                SpiffeIdError::Query
            } else {
                SpiffeIdError::Fragment
            });
        }

        let td_end = rest.find('/').unwrap_or(rest.len());
        let (trust_domain, path) = rest.split_at(td_end);
        validate_trust_domain(trust_domain)?;
        validate_path(path)?;
        Ok(td_end)
    }

    /// The whole id, e.g. `spiffe://example.org/ns/default/sa/agent`.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The trust domain, e.g. `example.org`.
    pub fn trust_domain(&self) -> &str {
        &self.id[SCHEME.len()..self.path_start]
    }

    /// The path: empty, or `/`-prefixed such as `/ns/default/sa/agent`.
    pub fn path(&self) -> &str {
        &self.id[self.path_start..]
    }

    /// `Some((namespace, service_account))` when the path is exactly `/ns/<ns>/sa/<sa>`.
    pub fn kubernetes(&self) -> Option<(&str, &str)> {
        let mut segments = self.path().strip_prefix('/')?.split('/');
        match (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) {
            (Some("ns"), Some(ns), Some("sa"), Some(sa), None) => Some((ns, sa)),
            _ => None,
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpiffeId::parse(s)
    }
}

/// A SPIFFE trust domain (`example.org`), parsed when the config is read: a
/// trust domain no valid id could ever carry is refused at load.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct TrustDomain(String);

// === impl TrustDomain ===

impl TrustDomain {
    /// The trust domain, e.g. `example.org`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TrustDomain {
    type Error = String;

    fn try_from(td: String) -> Result<Self, Self::Error> {
        validate_trust_domain(&td)
            .map_err(|e| format!("`{td}` is not a valid trust domain: {e}"))?;
        Ok(Self(td))
    }
}

/// The SPIFFE id of a workload (an id with a path: a trust-domain id is never
/// a workload), parsed when the config is read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct WorkloadId(SpiffeId);

// === impl WorkloadId ===

impl WorkloadId {
    /// The id.
    pub fn id(&self) -> &SpiffeId {
        &self.0
    }
}

impl TryFrom<String> for WorkloadId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let id = SpiffeId::parse(&s).map_err(|e| format!("`{s}` is not a valid SPIFFE id: {e}"))?;
        if id.path().is_empty() {
            // No peer can present it.
            return Err(format!("`{s}` is a trust domain, not a workload id"));
        }
        Ok(Self(id))
    }
}

/// One pass over the bytes of a valid id after the scheme: the trust
/// domain's length when `rest` is a trust domain of `[a-z0-9._-]` and a
/// path of non-empty, non-dot segments of `[a-zA-Z0-9._-]`; `None` for
/// anything else, which [`SpiffeId::refusal`] then names. Every Check of an
/// mTLS workload parses its id: this is the path they take, a table lookup
/// per byte.
fn well_formed(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    let td_end = bytes.iter().position(|&b| b == b'/').unwrap_or(bytes.len());
    let (td, path) = bytes.split_at(td_end);
    let td_ok = td.iter().fold(TD, |ok, &b| ok & CLASS[usize::from(b)]) == TD;
    if td.is_empty() || td.len() > MAX_TRUST_DOMAIN_BYTES || !td_ok {
        return None;
    }
    // `/` passes here; the segments it separates are checked next.
    if path.iter().fold(PATH, |ok, &b| ok & CLASS[usize::from(b)]) != PATH {
        return None;
    }
    // Of these bytes, a segment is empty, `.` or `..` when it has at most
    // two bytes, all dots.
    let segment_ok = |s: &[u8]| !(s.len() <= 2 && s.iter().all(|&b| b == b'.'));
    match path.split_first() {
        None => Some(td_end),
        Some((_slash, segments)) => segments
            .split(|&b| b == b'/')
            .all(segment_ok)
            .then_some(td_end),
    }
}

/// [`CLASS`] bit of the bytes of a trust domain ([`is_trust_domain_char`]).
const TD: u8 = 1;
/// [`CLASS`] bit of the bytes of a path: [`is_path_char`], and `/`.
const PATH: u8 = 2;
/// The [`TD`] and [`PATH`] bits of every byte.
const CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8 as char;
        if is_trust_domain_char(c) {
            class[b] |= TD;
        }
        if is_path_char(c) || c == '/' {
            class[b] |= PATH;
        }
        b += 1;
    }
    class
};

fn validate_trust_domain(td: &str) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::EmptyTrustDomain);
    }
    // User info and port get their own errors: they are the likely mistakes.
    if td.contains('@') {
        return Err(SpiffeIdError::UserInfo);
    }
    if td.contains(':') {
        return Err(SpiffeIdError::Port);
    }
    if td.len() > MAX_TRUST_DOMAIN_BYTES {
        return Err(SpiffeIdError::TrustDomainTooLong { len: td.len() });
    }
    match td.chars().find(|&c| !is_trust_domain_char(c)) {
        Some(c) => Err(SpiffeIdError::InvalidTrustDomainChar(c)),
        None => Ok(()),
    }
}

fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
    let Some(segments) = path.strip_prefix('/') else {
        // INVARIANT: `path` starts at the first `/` or is empty.
        return Ok(());
    };
    let mut segments = segments.split('/').peekable();
    while let Some(segment) = segments.next() {
        if segment.is_empty() {
            return Err(if segments.peek().is_none() {
                SpiffeIdError::TrailingSlash
            } else {
                SpiffeIdError::EmptySegment
            });
        }
        if segment == "." || segment == ".." {
            return Err(SpiffeIdError::DotSegment);
        }
        if let Some(c) = segment.chars().find(|&c| !is_path_char(c)) {
            return Err(SpiffeIdError::InvalidPathChar(c));
        }
    }
    Ok(())
}

const fn is_trust_domain_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
}

const fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

// === impl SpiffeIdError ===

impl SpiffeIdError {
    /// A short, stable snake_case code for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong { .. } => "too_long",
            Self::WrongScheme => "wrong_scheme",
            Self::EmptyTrustDomain => "empty_trust_domain",
            Self::TrustDomainTooLong { .. } => "trust_domain_too_long",
            Self::InvalidTrustDomainChar(_) => "invalid_trust_domain_char",
            Self::Port => "port",
            Self::UserInfo => "user_info",
            Self::EmptySegment => "empty_segment",
            Self::DotSegment => "dot_segment",
            Self::InvalidPathChar(_) => "invalid_path_char",
            Self::TrailingSlash => "trailing_slash",
            Self::Query => "query",
            Self::Fragment => "fragment",
        }
    }
}

/// The request-time attributes of a workload principal, derived from its SPIFFE id.
pub fn workload_attrs(id: &SpiffeId) -> Vec<(String, Value)> {
    let mut attrs = vec![
        ("trust_domain".to_owned(), Value::str(id.trust_domain())),
        ("path".to_owned(), Value::str(id.path())),
    ];
    if let Some((ns, sa)) = id.kubernetes() {
        attrs.push(("namespace".to_owned(), Value::str(ns)));
        attrs.push(("service_account".to_owned(), Value::str(sa)));
    }
    attrs
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn err(s: &str) -> SpiffeIdError {
        SpiffeId::parse(s).unwrap_err()
    }

    #[test]
    fn parses_kubernetes_id() {
        let id = SpiffeId::parse("spiffe://example.org/ns/default/sa/agent").unwrap();
        assert_eq!(id.as_str(), "spiffe://example.org/ns/default/sa/agent");
        assert_eq!(id.to_string(), id.as_str());
        assert_eq!(id.trust_domain(), "example.org");
        assert_eq!(id.path(), "/ns/default/sa/agent");
        assert_eq!(id.kubernetes(), Some(("default", "agent")));
    }

    #[test]
    fn parses_id_without_path() {
        let id: SpiffeId = "spiffe://prod-1.example_corp.io".parse().unwrap();
        assert_eq!(id.trust_domain(), "prod-1.example_corp.io");
        assert_eq!(id.path(), "");
        assert_eq!(id.kubernetes(), None);
    }

    #[test]
    fn parses_other_paths() {
        let id = SpiffeId::parse("spiffe://td/Billing/Payments-v2/x.y_z").unwrap();
        assert_eq!(id.trust_domain(), "td");
        assert_eq!(id.path(), "/Billing/Payments-v2/x.y_z");
        assert_eq!(id.kubernetes(), None);
        // Dots are fine inside a segment; only `.` and `..` as whole segments are not.
        assert!(SpiffeId::parse("spiffe://td/.../a..b").is_ok());
    }

    #[test]
    fn kubernetes_needs_the_exact_shape() {
        for path in [
            "/ns/a/sa",
            "/ns/a/sa/b/c",
            "/sa/a/ns/b",
            "/ns/a/xx/b",
            "/ns",
        ] {
            let id = SpiffeId::parse(&format!("spiffe://td{path}")).unwrap();
            assert_eq!(id.kubernetes(), None, "{path}");
        }
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(err(""), SpiffeIdError::Empty);
    }

    #[test]
    fn rejects_too_long() {
        let s = format!("spiffe://td/{}", "a".repeat(2048));
        assert_eq!(err(&s), SpiffeIdError::TooLong { len: s.len() });
        let max = format!("spiffe://td/{}", "a".repeat(2048 - "spiffe://td/".len()));
        assert!(SpiffeId::parse(&max).is_ok());
    }

    #[test]
    fn rejects_wrong_scheme() {
        for s in [
            "SPIFFE://td",
            "Spiffe://td",
            "https://td/x",
            "spiffe:/td",
            "spiffe:td",
            "td",
        ] {
            assert_eq!(err(s), SpiffeIdError::WrongScheme, "{s}");
        }
    }

    #[test]
    fn rejects_empty_trust_domain() {
        assert_eq!(err("spiffe://"), SpiffeIdError::EmptyTrustDomain);
        assert_eq!(err("spiffe:///ns/a"), SpiffeIdError::EmptyTrustDomain);
    }

    #[test]
    fn rejects_trust_domain_too_long() {
        let s = format!("spiffe://{}", "a".repeat(256));
        assert_eq!(err(&s), SpiffeIdError::TrustDomainTooLong { len: 256 });
        assert!(SpiffeId::parse(&format!("spiffe://{}", "a".repeat(255))).is_ok());
    }

    #[test]
    fn rejects_invalid_trust_domain_char() {
        assert_eq!(
            err("spiffe://Example.org"),
            SpiffeIdError::InvalidTrustDomainChar('E')
        );
        assert_eq!(
            err("spiffe://ex%41mple"),
            SpiffeIdError::InvalidTrustDomainChar('%')
        );
        assert_eq!(
            err("spiffe://exämple"),
            SpiffeIdError::InvalidTrustDomainChar('ä')
        );
    }

    #[test]
    fn rejects_port() {
        assert_eq!(err("spiffe://td:8080/a"), SpiffeIdError::Port);
    }

    #[test]
    fn rejects_user_info() {
        assert_eq!(err("spiffe://user@td/a"), SpiffeIdError::UserInfo);
        assert_eq!(err("spiffe://user:pw@td/a"), SpiffeIdError::UserInfo);
    }

    #[test]
    fn rejects_empty_segment() {
        assert_eq!(err("spiffe://td//a"), SpiffeIdError::EmptySegment);
        assert_eq!(err("spiffe://td/a//b"), SpiffeIdError::EmptySegment);
    }

    #[test]
    fn rejects_dot_segment() {
        assert_eq!(err("spiffe://td/a/./b"), SpiffeIdError::DotSegment);
        assert_eq!(err("spiffe://td/a/.."), SpiffeIdError::DotSegment);
    }

    #[test]
    fn rejects_invalid_path_char() {
        assert_eq!(err("spiffe://td/a b"), SpiffeIdError::InvalidPathChar(' '));
        assert_eq!(
            err("spiffe://td/a%2Fb"),
            SpiffeIdError::InvalidPathChar('%')
        );
        assert_eq!(
            err("spiffe://td/a\nb"),
            SpiffeIdError::InvalidPathChar('\n')
        );
    }

    #[test]
    fn rejects_trailing_slash() {
        assert_eq!(err("spiffe://td/"), SpiffeIdError::TrailingSlash);
        assert_eq!(err("spiffe://td/a/"), SpiffeIdError::TrailingSlash);
    }

    #[test]
    fn rejects_query() {
        assert_eq!(err("spiffe://td/a?b=c"), SpiffeIdError::Query);
        assert_eq!(err("spiffe://td?b"), SpiffeIdError::Query);
    }

    #[test]
    fn rejects_fragment() {
        assert_eq!(err("spiffe://td/a#b"), SpiffeIdError::Fragment);
        assert_eq!(err("spiffe://td#b?c"), SpiffeIdError::Fragment);
    }

    #[test]
    fn messages_escape_input_and_reasons_are_snake_case() {
        let e = err("spiffe://td/a\u{1b}b");
        assert_eq!(
            e.to_string(),
            "SPIFFE id path contains `\\u{1b}`; only `a-z`, `A-Z`, `0-9`, `.`, `-` and `_` are allowed"
        );
        assert_eq!(e.reason(), "invalid_path_char");
        assert_eq!(err("spiffe://td:1").reason(), "port");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = SpiffeId::parse(&s);
        }

        #[test]
        fn parse_never_panics_after_scheme(s in "spiffe://\\PC{0,40}") {
            let _ = SpiffeId::parse(&s);
        }

        #[test]
        fn parsed_ids_round_trip(
            s in "spiffe://[a-zA-Z0-9._:@-]{0,12}(/[a-zA-Z0-9._%-]{0,4}){0,4}[?#]?"
        ) {
            if let Ok(id) = SpiffeId::parse(&s) {
                prop_assert_eq!(id.as_str(), s.as_str());
                prop_assert_eq!(
                    format!("spiffe://{}{}", id.trust_domain(), id.path()),
                    s.as_str()
                );
                prop_assert_eq!(SpiffeId::parse(id.as_str()).unwrap(), id);
            }
        }

        /// The one-pass check accepts exactly what the check-by-check
        /// refusal accepts (which names the error of everything else).
        #[test]
        fn the_fast_check_agrees_with_the_detailed_one(
            rest in "[a-zA-Z0-9._:@/?#%-]{0,16}|[a-z0-9.-]{1,6}(/[a-zA-Z0-9.]{0,3}){0,4}/?|[a-z_]{0,3}(/[.]{0,3}[a-z_]?){0,4}|[\\x00-\\x7f]{0,12}(/[\\x00-\\x7f]{0,6}){0,3}|\\PC{0,6}(/\\PC{0,4}){0,3}"
        ) {
            prop_assert_eq!(well_formed(&rest), SpiffeId::refusal(&rest).ok());
        }

        #[test]
        fn well_formed_ids_parse(
            td in "[a-z0-9._-]{1,20}",
            segments in proptest::collection::vec("[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,8}", 0..5),
        ) {
            let s = format!("spiffe://{td}{}", segments.iter().map(|s| format!("/{s}")).collect::<String>());
            let id = SpiffeId::parse(&s).unwrap();
            prop_assert_eq!(id.trust_domain(), td.as_str());
            prop_assert_eq!(id.as_str(), s.as_str());
        }
    }

    #[test]
    fn the_fast_check_agrees_with_the_detailed_one_at_the_edges() {
        let long_td = "a".repeat(MAX_TRUST_DOMAIN_BYTES);
        for rest in [
            "",
            "/",
            "td",
            "td/",
            "td//a",
            "td/a/",
            "td/./a",
            "td/../a",
            "td/.a/..b",
            "td/a.b",
            "Td/a",
            "t_d.-/A_b-9",
            "td:80/a",
            "u@td/a",
            "td?x",
            "td#x",
            "td/a?b",
            "td/%41",
            "td/é",
            "tdé/a",
            long_td.as_str(),
            &format!("{long_td}a"),
            &format!("{long_td}/a"),
        ] {
            assert_eq!(well_formed(rest), SpiffeId::refusal(rest).ok(), "{rest:?}");
        }
        // Every byte, in the trust domain and in a path segment; dot
        // segments at every position, and ids past the widths the byte
        // classes may be tested at a time, with the bad byte last.
        let mut more: Vec<String> = Vec::new();
        for b in 0u8..=0x7f {
            let c = b as char;
            more.extend([format!("t{c}d/a"), format!("td/a{c}b"), format!("td/{c}")]);
        }
        for dots in [
            "td/.", "td/..", "td/...", "td/a/.", "td/a/..", "td/./..", "td/.x", "td/x.",
        ] {
            more.push(dots.to_owned());
        }
        for n in 1..70 {
            let good = "a".repeat(n);
            more.extend([
                good.clone(),
                format!("{good}A"),
                format!("td/{good}"),
                format!("td/{good}%"),
            ]);
        }
        for rest in &more {
            assert_eq!(well_formed(rest), SpiffeId::refusal(rest).ok(), "{rest:?}");
        }
    }

    #[test]
    fn k8s_workload_attrs() {
        let id = SpiffeId::parse("spiffe://example.org/ns/agents/sa/bot").unwrap();
        let attrs = workload_attrs(&id);
        assert!(attrs.contains(&("namespace".into(), Value::str("agents"))));
        assert!(attrs.contains(&("service_account".into(), Value::str("bot"))));
    }
}
