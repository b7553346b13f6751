//! Real audit lines against `proto/audit.proto`: every audit event a test reads goes through
//! [`check_event`], so a field the writer adds without the schema (or of another type) fails
//! the test that produced it.
//!
//! The mapping is proto3's canonical JSON mapping with one documented deviation: 64-bit
//! integers (`int64`, `uint64`) are JSON numbers, not strings (README, "Audit log"). Field
//! names are the proto names as written (snake_case). Optional and repeated fields may be
//! absent; every other field must be present.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::repo_path;

/// A field of a message: its type (`string`, `uint64`, `map<string, string>`, a message
/// name) and whether it is `repeated` or `optional`.
#[derive(Debug, Clone)]
struct Field {
    ty: String,
    repeated: bool,
    optional: bool,
}

type Messages = BTreeMap<String, BTreeMap<String, Field>>;

/// The messages of `proto/audit.proto`, parsed once.
fn messages() -> &'static Messages {
    static PARSED: OnceLock<Messages> = OnceLock::new();
    PARSED.get_or_init(|| {
        let text = std::fs::read_to_string(repo_path("proto/audit.proto")).expect("read proto");
        parse(&text)
    })
}

/// A small parser for the proto3 subset the schema uses: messages of scalar, message,
/// `repeated`, `optional` and `map<,>` fields.
fn parse(text: &str) -> Messages {
    let mut out = Messages::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        if let Some(rest) = line.strip_prefix("message ") {
            let name = rest.trim_end_matches('{').trim().to_owned();
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if line == "}" {
            current = None;
        } else if let (Some(msg), Some((decl, _number))) = (&current, line.split_once('=')) {
            let mut words: Vec<&str> = decl.split_whitespace().collect();
            let name = words.pop().expect("field name").to_owned();
            let (repeated, optional) = match words.first() {
                Some(&"repeated") => (true, false),
                Some(&"optional") => (false, true),
                _ => (false, false),
            };
            if repeated || optional {
                words.remove(0);
            }
            let field = Field {
                ty: words.join(" "),
                repeated,
                optional,
            };
            out.get_mut(msg).expect("message").insert(name, field);
        }
    }
    assert!(
        out.contains_key("AuditEvent"),
        "proto/audit.proto has no AuditEvent"
    );
    out
}

/// Panics, naming the field, if `event` does not conform to `AuditEvent`.
pub fn check_event(event: &Value) {
    check_message("AuditEvent", event, "");
}

fn check_message(name: &str, value: &Value, at: &str) {
    let fields = messages()
        .get(name)
        .unwrap_or_else(|| panic!("audit.proto: no message {name}"));
    let Value::Object(obj) = value else {
        panic!("audit {at}: a {name} must be a JSON object: {value}");
    };
    for (key, v) in obj {
        let field = fields.get(key).unwrap_or_else(|| {
            panic!("audit {at}.{key}: not a field of {name} in proto/audit.proto: {value}")
        });
        let path = format!("{at}.{key}");
        if field.repeated {
            let Value::Array(items) = v else {
                panic!("audit {path}: repeated field must be an array: {v}");
            };
            items
                .iter()
                .for_each(|item| check_value(&field.ty, item, &path));
        } else {
            check_value(&field.ty, v, &path);
        }
    }
    for (key, field) in fields {
        if !field.repeated && !field.optional && !field.ty.starts_with("map<") {
            assert!(
                obj.contains_key(key),
                "audit {at}: required field `{key}` missing: {value}"
            );
        }
    }
}

fn check_value(ty: &str, v: &Value, at: &str) {
    let ok = match ty {
        "string" => v.is_string(),
        "bool" => v.is_boolean(),
        // Documented deviation: 64-bit integers as JSON numbers.
        "int32" | "int64" => v.is_i64(),
        "uint32" | "uint64" => v.is_u64(),
        _ if ty.starts_with("map<") => {
            let value_ty = ty
                .trim_start_matches("map<")
                .trim_end_matches('>')
                .split(',')
                .nth(1)
                .unwrap_or("")
                .trim();
            match v {
                Value::Object(m) => {
                    m.values().for_each(|x| check_value(value_ty, x, at));
                    true
                }
                _ => false,
            }
        }
        message => {
            check_message(message, v, at);
            true
        }
    };
    assert!(ok, "audit {at}: expected {ty}, got {v}");
}

#[test]
fn the_checker_catches_unknown_and_mistyped_fields() {
    let good = serde_json::json!({
        "time": "t", "decision_id": "d", "request_id": "r", "decision": "allow",
        "reason": "policy_permit", "principal": "p", "auth_method": "mtls", "action": "a",
        "resource": "r", "protocol": "http", "policies": [], "policy_generation": 1,
        "policy_hash": "h", "cache_hit": false, "latency_us": 3, "method": "GET",
        "host": "h", "path": "/", "summary": {"choices": 2, "tool_names": ["x"]},
        "batch": [{"action": "a", "tool": "s/t", "mcp_arguments": ["path"]}]
    });
    check_event(&good);
    for bad in [
        serde_json::json!({"unknown": 1}),
        serde_json::json!({"latency_us": "3"}),
        serde_json::json!({"summary": {"choices": "2"}}),
        serde_json::json!({"batch": {"action": "a"}}),
    ] {
        let mut event = good.clone();
        event
            .as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        assert!(
            std::panic::catch_unwind(|| check_event(&event)).is_err(),
            "{bad}"
        );
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("decision");
    assert!(std::panic::catch_unwind(|| check_event(&missing)).is_err());
}
