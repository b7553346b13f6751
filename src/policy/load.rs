//! Loading a policy directory into a [`Snapshot`]: all of it or nothing.
//!
//! Policies are validated against the schema in strict mode. A policy that
//! does not validate is refused rather than loaded, because at evaluation time
//! Cedar skips policies that error, and a skipped `forbid` allows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{Entities, PolicyId, PolicySet, Schema, ValidationMode, Validator};
use sha2::{Digest, Sha256};

use crate::identity::spiffe::{SpiffeId, workload_attrs};
use crate::policy::config::DEFAULT_PRINCIPAL_ENTITIES;
use crate::policy::diagnostic::{Diagnostic, EntityAt, entities_error};
use crate::policy::snapshot::{Parts, Snapshot};
use crate::vocab::{MODEL, WORKLOAD};

/// The schema file name inside a policy directory.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The entities file name inside a policy directory (optional).
pub const ENTITIES_FILE: &str = "entities.json";
/// Largest file accepted in a policy directory.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why a policy directory was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// The directory or a file in it could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The content is invalid; every problem found is listed.
    #[error("{} problem(s) in the policy directory:\n{}", .0.len(), .0.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

// === impl PolicyLoadError ===

impl PolicyLoadError {
    /// Every diagnostic, one per line, for logs and the admin endpoint.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            PolicyLoadError::Read { path, source } => {
                vec![Diagnostic::file(
                    &path.display().to_string(),
                    format!("cannot read: {source}"),
                )]
            }
            PolicyLoadError::Invalid(d) => d.clone(),
        }
    }
}

/// The raw files of a policy directory.
#[derive(Debug, Default)]
struct Files {
    schema: Option<String>,
    entities: Option<String>,
    /// `*.cedar` files, sorted by name.
    policies: Vec<(String, String)>,
    hash: String,
}

/// Reads, parses and validates a policy directory. `generation` is recorded
/// in the snapshot. Its per-principal caches get the default size.
pub fn load_dir(dir: &Path, generation: u64) -> Result<Snapshot, PolicyLoadError> {
    load_dir_with(dir, generation, DEFAULT_PRINCIPAL_ENTITIES)
}

/// [`load_dir`], with per-principal caches of at most `principal_entities`
/// entities (`cache.principal_entities`; 0: none).
pub fn load_dir_with(
    dir: &Path,
    generation: u64,
    principal_entities: u64,
) -> Result<Snapshot, PolicyLoadError> {
    let files = read_files(dir)?;
    let parts = build(files)?;
    Ok(Snapshot::new(parts, generation, principal_entities))
}

fn read_files(dir: &Path) -> Result<Files, PolicyLoadError> {
    let read_err = |path: &Path, source| PolicyLoadError::Read {
        path: path.to_owned(),
        source,
    };
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
        let entry = entry.map_err(|e| read_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Skip hidden entries: Kubernetes ConfigMap mounts keep `..data` and
        // timestamped directories next to the visible symlinks.
        if name.starts_with('.') {
            continue;
        }
        if name == SCHEMA_FILE || name == ENTITIES_FILE || name.ends_with(".cedar") {
            names.push(name);
        }
    }
    names.sort();
    let mut files = Files::default();
    let mut hasher = Sha256::new();
    for name in names {
        let path = dir.join(&name);
        // Follows symlinks, as ConfigMap mounts need.
        let meta = std::fs::metadata(&path).map_err(|e| read_err(&path, e))?;
        if !meta.is_file() {
            continue;
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(PolicyLoadError::Invalid(vec![Diagnostic::file(
                &name,
                format!(
                    "file is {} bytes, more than the {MAX_FILE_BYTES} allowed",
                    meta.len()
                ),
            )]));
        }
        let bytes = std::fs::read(&path).map_err(|e| read_err(&path, e))?;
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(&bytes);
        let text = String::from_utf8(bytes).map_err(|_| {
            PolicyLoadError::Invalid(vec![Diagnostic::file(&name, "file is not valid UTF-8")])
        })?;
        match name.as_str() {
            SCHEMA_FILE => files.schema = Some(text),
            ENTITIES_FILE => files.entities = Some(text),
            _ => files.policies.push((name, text)),
        }
    }
    files.hash = hex(&hasher.finalize());
    Ok(files)
}

