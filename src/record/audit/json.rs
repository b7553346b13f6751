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

/// Appends `s` as a JSON string: verbatim when nothing needs escaping (the
/// common case), through serde_json otherwise.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        match serde_json::to_string(s) {
            Ok(json) => out.push_str(&json),
            Err(_) => out.push_str("\"\""),
        }
    }
}
