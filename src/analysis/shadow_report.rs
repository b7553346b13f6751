//! `cedar-gate shadow-report AUDIT.jsonl`: what promoting the `@shadow` policies would
//! change, from the audit log of real traffic.
//!
//! Every audit event of an evaluated request carries a `shadow` object while shadow
//! policies are loaded (see docs/lifecycle.md). A disagreement is attributed to the
//! shadow policies among the shadow decision's determining policies: the forbids that
//! would deny (allow -> deny), or the permits that would allow (deny -> allow).

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::Serialize;
use serde_json::Value;

/// How many sample decision ids to keep per policy and direction.
const SAMPLES: usize = 5;

/// Counts for one shadow policy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyCounts {
    /// `@owner`, when the audit event carried it.
    pub owner: Option<String>,
    /// Enforced allow, shadow deny.
    pub allow_to_deny: u64,
    /// Enforced deny, shadow allow.
    pub deny_to_allow: u64,
    /// Up to five decision ids of each.
    pub samples_allow_to_deny: Vec<String>,
    /// Up to five decision ids.
    pub samples_deny_to_allow: Vec<String>,
}

/// The report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShadowReport {
    /// Lines read.
    pub lines: u64,
    /// Lines that are not audit events (not JSON, or no `decision`).
    pub skipped: u64,
    /// Events with a shadow decision.
    pub with_shadow: u64,
    /// Of those, where shadow and enforced agree.
    pub agree: u64,
    /// Per shadow policy (by id); `(unattributed)` when no shadow policy determined it.
    pub policies: BTreeMap<String, PolicyCounts>,
}

/// Reads audit events (JSON Lines) and counts shadow disagreements.
pub fn report(input: impl BufRead) -> std::io::Result<ShadowReport> {
    let mut r = ShadowReport::default();
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        r.lines += 1;
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            r.skipped += 1;
            continue;
        };
        let Some(enforced) = event.get("decision").and_then(|d| d.as_str()) else {
            r.skipped += 1;
            continue;
        };
        let Some(shadow) = event.get("shadow").filter(|s| s.is_object()) else {
            continue;
        };
        r.with_shadow += 1;
        let shadow_decision = shadow
            .get("decision")
            .and_then(|d| d.as_str())
            .unwrap_or("");
        if shadow_decision == enforced {
            r.agree += 1;
            continue;
        }
        let to_deny = enforced == "allow";
        let id = event
            .get("decision_id")
            .and_then(|d| d.as_str())
            .unwrap_or("")
            .to_owned();
        let mut blamed: Vec<(String, Option<String>)> = shadow
            .get("policies")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
            .filter(|p| p.pointer("/annotations/shadow").is_some())
            .filter_map(|p| {
                Some((
                    p.get("id")?.as_str()?.to_owned(),
                    p.pointer("/annotations/owner")
                        .and_then(|o| o.as_str())
                        .map(str::to_owned),
                ))
            })
            .collect();
        if blamed.is_empty() {
            blamed.push(("(unattributed)".to_owned(), None));
        }
        for (policy, owner) in blamed {
            let c = r.policies.entry(policy).or_default();
            if c.owner.is_none() {
                c.owner = owner;
            }
            let (n, samples) = if to_deny {
                (&mut c.allow_to_deny, &mut c.samples_allow_to_deny)
            } else {
                (&mut c.deny_to_allow, &mut c.samples_deny_to_allow)
            };
            *n += 1;
            if samples.len() < SAMPLES {
                samples.push(id.clone());
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_attributes_disagreements() {
        let lines = [
            r#"{"decision":"allow","decision_id":"d1","shadow":{"decision":"deny","disagrees":true,"policies":[{"id":"new-cap","annotations":{"shadow":"","owner":"security"}}]}}"#,
            r#"{"decision":"allow","decision_id":"d2","shadow":{"decision":"allow","disagrees":false,"policies":[]}}"#,
            r#"{"decision":"deny","decision_id":"d3","shadow":{"decision":"allow","disagrees":true,"policies":[{"id":"wider","annotations":{"shadow":""}}]}}"#,
            r#"{"decision":"deny","decision_id":"d4"}"#,
            "not json",
        ]
        .join("\n");
        let r = report(lines.as_bytes()).unwrap();
        assert_eq!((r.lines, r.skipped, r.with_shadow, r.agree), (5, 1, 3, 1));
        let cap = &r.policies["new-cap"];
        assert_eq!((cap.allow_to_deny, cap.deny_to_allow), (1, 0));
        assert_eq!(cap.owner.as_deref(), Some("security"));
        assert_eq!(cap.samples_allow_to_deny, vec!["d1"]);
        assert_eq!(r.policies["wider"].deny_to_allow, 1);
    }
}
