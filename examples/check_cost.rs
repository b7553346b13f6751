//! CPU cost of one whole `Check` in process, without the network: what the
//! handler adds on top of the gRPC floor, and where it goes.
//!
//! ```sh
//! cargo run --release --example check_cost
//! # under callgrind, for instruction counts per stage:
//! valgrind --tool=callgrind target/release/examples/check_cost --iters 20000
//! ```
//!
//! The requests are the load generator's `spiffe-repeat` shape (a workload
//! principal, a POST to a model route, a distinct `x-request-id` each), decided
//! with the shipped `cedar/` policies and the decision cache on, so after the
//! first request every decision is a cache hit, as in the hot benchmark.
//! Stages are timed separately: request conversion, the gate (identity,
//! classification, cache), the response, metrics and the audit line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use cedar_gate::config::Config;
use cedar_gate::decide::Gate;
use cedar_gate::policy::PolicyStore;
use cedar_gate::record::audit::{AuditEvent, AuditLog};
use cedar_gate::record::metrics;
use cedar_gate::request::HttpRequest;
use cedar_gate::wire::lean::WireCheckRequest;
use cedar_gate::wire::response;
use cedar_gate::wire::service::AuthzService;
use cedar_gate::wire::testkit::Check;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONFIG: &str = "identity:\n  trust_domains: [example.org]\n\
                      audit:\n  sink: file\n  path: /dev/null\nlogging:\n  level: warn\n";
const PRINCIPAL: &str = "spiffe://example.org/ns/agents/sa/research-agent";

fn request(seq: u64) -> CheckRequest {
    Check::get("/v1/models")
        .id(&format!("bench-{seq}"))
        .protocol("HTTP/2")
        .peer(PRINCIPAL)
        .peer_ip("127.0.0.1")
        .headers(&[
            (":authority", "models.example.com"),
            (":method", "GET"),
            (":path", "/v1/models"),
            (":scheme", "https"),
            ("accept", "application/json"),
            ("content-type", "application/json"),
            ("user-agent", "bench-agent/1.0"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", &format!("bench-{seq}")),
        ])
        .build()
}

/// Nanoseconds per call of `f` over `reqs`.
fn per_call(reqs: &[CheckRequest], mut f: impl FnMut(CheckRequest)) -> f64 {
    let start = Instant::now();
    for r in reqs {
        f(r.clone());
    }
    start.elapsed().as_nanos() as f64 / reqs.len() as f64
}

fn main() {
    let iters: usize = std::env::args()
        .skip_while(|a| a != "--iters")
        .nth(1)
        .map_or(200_000, |n| n.parse().unwrap());
    let _prometheus = metrics::install();
    let config = Arc::new(Config::from_yaml(CONFIG).unwrap());
    let store = Arc::new(PolicyStore::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("cedar"),
    ));
    store.reload().unwrap();
    let snapshot = store.current().unwrap();
    let audit = AuditLog::open(&config.audit).unwrap();
    let gate = Gate::new(config.clone());
    let service = AuthzService::new(store.clone(), gate.clone(), audit.clone());
    let reqs: Vec<CheckRequest> = (0..iters as u64).map(request).collect();

    // Warm the cache (and check the answer is the expected allow).
    let first = service
        .check(WireCheckRequest::from(&reqs[0]))
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(
        first.status.unwrap().code,
        0,
        "the bench request must be allowed"
    );

    let clone = per_call(&reqs, |r| drop(black_box(r)));
    let convert = per_call(&reqs, |r| {
        black_box(HttpRequest::try_from(r).unwrap());
    });
    let converted: Vec<HttpRequest> = reqs
        .iter()
        .map(|r| HttpRequest::try_from(r.clone()).unwrap())
        .collect();
    let now = SystemTime::now();
    let start = Instant::now();
    let outcomes: Vec<_> = converted
        .iter()
        .map(|r| gate.check(&snapshot, r, now))
        .collect();
    let decide = start.elapsed().as_nanos() as f64 / iters as f64;
    assert!(
        outcomes
            .iter()
            .all(|o| o.cache_hit && o.decision.is_allow())
    );
    let start = Instant::now();
    for (o, r) in outcomes.iter().zip(&converted) {
        black_box(response::build(o, r, &config.response));
    }
    let respond = start.elapsed().as_nanos() as f64 / iters as f64;
    let start = Instant::now();
    for o in &outcomes {
        metrics::record_check(&o.figures(std::time::Duration::from_micros(3)));
    }
    let metrics_ns = start.elapsed().as_nanos() as f64 / iters as f64;
    let start = Instant::now();
    for (o, r) in outcomes.iter().zip(&converted) {
        audit.record(&AuditEvent::new(
            o,
            r,
            now,
            std::time::Duration::from_micros(3),
        ));
    }
    let audit_ns = start.elapsed().as_nanos() as f64 / iters as f64;
    let whole = per_call(&reqs, |r| {
        black_box(service.check(WireCheckRequest::from(&r)).unwrap());
    });

    println!("per Check, cache hot, {iters} requests (ns):");
    println!("  clone of the input (subtracted) {clone:>8.0}");
    println!("  convert CheckRequest          {:>8.0}", convert - clone);
    println!("  gate (identity, classify, cache) {decide:>5.0}");
    println!("  response                      {respond:>8.0}");
    println!("  metrics                       {metrics_ns:>8.0}");
    println!("  audit line                    {audit_ns:>8.0}");
    println!("  whole handler                 {:>8.0}", whole - clone);
    drop(service);
    audit.close();
}
