//! A JSON body as the protocol readers see it: parsed strictly, borrowing its
//! strings from the body.
//!
//! Strict: duplicate object keys are refused at any depth (the upstream may keep
//! a different duplicate than we do, `{"model":"small","model":"frontier"}`),
//! trailing data is an error, and nesting deeper than serde_json's recursion
//! limit (128) is an error, not a stack overflow. serde_json still reads every
//! byte (numbers, escapes, UTF-8), so a body is accepted or refused exactly as
//! it was when it was read into a `serde_json::Value`.
//!
//! Why not `serde_json::Value`: with serde_json's `preserve_order` (turned on
//! by cedar-policy-core) every object is an `IndexMap` that hashes each key
//! (SipHash) on insert, on the duplicate check and on every lookup, and every
//! key and string is its own `String`. A chat-completions hit spent about half
//! of its classification building and dropping that tree. Here a string
//! without escapes is a slice of the body, an object is a `Vec` of its entries
//! in body order (what `preserve_order` iterates), and a lookup is a scan of a
//! few keys.
//!
//! What the readers see is what they saw in a `Value` (the tests compare the
//! two on every body): numbers are `serde_json::Number` (the same
//! `as_i64` / `as_u64` / `as_f64`), a float beyond `f64` is refused by the
//! parser and a non-finite one cannot occur, objects keep the body's order.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// Objects with more keys than this check duplicates through a hash set
/// instead of a scan of the keys so far (a body of many small keys must not
/// cost a quadratic scan).
const SCAN_KEYS: usize = 16;

/// A strictly parsed JSON value whose strings borrow from the body where
/// they carry no escape.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as serde_json reads it.
    Number(Number),
    /// A string, escapes decoded.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object: its entries in body order, no key twice.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

// === impl Json ===

impl<'a> Json<'a> {
    /// Parses a whole body strictly (see the module doc). The error is
    /// serde_json's message: it names a position, never content, except a
    /// duplicate key, quoted truncated.
    ///
    /// A body that is UTF-8 as a whole is read as text: serde_json's byte
    /// reader checks the UTF-8 of every string on its own (a call per key
    /// and value, most of them a few bytes), its text reader only what an
    /// escape decodes, which it refuses unless it is a whole character. One
    /// check of the whole body replaces them; every other step (syntax,
    /// escapes, numbers, depth, positions in messages) is the same code. A
    /// body that is not UTF-8 cannot be JSON: the byte reader refuses it
    /// where and as it always did.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::read(serde_json::Deserializer::from_str(text)),
            Err(_) => Self::read(serde_json::Deserializer::from_slice(bytes)),
        }
    }

    /// One whole value from a reader, nothing after it but whitespace.
    fn read<R: serde_json::de::Read<'a>>(
        mut de: serde_json::Deserializer<R>,
    ) -> Result<Self, serde_json::Error> {
        let v = Strict.deserialize(&mut de)?;
        de.end()?;
        Ok(v)
    }

    /// `self[key]` of an object; `None` for a missing key or a non-object
    /// (as `serde_json::Value::get`).
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(entries) => entries
                .iter()
                .find_map(|(k, v)| (k.as_ref() == key).then_some(v)),
            _ => None,
        }
    }

    /// `self[key]` of an object as [`Json::get`], unless the object also has
    /// a key that case-insensitive JSON readers take for `key`: then `Err`
    /// with that key. Go's `encoding/json` (Ollama, Go MCP servers, Go
    /// OpenAI-compatible gateways; ASP.NET Core's defaults alike) fills a
    /// struct field from any key equal to its name under case folding, the
    /// last one winning, so
    /// `{"model":"small","Model":"frontier"}` runs `frontier` there, and a
    /// lone `"MAX_TOKENS"` or `"max_to\u212Aens"` (KELVIN SIGN) sets
    /// `max_tokens`; Python and Rust readers see only the exact key. Both
    /// readings cannot be authorized at once, so the readers refuse it.
    /// `key` is ASCII (every key a reader asks for).
    pub fn lookup(&self, key: &str) -> Result<Option<&Json<'a>>, &str> {
        let Json::Object(entries) = self else {
            return Ok(None);
        };
        let mut found = None;
        for (k, v) in entries {
            // By length first: most keys are neither `key` nor can fold to it.
            let folds = match k.len().cmp(&key.len()) {
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal if k.as_ref() == key => {
                    found = Some(v);
                    false
                }
                _ => folds_to(k, key),
            };
            if folds {
                return Err(k.as_ref());
            }
        }
        Ok(found)
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// Whether it is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// Whether it is an object.
    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    /// Whether it is a string.
    pub fn is_string(&self) -> bool {
        matches!(self, Json::String(_))
    }

    /// Whether it is a number.
    pub fn is_number(&self) -> bool {
        matches!(self, Json::Number(_))
    }

    /// The same value as a `serde_json::Value` (a refusal echoing the
    /// request's id; tests).
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.as_ref().to_owned()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_ref().to_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// Whether `k` (a key from a body) names the ASCII `key` to a
/// case-insensitive JSON reader (`key` itself included): equal ignoring
/// ASCII case, where a character outside ASCII also counts as the ASCII
/// letter some reader folds it to: U+212A KELVIN SIGN `k` and U+017F LONG S
/// `s` (Go's `encoding/json`, simple case folding), U+0131 DOTLESS I `i`
/// (.NET's invariant upper case, ASP.NET Core's case-insensitive JSON; also
/// `s` for U+017F) and U+0130 CAPITAL I WITH DOT `i` (Java's
/// `equalsIgnoreCase`).
pub fn folds_to(k: &str, key: &str) -> bool {
    if k.len() == key.len() {
        // The common case, and the only one for ASCII keys.
        return k.eq_ignore_ascii_case(key);
    }
    // A folding character is two or three bytes for the one ASCII letter it
    // stands for: only a longer key, not all ASCII, can fold (most keys are
    // ruled out by their length alone).
    if k.len() < key.len() || k.len() > key.len() * 3 || k.is_ascii() {
        return false;
    }
    let mut ours = k.chars().map(fold_char);
    key.chars()
        .all(|want| ours.next() == Some(want.to_ascii_lowercase()))
        && ours.next().is_none()
}

