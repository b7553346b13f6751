//! Gateway-held provider credentials and gateway-issued API keys, end to end: clients ──TLS──▶
//! a real Envoy running the shipped `envoy/envoy-tokens.yaml` ──Check──▶ the real cedar-gate
//! binary, and an upstream that records every header it receives. Keys are issued, revoked and
//! rotated with the real `cedar-gate keys` CLI while the server runs. All traffic stays on
//! 127.0.0.1.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{GateOptions, MtlsClient, Stack, WAIT, eventually, repo_path};

const RESEARCH: &str = "spiffe://example.org/ns/research/sa/notebook-runner";
const PLATFORM: &str = "spiffe://example.org/ns/platform/sa/batch";
const NOCRED: &str = "spiffe://example.org/ns/legacy/sa/tool";

const RESEARCH_KEY_1: &str = "sk-proj-research-ONE-4f8a1c2e9b7d";
const RESEARCH_KEY_2: &str = "sk-proj-research-TWO-77c1e0a9d3b5";
const PLATFORM_KEY: &str = "sk-proj-platform-d41d8cd98f00b204";
/// A raw provider key a caller tries to present.
const CALLER_KEY: &str = "sk-proj-caller-own-key-0a1b2c3d4e5f";

const POLICIES: &str = r#"
@id("research-openai") @owner("research") @credential("openai-research")
permit (principal in Group::"research", action in Action::"inference", resource);

@id("platform-openai") @owner("platform") @credential("openai-platform")
permit (principal in Group::"platform", action in Action::"inference", resource);

// Allowed, but names no credential and the route has no default: refused.
@id("legacy-openai") permit (principal in Group::"legacy", action in Action::"inference", resource);

// Gateway-issued keys: the key's groups decide, and only keys younger than 30 days.
@id("apps-openai") @owner("data-platform") @credential("openai-platform")
permit (principal is App in Group::"notebooks", action in Action::"inference", resource)
when { context.auth.method == "api_key" && context.auth has api_key_age_seconds &&
       context.auth.api_key_age_seconds < 2592000 };
"#;

