//! Instructions per `Check`, stage by stage, for the benchmark's request shapes: the
//! per-stage table of BENCHMARKS.md ("Per stage") comes from running this under
//! callgrind (`scripts/check_stages.sh`, or `make bench-stages`).
//!
//! ```sh
//! cargo build --release --example check_stages
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!   target/release/examples/check_stages --scenario spiffe-distinct --pass cold \
//!   --config GATE.yaml --policy-dir DIR --iters 1000
//! callgrind_annotate --inclusive=yes /tmp/cg.out | grep stage_
//! ```
//!
//! Each stage of the handler runs as its own batch over `--iters` prepared inputs, inside
//! a function named `stage_NN_<name>` that callgrind reports with its inclusive
//! instruction count (divide by `--iters`). The inputs are the load generator's requests
//! (`bench/loadgen/scenario.rs`, the same file), so the shapes are the benchmark's. Run
//! natively, it prints the wall-clock nanoseconds per stage instead (noisy here).
//!
//! `--pass cold`: every batch that touches a cache (token cache, decision cache, policy
//! slices) gets principals it has never seen, so identity verifies a fresh token and the
//! decision is a full Cedar evaluation. `--pass hot`: every request was asked once before
//! (with another request id), so caches answer, as in the `*-repeat` scenarios.
//! `--pass principal`: as `cold`, but every principal first asked one other question
//! (another path), so only the decision cache misses: one caller asking many questions.
//!
//! The last batch, `stage_99_handler`, is the whole `AuthzService::check` (without the
//! gRPC transport and the protobuf decode / encode): the stages should add up to about it;
//! what they miss (the outcome's bookkeeping inside `Gate::check`, drops) is the remainder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../bench/loadgen/scenario.rs"]
mod scenario;

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cedar_gate::classify::{self, Operation};
use cedar_gate::config::Config;
use cedar_gate::decide::raw::RawView;
use cedar_gate::decide::{Gate, Outcome, question};
use cedar_gate::identity::{Identity, Resolver};
use cedar_gate::policy::PolicyStore;
use cedar_gate::policy::cache;
use cedar_gate::policy::snapshot::Snapshot;
use cedar_gate::record::audit::{AuditEvent, AuditLog};
use cedar_gate::record::metrics;
use cedar_gate::request::HttpRequest;
use cedar_gate::vocab::AuthzRequest;
use cedar_gate::wire::lean::WireCheckRequest;
use cedar_gate::wire::response::{self, Encoded};
use cedar_gate::wire::service::AuthzService;
use clap::Parser;
use envoy_types::ext_authz::v3::pb::CheckRequest;
use prost::Message;
use scenario::{Params, Scenario};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Per-stage cost of one Check (see the module docs).
#[derive(Debug, Parser)]
struct Args {
    /// Request shape (the load generator's scenarios).
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// `cold`: fresh principals for every cache-touching batch; `hot`: every question
    /// asked once before.
    #[arg(long, value_enum, default_value = "cold")]
    pass: Pass,
    /// cedar-gate configuration (as `scripts/bench.sh` writes it).
    #[arg(long)]
    config: PathBuf,
    /// Policy directory.
    #[arg(long)]
    policy_dir: PathBuf,
    /// Bearer tokens (`loadgen mint-jwt`), for the `jwt-*` scenarios: at least 6 x
    /// `--iters` for a cold pass.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Requests per batch.
    #[arg(long, default_value_t = 1000)]
    iters: u64,
    /// Format the audit line on the request path (`AuditLog::record`) instead of
    /// handing the outcome to the writer thread (`AuditLog::record_check`, what the
    /// server does).
    #[arg(long)]
    audit_inline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Pass {
    Cold,
    Hot,
    /// As `cold` (every question new to the decision cache), but every principal asked
    /// one other question before (another path): what the per-principal caches (token,
    /// principal entities, context shapes) save when one caller asks many questions.
    Principal,
}

/// The path of a `--pass principal` warm-up question (allowed like the bench path).
const WARM_UP_PATH: &str = "/v1/warm-up";

/// `req` asking for `path` instead.
fn with_path(mut req: CheckRequest, path: &str) -> CheckRequest {
    let http = req
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .expect("bench requests are HTTP");
    http.path = path.to_owned();
    http.headers.insert(":path".to_owned(), path.to_owned());
    req
}

/// Everything the stages share.
struct Bench {
    config: Arc<Config>,
    snapshot: Arc<Snapshot>,
    gate: Gate,
    /// Identity resolution as the gate does it (its own token cache).
    resolver: Resolver,
    audit: AuditLog,
    service: AuthzService,
    now: SystemTime,
}

/// One batch's inputs: the wire bytes, the decoded message and the converted request.
struct Inputs {
    wire: Vec<Vec<u8>>,
    decoded: Vec<WireCheckRequest>,
    converted: Vec<HttpRequest>,
}

fn inputs(scenario: Scenario, params: &Params, seqs: std::ops::Range<u64>) -> Inputs {
    let built: Vec<CheckRequest> = seqs.map(|n| scenario.request(n, params)).collect();
    let wire = built.iter().map(Message::encode_to_vec).collect();
    let decoded: Vec<WireCheckRequest> = built.iter().map(WireCheckRequest::from).collect();
    let converted = decoded
        .iter()
        .map(|r| HttpRequest::try_from(r.clone()).unwrap())
        .collect();
    Inputs {
        wire,
        decoded,
        converted,
    }
}

// The stages, in handler order. `#[inline(never)]` keeps each one a symbol of its own, so
// callgrind's inclusive count for it is exactly that batch.

#[inline(never)]
fn stage_01_decode(wire: &[Vec<u8>]) -> Vec<WireCheckRequest> {
    wire.iter()
        .map(|b| WireCheckRequest::decode(b.as_slice()).unwrap())
        .collect()
}

/// `HttpRequest::try_from`, canonicalisation included (stage 03 is that part alone).
#[inline(never)]
fn stage_02_convert(reqs: Vec<WireCheckRequest>) -> Vec<HttpRequest> {
    reqs.into_iter()
        .map(|r| HttpRequest::try_from(r).unwrap())
        .collect()
}

/// The canonical path and host again, on converted requests: the same work as inside
/// stage 02 (the bench paths and hosts are canonical already, as most real ones are).
#[inline(never)]
fn stage_03_canonicalise(reqs: &mut [HttpRequest]) {
    for r in reqs {
        r.canonicalize();
    }
}

#[inline(never)]
fn stage_04_classify(
    b: &Bench,
    reqs: &[HttpRequest],
) -> Vec<Result<Vec<Operation>, classify::Refusal>> {
    reqs.iter()
        .map(|r| classify::classify(r, &b.config.routes))
        .collect()
}

/// Workload identity and, with issuers, the bearer token (verified, or from the token
/// cache).
#[inline(never)]
fn stage_05_identity(b: &Bench, reqs: &[HttpRequest]) -> Vec<Identity> {
    reqs.iter()
        .map(|r| b.resolver.resolve(r, b.now).unwrap())
        .collect()
}

/// The decision cache key: the request's own inputs, borrowed (`raw::RawView`). Before
/// issue 17 the key was the whole Cedar request (principal, context), built on every
/// Check; now that is built on a miss only (inside stage 07), as is the owned key
/// (`raw::RawQuestion`) that a miss inserts.
#[inline(never)]
fn stage_06_cache_key<'a>(
    b: &Bench,
    reqs: &'a [HttpRequest],
    ids: &'a [Identity],
    ops: &'a [Operation],
) -> Vec<RawView<'a>> {
    reqs.iter()
        .zip(ids)
        .zip(ops)
        .map(|((r, id), op)| RawView::new(r, id, op, b.config.identity.principal))
        .collect()
}

