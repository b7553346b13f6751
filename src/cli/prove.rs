//! `cedar-gate validate --prove`: validation, then proofs about each policy.

use std::path::Path;

use crate::analysis::guardrails::{Example, prove_examples};
use crate::analysis::prove::{ProveReport, prove};
use crate::analysis::{AnalysisError, PolicyDir, Prover};
use crate::cli::test::{Expect, parse_cases};
use crate::decide::request_file::RequestFile;

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
    let examples = match examples_in(dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let report = match prove_all(&loaded, &examples, &mut prover) {
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
            "prove: {} policies, {} allow example(s), {} finding(s): never error, not dead, not overridden, no example's group always denied{} ({} solver queries, {:.2} s)",
            report.policies,
            examples.len(),
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

/// Per-policy proofs, then the guardrail proof over the examples.
fn prove_all(
    dir: &PolicyDir,
    examples: &[Example],
    prover: &mut Prover,
) -> Result<ProveReport, AnalysisError> {
    let mut report = prove(dir, prover)?;
    report
        .findings
        .extend(prove_examples(dir, examples, prover)?);
    report.solver_queries = prover.queries;
    Ok(report)
}

/// The cases that expect `allow` in `DIR/tests/*.{yaml,yml,json}`, where the shipped
/// layout keeps them; each located by file and line.
fn examples_in(dir: &Path) -> Result<Vec<Example>, String> {
    let tests = dir.join("tests");
    let Ok(read) = std::fs::read_dir(&tests) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<std::path::PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let shown = format!(
            "tests/{}",
            file.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let text = std::fs::read_to_string(&file).map_err(|e| format!("`{shown}`: {e}"))?;
        let yaml = file.extension().and_then(|e| e.to_str()) != Some("json");
        let cases = parse_cases(&text, yaml).map_err(|e| format!("`{shown}`: {e}"))?;
        for case in cases {
            if case.expect != Expect::Allow {
                continue;
            }
            let line = text.find(&case.name).map_or(0, |o| {
                text.get(..o).map_or(0, |b| b.matches('\n').count() + 1)
            });
            out.push(Example {
                at: format!("{shown}:{line}"),
                name: case.name.clone(),
                request: RequestFile {
                    principal: case.principal,
                    action: case.action,
                    resource: case.resource,
                    context: case.context,
                    workload: None,
                },
            });
        }
    }
    Ok(out)
}
