//! The canonical request target: the one path and host every later step uses.
//!
//! Route matching, classification, `context.request.path` and `Route`
//! resources all read the path computed here, never the raw `:path`. The rule
//! is that a spelling either means one thing to every upstream or is refused:
//!
//! - the query is split off at the first `?`;
//! - percent-escapes are decoded, except `%2F` (an encoded `/`), which stays
//!   encoded because only a protocol that defines it may read it (Bedrock's
//!   model segment, see `classify::bedrock`); a route of any other protocol
//!   refuses it;
//! - repeated slashes are merged, as the shipped Envoy does (`merge_slashes`);
//! - bytes outside ASCII are re-encoded as upper-case `%XX`, so the canonical
//!   path is ASCII and canonicalising it again changes nothing.
//!
//! Refused, because upstreams read them differently (some decode once more,
//! resolve dot segments, strip `;` parameters, treat `\` as `/`, or stop at a
//! control character): control characters and NUL, whitespace, `\`, `;`,
//! `#`, `?` or `%` in encoded form, malformed escapes, raw bytes outside
//! ASCII, invalid UTF-8, and dot segments (`.` / `..`, also encoded). A
//! legitimate client sends none of these.
//!
//! The host is lower-cased, loses its port and one trailing dot.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Why a request target is refused (`400 path_not_canonical` or
/// `host_not_canonical`). Messages never quote the path: they name the class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The path is not in origin form (`/...`).
    #[error("the path does not start with `/`")]
    NotOriginForm,
    /// A `#` fragment, raw or encoded.
    #[error("the path carries a fragment (`#`)")]
    Fragment,
    /// A control character or NUL, raw or encoded, or an invisible
    /// formatting character (zero-width space, bidirectional control).
    #[error("the path carries a control or invisible character")]
    ControlCharacter,
    /// Whitespace, raw or encoded.
    #[error("the path carries whitespace")]
    Whitespace,
    /// A backslash, raw or encoded: some upstreams read it as `/`.
    #[error("the path carries a backslash")]
    Backslash,
    /// A `;` parameter, raw or encoded: some upstreams strip it.
    #[error("the path carries a `;` parameter")]
    Semicolon,
    /// An encoded `?`: a second decoding would start a query.
    #[error("the path carries an encoded `?`")]
    EncodedQuery,
    /// `%25`: a second decoding would produce another escape.
    #[error("the path is percent-encoded twice (`%25`)")]
    DoubleEncoded,
    /// `%` not followed by two hex digits.
    #[error("the path has a malformed percent-escape")]
    MalformedEscape,
    /// A raw byte outside ASCII.
    #[error("the path has a raw byte outside ASCII (percent-encode it)")]
    RawNonAscii,
    /// Decoded bytes that are not UTF-8.
    #[error("the decoded path is not UTF-8")]
    InvalidUtf8,
    /// A `.` or `..` segment: upstreams differ on resolving them.
    #[error("the path has a dot segment (`.` or `..`)")]
    DotSegment,
    /// An encoded `/` outside the one segment a protocol defines it in.
    #[error("the path has an encoded `/` (`%2F`) where the protocol does not define one")]
    EncodedSlash,
    /// A host that is not a DNS name or IP literal.
    #[error("the host is not a DNS name or IP literal")]
    Host,
}

// === impl TargetError ===

impl TargetError {
    /// Whether the host, not the path, is at fault.
    pub fn is_host(&self) -> bool {
        matches!(self, TargetError::Host)
    }
}

/// The canonical form of a request's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The canonical path (no query).
    pub path: String,
    /// The query string as sent (without `?`).
    pub query: String,
}

/// Splits and canonicalises a raw `:path` (which may include the query).
pub fn canonical_target(raw: &str) -> Result<Target, TargetError> {
    let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
    Ok(Target {
        path: canonical_path(path)?.into_owned(),
        query: query.to_owned(),
    })
}

/// Canonicalises a path without query (see the module doc). A path that is
/// canonical already (the common case: plain ASCII, no escapes, no empty or
/// dot segments) is returned as it is, without allocating.
pub fn canonical_path(path: &str) -> Result<Cow<'_, str>, TargetError> {
    if is_plainly_canonical(path) {
        return Ok(Cow::Borrowed(path));
    }
    slow_canonical_path(path).map(Cow::Owned)
}

