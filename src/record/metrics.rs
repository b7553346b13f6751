//! Metric names and recording helpers. Labels are bounded enums only: never a
//! principal, a token or a free-form resource.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::vocab::Reason;

/// Checks answered, by `decision` and `reason`.
pub const CHECKS: &str = "cedar_gate_checks_total";
/// Time to answer a Check (handler), in seconds.
pub const CHECK_DURATION: &str = "cedar_gate_check_duration_seconds";
/// Time spent in Cedar evaluation for one Check (`snapshot.decide`), in seconds.
pub const EVALUATION_DURATION: &str = "cedar_gate_evaluation_duration_seconds";
/// Check requests that could not be understood, or arrived before readiness.
pub const CHECK_ERRORS: &str = "cedar_gate_check_errors_total";
/// Credentials refused, by `reason`.
pub const IDENTITY_REJECTIONS: &str = "cedar_gate_identity_rejections_total";
/// Policy reloads, by `result` (`success` / `failure`).
pub const POLICY_RELOADS: &str = "cedar_gate_policy_reloads_total";
/// Generation of the snapshot in force.
pub const POLICY_GENERATION: &str = "cedar_gate_policy_generation";
/// Policies in force.
pub const POLICIES_LOADED: &str = "cedar_gate_policies_loaded";
/// Unix time of the last successful reload.
pub const POLICY_LAST_RELOAD: &str = "cedar_gate_policy_last_reload_success_timestamp_seconds";
/// TLS certificate reloads on the gRPC listener, by `result`.
pub const TLS_RELOADS: &str = "cedar_gate_tls_reloads_total";
/// TLS handshakes on the gRPC listener that failed or timed out.
pub const TLS_HANDSHAKE_FAILURES: &str = "cedar_gate_tls_handshake_failures_total";
/// Unix time at which the served gRPC certificate expires.
pub const TLS_CERT_EXPIRY: &str = "cedar_gate_tls_certificate_expiry_timestamp_seconds";
/// Issuer key set fetches, by `issuer` (config-bounded) and `result`.
pub const JWKS_REFRESHES: &str = "cedar_gate_jwks_refreshes_total";
/// Build information (value 1, label `version`).
pub const BUILD_INFO: &str = "cedar_gate_build_info";
/// Decision cache lookups answered from the cache.
pub const CACHE_HITS: &str = "cedar_gate_decision_cache_hits_total";
/// Decision cache lookups that had to evaluate.
pub const CACHE_MISSES: &str = "cedar_gate_decision_cache_misses_total";
/// Decisions that skipped the cache because a policy reads per-request context.
pub const CACHE_BYPASSES: &str = "cedar_gate_decision_cache_bypass_total";
/// Decisions held (approximate).
pub const CACHE_ENTRIES: &str = "cedar_gate_decision_cache_entries";
/// Entries removed before being replaced or invalidated, by `cause` (`size`, `expired`).
pub const CACHE_EVICTIONS: &str = "cedar_gate_decision_cache_evictions_total";
/// Requests where the shadow set would have decided differently, by `action`
/// and `shadow_decision`.
pub const SHADOW_DISAGREEMENTS: &str = "cedar_gate_shadow_disagreements_total";
/// `@shadow` policies in the snapshot in force.
pub const SHADOW_POLICIES: &str = "cedar_gate_shadow_policies_loaded";
/// 1, labelled with the content hash (first 12 hex digits, label `hash`) of the
/// snapshot in force: exactly one series, written at scrape time.
pub const POLICY_SNAPSHOT: &str = "cedar_gate_policy_snapshot_info";
/// List responses filtered by ext_proc, by `list`.
pub const LIST_RESPONSES: &str = "cedar_gate_list_responses_filtered_total";
/// Listed items hidden by ext_proc, by `list`.
pub const LIST_ITEMS_HIDDEN: &str = "cedar_gate_list_items_hidden_total";
/// Listed items kept although the bare call was denied (conditional), by `list`.
pub const LIST_ITEMS_CONDITIONAL: &str = "cedar_gate_list_items_conditional_total";
/// The `list` label values of the list-filtering counters (`wire::extproc`'s
/// list kinds), registered at zero at start.
pub const LIST_LABELS: [&str; 5] = [
    "tools",
    "prompts",
    "resources",
    "resource_templates",
    "models",
];

