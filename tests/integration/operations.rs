//! What operators rely on without reading code: the metrics a scrape returns, and the
//! shipped Prometheus rules, Istio and Envoy Gateway manifests and Helm defaults agreeing
//! with the server (metric names, ports, fail-closed settings).

use std::path::Path;

use cedar_gate::app::DEFAULT_GRPC_LISTEN;
use cedar_gate::config::Config;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use serde::Deserialize;
use serde_json::Value;

use crate::common::check::{self, http_mut};
use crate::common::ids::{RESEARCH_AGENT, ROGUE_AGENT};
use crate::common::inproc::{CONFIG, InProc};
use crate::common::repo_path;

/// Every YAML document in `path`, as JSON values.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn one_of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}");
    found[0]
}

fn grpc_port() -> u64 {
    DEFAULT_GRPC_LISTEN
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn check(principal: &str, path: &str) -> CheckRequest {
    check::request("ops-1", principal, "POST", path, &[])
}

#[tokio::test]
async fn metrics_cover_checks_latency_and_policy_state() {
    let s = InProc::shipped(CONFIG).await;
    s.check(check(RESEARCH_AGENT, "/v1/chat/completions")).await;
    s.check(check(ROGUE_AGENT, "/v1/chat/completions")).await;
    s.check(check("spiffe://evil.org/ns/a/sa/b", "/v1/chat/completions"))
        .await;

    let (_, text) = s.admin("/metrics").await;
    for needle in [
        "cedar_gate_checks_total{decision=\"allow\",reason=\"policy_permit\"}",
        "cedar_gate_checks_total{decision=\"deny\",reason=\"no_permit\"}",
        "cedar_gate_identity_rejections_total{reason=",
        // Buckets resolve microseconds (5 µs) up to tens of milliseconds (100 ms).
        "cedar_gate_check_duration_seconds_bucket{le=\"0.000005\"}",
        "cedar_gate_check_duration_seconds_bucket{le=\"0.1\"}",
        "cedar_gate_evaluation_duration_seconds_bucket{le=\"0.000005\"}",
        "cedar_gate_evaluation_duration_seconds_count",
        "cedar_gate_policy_reloads_total{result=\"success\"}",
        "cedar_gate_policy_generation",
        "cedar_gate_policies_loaded",
        "cedar_gate_policy_last_reload_success_timestamp_seconds",
        "cedar_gate_build_info{version=",
        "# HELP cedar_gate_checks_total",
        "# TYPE cedar_gate_check_duration_seconds histogram",
        // Families registered at start, at 0 until their first event, so `increase()`
        // sees the first one. The recorder is global to this test process: another
        // test's failed reload may already have counted, so the value is not checked.
        "cedar_gate_policy_reloads_total{result=\"failure\"} ",
        "cedar_gate_check_errors_total{reason=\"not_ready\"} ",
        "cedar_gate_tls_reloads_total{result=\"failure\"} ",
        "cedar_gate_decision_cache_evictions_total{cause=\"size\"} ",
        // The process itself (read from /proc at scrape time).
        "# TYPE process_cpu_seconds_total counter",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(
            text.contains(needle),
            "`{needle}` missing from /metrics:\n{text}"
        );
    }
    // Bounded labels only: no principal, path or SPIFFE id in any series.
    for secret in [RESEARCH_AGENT, ROGUE_AGENT, "evil.org", "/v1/chat"] {
        assert!(!text.contains(secret), "`{secret}` leaked into /metrics");
    }
    // One snapshot series, whatever was loaded before (bounded over the process's life).
    let snapshots = text
        .lines()
        .filter(|l| l.starts_with("cedar_gate_policy_snapshot_info{"))
        .count();
    assert_eq!(
        snapshots, 1,
        "one cedar_gate_policy_snapshot_info series:\n{text}"
    );
    // Series are pre-registered for speed, but never an impossible pair.
    for impossible in [
        "decision=\"allow\",reason=\"no_permit\"",
        "decision=\"deny\",reason=\"policy_permit\"",
    ] {
        assert!(!text.contains(impossible), "`{impossible}` in /metrics");
    }
    s.shutdown().await;
}

#[test]
fn prometheus_rules_are_well_formed_and_use_real_metrics() {
    let path = repo_path("deploy/prometheus/cedar-gate-rules.yaml");
    let docs = yaml_docs(&path);
    assert_eq!(docs.len(), 1);
    let groups = docs[0]["groups"].as_array().expect("groups");
    assert!(!groups.is_empty());
    let mut alerts = Vec::new();
    for group in groups {
        assert!(group["name"].is_string());
        for rule in group["rules"].as_array().expect("rules") {
            let expr = rule["expr"].as_str().expect("expr");
            assert!(!expr.trim().is_empty());
            match (rule["alert"].as_str(), rule["record"].as_str()) {
                (Some(alert), None) => {
                    assert!(rule["labels"]["severity"].is_string(), "{alert}: severity");
                    assert!(
                        rule["annotations"]["summary"].is_string(),
                        "{alert}: summary"
                    );
                    alerts.push(alert.to_owned());
                }
                (None, Some(record)) => assert!(record.starts_with("cedar_gate:"), "{record}"),
                _ => panic!("a rule is either an alert or a recording rule: {rule}"),
            }
            // Every metric the rule reads exists (a typo would silently never fire).
            for name in metric_names(expr) {
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(&name);
                assert!(
                    cedar_gate::record::metrics::ALL.contains(&base),
                    "rule reads unknown metric `{name}`: {expr}"
                );
            }
        }
    }
    // Alerts keep the deployment apart: every aggregation groups by namespace and job.
    for group in groups {
        for rule in group["rules"].as_array().expect("rules") {
            let expr = rule["expr"].as_str().expect("expr");
            if expr.contains("absent(") {
                continue;
            }
            for op in ["sum", "min", "max", "count", "avg"] {
                for (at, _) in expr.match_indices(op) {
                    let word_start = expr[..at]
                        .chars()
                        .next_back()
                        .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
                    let rest = expr[at + op.len()..].trim_start();
                    if word_start && (rest.starts_with('(') || rest.starts_with("by")) {
                        assert!(
                            rest.starts_with("by (namespace, job"),
                            "`{op}` without `by (namespace, job ...)`: {expr}"
                        );
                    }
                }
            }
        }
    }
    // The README promises alerts for the deny rate, p99 latency and reload failures, and
    // for cedar-gate down or absent.
    for expected in [
        "CedarGateHighDenyRate",
        "CedarGateSlowChecks",
        "CedarGatePolicyReloadFailed",
        "CedarGateDown",
        "CedarGateAbsent",
    ] {
        assert!(
            alerts.iter().any(|a| a == expected),
            "missing alert {expected}"
        );
    }
}

/// `cedar_gate_<name>` tokens (recording-rule names use `cedar_gate:` and are skipped).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("cedar_gate_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn istio_manifests_register_a_fail_closed_custom_provider() {
    let mesh = yaml_docs(&repo_path("envoy/istio/mesh-config.yaml"));
    let operator = one_of_kind(&mesh, "IstioOperator");
    let provider = &operator["spec"]["meshConfig"]["extensionProviders"][0];
    let grpc = &provider["envoyExtAuthzGrpc"];
    assert_eq!(grpc["port"], grpc_port());
    assert_eq!(grpc["failOpen"], false);
    assert!(grpc["includeRequestBodyInCheck"]["maxRequestBytes"].is_u64());

    let policies = yaml_docs(&repo_path("envoy/istio/authorizationpolicy.yaml"));
    let authz = one_of_kind(&policies, "AuthorizationPolicy");
    assert_eq!(authz["apiVersion"], "security.istio.io/v1");
    assert_eq!(authz["spec"]["action"], "CUSTOM");
    assert_eq!(authz["spec"]["provider"]["name"], provider["name"]);
    let peer = one_of_kind(&policies, "PeerAuthentication");
    assert_eq!(peer["spec"]["mtls"]["mode"], "STRICT");
}

