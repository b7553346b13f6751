//! Command-line interface: `serve`, `validate`, `check`, `test`, and the policy review
//! commands `diff`, `access`, `shadow-report` (see docs/policy-review.md).

pub mod access;
pub mod check;
pub mod diff;
pub mod keys;
pub mod prove;
pub mod shadow_report;
pub mod test;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// cedar-gate: Envoy ext_authz with Cedar policies for AI traffic.
#[derive(Debug, Parser)]
#[command(name = "cedar-gate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve ext_authz over gRPC, with an admin HTTP port.
    Serve(ServeArgs),
    /// Issue, list, revoke and rotate gateway API keys (the key store file).
    Keys(crate::cli::keys::KeysArgs),
    /// Check a policy directory (schema, policies, entities); exit 1 with every diagnostic.
    Validate(ValidateArgs),
    /// Decide one request offline and explain the decision.
    Check(CheckArgs),
    /// Run policy unit tests: named requests with their expected decisions.
    Test(TestArgs),
    /// Prove who gains or loses access between two policy directories (needs cvc5).
    Diff(diff::DiffArgs),
    /// Entitlement report: who may use which model and tool, through which policy (needs cvc5).
    Access(access::AccessArgs),
    /// Count, per `@shadow` policy, the decisions its promotion would change (from the audit log).
    ShadowReport(shadow_report::ShadowReportArgs),
}

/// `serve` flags; each can also come from the environment.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// YAML config file.
    #[arg(long, env = "CEDAR_GATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Policy directory (overrides `policy_dir` in the config).
    #[arg(long, env = "CEDAR_GATE_POLICY_DIR")]
    pub policy_dir: Option<PathBuf>,
    /// gRPC listen address [default: 0.0.0.0:9191].
    #[arg(long, env = "CEDAR_GATE_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,
    /// Admin HTTP listen address [default: 0.0.0.0:9464].
    #[arg(long, env = "CEDAR_GATE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
}

/// `validate` flags.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Policy directory.
    #[arg(long, env = "CEDAR_GATE_POLICY_DIR")]
    pub policy_dir: PathBuf,
    /// Also prove, per policy, that it never errors, is not dead, and (a permit) is not
    /// overridden by forbids (needs the cvc5 solver, see docs/policy-review.md).
    #[arg(long)]
    pub prove: bool,
    /// With `--prove`: print the proof report as JSON.
    #[arg(long, requires = "prove")]
    pub json: bool,
}

/// `check` flags.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Policy directory.
    #[arg(long, env = "CEDAR_GATE_POLICY_DIR")]
    pub policy_dir: PathBuf,
    /// JSON request file (`-` for standard input).
    #[arg(long)]
    pub request: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `test` flags.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Policy directory.
    #[arg(long, env = "CEDAR_GATE_POLICY_DIR")]
    pub policy_dir: PathBuf,
    /// Cases files (YAML `.yaml`/`.yml`, otherwise JSON).
    #[arg(required = true)]
    pub cases: Vec<PathBuf>,
}
