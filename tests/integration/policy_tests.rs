//! `cedar-gate test`, as users run it in CI: the real binary, YAML and JSON case files.

use std::process::Command;

use crate::common::repo_path;

fn run(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cedar-gate"))
        .arg("test")
        .arg("--policy-dir")
        .arg(repo_path("cedar"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn shipped_cases_pass() {
    let cases = repo_path("cedar/tests/cases.yaml");
    let (code, out) = run(&[cases.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    let last = out.lines().last().unwrap();
    assert!(last.ends_with(" passed, 0 failed"), "{out}");
}

#[test]
fn failures_are_explained_counted_and_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("cases.json");
    std::fs::write(
        &json,
        r#"[
  {"name": "rogue may list models (wrong)",
   "principal": {"type": "Workload", "id": "spiffe://example.org/ns/agents/sa/rogue-agent"},
   "action": "http", "resource": {"type": "Route", "id": "/v1/models"},
   "expect": "allow"},
  {"name": "research agent may list models",
   "principal": {"type": "Workload", "id": "spiffe://example.org/ns/agents/sa/research-agent"},
   "action": "http", "resource": {"type": "Route", "id": "/v1/models"},
   "expect": "allow", "expect_policies": ["approved-agents-api"]}
]"#,
    )
    .unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "cases: [{name: x, expect: maybe}]\n").unwrap();

    let (code, out) = run(&[json.as_os_str(), broken.as_os_str()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "rogue may list models (wrong): expected allow; got deny (no_permit) policies []"
        ),
        "{out}"
    );
    assert!(out.contains("broken.yaml"), "{out}");
    assert_eq!(out.lines().last().unwrap(), "1 passed, 2 failed", "{out}");
}