/// Ambient mode: the waypoint runs the same CUSTOM provider, attached with `targetRefs`
/// (a `selector` would never run without sidecars).
#[test]
fn istio_ambient_waypoint_policy_uses_target_refs() {
    let mesh = yaml_docs(&repo_path("envoy/istio/mesh-config.yaml"));
    let operator = one_of_kind(&mesh, "IstioOperator");
    let provider = &operator["spec"]["meshConfig"]["extensionProviders"][0];
    let docs = yaml_docs(&repo_path("envoy/istio/authorizationpolicy-ambient.yaml"));
    let authz = one_of_kind(&docs, "AuthorizationPolicy");
    assert_eq!(authz["apiVersion"], "security.istio.io/v1");
    assert_eq!(authz["spec"]["action"], "CUSTOM");
    assert_eq!(authz["spec"]["provider"]["name"], provider["name"]);
    assert!(
        authz["spec"]["selector"].is_null(),
        "waypoint policies take no selector"
    );
    let target = &authz["spec"]["targetRefs"][0];
    assert_eq!(target["kind"], "Gateway");
    assert_eq!(target["group"], "gateway.networking.k8s.io");
}

/// The path the proxy routes on is the path cedar-gate decides on: every shipped proxy
/// config normalizes, merges slashes and unescapes encoded slashes before ext_authz, as
/// envoy/envoy.yaml does.
#[test]
fn mesh_manifests_set_the_safe_path_handling() {
    let mesh = yaml_docs(&repo_path("envoy/istio/mesh-config.yaml"));
    let operator = one_of_kind(&mesh, "IstioOperator");
    assert_eq!(
        operator["spec"]["meshConfig"]["pathNormalization"]["normalization"],
        "DECODE_AND_MERGE_SLASHES"
    );
    let docs = yaml_docs(&repo_path("envoy/envoy-gateway/clienttrafficpolicy.yaml"));
    let ctp = one_of_kind(&docs, "ClientTrafficPolicy");
    assert_eq!(ctp["apiVersion"], "gateway.envoyproxy.io/v1alpha1");
    assert_eq!(
        ctp["spec"]["path"]["escapedSlashesAction"],
        "UnescapeAndForward"
    );
    assert_eq!(ctp["spec"]["path"]["disableMergeSlashes"], false);
    assert_eq!(ctp["spec"]["targetRefs"][0]["kind"], "Gateway");
    let envoy = std::fs::read_to_string(repo_path("envoy/envoy.yaml")).unwrap();
    for setting in [
        "normalize_path: true",
        "merge_slashes: true",
        "path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD",
    ] {
        assert!(envoy.contains(setting), "envoy/envoy.yaml lost `{setting}`");
    }
}

