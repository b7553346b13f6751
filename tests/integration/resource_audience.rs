//! Audience per route (RFC 8707) through the real server (in process) with a real JWKS
//! endpoint: an MCP route that declares its `resource` URI accepts only tokens whose `aud`
//! names it (401 `resource_mismatch` otherwise: a token for the model API or another MCP
//! server is never passed through); `audience: issuer` relaxes it; other routes are unchanged.

use serde_json::json;

use crate::common::InProc;
use crate::common::check::{self, code, denied, rejection};
use crate::common::idp::{Idp, SigningKey, now};

const AGENTS: &str = "https://agents.example.com";
const API: &str = "https://models.example.com";
const GITHUB: &str = "https://mcp.example.com/mcp/github";
const FILES: &str = "https://mcp.example.com/mcp/files";

const POLICIES: &str = r#"
@id("agents-everything")
permit (principal is Agent, action, resource);
"#;

fn token(key: &SigningKey, aud: serde_json::Value) -> String {
    let t = now();
    key.sign(&json!({
        "iss": AGENTS, "sub": "research-bot", "aud": aud, "iat": t - 5, "exp": t + 300,
    }))
}

#[tokio::test]
async fn mcp_route_with_resource_requires_its_audience() {
    let key = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&key]).await;
    let config = format!(
        "identity:\n  trust_domains: [example.org]\n  issuers:\n  - issuer: {AGENTS}\n    jwks_url: {}\n    audiences: [\"{API}\", \"{GITHUB}\", \"{FILES}\"]\n    algorithms: [RS256]\n    entity_type: Agent\nroutes:\n  - {{ path_prefix: /mcp/github, protocol: mcp, server: github, resource: \"{GITHUB}\" }}\n  - {{ path_prefix: /mcp/files, protocol: mcp, server: files, resource: \"{FILES}\", audience: issuer }}\n  - {{ path_prefix: /mcp/other, protocol: mcp, server: other }}\n  - {{ path_prefix: /v1/, protocol: openai }}\n",
        idp.jwks_url(),
    );
    let s = InProc::start_in(&config, |dir| {
        crate::common::copy_shipped_policies(dir);
        std::fs::write(dir.join("all.cedar"), POLICIES).unwrap();
    })
    .await;
    s.wait_ready().await;
    let list = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}).to_string();
    let call = |path: &'static str, aud: serde_json::Value| {
        let auth = format!("Bearer {}", token(&key, aud));
        let (method, body) = if path.starts_with("/mcp") {
            ("POST", list.clone())
        } else {
            ("GET", String::new())
        };
        let mut req = check::request(
            "req-1",
            "",
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
        );
        check::http_mut(&mut req).body = body;
        async { s.check(req).await }
    };

    // Its own resource (alone or among others): allowed.
    for aud in [json!(GITHUB), json!([API, GITHUB])] {
        let resp = call("/mcp/github", aud.clone()).await;
        assert_eq!(code(&resp), 0, "{aud}: {:?}", resp.http_response);
    }
    // A token for the model API or for another MCP server: 401, never passed through.
    for aud in [json!(API), json!(FILES), json!([API, FILES])] {
        let resp = call("/mcp/github", aud.clone()).await;
        assert_eq!(denied(&resp).0, 401, "{aud}");
        assert_eq!(rejection(&resp), "resource_mismatch", "{aud}");
    }
    // `audience: issuer`: any accepted audience.
    let resp = call("/mcp/files", json!(API)).await;
    assert_eq!(code(&resp), 0, "{:?}", resp.http_response);
    // No `resource`, and non-MCP routes: the issuer's audiences, as before.
    let resp = call("/mcp/other", json!(GITHUB)).await;
    assert_eq!(code(&resp), 0, "{:?}", resp.http_response);
    let resp = call("/v1/models", json!(GITHUB)).await;
    assert_eq!(code(&resp), 0, "{:?}", resp.http_response);
}

#[test]
fn resource_is_checked_at_load() {
    for (routes, needle) in [
        (
            "[{ path_prefix: /v1/, protocol: openai, resource: \"https://x.example.com\" }]",
            "applies only to `protocol: mcp`",
        ),
        (
            "[{ path_prefix: /mcp, protocol: mcp, server: s, resource: \"https://X.example.com/mcp\" }]",
            "lower case",
        ),
        (
            "[{ path_prefix: /mcp, protocol: mcp, server: s, resource: \"https://x.example.com/mcp#a\" }]",
            "fragment",
        ),
        (
            "[{ path_prefix: /mcp, protocol: mcp, server: s, audience: issuer }]",
            "needs the route's `resource`",
        ),
    ] {
        let err = cedar_gate::config::Config::from_yaml(&format!("routes: {routes}\n"))
            .err()
            .unwrap_or_else(|| panic!("{routes} loaded"))
            .to_string();
        assert!(err.contains(needle), "{routes}: {err}");
    }
}
