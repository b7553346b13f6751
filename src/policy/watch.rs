//! Hot reload: watch the policy directory (and take `SIGHUP`), debounce, reload.
//!
//! The directory itself is watched, not the files in it, and any change in it
//! triggers a reload of the whole directory. That covers plain edits, editors
//! that write a temp file and rename it, and Kubernetes ConfigMap mounts, where
//! the visible files are symlinks through `..data` and an update atomically
//! renames a new `..data` symlink into place (the files' own inodes never
//! change, so watching them would miss it).
//!
//! Reloads run on this module's own thread, never on the request path: the new
//! snapshot is built and validated completely, then swapped in (see
//! [`crate::policy::store`]). A burst of events becomes one reload once the
//! directory has been quiet for the debounce period (bounded by
//! [`MAX_DELAY_FACTOR`] debounce periods, so constant churn still reloads).

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

/// A reload is delayed at most this many debounce periods by continuing events.
pub const MAX_DELAY_FACTOR: u32 = 10;

enum Trigger {
    /// Something changed in the directory.
    Changed,
    /// An explicit request (`SIGHUP`): reload now.
    Now,
    Stop,
}

/// Asks the watcher thread for a reload (for example on `SIGHUP`).
#[derive(Debug, Clone)]
pub struct ReloadTrigger(Sender<Trigger>);

impl std::fmt::Debug for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::Changed => "Changed",
            Trigger::Now => "Now",
            Trigger::Stop => "Stop",
        })
    }
}

// === impl ReloadTrigger ===

impl ReloadTrigger {
    /// Requests a reload now; returns false once the watcher has stopped.
    pub fn reload(&self) -> bool {
        self.0.send(Trigger::Now).is_ok()
    }
}

/// The running watcher: a thread that reloads, and the file system watch feeding it.
pub struct PolicyWatcher {
    tx: Sender<Trigger>,
    thread: Option<JoinHandle<()>>,
    // Dropping it ends the watch.
    _watch: Option<notify::RecommendedWatcher>,
}

impl std::fmt::Debug for PolicyWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyWatcher")
            .field("watching", &self._watch.is_some())
            .finish_non_exhaustive()
    }
}

// === impl PolicyWatcher ===

impl PolicyWatcher {
    /// Starts the reload thread. When `watch_dir` is set, changes in it trigger
    /// `reload` after `debounce` of quiet; [`ReloadTrigger::reload`] always does.
    /// A directory that cannot be watched is logged, and only explicit reloads
    /// work then.
    pub fn start(
        watch_dir: Option<&std::path::Path>,
        debounce: Duration,
        reload: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Trigger>();
        let watch = watch_dir.and_then(|dir| match watch(dir, tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot watch the policy directory; reload with SIGHUP");
                None
            }
        });
        let thread = std::thread::Builder::new()
            .name("cedar-gate-policy-reload".into())
            .spawn(move || {
                let max_delay = debounce * MAX_DELAY_FACTOR;
                while let Ok(trigger) = rx.recv() {
                    match trigger {
                        Trigger::Stop => return,
                        Trigger::Now => {}
                        Trigger::Changed => {
                            // Debounce: wait for a quiet period, bounded.
                            let started = Instant::now();
                            loop {
                                match rx.recv_timeout(debounce) {
                                    Ok(Trigger::Stop) | Err(RecvTimeoutError::Disconnected) => {
                                        return;
                                    }
                                    Ok(Trigger::Now) => break,
                                    Ok(Trigger::Changed) if started.elapsed() < max_delay => {}
                                    Ok(Trigger::Changed) | Err(RecvTimeoutError::Timeout) => break,
                                }
                            }
                        }
                    }
                    reload();
                }
            })?;
        Ok(Self {
            tx,
            thread: Some(thread),
            _watch: watch,
        })
    }

    /// A handle that requests reloads.
    pub fn trigger(&self) -> ReloadTrigger {
        ReloadTrigger(self.tx.clone())
    }

    /// Stops watching and waits for a reload in progress to finish.
    pub fn stop(mut self) {
        self._watch = None;
        let _ = self.tx.send(Trigger::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch(dir: &std::path::Path, tx: Sender<Trigger>) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Our own reads show up as access events: never a reason to reload.
            Ok(e) if matches!(e.kind, EventKind::Access(_)) => {}
            Ok(_) => {
                let _ = tx.send(Trigger::Changed);
            }
            Err(e) => {
                // Events may have been lost (queue overflow): reload to be sure.
                tracing::warn!(error = %e, "policy directory watch error");
                let _ = tx.send(Trigger::Changed);
            }
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn wait_for(count: &AtomicUsize, at_least: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        while count.load(Ordering::SeqCst) < at_least && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        count.load(Ordering::SeqCst)
    }

    #[test]
    fn a_burst_of_writes_is_one_reload_and_reads_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let reader = dir.path().to_owned();
        let watcher =
            PolicyWatcher::start(Some(dir.path()), Duration::from_millis(150), move || {
                c.fetch_add(1, Ordering::SeqCst);
                // Reading the directory (as a reload does) must not trigger another.
                for e in std::fs::read_dir(&reader).unwrap() {
                    let _ = std::fs::read(e.unwrap().path());
                }
            })
            .unwrap();
        for i in 0..20 {
            std::fs::write(dir.path().join("a.cedar"), format!("// {i}")).unwrap();
        }
        assert_eq!(wait_for(&count, 1), 1);
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "reads or a burst caused extra reloads"
        );

        assert!(watcher.trigger().reload());
        assert_eq!(wait_for(&count, 2), 2);
        watcher.stop();
    }
}