/// Whether `path` is canonical without any rewriting: it starts with `/`, has
/// only unreserved characters, `/` and the sub-delimiters other than `;`, and
/// no empty (except a final one) or dot segment.
fn is_plainly_canonical(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    let plain = |b: &u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'/' | b'-'
                    | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b'='
            )
    };
    // One pass: every byte plain, no segment empty (but the last) or a dot segment.
    let dot = |segment: &[u8]| segment == b"." || segment == b"..";
    let mut start = 1;
    for (i, b) in bytes.iter().enumerate().skip(1) {
        if *b == b'/' {
            if i == start || dot(&bytes[start..i]) {
                return false;
            }
            start = i + 1;
        } else if !plain(b) {
            return false;
        }
    }
    !dot(&bytes[start..])
}

fn slow_canonical_path(path: &str) -> Result<String, TargetError> {
    if !path.starts_with('/') {
        return Err(TargetError::NotOriginForm);
    }
    let decoded = decode(path.as_bytes())?;
    let text = std::str::from_utf8(&decoded).map_err(|_| TargetError::InvalidUtf8)?;
    if text.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(TargetError::ControlCharacter);
    }
    if text.chars().any(char::is_whitespace) {
        return Err(TargetError::Whitespace);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut segments = text.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        if segment == "." || segment == ".." {
            return Err(TargetError::DotSegment);
        }
        // Merge repeated slashes; a single trailing slash stays.
        if segment.is_empty() && segments.peek().is_some() {
            continue;
        }
        if segment.is_empty() && out.ends_with('/') {
            continue;
        }
        out.push('/');
        for c in segment.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Percent-decodes, refusing what must be refused; `%2F` stays `%2F`.
fn decode(raw: &[u8]) -> Result<Vec<u8>, TargetError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        i += 1;
        let byte = if b == b'%' {
            let (Some(hi), Some(lo)) = (
                raw.get(i).and_then(|h| hex(*h)),
                raw.get(i + 1).and_then(|l| hex(*l)),
            ) else {
                return Err(TargetError::MalformedEscape);
            };
            i += 2;
            let d = hi << 4 | lo;
            match d {
                b'/' => {
                    out.extend_from_slice(b"%2F");
                    continue;
                }
                b'%' => return Err(TargetError::DoubleEncoded),
                b'?' => return Err(TargetError::EncodedQuery),
                _ => d,
            }
        } else if b >= 0x80 {
            return Err(TargetError::RawNonAscii);
        } else {
            b
        };
        match byte {
            b'#' => return Err(TargetError::Fragment),
            b'\\' => return Err(TargetError::Backslash),
            b';' => return Err(TargetError::Semicolon),
            b' ' => return Err(TargetError::Whitespace),
            0..=0x1f | 0x7f => return Err(TargetError::ControlCharacter),
            _ => out.push(byte),
        }
    }
    Ok(out)
}

/// Invisible formatting characters (zero-width spaces and joiners,
/// bidirectional controls, the byte-order mark, the soft hyphen): a reader
/// cannot see them, and some upstreams strip them.
pub fn is_invisible(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether the canonical path keeps an encoded `/` (`%2F`) anywhere.
pub fn has_encoded_slash(canonical: &str) -> bool {
    canonical.contains("%2F")
}

/// The canonical host: lower case, no port, no trailing dot. Empty stays
/// empty (a direct gRPC caller may send none).
pub fn canonical_host(host: &str) -> Result<Cow<'_, str>, TargetError> {
    let name = if let Some(rest) = host.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or(TargetError::Host)?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port))
            || inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(TargetError::Host);
        }
        return Ok(Cow::Owned(format!("[{}]", inner.to_ascii_lowercase())));
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return Err(TargetError::Host),
            None => host,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        || name.as_bytes().windows(2).any(|w| w == b"..")
        || name.starts_with('.')
    {
        return Err(TargetError::Host);
    }
    // Most hosts arrive canonical: no copy for them.
    if name.len() == host.len() && !name.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(Cow::Borrowed(host))
    } else {
        Ok(Cow::Owned(name.to_ascii_lowercase()))
    }
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// ASCII-case-insensitive `starts_with`.
pub fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// ASCII-case-insensitive `ends_with`.
pub fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// ASCII-case-insensitive `rsplit_once`.
pub fn rsplit_once_ignore_case<'a>(s: &'a str, pat: &str) -> Option<(&'a str, &'a str)> {
    let lower = s.to_ascii_lowercase();
    let i = lower.rfind(&pat.to_ascii_lowercase())?;
    Some((&s[..i], &s[i + pat.len()..]))
}