/// On Kubernetes the sidecar reaches every replica (headless Service, STRICT_DNS),
/// health-checks them with gRPC health on the ext_authz service and ejects failing ones;
/// Envoy Gateway gets the same through `backendSettings`.
#[test]
fn kubernetes_envoy_configs_balance_and_health_check() {
    let docs = yaml_docs(&repo_path("envoy/sidecar.yaml"));
    let clusters = docs[0]["static_resources"]["clusters"].as_array().unwrap();
    let authz = clusters.iter().find(|c| c["name"] == "cedar_gate").unwrap();
    assert_eq!(authz["type"], "STRICT_DNS");
    assert_eq!(authz["lb_policy"], "ROUND_ROBIN");
    let address = authz["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"]["address"]
        .as_str()
        .unwrap();
    assert!(address.starts_with("cedar-gate-headless."), "{address}");
    let hc = &authz["health_checks"][0]["grpc_health_check"];
    assert_eq!(hc["service_name"], "envoy.service.auth.v3.Authorization");
    assert!(authz["outlier_detection"]["max_ejection_percent"].as_u64() <= Some(50));

    let docs = yaml_docs(&repo_path("envoy/envoy-gateway/securitypolicy.yaml"));
    let policy = one_of_kind(&docs, "SecurityPolicy");
    let hc = &policy["spec"]["extAuth"]["grpc"]["backendSettings"]["healthCheck"];
    assert_eq!(hc["active"]["type"], "GRPC");
    assert_eq!(
        hc["active"]["grpc"]["service"],
        "envoy.service.auth.v3.Authorization"
    );
    assert!(hc["passive"]["maxEjectionPercent"].as_u64() <= Some(50));
}

#[test]
fn envoy_gateway_security_policy_points_at_the_grpc_port() {
    let docs = yaml_docs(&repo_path("envoy/envoy-gateway/securitypolicy.yaml"));
    let policy = one_of_kind(&docs, "SecurityPolicy");
    assert_eq!(policy["apiVersion"], "gateway.envoyproxy.io/v1alpha1");
    let ext = &policy["spec"]["extAuth"];
    assert_eq!(ext["failOpen"], false);
    let backend = &ext["grpc"]["backendRefs"][0];
    assert_eq!(backend["port"], grpc_port());
    let grant = one_of_kind(&docs, "ReferenceGrant");
    assert_eq!(grant["metadata"]["namespace"], backend["namespace"]);
    assert_eq!(grant["spec"]["from"][0]["kind"], "SecurityPolicy");
}

#[test]
fn helm_defaults_match_the_server() {
    let values = yaml_docs(&repo_path("helm/cedar-gate/values.yaml"));
    assert_eq!(values[0]["ports"]["grpc"], grpc_port());
    // The config the chart renders must be one the server accepts (minus what the chart
    // sets itself: listen addresses, policy_dir, server.tls).
    let config = serde_norway::to_string(&values[0]["config"]).unwrap();
    Config::from_yaml(&config).unwrap_or_else(|e| panic!("chart default config refused: {e}"));
    let full = yaml_docs(&repo_path("helm/cedar-gate/ci/full-values.yaml"));
    let config = serde_norway::to_string(&full[0]["config"]).unwrap();
    Config::from_yaml(&config)
        .unwrap_or_else(|e| panic!("ci/full-values.yaml config refused: {e}"));
}

/// `server.max_message_bytes` is enforced: a Check larger than the limit is refused with a
/// gRPC error (Envoy then applies its fail-closed `failure_mode_allow: false`), a smaller
/// one is decided.
#[tokio::test]
async fn oversized_check_is_refused_by_the_message_limit() {
    let s = InProc::shipped(&format!("{CONFIG}server:\n  max_message_bytes: 4096\n")).await;
    s.check(check(RESEARCH_AGENT, "/v1/models")).await;
    let mut big = check(RESEARCH_AGENT, "/v1/chat/completions");
    http_mut(&mut big).body = "x".repeat(8192);
    let err = s.client().check(big).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    s.shutdown().await;
}