/// Callers refused for presenting a provider key, by `route` (config-bounded).
pub const CREDENTIAL_PRESENTED: &str = "cedar_gate_provider_credential_presented_total";
/// Requests a provider credential was injected into, by `credential` (config-bounded).
pub const CREDENTIAL_INJECTIONS: &str = "cedar_gate_credential_injections_total";
/// Seconds since the provider credential in force was written, by `credential`
/// (scrape time).
pub const CREDENTIAL_AGE: &str = "cedar_gate_credential_age_seconds";
/// A provider credential's declared rotation period, by `credential` (scrape time).
pub const CREDENTIAL_ROTATION_PERIOD: &str = "cedar_gate_credential_rotation_period_seconds";
/// 1 when a provider credential has a value in force, by `credential` (scrape time).
pub const CREDENTIAL_LOADED: &str = "cedar_gate_credential_loaded";
/// 1 when the latest read of a credential file succeeded, by `credential` (scrape time).
pub const CREDENTIAL_READ_OK: &str = "cedar_gate_credential_read_ok";
/// Failed reads of a credential file, by `credential` (scrape time).
pub const CREDENTIAL_READ_FAILURES: &str = "cedar_gate_credential_read_failures_total";
/// Refused gateway API key presentations, by `reason`.
pub const API_KEY_FAILURES: &str = "cedar_gate_api_key_failures_total";
/// Gateway API keys in the store, by `state` (scrape time).
pub const API_KEYS: &str = "cedar_gate_api_keys";
/// Active gateway API keys expiring within 7 days (scrape time).
pub const API_KEYS_EXPIRING_SOON: &str = "cedar_gate_api_keys_expiring_soon";
/// 1 when the latest read of the API key store succeeded (scrape time).
pub const API_KEY_STORE_READ_OK: &str = "cedar_gate_api_key_store_read_ok";

/// Every metric this module defines (other modules add their own, e.g. the
/// decision cache and JWKS metrics). Alert rules are checked against it.
pub const ALL: &[&str] = &[
    CHECKS,
    CHECK_DURATION,
    EVALUATION_DURATION,
    CHECK_ERRORS,
    IDENTITY_REJECTIONS,
    POLICY_RELOADS,
    POLICY_GENERATION,
    POLICIES_LOADED,
    POLICY_LAST_RELOAD,
    TLS_RELOADS,
    TLS_HANDSHAKE_FAILURES,
    TLS_CERT_EXPIRY,
    JWKS_REFRESHES,
    BUILD_INFO,
    CACHE_HITS,
    CACHE_MISSES,
    CACHE_BYPASSES,
    CACHE_ENTRIES,
    CACHE_EVICTIONS,
    SHADOW_DISAGREEMENTS,
    SHADOW_POLICIES,
    POLICY_SNAPSHOT,
    LIST_RESPONSES,
    LIST_ITEMS_HIDDEN,
    LIST_ITEMS_CONDITIONAL,
    CREDENTIAL_AGE,
    CREDENTIAL_ROTATION_PERIOD,
    CREDENTIAL_LOADED,
    CREDENTIAL_READ_OK,
    CREDENTIAL_READ_FAILURES,
    CREDENTIAL_INJECTIONS,
    CREDENTIAL_PRESENTED,
    API_KEYS,
    API_KEYS_EXPIRING_SOON,
    API_KEY_STORE_READ_OK,
    API_KEY_FAILURES,
];

/// Histogram buckets in seconds: 5 µs to 100 ms.
const LATENCY_BUCKETS: [f64; 17] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_075, 0.000_1, 0.000_25, 0.000_5, 0.000_75,
    0.001, 0.002_5, 0.005, 0.007_5, 0.01, 0.025, 0.05, 0.1,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Handles of the series every Check touches, registered once when the
