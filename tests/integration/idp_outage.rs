//! The identity provider fails after cedar-gate fetched its keys: it answers garbage, goes
//! down (connection refused), then hangs (accepts and never answers, or starts a body and
//! stalls). The real `cedar-gate serve` process runs as a child with its own metrics; the
//! IdP is the real HTTP JWKS server of `common/idp.rs`, refreshed every second.
//!
//! In every failure mode, as docs/tokens.md documents: tokens signed with the last good key
//! keep being accepted; `/readyz` stays 200 and gRPC health SERVING (readiness only waits
//! for the *first* key set of a required issuer); each failed fetch is counted in
//! `cedar_gate_jwks_refreshes_total{result="failure"}` and never as a success; and a Check
//! never waits on the network, an unknown `kid` included (it is refused at once and only
//! *asks* the refresh task for a fetch).

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use serde_json::json;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::check::{self, code, rejection};
use crate::common::idp::{Idp, JwksMode, SigningKey, now};
use crate::common::{CedarGate, GateOptions, eventually, grpc_channel};

/// The agent platform issuer the shipped `cedar/tokens.cedar` permits on `/v1/*`.
const AGENTS: &str = "https://agents.example.com";
const AUDIENCE: &str = "https://models.example.com";
/// A Check must be answered within this while the IdP misbehaves (debug build, shared
/// 2-core machine; a healthy Check takes milliseconds). The IdP fetch timeout is 5 s, so a
/// Check that waited on the network would take at least that long.
const CHECK_BOUND: Duration = Duration::from_secs(2);
/// Bound on waiting for a refresh attempt to be counted (refresh every 1 s; a hung fetch
/// gives up after cedar-gate's 5 s fetch timeout).
const REFRESH_WAIT: Duration = Duration::from_secs(20);
const OK: i32 = 0;
const HEALTH_SERVICE: &str = "envoy.service.auth.v3.Authorization";

