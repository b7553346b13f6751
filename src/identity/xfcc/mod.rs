//! Envoy's `x-forwarded-client-cert` (XFCC) header.
//!
//! Grammar, as Envoy documents it: elements separated by `,`, one per proxy hop; each
//! element is `;`-separated `Key=Value` pairs with case-insensitive keys; a value may be
//! double-quoted, and inside quotes `,` `;` `=` are literal and `\"` / `\\` are escapes.
//!
//! The parser is strict: anything Envoy would not emit is an error, because a lenient
//! parser and the proxy that wrote the header could disagree about who the caller is.

/// Longest header accepted, in bytes.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most elements (proxy hops) accepted.
const MAX_ELEMENTS: usize = 32;

/// One XFCC element: what one proxy learned about the client certificate it saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XfccElement {
    /// `By`: the SANs (URI or DNS) of the proxy's own certificate.
    pub by: Vec<String>,
    /// `Hash`: SHA-256 of the client certificate, hex.
    pub hash: Option<String>,
    /// `Cert`: the URL-encoded PEM of the client certificate.
    pub cert: Option<String>,
    /// `Chain`: the URL-encoded PEM of the client certificate chain.
    pub chain: Option<String>,
    /// `Subject`: the client certificate's subject DN.
    pub subject: Option<String>,
    /// `URI`: the client certificate's URI SANs; empty values are skipped.
    pub uri: Vec<String>,
    /// `DNS`: the client certificate's DNS SANs; empty values are skipped.
    pub dns: Vec<String>,
}

/// The element a config names: first (client-most) or last (nearest hop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum XfccElementChoice {
    /// The first element, added by the proxy nearest the client.
    First,
    /// The last element, added by the proxy nearest this service.
    #[default]
    Last,
}

/// Why an XFCC header was rejected. Offsets are byte offsets into the header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XfccError {
    /// The header is empty or only spaces.
    #[error("XFCC header is empty")]
    Empty,
    /// The header is longer than 16 KiB.
    #[error("XFCC header is {len} bytes, more than the 16384 allowed")]
    TooLong {
        /// Length of the header in bytes.
        len: usize,
    },
    /// The header has more than 32 elements.
    #[error("XFCC header has more than 32 elements")]
    TooManyElements,
    /// The header has a control character.
    #[error("XFCC header has a control character at byte {offset}")]
    ControlCharacter {
        /// Where the character starts.
        offset: usize,
    },
    /// An element has no pairs (`,,` or a trailing `,`).
    #[error("XFCC header has an empty element at byte {offset}")]
    EmptyElement {
        /// Where the element starts.
        offset: usize,
    },
    /// An element has an empty pair (`;;` or a trailing `;`).
    #[error("XFCC header has an empty pair at byte {offset}")]
    EmptyPair {
        /// Where the pair starts.
        offset: usize,
    },
    /// A pair has no `=`.
    #[error("XFCC pair at byte {offset} has no `=`")]
    MissingEquals {
        /// Where the pair starts.
        offset: usize,
    },
    /// A pair starts with `=`.
    #[error("XFCC pair at byte {offset} has an empty key")]
    EmptyKey {
        /// Where the pair starts.
        offset: usize,
    },
    /// A key has a character other than an ASCII letter, digit, `-` or `_`.
    #[error("XFCC key at byte {offset} has a character other than `A-Z`, `a-z`, `0-9`, `-`, `_`")]
    InvalidKey {
        /// Where the key starts.
        offset: usize,
    },
    /// A quoted value has no closing quote.
    #[error("XFCC value quoted at byte {offset} has no closing quote")]
    UnterminatedQuote {
        /// Where the opening quote is.
        offset: usize,
    },
    /// A backslash inside quotes is followed by something other than `"` or `\`.
    #[error("XFCC value has an escape other than `\\\"` or `\\\\` at byte {offset}")]
    BadEscape {
        /// Where the backslash is.
        offset: usize,
    },
    /// A closing quote is followed by something other than `;`, `,` or the end.
    #[error("XFCC value has characters after its closing quote at byte {offset}")]
    TrailingAfterQuote {
        /// Where the first such character starts.
        offset: usize,
    },
    /// An unquoted value contains `"`.
    #[error("XFCC unquoted value has a `\"` at byte {offset}")]
    UnexpectedQuote {
        /// Where the quote is.
        offset: usize,
    },
    /// A single-valued key appears twice in one element.
    #[error("XFCC element has more than one `{key}` at byte {offset}")]
    DuplicateKey {
        /// The canonical key name, e.g. `Hash`.
        key: &'static str,
        /// Where the second pair starts.
        offset: usize,
    },
}

