//! `cedar-gate access`: the entitlement report (table, CSV, JSON, Markdown), or with
//! `--diff OLD NEW` only the cells that change.

use std::path::PathBuf;

use crate::analysis::access::{AccessCell, TokenSource, access, changed_cells};
use crate::analysis::{AnalysisError, PolicyDir, Prover};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// JSON.
    Json,
    /// A Markdown table for a review ticket.
    Markdown,
}

/// `access` flags.
#[derive(Debug, clap::Args)]
pub struct AccessArgs {
    /// Policy directory [default: the config's `policy_dir`].
    #[arg(long, env = "CEDAR_GATE_POLICY_DIR", required_unless_present_any = ["diff", "config"])]
    pub policy_dir: Option<PathBuf>,
    /// The `serve` config: its token issuers' principals (`entity_type`, and the groups
    /// their `groups_claim` can carry) are reported too.
    #[arg(long, env = "CEDAR_GATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Compare two policy directories (or `REV:PATH` git revisions); print only cells that change.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
    pub diff: Option<Vec<String>>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Also list denied cells (left out by default).
    #[arg(long)]
    pub all: bool,
}

/// Runs `access`; returns the exit code.
pub fn run(args: &AccessArgs) -> i32 {
    match go(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn go(args: &AccessArgs) -> Result<(), AnalysisError> {
    let config = match &args.config {
        Some(path) => {
            Some(
                crate::config::Config::load(path).map_err(|e| AnalysisError::Input {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?,
            )
        }
        None => None,
    };
    let tokens = config
        .as_ref()
        .map(TokenSource::from_config)
        .unwrap_or_default();
    let policy_dir = args
        .policy_dir
        .clone()
        .or_else(|| config.as_ref().and_then(|c| c.policy_dir.clone()));
    let mut prover = Prover::start()?;
    if let Some(pair) = &args.diff {
        let (Some(o), Some(n)) = (pair.first(), pair.get(1)) else {
            return Ok(());
        };
        let old = access(&PolicyDir::load(o)?, &tokens, &mut prover)?;
        let new = access(&PolicyDir::load(n)?, &tokens, &mut prover)?;
        let changes = changed_cells(&old, &new);
        print_changes(&changes, args.format);
        return Ok(());
    }
    let Some(dir) = &policy_dir else {
        return Err(AnalysisError::Input {
            path: args
                .config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            message: "no `policy_dir`: pass --policy-dir".to_owned(),
        });
    };
    let cells = access(
        &PolicyDir::load(&dir.display().to_string())?,
        &tokens,
        &mut prover,
    )?;
    let shown: Vec<&AccessCell> = cells
        .iter()
        .filter(|c| args.all || c.verdict != crate::analysis::access::Verdict::Denied)
        .collect();
    print_cells(&shown, args.format);
    Ok(())
}

fn row(c: &AccessCell) -> [String; 6] {
    [
        c.principal.clone(),
        c.actions.join(" "),
        c.resource.clone(),
        c.verdict.as_str().to_owned(),
        c.policies.join(", "),
        c.condition.clone().unwrap_or_default(),
    ]
}

const HEADER: [&str; 6] = [
    "principal",
    "actions",
    "resource",
    "access",
    "policies",
    "condition",
];

fn print_cells(cells: &[&AccessCell], format: Format) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(cells).unwrap_or_default()
        ),
        Format::Csv => {
            println!("{}", HEADER.join(","));
            for c in cells {
                println!("{}", row(c).map(|f| csv(&f)).join(","));
            }
        }
        Format::Markdown => {
            println!("| {} |", HEADER.join(" | "));
            println!("|{}", "---|".repeat(HEADER.len()));
            for c in cells {
                println!(
                    "| {} |",
                    row(c)
                        .map(|f| f.replace('|', "\\|").replace('`', "'"))
                        .join(" | ")
                );
            }
        }
        Format::Table => {
            for c in cells {
                let r = row(c);
                println!("{:<9} {} -> {} [{}]", r[3], r[0], r[2], r[1]);
                if !r[4].is_empty() {
                    println!("          by {}", r[4]);
                }
                if !r[5].is_empty() {
                    println!("          {}", r[5]);
                }
            }
        }
    }
}

fn print_changes(changes: &[(Option<AccessCell>, Option<AccessCell>)], format: Format) {
    if format == Format::Json {
        let list: Vec<_> = changes
            .iter()
            .map(|(o, n)| serde_json::json!({"old": o, "new": n}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return;
    }
    let describe = |c: &Option<AccessCell>| {
        c.as_ref().map_or_else(
            || "-".to_owned(),
            |c| {
                let mut s = c.verdict.as_str().to_owned();
                if !c.policies.is_empty() {
                    s.push_str(&format!(" by {}", c.policies.join(", ")));
                }
                if let Some(cond) = &c.condition {
                    s.push_str(&format!(": {cond}"));
                }
                s
            },
        )
    };
    if changes.is_empty() {
        println!("no cell changes");
    }
    if format == Format::Markdown {
        println!("| principal | actions | resource | old | new |");
        println!("|---|---|---|---|---|");
    } else if format == Format::Csv {
        println!("principal,actions,resource,old,new");
    }
    for (o, n) in changes {
        let any = o.as_ref().or(n.as_ref());
        let (p, a, r) = any.map_or_else(Default::default, |c| {
            (c.principal.clone(), c.actions.join(" "), c.resource.clone())
        });
        match format {
            Format::Markdown => println!(
                "| {p} | {a} | {r} | {} | {} |",
                describe(o).replace('|', "\\|"),
                describe(n).replace('|', "\\|")
            ),
            Format::Csv => println!(
                "{},{},{},{},{}",
                csv(&p),
                csv(&a),
                csv(&r),
                csv(&describe(o)),
                csv(&describe(n))
            ),
            _ => {
                println!("{p} -> {r} [{a}]");
                println!("  OLD: {}", describe(o));
                println!("  NEW: {}", describe(n));
            }
        }
    }
}

fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}
