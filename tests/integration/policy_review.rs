//! Policy review commands with the real binary and a real solver: `diff`, `validate
//! --prove`, `access`, `shadow-report`. The solver is the one `make test` installs
//! (`CVC5`, see mk/analysis.mk). Every counterexample a test sees is fed to
//! `cedar-gate check` against both sides and must give the decisions it claims.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::repo_path;

/// The solver: `CVC5`, else the project venv's driver. Panics (never skips) when
/// neither exists: these tests are part of the suite.
fn cvc5() -> PathBuf {
    if let Some(p) = std::env::var_os("CVC5").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = repo_path(".venv/bin/cvc5");
    assert!(
        venv.is_file(),
        "CVC5 is not set and {} does not exist: run the tests with `make test` (or `make solver` first)",
        venv.display()
    );
    venv
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cedar-gate"));
    c.env("CVC5", cvc5());
    c
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A small policy directory over the shipped schema (copied now: it is being edited).
fn small_set(dir: &Path, policies: &str, entities: &Value) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(
        repo_path("cedar/schema.cedarschema"),
        dir.join("schema.cedarschema"),
    )
    .unwrap();
    std::fs::write(dir.join("p.cedar"), policies).unwrap();
    std::fs::write(dir.join("entities.json"), entities.to_string()).unwrap();
}

const W1: &str = "spiffe://example.org/ns/a/sa/w1";
const W2: &str = "spiffe://example.org/ns/a/sa/w2";

