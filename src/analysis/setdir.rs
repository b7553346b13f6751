//! A policy directory as the analyses see it: the loaded [`Snapshot`] (the same
//! loader and validation as `serve`), plus where each policy is written and who owns it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{Policy, PolicyId, PolicySet, RequestEnv, Schema};

use crate::analysis::AnalysisError;
use crate::analysis::fold::Prepared;
use crate::policy::load::{ENTITIES_FILE, SCHEMA_FILE};
use crate::policy::{Snapshot, load_dir};

/// Where a policy comes from and who answers for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyInfo {
    /// The policy id (`@id`, else `<file>#<n>`).
    pub id: String,
    /// `permit` or `forbid`.
    pub effect: &'static str,
    /// `@owner`, when given.
    pub owner: Option<String>,
    /// File inside the directory.
    pub file: String,
    /// 1-based line of the policy's first line (its first annotation).
    pub line: usize,
    /// `@shadow`: evaluated next to the enforced set, never enforced.
    pub shadow: bool,
}

/// An enforced policy, its JSON form, and the request signatures it applies to.
#[derive(Debug)]
struct Applies {
    policy: Policy,
    json: serde_json::Value,
    /// The JSON text without annotations: equal texts mean the same.
    text: String,
    envs: HashSet<RequestEnv>,
}

type EnvsOf = std::rc::Rc<Vec<Applies>>;

/// A loaded policy directory.
#[derive(Debug)]
pub struct PolicyDir {
    /// What the user named it (a path, or `REV:PATH`).
    pub label: String,
    /// The snapshot `serve` would build from it.
    pub snapshot: Snapshot,
    /// Every policy, enforced and shadow, by id.
    pub info: BTreeMap<String, PolicyInfo>,
    /// The schema file's text (to tell whether a change touches it).
    pub schema_text: String,
    /// Applicable policies per request signature, computed once: finding them
    /// type-checks every policy.
    relevant: std::cell::RefCell<HashMap<(usize, RequestEnv), std::rc::Rc<Prepared>>>,
    /// Per schema (by address), the request signatures each enforced policy applies
    /// to, in `enforced()` order: one type-check pass per policy, where asking per
    /// signature would type-check every policy against every signature again.
    envs_of: std::cell::RefCell<HashMap<usize, EnvsOf>>,
}

// === impl PolicyDir ===

impl PolicyDir {
    /// Loads a directory, or `REV:PATH` (a git revision of a directory, read with
    /// `git show`) when `spec` is not a directory and contains a colon.
    pub fn load(spec: &str) -> Result<Self, AnalysisError> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Self::load_path(spec, path);
        }
        match spec.split_once(':') {
            Some((rev, dir)) if !rev.is_empty() => {
                let tmp = GitCheckout::new(rev, dir)?;
                Self::load_path(spec, &tmp.path)
            }
            _ => Err(AnalysisError::Load {
                dir: spec.to_owned(),
                message: "not a directory (nor `REV:PATH`, a git revision of one)".to_owned(),
            }),
        }
    }

    fn load_path(label: &str, dir: &Path) -> Result<Self, AnalysisError> {
        let snapshot = load_dir(dir, 1).map_err(|e| AnalysisError::Load {
            dir: label.to_owned(),
            message: e
                .diagnostics()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n  "),
        })?;
        let info = locate(dir)?;
        let schema_text = std::fs::read_to_string(dir.join(SCHEMA_FILE)).unwrap_or_default();
        Ok(Self {
            label: label.to_owned(),
            snapshot,
            info,
            schema_text,
            relevant: Default::default(),
            envs_of: Default::default(),
        })
    }

    /// The enforced policies.
    pub fn enforced(&self) -> &PolicySet {
        self.snapshot.policy_set()
    }

    /// Enforced ∪ shadow policies.
    pub fn with_shadow(&self) -> &PolicySet {
        self.snapshot
            .shadow_policy_set()
            .unwrap_or_else(|| self.snapshot.policy_set())
    }

    /// The enforced policies that can apply to requests of `env` under `schema`.
    pub fn relevant(&self, env: &RequestEnv, schema: &Schema) -> std::rc::Rc<Prepared> {
        let key = (std::ptr::from_ref(schema) as usize, env.clone());
        if let Some(set) = self.relevant.borrow().get(&key) {
            return set.clone();
        }
        // The JSON forms are made once per policy, in `envs_of`.
        let set: std::rc::Rc<Prepared> = std::rc::Rc::new(
            self.envs_of(schema)
                .iter()
                .filter(|a| a.envs.contains(env))
                .map(|a| (a.policy.clone(), a.json.clone()))
                .collect(),
        );
        self.relevant.borrow_mut().insert(key, set.clone());
        set
    }

    /// The texts (without annotations) of the enforced policies that apply to `env`,
    /// sorted: equal on two sides, the policies of `env` mean the same.
    pub fn relevant_texts(&self, env: &RequestEnv, schema: &Schema) -> Vec<String> {
        let mut out: Vec<String> = self
            .envs_of(schema)
            .iter()
            .filter(|a| a.envs.contains(env))
            .map(|a| a.text.clone())
            .collect();
        out.sort();
        out
    }

    fn envs_of(&self, schema: &Schema) -> EnvsOf {
        let key = std::ptr::from_ref(schema) as usize;
        if let Some(v) = self.envs_of.borrow().get(&key) {
            return v.clone();
        }
        let v: EnvsOf = std::rc::Rc::new(
            self.enforced()
                .policies()
                .filter_map(|p| {
                    let json = p.to_json().ok()?;
                    let mut bare = json.clone();
                    if let Some(o) = bare.as_object_mut() {
                        o.remove("annotations");
                    }
                    Some(Applies {
                        policy: p.clone(),
                        text: bare.to_string(),
                        json,
                        envs: p.get_valid_request_envs(schema).collect(),
                    })
                })
                .collect(),
        );
        self.envs_of.borrow_mut().insert(key, v.clone());
        v
    }

    /// What is known about a policy (always present for loaded policies).
    pub fn policy_info(&self, id: &PolicyId) -> PolicyInfo {
        let id = id.to_string();
        self.info.get(&id).cloned().unwrap_or(PolicyInfo {
            id,
            effect: "permit",
            owner: None,
            file: String::new(),
            line: 0,
            shadow: false,
        })
    }
}