/// Parses an XFCC header into its elements, in header order (client-most first).
pub fn parse(header: &str) -> Result<Vec<XfccElement>, XfccError> {
    if header.trim_matches(' ').is_empty() {
        return Err(XfccError::Empty);
    }
    if header.len() > MAX_HEADER_BYTES {
        return Err(XfccError::TooLong { len: header.len() });
    }
    if let Some((offset, _)) = header.char_indices().find(|(_, c)| c.is_control()) {
        return Err(XfccError::ControlCharacter { offset });
    }

    let mut parser = Parser {
        src: header,
        pos: 0,
    };
    let mut elements = Vec::new();
    loop {
        if elements.len() == MAX_ELEMENTS {
            return Err(XfccError::TooManyElements);
        }
        elements.push(parser.element()?);
        // INVARIANT: `element` stops at `,` or at the end.
        if !parser.eat(b',') {
            return Ok(elements);
        }
    }
}

// === impl XfccElementChoice ===

impl XfccElementChoice {
    /// The chosen element, or `None` when there are none.
    pub fn pick<'a>(&self, elements: &'a [XfccElement]) -> Option<&'a XfccElement> {
        match self {
            Self::First => elements.first(),
            Self::Last => elements.last(),
        }
    }
}

// === impl Parser ===

/// A cursor over the header.
///
/// INVARIANT: `pos` only ever stops on an ASCII byte or at the end, so every slice of
/// `src` taken at `pos` is on a char boundary (UTF-8 continuation bytes are >= 0x80).
struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// Parses one element, stopping at `,` or the end.
    fn element(&mut self) -> Result<XfccElement, XfccError> {
        let mut element = XfccElement::default();
        let start = self.pos;
        let mut first = true;
        loop {
            // Envoy joins with bare separators; other writers add a space after them.
            while self.eat(b' ') {}
            let pair_start = self.pos;
            let (key, value) = self.pair().map_err(|e| match e {
                XfccError::EmptyPair { .. } if first => XfccError::EmptyElement { offset: start },
                e => e,
            })?;
            first = false;
            element.set(key, value, pair_start)?;
            if !self.eat(b';') {
                return Ok(element);
            }
        }
    }

    /// Parses one `Key=Value` pair, stopping at `;`, `,` or the end.
    fn pair(&mut self) -> Result<(&str, String), XfccError> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let key_end = bytes[start..]
            .iter()
            .position(|b| matches!(b, b'=' | b';' | b','))
            .map_or(bytes.len(), |i| start + i);
        let key = &self.src[start..key_end];
        if bytes.get(key_end) != Some(&b'=') {
            return Err(if key.is_empty() {
                XfccError::EmptyPair { offset: start }
            } else {
                XfccError::MissingEquals { offset: start }
            });
        }
        if key.is_empty() {
            return Err(XfccError::EmptyKey { offset: start });
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(XfccError::InvalidKey { offset: start });
        }
        self.pos = key_end + 1;
        let value = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            self.unquoted()?
        };
        Ok((key, value))
    }

    fn unquoted(&mut self) -> Result<String, XfccError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            match b {
                b';' | b',' => break,
                b'"' => return Err(XfccError::UnexpectedQuote { offset: self.pos }),
                _ => self.pos += 1,
            }
        }
        Ok(self.src[start..self.pos].to_owned())
    }

    fn quoted(&mut self) -> Result<String, XfccError> {
        let open = self.pos;
        self.pos += 1;
        let mut value = String::new();
        let mut run = self.pos;
        loop {
            match self.peek() {
                None => return Err(XfccError::UnterminatedQuote { offset: open }),
                Some(b'"') => {
                    value.push_str(&self.src[run..self.pos]);
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    value.push_str(&self.src[run..self.pos]);
                    let escaped = self.src.as_bytes().get(self.pos + 1).copied();
                    match escaped {
                        Some(c @ (b'"' | b'\\')) => value.push(char::from(c)),
                        None => return Err(XfccError::UnterminatedQuote { offset: open }),
                        Some(_) => return Err(XfccError::BadEscape { offset: self.pos }),
                    }
                    self.pos += 2;
                    run = self.pos;
                }
                Some(_) => self.pos += 1,
            }
        }
        match self.peek() {
            None | Some(b';' | b',') => Ok(value),
            Some(_) => Err(XfccError::TrailingAfterQuote { offset: self.pos }),
        }
    }
}

