//! `cedar-gate test`: policy unit tests for users' CI.
//!
//! A cases file is YAML (`.yaml`, `.yml`) or JSON (anything else): either a
//! list of cases or `{cases: [...]}`. Each case is a request in the `check`
//! format ([`crate::decide::request_file`]) plus its name and expectations:
//!
//! ```yaml
//! cases:
//!   - name: approved agent may list models
//!     principal: {type: Workload, id: "spiffe://example.org/ns/agents/sa/research-agent"}
//!     action: http
//!     resource: {type: Route, id: /v1/models}
//!     context: {request: {method: GET, path: /v1/models}}
//!     expect: allow                          # allow | deny
//!     expect_policies: [approved-agents-api] # optional: exact set of determining ids
//!     expect_reason: policy_permit           # optional
//!     expect_shadow: allow                   # optional: the @shadow set's decision
//! ```
//!
//! Every failure is printed with the actual decision, reason and policies; the
//! last line is `N passed, M failed`; the exit code is 1 if anything failed.

use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;

use crate::decide::request_file::{PrincipalJson, RequestFile};
use crate::policy::OnPolicyError;
use crate::policy::{Snapshot, load_dir};
use crate::vocab::Decision;

/// A cases file: a list, or a map with `cases`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CasesFile {
    List(Vec<TestCase>),
    Map { cases: Vec<TestCase> },
}

/// Allow or deny, as written in a cases file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// The request must be allowed.
    Allow,
    /// The request must be denied.
    Deny,
}

/// One named case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Shown in failures.
    pub name: String,
    /// As in a `check` request file.
    pub principal: PrincipalJson,
    /// As in a `check` request file.
    pub action: serde_json::Value,
    /// As in a `check` request file.
    pub resource: serde_json::Value,
    /// As in a `check` request file.
    #[serde(default)]
    pub context: Option<serde_json::Value>,
    /// The expected decision.
    pub expect: Expect,
    /// The expected determining policy ids (order does not matter).
    #[serde(default)]
    pub expect_policies: Option<Vec<String>>,
    /// The expected reason code (`policy_permit`, `no_permit`, ...).
    #[serde(default)]
    pub expect_reason: Option<String>,
    /// The expected decision of enforced ∪ `@shadow` policies.
    #[serde(default)]
    pub expect_shadow: Option<Expect>,
}

/// `cedar-gate test`: returns the exit code.
pub fn run(dir: &Path, files: &[std::path::PathBuf]) -> i32 {
    let snapshot = match load_dir(dir, 1) {
        Ok(s) => s,
        Err(e) => {
            for d in e.diagnostics() {
                eprintln!("error: {d}");
            }
            return 1;
        }
    };
    for w in &snapshot.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "snapshot: generation {} hash {} ({} policies, {} shadow)",
        snapshot.generation,
        snapshot.hash,
        snapshot.policy_count(),
        snapshot.shadow_count()
    );
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in files {
        let cases = match read_cases(file) {
            Ok(c) => c,
            Err(e) => {
                println!("FAIL {}: {e}", file.display());
                failed += 1;
                continue;
            }
        };
        for case in cases {
            match run_case(&snapshot, &case) {
                Ok(()) => passed += 1,
                Err(why) => {
                    println!("FAIL {}: {}: {why}", file.display(), case.name);
                    failed += 1;
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    i32::from(failed > 0)
}

fn read_cases(path: &Path) -> Result<Vec<TestCase>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let parsed: CasesFile = if yaml {
        serde_norway::from_str(&text).map_err(|e| e.to_string())?
    } else {
        serde_json::from_str(&text).map_err(|e| e.to_string())?
    };
    Ok(match parsed {
        CasesFile::List(c) | CasesFile::Map { cases: c } => c,
    })
}

/// Runs one case; `Err` says what differed.
pub fn run_case(snapshot: &Snapshot, case: &TestCase) -> Result<(), String> {
    let file = RequestFile {
        principal: case.principal.clone(),
        action: case.action.clone(),
        resource: case.resource.clone(),
        context: case.context.clone(),
        workload: None,
    };
    let authz = file
        .to_authz(SystemTime::now())
        .map_err(|e| format!("bad request: {e}"))?;
    let (decision, shadow) = snapshot.decide_with_shadow(&authz, OnPolicyError::Deny);
    let mut problems = Vec::new();
    if effect(&decision) != case.expect {
        problems.push(format!("expected {:?}", case.expect).to_lowercase());
    }
    if let Some(reason) = &case.expect_reason
        && reason != decision.reason.as_str()
    {
        problems.push(format!("expected reason {reason}"));
    }
    if let Some(expected) = &case.expect_policies {
        let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
        want.sort_unstable();
        let got: Vec<&str> = decision.policies.iter().map(|p| p.id.as_str()).collect();
        if want != got {
            problems.push(format!("expected policies [{}]", want.join(", ")));
        }
    }
    if let Some(expected) = case.expect_shadow {
        // Without @shadow policies, the shadow set is the enforced set.
        let actual = shadow.as_ref().map_or(effect(&decision), effect);
        if actual != expected {
            problems.push(format!(
                "expected shadow {}, shadow got {}",
                format!("{expected:?}").to_lowercase(),
                format!("{actual:?}").to_lowercase()
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}; got {}",
        problems.join(", "),
        describe(&decision)
    ))
}

fn effect(d: &Decision) -> Expect {
    if d.is_allow() {
        Expect::Allow
    } else {
        Expect::Deny
    }
}

fn describe(d: &Decision) -> String {
    let mut out = format!(
        "{} ({}) policies [{}]",
        if d.is_allow() { "allow" } else { "deny" },
        d.reason.as_str(),
        d.policies
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for e in &d.errors {
        out.push_str(&format!("; error: {e}"));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn repo(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    #[test]
    fn shipped_cases_pass() {
        let code = run(&repo("cedar"), &[repo("cedar/tests/cases.yaml")]);
        assert_eq!(code, 0);
    }

    #[test]
    fn a_wrong_expectation_fails_with_the_actual_decision() {
        let snapshot = load_dir(&repo("cedar"), 1).unwrap();
        let yaml = r#"
- name: rogue is allowed (wrong)
  principal: {type: Workload, id: "spiffe://example.org/ns/agents/sa/rogue-agent"}
  action: http
  resource: {type: Route, id: /v1/models}
  context: {request: {path: /v1/models}}
  expect: allow
  expect_policies: [approved-agents-api]
"#;
        let cases: CasesFile = serde_norway::from_str(yaml).unwrap();
        let CasesFile::List(cases) = cases else {
            unreachable!()
        };
        let err = run_case(&snapshot, &cases[0]).unwrap_err();
        assert!(err.contains("expected allow"), "{err}");
        assert!(err.contains("got deny (no_permit) policies []"), "{err}");
    }
}