/// cedar-gate with one required issuer whose JWKS is `jwks_url`, refreshed every second.
/// The verified-token cache is off so that every Check verifies against the key set in
/// force (a cached token would prove nothing about the keys being kept).
fn gate_config(jwks_url: &str) -> String {
    format!(
        "identity:
  trust_domains: [example.org]
  token_cache_capacity: 0
  issuers:
  - issuer: {AGENTS}
    jwks_url: {jwks_url}
    audiences: [\"{AUDIENCE}\"]
    algorithms: [RS256]
    entity_type: Agent
    groups_claim: groups
    max_lifetime_seconds: 900
    refresh_interval_seconds: 1
    min_refresh_interval_seconds: 1
logging:
  format: json
  level: info
"
    )
}

/// A fresh token (its own `jti`, so nothing about it can have been seen before) for an
/// approved agent, signed by `key`.
fn token(key: &SigningKey, jti: &str) -> String {
    let t = now();
    key.sign(&json!({
        "iss": AGENTS, "sub": "research-bot", "aud": AUDIENCE, "iat": t - 5, "exp": t + 300,
        "groups": ["approved-agents"], "jti": jti,
    }))
}

struct Probe {
    gate: CedarGate,
    authz: AuthorizationClient<Channel>,
    health: HealthClient<Channel>,
    checks: usize,
}

// === impl Probe ===

impl Probe {
    async fn new(gate: CedarGate) -> Self {
        let channel = grpc_channel(gate.grpc_addr(), Duration::from_secs(10)).await;
        Self {
            gate,
            authz: AuthorizationClient::new(channel.clone()),
            health: HealthClient::new(channel),
            checks: 0,
        }
    }

    /// Checks `GET /v1/models` with `Authorization: Bearer <token>`, asserting it is
    /// answered within [`CHECK_BOUND`].
    async fn check(&mut self, what: &str, token: &str) -> CheckResponse {
        self.checks += 1;
        let auth = format!("Bearer {token}");
        let id = format!("idp-outage-{}", self.checks);
        let req = check::request(&id, "", "GET", "/v1/models", &[("authorization", &auth)]);
        let started = Instant::now();
        let resp = tokio::time::timeout(CHECK_BOUND, self.authz.check(req))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{what}: no answer within {CHECK_BOUND:?}: the Check waited on the IdP\n{}",
                    self.gate.logs()
                )
            })
            .unwrap_or_else(|e| panic!("{what}: gRPC error {e:?}"))
            .into_inner();
        eprintln!("{what}: answered in {:?}", started.elapsed());
        resp
    }

    /// A fresh token signed with the last good key is allowed.
    async fn assert_last_good_key_accepted(&mut self, phase: &str, key: &SigningKey) {
        let jti = format!("{phase}-{}", self.checks);
        let resp = self.check(phase, &token(key, &jti)).await;
        assert_eq!(
            code(&resp),
            OK,
            "{phase}: a token signed with the last good key is refused: {resp:?}"
        );
    }

    /// A token whose `kid` the key set does not hold is refused at once (`unknown_key_id`).
    async fn assert_unknown_kid_refused(&mut self, phase: &str, key: &SigningKey) {
        let jti = format!("{phase}-unknown-{}", self.checks);
        let resp = self.check(phase, &token(key, &jti)).await;
        assert_eq!(rejection(&resp), "unknown_key_id", "{phase}");
    }

    /// `/readyz` 200 and gRPC health SERVING, each answered promptly.
    async fn assert_ready(&mut self, phase: &str) {
        let started = Instant::now();
        let (status, body) = self.gate.admin_get("/readyz").await;
        assert_eq!(status, 200, "{phase}: /readyz: {body}");
        let health = tokio::time::timeout(
            CHECK_BOUND,
            self.health.check(HealthCheckRequest {
                service: HEALTH_SERVICE.to_owned(),
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("{phase}: gRPC health not answered in time"))
        .unwrap();
        assert_eq!(
            health.into_inner().status(),
            ServingStatus::Serving,
            "{phase}"
        );
        assert!(
            started.elapsed() < CHECK_BOUND,
            "{phase}: readiness took {:?}",
            started.elapsed()
        );
    }

    /// `cedar_gate_jwks_refreshes_total{issuer=AGENTS, result}` (0 when absent).
    async fn refreshes(&self, result: &str) -> u64 {
        let (status, text) = self.gate.admin_get("/metrics").await;
        assert_eq!(status, 200);
        counter(
            &text,
            &format!("cedar_gate_jwks_refreshes_total{{issuer=\"{AGENTS}\",result=\"{result}\"}}"),
        )
    }

    /// Waits (bounded) for the failure of the first fetch the IdP sees from now on (the
    /// caller switched the mode before), asserting it was not counted as a success.
    /// The refresh task fetches one at a time and records each outcome before the next
    /// fetch starts, so once the IdP sees a new fetch the counters hold every earlier one.
    async fn next_fetch_fails(&self, phase: &str, idp: &Idp) {
        let fetched = idp.fetches();
        eventually(&format!("{phase}: a new fetch"), REFRESH_WAIT, || async {
            (idp.fetches() > fetched).then_some(())
        })
        .await;
        self.in_flight_fetch_fails(phase).await;
    }

    /// The fetch in flight now (or the next one) fails, and nothing succeeds meanwhile.
    async fn in_flight_fetch_fails(&self, phase: &str) {
        let (failures, successes) = (
            self.refreshes("failure").await,
            self.refreshes("success").await,
        );
        eventually(
            &format!("{phase}: a failed refresh"),
            REFRESH_WAIT,
            || async { (self.refreshes("failure").await > failures).then_some(()) },
        )
        .await;
        assert_eq!(
            self.refreshes("success").await,
            successes,
            "{phase}: a refresh was counted as a success"
        );
    }
}

/// The value of the Prometheus sample named exactly `series` (0 when absent).
fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Garbage a broken IdP (or something in front of it) might answer with.
fn garbage() -> Vec<(&'static str, JwksMode)> {
    let raw = |status, content_type, body: &[u8]| JwksMode::Raw {
        status,
        content_type,
        body: body.to_vec(),
    };
    let mut oversized = br#"{"keys": [], "pad": ""#.to_vec();
    oversized.extend(std::iter::repeat_n(b'x', 600 * 1024));
    oversized.extend_from_slice(br#""}"#);
    vec![
        (
            "not JSON",
            raw(200, "application/json", b"keys? what keys\n\x00\xff"),
        ),
        (
            "HTML error page with 500",
            raw(
                500,
                "text/html",
                b"<html><body><h1>500 Internal Server Error</h1></body></html>",
            ),
        ),
        (
            "HTML login page with 200",
            raw(200, "text/html", b"<!doctype html><form>sign in</form>"),
        ),
        (
            "wrong JSON: keys not an array",
            raw(200, "application/json", br#"{"keys": "k1"}"#),
        ),
        (
            "wrong JSON: an array",
            raw(200, "application/json", br#"[{"kty": "RSA"}]"#),
        ),
        (
            "wrong JSON: empty key set",
            raw(200, "application/json", br#"{"keys": []}"#),
        ),
        (
            "wrong JSON: only a symmetric key",
            raw(
                200,
                "application/json",
                br#"{"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]}"#,
            ),
        ),
        (
            "truncated JSON",
            raw(
                200,
                "application/json",
                br#"{"keys": [{"kty": "RSA", "kid": "k1", "n": "#,
            ),
        ),
        ("600 KiB document", raw(200, "application/json", &oversized)),
        ("empty 200", raw(200, "application/json", b"")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_garbage_outage_and_hang_keep_last_good_keys_and_never_block_checks() {
    let k1 = SigningKey::rsa_a("k1");
    // Key B under a kid the IdP does not publish yet: "a rotation nobody could fetch".
    let k2 = SigningKey::new(
        "k2",
        jsonwebtoken::Algorithm::RS256,
        crate::common::idp::pem::RSA_B,
    );
    let mut idp = Idp::start(&[&k1]).await;
    let gate = CedarGate::start_with(GateOptions {
        config: gate_config(&idp.jwks_url()),
        ..GateOptions::default()
    })
    .await;
    // `start_with` returned: /readyz is 200, so the required issuer's keys are loaded.
    let mut p = Probe::new(gate).await;
    assert!(idp.fetches() >= 1);
    assert!(p.refreshes("success").await >= 1);
    p.assert_ready("keys loaded").await;
    p.assert_last_good_key_accepted("keys loaded", &k1).await;
    p.assert_unknown_kid_refused("keys loaded", &k2).await;

    // (a) Garbage of every kind: each is a counted failure, the last good key stays.
    for (what, mode) in garbage() {
        idp.set_mode(mode);
        let phase = format!("garbage ({what})");
        p.next_fetch_fails(&phase, &idp).await;
        p.assert_last_good_key_accepted(&phase, &k1).await;
        p.assert_unknown_kid_refused(&phase, &k2).await;
        p.assert_ready(&phase).await;
    }

    // (b) Down: the port is closed, every fetch is refused at connect.
    // The IdP is not counting fetches any more, so: the first failure after the stop may
    // come from a fetch that was in flight; every one after it was refused at connect.
    idp.set_mode(JwksMode::Keys);
    idp.stop().await;
    let refused = tokio::net::TcpStream::connect(idp.addr()).await;
    assert!(refused.is_err(), "the IdP port still accepts connections");
    p.in_flight_fetch_fails("IdP down").await;
    p.in_flight_fetch_fails("IdP down").await;
    p.assert_last_good_key_accepted("IdP down", &k1).await;
    p.assert_unknown_kid_refused("IdP down", &k2).await;
    p.assert_ready("IdP down").await;

    // (c) Hanging: the IdP accepts and never answers (then: starts a body and stalls).
    // Each fetch hangs until cedar-gate's 5 s fetch timeout; meanwhile every Check, the
    // unknown `kid` ones that wake the refresh task included, is answered at once.
    for (what, mode) in [
        ("IdP hangs", JwksMode::Hang),
        ("IdP stalls mid-body", JwksMode::Stall),
    ] {
        idp.set_mode(mode);
        if !idp.is_running() {
            idp.restart().await;
        }
        let fetched = idp.fetches();
        eventually(
            &format!("{what}: a fetch is held"),
            REFRESH_WAIT,
            || async { (idp.fetches() > fetched).then_some(()) },
        )
        .await;
        // That fetch is hanging now; every earlier outcome is counted.
        let failures = p.refreshes("failure").await;
        let held_since = Instant::now();
        for _ in 0..3 {
            p.assert_last_good_key_accepted(what, &k1).await;
            p.assert_unknown_kid_refused(what, &k2).await;
            p.assert_ready(what).await;
        }
        assert_eq!(
            p.refreshes("failure").await,
            failures,
            "{what}: the held fetch ended within {:?}, before the probes were done; they \
             did not all run while it hung",
            held_since.elapsed()
        );
        // It gives up on its own (cedar-gate's 5 s fetch timeout) and is counted.
        p.in_flight_fetch_fails(what).await;
        p.assert_last_good_key_accepted(what, &k1).await;
        p.assert_ready(what).await;
    }

    // Recovery: the IdP publishes k1 and the rotated k2; the next refresh installs both.
    idp.set_keys(&[&k1, &k2]);
    idp.set_mode(JwksMode::Keys);
    let successes = p.refreshes("success").await;
    eventually(
        "a successful refresh after the outage",
        REFRESH_WAIT,
        || async { (p.refreshes("success").await > successes).then_some(()) },
    )
    .await;
    let resp = p.check("recovered", &token(&k2, "recovered-k2")).await;
    assert_eq!(
        code(&resp),
        OK,
        "the rotated key works once fetched: {resp:?}"
    );
    p.assert_last_good_key_accepted("recovered", &k1).await;
    p.assert_ready("recovered").await;

    // Each failure was logged, keeping the last good keys.
    let logs = p.gate.logs();
    assert!(
        logs.contains("issuer key refresh failed") && logs.contains("keeping_last_good"),
        "{logs}"
    );
}

/// The IdP hangs from the start, so the required issuer never gets a first key set: as
/// docs/tokens.md documents, `/readyz` is 503 naming the issuer and gRPC health is not
/// SERVING, while Checks are still answered at once (tokens of that issuer with
/// `keys_unavailable`, workloads as usual). Once the IdP answers, the server turns ready
/// by itself and the token is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_hanging_at_startup_holds_readiness_but_never_a_check() {
    let k1 = SigningKey::rsa_a("k1");
    let idp = Idp::start(&[&k1]).await;
    idp.set_mode(JwksMode::Hang);
    let gate = CedarGate::start_unready(GateOptions {
        config: gate_config(&idp.jwks_url()),
        ..GateOptions::default()
    })
    .await;
    let mut p = Probe::new(gate).await;
    eventually("the first fetch is held", REFRESH_WAIT, || async {
        (idp.fetches() >= 1).then_some(())
    })
    .await;

    let (status, body) = p.gate.admin_get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, format!("waiting for keys of issuer(s): {AGENTS}\n"));
    let health = p
        .health
        .check(HealthCheckRequest {
            service: HEALTH_SERVICE.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status(), ServingStatus::NotServing);
    let resp = p.check("no keys yet", &token(&k1, "startup-1")).await;
    assert_eq!(rejection(&resp), "keys_unavailable");
    let req = check::request(
        "idp-outage-workload",
        crate::common::ids::RESEARCH_AGENT,
        "GET",
        "/v1/models",
        &[],
    );
    let started = Instant::now();
    let resp = tokio::time::timeout(CHECK_BOUND, p.authz.check(req))
        .await
        .expect("a workload check is answered at once")
        .unwrap()
        .into_inner();
    assert_eq!(code(&resp), OK, "workload identities work meanwhile");
    eprintln!("workload check answered in {:?}", started.elapsed());
    // Those answers came while the first fetch still hung (5 s fetch timeout).
    assert_eq!(p.refreshes("failure").await, 0);
    assert_eq!(p.refreshes("success").await, 0);

    // The IdP recovers (the held request is released with a 503, the next fetch gets
    // the keys): ready by itself, and the token is accepted.
    idp.set_mode(JwksMode::Keys);
    eventually("ready once the keys arrive", REFRESH_WAIT, || async {
        (p.gate.admin_get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    eventually("gRPC health SERVING", REFRESH_WAIT, || {
        let mut health = p.health.clone();
        async move {
            let st = health
                .check(HealthCheckRequest {
                    service: HEALTH_SERVICE.to_owned(),
                })
                .await
                .ok()?;
            (st.into_inner().status() == ServingStatus::Serving).then_some(())
        }
    })
    .await;
    p.assert_last_good_key_accepted("keys arrived", &k1).await;
}
