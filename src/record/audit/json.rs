//! The audit line's JSON, written field by field (no intermediate value).

use std::fmt::Write as _;

use serde::Serialize;

/// A JSON object written field by field. Keys are trusted literals; values
/// are escaped as serde_json escapes them.
pub(super) struct JsonObject {
    out: String,
}

impl JsonObject {
    pub(super) fn with_capacity(n: usize) -> Self {
        let mut out = String::with_capacity(n);
        out.push('{');
        Self { out }
    }

    pub(super) fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    pub(super) fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_str(&mut self.out, value);
    }

    pub(super) fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    pub(super) fn num(&mut self, key: &str, value: u64) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }

    pub(super) fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
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

    pub(super) fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it
/// (`"`, `\\`, the short escapes `\b \f \n \r \t`, `\u00xx` for the other
/// control bytes; nothing else), without an intermediate string: principals,
/// actions and resources all hold quotes, so the escaping path is the common
/// one (it was a third of the audit writer's work per Check).
fn push_json_str(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let Some(first) = bytes.iter().position(|&b| ESCAPE[usize::from(b)] != 0) else {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    };
    out.reserve(s.len() + 8);
    out.push('"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        let escape = ESCAPE[usize::from(b)];
        if escape == 0 {
            continue;
        }
        // Every escaped byte is ASCII: `i` is a character boundary.
        out.push_str(&s[start..i]);
        out.push('\\');
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push(char::from(escape));
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
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

    use super::push_json_str;

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
            ]
            .map(str::to_owned),
        );
        for case in cases {
            let mut out = String::new();
            push_json_str(&mut out, &case);
            assert_eq!(out, serde_json::to_string(&case).unwrap(), "{case:?}");
        }
    }
}