/// The decision cache: on a hit the lookup; on a miss the lookup, the Cedar request,
/// the evaluation (stage 08 measures it alone) and the insert.
#[inline(never)]
fn stage_07_decision_cache(
    b: &Bench,
    keys: Vec<RawView<'_>>,
    reqs: &[HttpRequest],
    ids: &[Identity],
    ops: &[Operation],
    principals: &[cedar_policy::EntityUid],
) -> Vec<cache::Decided> {
    let c = b.gate.cache().unwrap();
    let on_error = b.config.authorization.on_policy_error;
    let choice = b.config.identity.principal;
    keys.into_iter()
        .zip(reqs.iter().zip(ids).zip(ops).zip(principals))
        .map(|(k, (((r, id), op), uid))| {
            c.decide_raw(
                &b.snapshot,
                &k,
                uid,
                || question::authz_request_for(r, id, op, b.now, choice),
                on_error,
                id.valid_until(),
                b.now,
            )
        })
        .collect()
}

/// Cedar alone: schema-checked request, per-request entities, the policy slice,
/// `is_authorized`.
#[inline(never)]
fn stage_08_evaluate(b: &Bench, questions: &[AuthzRequest]) -> Vec<cache::Decided> {
    let on_error = b.config.authorization.on_policy_error;
    questions
        .iter()
        .map(|q| cache::evaluate(&b.snapshot, q, on_error))
        .collect()
}