/// `k` as case-insensitive JSON readers take it: ASCII lower case, and the
/// characters outside ASCII that [`folds_to`] counts as an ASCII letter
/// replaced by it (U+212A `k`, U+017F `s`, U+0130 and U+0131 `i`). For an
/// ASCII `key`, `folds_to(k, key)` exactly when `folded(k)` is `key` in
/// lower case. Borrowed when `k` is already folded.
pub fn folded(k: &str) -> Cow<'_, str> {
    if k.chars().all(|c| fold_char(c) == c) {
        return Cow::Borrowed(k);
    }
    Cow::Owned(k.chars().map(fold_char).collect())
}

/// The character case-insensitive readers take `c` for: an ASCII letter in
/// lower case, U+212A KELVIN SIGN `k`, U+017F LONG S `s`, U+0130 and U+0131
/// `i`; any other character itself.
fn fold_char(c: char) -> char {
    match c {
        '\u{212A}' => 'k',
        '\u{17F}' => 's',
        '\u{130}' | '\u{131}' => 'i',
        c => c.to_ascii_lowercase(),
    }
}

/// The strict value visitor: a `Json`, refusing duplicate keys.
pub(crate) struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Json<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        // As `serde_json::Value`: serde_json refuses a float it cannot hold, so
        // the `Null` arm is only for a non-finite value, which JSON cannot spell.
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            out.push(v);
        }
        Ok(Json::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut out: Vec<(Cow<'de, str>, Json<'de>)> = Vec::new();
        // Past `SCAN_KEYS` keys, every key so far is also in `seen` (made only
        // then: a `HashSet` seeds its hasher even when empty).
        let mut seen: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(key) = map.next_key_seed(Key)? {
            let duplicate = if out.len() < SCAN_KEYS {
                out.iter().any(|(k, _)| *k == key)
            } else {
                !seen
                    .get_or_insert_with(|| out.iter().map(|(k, _)| k.clone()).collect())
                    .insert(key.clone())
            };
            if duplicate {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format_args!("duplicate key `{shown}`")));
            }
            let v = map.next_value_seed(Strict)?;
            out.push((key, v));
        }
        Ok(Json::Object(out))
    }
}

/// An object key, borrowed from the body unless it has escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