fn entities(w2_group: &str) -> Value {
    serde_json::json!([
        {"uid": {"type": "Group", "id": "agents"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Group", "id": "other"}, "attrs": {}, "parents": []},
        {"uid": {"type": "ModelGroup", "id": "standard"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Model", "id": "m1"}, "attrs": {}, "parents": [{"type": "ModelGroup", "id": "standard"}]},
        {"uid": {"type": "Workload", "id": W1}, "attrs": {}, "parents": [{"type": "Group", "id": "agents"}]},
        {"uid": {"type": "Workload", "id": W2}, "attrs": {}, "parents": [{"type": "Group", "id": w2_group}]},
    ])
}

const BASE: &str = r#"@id("agents-chat")
@owner("platform")
permit (principal in Group::"agents", action == Action::"chat", resource in ModelGroup::"standard")
when { context has ai && context.ai has max_output_tokens && context.ai.max_output_tokens <= 1000 };
"#;

/// Runs `diff --json`; returns the exit code and the report.
fn diff(old: &Path, new: &Path, extra: &[&str]) -> (i32, Value) {
    let (code, out, err) = run(bin()
        .arg("diff")
        .arg(old)
        .arg(new)
        .arg("--json")
        .args(extra));
    assert!(!err.contains("panicked"), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(
        report["unconfirmed"].as_array().map_or(0, |a| a.len()),
        0,
        "{report:#}"
    );
    verify_examples(old, new, &report);
    (code, report)
}

/// Every gain and loss is re-decided by `cedar-gate check` under OLD and NEW.
fn verify_examples(old: &Path, new: &Path, report: &Value) {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, list) in [("gain", &report["gains"]), ("loss", &report["losses"])] {
        for (i, f) in list.as_array().unwrap().iter().enumerate() {
            assert_eq!(
                f["concrete"], true,
                "abstract counterexample in a test: {f:#}"
            );
            let file = tmp.path().join(format!("{kind}-{i}.json"));
            std::fs::write(&file, f["example"]["request"].to_string()).unwrap();
            let decide = |dir: &Path| -> String {
                let (code, out, err) = run(bin()
                    .arg("check")
                    .arg("--policy-dir")
                    .arg(dir)
                    .arg("--request")
                    .arg(&file)
                    .arg("--json"));
                assert_eq!(code, 0, "{out}{err}");
                let v: Value = serde_json::from_str(&out).unwrap();
                v["decision"].as_str().unwrap().to_owned()
            };
            let (o, n) = (decide(old), decide(new));
            assert_eq!(o, f["example"]["old"]["decision"], "{f:#}");
            assert_eq!(n, f["example"]["new"]["decision"], "{f:#}");
            let expected = if kind == "gain" {
                ("deny", "allow")
            } else {
                ("allow", "deny")
            };
            assert_eq!((o.as_str(), n.as_str()), expected, "{f:#}");
        }
    }
}

fn count(report: &Value, key: &str) -> usize {
    report[key].as_array().map_or(0, |a| a.len())
}

#[test]
fn widened_condition_gains_and_fails_on_gains() {
    let t = tempfile::tempdir().unwrap();
    let (old, new) = (t.path().join("old"), t.path().join("new"));
    small_set(&old, BASE, &entities("other"));
    small_set(
        &new,
        &BASE.replace("<= 1000", "<= 2000"),
        &entities("other"),
    );
    let (code, r) = diff(&old, &new, &["--fail-on", "gains"]);
    assert_eq!(code, 3, "{r:#}");
    assert!(count(&r, "gains") > 0 && count(&r, "losses") == 0, "{r:#}");
    assert_eq!(r["changed"][0]["new"]["id"], "agents-chat");
    assert_eq!(r["changed"][0]["new"]["owner"], "platform");
    let g = &r["gains"][0];
    let tokens = g["example"]["request"]["context"]["ai"]["max_output_tokens"]
        .as_i64()
        .unwrap();
    assert!((1001..=2000).contains(&tokens), "{g:#}");
    let (code, _) = diff(&old, &new, &["--fail-on", "losses"]);
    assert_eq!(code, 0);
}

#[test]
fn new_forbid_loses() {
    let t = tempfile::tempdir().unwrap();
    let (old, new) = (t.path().join("old"), t.path().join("new"));
    small_set(&old, BASE, &entities("other"));
    let forbid = format!(
        "{BASE}\n@id(\"no-streaming\")\n@owner(\"security\")\nforbid (principal, action, resource) when {{ context has ai && context.ai.stream }};\n"
    );
    small_set(&new, &forbid, &entities("other"));
    let (code, r) = diff(&old, &new, &["--fail-on", "any"]);
    assert_eq!(code, 3);
    assert_eq!(count(&r, "gains"), 0, "{r:#}");
    assert!(count(&r, "losses") > 0, "{r:#}");
    assert_eq!(r["added"][0]["id"], "no-streaming");
    assert_eq!(r["added"][0]["owner"], "security");
    assert_eq!(r["added"][0]["line"], 6);
    let l = &r["losses"][0];
    assert_eq!(l["example"]["request"]["context"]["ai"]["stream"], true);
    assert!(
        l["example"]["new"]["policies"][0]
            .as_str()
            .unwrap()
            .starts_with("no-streaming")
    );
}

#[test]
fn renamed_identical_policy_is_no_change() {
    let t = tempfile::tempdir().unwrap();
    let (old, new) = (t.path().join("old"), t.path().join("new"));
    small_set(&old, BASE, &entities("other"));
    small_set(
        &new,
        &BASE.replace("agents-chat", "agents-may-chat"),
        &entities("other"),
    );
    let (code, r) = diff(&old, &new, &["--fail-on", "any"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!((count(&r, "gains"), count(&r, "losses")), (0, 0));
    assert_eq!(r["renamed"][0]["old"]["id"], "agents-chat");
    assert_eq!(r["renamed"][0]["new"]["id"], "agents-may-chat");
}

#[test]
fn entity_moved_between_groups_gains_only_its_cells() {
    let t = tempfile::tempdir().unwrap();
    let (old, new) = (t.path().join("old"), t.path().join("new"));
    small_set(&old, BASE, &entities("other"));
    small_set(&new, BASE, &entities("agents"));
    let (code, r) = diff(&old, &new, &["--fail-on", "gains"]);
    assert_eq!(code, 3);
    assert_eq!(count(&r, "losses"), 0, "{r:#}");
    let gains = r["gains"].as_array().unwrap();
    assert!(!gains.is_empty());
    for g in gains {
        assert_eq!(g["principal"], format!("Workload::\"{W2}\""), "{g:#}");
        assert_eq!(g["source"], "entities");
    }
    assert_eq!(r["entities_changed"][0], format!("Workload::\"{W2}\""));
}

#[test]
fn prove_finds_erroring_dead_and_overridden_policies() {
    let t = tempfile::tempdir().unwrap();
    let policies = format!(
        r#"{BASE}
@id("overflow")
@owner("ml")
permit (principal in Group::"agents", action == Action::"chat", resource)
when {{ context has ai && context.ai has max_output_tokens && context.ai.max_output_tokens * 4000000000000 > 5 }};

@id("dead")
permit (principal, action == Action::"chat", resource)
when {{ context.request.method == "GET" && context.request.method == "POST" }};

@id("shadowed-permit")
permit (principal in Group::"other", action == Action::"embed", resource);

@id("block-embed")
forbid (principal, action == Action::"embed", resource);
"#
    );
    small_set(t.path(), &policies, &entities("other"));
    let (code, out, err) = run(bin()
        .args(["validate", "--prove", "--policy-dir"])
        .arg(t.path()));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("p.cedar:6: permit `overflow` (@owner ml) can error at run time"),
        "{err}"
    );
    assert!(err.contains("overflow"), "{err}");
    assert!(err.contains("p.cedar:11: permit `dead` is dead"), "{err}");
    assert!(
        err.contains("p.cedar:15: permit `shadowed-permit` is overridden"),
        "{err}"
    );
    assert!(!err.contains("`agents-chat`"), "{err}");
    assert!(!err.contains("`block-embed`"), "{err}");
    assert!(out.contains("3 finding(s)"), "{out}");
}

#[test]
fn no_solver_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    small_set(t.path(), BASE, &entities("other"));
    let (code, out, err) = run(bin()
        .env("CVC5", "/nonexistent/cvc5")
        .arg("diff")
        .arg(t.path())
        .arg(t.path()));
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("no SMT solver"), "{err}");
    assert!(err.contains("/nonexistent/cvc5"), "{err}");
    assert!(err.contains("make solver"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A copy of the shipped policy directory, taken now (it changes under us).
fn shipped_copy(into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    for e in std::fs::read_dir(repo_path("cedar")).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), into.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn shipped_token_cap_raised_gains_the_requests_between() {
    let t = tempfile::tempdir().unwrap();
    let (old, new) = (t.path().join("old"), t.path().join("new"));
    shipped_copy(&old);
    shipped_copy(&new);
    let mut changed = false;
    for e in std::fs::read_dir(&new).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "cedar") {
            let text = std::fs::read_to_string(&p).unwrap();
            if text.contains("max_output_tokens > 4096") {
                std::fs::write(
                    &p,
                    text.replace("max_output_tokens > 4096", "max_output_tokens > 8192"),
                )
                .unwrap();
                changed = true;
            }
        }
    }
    assert!(
        changed,
        "the shipped set no longer caps max_output_tokens at 4096"
    );
    let (code, r) = diff(&old, &new, &["--fail-on", "gains"]);
    assert_eq!(code, 3);
    assert_eq!(count(&r, "losses"), 0, "{r:#}");
    let gains = r["gains"].as_array().unwrap();
    assert!(!gains.is_empty());
    for g in gains {
        let tokens = g["example"]["request"]["context"]["ai"]["max_output_tokens"]
            .as_i64()
            .unwrap();
        assert!((4097..=8192).contains(&tokens), "{g:#}");
        assert!(
            g["example"]["old"]["policies"][0]
                .as_str()
                .unwrap()
                .starts_with("max-output-tokens-4096"),
            "{g:#}"
        );
    }
    assert!(
        gains.iter().any(|g| g["principal"]
            == "Workload::\"spiffe://example.org/ns/agents/sa/research-agent\""
            && g["actions"].as_array().unwrap().iter().any(|a| a == "chat")),
        "{r:#}"
    );
}

#[test]
fn shipped_agent_added_to_frontier_group_gains_frontier_models() {
    let t = tempfile::tempdir().unwrap();
    let (old, new) = (t.path().join("old"), t.path().join("new"));
    shipped_copy(&old);
    shipped_copy(&new);
    let agent = "spiffe://example.org/ns/agents/sa/research-agent";
    let path = new.join("entities.json");
    let mut ents: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut found = false;
    for e in ents.as_array_mut().unwrap() {
        if e["uid"]["id"] == agent {
            e["parents"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"type": "Group", "id": "ml-research"}));
            found = true;
        }
    }
    assert!(found, "the shipped entities no longer list {agent}");
    std::fs::write(&path, ents.to_string()).unwrap();
    let (code, r) = diff(&old, &new, &["--fail-on", "gains"]);
    assert_eq!(code, 3);
    let gains = r["gains"].as_array().unwrap();
    assert!(!gains.is_empty(), "{r:#}");
    for g in gains {
        assert_eq!(g["principal"], format!("Workload::\"{agent}\""), "{g:#}");
        assert!(
            g["example"]["new"]["policies"][0]
                .as_str()
                .unwrap()
                .starts_with("ml-research-frontier-models"),
            "{g:#}"
        );
    }
    assert_eq!(count(&r, "losses"), 0, "{r:#}");
}

#[test]
fn shipped_set_proves_clean_and_diffs_to_itself_unchanged() {
    let (code, out, err) = run(bin()
        .args(["validate", "--prove", "--policy-dir"])
        .arg(repo_path("cedar")));
    assert_eq!(code, 0, "{out}{err}");
    // The guardrail proof covers every `expect: allow` case of cedar/tests.
    assert!(out.contains("8 allow example(s), 0 finding(s)"), "{out}");
    let (code, r) = diff(
        &repo_path("cedar"),
        &repo_path("cedar"),
        &["--fail-on", "any"],
    );
    assert_eq!(code, 0, "{r:#}");
}

#[test]
fn access_report_and_cell_diff() {
    let t = tempfile::tempdir().unwrap();
    let (old, new) = (t.path().join("old"), t.path().join("new"));
    small_set(&old, BASE, &entities("other"));
    small_set(&new, BASE, &entities("agents"));
    let (code, out, err) = run(bin()
        .args(["access", "--format", "json", "--policy-dir"])
        .arg(&old));
    assert_eq!(code, 0, "{err}");
    let cells: Value = serde_json::from_str(&out).unwrap();
    let w1 = cells
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["principal"] == format!("Workload::\"{W1}\"") && c["resource"] == "Model::\"m1\""
        })
        .unwrap_or_else(|| panic!("{cells:#}"));
    assert_eq!(w1["verdict"], "conditional");
    assert_eq!(w1["actions"], serde_json::json!(["chat"]));
    assert!(
        w1["condition"]
            .as_str()
            .unwrap()
            .contains("max_output_tokens <= 1000"),
        "{w1:#}"
    );
    assert!(
        w1["policies"][0]
            .as_str()
            .unwrap()
            .contains("agents-chat (@platform)")
    );

    let (code, out, err) = run(bin()
        .args(["access", "--format", "json", "--diff"])
        .arg(&old)
        .arg(&new));
    assert_eq!(code, 0, "{err}");
    let changes: Value = serde_json::from_str(&out).unwrap();
    let changes = changes.as_array().unwrap();
    assert!(!changes.is_empty());
    for c in changes {
        let who = c["new"]["principal"]
            .as_str()
            .or(c["old"]["principal"].as_str());
        assert_eq!(who.unwrap(), format!("Workload::\"{W2}\""), "{c:#}");
    }
}

