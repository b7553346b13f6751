//! The SMT solver: finding a cvc5 1.3.1 executable, and running symcc queries on it.
//!
//! symcc's `LocalSolver::cvc5()` would spawn whatever `CVC5` or `PATH` names and fail
//! with a bare I/O error when there is none; this looks first and says what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicy, CompiledPolicySet, Env};

/// How users get a solver; printed with every "no solver" error.
pub const INSTALL_HINT: &str = "install cvc5 1.3.1 and set `CVC5` to its path (or put `cvc5` on PATH): \
either the release binary (https://github.com/cvc5/cvc5/releases/tag/cvc5-1.3.1), or the PyPI wheel \
`cvc5==1.3.1` with cedar-gate's driver scripts/cvc5-driver.py, which `make solver` installs as \
.venv/bin/cvc5; see docs/policy-review.md";

/// Per-query time limit handed to the solver, in milliseconds.
const TIME_LIMIT_MS: u32 = 60_000;

/// Why the solver could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    /// No executable found.
    #[error("no SMT solver: {0}; {INSTALL_HINT}")]
    NotFound(String),
    /// The executable exists but did not start or answer.
    #[error("the SMT solver `{path}` does not work: {message}; {INSTALL_HINT}")]
    Broken {
        /// The executable.
        path: String,
        /// What happened.
        message: String,
    },
    /// A query failed (the solver died, timed out, or answered `unknown`).
    #[error("solver query ({what}) failed: {message}")]
    Query {
        /// Which question.
        what: String,
        /// symcc's message.
        message: String,
    },
}

/// Finds the cvc5 executable: `CVC5` (an absolute path, or a name looked up on
/// PATH), else `cvc5` on PATH.
pub fn find_cvc5() -> Result<PathBuf, SolverError> {
    let (name, from_env) = match std::env::var_os("CVC5") {
        Some(v) if !v.is_empty() => (PathBuf::from(v), true),
        _ => (PathBuf::from("cvc5"), false),
    };
    let found = if name.components().count() > 1 {
        name.is_file().then(|| name.clone())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(&name))
                .find(|p| p.is_file())
        })
    };
    found.ok_or_else(|| {
        SolverError::NotFound(if from_env {
            format!(
                "`CVC5` is set to `{}`, which does not exist",
                name.display()
            )
        } else {
            "`CVC5` is not set and there is no `cvc5` on PATH".to_owned()
        })
    })
}

/// A symcc compiler over one solver process, with the runtime its async API needs.
pub struct Prover {
    runtime: tokio::runtime::Runtime,
    compiler: CedarSymCompiler<LocalSolver>,
    path: PathBuf,
    /// Solver queries made so far.
    pub queries: u64,
    /// Time spent in them (encoding, solving, decoding).
    pub query_time: std::time::Duration,
}

impl std::fmt::Debug for Prover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prover")
            .field("solver", &self.path)
            .field("queries", &self.queries)
            .finish_non_exhaustive()
    }
}

// === impl Prover ===

impl Prover {
    /// Finds the solver, starts it and checks that it answers.
    pub fn start() -> Result<Self, SolverError> {
        let path = find_cvc5()?;
        Self::start_at(&path)
    }

    /// Starts the solver at `path`.
    pub fn start_at(path: &Path) -> Result<Self, SolverError> {
        let broken = |message: String| SolverError::Broken {
            path: path.display().to_string(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| broken(format!("cannot start a runtime: {e}")))?;
        let solver = runtime
            .block_on(async {
                LocalSolver::from_command(
                    tokio::process::Command::new(path)
                        .args(["--lang", "smt"])
                        .arg(format!("--tlimit={TIME_LIMIT_MS}"))
                        .kill_on_drop(true),
                )
            })
            .map_err(|e| broken(e.to_string()))?;
        let compiler = CedarSymCompiler::new(solver).map_err(|e| broken(e.to_string()))?;
        let mut prover = Self {
            runtime,
            compiler,
            path: path.to_owned(),
            queries: 0,
            query_time: std::time::Duration::ZERO,
        };
        prover.self_test().map_err(|e| broken(e.to_string()))?;
        Ok(prover)
    }

    /// The solver executable in use.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One trivial query, so a wrong executable fails here with a clear message
    /// rather than in the middle of an analysis.
    fn self_test(&mut self) -> Result<(), SolverError> {
        let out = Command::new(&self.path)
            .arg("--version")
            .output()
            .map_err(|e| SolverError::Query {
                what: "--version".into(),
                message: e.to_string(),
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains("1.3.1") {
            // symcc is tested against 1.3.1; other versions may print models it
            // cannot read. Not fatal, but say so.
            eprintln!(
                "warning: `{}` is not cvc5 1.3.1 (it says `{}`); symcc expects 1.3.1",
                self.path.display(),
                text.lines().next().unwrap_or("").trim()
            );
        }
        Ok(())
    }

    fn query<T>(
        &mut self,
        what: impl FnOnce() -> String,
        f: impl AsyncFnOnce(
            &mut CedarSymCompiler<LocalSolver>,
        ) -> Result<T, cedar_policy_symcc::err::Error>,
    ) -> Result<T, SolverError> {
        self.queries += 1;
        let started = std::time::Instant::now();
        let compiler = &mut self.compiler;
        let out = self
            .runtime
            .block_on(f(compiler))
            .map_err(|e| SolverError::Query {
                what: what(),
                message: e.to_string(),
            });
        self.query_time += started.elapsed();
        out
    }

    /// A request allowed by `a` and denied by `b`, if any.
    pub fn allowed_by_not(
        &mut self,
        a: &CompiledPolicySet,
        b: &CompiledPolicySet,
    ) -> Result<Option<Env>, SolverError> {
        self.query(
            || "implies".into(),
            async |c| c.check_implies_with_counterexample_opt(a, b).await,
        )
    }

    /// Whether `a` and `b` decide every request alike.
    pub fn equivalent(
        &mut self,
        a: &CompiledPolicySet,
        b: &CompiledPolicySet,
    ) -> Result<bool, SolverError> {
        self.query(
            || "equivalent".into(),
            async |c| c.check_equivalent_opt(a, b).await,
        )
    }

    /// A request for which `policy` errors, if any.
    pub fn may_error(&mut self, policy: &CompiledPolicy) -> Result<Option<Env>, SolverError> {
        self.query(
            || "never-errors".into(),
            async |c| c.check_never_errors_with_counterexample_opt(policy).await,
        )
    }

    /// A request `policy` matches, if any.
    pub fn some_match(&mut self, policy: &CompiledPolicy) -> Result<Option<Env>, SolverError> {
        self.query(
            || "never-matches".into(),
            async |c| c.check_never_matches_with_counterexample_opt(policy).await,
        )
    }

    /// A request `set` allows, if any.
    pub fn some_allow(&mut self, set: &CompiledPolicySet) -> Result<Option<Env>, SolverError> {
        self.query(
            || "always-denies".into(),
            async |c| c.check_always_denies_with_counterexample_opt(set).await,
        )
    }

    /// A request `set` denies, if any.
    pub fn some_deny(&mut self, set: &CompiledPolicySet) -> Result<Option<Env>, SolverError> {
        self.query(
            || "always-allows".into(),
            async |c| c.check_always_allows_with_counterexample_opt(set).await,
        )
    }
}
