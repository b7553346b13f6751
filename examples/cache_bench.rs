//! Decision cache hit path against full evaluation, in release mode:
//!
//! ```sh
//! cargo run --release --example cache_bench
//! ```
//!
//! Uses the shipped `cedar/` policies, and the same schema with N generated
//! group-scoped policies. Every request in a run has its own request id and
//! time (as real traffic does), so hits also exercise key normalization.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use cedar_gate::identity::spiffe::SpiffeId;
use cedar_gate::identity::{Identity, Workload, WorkloadSource};
use cedar_gate::policy::OnPolicyError;
use cedar_gate::policy::cache::{self, DecisionCache};
use cedar_gate::policy::{Snapshot, load_dir};
use cedar_gate::request::HttpRequest;
use cedar_gate::vocab::AuthzRequest;

const AGENT: &str = "spiffe://example.org/ns/agents/sa/research-agent";

fn requests(n: usize) -> Vec<AuthzRequest> {
    let identity = Identity {
        workload: Some(Workload {
            id: SpiffeId::parse(AGENT).unwrap(),
            source: WorkloadSource::PeerPrincipal,
            not_after: None,
        }),
        token: None,
        api_key: None,
    };
    (0..n)
        .map(|i| {
            let req = HttpRequest {
                id: format!("req-{i}"),
                method: "GET".into(),
                path: "/v1/models".into(),
                host: "models.example.com".into(),
                scheme: "https".into(),
                ..Default::default()
            };
            let op = cedar_gate::classify::http::classify(&req);
            let now = SystemTime::now() + Duration::from_millis(i as u64);
            cedar_gate::decide::question::authz_request(&req, &identity, &op, now)
        })
        .collect()
}

fn per_op(iters: u32, mut f: impl FnMut(u32)) -> f64 {
    for i in 0..iters / 10 {
        f(i);
    }
    let start = Instant::now();
    for i in 0..iters {
        f(i);
    }
    start.elapsed().as_nanos() as f64 / f64::from(iters)
}

fn measure(name: &str, snapshot: &Snapshot) {
    let reqs = requests(1024);
    let iters = 200_000;
    let eval = per_op(iters / 4, |i| {
        black_box(cache::evaluate(
            snapshot,
            &reqs[i as usize % reqs.len()],
            OnPolicyError::Deny,
        ));
    });
    let cache = DecisionCache::new(100_000, Duration::from_secs(60));
    let now = SystemTime::now();
    let hit = per_op(iters, |i| {
        let d = cache.decide(
            snapshot,
            &reqs[i as usize % reqs.len()],
            OnPolicyError::Deny,
            None,
            now,
        );
        black_box(d);
    });
    assert!(
        cache
            .decide(snapshot, &reqs[0], OnPolicyError::Deny, None, now)
            .cache_hit
    );
    println!(
        "{name:<28} policies {:>5}  evaluate {:>9.0} ns  cache hit {:>7.0} ns  ratio {:>5.1}x",
        snapshot.policy_count(),
        eval,
        hit,
        eval / hit
    );
}

fn generated(n: usize) -> Snapshot {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cedar");
    for entry in std::fs::read_dir(&root).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "@id(\"team-{i}\") permit (principal in Group::\"team-{i}\", action == Action::\"http\", resource) when {{ context.request.path like \"/team/{i}/*\" }};\n"
        ));
    }
    std::fs::write(dir.path().join("generated.cedar"), text).unwrap();
    load_dir(dir.path(), 1).unwrap()
}

fn main() {
    let shipped = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cedar"), 1).unwrap();
    measure("cedar/ (shipped)", &shipped);
    for n in [100, 1_000] {
        measure(&format!("cedar/ + {n} scoped permits"), &generated(n));
    }
}