/// recorder is installed: recording through a handle is an atomic add, where
/// the `counter!` macro builds the key and looks it up in the registry on
/// every call (measurable at tens of thousands of Checks a second).
struct Hot {
    /// `checks_total` by [allow, deny] × [`Reason::ALL`]; only the pairs that
    /// occur are registered (an allow is always `policy_permit`, a deny never
    /// is), so `/metrics` shows no impossible series.
    checks: [Vec<Option<metrics::Counter>>; 2],
    duration: metrics::Histogram,
    evaluation: metrics::Histogram,
    cache_hits: metrics::Counter,
    cache_misses: metrics::Counter,
    cache_bypasses: metrics::Counter,
}

static HOT: OnceLock<Hot> = OnceLock::new();

fn hot() -> Hot {
    let checks = |decision: &'static str| {
        Reason::ALL
            .iter()
            .map(|r| {
                let possible = (*r == Reason::PolicyPermit) == (decision == "allow");
                possible.then(|| counter!(CHECKS, "decision" => decision, "reason" => r.as_str()))
            })
            .collect()
    };
    Hot {
        checks: [checks("allow"), checks("deny")],
        duration: histogram!(CHECK_DURATION),
        evaluation: histogram!(EVALUATION_DURATION),
        cache_hits: counter!(CACHE_HITS),
        cache_misses: counter!(CACHE_MISSES),
        cache_bypasses: counter!(CACHE_BYPASSES),
    }
}

/// Registers, at zero, every counter series whose labels are known at start, so
/// each family is on `/metrics` before its first event: `increase()` and `rate()`
/// then see the first failure (a series born at 1 shows no increase), and an
/// alert can tell "no failures" from "not scraped". `issuers` are the configured
/// token issuers (the JWKS label values), `identity_rejections` every code a refused
/// credential can be counted under (`identity::reasons::all`).
pub fn register_families(
    issuers: &[String],
    identity_rejections: impl IntoIterator<Item = &'static str>,
) {
    for reason in ["not_ready", "invalid_request"] {
        counter!(CHECK_ERRORS, "reason" => reason).increment(0);
    }
    for result in ["success", "failure"] {
        counter!(POLICY_RELOADS, "result" => result).increment(0);
        counter!(TLS_RELOADS, "result" => result).increment(0);
        for issuer in issuers {
            counter!(JWKS_REFRESHES, "issuer" => issuer.clone(), "result" => result).increment(0);
        }
    }
    counter!(TLS_HANDSHAKE_FAILURES).increment(0);
    for cause in ["size", "expired"] {
        counter!(CACHE_EVICTIONS, "cause" => cause).increment(0);
    }
    for reason in identity_rejections {
        counter!(IDENTITY_REJECTIONS, "reason" => reason).increment(0);
    }
    for list in LIST_LABELS {
        counter!(LIST_RESPONSES, "list" => list).increment(0);
        counter!(LIST_ITEMS_HIDDEN, "list" => list).increment(0);
        counter!(LIST_ITEMS_CONDITIONAL, "list" => list).increment(0);
    }
    // The schema's actions join when a snapshot with shadow policies loads
    // (`record_reload`); `other` is the label of every action it does not declare.
    register_shadow_actions(["other"]);
}

/// Registers the shadow disagreement series of `actions` (action ids the schema
/// declares, a finite set) at zero.
fn register_shadow_actions<'a>(actions: impl IntoIterator<Item = &'a str>) {
    for action in actions {
        for shadow in ["allow", "deny"] {
            counter!(SHADOW_DISAGREEMENTS, "action" => action.to_owned(), "shadow_decision" => shadow)
                .increment(0);
        }
    }
}