fn build(files: Files) -> Result<Parts, PolicyLoadError> {
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut warnings: Vec<Diagnostic> = Vec::new();
    let schema = parse_schema(files.schema.as_deref(), &mut warnings)?;
    let Parsed {
        policies,
        origin,
        sources,
    } = parse_policies(&files.policies, &mut diags);
    if files.policies.is_empty() {
        warnings.push(Diagnostic::file(
            ".",
            "no `*.cedar` files: every request will be denied",
        ));
    }

    // Strict validation against the schema.
    let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
    for e in validation.validation_errors() {
        diags.push(located(&origin, &sources, e.policy_id(), e));
    }
    for w in validation.validation_warnings() {
        warnings.push(located(&origin, &sources, w.policy_id(), w));
    }
    check_model_ids(&policies, &origin, &mut diags);
    check_scope_annotations(&policies, &origin, &mut diags);
    check_unscoped_membership(&policies, &origin, &mut warnings);
    let entities = load_entities(files.entities.as_deref(), &schema, &mut diags);

    if !diags.is_empty() {
        return Err(PolicyLoadError::Invalid(diags));
    }
    Ok(Parts {
        schema,
        policies,
        entities,
        hash: files.hash,
        warnings,
    })
}

/// Where each policy came from: its file and its index in the file.
type Origin = HashMap<PolicyId, (String, usize)>;

/// The policies of every file, re-identified by `@id`.
struct Parsed<'a> {
    policies: PolicySet,
    origin: Origin,
    /// Each file's text, to locate diagnostics.
    sources: HashMap<String, &'a str>,
}

