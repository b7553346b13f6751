//! Protobuf written straight from borrowed strings, for the parts of the
//! answer to Envoy that every Check carries: the dynamic metadata (a
//! `google.protobuf.Struct`) and the allow response's headers.
//!
//! Building them as prost messages meant a SipHash map of 28 owned strings
//! and a dozen more for the headers, then walking it all again to encode:
//! about 16k instructions of a 61k cache hit (BENCHMARKS.md, issue 17). Here
//! each part is a size function and a write function over the same fields,
//! so the answer is one exact allocation. The bytes are what prost would
//! write for the same message (up to the order of map entries, which
//! protobuf leaves free); `response` tests decode them with prost.

use std::ops::Range;

use prost::encoding::{WireType, encoded_len_varint, key_len};

/// A `google.protobuf.Value` of the metadata.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val<'a> {
    /// `string_value` (field 3).
    Str(&'a str),
    /// `number_value` (field 2).
    Num(f64),
    /// `bool_value` (field 4).
    Bool(bool),
}

/// Where the writers below put each value they were given, in order, when
/// asked to note it (`response`'s kept answers: see `response::Kept`).
#[derive(Debug, Default)]
pub(super) struct Spans(Option<Vec<Range<usize>>>);

impl Spans {
    /// Spans that note where each value goes.
    pub(super) fn noting() -> Self {
        Self(Some(Vec::new()))
    }

    /// The last `len` bytes of `out` hold the value just written.
    fn note(&mut self, out: &[u8], len: usize) {
        if let Some(spans) = &mut self.0 {
            spans.push(out.len() - len..out.len());
        }
    }

    /// The spans noted, in writing order.
    pub(super) fn into_inner(self) -> Vec<Range<usize>> {
        self.0.unwrap_or_default()
    }
}

impl Val<'_> {
    /// Whether `written` is this value as [`put_struct`] writes its content.
    pub(super) fn written_as(self, written: &[u8]) -> bool {
        match self {
            Val::Str(s) => s.as_bytes() == written,
            Val::Num(n) => n.to_le_bytes() == written,
            Val::Bool(b) => [u8::from(b)] == written,
        }
    }
}

/// Bytes of a length-delimited field whose content is `len` bytes.
pub(super) fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// Bytes of a proto3 `string` field (absent when empty, as prost writes it).
pub(super) fn string_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        delimited_len(tag, s.len())
    }
}

/// Bytes of a proto3 `int32` / enum field (absent when zero).
pub(super) fn int_len(tag: u32, v: i32) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(i64::from(v) as u64)
    }
}

/// Writes a varint. prost's `encode_varint` goes through `BufMut`, which
/// for a `Vec` checks and reserves per byte: 26 instructions a call, 5k per
/// answer; the answer's buffer is sized exactly, so plain pushes do.
fn encode_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes a field's key.
fn encode_key(tag: u32, wire_type: WireType, out: &mut Vec<u8>) {
    encode_varint(u64::from(tag << 3 | wire_type as u32), out);
}

/// Writes the key and length of a length-delimited field of `len` bytes.
pub(super) fn put_delimited(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

/// Writes a repeated string's element or a oneof string (present even when empty).
pub(super) fn put_str(tag: u32, s: &str, out: &mut Vec<u8>) {
    put_delimited(tag, s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

/// [`put_str`], noting where `s` went.
pub(super) fn put_str_noted(tag: u32, s: &str, out: &mut Vec<u8>, spans: &mut Spans) {
    put_str(tag, s, out);
    spans.note(out, s.len());
}

/// Writes a proto3 `string` field (nothing when empty).
pub(super) fn put_string(tag: u32, s: &str, out: &mut Vec<u8>) {
    if !s.is_empty() {
        put_str(tag, s, out);
    }
}

/// Writes a proto3 `int32` / enum field (nothing when zero).
pub(super) fn put_int(tag: u32, v: i32, out: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::Varint, out);
        encode_varint(i64::from(v) as u64, out);
    }
}

// --- google.protobuf.Struct ---

fn value_len(v: Val<'_>) -> usize {
    match v {
        Val::Str(s) => delimited_len(3, s.len()),
        Val::Num(_) => key_len(2) + 8,
        Val::Bool(_) => key_len(4) + 1,
    }
}

fn entry_len(key: &str, v: Val<'_>) -> usize {
    string_len(1, key) + delimited_len(2, value_len(v))
}

/// Bytes of a `Struct` with `fields` (its content, without its own key).
pub(super) fn struct_len(fields: &[(&str, Val<'_>)]) -> usize {
    fields
        .iter()
        .map(|&(k, v)| delimited_len(1, entry_len(k, v)))
        .sum()
}

/// Writes the content of a `Struct` with `fields` (its key and length first:
/// [`put_delimited`] with [`struct_len`]), noting where each value went.
pub(super) fn put_struct(fields: &[(&str, Val<'_>)], out: &mut Vec<u8>, spans: &mut Spans) {
    for &(k, v) in fields {
        put_delimited(1, entry_len(k, v), out);
        put_string(1, k, out);
        put_delimited(2, value_len(v), out);
        let len = match v {
            Val::Str(s) => {
                put_str(3, s, out);
                s.len()
            }
            Val::Num(n) => {
                encode_key(2, WireType::SixtyFourBit, out);
                out.extend_from_slice(&n.to_le_bytes());
                8
            }
            Val::Bool(b) => {
                encode_key(4, WireType::Varint, out);
                out.push(u8::from(b));
                1
            }
        };
        spans.note(out, len);
    }
}

// --- envoy.config.core.v3.HeaderValueOption ---

/// `HeaderValue { key = 1, value = 2 }`.
fn header_value_len(key: &str, value: &str) -> usize {
    string_len(1, key) + string_len(2, value)
}

/// Bytes of a `HeaderValueOption { header = 1, append_action = 3 }` (content).
pub(super) fn header_option_len(key: &str, value: &str, action: i32) -> usize {
    delimited_len(1, header_value_len(key, value)) + int_len(3, action)
}

/// Writes the content of a `HeaderValueOption`, noting where the value went.
pub(super) fn put_header_option(
    (key, value): (&str, &str),
    action: i32,
    out: &mut Vec<u8>,
    spans: &mut Spans,
) {
    put_delimited(1, header_value_len(key, value), out);
    put_string(1, key, out);
    put_string(2, value, out);
    spans.note(out, value.len());
    put_int(3, action, out);
}
