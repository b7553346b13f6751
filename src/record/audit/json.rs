//! The audit line's JSON, written field by field (no intermediate value)
//! into a buffer the writer reuses from line to line.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

/// A field's key as [`JsonObject`] takes it: `,"name":`, punctuation and
/// all, joined at compile time, so that starting a field is one copy (four
/// separate pushes per key were a fifth of the line's cost).
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}
pub(super) use key;

/// A JSON object written field by field at the end of a caller's buffer.
/// Keys are trusted literals made by [`key!`]; values are escaped as
/// serde_json escapes them.
pub(super) struct JsonObject<'b> {
    out: &'b mut String,
    /// Where the object's `{` is in `out`: the field right after it drops
    /// its key's leading comma.
    start: usize,
}

impl<'b> JsonObject<'b> {
    pub(super) fn begin(out: &'b mut String) -> Self {
        let start = out.len();
        out.push('{');
        Self { out, start }
    }

    /// Starts a field; `key` is [`key!`]'s `,"name":`.
    pub(super) fn key(&mut self, key: &str) {
        debug_assert!(key.starts_with(",\"") && key.ends_with("\":"), "{key}");
        let key = if self.out.len() == self.start + 1 {
            key.strip_prefix(',').unwrap_or(key)
        } else {
            key
        };
        self.out.push_str(key);
    }

    pub(super) fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_str(self.out, value);
    }

    pub(super) fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    pub(super) fn num(&mut self, key: &str, value: u64) {
        self.key(key);
        push_u64(self.out, value);
    }

    pub(super) fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    /// The time as [`crate::vocab::rfc3339`] writes it (a JSON string: its
    /// characters never need escaping).
    pub(super) fn time(&mut self, key: &str, value: std::time::SystemTime) {
        self.key(key);
        self.out.push('"');
        crate::vocab::push_rfc3339(self.out, value);
        self.out.push('"');
    }

    /// The address as its `Display` writes it, which is also what serde
    /// writes for an `IpAddr` in JSON. IPv4, the common case, without the
    /// formatting machinery (it was an eighth of the writer's work per Check).
    pub(super) fn ip(&mut self, key: &str, value: IpAddr) {
        self.key(key);
        self.out.push('"');
        match value {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.out.push('.');
                    }
                    push_u8(self.out, octet);
                }
            }
            IpAddr::V6(v6) => {
                let _ = write!(self.out, "{v6}");
            }
        }
        self.out.push('"');
    }

    pub(super) fn raw_list<'a>(&mut self, key: &str, items: impl Iterator<Item = &'a str>) {
        self.key(key);
        self.out.push('[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(item);
        }
        self.out.push(']');
    }

    pub(super) fn serde(&mut self, key: &str, value: &impl Serialize) {
        self.key(key);
        // Plain data (strings, numbers, string maps) cannot fail to serialize.
        match serde_json::to_string(value) {
            Ok(json) => self.out.push_str(&json),
            Err(_) => self.out.push_str("null"),
        }
    }

    pub(super) fn finish(self) {
        self.out.push('}');
    }
}

