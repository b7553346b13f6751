//! Policy directories for tests, benchmarks and examples: the shipped schema, one policy
//! file and workloads as members of groups. Compiled for the crate's own unit tests and
//! with the `testkit` feature, never into the server.
// Test support: a directory that cannot be written is a broken machine, not an input.
#![allow(clippy::expect_used)]

use std::path::Path;

/// Writes `dir` (created if missing) as a policy directory: the shipped
/// `cedar/schema.cedarschema`, `policies` as `file`, and an `entities.json` in which each
/// `(workload, group)` is a `Workload` that is a member of `Group::"group"`.
pub fn write_dir(dir: &Path, file: &str, policies: &str, members: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).expect("policy directory");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("cedar/schema.cedarschema");
    std::fs::copy(schema, dir.join("schema.cedarschema")).expect("copy the shipped schema");
    std::fs::write(dir.join(file), policies).expect("write the policies");
    let entities: Vec<serde_json::Value> = members
        .iter()
        .map(|(workload, group)| {
            serde_json::json!({"uid": {"type": "Workload", "id": workload}, "attrs": {},
                "parents": [{"type": "Group", "id": group}]})
        })
        .collect();
    let text = serde_json::to_string(&entities).expect("entities serialize");
    std::fs::write(dir.join("entities.json"), text).expect("write entities.json");
}
