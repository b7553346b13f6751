//! Offline policy analysis: impact of a change (`diff`), the entitlement report
//! (`access`), proofs about single policies (`validate --prove`) and shadow results
//! (`shadow-report`).
//!
//! The proofs come from `cedar-policy-symcc`, Cedar's symbolic compiler, which turns
//! a question about policies ("does NEW allow anything OLD denies?") into SMT and asks
//! a cvc5 process. Every counterexample it finds is decided again with the ordinary
//! authorizer before it is reported. None of this is on the `serve` path: the server
//! never needs a solver.

pub mod access;
pub(crate) mod action_classes;
pub mod cells;
pub mod diff;
pub mod fold;
pub mod guardrails;
pub mod prove;
pub mod setdir;
pub mod shadow_report;
pub mod solver;

pub use setdir::PolicyDir;
pub use solver::{Prover, SolverError};

/// Why an analysis could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A policy directory did not load.
    #[error("`{dir}`: {message}")]
    Load {
        /// The directory.
        dir: String,
        /// Every diagnostic, one per line.
        message: String,
    },
    /// The solver could not be started or failed.
    #[error(transparent)]
    Solver(#[from] SolverError),
    /// Symbolic compilation of a policy set failed.
    #[error("symbolic compilation of {what}: {message}")]
    Compile {
        /// Which policies, for which request signature.
        what: String,
        /// symcc's message.
        message: String,
    },
    /// A git revision could not be read.
    #[error("git: {0}")]
    Git(String),
    /// An input file could not be read or parsed.
    #[error("`{path}`: {message}")]
    Input {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}