/// Appends `n` in decimal, as serde_json (and `Display`) write it.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // `n % 10` is a single digit: the cast cannot truncate.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Appends `n` in decimal (an IPv4 octet): no loop, no 64-bit division.
fn push_u8(out: &mut String, n: u8) {
    if n >= 100 {
        out.push(char::from(b'0' + n / 100));
    }
    if n >= 10 {
        out.push(char::from(b'0' + n / 10 % 10));
    }
    out.push(char::from(b'0' + n % 10));
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it
/// (`"`, `\\`, the short escapes `\b \f \n \r \t`, `\u00xx` for the other
/// control bytes; nothing else), copying each run of bytes that need no
/// escape in one piece. Principals, actions and resources all hold quotes,
/// so the escaping path is the common one.
fn push_json_str(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    out.push('"');
    let mut start = 0;
    while let Some(i) = find_escape(bytes, start) {
        // Every escaped byte is ASCII: `i` is a character boundary.
        out.push_str(&s[start..i]);
        push_escape(out, bytes[i]);
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The first byte at or after `from` that JSON escapes. Eight bytes at a
/// time ([`escape_mask`]): the scan is most of the cost of an audit line.
fn find_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(word) = bytes.get(at..).and_then(|rest| rest.first_chunk::<8>()) {
        if let Some(i) = first_flagged(escape_mask(u64::from_le_bytes(*word))) {
            return Some(at + i);
        }
        at += 8;
    }
    let rest = bytes.len().checked_sub(at).filter(|&n| n > 0)?;
    match bytes.last_chunk::<8>() {
        // The last word overlaps bytes already scanned: shift them out and
        // fill the top with clean bytes (masking them instead would not do:
        // a flagged byte can flag the one above it).
        Some(last) => {
            let shift = 8 * (8 - rest) as u32;
            let word = (u64::from_le_bytes(*last) >> shift) | (CLEAN << (64 - shift));
            first_flagged(escape_mask(word)).map(|i| at + i)
        }
        // Shorter than a word.
        None => bytes
            .get(at..)?
            .iter()
            .position(|&b| ESCAPE[usize::from(b)] != 0)
            .map(|i| at + i),
    }
}

/// Eight bytes that need no escape (`a`).
const CLEAN: u64 = 0x6161_6161_6161_6161;

/// The index of the lowest byte [`escape_mask`] flagged: little-endian, the
/// first in the text.
fn first_flagged(mask: u64) -> Option<usize> {
    (mask != 0).then(|| (mask.trailing_zeros() / 8) as usize)
}

/// The high bit of each byte of `word` that JSON escapes (below 0x20, `"`
/// or `\`). The usual SWAR tests: a byte borrows from the one above it only
/// when it is itself flagged, so bytes may be flagged wrongly only above
/// the lowest flagged one, which is always right ([`find_escape`] reads no
/// further; the tests hold it to [`ESCAPE`] for every byte and position).
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH;
    below(word, 0x20)
        | below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1)
}

