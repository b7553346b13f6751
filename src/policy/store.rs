//! The snapshot in force, swapped atomically on reload.
//!
//! A request loads the snapshot once (one `Arc` clone) and uses it to the end,
//! so it sees the old snapshot or the new one, never a mix. A failed reload
//! leaves the last good snapshot in place and is remembered for the admin port.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;

use crate::policy::config::DEFAULT_PRINCIPAL_ENTITIES;
use crate::policy::diagnostic::Diagnostic;
use crate::policy::load::{PolicyLoadError, load_dir_with};
use crate::policy::snapshot::Snapshot;

/// The outcome of the latest reload attempt, for `/status` and logs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadStatus {
    /// Whether the latest attempt succeeded.
    pub ok: bool,
    /// When it happened (seconds since the Unix epoch).
    pub at_unix: u64,
    /// Its diagnostics, when it failed.
    pub diagnostics: Vec<Diagnostic>,
}

/// Holds the snapshot in force.
#[derive(Debug)]
pub struct PolicyStore {
    dir: PathBuf,
    /// `cache.principal_entities` of every snapshot loaded.
    principal_entities: u64,
    current: ArcSwapOption<Snapshot>,
    generation: AtomicU64,
    last: Mutex<Option<ReloadStatus>>,
    // Serializes reloads so generations are handed out in swap order.
    reload_lock: Mutex<()>,
}

// === impl PolicyStore ===

impl PolicyStore {
    /// An empty store for `dir`; nothing is loaded until [`PolicyStore::reload`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            principal_entities: DEFAULT_PRINCIPAL_ENTITIES,
            current: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            last: Mutex::new(None),
            reload_lock: Mutex::new(()),
        }
    }

    /// Snapshots with per-principal caches of at most `entities` entities
    /// (`cache.principal_entities`).
    pub fn with_principal_entities(mut self, entities: u64) -> Self {
        self.principal_entities = entities;
        self
    }

    /// The policy directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The snapshot in force, if one was ever loaded.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// The latest reload attempt.
    pub fn last_reload(&self) -> Option<ReloadStatus> {
        self.last.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Loads the directory and, if it is valid and differs from the snapshot
    /// in force (content hash), swaps it in; identical content keeps the
    /// snapshot in force and its generation. On error the previous snapshot
    /// stays in force.
    pub fn reload(&self) -> Result<Arc<Snapshot>, PolicyLoadError> {
        let _serial = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let next = self.generation.load(Ordering::Acquire) + 1;
        let result = load_dir_with(&self.dir, next, self.principal_entities).map(Arc::new);
        let at_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        // Same content as the snapshot in force (a `touch`, a no-op sync):
        // keep it, so generation and decision cache stay as they are.
        let result = match (result, self.current.load_full()) {
            (Ok(snapshot), Some(current)) if snapshot.hash == current.hash => Ok(current),
            (result, _) => result,
        };
        let status = match &result {
            Ok(snapshot) if snapshot.generation != next => ReloadStatus {
                ok: true,
                at_unix,
                diagnostics: Vec::new(),
            },
            Ok(snapshot) => {
                self.generation.store(next, Ordering::Release);
                self.current.store(Some(snapshot.clone()));
                ReloadStatus {
                    ok: true,
                    at_unix,
                    diagnostics: Vec::new(),
                }
            }
            Err(e) => ReloadStatus {
                ok: false,
                at_unix,
                diagnostics: e.diagnostics(),
            },
        };
        if let Ok(mut last) = self.last.lock() {
            *last = Some(status);
        }
        result
    }
}
