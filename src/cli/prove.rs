//! `cedar-gate validate --prove`: validation, then proofs about each policy.

use std::path::Path;

use crate::analysis::prove::prove;
use crate::analysis::{PolicyDir, Prover};

/// Validates, then proves; returns the exit code (1 on any finding or failure).
pub fn run(dir: &Path, json: bool) -> i32 {
    let code = if json {
        0
    } else {
        crate::cli::check::validate(dir)
    };
    if code != 0 {
        return code;
    }
    let started = std::time::Instant::now();
    let loaded = match PolicyDir::load(&dir.display().to_string()) {
        Ok(d) => d,
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
    let report = match prove(&loaded, &mut prover) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        for f in &report.findings {
            let owner = f
                .policy
                .owner
                .as_deref()
                .map_or_else(String::new, |o| format!(" (@owner {o})"));
            eprintln!(
                "error: {}:{}: {} `{}`{owner} {}",
                f.policy.file, f.policy.line, f.policy.effect, f.policy.id, f.message
            );
            if let Some(ex) = &f.example {
                eprintln!("  example: {ex}");
            }
        }
        println!(
            "prove: {} policies, {} finding(s): never error, not dead, not overridden{} ({} solver queries, {:.2} s)",
            report.policies,
            report.findings.len(),
            if report.findings.is_empty() {
                " proved for every policy"
            } else {
                " fails for the policies above"
            },
            report.solver_queries,
            started.elapsed().as_secs_f64()
        );
    }
    i32::from(!report.findings.is_empty())
}
