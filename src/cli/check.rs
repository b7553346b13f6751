//! `validate` and `check`.

use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use crate::decide::request_file::RequestFile;
use crate::policy::OnPolicyError;
use crate::policy::{Snapshot, load_dir};

/// `cedar-gate validate`: prints diagnostics; returns the exit code.
pub fn validate(dir: &Path) -> i32 {
    match load_dir(dir, 1) {
        Ok(snapshot) => {
            for w in &snapshot.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "ok: {} policies, hash {}, {} warning(s)",
                snapshot.policy_count(),
                snapshot.hash,
                snapshot.warnings.len()
            );
            print_snapshot_facts(&snapshot);
            0
        }
        Err(e) => {
            for d in e.diagnostics() {
                eprintln!("error: {d}");
            }
            1
        }
    }
}

/// `cedar-gate check`: prints the decision; returns the exit code
/// (0 decided, 1 bad input).
pub fn check(dir: &Path, request: &Path, json: bool) -> i32 {
    let snapshot = match load_dir(dir, 1) {
        Ok(s) => s,
        Err(e) => {
            for d in e.diagnostics() {
                eprintln!("error: {d}");
            }
            return 1;
        }
    };
    // The same diagnostics the server logs when it loads this directory.
    for w in &snapshot.warnings {
        eprintln!("warning: {w}");
    }
    let text = match read_input(request) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", request.display());
            return 1;
        }
    };
    let file: RequestFile = match serde_json::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: `{}`: {e}", request.display());
            return 1;
        }
    };
    match explain(&snapshot, &file) {
        Ok(report) if json => println!("{report:#}"),
        Ok(report) => print_report(&report),
        Err(e) => {
            eprintln!("error: `{}`: {e}", request.display());
            return 1;
        }
    }
    0
}

/// Decides a request file against a snapshot, as JSON.
pub fn explain(snapshot: &Snapshot, file: &RequestFile) -> Result<serde_json::Value, String> {
    let authz = file.to_authz(SystemTime::now())?;
    let (decision, shadow) = snapshot.decide_with_shadow(&authz, OnPolicyError::Deny);
    let shadow = shadow.map(|d| {
        serde_json::json!({
            "decision": if d.is_allow() { "allow" } else { "deny" },
            "reason": d.reason.as_str(),
            "policies": d.policies.iter().map(|p| p.as_ref()).collect::<Vec<_>>(),
            "errors": d.errors,
        })
    });
    Ok(serde_json::json!({
        "decision": if decision.is_allow() { "allow" } else { "deny" },
        "reason": decision.reason.as_str(),
        "principal": authz.principal.uid.to_string(),
        "action": authz.action.to_string(),
        "resource": authz.resource.to_string(),
        "policies": decision.policies.iter().map(|p| p.as_ref()).collect::<Vec<_>>(),
        "errors": decision.errors,
        "shadow": shadow,
        "policy_generation": snapshot.generation,
        "policy_hash": snapshot.hash,
    }))
}

fn print_report(r: &serde_json::Value) {
    let s = |k: &str| {
        r.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    println!("decision: {} ({})", s("decision"), s("reason"));
    println!(
        "request:  {} {} {}",
        s("principal"),
        s("action"),
        s("resource")
    );
    let policies = r
        .get("policies")
        .and_then(|p| p.as_array())
        .cloned()
        .unwrap_or_default();
    if policies.is_empty() {
        println!("policies: none");
    }
    for p in policies {
        let id = p.get("id").and_then(|v| v.as_str()).unwrap_or_default();
        let ann = p
            .get("annotations")
            .and_then(|a| a.as_object())
            .map(|a| {
                a.iter()
                    .map(|(k, v)| format!("@{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        println!("policy:   {id} {ann}");
    }
    for e in r
        .get("errors")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default()
    {
        println!("error:    {}", e.as_str().unwrap_or_default());
    }
    if let Some(shadow) = r.get("shadow").filter(|v| !v.is_null()) {
        let get = |k: &str| shadow.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let ids: Vec<&str> = shadow
            .get("policies")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("id").and_then(|v| v.as_str()))
            .collect();
        println!(
            "shadow:   {} ({}) policies [{}]",
            get("decision"),
            get("reason"),
            ids.join(", ")
        );
    }
    println!(
        "snapshot: generation {} hash {}",
        r.get("policy_generation")
            .and_then(|v| v.as_u64())
            .unwrap_or_default(),
        s("policy_hash")
    );
}

/// What the server logs about a snapshot besides its warnings.
fn print_snapshot_facts(snapshot: &Snapshot) {
    println!(
        "snapshot: generation {} (offline), hash {}, {} shadow policies",
        snapshot.generation,
        snapshot.hash,
        snapshot.shadow_count()
    );
    if !snapshot.volatile_reads().is_empty() {
        println!(
            "note: policies read {}: requests carrying these values, from principals those policies can apply to, bypass the decision cache",
            snapshot.volatile_reads().join(", ")
        );
    }
}

fn read_input(path: &Path) -> std::io::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path)
    }
}
