//! What gateway credentials cost on the Check path (issue 14): `Gate::check` plus building
//! the answer to Envoy, for an OpenAI chat request on a provider route, in three cases:
//! 1. a SPIFFE workload, no credentials configured (the baseline);
//! 2. the same workload on a route that injects a provider credential;
//! 3. a gateway-issued API key as the principal, on the same injecting route.
//!
//! Run: `cargo run --release --example credentials_cost` (BENCHMARKS.md, "Gateway
//! credentials"). In-process, single thread, decision cache on (as deployed): what is
//! measured is the added work per Check (key lookup, SHA-256 and constant-time compare; the
//! credential selection and header building), not the gRPC round trip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cedar_gate::config::Config;
use cedar_gate::decide::Gate;
use cedar_gate::request::{HttpRequest, Peer};

const WORKLOAD: &str = "spiffe://example.org/ns/research/sa/agent";
const POLICIES: &str = r#"
@id("research") @credential("openai-research")
permit (principal in Group::"research", action in Action::"inference", resource);
@id("notebooks") @credential("openai-research")
permit (principal is App in Group::"notebooks", action in Action::"inference", resource)
when { context.auth.method == "api_key" };
"#;

/// Mean time per call of `f` over `iters` calls (after a warm-up of a tenth).
fn time(iters: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iters / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed() / iters
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    cedar_gate::policy::testkit::write_dir(
        &policies,
        "p.cedar",
        POLICIES,
        &[(WORKLOAD, "research")],
    );
    let snapshot = cedar_gate::policy::load_dir(&policies, 1).unwrap();
    std::fs::write(
        dir.path().join("openai.key"),
        "sk-proj-bench-0123456789abcdef",
    )
    .unwrap();
    let store = dir.path().join("keys.json");
    let mut out = Vec::new();
    cedar_gate::cli::keys::run_to(
        &cedar_gate::cli::keys::KeysArgs {
            store: Some(store.clone()),
            config: None,
            command: cedar_gate::cli::keys::KeysCommand::Issue(cedar_gate::cli::keys::IssueArgs {
                principal: r#"App::"notebook""#.into(),
                groups: vec!["notebooks".into()],
                owner: "bench".into(),
                expires: "30d".into(),
            }),
        },
        cedar_gate::identity::token::unix_now(SystemTime::now()),
        &mut out,
    )
    .unwrap();
    let key = String::from_utf8(out).unwrap().trim().to_owned();

    let base = "identity:\n  trust_domains: [example.org]\nroutes:\n  - { name: openai, path_prefix: /v1/, protocol: openai }\n";
    let creds = format!(
        "{base}provider_credentials:\n  credentials:\n    - {{ id: openai-research, header: bearer, file: {} }}\n  routes:\n    - {{ route: openai }}\napi_keys:\n  store: {}\n",
        dir.path().join("openai.key").display(),
        store.display()
    );
    let plain = Gate::new(Arc::new(Config::from_yaml(base).unwrap()));
    let injecting = Gate::new(Arc::new(Config::from_yaml(&creds).unwrap()));
    let body = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Summarise the quarterly report in three bullet points."}],"max_tokens":256}"#.to_vec();
    let req = |principal: &str, auth: Option<&str>| {
        let authorization = auth.map(|a| format!("Bearer {a}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &authorization {
            headers.push(("authorization", a));
        }
        let headers = cedar_gate::request::header_list(headers);
        HttpRequest {
            id: "bench".into(),
            method: "POST".into(),
            host: "api.openai.com".into(),
            path: "/v1/chat/completions".into(),
            scheme: "https".into(),
            headers,
            body: body.clone(),
            source: Peer {
                principal: principal.into(),
                ..Default::default()
            },
            ..Default::default()
        }
    };
    let workload_req = req(WORKLOAD, None);
    let key_req = req("", Some(&key));
    let now = SystemTime::now();
    for (gate, r, injected) in [
        (&plain, &workload_req, false),
        (&injecting, &workload_req, true),
        (&injecting, &key_req, true),
    ] {
        let o = gate.check(&snapshot, r, now);
        assert!(o.decision.is_allow(), "{:?}", o.decision);
        assert_eq!(o.credential.is_some(), injected);
    }
    println!(
        "profile: {}",
        if cfg!(debug_assertions) {
            "debug (unoptimized)"
        } else {
            "release"
        }
    );
    let iters = if cfg!(debug_assertions) {
        5_000
    } else {
        100_000
    };
    let run = |gate: &Gate, r: &HttpRequest| {
        time(iters, || {
            let o = gate.check(&snapshot, black_box(r), now);
            black_box(cedar_gate::wire::response::build(
                &o,
                r,
                &gate.config().response,
            ));
        })
    };
    // Interleaved rounds: the machine is shared, so compare figures from one run.
    let mut best = [Duration::MAX; 3];
    for _ in 0..3 {
        for (i, (gate, r)) in [
            (&plain, &workload_req),
            (&injecting, &workload_req),
            (&injecting, &key_req),
        ]
        .into_iter()
        .enumerate()
        {
            best[i] = best[i].min(run(gate, r));
        }
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let base = us(best[0]);
    for (label, d) in [
        ("SPIFFE workload, no credentials          ", best[0]),
        ("SPIFFE workload, credential injected     ", best[1]),
        ("gateway API key, credential injected     ", best[2]),
    ] {
        println!("{label} {:>8.2} µs  x{:.3}", us(d), us(d) / base);
    }
}