/// Percent-decodes one segment of a canonical path (`%2F` and the `%XX` of
/// bytes outside ASCII) into UTF-8; `None` if it is not UTF-8.
pub fn decode_segment(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn canonical_spellings() {
        for (raw, want) in [
            ("/v1/chat/completions", "/v1/chat/completions"),
            ("/v1/%63hat/completions", "/v1/chat/completions"),
            ("/v1/chat%2fcompletions", "/v1/chat%2Fcompletions"),
            ("//v1///chat/completions", "/v1/chat/completions"),
            ("/v1/models/", "/v1/models/"),
            ("/v1/models//", "/v1/models/"),
            ("/", "/"),
            ("//", "/"),
            (
                "/v1beta/models/gemini%3AgenerateContent",
                "/v1beta/models/gemini:generateContent",
            ),
            ("/x/%C3%A9t%c3%a9", "/x/%C3%A9t%C3%A9"),
            ("/a/..b/c.", "/a/..b/c."),
        ] {
            assert_eq!(canonical_path(raw).as_deref(), Ok(want), "{raw}");
            assert_eq!(
                canonical_path(want).as_deref(),
                Ok(want),
                "idempotent: {want}"
            );
        }
    }

    #[test]
    fn refused_spellings() {
        use TargetError::*;
        for (raw, want) in [
            ("v1/chat", NotOriginForm),
            ("", NotOriginForm),
            ("*", NotOriginForm),
            ("/v1/chat#x", Fragment),
            ("/v1/chat%23x", Fragment),
            ("/v1/chat/completions%00", ControlCharacter),
            ("/v1/chat/completions%0A", ControlCharacter),
            ("/v1/chat/completions\t", ControlCharacter),
            ("/v1/chat/completions%7f", ControlCharacter),
            ("/v1/chat/completions%C2%85", ControlCharacter),
            ("/v1/chat/completions%20", Whitespace),
            ("/v1/chat/completions ", Whitespace),
            ("/v1/chat/completions%E2%80%A8", Whitespace),
            ("/v1/chat/completions%C2%A0", Whitespace),
            ("/v1\\chat", Backslash),
            ("/v1%5Cchat", Backslash),
            ("/v1/chat;x=y/completions", Semicolon),
            ("/v1/chat%3Bx/completions", Semicolon),
            ("/v1/chat%3fx", EncodedQuery),
            ("/v1/chat%252Fcompletions", DoubleEncoded),
            ("/v1/chat%2", MalformedEscape),
            ("/v1/chat%zz", MalformedEscape),
            ("/v1/ch\u{e4}t", RawNonAscii),
            ("/v1/ch%FFt", InvalidUtf8),
            ("/v1/./chat", DotSegment),
            ("/v1/../admin", DotSegment),
            ("/v1/%2e%2E/admin", DotSegment),
            ("/v1/.%2e", DotSegment),
            ("/v1/models/..", DotSegment),
        ] {
            assert_eq!(canonical_path(raw), Err(want.clone()), "{raw:?}");
            assert_eq!(
                slow_canonical_path(raw),
                Err(want.clone()),
                "slow path: {raw:?}"
            );
        }
    }

    #[test]
    fn query_is_split_off() {
        let t = canonical_target("/v1/realtime?model=gpt-realtime&x=%20").unwrap();
        assert_eq!(t.path, "/v1/realtime");
        assert_eq!(t.query, "model=gpt-realtime&x=%20");
    }

    #[test]
    fn hosts() {
        for (raw, want) in [
            ("API.OpenAI.com", Ok("api.openai.com")),
            ("api.openai.com.:443", Ok("api.openai.com")),
            ("api.openai.com:8443", Ok("api.openai.com")),
            ("[::1]:80", Ok("[::1]")),
            ("127.0.0.1:9", Ok("127.0.0.1")),
            ("", Ok("")),
            ("a b", Err(TargetError::Host)),
            ("a@b", Err(TargetError::Host)),
            ("a:b", Err(TargetError::Host)),
            ("a..b", Err(TargetError::Host)),
            ("[::1", Err(TargetError::Host)),
            ("h\u{e9}.com", Err(TargetError::Host)),
        ] {
            assert_eq!(canonical_host(raw).as_deref(), want.as_deref(), "{raw}");
        }
    }

    proptest::proptest! {
        #[test]
        fn canonicalisation_is_idempotent(raw in "/[/a-zA-Z0-9%.;:\\\\ \t~_-]{0,40}") {
            // The fast path agrees with the full one wherever it applies.
            proptest::prop_assert_eq!(
                canonical_path(&raw).map(Cow::into_owned),
                slow_canonical_path(&raw)
            );
            if let Ok(once) = canonical_path(&raw) {
                proptest::prop_assert_eq!(canonical_path(&once), Ok(once.clone()));
                proptest::prop_assert!(once.is_ascii());
                proptest::prop_assert!(!once.contains("//"));
            }
        }
    }
}
