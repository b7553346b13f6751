//! The canonical request target and fail-closed classification from a fuzzed `:path`: the
//! first byte picks a method (and a method-override header), the rest is the raw path as
//! Envoy could forward it (query included), through the shipped route table.
//!
//! Invariants: never panics; a canonical path is ASCII, starts with `/`, has no `//`, and
//! canonicalising it again changes nothing; on a provider or MCP route, classification never
//! answers plain `Action::"http"`.

use cedar_gate::classify::{self, Protocol};
use cedar_gate::request::HttpRequest;

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT",
];

use crate::shipped_routes::routes;

/// One input; panics when an invariant above does not hold.
pub fn run(data: &[u8]) {
    let Some((&selector, raw)) = data.split_first() else {
        return;
    };
    let raw = String::from_utf8_lossy(raw);
    let (path, query) = raw.split_once('?').unwrap_or((&raw, ""));
    let mut headers = vec![("content-type", "application/json")];
    if selector & 0x80 != 0 {
        headers.push(("x-http-method-override", "GET"));
    }
    let headers = cedar_gate::request::header_list(headers);
    let mut req = HttpRequest {
        id: "fuzz".into(),
        method: METHODS[usize::from(selector & 0x7f) % METHODS.len()].into(),
        host: "models.example.com".into(),
        path: path.into(),
        query: query.into(),
        scheme: "https".into(),
        headers,
        body: br#"{"model":"gpt-4o-mini","messages":[],"jsonrpc":"2.0","id":1,"method":"ping"}"#
            .to_vec(),
        ..Default::default()
    };
    req.canonicalize();
    if req.target_error.is_none() {
        assert!(req.path.is_ascii() && req.path.starts_with('/') && !req.path.contains("//"));
        let mut again = req.clone();
        again.canonicalize();
        assert_eq!(again.path, req.path);
        assert!(again.target_error.is_none());
    }
    let route = routes().find(&req).map(|r| r.protocol);
    if let Ok(ops) = classify::classify(&req, routes()) {
        assert!(req.target_error.is_none() && selector & 0x80 == 0);
        for op in &ops {
            if route.is_some_and(|p| p != Protocol::Http) {
                assert_ne!(op.action.to_string(), r#"Action::"http""#, "{}", req.path);
            }
        }
    }
}