/// The schema; its absence or a parse error refuses the directory.
fn parse_schema(
    schema_text: Option<&str>,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Schema, PolicyLoadError> {
    let Some(schema_text) = schema_text else {
        return Err(PolicyLoadError::Invalid(vec![Diagnostic::file(
            SCHEMA_FILE,
            "missing: a policy directory needs a schema (policies are validated strictly against it)",
        )]));
    };
    match Schema::from_cedarschema_str(schema_text) {
        Ok((schema, schema_warnings)) => {
            for w in schema_warnings {
                warnings.extend(Diagnostic::from_miette(SCHEMA_FILE, schema_text, &w));
            }
            Ok(schema)
        }
        Err(e) => Err(PolicyLoadError::Invalid(Diagnostic::from_miette(
            SCHEMA_FILE,
            schema_text,
            &e,
        ))),
    }
}

/// Policies: parsed per file so diagnostics name the file; re-identified by @id.
fn parse_policies<'a>(files: &'a [(String, String)], diags: &mut Vec<Diagnostic>) -> Parsed<'a> {
    let mut policies = PolicySet::new();
    let mut origin: Origin = HashMap::new();
    let mut sources: HashMap<String, &str> = HashMap::new();
    for (file, text) in files {
        sources.insert(file.clone(), text);
        let set = match PolicySet::from_str(text) {
            Ok(set) => set,
            Err(e) => {
                diags.extend(Diagnostic::from_miette(file, text, &e));
                continue;
            }
        };
        if set.templates().next().is_some() {
            diags.push(Diagnostic::file(
                file,
                "policy templates are not supported; write static policies",
            ));
            continue;
        }
        // Keep the file's order (the parser numbers policies `policy0`, `policy1`,
        // ... in order) so generated ids are stable.
        let mut in_file: Vec<_> = set.policies().collect();
        in_file.sort_by_key(|p| {
            p.id()
                .to_string()
                .trim_start_matches("policy")
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        for (n, policy) in in_file.into_iter().enumerate() {
            let id = match policy.annotation("id") {
                Some(id) if !id.trim().is_empty() => id.to_owned(),
                Some(_) => {
                    diags.push(Diagnostic::file(
                        file,
                        format!("policy #{n} has an empty `@id`"),
                    ));
                    continue;
                }
                None => format!("{file}#{n}"),
            };
            let pid = PolicyId::new(&id);
            if let Some((other, _)) = origin.get(&pid) {
                diags.push(Diagnostic::file(
                    file,
                    format!("duplicate policy id `{id}` (also in `{other}`)"),
                ));
                continue;
            }
            if let Err(e) = policies.add(policy.new_id(pid.clone())) {
                diags.push(Diagnostic::file(file, format!("policy `{id}`: {e}")));
                continue;
            }
            origin.insert(pid, (file.clone(), n));
        }
    }
    Parsed {
        policies,
        origin,
        sources,
    }
}

/// A `Model` id that is not canonical never matches: cedar-gate lower-cases model
/// ids (classify::model), so a forbid on `Model::"GPT-4o"` would silently never apply.
fn check_model_ids(policies: &PolicySet, origin: &Origin, diags: &mut Vec<Diagnostic>) {
    for policy in policies.policies() {
        if let Ok(json) = policy.to_json() {
            for id in non_canonical_model_ids(&json) {
                let file = origin
                    .get(policy.id())
                    .map(|(f, _)| f.as_str())
                    .unwrap_or(".");
                diags.push(Diagnostic::file(
                    file,
                    format!("policy `{}` names {}", policy.id(), model_id_problem(&id)),
                ));
            }
        }
    }
}

/// A malformed `@scope` would otherwise be silently ignored (no step-up challenge).
fn check_scope_annotations(policies: &PolicySet, origin: &Origin, diags: &mut Vec<Diagnostic>) {
    for policy in policies.policies() {
        if let Some(problem) = crate::policy::scope::annotation_problem(policy) {
            let file = origin
                .get(policy.id())
                .map(|(f, _)| f.as_str())
                .unwrap_or(".");
            diags.push(Diagnostic::file(
                file,
                format!("policy `{}`: {problem}", policy.id()),
            ));
        }
    }
}

/// Unscoped membership tests cost every request (slicing cannot skip them).
fn check_unscoped_membership(
    policies: &PolicySet,
    origin: &Origin,
    warnings: &mut Vec<Diagnostic>,
) {
    for id in crate::policy::slice::unscoped_membership_tests(policies) {
        let file = origin.get(&id).map(|(f, _)| f.as_str()).unwrap_or(".");
        warnings.push(Diagnostic::file(
            file,
            format!(
                "policy `{id}` tests `principal in ...` inside its condition with an unconstrained principal: \
                 it is evaluated for every request; put the group in the scope (`principal in Group::\"...\"`) \
                 so that requests from other principals skip it"
            ),
        ));
    }
}

/// Entities, validated against the schema; workload attributes derived from ids.
fn load_entities(text: Option<&str>, schema: &Schema, diags: &mut Vec<Diagnostic>) -> Entities {
    let entities = match text {
        None => schema
            .action_entities()
            .map_err(|e| Diagnostic::file(ENTITIES_FILE, e.to_string())),
        Some(text) => parse_entities(text, schema),
    };
    let entities = entities.unwrap_or_else(|d| {
        diags.push(d);
        Entities::empty()
    });

    for e in entities.iter() {
        let uid = e.uid();
        let id = uid.id().unescaped();
        if uid.type_name().to_string() == MODEL && !is_canonical_model_id(id) {
            diags.push(Diagnostic::file(
                ENTITIES_FILE,
                format!("entity {}", model_id_problem(id)),
            ));
        }
    }

    entities
}

/// Whether a `Model` id is one cedar-gate can resolve a request to: lower
/// case, and without Ollama's default registry, namespace or tag
/// (`classify::model`).
fn is_canonical_model_id(id: &str) -> bool {
    id == id.to_lowercase() && crate::vocab::without_ollama_defaults(id) == id
}

/// Why a `Model` id never matches (see [`is_canonical_model_id`]).
fn model_id_problem(id: &str) -> String {
    let lower = id.to_lowercase();
    if id != lower {
        format!(
            "`Model::\"{id}\"`: model ids are lower case (cedar-gate resolves every spelling to `Model::\"{}\"`), so this one never matches",
            crate::vocab::without_ollama_defaults(&lower)
        )
    } else {
        format!(
            "`Model::\"{id}\"`: model ids drop Ollama's default `registry.ollama.ai/`, `library/` and `:latest` (cedar-gate resolves every spelling to `Model::\"{}\"`), so this one never matches",
            crate::vocab::without_ollama_defaults(id)
        )
    }
}

/// `Model` entity ids in a policy's JSON form (scope constraints and literals) that are
/// not lower case.
fn non_canonical_model_ids(json: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![json];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(map) => {
                if let (Some(serde_json::Value::String(ty)), Some(serde_json::Value::String(id))) =
                    (map.get("type"), map.get("id"))
                    && ty == MODEL
                    && !is_canonical_model_id(id)
                {
                    out.push(id.clone());
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

fn parse_entities(text: &str, schema: &Schema) -> Result<Entities, Diagnostic> {
    let mut json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Diagnostic::json_syntax(ENTITIES_FILE, &e))?;
    let whole = |m: &str| Diagnostic::file(ENTITIES_FILE, m);
    let list = json
        .as_array_mut()
        .ok_or_else(|| whole("must be a JSON array of entities"))?;
    let mut bad: Option<(usize, String)> = None;
    for (i, entity) in list.iter_mut().enumerate() {
        if let Err(m) = derive_workload_attrs(entity) {
            bad = Some((i, m));
            break;
        }
    }
    let list = json.as_array().map(Vec::as_slice).unwrap_or_default();
    if let Some((i, m)) = bad {
        let at = EntityAt {
            index: Some(i),
            attr: None,
        };
        return Err(Diagnostic::entity(ENTITIES_FILE, text, list, &at, &m));
    }
    Entities::from_json_value(json.clone(), Some(schema))
        .map_err(|e| entities_error(ENTITIES_FILE, text, list, &e, schema))
}

/// Workload attributes come from the SPIFFE id, exactly as at request time, so
/// entities.json lists only a workload's parents.
fn derive_workload_attrs(entity: &mut serde_json::Value) -> Result<(), String> {
    let ty = entity
        .pointer("/uid/type")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    if ty != WORKLOAD {
        return Ok(());
    }
    let id = entity
        .pointer("/uid/id")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    let spiffe =
        SpiffeId::parse(id).map_err(|e| format!("`Workload` id `{id}` is not a SPIFFE id: {e}"))?;
    let attrs = entity
        .as_object_mut()
        .ok_or("not an object")?
        .entry("attrs")
        .or_insert_with(|| serde_json::json!({}));
    let attrs = attrs.as_object_mut().ok_or("`attrs` is not an object")?;
    for (k, v) in workload_attrs(&spiffe) {
        if let crate::vocab::Value::Str(s) = v {
            attrs.insert(k, serde_json::Value::String(s));
        }
    }
    Ok(())
}

/// A validation diagnostic located at its file, line and column.
fn located(
    origin: &HashMap<PolicyId, (String, usize)>,
    sources: &HashMap<String, &str>,
    id: &PolicyId,
    err: &dyn miette::Diagnostic,
) -> Diagnostic {
    match origin.get(id) {
        Some((file, _)) => {
            let source = sources.get(file).copied().unwrap_or_default();
            // Cedar's messages already name the policy.
            let mut d = Diagnostic::from_miette(file, source, err);
            d.pop()
                .unwrap_or_else(|| Diagnostic::file(file, err.to_string()))
        }
        None => Diagnostic {
            file: None,
            line: None,
            column: None,
            message: format!("policy `{id}`: {err}"),
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn load(policy: &str, entities: &str) -> Result<Snapshot, PolicyLoadError> {
        let dir = tempfile::tempdir().unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("cedar/schema.cedarschema");
        std::fs::copy(shipped, dir.path().join(SCHEMA_FILE)).unwrap();
        std::fs::write(dir.path().join("p.cedar"), policy).unwrap();
        std::fs::write(dir.path().join(ENTITIES_FILE), entities).unwrap();
        load_dir(dir.path(), 1)
    }

    #[test]
    fn model_ids_must_be_canonical() {
        let ok = r#"forbid (principal, action, resource == Model::"o1");"#;
        assert!(load(ok, "[]").is_ok());
        for (policy, entities) in [
            (
                r#"forbid (principal, action, resource == Model::"O1");"#,
                "[]",
            ),
            (
                r#"forbid (principal, action, resource) when { resource == Model::"GPT-4o" };"#,
                "[]",
            ),
            (
                ok,
                r#"[{"uid":{"type":"Model","id":"GPT-4o"},"attrs":{},"parents":[]}]"#,
            ),
        ] {
            let err = load(policy, entities).unwrap_err().to_string();
            assert!(err.contains("model ids are lower case"), "{err}");
        }
        for (policy, entities) in [
            (
                r#"forbid (principal, action, resource == Model::"llama3:latest");"#,
                "[]",
            ),
            (
                ok,
                r#"[{"uid":{"type":"Model","id":"library/llama3"},"attrs":{},"parents":[]}]"#,
            ),
        ] {
            let err = load(policy, entities).unwrap_err().to_string();
            assert!(err.contains("drop Ollama's default"), "{err}");
            assert!(err.contains(r#"Model::"llama3""#), "{err}");
        }
    }
}