// === impl XfccElement ===

impl XfccElement {
    fn set(&mut self, key: &str, value: String, offset: usize) -> Result<(), XfccError> {
        let is = |name: &str| key.eq_ignore_ascii_case(name);
        let list = if is("By") {
            Some(&mut self.by)
        } else if is("URI") {
            Some(&mut self.uri)
        } else if is("DNS") {
            Some(&mut self.dns)
        } else {
            None
        };
        if let Some(list) = list {
            // Envoy writes `URI=` when the certificate has no URI SAN: no SAN, not an empty one.
            if !value.is_empty() {
                list.push(value);
            }
            return Ok(());
        }
        let (slot, name) = if is("Hash") {
            (&mut self.hash, "Hash")
        } else if is("Cert") {
            (&mut self.cert, "Cert")
        } else if is("Chain") {
            (&mut self.chain, "Chain")
        } else if is("Subject") {
            (&mut self.subject, "Subject")
        } else {
            // Unknown keys are ignored so that a newer Envoy does not break us.
            return Ok(());
        };
        if slot.is_some() {
            return Err(XfccError::DuplicateKey { key: name, offset });
        }
        *slot = Some(value);
        Ok(())
    }
}

// === impl XfccError ===

impl XfccError {
    /// A short, stable snake_case code for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong { .. } => "too_long",
            Self::TooManyElements => "too_many_elements",
            Self::ControlCharacter { .. } => "control_character",
            Self::EmptyElement { .. } => "empty_element",
            Self::EmptyPair { .. } => "empty_pair",
            Self::MissingEquals { .. } => "missing_equals",
            Self::EmptyKey { .. } => "empty_key",
            Self::InvalidKey { .. } => "invalid_key",
            Self::UnterminatedQuote { .. } => "unterminated_quote",
            Self::BadEscape { .. } => "bad_escape",
            Self::TrailingAfterQuote { .. } => "trailing_after_quote",
            Self::UnexpectedQuote { .. } => "unexpected_quote",
            Self::DuplicateKey { .. } => "duplicate_key",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HASH: &str = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688";

    fn err(header: &str) -> XfccError {
        parse(header).unwrap_err()
    }

    #[test]
    fn parses_envoy_example() {
        let header = format!(
            "By=spiffe://example.org/ns/gw/sa/gw;Hash={HASH};\
             Subject=\"/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client\";\
             URI=spiffe://example.org/ns/default/sa/agent"
        );
        let elements = parse(&header).unwrap();
        assert_eq!(
            elements,
            vec![XfccElement {
                by: vec!["spiffe://example.org/ns/gw/sa/gw".into()],
                hash: Some(HASH.into()),
                subject: Some("/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client".into()),
                uri: vec!["spiffe://example.org/ns/default/sa/agent".into()],
                ..XfccElement::default()
            }]
        );
    }

