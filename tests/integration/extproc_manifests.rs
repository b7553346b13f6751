//! The shipped ext_proc manifests agree with the shipped Envoy config (which the e2e tests
//! run): fail closed, the same processing modes, the mode override cedar-gate relies on,
//! the identity attributes; and the Envoy Gateway policy says the same in its own API.

use serde::Deserialize;
use serde_json::Value;

use crate::common::repo_path;

fn yaml(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_path(path)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The ext_proc filter of the shipped `envoy/envoy.yaml`.
fn shipped_ext_proc() -> Value {
    let envoy = &yaml("envoy/envoy.yaml")[0];
    let hcm = &envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let filters = hcm["http_filters"].as_array().unwrap();
    let names: Vec<&str> = filters.iter().filter_map(|f| f["name"].as_str()).collect();
    // After ext_authz (a refused request is never processed), before the router.
    assert_eq!(
        names,
        [
            "envoy.filters.http.ext_authz",
            "envoy.filters.http.ext_proc",
            "envoy.filters.http.router"
        ]
    );
    let ext_proc = &filters[1];
    // Off by default, on for the MCP and model-list routes only.
    assert_eq!(ext_proc["disabled"], true);
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap();
    let enabled: Vec<String> = routes
        .iter()
        .filter(|r| r["typed_per_filter_config"]["envoy.filters.http.ext_proc"].is_object())
        .map(|r| r["match"].to_string())
        .collect();
    assert_eq!(enabled.len(), 2, "{enabled:?}");
    assert!(enabled[0].contains("/mcp/") && enabled[1].contains("/v1/models"));
    ext_proc["typed_config"].clone()
}

#[test]
fn list_filter_manifests_fail_closed_and_agree() {
    let shipped = shipped_ext_proc();
    assert_eq!(shipped["failure_mode_allow"], false);
    assert_eq!(shipped["allow_mode_override"], true);
    assert_eq!(shipped["processing_mode"]["response_body_mode"], "NONE");
    assert_eq!(shipped["processing_mode"]["request_body_mode"], "BUFFERED");

    // Istio: the same filter config, with Istio's cluster name.
    let istio = &yaml("envoy/istio/envoyfilter-list-filter.yaml")[0];
    let patch = &istio["spec"]["configPatches"][0];
    assert_eq!(patch["patch"]["operation"], "INSERT_BEFORE");
    let mut config = patch["patch"]["value"]["typed_config"].clone();
    let cluster = config["grpc_service"]["envoy_grpc"]["cluster_name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        cluster.starts_with("outbound|9191||cedar-gate."),
        "{cluster}"
    );
    config["grpc_service"]["envoy_grpc"]["cluster_name"] = "cedar_gate".into();
    assert_eq!(config, shipped);

    // Envoy Gateway: the same choices in its API.
    let eg = &yaml("envoy/envoy-gateway/envoyextensionpolicy.yaml")[0];
    assert_eq!(eg["kind"], "EnvoyExtensionPolicy");
    let ext_proc = &eg["spec"]["extProc"][0];
    assert_eq!(ext_proc["failOpen"], false);
    assert_eq!(ext_proc["backendRefs"][0]["port"], 9191);
    let mode = &ext_proc["processingMode"];
    assert_eq!(mode["allowModeOverride"], true);
    assert_eq!(mode["request"]["body"], "Buffered");
    assert_eq!(mode["request"]["attributes"], shipped["request_attributes"]);
    assert!(mode["response"].is_object() && mode["response"].get("body").is_none());
}
