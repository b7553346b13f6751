//! JSON string escaping, byte for byte as serde_json escapes: the scan over
//! every string of an audit line is most of the cost of writing it.

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it
/// (`"`, `\\`, the short escapes `\b \f \n \r \t`, `\u00xx` for the other
/// control bytes; nothing else), copying each run of bytes that need no
/// escape in one piece. Principals, actions and resources all hold quotes,
/// so the escaping path is the common one.
pub(super) fn push_json_str(out: &mut String, s: &str) {
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

    use super::{ESCAPE, escape_mask, push_json_str};

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
}