/// The whole `Gate::check` (stages 04 to 07 plus the outcome's bookkeeping: decision id,
/// names, summary).
#[inline(never)]
fn stage_09_gate(b: &Bench, reqs: &[HttpRequest]) -> Vec<Outcome> {
    reqs.iter()
        .map(|r| b.gate.check(&b.snapshot, r, b.now))
        .collect()
}

#[inline(never)]
fn stage_10_response(b: &Bench, outcomes: &[Outcome], reqs: &[HttpRequest]) -> Vec<Encoded> {
    outcomes
        .iter()
        .zip(reqs)
        .map(|(o, r)| response::build(o, r, &b.config.response))
        .collect()
}

#[inline(never)]
fn stage_11_encode(answers: &[Encoded]) -> Vec<Vec<u8>> {
    // Since issue 17 the response is written as protobuf by stage 10; what is left is
    // the copy into tonic's frame (`wire::service`'s encoder).
    answers.iter().map(|a| a.as_bytes().to_vec()).collect()
}

/// The audit on the request path: the hand-off of the finished outcome and request to
/// the writer thread, which formats the line (its work is on its own thread, not counted
/// here; `--audit-inline` counts the formatting on the request path, as before issue 17).
#[inline(never)]
fn stage_12_audit(b: &Bench, outcomes: Vec<Outcome>, reqs: Vec<HttpRequest>, inline: bool) {
    for (o, r) in outcomes.into_iter().zip(reqs) {
        if inline {
            b.audit
                .record(&AuditEvent::new(&o, &r, b.now, Duration::from_micros(3)));
        } else {
            b.audit.record_check(o, r, b.now, Duration::from_micros(3));
        }
    }
}

#[inline(never)]
fn stage_13_metrics(outcomes: &[Outcome]) {
    for o in outcomes {
        metrics::record_check(&o.figures(Duration::from_micros(3)));
    }
}

/// The whole handler, `AuthzService::check`, as tonic calls it after decoding.
#[inline(never)]
fn stage_99_handler(b: &Bench, reqs: Vec<WireCheckRequest>) -> Vec<Encoded> {
    reqs.into_iter()
        .map(|r| b.service.check(r).unwrap())
        .collect()
}

/// Not a stage: asks every question twice, so that a hot pass finds each
/// decision cached and, from its first hit, the answer kept with it (the
/// steady state of a hit; the first hit of each decision also writes the
/// answer it keeps).
#[inline(never)]
fn warm(b: &Bench, reqs: Vec<CheckRequest>) {
    for _ in 0..2 {
        for r in &reqs {
            black_box(b.service.check(WireCheckRequest::from(r)).unwrap());
        }
    }
}