/// Re-reads the `*.cedar` files (already validated by the loader) for file, line and
/// owner of each policy, numbering policies without `@id` as the loader does.
fn locate(dir: &Path) -> Result<BTreeMap<String, PolicyInfo>, AnalysisError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| input(dir, e.to_string()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n.ends_with(".cedar"))
        .collect();
    names.sort();
    let mut out = BTreeMap::new();
    for name in names {
        let text = std::fs::read_to_string(dir.join(&name))
            .map_err(|e| input(&dir.join(&name), e.to_string()))?;
        let Ok(set) = PolicySet::from_str(&text) else {
            continue;
        };
        let mut in_file: Vec<&Policy> = set.policies().collect();
        in_file.sort_by_key(|p| {
            p.id()
                .to_string()
                .trim_start_matches("policy")
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        let mut from = 0;
        for (n, p) in in_file.into_iter().enumerate() {
            let id = p
                .annotation("id")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{name}#{n}"));
            let src = p.to_cedar().unwrap_or_default();
            let offset = text
                .get(from..)
                .and_then(|rest| rest.find(src.trim()))
                .map(|o| o + from)
                .unwrap_or(from);
            from = offset + 1;
            let line = text.get(..offset).unwrap_or("").matches('\n').count() + 1;
            out.insert(
                id.clone(),
                PolicyInfo {
                    id,
                    effect: match p.effect() {
                        cedar_policy::Effect::Permit => "permit",
                        cedar_policy::Effect::Forbid => "forbid",
                    },
                    owner: p.annotation("owner").map(str::to_owned),
                    file: name.clone(),
                    line,
                    shadow: p
                        .annotation(crate::policy::snapshot::SHADOW_ANNOTATION)
                        .is_some(),
                },
            );
        }
    }
    Ok(out)
}

fn input(path: &Path, message: String) -> AnalysisError {
    AnalysisError::Input {
        path: path.display().to_string(),
        message,
    }
}

/// A policy directory at a git revision, written to a temporary directory.
struct GitCheckout {
    path: PathBuf,
}

impl GitCheckout {
    fn new(rev: &str, dir: &str) -> Result<Self, AnalysisError> {
        // `REV:./dir` is relative to the current directory, as users type paths.
        let dir = dir.trim_end_matches('/');
        let rel = if dir.starts_with("./") || dir.is_empty() {
            dir.to_owned()
        } else {
            format!("./{dir}")
        };
        let tree = format!("{rev}:{rel}");
        let listing = git(&["ls-tree", "--name-only", &tree])?;
        let path = std::env::temp_dir().join(format!(
            "cedar-gate-rev-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).map_err(|e| AnalysisError::Git(e.to_string()))?;
        let checkout = Self { path };
        for name in String::from_utf8_lossy(&listing).lines() {
            if name == SCHEMA_FILE || name == ENTITIES_FILE || name.ends_with(".cedar") {
                let bytes = git(&["show", &format!("{tree}/{name}")])?;
                std::fs::write(checkout.path.join(name), bytes)
                    .map_err(|e| AnalysisError::Git(e.to_string()))?;
            }
        }
        Ok(checkout)
    }
}

impl Drop for GitCheckout {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn git(args: &[&str]) -> Result<Vec<u8>, AnalysisError> {
    let out = std::process::Command::new("git")
        .args(args)
        .output()
        .map_err(|e| AnalysisError::Git(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(AnalysisError::Git(format!(
            "`git {}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}
