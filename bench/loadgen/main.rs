//! Load generator for ext_authz v3 `Check` over loopback gRPC.
//!
//! `--connections` HTTP/2 connections, each carrying `--inflight` concurrent requests
//! (one task per in-flight slot, each sending its next request as soon as the previous
//! answer arrives: closed loop). Runs for `--duration` or until `--requests` were sent,
//! after an unrecorded `--warmup`. Counts gRPC statuses, allow / deny decisions and the
//! allows that set `authorization` upstream (an injected provider credential), and prints
//! throughput and latency percentiles (`--json` for one machine-readable line).
//!
//! Only loopback targets are accepted: this tool must never load anything else.
//!
//! ```text
//! cargo run --release --example loadgen -- --target 127.0.0.1:9191 \
//!     --scenario spiffe-distinct --connections 2 --inflight 16 --duration 10s
//! ```
//!
//! The `jwt-*` scenarios send tokens signed beforehand by `loadgen mint-jwt` (see
//! [`jwt`]), so that signing is not measured; `api-key` sends keys issued beforehand by
//! `cedar-gate keys issue`.

mod jwt;
mod report;
mod scenario;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{CheckResponse, check_response};
use hdrhistogram::Histogram;
use tonic::transport::{Channel, Endpoint};

use report::Report;
use scenario::{Params, Scenario};

/// Drive ext_authz `Check` over loopback and report throughput and latency.
#[derive(Debug, Parser)]
#[command(name = "loadgen", args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// gRPC address of the ext_authz server (loopback only).
    #[arg(long, default_value = "127.0.0.1:9191")]
    target: SocketAddr,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Concurrent requests per connection.
    #[arg(long, default_value_t = 16)]
    inflight: usize,
    /// How long to measure (after the warm-up), e.g. `10s`, `500ms`, `2m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many measured requests instead (the duration still bounds the run).
    #[arg(long)]
    requests: Option<u64>,
    /// Unrecorded warm-up before measuring.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Request mix.
    #[arg(long, value_enum, default_value = "spiffe-distinct")]
    scenario: Scenario,
    /// Distinct principals for `spiffe-distinct`, `openai`, `mcp` and `credential` (ids
    /// `agent-0` .. `agent-{N-1}`) and `jwt-distinct` (tokens of `user-0` .. `user-{N-1}`).
    #[arg(long, default_value_t = 10_000)]
    principals: u64,
    /// Tokens for the `jwt-*` scenarios, one a line, as `loadgen mint-jwt` writes them
    /// (at least `--principals` of them for `jwt-distinct`); for `api-key`, gateway API keys
    /// as `cedar-gate keys issue` prints them (any number, cycled over).
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Label for the report (for example `cedar-gate` or `null`).
    #[arg(long, default_value = "target")]
    label: String,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
}

/// Tasks other than loading a target.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Sign RS256 tokens for the `jwt-*` scenarios and write them with their JWKS.
    MintJwt(jwt::MintArgs),
}

/// What one worker task measured.
struct Tally {
    latency: Histogram<u64>,
    statuses: BTreeMap<String, u64>,
    allow: u64,
    deny: u64,
    /// Allows whose answer sets `authorization` upstream: a provider credential injected.
    injected: u64,
}

// === impl Tally ===

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            // Nanoseconds, 1 ns to 60 s, 3 significant digits.
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3)?,
            statuses: BTreeMap::new(),
            allow: 0,
            deny: 0,
            injected: 0,
        })
    }

    fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.latency.add(&other.latency)?;
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        self.allow += other.allow;
        self.deny += other.deny;
        self.injected += other.injected;
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::MintJwt(mint)) = &args.command {
        return jwt::mint(mint);
    }
    if !args.target.ip().is_loopback() {
        bail!(
            "refusing to load {}: only loopback targets are allowed",
            args.target
        );
    }
    if args.connections == 0 || args.inflight == 0 {
        bail!("--connections and --inflight must be at least 1");
    }
    let params = Arc::new(params(&args)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(&args, params))?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// The scenario's inputs, prepared before any request is sent.