/// One temp directory with the policies, the secrets (a Kubernetes-style Secret volume for the
/// research key) and the key store.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cedar-gate-creds-")
            .tempdir()
            .unwrap();
        let policies = dir.path().join("policies");
        cedar_gate::policy::testkit::write_dir(
            &policies,
            "credentials.cedar",
            POLICIES,
            &[
                (RESEARCH, "research"),
                (PLATFORM, "platform"),
                (NOCRED, "legacy"),
            ],
        );
        // research: `api-key -> ..data/api-key`, `..data -> ..v1`, as the kubelet mounts it.
        let research = dir.path().join("research");
        std::fs::create_dir_all(research.join("..v1")).unwrap();
        std::fs::write(research.join("..v1/api-key"), format!("{RESEARCH_KEY_1}\n")).unwrap();
        std::os::unix::fs::symlink("..v1", research.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/api-key", research.join("api-key")).unwrap();
        std::fs::create_dir(dir.path().join("platform")).unwrap();
        std::fs::write(dir.path().join("platform/api-key"), PLATFORM_KEY).unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        Self { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn store(&self) -> PathBuf {
        self.path("keys/keys.json")
    }

    /// Rotates the research Secret the way the kubelet does: a new timestamped directory,
    /// then a rename of a new `..data` symlink over the old one.
    fn rotate_research(&self, value: &str) {
        let research = self.path("research");
        std::fs::create_dir(research.join("..v2")).unwrap();
        std::fs::write(research.join("..v2/api-key"), value).unwrap();
        std::os::unix::fs::symlink("..v2", research.join("..data_tmp")).unwrap();
        std::fs::rename(research.join("..data_tmp"), research.join("..data")).unwrap();
        std::fs::remove_dir_all(research.join("..v1")).unwrap();
    }

    fn gate_options(&self) -> GateOptions {
        let q = |p: PathBuf| serde_json::to_string(&p).unwrap();
        let config = format!(
            "identity:
  trust_domains: [example.org]
routes:
  - {{ name: openai, path_prefix: /v1, protocol: openai }}
provider_credentials:
  credentials:
    - id: openai-research
      header: bearer
      file: {}
      rotation_period_seconds: 7776000
    - id: openai-platform
      header: bearer
      file: {}
  routes:
    - route: openai
api_keys:
  store: {}
logging:
  format: json
  level: debug
",
            q(self.path("research/api-key")),
            q(self.path("platform/api-key")),
            q(self.store()),
        );
        GateOptions {
            policy_dir: self.path("policies"),
            config,
        }
    }

    /// `cedar-gate keys <args>` against the store; returns stdout (the key, for issue and
    /// rotate).
    fn keys(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_cedar-gate"))
            .arg("keys")
            .arg("--store")
            .arg(self.store())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "keys {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

async fn start(setup: &Setup) -> Stack {
    Stack::start_with(&repo_path("envoy/envoy-tokens.yaml"), setup.gate_options()).await
}

fn chat_body() -> Value {
    serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

/// POSTs a chat completion tagged `tag`, with extra headers.
async fn chat(client: &MtlsClient, tag: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client
        .post("/v1/chat/completions")
        .header("x-test-id", tag)
        .json(&chat_body());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request through Envoy")
}

async fn reason_of(resp: reqwest::Response) -> (StatusCode, String, String) {
    let status = resp.status();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value =
        serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or_default();
    // Provider routes answer in the provider's error shape (src/wire/refusal).
    let reason = crate::common::check::refusal_fields(&body)
        .and_then(|f| f["reason"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, reason, challenge)
}

/// Every header value the upstream saw on requests tagged `tag`, by name.
fn upstream_headers(stack: &Stack, tag: &str, name: &str) -> Vec<String> {
    stack
        .upstream
        .requests_tagged(tag)
        .iter()
        .flat_map(|r| r.header_all(name))
        .collect()
}

/// The upstream sees the gateway's credential chosen by the team's policy, never the caller's
/// own; a raw provider key is refused; an allowed request without a credential is refused; a
/// rotated Secret (`..data` swap) is used without a restart; `/status` and `/metrics` show it.
#[tokio::test]
async fn e2e_gateway_credential_per_team_rotation_and_refusals() {
    let setup = Setup::new();
    let stack = start(&setup).await;
    let research = stack.client(RESEARCH);
    let platform = stack.client(PLATFORM);

    let resp = chat(&research, "research-1", &[]).await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", stack.gate.logs());
    assert_eq!(
        upstream_headers(&stack, "research-1", "authorization"),
        vec![format!("Bearer {RESEARCH_KEY_1}")]
    );
    let resp = chat(&platform, "platform-1", &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        upstream_headers(&stack, "platform-1", "authorization"),
        vec![format!("Bearer {PLATFORM_KEY}")]
    );

    // A caller's own provider key, in any header or `?key=`: refused, never forwarded.
    for (tag, headers, path) in [
        (
            "own-bearer",
            vec![("authorization", format!("Bearer {CALLER_KEY}"))],
            "/v1/chat/completions",
        ),
        (
            "own-anthropic",
            vec![("x-api-key", CALLER_KEY.to_owned())],
            "/v1/chat/completions",
        ),
        (
            "own-azure",
            vec![("api-key", CALLER_KEY.to_owned())],
            "/v1/chat/completions",
        ),
        (
            "own-query",
            vec![],
            "/v1/chat/completions?key=AIzaCallerKey",
        ),
    ] {
        let mut req = research
            .post(path)
            .header("x-test-id", tag)
            .json(&chat_body());
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        let (status, reason, _) = reason_of(req.send().await.unwrap()).await;
        assert_eq!(
            (status, reason.as_str()),
            (StatusCode::FORBIDDEN, "provider_credential_presented"),
            "{tag}"
        );
        assert!(
            stack.upstream.requests_tagged(tag).is_empty(),
            "{tag} reached the upstream"
        );
    }

    // Allowed by `legacy-openai`, which names no credential; the route has no default.
    let (status, reason, _) = reason_of(chat(&stack.client(NOCRED), "nocred", &[]).await).await;
    assert_eq!(
        (status, reason.as_str()),
        (StatusCode::FORBIDDEN, "credential_missing")
    );
    assert!(stack.upstream.requests_tagged("nocred").is_empty());

    // Rotation: the kubelet's `..data` swap, picked up without a restart.
    setup.rotate_research(RESEARCH_KEY_2);
    let started = Instant::now();
    let mut n = 0;
    eventually("the rotated research key upstream", WAIT, || {
        n += 1;
        let tag = format!("rotated-{n}");
        let research = research.clone();
        let stack = &stack;
        async move {
            assert_eq!(chat(&research, &tag, &[]).await.status(), StatusCode::OK);
            let seen = upstream_headers(stack, &tag, "authorization");
            (seen == vec![format!("Bearer {RESEARCH_KEY_2}")]).then_some(())
        }
    })
    .await;
    eprintln!("rotated credential in use after {:?}", started.elapsed());

    // A missing file keeps the last good value, and says so.
    std::fs::remove_file(setup.path("platform/api-key")).unwrap();
    let (_, metrics) = eventually("credential read failure on /metrics", WAIT, || async {
        let (s, m) = stack.gate.admin_get("/metrics").await;
        m.contains(r#"cedar_gate_credential_read_ok{credential="openai-platform"} 0"#)
            .then_some((s, m))
    })
    .await;
    assert!(metrics.contains(r#"cedar_gate_credential_age_seconds{credential="openai-research"}"#));
    assert!(metrics.contains(
        r#"cedar_gate_credential_rotation_period_seconds{credential="openai-research"} 7776000"#
    ));
    assert!(
        metrics.contains(r#"cedar_gate_provider_credential_presented_total{route="openai"} 4"#),
        "{metrics}"
    );
    assert_eq!(
        chat(&platform, "platform-2", &[]).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        upstream_headers(&stack, "platform-2", "authorization"),
        vec![format!("Bearer {PLATFORM_KEY}")]
    );
    let (_, status) = stack.gate.admin_get("/status").await;
    let status: Value = serde_json::from_str(&status).unwrap();
    let platform_status = &status["provider_credentials"]["credentials"][1];
    assert_eq!(platform_status["loaded"], true, "{status}");
    assert_eq!(
        platform_status["last_read"]["error"], "unreadable",
        "{status}"
    );

    // The audit names the credential id; the access log carries it from the metadata.
    let lines = stack.gate.audit_lines();
    let allowed: Vec<&Value> = lines.iter().filter(|e| e["decision"] == "allow").collect();
    assert!(
        allowed.iter().all(|e| e["credential"].is_string()),
        "{allowed:?}"
    );
    let entry = stack
        .envoy
        .access_log_entry("an injected request", |e| {
            e["credential"] == "openai-platform"
        })
        .await;
    assert_eq!(entry["decision"], "allow");

    assert_no_leak(
        &stack,
        &[RESEARCH_KEY_1, RESEARCH_KEY_2, PLATFORM_KEY, CALLER_KEY],
        &[],
    )
    .await;
}

/// Seconds until `probe` (polled every 25 ms) holds; panics after 5 s.
async fn visible_within<F, Fut>(what: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if probe().await {
            let took = started.elapsed();
            eprintln!("{what}: visible after {took:?}");
            return took;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: not visible after 5 s");
}

/// Keys issued, used, expired, revoked and rotated with the CLI while the server runs, each
/// visible through Envoy within a second; tampered, truncated and other-prefix keys refused
/// with their reasons; the upstream gets the gateway's provider key, never the caller's key.
#[tokio::test]
async fn e2e_api_keys_issue_use_expire_revoke_rotate() {
    let setup = Setup::new();
    let stack = start(&setup).await;
    let client = stack.client_without_certificate();
    let send = |tag: String, key: String| {
        let client = client.clone();
        async move {
            chat(
                &client,
                &tag,
                &[("authorization", &format!("Bearer {key}"))],
            )
            .await
        }
    };

    let issue = |expires: &str| {
        setup.keys(&[
            "issue",
            "--principal",
            r#"App::"notebook-alice""#,
            "--groups",
            "notebooks",
            "--owner",
            "alice@example.com",
            "--expires",
            expires,
        ])
    };
    let key = issue("30d");
    assert!(key.starts_with("cgk_"), "{key}");
    let id = key[4..20].to_owned();
    let took = visible_within("issued key", || async {
        send("issued".into(), key.clone()).await.status() == StatusCode::OK
    })
    .await;
    assert!(took <= Duration::from_secs(1), "issued key took {took:?}");
    let seen = stack.upstream.requests_tagged("issued");
    let last = seen.last().unwrap();
    assert_eq!(
        last.header_all("authorization"),
        vec![format!("Bearer {PLATFORM_KEY}")]
    );
    assert_eq!(
        last.header_all("x-cedar-gate-principal"),
        vec![r#"App::"notebook-alice""#.to_owned()]
    );
    // The audit is written off the request path: wait for this decision's event.
    let decision_id = last.header_all("x-cedar-gate-decision-id").remove(0);
    let event = stack.gate.audit_event(&decision_id).await;
    assert_eq!(event["auth_method"], "api_key");
    assert_eq!(event["api_key_id"], id.as_str());
    assert_eq!(event["credential"], "openai-platform");

    // Tampered, truncated, other prefix, unknown id: 401 with the reason.
    let secret = &key[21..];
    let flipped = if secret.starts_with('A') { "B" } else { "A" };
    let tampered = format!("cgk_{id}_{flipped}{}", &secret[1..]);
    for (what, value, reason) in [
        ("tampered", tampered.clone(), "api_key_wrong_secret"),
        (
            "truncated",
            key[..key.len() - 5].to_owned(),
            "api_key_malformed",
        ),
        (
            "unknown",
            format!("cgk_0123456789abcdef_{secret}"),
            "api_key_unknown",
        ),
    ] {
        let (status, body_reason, challenge) = reason_of(send(what.into(), value).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(body_reason, "invalid_identity", "{what}");
        assert!(
            challenge.contains(&format!("error_description=\"{reason}\"")),
            "{what}: {challenge}"
        );
    }
    // Another prefix is not our key: on this route it is a raw provider key.
    let (status, reason, _) =
        reason_of(send("other-prefix".into(), format!("sk_{id}_{secret}")).await).await;
    assert_eq!(
        (status, reason.as_str()),
        (StatusCode::FORBIDDEN, "provider_credential_presented")
    );

    // Expiry: a 2-second key works, then is refused.
    let short = issue("2s");
    visible_within("short key", || async {
        send("short".into(), short.clone()).await.status() == StatusCode::OK
    })
    .await;
    visible_within("expired key refused", || async {
        let (_, _, challenge) = reason_of(send("short-expired".into(), short.clone()).await).await;
        challenge.contains("api_key_expired")
    })
    .await;

    // Rotation without overlap: the old secret stops within a second, the new one works.
    let rotated = setup.keys(&["rotate", &id, "--overlap", "0s"]);
    let took = visible_within("rotation", || async {
        let (_, _, challenge) = reason_of(send("old-secret".into(), key.clone()).await).await;
        challenge.contains("api_key_wrong_secret")
    })
    .await;
    assert!(took <= Duration::from_secs(1), "rotation took {took:?}");
    assert_eq!(
        send("rotated".into(), rotated.clone()).await.status(),
        StatusCode::OK
    );

    // Revocation: refused within a second.
    setup.keys(&["revoke", &id]);
    let took = visible_within("revocation", || async {
        let (_, _, challenge) = reason_of(send("revoked".into(), rotated.clone()).await).await;
        challenge.contains("api_key_revoked")
    })
    .await;
    assert!(took <= Duration::from_secs(1), "revocation took {took:?}");

    let (_, metrics) = stack.gate.admin_get("/metrics").await;
    for needle in [
        r#"cedar_gate_api_key_failures_total{reason="api_key_wrong_secret"}"#,
        r#"cedar_gate_api_key_failures_total{reason="api_key_revoked"}"#,
        r#"cedar_gate_api_keys{state="revoked"} 1"#,
        "cedar_gate_api_keys_expiring_soon 0",
    ] {
        assert!(metrics.contains(needle), "{needle}\n{metrics}");
    }
    // The key list names ids and owners, never a secret.
    let listed = setup.keys(&["list"]);
    assert!(
        listed.contains(&id) && listed.contains("revoked"),
        "{listed}"
    );

    // No upstream request ever carried a gateway key.
    for r in stack.upstream.requests() {
        for (_, v) in r.headers.iter() {
            assert!(
                !String::from_utf8_lossy(v.as_bytes()).contains("cgk_"),
                "{r:?}"
            );
        }
    }
    assert_no_leak(
        &stack,
        &[PLATFORM_KEY, RESEARCH_KEY_1],
        &[&key, &rotated, &short, &tampered],
    )
    .await;
}

/// The official OpenAI Python SDK as the client: a gateway-issued key as its `api_key`,
/// Envoy as its `base_url`; the upstream gets the gateway's provider key.
#[tokio::test]
async fn e2e_openai_sdk_with_a_gateway_key() {
    let setup = Setup::new();
    let stack = start(&setup).await;
    let key = setup.keys(&[
        "issue",
        "--principal",
        r#"App::"ci-job""#,
        "--groups",
        "notebooks",
        "--owner",
        "ci@example.com",
        "--expires",
        "1d",
    ]);
    // The server was ready before the key existed: wait for the store change.
    let probe = stack.client_without_certificate();
    visible_within("issued key", || async {
        chat(
            &probe,
            "probe",
            &[("authorization", &format!("Bearer {key}"))],
        )
        .await
        .status()
            == StatusCode::OK
    })
    .await;
    let ca = stack.pki.dir().join("ca.crt");
    let script = r#"
import json, os, sys
import openai
client = openai.OpenAI(
    api_key=os.environ["GATEWAY_KEY"],
    base_url=os.environ["BASE_URL"],
    http_client=openai.DefaultHttpxClient(verify=os.environ["CA"]),
    default_headers={"x-test-id": "openai-sdk"},
    max_retries=0,
)
raw = client.chat.completions.with_raw_response.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
ok = raw.status_code
try:
    client.with_options(api_key="cgk_0123456789abcdef_" + "A" * 43).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    refused = None
except openai.AuthenticationError as e:
    refused = e.status_code
print(json.dumps({"ok": ok, "refused": refused, "version": openai.__version__}))
"#;
    let python = crate::common::pyrouter::router_python();
    let (base_url, ca_env, key_env) = (format!("{}/v1", probe.base_url()), ca.clone(), key.clone());
    // Off the test's runtime thread: the upstream answering the SDK runs on it.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg("-c")
            .arg(script)
            .env("GATEWAY_KEY", &key_env)
            .env("BASE_URL", base_url)
            .env("CA", &ca_env)
            .env("NO_PROXY", "*")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openai SDK script failed (run `make .venv` for the SDK): {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stack.gate.logs()
    );
    let result: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["ok"], 200, "{result}");
    assert_eq!(result["refused"], 401, "{result}");
    let seen = stack.upstream.requests_tagged("openai-sdk");
    assert_eq!(seen.len(), 1, "only the allowed call reaches the upstream");
    assert_eq!(
        seen[0].header_all("authorization"),
        vec![format!("Bearer {PLATFORM_KEY}")]
    );
    assert!(
        seen[0]
            .header("user-agent")
            .unwrap_or_default()
            .contains("OpenAI"),
        "{:?}",
        seen[0].headers
    );
    eprintln!("OpenAI SDK {}", result["version"]);
}

/// The encodings of `secret` a log pipeline might produce.
fn encodings(secret: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let b = secret.as_bytes();
    vec![
        secret.to_owned(),
        STANDARD.encode(b),
        STANDARD_NO_PAD.encode(b),
        URL_SAFE.encode(b),
        URL_SAFE_NO_PAD.encode(b),
        percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
        format!("Bearer {secret}"),
    ]
}

/// Searches every log line (cedar-gate's stdout and stderr, Envoy's log and access log), every
/// audit line, `/status`, `/metrics` and the dynamic metadata of a Check carrying each key for
/// every secret and its encodings. `keys` are gateway API keys: their secret part is searched
/// too (the id is not secret and is meant to appear).
async fn assert_no_leak(stack: &Stack, provider_secrets: &[&str], keys: &[&str]) {
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    let mut haystacks: Vec<(String, String)> = vec![
        ("cedar-gate logs".into(), stack.gate.logs()),
        (
            "audit".into(),
            std::fs::read_to_string(stack.gate.audit_path()).unwrap_or_default(),
        ),
        ("envoy logs".into(), stack.envoy.logs()),
        ("status".into(), stack.gate.admin_get("/status").await.1),
        ("metrics".into(), stack.gate.admin_get("/metrics").await.1),
    ];
    // Dynamic metadata of Checks sent straight to cedar-gate with each key.
    let mut client = AuthorizationClient::new(
        crate::common::grpc_channel(stack.gate.grpc_addr(), Duration::from_secs(5)).await,
    );
    let mut presented: Vec<String> = keys.iter().map(|k| format!("Bearer {k}")).collect();
    presented.push(String::new());
    for (i, authorization) in presented.iter().enumerate() {
        let body = chat_body().to_string();
        let mut headers = vec![("content-type", "application/json")];
        if !authorization.is_empty() {
            headers.push(("authorization", authorization.as_str()));
        }
        let mut req = crate::common::check::request(
            &format!("leak-{i}"),
            RESEARCH,
            "POST",
            "/v1/chat/completions",
            &headers,
        );
        crate::common::check::http_mut(&mut req).body = body;
        let resp = client.check(req).await.unwrap().into_inner();
        haystacks.push((
            format!("check {i} metadata"),
            format!("{:?}", resp.dynamic_metadata),
        ));
    }
    let mut needles: Vec<String> = Vec::new();
    for s in provider_secrets {
        needles.extend(encodings(s));
    }
    for k in keys {
        needles.extend(encodings(k));
        if let Some(secret) = k.get(21..) {
            needles.extend(encodings(secret));
        }
    }
    let mut searched = 0usize;
    for (what, text) in &haystacks {
        assert!(
            !text.is_empty() || what.contains("envoy"),
            "{what} is empty: nothing searched"
        );
        for needle in &needles {
            assert!(
                !text.contains(needle.as_str()),
                "a secret ({} chars) found in {what}",
                needle.len()
            );
        }
        searched += text.lines().count();
    }
    eprintln!(
        "leak check: {} needles over {searched} lines in {} sources",
        needles.len(),
        haystacks.len()
    );
}
