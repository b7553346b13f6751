//! ext_proc list filtering end to end, with the official MCP Python SDK on both ends
//! (`tests/mcp_sdk/e2e.py`): its Client (2026-07-28 and the 2025-11-25 handshake) talks
//! mTLS to a real Envoy running the shipped `envoy/envoy.yaml`, whose ext_authz and ext_proc
//! filters both call one cedar-gate (shipped routes and `cedar/` policies); upstream is the
//! SDK's MCPServer under uvicorn, answering `/mcp/github` with SSE streams and `/mcp/files`
//! with JSON. The research agent must see only the tools it may call, and a hidden tool
//! called by name must still be refused.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::ai::shipped_routes_yaml;
use crate::common::gate::DEFAULT_CONFIG;
use crate::common::ids::RESEARCH_AGENT;
use crate::common::pyrouter::{PyServer, Ready, router_python};
use crate::common::{CedarGate, Envoy, GateOptions, MtlsClient, TestPki, repo_path};

/// Runs the SDK client against `url` and returns what it saw.
fn sdk_client(url: &str, mode: &str, cert: &Path, key: &Path, ca: &Path) -> Value {
    let out = Command::new(router_python())
        .arg(repo_path("tests/mcp_sdk/e2e.py"))
        .args(["client", "--url", url, "--mode", mode, "--cert"])
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg("--ca")
        .arg(ca)
        .output()
        .expect("run the MCP SDK client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK client ({mode}, {url}) failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("client output ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_extproc_filters_lists_for_sdk_clients() {
    let pki = TestPki::new();
    // The SDK's MCPServer under uvicorn; it has no readiness route, so any answer will do.
    let server = PyServer::start(
        "MCP SDK server",
        "tests/mcp_sdk/e2e.py",
        |_| vec!["server".into()],
        Ready::AnyAnswer,
    )
    .await;
    let gate = CedarGate::start_with(GateOptions {
        // The shipped routes, and one more MCP server whose lists cannot be read.
        config: format!(
            "{DEFAULT_CONFIG}{}",
            shipped_routes_yaml().replacen(
                "routes:\n",
                "routes:\n- { path_prefix: /mcp/broken, protocol: mcp, server: broken }\n",
                1
            )
        ),
        ..GateOptions::default()
    })
    .await;
    let envoy = Envoy::start_config(
        &repo_path("envoy/envoy.yaml"),
        gate.grpc_addr(),
        server.addr(),
        &pki,
    )
    .await;
    let cert = pki.client(RESEARCH_AGENT);
    let ca = pki.dir().join("ca.crt");
    let base = format!("https://127.0.0.1:{}", envoy.listener_port());

    // The research agent's allow-list (cedar/ai.cedar, entities.json): search_issues,
    // create_issue, read_file; delete_repository is destructive (forbidden without a
    // delegating user), write_file and admin_shell are on no allow-list.
    let visible = json!(["create_issue", "read_file", "search_issues"]);
    for (path, transport) in [("/mcp/github", "sse"), ("/mcp/files", "json")] {
        for mode in ["2026-07-28", "legacy"] {
            let url = format!("{base}{path}");
            let got = tokio::task::spawn_blocking({
                let (url, cert_path, key_path, ca) = (
                    url.clone(),
                    cert.cert_path.clone(),
                    cert.key_path.clone(),
                    ca.clone(),
                );
                move || sdk_client(&url, mode, &cert_path, &key_path, &ca)
            })
            .await
            .unwrap();
            let audits: Vec<Value> = gate
                .audit_lines()
                .into_iter()
                .filter(|e| e.get("list_filter").is_some())
                .collect();
            let ctx = format!("{transport} {mode}: {got}\nlist audits: {audits:?}");
            // The server's tools are the same on both paths; policies name tools per
            // server, so `github/read_file` is on no allow-list and `files/search_issues`
            // neither. What is visible is what is callable.
            let calls = got["calls"].as_object().unwrap_or_else(|| panic!("{ctx}"));
            let mut callable: Vec<&str> = calls
                .iter()
                .filter(|(_, v)| v.as_str() == Some("ok"))
                .map(|(k, _)| k.as_str())
                .collect();
            callable.sort_unstable();
            let listed: Vec<&str> = got["tools"]
                .as_array()
                .unwrap_or_else(|| panic!("{ctx}"))
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(listed, callable, "listed = callable, {ctx}");
            assert!(!listed.is_empty(), "{ctx}");
            for name in listed.iter() {
                assert!(visible.as_array().unwrap().contains(&json!(name)), "{ctx}");
            }
            // Hidden and forbidden, called by name anyway: refused by ext_authz.
            assert!(
                calls["delete_repository"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("refused")),
                "{ctx}"
            );
            assert!(!listed.contains(&"admin_shell"), "{ctx}");
            // Sessions (prompts, resources) are open to approved agents: nothing hidden.
            assert_eq!(got["prompts"], json!(["triage"]), "{ctx}");
            assert_eq!(got["resources"], json!(["file:///notes.txt"]), "{ctx}");
        }
    }
    // Fail closed: a list answer that cannot be read becomes an error, never the list.
    let client = MtlsClient::new(&pki, &cert, envoy.listener_port());
    for how in ["garbage", "truncated", "sse-garbage", "oversize"] {
        let resp = client
            .post("/mcp/broken")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("x-broken", how)
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .send()
            .await;
        let resp = match resp {
            Ok(resp) => resp,
            // Over Envoy's buffer limit, Envoy may reset the stream instead of answering.
            Err(e) if how == "oversize" => {
                eprintln!("oversize: {e}");
                continue;
            }
            Err(e) => panic!("{how}: {e}"),
        };
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(!body.contains("secret_tool"), "{how}: {status} {body:.300}");
        if status == reqwest::StatusCode::OK {
            assert!(
                body.contains("-32603") && body.contains("list_unfiltered"),
                "{how}: {body:.300}"
            );
        } else {
            // Over Envoy's buffer limit, Envoy itself refuses the answer.
            assert!(status.is_server_error(), "{how}: {status} {body:.300}");
        }
    }

    // Each filtered list is audited with what it hid.
    let lines = gate.audit_lines();
    let filtered: Vec<&Value> = lines
        .iter()
        .filter(|e| e["list_filter"]["list"] == "tools")
        .collect();
    assert!(filtered.len() >= 4, "{lines:?}");
    assert!(
        filtered.iter().any(|e| e["list_filter"]["hidden"]
            .as_array()
            .is_some_and(|h| h.contains(&json!("delete_repository")))),
        "{filtered:?}"
    );
    // The refusals are audited with why.
    let refused = lines
        .iter()
        .filter(|e| e["list_filter"]["error"].is_string())
        .count();
    assert!(refused >= 3, "{lines:?}");
    drop(envoy);
}