/// Appends the escape of `b`, a byte [`ESCAPE`] flags.
fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    match ESCAPE[usize::from(b)] {
        b'u' => {
            out.push_str("u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        short => out.push(char::from(short)),
    }
}

/// Per byte: 0 when written as it is, else the character after the
/// backslash (`u` for `\u00xx`), as serde_json's table.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::IpAddr;

    use super::{ESCAPE, JsonObject, escape_mask, push_json_str, push_u8, push_u64};

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        push_json_str(&mut out, s);
        out
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut cases: Vec<String> = (0u8..0x80)
            .map(|b| format!("a{}z", char::from(b)))
            .collect();
        cases.extend(
            [
                "",
                "plain",
                r#"Workload::"spiffe://example.org/ns/a/sa/b""#,
                "back\\slash \"quoted\" \u{7f} \u{e9}t\u{e9} \u{1f600} \u{2028}",
                "\u{0}\u{1f}\n\r\t\u{8}\u{c}",
                "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"",
                "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\"\u{1f600}\u{1f600}\u{1f600}\\",
            ]
            .map(str::to_owned),
        );
        for case in cases {
            assert_eq!(
                escaped(&case),
                serde_json::to_string(&case).unwrap(),
                "{case:?}"
            );
        }
    }

    /// Every character below U+0100 (so every ASCII byte, and the two-byte
    /// UTF-8 forms whose bytes have the high bit set), at every offset of
    /// a string longer than two 8-byte words, alone and followed by a second
    /// escaped byte (the second must be found after the first).
    #[test]
    fn every_character_at_every_offset_is_escaped_as_serde_json_escapes_it() {
        let clean = "abcdefghijklmnopqrstuvwxyz0123456789";
        for c in (0u32..0x100).filter_map(char::from_u32) {
            for at in 0..=clean.len() {
                for after in ["", "\"", "\n", "\u{e9}", "\\x\u{1}"] {
                    let case = format!("{}{c}{after}{}", &clean[..at], &clean[at..]);
                    assert_eq!(
                        escaped(&case),
                        serde_json::to_string(&case).unwrap(),
                        "{case:?}"
                    );
                }
            }
        }
    }

    /// The word test flags, as its lowest flagged byte, exactly the first
    /// byte the table escapes, whatever the other bytes hold.
    #[test]
    fn escape_mask_finds_the_first_byte_the_table_escapes() {
        let fillers = [
            b'a', b' ', b'!', b'#', b'[', b']', b'~', 0x7f, 0x80, 0xc3, 0xff,
        ];
        for b in 0..=u8::MAX {
            for at in 0..8 {
                for &fill in &fillers {
                    for &above in &[fill, 0, b'"', b'\\', 0x1f, 0x20, 0x21] {
                        let mut word = [fill; 8];
                        word[at] = b;
                        for byte in &mut word[at + 1..] {
                            *byte = above;
                        }
                        let mask = escape_mask(u64::from_le_bytes(word));
                        let first = word.iter().position(|&w| ESCAPE[usize::from(w)] != 0);
                        let found = (mask != 0).then(|| (mask.trailing_zeros() / 8) as usize);
                        assert_eq!(found, first, "{word:x?}");
                    }
                }
            }
        }
    }

    /// Every length around the word size, with one escaped byte at every
    /// position (the last word overlaps bytes already scanned).
    #[test]
    fn every_length_and_position_is_escaped_as_serde_json_escapes_it() {
        for len in 0..=26 {
            let clean = "x".repeat(len);
            assert_eq!(escaped(&clean), serde_json::to_string(&clean).unwrap());
            for at in 0..len {
                for special in ["\"", "\\", "\u{0}", "\u{1f}", "\n"] {
                    let case = format!("{}{special}{}", &clean[..at], &clean[at + 1..]);
                    assert_eq!(
                        escaped(&case),
                        serde_json::to_string(&case).unwrap(),
                        "{case:?}"
                    );
                    let twice = format!("{special}{case}{special}");
                    assert_eq!(
                        escaped(&twice),
                        serde_json::to_string(&twice).unwrap(),
                        "{twice:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn long_strings_are_escaped_as_serde_json_escapes_them() {
        let long = "spiffe://example.org/ns/a/sa/b ".repeat(100);
        let odd = format!("{long}\"{long}\u{0}{long}\u{e9}\\");
        for case in [long, odd] {
            assert_eq!(escaped(&case), serde_json::to_string(&case).unwrap());
        }
    }

    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            12_345,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, serde_json::to_string(&n).unwrap());
        }
    }

    #[test]
    fn octets_are_written_as_serde_json_writes_them() {
        for n in 0..=u8::MAX {
            let mut out = String::new();
            push_u8(&mut out, n);
            assert_eq!(out, serde_json::to_string(&n).unwrap());
        }
    }

    /// Only the first field goes without a comma, also when the object
    /// does not start the buffer.
    #[test]
    fn fields_are_separated_by_commas() {
        let mut out = String::from("{\"before\":0}\n");
        let mut o = JsonObject::begin(&mut out);
        o.num(key!("a"), 1);
        o.bool(key!("b"), true);
        o.str(key!("c"), "x");
        o.finish();
        assert_eq!(out, "{\"before\":0}\n{\"a\":1,\"b\":true,\"c\":\"x\"}");
        let mut empty = String::new();
        JsonObject::begin(&mut empty).finish();
        assert_eq!(empty, "{}");
    }

    #[test]
    fn addresses_are_written_as_serde_json_writes_them() {
        for ip in [
            "10.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "192.168.10.200",
            "::1",
            "::",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.0.0.1",
            "fe80::1:2:3:4",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = String::new();
            let mut o = JsonObject::begin(&mut out);
            o.ip(key!("ip"), ip);
            o.finish();
            let serde = serde_json::json!({ "ip": ip }).to_string();
            assert_eq!(out, serde);
        }
    }
}