fn first_ops(classified: &[Result<Vec<Operation>, classify::Refusal>]) -> Vec<Operation> {
    classified
        .iter()
        .map(|c| {
            c.as_ref()
                .expect("the bench requests classify")
                .first()
                .cloned()
                .unwrap()
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let n = args.iters;
    let _prometheus = metrics::install();
    let config = Arc::new(Config::from_yaml(&std::fs::read_to_string(&args.config)?)?);
    let store = Arc::new(PolicyStore::new(args.policy_dir.clone()));
    store.reload()?;
    let snapshot = store.current().expect("a snapshot after reload");
    let audit = AuditLog::open(&config.audit)?;
    let gate = Gate::new(config.clone());
    let service = AuthzService::new(store.clone(), gate.clone(), audit.clone());
    let resolver = Resolver::new(Arc::new(config.identity.clone()));
    let bench = Bench {
        resolver,
        config,
        snapshot,
        gate,
        audit,
        service,
        now: SystemTime::now(),
    };
    let bearers = match &args.tokens {
        Some(path) => std::fs::read_to_string(path)?
            .lines()
            .filter(|l| !l.is_empty())
            .map(|t| format!("Bearer {}", t.trim()))
            .collect(),
        None => Vec::new(),
    };

    // Six ranges of sequence numbers. Cold: principals never repeat across ranges (the
    // scenario cycles over `principals`, here larger than 6 x iters). Hot: every range
    // asks range 0's questions again (principals = iters), after the warm-up.
    let cycle = match args.pass {
        Pass::Cold | Pass::Principal => 6 * n,
        Pass::Hot => n,
    };
    if args.scenario.needs_tokens() && (bearers.len() as u64) < cycle {
        anyhow::bail!("--tokens holds {} tokens, need {cycle}", bearers.len());
    }
    let params = Params::new(cycle, bearers);
    let range = |k: u64| match args.pass {
        Pass::Cold | Pass::Principal => k * n..(k + 1) * n,
        Pass::Hot => (k + 1) * n..(k + 2) * n,
    };
    if args.pass == Pass::Hot {
        let warmup: Vec<CheckRequest> = (0..n).map(|s| args.scenario.request(s, &params)).collect();
        // The bench's own resolver too (stage 05 uses it): its token cache, hot.
        for r in &warmup {
            let converted = HttpRequest::try_from(r.clone()).unwrap();
            black_box(bench.resolver.resolve(&converted, bench.now).unwrap());
        }
        warm(&bench, warmup);
    }
    if args.pass == Pass::Principal {
        let warmup: Vec<CheckRequest> = (0..cycle)
            .map(|s| with_path(args.scenario.request(s, &params), WARM_UP_PATH))
            .collect();
        for r in &warmup {
            let converted = HttpRequest::try_from(r.clone()).unwrap();
            black_box(bench.resolver.resolve(&converted, bench.now).unwrap());
        }
        warm(&bench, warmup);
    }
    let r0 = inputs(args.scenario, &params, range(0));
    let r1 = inputs(args.scenario, &params, range(1));
    let r2 = inputs(args.scenario, &params, range(2));
    let r3 = inputs(args.scenario, &params, range(3));
    let r4 = inputs(args.scenario, &params, range(4));
    let r5 = inputs(args.scenario, &params, range(5));

    let mut times: Vec<(&str, f64)> = Vec::new();
    let mut timed = |name: &'static str, start: Instant| {
        times.push((name, start.elapsed().as_nanos() as f64 / n as f64));
    };

    // Stateless stages on range 0.
    let t = Instant::now();
    let decoded = stage_01_decode(&r0.wire);
    timed("01 decode", t);
    let t = Instant::now();
    let converted = stage_02_convert(decoded);
    timed("02 convert (incl. 03)", t);
    let mut again = converted.clone();
    let t = Instant::now();
    stage_03_canonicalise(&mut again);
    timed("03 canonicalise", t);
    let t = Instant::now();
    let classified = stage_04_classify(&bench, &converted);
    timed("04 classify", t);
    let ops0 = first_ops(&classified);

    // Identity on range 1 (cold: tokens never verified before).
    let t = Instant::now();
    let ids1 = stage_05_identity(&bench, &r1.converted);
    timed("05 identity", t);

    // The Cedar question and the decision cache on range 2 (cold: never decided).
    let ops2 = first_ops(&classify_inputs(&bench, &r2.converted));
    let ids2 = identity_inputs(&bench, &r2.converted);
    let principals2: Vec<cedar_policy::EntityUid> = ids2
        .iter()
        .map(|id| {
            question::principal_specs(id, bench.config.identity.principal)
                .0
                .uid
        })
        .collect();
    let t = Instant::now();
    let keys2 = stage_06_cache_key(&bench, &r2.converted, &ids2, &ops2);
    timed("06 cache key", t);
    let t = Instant::now();
    let decided = stage_07_decision_cache(&bench, keys2, &r2.converted, &ids2, &ops2, &principals2);
    timed("07 decision cache", t);
    assert!(
        decided.iter().all(|d| d.decision.is_allow()),
        "the bench requests are allowed"
    );
    let hits = decided.iter().filter(|d| d.cache_hit).count();

    // Cedar alone on range 3 (cold: no policy slice for these principals yet).
    let ops3 = first_ops(&classify_inputs(&bench, &r3.converted));
    let ids3 = identity_inputs(&bench, &r3.converted);
    let questions3: Vec<AuthzRequest> = r3
        .converted
        .iter()
        .zip(&ids3)
        .zip(&ops3)
        .map(|((r, id), op)| {
            question::authz_request_for(r, id, op, bench.now, bench.config.identity.principal)
        })
        .collect();
    let t = Instant::now();
    let evaluated = stage_08_evaluate(&bench, &questions3);
    timed("08 evaluate", t);
    black_box(evaluated);

    // The whole gate on range 4.
    let t = Instant::now();
    let outcomes = stage_09_gate(&bench, &r4.converted);
    timed("09 Gate::check", t);
    assert!(outcomes.iter().all(|o| o.decision.is_allow()));
    let t = Instant::now();
    let answers = stage_10_response(&bench, &outcomes, &r4.converted);
    timed("10 response", t);
    let t = Instant::now();
    let bytes = stage_11_encode(&answers);
    timed("11 encode", t);
    black_box(bytes);
    let t = Instant::now();
    stage_13_metrics(&outcomes);
    timed("13 metrics", t);
    let t = Instant::now();
    stage_12_audit(&bench, outcomes, r4.converted, args.audit_inline);
    timed("12 audit", t);

    // The whole handler on range 5.
    let t = Instant::now();
    let handled = stage_99_handler(&bench, r5.decoded);
    timed("99 handler", t);
    assert!(handled.iter().all(|a| {
        let answer = a.decode().expect("the answer decodes");
        answer.status.is_some_and(|s| s.code == 0)
    }));

    println!(
        "check_stages {} {:?}: {n} requests per batch, decision cache hits in stage 07: {hits}",
        args.scenario.name(),
        args.pass
    );
    for (name, ns) in times {
        println!("  {name:<24} {ns:>9.0} ns");
    }
    black_box((
        again, ops0, ids1, r0.decoded, r1.wire, r2.wire, r3.wire, r4.wire, r5.wire,
    ));
    drop(bench.service);
    bench.audit.close();
    Ok(())
}

/// Stage 04's work outside any stage symbol (inputs for later stages).
fn classify_inputs(
    b: &Bench,
    reqs: &[HttpRequest],
) -> Vec<Result<Vec<Operation>, classify::Refusal>> {
    reqs.iter()
        .map(|r| classify::classify(r, &b.config.routes))
        .collect()
}

/// Stage 05's work outside any stage symbol (inputs for later stages). Note: with
/// tokens, this fills the token cache for these requests, which later stages on the same
/// range then hit, as the real handler would within one Check.
fn identity_inputs(b: &Bench, reqs: &[HttpRequest]) -> Vec<Identity> {
    reqs.iter()
        .map(|r| b.resolver.resolve(r, b.now).unwrap())
        .collect()
}