/// Installs the global Prometheus recorder once per process and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            let _ = HOT.set(hot());
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(CHECKS, "Checks answered, by decision and reason.");
    describe_histogram!(
        CHECK_DURATION,
        metrics::Unit::Seconds,
        "Time to answer a Check."
    );
    describe_histogram!(
        EVALUATION_DURATION,
        metrics::Unit::Seconds,
        "Time spent evaluating Cedar policies for one Check."
    );
    describe_counter!(
        CHECK_ERRORS,
        "Check requests that could not be answered with a decision, by reason."
    );
    describe_counter!(IDENTITY_REJECTIONS, "Credentials refused, by reason.");
    describe_counter!(POLICY_RELOADS, "Policy reloads, by result.");
    describe_gauge!(
        POLICY_GENERATION,
        "Generation of the policy snapshot in force."
    );
    describe_gauge!(POLICIES_LOADED, "Number of policies in force.");
    describe_gauge!(
        POLICY_LAST_RELOAD,
        "Unix time of the last successful policy reload."
    );
    describe_counter!(
        TLS_RELOADS,
        "TLS certificate reloads on the gRPC listener, by result."
    );
    describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        "TLS handshakes on the gRPC listener that failed or timed out."
    );
    describe_gauge!(
        TLS_CERT_EXPIRY,
        "Unix time at which the served gRPC certificate expires."
    );
    describe_counter!(
        JWKS_REFRESHES,
        "Issuer key set fetches, by issuer and result (a failure keeps the last good keys)."
    );
    describe_counter!(
        LIST_RESPONSES,
        "List responses (MCP tools/prompts/resources, model lists) filtered by ext_proc, by list."
    );
    describe_counter!(
        LIST_ITEMS_HIDDEN,
        "Listed items ext_proc removed because the caller may not use them, by list."
    );
    describe_counter!(
        LIST_ITEMS_CONDITIONAL,
        "Listed items ext_proc kept although the bare call was denied (another call might be allowed), by list."
    );
    describe_gauge!(BUILD_INFO, "Build information.");
    describe_lifecycle();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Records one filtered list response (ext_proc), how many items it hid and
/// how many it kept only because another call might use them.
pub fn record_list_filtered(list: &'static str, hidden: usize, conditional: usize) {
    counter!(LIST_RESPONSES, "list" => list).increment(1);
    counter!(LIST_ITEMS_HIDDEN, "list" => list).increment(hidden as u64);
    counter!(LIST_ITEMS_CONDITIONAL, "list" => list).increment(conditional as u64);
}

/// What one answered Check adds to the metrics: plain values, so recording
/// knows nothing of how they were decided.
#[derive(Debug, Clone, Copy)]
pub struct CheckFigures<'a> {
    /// Whether the request was allowed.
    pub allow: bool,
    /// Why.
    pub reason: Reason,
    /// The fixed code of a refused credential, when one was refused.
    pub identity_rejection: Option<&'static str>,
    /// The action label and the shadow set's answer (allow?), when the shadow
    /// set disagreed with the enforced one.
    pub shadow_disagreement: Option<(&'a str, bool)>,
    /// Time to answer.
    pub elapsed: Duration,
}

/// Records one answered Check.
pub fn record_check(check: &CheckFigures<'_>) {
    let allow = check.allow;
    let reason = check.reason;
    let handle = HOT.get().and_then(|hot| {
        let slot = Reason::ALL.iter().position(|r| *r == reason)?;
        Some((hot, hot.checks[usize::from(!allow)].get(slot)?.as_ref()?))
    });
    match handle {
        Some((hot, counter)) => {
            counter.increment(1);
            hot.duration.record(check.elapsed.as_secs_f64());
        }
        None => {
            let decision = if allow { "allow" } else { "deny" };
            counter!(CHECKS, "decision" => decision, "reason" => reason.as_str()).increment(1);
            histogram!(CHECK_DURATION).record(check.elapsed.as_secs_f64());
        }
    }
    if let Some(code) = check.identity_rejection {
        counter!(IDENTITY_REJECTIONS, "reason" => code).increment(1);
    }
    if let Some((action, shadow_allows)) = check.shadow_disagreement {
        record_shadow_disagreement(action, shadow_allows);
    }
}

/// Records a Check that got no decision (`not_ready`, `invalid_request`).
pub fn record_check_error(reason: &'static str) {
    counter!(CHECK_ERRORS, "reason" => reason).increment(1);
}

