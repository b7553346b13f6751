//! The audit line's JSON, written field by field (no intermediate value)
//! into a buffer the writer reuses from line to line.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use super::escape::push_json_str;

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
        push_int(self.out, value);
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
                    push_int(self.out, octet);
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

/// Appends `n` in decimal, as serde_json writes it (with the same crate).
fn push_int(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::IpAddr;

    use super::{JsonObject, push_int};

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
            push_int(&mut out, n);
            assert_eq!(out, serde_json::to_string(&n).unwrap());
        }
    }

    #[test]
    fn octets_are_written_as_serde_json_writes_them() {
        for n in 0..=u8::MAX {
            let mut out = String::new();
            push_int(&mut out, n);
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
