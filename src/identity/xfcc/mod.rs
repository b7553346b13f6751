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
mod tests;
