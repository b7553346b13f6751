//! Diagnostics that point at the line (issue 18 item 6), through the real binary:
//! `entities.json` errors name the file, line, entity and attribute with Cedar's
//! causes; a typo in a cases file names the key and the line; `check --exit-code`.

use std::path::Path;
use std::process::Command;

use crate::common::repo_path;

fn cedar_gate(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cedar-gate"))
        .args(args)
        .arg("--policy-dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The shipped policy directory with `entities.json` replaced.
fn with_entities(entities: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(repo_path("cedar")).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            std::fs::copy(f.path(), dir.path().join(f.file_name())).unwrap();
        }
    }
    std::fs::write(dir.path().join("entities.json"), entities).unwrap();
    dir
}

#[test]
fn an_entity_attribute_of_the_wrong_type_names_file_line_entity_attribute_and_cause() {
    let dir = with_entities(
        r#"[
  {"uid": {"type": "Group", "id": "approved-agents"}, "attrs": {}, "parents": []},
  {
    "uid": {"type": "Group", "id": "ml-research"},
    "attrs": {"description": 42},
    "parents": []
  }
]"#,
    );
    let (code, _, err) = cedar_gate(&["validate"], dir.path());
    assert_eq!(code, 1, "{err}");
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(
        line.starts_with(
            "error: entities.json:5:15: entity `Group::\"ml-research\"`, attribute `description`: "
        ),
        "{err}"
    );
    // Cedar's cause chain is kept: the summary and the cause under it.
    assert!(
        line.contains("entity does not conform to the schema"),
        "{err}"
    );
    assert!(line.contains("type mismatch"), "{err}");
    assert!(line.contains("type string"), "{err}");
}

#[test]
fn unknown_attributes_bad_parents_and_bad_workload_ids_point_at_their_entity() {
    let cases = [
        (
            r#"[
  {"uid": {"type": "Model", "id": "x"}, "attrs": {"tierr": "a"}, "parents": []}
]"#,
            "error: entities.json:2:51: entity `Model::\"x\"`, attribute `tierr`: ",
            "should not exist",
        ),
        (
            r#"[
  {"uid": {"type": "Group", "id": "g"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Model", "id": "x"}, "attrs": {},
   "parents": [{"type": "Group", "id": "g"}]}
]"#,
            "error: entities.json:4:4: entity `Model::\"x\"`: ",
            "ancestor of type `Group`",
        ),
        (
            "[\n  {\"uid\": {\"type\": \"Workload\", \"id\": \"agent-7\"}, \"parents\": []}\n]",
            "error: entities.json:2:3: entity `Workload::\"agent-7\"`: ",
            "is not a SPIFFE id",
        ),
        (
            "[\n  {\"uid\": {\"type\": \"Model\", \"id\": \"x\"},}\n]",
            "error: entities.json:2:40: not valid JSON: ",
            "trailing comma",
        ),
    ];
    for (entities, prefix, cause) in cases {
        let dir = with_entities(entities);
        let (code, _, err) = cedar_gate(&["validate"], dir.path());
        assert_eq!(code, 1, "{err}");
        let line = err.lines().find(|l| l.starts_with("error:")).unwrap();
        assert!(line.starts_with(prefix), "want {prefix}\n{err}");
        assert!(line.contains(cause), "want {cause}\n{err}");
    }
}

#[test]
fn a_typo_in_a_cases_file_names_the_key_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("cases.yaml");
    std::fs::write(
        &yaml,
        r#"cases:
  - name: research agent may list models
    principal: {type: Workload, id: "spiffe://example.org/ns/agents/sa/research-agent"}
    action: http
    resource: {type: Route, id: /v1/models}
    expect: allow

  - name: typo
    principal: {type: Workload, id: "spiffe://example.org/ns/agents/sa/research-agent"}
    action: http
    resource: {type: Route, id: /v1/models}
    expct: allow
"#,
    )
    .unwrap();
    let json = dir.path().join("cases.json");
    std::fs::write(
        &json,
        "[{\"name\": \"x\", \"action\": \"http\",\n \"principal\": {\"type\": \"Anonymous\", \"id\": \"a\"},\n \"resource\": {\"type\": \"Route\", \"id\": \"/\"}, \"expect\": \"alow\"}]",
    )
    .unwrap();
    let (code, out, _) = cedar_gate(
        &["test", yaml.to_str().unwrap(), json.to_str().unwrap()],
        &repo_path("cedar"),
    );
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("untagged"), "{out}");
    assert!(
        out.contains("cases[1]: unknown field `expct`, expected one of"),
        "{out}"
    );
    assert!(out.contains("at line 12 column 5"), "{out}");
    assert!(
        out.contains("unknown variant `alow`, expected `allow` or `deny` at line 3"),
        "{out}"
    );
}

#[test]
fn check_exit_code_is_3_for_deny_0_for_allow_and_0_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let request = |name: &str, principal: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                r#"{{"principal": {{"type": "Workload", "id": "spiffe://example.org/ns/agents/sa/{principal}"}},
                    "action": "http", "resource": {{"type": "Route", "id": "/v1/models"}}}}"#
            ),
        )
        .unwrap();
        path
    };
    let allow = request("allow.json", "research-agent");
    let deny = request("deny.json", "rogue-agent");
    let cedar = repo_path("cedar");
    let run = |req: &Path, flag: bool| {
        let mut args = vec!["check", "--request", req.to_str().unwrap()];
        if flag {
            args.push("--exit-code");
        }
        cedar_gate(&args, &cedar)
    };
    let (code, out, err) = run(&deny, true);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.starts_with("decision: deny"), "{out}");
    assert_eq!(run(&allow, true).0, 0);
    assert_eq!(run(&deny, false).0, 0);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{}").unwrap();
    assert_eq!(run(&bad, true).0, 1);
}
