//! Metric names and recording helpers. Labels are bounded enums only: never a
//! principal, a token or a free-form resource.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::gate::Outcome;

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
];

/// Histogram buckets in seconds: 5 µs to 100 ms.
const LATENCY_BUCKETS: [f64; 17] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_075, 0.000_1, 0.000_25, 0.000_5, 0.000_75,
    0.001, 0.002_5, 0.005, 0.007_5, 0.01, 0.025, 0.05, 0.1,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

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
    describe_gauge!(BUILD_INFO, "Build information.");
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Records one answered Check.
pub fn record_check(outcome: &Outcome, elapsed: Duration) {
    let decision = if outcome.decision.is_allow() {
        "allow"
    } else {
        "deny"
    };
    counter!(CHECKS, "decision" => decision, "reason" => outcome.decision.reason.as_str())
        .increment(1);
    histogram!(CHECK_DURATION).record(elapsed.as_secs_f64());
    if let Some(rejection) = &outcome.identity_error {
        counter!(IDENTITY_REJECTIONS, "reason" => rejection.code).increment(1);
    }
}

/// Records a Check that got no decision (`not_ready`, `invalid_request`).
pub fn record_check_error(reason: &'static str) {
    counter!(CHECK_ERRORS, "reason" => reason).increment(1);
}

/// Records a reload attempt.
pub fn record_reload(snapshot: Result<&crate::policy::Snapshot, ()>) {
    match snapshot {
        Ok(s) => {
            counter!(POLICY_RELOADS, "result" => "success").increment(1);
            gauge!(POLICY_GENERATION).set(s.generation as f64);
            gauge!(POLICIES_LOADED).set(s.policy_count() as f64);
            let at = s
                .loaded_at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            gauge!(POLICY_LAST_RELOAD).set(at);
        }
        Err(()) => counter!(POLICY_RELOADS, "result" => "failure").increment(1),
    }
}

/// Records the time one Cedar evaluation took.
pub fn record_evaluation(elapsed: Duration) {
    histogram!(EVALUATION_DURATION).record(elapsed.as_secs_f64());
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
