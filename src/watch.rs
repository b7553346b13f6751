//! Re-reads secret files on change: provider credentials and the API key store.
//!
//! The directories holding the files are watched, not the files: a Kubernetes
//! Secret volume updates by renaming a new `..data` symlink into place, and the
//! visible file (`key -> ..data/key`) never changes inode, so a watch on the
//! file would miss it. Any event in a watched directory triggers a re-read
//! after `debounce` of quiet; a timer re-reads every `poll` as well, so a file
//! system without events (some network volumes) is still followed. Re-reads
//! run on this module's own thread, never on the request path.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

enum Msg {
    Changed,
    Stop,
}

/// A running watcher; stops (and joins its thread) when dropped.
pub struct FileWatcher {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    _watch: Option<notify::RecommendedWatcher>,
}

impl std::fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatcher")
            .field("watching", &self._watch.is_some())
            .finish_non_exhaustive()
    }
}

// === impl FileWatcher ===

impl FileWatcher {
    /// Watches the directories of `files`; calls `reread` after a change
    /// (debounced) and every `poll`.
    pub fn start(
        name: &str,
        files: &[PathBuf],
        debounce: Duration,
        poll: Duration,
        reread: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let mut dirs: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(|p| p.to_path_buf()))
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p
                }
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        let watch = match watch(&dirs, tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(what = name, error = %e, "cannot watch secret directories; re-reading on a timer only");
                None
            }
        };
        let thread = std::thread::Builder::new()
            .name(format!("cedar-gate-{name}"))
            .spawn(move || {
                loop {
                    match rx.recv_timeout(poll) {
                        Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(Msg::Changed) => {
                            // Quiet period, bounded so constant churn still re-reads.
                            let started = Instant::now();
                            loop {
                                match rx.recv_timeout(debounce) {
                                    Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                                    Ok(Msg::Changed) if started.elapsed() < debounce * 10 => {}
                                    Ok(Msg::Changed) | Err(RecvTimeoutError::Timeout) => break,
                                }
                            }
                        }
                    }
                    reread();
                }
            })?;
        Ok(Self {
            tx,
            thread: Some(thread),
            _watch: watch,
        })
    }
}

impl Drop for FileWatcher {
    fn drop(&mut self) {
        self._watch = None;
        let _ = self.tx.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch(dirs: &[PathBuf], tx: Sender<Msg>) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Our own reads.
            Ok(e) if matches!(e.kind, EventKind::Access(_)) => {}
            // Anything else (or lost events): re-read.
            _ => {
                let _ = tx.send(Msg::Changed);
            }
        }
    })?;
    for dir in dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A Kubernetes-style Secret volume: `key -> ..data/key`, `..data ->
    /// ..<timestamp>`; an update writes a new timestamped directory and renames
    /// a new `..data` symlink over the old one.
    #[cfg(unix)]
    #[test]
    fn follows_a_data_symlink_swap() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("..v1")).unwrap();
        std::fs::write(d.join("..v1/key"), "one").unwrap();
        symlink("..v1", d.join("..data")).unwrap();
        symlink("..data/key", d.join("key")).unwrap();
        let path = d.join("key");

        let seen = Arc::new(std::sync::Mutex::new(String::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let (s, c, p) = (seen.clone(), count.clone(), path.clone());
        let _w = FileWatcher::start(
            "test",
            std::slice::from_ref(&path),
            Duration::from_millis(50),
            Duration::from_secs(3600),
            move || {
                *s.lock().unwrap() = std::fs::read_to_string(&p).unwrap_or_default();
                c.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();

        std::fs::create_dir(d.join("..v2")).unwrap();
        std::fs::write(d.join("..v2/key"), "two").unwrap();
        symlink("..v2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        std::fs::remove_dir_all(d.join("..v1")).unwrap();

        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.lock().unwrap().as_str() != "two" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(seen.lock().unwrap().as_str(), "two");
        assert!(count.load(Ordering::SeqCst) >= 1);
    }

    #[test]
    fn polls_without_events() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let w = FileWatcher::start(
            "test",
            &[PathBuf::from("/nonexistent-dir-for-test/key")],
            Duration::from_millis(10),
            Duration::from_millis(30),
            move || {
                c.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while count.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(w);
        assert!(count.load(Ordering::SeqCst) >= 2);
    }
}
