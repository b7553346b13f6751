//! Writes the protobuf-encoded `CheckRequest` seeds of the `check_request` target into
//! `fuzz/seeds/check_request/`: `cargo run --manifest-path fuzz/Cargo.toml --bin make-seeds`.
//! The seeds are committed; rerun this only when the request shapes change.

use std::collections::HashMap;
use std::path::Path;

use envoy_types::pb::envoy::config::core::v3::{
    Address, HeaderMap, HeaderValue, SocketAddress, address,
};
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, attribute_context,
};
use prost::Message;

const AGENT: &str = "spiffe://example.org/ns/agents/sa/research-agent";

fn request(principal: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let http = attribute_context::HttpRequest {
        id: "seed-1".into(),
        method: method.into(),
        path: path.into(),
        host: "models.example.com".into(),
        scheme: "https".into(),
        protocol: "HTTP/2".into(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                principal: principal.into(),
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "10.1.2.3".into(),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn http_mut(r: &mut CheckRequest) -> &mut attribute_context::HttpRequest {
    r.attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .expect("seed request has HTTP attributes")
}

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let leaf = std::fs::read_to_string(dir.join("cert_pem/spiffe-leaf.urlencoded"))?;
    let xfcc = std::fs::read_to_string(dir.join("xfcc/two-elements"))?;
    let mut seeds: Vec<(&str, CheckRequest)> = vec![
        (
            "allow",
            request(
                AGENT,
                "GET",
                "/v1/models?limit=5",
                &[("x-request-id", "r1")],
            ),
        ),
        (
            "no-permit",
            request(
                "spiffe://example.org/ns/x/sa/rogue",
                "POST",
                "/v1/chat/completions",
                &[],
            ),
        ),
        ("forbid-admin", request(AGENT, "GET", "/admin/users", &[])),
        ("anonymous-health", request("", "GET", "/healthz", &[])),
        (
            "foreign-domain",
            request("spiffe://evil.org/ns/a/sa/b", "GET", "/v1/x", &[]),
        ),
        (
            "forged-headers",
            request(
                AGENT,
                "POST",
                "/v1/chat/completions",
                &[
                    ("x-cedar-gate-principal", "forged"),
                    ("authorization", "Bearer x"),
                    ("content-type", "application/json"),
                ],
            ),
        ),
        (
            "xfcc",
            request(
                "spiffe://b.org/gw",
                "GET",
                "/v1/models",
                &[("x-forwarded-client-cert", &xfcc)],
            ),
        ),
    ];
    let mut with_cert = request(AGENT, "GET", "/v1/models", &[]);
    if let Some(src) = with_cert
        .attributes
        .as_mut()
        .and_then(|a| a.source.as_mut())
    {
        src.certificate = leaf;
    }
    seeds.push(("peer-certificate", with_cert));
    // `encode_raw_headers: true`: header_map with raw byte values (one not UTF-8).
    let mut raw = request(AGENT, "POST", "/v1/chat/completions", &[]);
    http_mut(&mut raw).header_map = Some(HeaderMap {
        headers: vec![
            HeaderValue {
                key: "x-request-id".into(),
                raw_value: b"raw-1".to_vec(),
                ..Default::default()
            },
            HeaderValue {
                key: "x-bin".into(),
                raw_value: vec![0xff, 0xfe, b'a'],
                ..Default::default()
            },
            HeaderValue {
                key: "x-bin".into(),
                raw_value: b"again".to_vec(),
                ..Default::default()
            },
        ],
    });
    seeds.push(("raw-headers", raw));
    let mut body = request(
        AGENT,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
    );
    http_mut(&mut body).raw_body =
        br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}"#.to_vec();
    seeds.push(("openai-body", body));

    // A bearer token for the fuzz target's issuer, signed with the `rsa-a` test key and
    // valid at the target's fixed clock (1_811_808_000), so mutations start from a token
    // that passes signature and claim checks.
    let pem = std::fs::read(dir.join("../../tests/fixtures/jwt/rsa-a.pem"))?;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).map_err(std::io::Error::other)?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-a".into());
    let claims = serde_json::json!({
        "iss": "https://idp.example.com",
        "aud": "https://models.example.com",
        "sub": "alice",
        "groups": ["research"],
        "iat": 1_811_807_940_u64,
        "exp": 1_811_808_540_u64,
        "jti": "seed-1",
    });
    let token = jsonwebtoken::encode(&header, &claims, &key).map_err(std::io::Error::other)?;
    let bearer = format!("Bearer {token}");
    seeds.push((
        "bearer",
        request(
            "",
            "GET",
            "/v1/models",
            &[("authorization", bearer.as_str())],
        ),
    ));
    seeds.push((
        "bearer-and-workload",
        request(
            AGENT,
            "POST",
            "/v1/chat/completions",
            &[("authorization", bearer.as_str())],
        ),
    ));

    let out = dir.join("check_request");
    std::fs::create_dir_all(&out)?;
    for (name, req) in seeds {
        std::fs::write(out.join(name), req.encode_to_vec())?;
    }
    println!("wrote seeds to {}", out.display());
    Ok(())
}
