//! The load generator's result: text for people, one JSON line for `scripts/bench.sh`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::{Args, Tally};

/// Throughput, latency and outcome counts of one measured run.
#[derive(Debug, Serialize)]
pub struct Report {
    label: String,
    scenario: &'static str,
    target: String,
    connections: usize,
    inflight: usize,
    elapsed_s: f64,
    requests: u64,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    mean_us: f64,
    allow: u64,
    deny: u64,
    /// Allows that set `authorization` upstream (an injected provider credential).
    injected: u64,
    /// gRPC status of each RPC (`OK` includes denials, which are normal answers).
    grpc_status: BTreeMap<String, u64>,
}

// === impl Report ===

impl Report {
    pub fn new(args: &Args, elapsed: Duration, tally: Tally) -> Self {
        let h = &tally.latency;
        let us = |nanos: u64| nanos as f64 / 1000.0;
        let requests = h.len();
        let secs = elapsed.as_secs_f64();
        Self {
            label: args.label.clone(),
            scenario: args.scenario.name(),
            target: args.target.to_string(),
            connections: args.connections,
            inflight: args.inflight,
            elapsed_s: secs,
            requests,
            rps: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
            allow: tally.allow,
            deny: tally.deny,
            injected: tally.injected,
            grpc_status: tally.statuses,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_text(&self) -> String {
        let statuses: Vec<String> = self
            .grpc_status
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{label} {scenario} -> {target} ({c} conn x {i} in flight)\n\
             \x20 requests   {n} in {t:.2} s = {rps:.0} /s\n\
             \x20 latency    p50 {p50:.1} us  p99 {p99:.1} us  p99.9 {p999:.1} us  max {max:.1} us  mean {mean:.1} us\n\
             \x20 decisions  allow {allow}  deny {deny}  (credential injected {injected})\n\
             \x20 grpc       {statuses}\n",
            label = self.label,
            scenario = self.scenario,
            target = self.target,
            c = self.connections,
            i = self.inflight,
            n = self.requests,
            t = self.elapsed_s,
            rps = self.rps,
            p50 = self.p50_us,
            p99 = self.p99_us,
            p999 = self.p999_us,
            max = self.max_us,
            mean = self.mean_us,
            allow = self.allow,
            deny = self.deny,
            injected = self.injected,
            statuses = statuses.join(" "),
        )
    }
}
