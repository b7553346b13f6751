//! `cedar-gate diff OLD NEW`: the access a policy change grants or takes away.

use std::path::PathBuf;

use crate::analysis::diff::{DiffReport, Finding, Kind, diff};
use crate::analysis::{PolicyDir, Prover};

/// `diff` flags.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The policy directory before the change (or `REV:PATH`, a git revision of one).
    pub old: String,
    /// The policy directory after the change (or `REV:PATH`).
    pub new: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit 3 when the change grants access (`gains`), takes it away (`losses`), or either (`any`).
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
    /// Also write every counterexample as a `check` request file into this directory.
    #[arg(long)]
    pub examples_dir: Option<PathBuf>,
}

/// What makes `diff` fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Any gain.
    Gains,
    /// Any loss.
    Losses,
    /// Any gain or loss.
    Any,
}

/// Exit code when `--fail-on` matched.
pub const EXIT_CHANGED: i32 = 3;

/// Runs `diff`; returns the exit code (0, 1 on bad input or no solver, 3 with `--fail-on`).
pub fn run(args: &DiffArgs) -> i32 {
    let started = std::time::Instant::now();
    let loaded = PolicyDir::load(&args.old).and_then(|o| Ok((o, PolicyDir::load(&args.new)?)));
    let (old, new) = match loaded {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let mut prover = match Prover::start() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let report = match diff(&old, &new, &mut prover) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if let Some(dir) = &args.examples_dir
        && let Err(e) = write_examples(dir, &report)
    {
        eprintln!("error: `{}`: {e}", dir.display());
        return 1;
    }
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
    } else {
        print_text(&report);
        println!(
            "checked {} request signatures ({} with changed policies) with {} solver queries ({:.2} s) in {:.2} s",
            report.signatures,
            report.signatures_proved,
            report.solver_queries,
            prover.query_time.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
    if !report.unconfirmed.is_empty() {
        eprintln!(
            "warning: {} counterexample(s) were not confirmed by the authorizer (listed under `unconfirmed`)",
            report.unconfirmed.len()
        );
    }
    let fail = match args.fail_on {
        None => false,
        Some(FailOn::Gains) => report.has(Kind::Gain),
        Some(FailOn::Losses) => report.has(Kind::Loss),
        Some(FailOn::Any) => report.has(Kind::Gain) || report.has(Kind::Loss),
    };
    if fail { EXIT_CHANGED } else { 0 }
}

fn write_examples(dir: &std::path::Path, report: &DiffReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (i, f) in report.gains.iter().chain(&report.losses).enumerate() {
        let kind = match f.kind {
            Kind::Gain => "gain",
            Kind::Loss => "loss",
        };
        let doc = serde_json::json!({
            "request": f.example.request,
            "old": f.example.old,
            "new": f.example.new,
        });
        std::fs::write(
            dir.join(format!("{kind}-{i:03}.json")),
            serde_json::to_string_pretty(&doc).unwrap_or_default(),
        )?;
    }
    Ok(())
}

fn owner(o: &Option<String>) -> String {
    o.as_deref()
        .map_or_else(|| "no @owner".to_owned(), |o| format!("@owner {o}"))
}

/// The human form.
pub fn print_text(r: &DiffReport) {
    println!("diff {} -> {}", r.old, r.new);
    for p in &r.added {
        println!(
            "  added    {} {} ({}) {}:{}",
            p.effect,
            p.id,
            owner(&p.owner),
            p.file,
            p.line
        );
    }
    for p in &r.removed {
        println!(
            "  removed  {} {} ({}) {}:{}",
            p.effect,
            p.id,
            owner(&p.owner),
            p.file,
            p.line
        );
    }
    for c in &r.changed {
        println!(
            "  changed  {} {} ({}) {}:{}{}",
            c.new.effect,
            c.new.id,
            owner(&c.new.owner),
            c.new.file,
            c.new.line,
            if c.annotations_only {
                " (annotations only)"
            } else {
                ""
            }
        );
    }
    for c in &r.renamed {
        println!(
            "  renamed  {} -> {} ({}), same meaning",
            c.old.id,
            c.new.id,
            owner(&c.new.owner)
        );
    }
    if r.schema_changed {
        println!("  schema changed");
    }
    for e in &r.entities_changed {
        println!("  entity   {e}: groups or attributes changed");
    }
    if r.added.is_empty()
        && r.removed.is_empty()
        && r.changed.is_empty()
        && r.renamed.is_empty()
        && r.entities_changed.is_empty()
        && !r.schema_changed
    {
        println!("  no policy, entity or schema changes");
    }
    println!();
    print_findings("gains (NEW allows, OLD denied)", &r.gains);
    print_findings("losses (NEW denies, OLD allowed)", &r.losses);
    if !r.unconfirmed.is_empty() {
        print_findings("unconfirmed counterexamples", &r.unconfirmed);
    }
    if r.gains.is_empty() && r.losses.is_empty() {
        println!("no access change: proved for every request signature");
    }
}

fn print_findings(title: &str, list: &[Finding]) {
    if list.is_empty() {
        return;
    }
    println!("{title}: {}", list.len());
    for f in list {
        let verb = match f.kind {
            Kind::Gain => "may now",
            Kind::Loss => "may no longer",
        };
        println!(
            "  {} {verb} {} {}",
            f.principal,
            f.actions
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", "),
            f.resource
        );
        let ctx = context_summary(&f.example.request);
        if !ctx.is_empty() {
            println!("    when {ctx}");
        }
        let d = |x: &crate::analysis::cells::Decided| {
            if x.policies.is_empty() {
                format!("{} ({})", x.decision, x.reason)
            } else {
                format!("{} by {}", x.decision, x.policies.join(", "))
            }
        };
        println!(
            "    OLD: {}; NEW: {}{}",
            d(&f.example.old),
            d(&f.example.new),
            if f.concrete {
                ""
            } else {
                " [abstract: no entity in entities.json shows it; see --json for the entity data]"
            }
        );
    }
    println!();
}

/// The parts of a counterexample's context that matter most to a reader: the AI
/// and MCP records, and the token facts; the full context is in `--json`.
fn context_summary(request: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    let ctx = request.get("context");
    for (rec, keys) in [
        ("ai", &["max_output_tokens", "stream", "has_tools"][..]),
        ("mcp", &["method", "tool"][..]),
        ("auth", &["method", "token_age_seconds", "actor"][..]),
        ("request", &["method", "path"][..]),
    ] {
        let Some(r) = ctx.and_then(|c| c.get(rec)) else {
            continue;
        };
        for k in keys {
            if let Some(v) = r.get(*k) {
                parts.push(format!("context.{rec}.{k} = {v}"));
            }
        }
    }
    parts.join(", ")
}
