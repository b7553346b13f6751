//! `cedar-gate shadow-report AUDIT.jsonl`.

use std::io::BufReader;
use std::path::PathBuf;

use crate::analysis::shadow_report::report;

/// `shadow-report` flags.
#[derive(Debug, clap::Args)]
pub struct ShadowReportArgs {
    /// Audit log, JSON Lines (`-` for standard input).
    pub audit: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `shadow-report`; returns the exit code.
pub fn run(args: &ShadowReportArgs) -> i32 {
    let result = if args.audit.as_os_str() == "-" {
        report(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&args.audit) {
            Ok(f) => report(BufReader::new(f)),
            Err(e) => Err(e),
        }
    };
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", args.audit.display());
            return 1;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&r) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
        return 0;
    }
    println!(
        "{} audit events, {} with a shadow decision, {} agree, {} would change; {} lines skipped",
        r.lines - r.skipped,
        r.with_shadow,
        r.agree,
        r.with_shadow - r.agree,
        r.skipped
    );
    if r.policies.is_empty() {
        println!("no shadow policy would change a decision");
    }
    for (id, c) in &r.policies {
        let owner = c
            .owner
            .as_deref()
            .map_or_else(String::new, |o| format!(" (@owner {o})"));
        println!(
            "  {id}{owner}: allow->deny {}, deny->allow {}",
            c.allow_to_deny, c.deny_to_allow
        );
        if !c.samples_allow_to_deny.is_empty() {
            println!(
                "    allow->deny e.g. {}",
                c.samples_allow_to_deny.join(", ")
            );
        }
        if !c.samples_deny_to_allow.is_empty() {
            println!(
                "    deny->allow e.g. {}",
                c.samples_deny_to_allow.join(", ")
            );
        }
    }
    0
}