/// A loaded policy snapshot, as the metrics see it.
#[derive(Debug, Clone)]
pub struct SnapshotFigures {
    /// The snapshot's generation.
    pub generation: u64,
    /// Policies enforced.
    pub policies: usize,
    /// `@shadow` policies.
    pub shadow_policies: usize,
    /// The action ids the schema declares when there are `@shadow` policies (the
    /// labels of `shadow_disagreements_total`), empty otherwise.
    pub shadow_actions: Vec<String>,
    /// When it was loaded.
    pub loaded_at: std::time::SystemTime,
}

/// Records a reload attempt: the snapshot now served, or a failure.
pub fn record_reload(snapshot: Result<SnapshotFigures, ()>) {
    match snapshot {
        Ok(s) => {
            counter!(POLICY_RELOADS, "result" => "success").increment(1);
            gauge!(POLICY_GENERATION).set(s.generation as f64);
            gauge!(POLICIES_LOADED).set(s.policies as f64);
            let at = s
                .loaded_at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            gauge!(POLICY_LAST_RELOAD).set(at);
            gauge!(SHADOW_POLICIES).set(s.shadow_policies as f64);
            // The schema's actions join `other` (registered at start) once shadow
            // policies load: the labels a disagreement can carry.
            register_shadow_actions(s.shadow_actions.iter().map(String::as_str));
        }
        Err(()) => counter!(POLICY_RELOADS, "result" => "failure").increment(1),
    }
}

/// Records the time one Cedar evaluation took.
pub fn record_evaluation(elapsed: Duration) {
    match HOT.get() {
        Some(hot) => hot.evaluation.record(elapsed.as_secs_f64()),
        None => histogram!(EVALUATION_DURATION).record(elapsed.as_secs_f64()),
    }
}

/// Records a TLS certificate reload attempt that found changed files.
pub fn record_tls_reload(ok: bool) {
    let result = if ok { "success" } else { "failure" };
    counter!(TLS_RELOADS, "result" => result).increment(1);
}

/// Records a failed or timed-out TLS handshake.
pub fn record_tls_handshake_failure() {
    counter!(TLS_HANDSHAKE_FAILURES).increment(1);
}

/// Records when the served certificate expires (Unix seconds).
pub fn record_tls_expiry(not_after: i64) {
    gauge!(TLS_CERT_EXPIRY).set(not_after as f64);
}

/// Records one key set fetch for an issuer. The issuer label is bounded by the
/// config (only configured issuers are ever fetched).
pub fn record_jwks_refresh(issuer: &str, ok: bool) {
    let result = if ok { "success" } else { "failure" };
    counter!(JWKS_REFRESHES, "issuer" => issuer.to_owned(), "result" => result).increment(1);
}

fn describe_lifecycle() {
    describe_counter!(CACHE_HITS, "Decisions answered from the decision cache.");
    describe_counter!(CACHE_MISSES, "Decision cache misses (evaluated).");
    describe_counter!(
        CACHE_BYPASSES,
        "Decisions that skipped the cache because a policy reads per-request context."
    );
    describe_gauge!(CACHE_ENTRIES, "Decisions held in the cache (approximate).");
    describe_counter!(CACHE_EVICTIONS, "Decision cache evictions, by cause.");
    describe_counter!(
        SHADOW_DISAGREEMENTS,
        "Requests the shadow policy set would have decided differently, by action."
    );
    describe_gauge!(SHADOW_POLICIES, "Shadow policies in the snapshot in force.");
}

/// What `/metrics` adds to the recorder's text at scrape time: the snapshot
/// hash and the process's own figures. The hash is written here, not
/// recorded: a recorded gauge keeps a series for every hash ever in force, so
/// a process that reloads all year would grow without bound.
pub fn render_scrape_time(snapshot_hash: Option<&str>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if let Some(hash) = snapshot_hash {
        let short: String = hash.chars().take(12).collect();
        let _ = write!(
            out,
            "# HELP {POLICY_SNAPSHOT} The content hash of the policy snapshot in force (label hash).\n\
             # TYPE {POLICY_SNAPSHOT} gauge\n{POLICY_SNAPSHOT}{{hash=\"{short}\"}} 1\n"
        );
    }
    if let Some(process) = process::read() {
        process.render(&mut out);
    }
    out
}