const RESEARCH_AGENT: &str = "Workload::\"spiffe://example.org/ns/agents/sa/research-agent\"";

/// The one cell of the report for `principal` and `resource` that lists `action`.
fn cell_of<'a>(cells: &'a [Value], principal: &str, resource: &str, action: &str) -> &'a Value {
    cells
        .iter()
        .find(|c| {
            c["principal"] == principal
                && c["resource"] == resource
                && c["actions"].as_array().unwrap().iter().any(|a| a == action)
        })
        .unwrap_or_else(|| panic!("no cell {principal} -> {resource} [{action}]"))
}

/// `access` on the shipped policies (issue 15: it runs in `make test`), a few cells
/// whose answers the shipped policies fix.
#[test]
fn access_report_of_the_shipped_set() {
    let (code, out, err) = run(bin()
        .args(["access", "--format", "json", "--policy-dir"])
        .arg(repo_path("cedar")));
    assert_eq!(code, 0, "{err}");
    let cells: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let cells = cells.as_array().unwrap();

    let read = cell_of(
        cells,
        RESEARCH_AGENT,
        "Tool::\"files/read_file\"",
        "call_tool",
    );
    assert_eq!(read["verdict"], "allowed", "{read:#}");
    assert_eq!(
        read["policies"],
        serde_json::json!(["research-agent-tools (@research)"])
    );
    assert!(read.get("condition").is_none(), "{read:#}");

    let delete = cell_of(
        cells,
        RESEARCH_AGENT,
        "Tool::\"files/delete_file\"",
        "call_tool",
    );
    assert_eq!(delete["verdict"], "conditional", "{delete:#}");
    assert_eq!(
        delete["policies"],
        serde_json::json!([
            "research-agent-tools (@research)",
            "destructive-tools-need-delegating-user (@security)"
        ])
    );
    assert_eq!(
        delete["condition"],
        "allowed unless destructive-tools-need-delegating-user (when { !(context.auth has actor) })"
    );

    let mini = cell_of(cells, RESEARCH_AGENT, "Model::\"gpt-4o-mini\"", "chat");
    assert_eq!(mini["verdict"], "conditional", "{mini:#}");
    let policies = mini["policies"].as_array().unwrap();
    for p in [
        "approved-agents-standard-models (@platform-ai)",
        "max-output-tokens-4096 (@security)",
    ] {
        assert!(policies.iter().any(|q| q == p), "{p}: {mini:#}");
    }
    let condition = mini["condition"].as_str().unwrap();
    assert!(
        condition.starts_with("allowed unless max-output-tokens-4096 (when {")
            && condition.contains("(!(context.ai.max_output_tokens <= 4096))"),
        "{mini:#}"
    );

    // Each principal, resource and action once (the schema names a principal type once
    // per action; the rows did too).
    let mut seen = std::collections::HashSet::new();
    for c in cells {
        for a in c["actions"].as_array().unwrap() {
            let key = (
                c["principal"].to_string(),
                c["resource"].to_string(),
                a.to_string(),
            );
            assert!(seen.insert(key), "listed twice: {c:#}");
        }
    }

    // Quarantined: every cell denied, so none is listed.
    assert!(
        !cells.iter().any(|c| c["principal"]
            .as_str()
            .unwrap()
            .contains("quarantined-agent")),
        "{out}"
    );
}

