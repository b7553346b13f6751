//! The credential values in force: one lock-free slot per configured
//! credential, re-read from its file on change.
//!
//! A read that fails (file missing mid-rotation, unreadable, empty, not
//! header-safe) keeps the last good value and is remembered for `/status` and
//! the metrics; a credential that never loaded has no value, and requests
//! that select it are refused (`credential_unavailable`), never forwarded bare.

use std::sync::Mutex;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;

use crate::credentials::config::CredentialDef;
use crate::credentials::secret::{Secret, SecretError};

/// A loaded credential: the whole header value, ready to send.
#[derive(Debug)]
pub struct Loaded {
    /// `<prefix><secret><suffix>`.
    pub header_value: Secret,
    /// Since when this value has been in the file: the file's modification
    /// time when the value was first seen (through symlinks, so a Kubernetes
    /// `..data` swap counts as the time of the swap), else when it was read.
    pub since: SystemTime,
    fingerprint: [u8; 32],
}

/// The latest read of one credential, for `/status` and metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SlotStatus {
    /// Whether the latest read succeeded.
    pub ok: bool,
    /// Its error code (`unreadable`, `empty`, ...), when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// Its message (names the file, never the content), when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Reads that changed the value, since start.
    pub rotations: u64,
    /// Reads that failed, since start.
    pub failures: u64,
}

/// One credential's slot.
#[derive(Debug)]
pub struct Slot {
    /// Its definition.
    pub def: CredentialDef,
    value: ArcSwapOption<Loaded>,
    status: Mutex<SlotStatus>,
}

/// What a re-read did, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadResult {
    /// The file holds the value in force.
    Unchanged,
    /// A new value is in force.
    Changed,
    /// The read failed; the last good value (if any) stays.
    Failed,
}

// === impl Slot ===

impl Slot {
    /// An empty slot; call [`Slot::refresh`] to load it.
    pub fn new(def: CredentialDef) -> Self {
        Self {
            def,
            value: ArcSwapOption::empty(),
            status: Mutex::new(SlotStatus::default()),
        }
    }

    /// The value in force.
    pub fn current(&self) -> Option<std::sync::Arc<Loaded>> {
        self.value.load_full()
    }

    /// The latest read.
    pub fn status(&self) -> SlotStatus {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Re-reads the file; swaps the value in when it changed.
    pub fn refresh(&self) -> ReadResult {
        let read = Secret::read_file(&self.def.path);
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match read {
            Err(e) => {
                status.ok = false;
                status.error = Some(e.reason());
                status.message = Some(e.to_string());
                status.failures += 1;
                drop(status);
                self.log_failure(&e);
                ReadResult::Failed
            }
            Ok(secret) => {
                status.ok = true;
                status.error = None;
                status.message = None;
                let fingerprint = secret.fingerprint();
                if self
                    .value
                    .load()
                    .as_ref()
                    .is_some_and(|v| v.fingerprint == fingerprint)
                {
                    return ReadResult::Unchanged;
                }
                let since = std::fs::metadata(&self.def.path)
                    .and_then(|m| m.modified())
                    .unwrap_or_else(|_| SystemTime::now());
                let value = format!("{}{}{}", self.def.prefix, secret.expose(), self.def.suffix);
                self.value.store(Some(std::sync::Arc::new(Loaded {
                    header_value: Secret::new(value),
                    since,
                    fingerprint,
                })));
                status.rotations += 1;
                ReadResult::Changed
            }
        }
    }

    fn log_failure(&self, e: &SecretError) {
        if self.value.load().is_some() {
            tracing::error!(credential = %self.def.id, error = %e, "cannot read provider credential; keeping the last good value");
        } else {
            tracing::error!(credential = %self.def.id, error = %e, "cannot read provider credential; requests that need it are refused");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::credentials::config::HeaderKind;

    #[test]
    fn a_failed_read_keeps_the_last_good_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let slot = Slot::new(CredentialDef {
            id: "openai".into(),
            kind: HeaderKind::Bearer,
            header: "authorization".into(),
            prefix: "Bearer ".into(),
            suffix: String::new(),
            path: path.clone(),
            token_file: false,
            rotation_period: None,
        });
        assert_eq!(slot.refresh(), ReadResult::Failed);
        assert!(slot.current().is_none());
        std::fs::write(&path, "sk-one\n").unwrap();
        assert_eq!(slot.refresh(), ReadResult::Changed);
        assert_eq!(slot.refresh(), ReadResult::Unchanged);
        assert_eq!(
            slot.current().unwrap().header_value.expose(),
            "Bearer sk-one"
        );
        std::fs::remove_file(&path).unwrap();
        assert_eq!(slot.refresh(), ReadResult::Failed);
        assert_eq!(
            slot.current().unwrap().header_value.expose(),
            "Bearer sk-one"
        );
        let status = slot.status();
        assert!(!status.ok);
        assert_eq!(status.error, Some("unreadable"));
        std::fs::write(&path, "sk-two").unwrap();
        assert_eq!(slot.refresh(), ReadResult::Changed);
        assert_eq!(
            slot.current().unwrap().header_value.expose(),
            "Bearer sk-two"
        );
        assert_eq!(slot.status().rotations, 2);
        assert!(!format!("{slot:?}").contains("sk-two"));
    }
}