/// The standard `process_*` metrics (as the Prometheus client libraries export
/// them), read from `/proc/self` at scrape time. Linux only: elsewhere
/// [`process::read`] returns `None` and `/metrics` has no `process_*` series.
mod process {
    use std::fmt::Write;

    /// Clock ticks per second of `/proc/<pid>/stat` times: the kernel's
    /// USER_HZ, fixed at 100 on every architecture Rust targets with Linux
    /// (it is part of the ABI, unlike the kernel's internal HZ).
    const USER_HZ: f64 = 100.0;

    /// One reading of the process.
    pub(super) struct Process {
        cpu_seconds: f64,
        resident_bytes: Option<u64>,
        virtual_bytes: Option<u64>,
        start_time_seconds: Option<f64>,
        threads: u64,
        open_fds: Option<u64>,
        max_fds: Option<u64>,
    }

    /// Reads `/proc/self`; `None` where there is no procfs.
    pub(super) fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
        // Field numbers of proc(5) minus 3 (pid, comm and state come first).
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let cpu_ticks = field(14)? + field(15)?;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|v| v * 1024)
        };
        let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|v| v.parse::<u64>().ok())
            });
        Some(Process {
            cpu_seconds: cpu_ticks as f64 / USER_HZ,
            resident_bytes: kib("VmRSS:"),
            virtual_bytes: kib("VmSize:"),
            start_time_seconds: boot_time
                .zip(field(22))
                .map(|(boot, ticks)| boot as f64 + ticks as f64 / USER_HZ),
            threads: field(20).unwrap_or(0),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as u64),
            max_fds,
        })
    }

    // === impl Process ===

    impl Process {
        /// Appends the Prometheus text of every figure that could be read.
        pub(super) fn render(&self, out: &mut String) {
            let mut metric = |name: &str, kind: &str, help: &str, value: Option<f64>| {
                if let Some(v) = value {
                    let _ = write!(
                        out,
                        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
                    );
                }
            };
            metric(
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                Some(self.cpu_seconds),
            );
            metric(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                self.resident_bytes.map(|v| v as f64),
            );
            metric(
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                self.virtual_bytes.map(|v| v as f64),
            );
            metric(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                self.start_time_seconds,
            );
            metric(
                "process_threads",
                "gauge",
                "Number of OS threads in the process.",
                Some(self.threads as f64),
            );
            metric(
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                self.open_fds.map(|v| v as f64),
            );
            metric(
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                self.max_fds.map(|v| v as f64),
            );
        }
    }
}

/// Records a decision cache lookup: `Some(hit)`, or `None` when bypassed.
pub fn record_cache_lookup(hit: Option<bool>) {
    match (hit, HOT.get()) {
        (Some(true), Some(hot)) => hot.cache_hits.increment(1),
        (Some(false), Some(hot)) => hot.cache_misses.increment(1),
        (None, Some(hot)) => hot.cache_bypasses.increment(1),
        (Some(true), None) => counter!(CACHE_HITS).increment(1),
        (Some(false), None) => counter!(CACHE_MISSES).increment(1),
        (None, None) => counter!(CACHE_BYPASSES).increment(1),
    }
}

/// Sets the cache size gauge.
pub fn record_cache_entries(entries: u64) {
    gauge!(CACHE_ENTRIES).set(entries as f64);
}

/// Counts one eviction (`size` or `expired`).
pub fn record_cache_eviction(cause: &'static str) {
    counter!(CACHE_EVICTIONS, "cause" => cause).increment(1);
}

/// Counts one shadow disagreement. `action` is an action id from the schema
/// (a finite set), never request data.
pub fn record_shadow_disagreement(action: &str, shadow_allows: bool) {
    let shadow = if shadow_allows { "allow" } else { "deny" };
    counter!(SHADOW_DISAGREEMENTS, "action" => action.to_owned(), "shadow_decision" => shadow)
        .increment(1);
}