#[test]
fn shadow_report_counts_disagreements() {
    let t = tempfile::tempdir().unwrap();
    let audit = t.path().join("audit.jsonl");
    std::fs::write(
        &audit,
        [
            r#"{"decision":"allow","decision_id":"d1","shadow":{"decision":"deny","disagrees":true,"policies":[{"id":"cap-2048","annotations":{"shadow":"","owner":"security"}}]}}"#,
            r#"{"decision":"allow","decision_id":"d2","shadow":{"decision":"allow","disagrees":false,"policies":[]}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let (code, out, err) = run(bin().arg("shadow-report").arg(&audit));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("cap-2048 (@owner security): allow->deny 1, deny->allow 0"),
        "{out}"
    );
    assert!(out.contains("allow->deny e.g. d1"), "{out}");
}

/// Issue 15: no combination of guardrails always denies a group an example calls
/// allowed. Two forbids that only together leave no token count for `Group::"agents"`
/// on `m1`: the finding names both (and not the redundant or unrelated ones), the
/// example's file and line; other models stay allowed, so the permit itself is not
/// "overridden".
#[test]
fn prove_finds_guardrails_that_together_always_deny_an_example_group() {
    let t = tempfile::tempdir().unwrap();
    let policies = r#"@id("agents-chat")
@owner("platform")
permit (principal in Group::"agents", action == Action::"chat", resource in ModelGroup::"standard")
when { context has ai && context.ai has max_output_tokens && context.ai.max_output_tokens <= 1000 };

@id("cap-500")
@owner("security")
forbid (principal, action == Action::"chat", resource)
when { context has ai && context.ai has max_output_tokens && context.ai.max_output_tokens > 500 };

@id("m1-floor-800")
@owner("ml")
forbid (principal in Group::"agents", action == Action::"chat", resource == Model::"m1")
when { context has ai && context.ai has max_output_tokens && context.ai.max_output_tokens < 800 };

@id("cap-2000")
@owner("security")
forbid (principal, action == Action::"chat", resource)
when { context has ai && context.ai has max_output_tokens && context.ai.max_output_tokens > 2000 };

@id("no-other")
forbid (principal in Group::"other", action, resource);
"#;
    let entities = serde_json::json!([
        {"uid": {"type": "Group", "id": "agents"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Group", "id": "other"}, "attrs": {}, "parents": []},
        {"uid": {"type": "ModelGroup", "id": "standard"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Model", "id": "m1"}, "attrs": {}, "parents": [{"type": "ModelGroup", "id": "standard"}]},
        {"uid": {"type": "Model", "id": "m2"}, "attrs": {}, "parents": [{"type": "ModelGroup", "id": "standard"}]},
        {"uid": {"type": "Workload", "id": W1}, "attrs": {}, "parents": [{"type": "Group", "id": "agents"}]},
    ]);
    small_set(t.path(), policies, &entities);
    std::fs::create_dir_all(t.path().join("tests")).unwrap();
    let case = |model: &str| {
        format!(
            r#"  - name: agents may chat with {model}
    principal: {{type: Workload, id: "{W1}"}}
    action: chat
    resource: {{type: Model, id: {model}}}
    context: {{ai: {{max_output_tokens: 400}}}}
    expect: allow
"#
        )
    };
    std::fs::write(
        t.path().join("tests/cases.yaml"),
        format!("cases:\n{}\n{}", case("m2"), case("m1")),
    )
    .unwrap();
    let (code, out, err) = run(bin()
        .args(["validate", "--prove", "--policy-dir"])
        .arg(t.path()));
    assert_eq!(code, 1, "{out}{err}");
    let finding = err
        .lines()
        .find(|l| l.contains("always-deny"))
        .unwrap_or_else(|| panic!("no always-deny finding:\n{err}"));
    assert!(
        finding.contains("is an always-deny for any Workload in Group::\"agents\""),
        "{finding}"
    );
    assert!(
        finding.contains("example tests/cases.yaml:9 `agents may chat with m1` expects allow"),
        "{finding}"
    );
    assert!(finding.contains("`chat` on Model::\"m1\""), "{finding}");
    assert!(
        finding.contains("`cap-500` @owner security p.cedar:6"),
        "{finding}"
    );
    assert!(
        finding.contains("`m1-floor-800` @owner ml p.cedar:11"),
        "{finding}"
    );
    assert!(!finding.contains("cap-2000"), "{finding}");
    assert!(!finding.contains("no-other"), "{finding}");
    // m2 is fine, and so the permit is neither overridden nor dead.
    assert!(!err.contains("m2"), "{err}");
    assert!(!err.contains("overridden"), "{err}");
    assert!(out.contains("2 allow example(s), 1 finding(s)"), "{out}");

    // The same as JSON, with the blocking set as policies.
    let (code, out, err) = run(bin()
        .args(["validate", "--prove", "--json", "--policy-dir"])
        .arg(t.path()));
    assert_eq!(code, 1, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let f = &report["findings"][0];
    assert_eq!(f["problem"], "always_denied", "{report:#}");
    let ids: Vec<&str> = f["blocking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cap-500", "m1-floor-800"], "{report:#}");
}

/// Issue 15: `access --config` reports the token principals the config's issuers give:
/// a member of each group their groups claim can carry (a group the policies name need
/// not be in entities.json; only those with the issuer's `groups_prefix`), and one in no
/// group. Without the config there are no such rows.
#[test]
fn access_reports_token_groups_from_config() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("p");
    let policies = r#"@id("idp-researchers-chat")
@owner("platform")
permit (principal is Agent in Group::"idp:researchers", action == Action::"chat", resource in ModelGroup::"standard");

@id("agents-chat")
permit (principal in Group::"agents", action == Action::"chat", resource in ModelGroup::"standard");
"#;
    small_set(&dir, policies, &entities("other"));
    let config = t.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            r#"policy_dir: {}
identity:
  issuers:
    - issuer: https://idp.example.com
      jwks_file: /nonexistent/jwks.json
      audiences: [cedar-gate]
      entity_type: Agent
      groups_claim: groups
      groups_prefix: "idp:"
    - issuer: https://clients.example.com
      jwks_file: /nonexistent/jwks.json
      audiences: [cedar-gate]
      entity_type: Client
"#,
            dir.display()
        ),
    )
    .unwrap();
    let (code, out, err) = run(bin()
        .args(["access", "--all", "--format", "json", "--config"])
        .arg(&config));
    assert_eq!(code, 0, "{err}");
    let cells: Value = serde_json::from_str(&out).unwrap();
    let cells = cells.as_array().unwrap();
    let cell = |who: &str, what: &str| {
        cells
            .iter()
            .find(|c| {
                c["principal"] == who
                    && c["resource"] == what
                    && c["actions"].as_array().unwrap().contains(&"chat".into())
            })
            .unwrap_or_else(|| panic!("no cell {who} -> {what}:\n{cells:#?}"))
    };
    let member = r#"any Agent in Group::"idp:researchers" (token of https://idp.example.com)"#;
    let m1 = cell(member, "Model::\"m1\"");
    assert_eq!(m1["verdict"], "allowed", "{m1:#}");
    assert_eq!(
        m1["policies"],
        serde_json::json!(["idp-researchers-chat (@platform)"])
    );
    let none = "any Agent in no group (token of https://idp.example.com)";
    assert_eq!(cell(none, "Model::\"m1\"")["verdict"], "denied");
    let client = "any Client in no group (token of https://clients.example.com)";
    assert_eq!(cell(client, "Model::\"m1\"")["verdict"], "denied");
    // `Group::"agents"` lacks the prefix: the issuer cannot put an Agent there.
    assert!(
        !cells.iter().any(|c| c["principal"]
            .as_str()
            .unwrap()
            .starts_with("any Agent in Group::\"agents\"")),
        "{cells:#?}"
    );
    // No config, no token rows.
    let (code, out, err) = run(bin()
        .args(["access", "--all", "--format", "json", "--policy-dir"])
        .arg(&dir));
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("token of"), "{out}");
}
