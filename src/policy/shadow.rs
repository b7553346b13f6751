//! Shadow policies: `@shadow` policies are evaluated next to the enforced set
//! on every request, never enforced.
//!
//! Semantics: the shadow decision is what *enforced ∪ shadow* would decide, so
//! a team can add a tightening `forbid` (or a new `permit`) marked `@shadow`
//! and see whom it would affect before removing the annotation. A
//! disagreement (allow vs deny) is recorded in the audit event and counted in
//! `cedar_gate_shadow_disagreements_total{action, shadow_decision}`.

use crate::policy::snapshot::Snapshot;
use crate::vocab::Decision;

/// What the shadow set decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowOutcome {
    /// The shadow set's decision (with its determining policies).
    pub decision: Decision,
    /// Whether it differs from the enforced decision (allow vs deny).
    pub disagrees: bool,
    /// Metrics label: the action id when the schema declares it, else `other`.
    pub action_label: String,
}

// === impl ShadowOutcome ===

impl ShadowOutcome {
    /// Compares the shadow decision with the enforced one for `action`.
    pub fn new(
        snapshot: &Snapshot,
        action: &cedar_policy::EntityUid,
        enforced: &Decision,
        shadow: Decision,
    ) -> Self {
        let disagrees = shadow.effect != enforced.effect;
        // Label only with actions the schema declares: a finite set, whatever
        // the request carried.
        let action_label = if disagrees && snapshot.schema().actions().any(|a| a == action) {
            action.id().unescaped().to_owned()
        } else {
            "other".to_owned()
        };
        Self {
            decision: shadow,
            disagrees,
            action_label,
        }
    }
}