fn params(args: &Args) -> anyhow::Result<Params> {
    let bearers = match (&args.tokens, args.scenario.needs_tokens()) {
        (_, false) => Vec::new(),
        (None, true) => bail!(
            "--scenario {} needs --tokens (from `loadgen mint-jwt`, or for api-key from \
             `cedar-gate keys issue`)",
            args.scenario.name()
        ),
        (Some(path), true) => scenario::load_bearers(path)?,
    };
    if args.scenario == Scenario::JwtDistinct && (bearers.len() as u64) < args.principals {
        bail!(
            "--tokens holds {} tokens, fewer than --principals {}",
            bearers.len(),
            args.principals
        );
    }
    Ok(Params::new(args.principals, bearers))
}

async fn run(args: &Args, params: Arc<Params>) -> anyhow::Result<Report> {
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        // One `Endpoint::connect` is one HTTP/2 connection; clones of the channel share it.
        let channel = Endpoint::from_shared(format!("http://{}", args.target))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", args.target))?;
        channels.push(channel);
    }
    let seq = Arc::new(AtomicU64::new(0));

    // Warm-up: same traffic, nothing recorded.
    if !args.warmup.is_zero() {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = spawn_workers(args, &channels, &params, &seq, &stop, None, false);
        tokio::time::sleep(args.warmup).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await??;
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let budget = args.requests.map(|n| Arc::new(AtomicU64::new(n)));
    let started = Instant::now();
    let tasks = spawn_workers(args, &channels, &params, &seq, &stop, budget.clone(), true);
    let deadline = tokio::time::sleep(args.duration);
    tokio::pin!(deadline);
    // Stop at the deadline, or earlier once the request budget is spent.
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                if budget.as_ref().is_some_and(|b| b.load(Ordering::Relaxed) == 0) {
                    break;
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::new()?;
    for t in tasks {
        total.merge(t.await??)?;
    }
    let elapsed = started.elapsed();
    Ok(Report::new(args, elapsed, total))
}

fn spawn_workers(
    args: &Args,
    channels: &[Channel],
    params: &Arc<Params>,
    seq: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
    budget: Option<Arc<AtomicU64>>,
    record: bool,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<Tally>>> {
    let mut tasks = Vec::new();
    for channel in channels {
        for _ in 0..args.inflight {
            let mut client = AuthorizationClient::new(channel.clone());
            let (params, seq, stop, budget) =
                (params.clone(), seq.clone(), stop.clone(), budget.clone());
            let scenario = args.scenario;
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::new()?;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(b) = &budget
                        && b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                            n.checked_sub(1)
                        })
                        .is_err()
                    {
                        break;
                    }
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    let req = scenario.request(n, &params);
                    let t = Instant::now();
                    let result = client.check(req).await;
                    let elapsed = t.elapsed();
                    if !record {
                        continue;
                    }
                    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
                    tally.latency.saturating_record(nanos.max(1));
                    match result {
                        Ok(resp) => {
                            *tally.statuses.entry("OK".to_owned()).or_default() += 1;
                            // A Check answer with status code 0 is an allow; anything else
                            // (including an empty response) is a deny.
                            let allowed =
                                resp.get_ref().status.as_ref().is_some_and(|s| s.code == 0);
                            if allowed {
                                tally.allow += 1;
                                if sets_authorization(resp.get_ref()) {
                                    tally.injected += 1;
                                }
                            } else {
                                tally.deny += 1;
                            }
                        }
                        Err(status) => {
                            *tally
                                .statuses
                                .entry(format!("{:?}", status.code()))
                                .or_default() += 1;
                        }
                    }
                }
                Ok(tally)
            }));
        }
    }
    tasks
}

/// Whether an allow tells Envoy to set `authorization` on the upstream request. cedar-gate
/// sets it only to inject a provider credential (the caller's own is removed, never echoed),
/// so this counts injections; checked in every scenario, so the client's work is the same.
fn sets_authorization(resp: &CheckResponse) -> bool {
    let Some(check_response::HttpResponse::OkResponse(ok)) = &resp.http_response else {
        return false;
    };
    ok.headers.iter().any(|h| {
        h.header
            .as_ref()
            .is_some_and(|h| h.key.eq_ignore_ascii_case("authorization"))
    })
}

/// `10s`, `500ms`, `2m`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("not a duration: `{s}`"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in `{s}` (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}