    #[test]
    fn parses_envoy_docs_examples() {
        // The examples from Envoy's header documentation, verbatim.
        let one = parse(
            "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject=\"/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client\";URI=http://testclient.lyft.com",
        )
        .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].uri, ["http://testclient.lyft.com"]);

        let two = parse(
            "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com",
        )
        .unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].by, ["http://frontend.lyft.com"]);
        assert_eq!(two[1].by, ["http://backend.lyft.com"]);
        assert_eq!(two[1].uri, ["http://frontend.lyft.com"]);

        let dns = parse(
            "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject=\"/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client\";URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com",
        )
        .unwrap();
        assert_eq!(dns[0].dns, ["lyft.com", "www.lyft.com"]);
    }

    #[test]
    fn parses_cert_and_chain() {
        let elements = parse("Cert=\"-----BEGIN%20CERTIFICATE-----%0A\";Chain=abc%2F").unwrap();
        assert_eq!(
            elements[0].cert.as_deref(),
            Some("-----BEGIN%20CERTIFICATE-----%0A")
        );
        assert_eq!(elements[0].chain.as_deref(), Some("abc%2F"));
    }

    #[test]
    fn quoted_values_keep_separators_and_unescape() {
        let elements = parse(r#"Subject="CN=a,b;c=d \"q\" \\ end";URI="x""#).unwrap();
        assert_eq!(
            elements[0].subject.as_deref(),
            Some(r#"CN=a,b;c=d "q" \ end"#)
        );
        assert_eq!(elements[0].uri, ["x"]);
        assert_eq!(
            parse(r#"Subject="""#).unwrap()[0].subject.as_deref(),
            Some("")
        );
    }

    #[test]
    fn keys_are_case_insensitive_and_unknown_keys_ignored() {
        let elements = parse("bY=a;uri=b;Dns=c;HASH=d;sUbJeCt=e;Future-Key=\"x;y\";x_2=").unwrap();
        assert_eq!(
            elements[0],
            XfccElement {
                by: vec!["a".into()],
                hash: Some("d".into()),
                subject: Some("e".into()),
                uri: vec!["b".into()],
                dns: vec!["c".into()],
                ..XfccElement::default()
            }
        );
        // Unknown keys may repeat.
        assert!(parse("X=1;X=2").is_ok());
    }

    #[test]
    fn empty_list_values_are_no_values() {
        let elements = parse("By=a;Hash=h;Subject=\"\";URI=;DNS=\"\"").unwrap();
        assert!(elements[0].uri.is_empty());
        assert!(elements[0].dns.is_empty());
    }

    #[test]
    fn tolerates_spaces_after_separators() {
        let elements = parse("By=a; URI=b,  By=c;  URI=d").unwrap();
        assert_eq!(elements.len(), 2);
        assert_eq!(elements[1].by, ["c"]);
        assert_eq!(elements[1].uri, ["d"]);
    }

    #[test]
    fn picks_first_or_last() {
        let elements = parse("URI=client,URI=middle,URI=nearest").unwrap();
        assert_eq!(
            XfccElementChoice::First.pick(&elements).unwrap().uri,
            ["client"]
        );
        assert_eq!(
            XfccElementChoice::Last.pick(&elements).unwrap().uri,
            ["nearest"]
        );
        assert_eq!(XfccElementChoice::default(), XfccElementChoice::Last);
        assert_eq!(XfccElementChoice::First.pick(&[]), None);
    }

    #[test]
    fn choice_deserializes_snake_case() {
        let first: XfccElementChoice = serde_json::from_str("\"first\"").unwrap();
        assert_eq!(first, XfccElementChoice::First);
        let last: XfccElementChoice = serde_json::from_str("\"last\"").unwrap();
        assert_eq!(last, XfccElementChoice::Last);
        assert!(serde_json::from_str::<XfccElementChoice>("\"First\"").is_err());
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(err(""), XfccError::Empty);
        assert_eq!(err("   "), XfccError::Empty);
    }

    #[test]
    fn rejects_too_long() {
        let header = format!("By={}", "a".repeat(MAX_HEADER_BYTES));
        assert_eq!(err(&header), XfccError::TooLong { len: header.len() });
        assert!(parse(&format!("By={}", "a".repeat(MAX_HEADER_BYTES - 3))).is_ok());
    }

    #[test]
    fn rejects_too_many_elements() {
        let ok = vec!["URI=a"; MAX_ELEMENTS].join(",");
        assert_eq!(parse(&ok).unwrap().len(), MAX_ELEMENTS);
        let too_many = vec!["URI=a"; MAX_ELEMENTS + 1].join(",");
        assert_eq!(err(&too_many), XfccError::TooManyElements);
    }

    #[test]
    fn rejects_control_characters() {
        assert_eq!(err("By=a\nb"), XfccError::ControlCharacter { offset: 4 });
        assert_eq!(
            err("By=\"a\tb\""),
            XfccError::ControlCharacter { offset: 5 }
        );
        assert_eq!(err("By=a\u{7f}"), XfccError::ControlCharacter { offset: 4 });
        assert_eq!(err("By=\0"), XfccError::ControlCharacter { offset: 3 });
    }

    #[test]
    fn rejects_empty_element() {
        assert_eq!(err("By=a,"), XfccError::EmptyElement { offset: 5 });
        assert_eq!(err("By=a,,By=b"), XfccError::EmptyElement { offset: 5 });
        assert_eq!(err(",By=a"), XfccError::EmptyElement { offset: 0 });
        assert_eq!(err("By=a, ;By=b"), XfccError::EmptyElement { offset: 5 });
    }

    #[test]
    fn rejects_empty_pair() {
        assert_eq!(err("By=a;"), XfccError::EmptyPair { offset: 5 });
        assert_eq!(err("By=a;;URI=b"), XfccError::EmptyPair { offset: 5 });
        assert_eq!(err("By=a; ,URI=b"), XfccError::EmptyPair { offset: 6 });
    }

    #[test]
    fn rejects_missing_equals() {
        assert_eq!(err("By"), XfccError::MissingEquals { offset: 0 });
        assert_eq!(err("By=a;URI"), XfccError::MissingEquals { offset: 5 });
        assert_eq!(err("By=a;URI,By=b"), XfccError::MissingEquals { offset: 5 });
    }

    #[test]
    fn rejects_empty_key() {
        assert_eq!(err("=a"), XfccError::EmptyKey { offset: 0 });
        assert_eq!(err("By=a; =b"), XfccError::EmptyKey { offset: 6 });
    }

    #[test]
    fn rejects_invalid_key() {
        assert_eq!(err("B y=a"), XfccError::InvalidKey { offset: 0 });
        assert_eq!(err("By =a"), XfccError::InvalidKey { offset: 0 });
        assert_eq!(err("\"By\"=a"), XfccError::InvalidKey { offset: 0 });
        assert_eq!(err("Bÿ=a"), XfccError::InvalidKey { offset: 0 });
    }

    #[test]
    fn rejects_unterminated_quote() {
        assert_eq!(err("By=\"abc"), XfccError::UnterminatedQuote { offset: 3 });
        assert_eq!(
            err("By=\"abc,URI=x"),
            XfccError::UnterminatedQuote { offset: 3 }
        );
        assert_eq!(
            err("By=\"abc\\"),
            XfccError::UnterminatedQuote { offset: 3 }
        );
        assert_eq!(
            err("By=\"abc\\\""),
            XfccError::UnterminatedQuote { offset: 3 }
        );
    }

    #[test]
    fn rejects_bad_escape() {
        assert_eq!(
            err(r#"Subject="CN=a\,b""#),
            XfccError::BadEscape { offset: 13 }
        );
        assert_eq!(err(r#"By="\n""#), XfccError::BadEscape { offset: 4 });
        assert_eq!(err("By=\"\\é\""), XfccError::BadEscape { offset: 4 });
    }

    #[test]
    fn rejects_characters_after_closing_quote() {
        assert_eq!(
            err(r#"By="a"b"#),
            XfccError::TrailingAfterQuote { offset: 6 }
        );
        assert_eq!(
            err(r#"By="a" ;URI=b"#),
            XfccError::TrailingAfterQuote { offset: 6 }
        );
        assert_eq!(
            err(r#"By="a""b""#),
            XfccError::TrailingAfterQuote { offset: 6 }
        );
    }

    #[test]
    fn rejects_quote_inside_unquoted_value() {
        assert_eq!(err(r#"By=a"b""#), XfccError::UnexpectedQuote { offset: 4 });
    }

    #[test]
    fn rejects_duplicate_single_valued_keys() {
        assert_eq!(
            err("Hash=a;hash=b"),
            XfccError::DuplicateKey {
                key: "Hash",
                offset: 7
            }
        );
        for key in ["Subject", "Cert", "Chain"] {
            let e = err(&format!("{key}=a;URI=u;{}=b", key.to_uppercase()));
            assert_eq!(
                e,
                XfccError::DuplicateKey {
                    key,
                    offset: key.len() + "=a;URI=u;".len()
                }
            );
        }
        // The same key in different elements is fine.
        assert_eq!(parse("Hash=a,Hash=b").unwrap().len(), 2);
    }

    #[test]
    fn reasons_are_stable() {
        assert_eq!(err("").reason(), "empty");
        assert_eq!(err("By=\"a").reason(), "unterminated_quote");
        assert_eq!(err("Hash=a;Hash=b").reason(), "duplicate_key");
        assert_eq!(
            err("Hash=a;Hash=b").to_string(),
            "XFCC element has more than one `Hash` at byte 7"
        );
    }

    /// Renders elements the way Envoy would, quoting when needed (or always).
    fn render(elements: &[XfccElement], quote_all: bool) -> String {
        let value = |v: &str| {
            if quote_all || v.is_empty() || v.contains([',', ';', '"', ' ']) {
                format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
            } else {
                v.to_owned()
            }
        };
        let render_one = |e: &XfccElement| {
            let mut pairs = Vec::new();
            pairs.extend(e.by.iter().map(|v| format!("By={}", value(v))));
            pairs.extend(e.hash.iter().map(|v| format!("Hash={}", value(v))));
            pairs.extend(e.cert.iter().map(|v| format!("cert={}", value(v))));
            pairs.extend(e.chain.iter().map(|v| format!("CHAIN={}", value(v))));
            pairs.extend(e.subject.iter().map(|v| format!("Subject={}", value(v))));
            pairs.extend(e.uri.iter().map(|v| format!("URI={}", value(v))));
            pairs.extend(e.dns.iter().map(|v| format!("DNS={}", value(v))));
            pairs.join(";")
        };
        elements
            .iter()
            .map(render_one)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn element() -> impl Strategy<Value = XfccElement> {
        let text = || "[^\\p{Cc}]{0,12}";
        let list = move || proptest::collection::vec("[^\\p{Cc}]{1,12}", 0..3);
        (
            list(),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            list(),
            list(),
        )
            .prop_map(|(by, hash, cert, chain, subject, uri, dns)| XfccElement {
                by,
                hash,
                cert,
                chain,
                subject,
                uri,
                dns,
            })
            .prop_filter("an element needs a pair", |e| *e != XfccElement::default())
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = parse(&s);
        }

        #[test]
        fn parse_never_panics_on_xfcc_like_input(s in "[A-Za-z=;,\"\\\\ é]{0,64}") {
            let _ = parse(&s);
        }

        #[test]
        fn rendered_elements_round_trip(
            elements in proptest::collection::vec(element(), 1..6),
            quote_all in any::<bool>(),
        ) {
            let header = render(&elements, quote_all);
            prop_assert_eq!(parse(&header).unwrap(), elements);
        }
    }
}
