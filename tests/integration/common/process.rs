//! The child-process guard every harness process (cedar-gate, Envoy, the Python router) is
//! held by: killed and reaped when stopped or dropped, so no test leaves a process behind.

use std::process::{Child, ExitStatus};

/// A running child process. Killed (SIGKILL) and reaped on [`ChildGuard::stop`] and on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

// === impl ChildGuard ===

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> Self {
        Self { child: Some(child) }
    }

    /// How the process ended, if it has (without waiting); `None` while it runs or after
    /// [`ChildGuard::stop`].
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The process id (to send it signals), until it is stopped.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process now and reaps it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}
