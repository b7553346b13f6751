//! The audit sink: a writer thread fed through a bounded channel. A Check's
//! line is not even formatted on the Check path: the handler moves its
//! finished [`Outcome`] and request to the writer ([`AuditLog::record_check`]),
//! which builds and writes the line.

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::AuditEvent;
use crate::config::{AuditConfig, AuditSink};
use crate::decide::Outcome;
use crate::request::HttpRequest;

/// Events buffered between the Check path and the writer thread.
const CHANNEL_CAPACITY: usize = 65_536;

/// What travels to the writer thread.
enum Pending {
    /// A line formatted by the caller.
    Line(String),
    /// A Check's outcome and request, formatted by the writer.
    Check(Box<CheckRecord>),
}

/// One Check's audit material, moved (not copied) from the handler, which is
/// done with it: the line is formatted from it on the writer thread.
struct CheckRecord {
    outcome: Outcome,
    request: HttpRequest,
    now: SystemTime,
    latency: Duration,
}

// === impl Pending ===

impl Pending {
    /// Appends the line, with its newline, to `out`.
    fn write_line(self, out: &mut String) {
        match self {
            Self::Line(line) => out.push_str(&line),
            Self::Check(c) => {
                AuditEvent::new(&c.outcome, &c.request, c.now, c.latency).write_json(out);
            }
        }
        out.push('\n');
    }
}

/// Where audit lines go.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: Option<SyncSender<Pending>>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

// === impl AuditLog ===

impl AuditLog {
    /// Opens the configured sink.
    pub fn open(cfg: &AuditConfig) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match (cfg.sink, &cfg.path) {
            (AuditSink::Off, _) => {
                return Ok(Self {
                    tx: None,
                    writer: Arc::new(Mutex::new(None)),
                });
            }
            (AuditSink::Stdout, _) => Box::new(std::io::stdout()),
            (AuditSink::File, Some(path)) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            (AuditSink::File, None) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "audit.path is required",
                ));
            }
        };
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        let handle = std::thread::Builder::new()
            .name("cedar-gate-audit".into())
            .spawn(move || write_loop(rx, out))?;
        Ok(Self {
            tx: Some(tx),
            writer: Arc::new(Mutex::new(Some(handle))),
        })
    }

    /// Records one event.
    pub fn record(&self, event: &AuditEvent<'_>) {
        let Some(tx) = &self.tx else { return };
        if tx.send(Pending::Line(event.to_json())).is_err() {
            tracing::error!(target: "cedar_gate::audit", "audit writer has stopped; event lost");
        }
    }

    /// Records one Check: the same line as [`AuditEvent::new`] gives, built on
    /// the writer thread from the moved outcome and request.
    pub fn record_check(
        &self,
        outcome: Outcome,
        request: HttpRequest,
        now: SystemTime,
        latency: Duration,
    ) {
        let Some(tx) = &self.tx else { return };
        let record = CheckRecord {
            outcome,
            request,
            now,
            latency,
        };
        if tx.send(Pending::Check(Box::new(record))).is_err() {
            tracing::error!(target: "cedar_gate::audit", "audit writer has stopped; event lost");
        }
    }

    /// Flushes and stops the writer (after the last `record`).
    pub fn close(mut self) {
        self.tx = None;
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            // Other clones may still hold senders; the writer ends when all are dropped.
            drop(self);
            let _ = handle.join();
        }
    }
}

/// How long the writer gathers lines after the first one of a batch. Waking
/// the writer for every Check costs a context switch per request (measured as
/// the largest item in a loaded server's profile); with this window a busy
/// server wakes it a few hundred times a second. An idle writer blocks in
/// `recv` and costs nothing.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// The writer's buffer is written out once it holds this much (and at the
/// end of every batch).
const BUFFER_BYTES: usize = 64 * 1024;

/// Lines a failing sink has not taken are kept, and retried, up to this
/// much; past it the writer stops taking lines until the sink takes them
/// again, so the channel fills and Checks wait (back-pressure, never holes).
const BACKLOG_BYTES: usize = 16 * 1024 * 1024;

/// How long the writer waits between retries of a sink that refuses writes
/// while the backlog is full.
const RETRY_WAIT: Duration = Duration::from_secs(1);

/// Lines are formatted straight into one buffer, kept across batches, that
/// is written out in large pieces: no string per line, no `fmt`.
fn write_loop(rx: Receiver<Pending>, out: Box<dyn Write + Send>) {
    use std::sync::mpsc::TryRecvError;
    let mut sink = Sink {
        out,
        backlog: Vec::new(),
        failing: false,
    };
    let mut buf = String::with_capacity(BUFFER_BYTES + 4096);
    while let Ok(first) = rx.recv() {
        first.write_line(&mut buf);
        std::thread::sleep(BATCH_WINDOW);
        let mut open = true;
        loop {
            match rx.try_recv() {
                Ok(pending) => {
                    pending.write_line(&mut buf);
                    if buf.len() >= BUFFER_BYTES {
                        sink.write(&mut buf);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        sink.write(&mut buf);
        sink.flush();
        if !open {
            break;
        }
    }
    sink.close();
}

/// The audit sink, with what it has not taken yet.
struct Sink {
    out: Box<dyn Write + Send>,
    /// Bytes a failed write left over, written before anything newer.
    backlog: Vec<u8>,
    /// Whether the last write failed (the error is logged once per outage).
    failing: bool,
}

impl Sink {
    /// Writes out and empties `buf`, after any backlog. What the sink does
    /// not take is kept; while the backlog is over [`BACKLOG_BYTES`], this
    /// retries until the sink takes it.
    fn write(&mut self, buf: &mut String) {
        if self.backlog.is_empty() {
            let written = write_prefix(&mut *self.out, buf.as_bytes());
            self.backlog.extend_from_slice(&buf.as_bytes()[written..]);
        } else {
            self.backlog.extend_from_slice(buf.as_bytes());
            self.retry();
        }
        buf.clear();
        while self.backlog.len() > BACKLOG_BYTES {
            self.report(false);
            std::thread::sleep(RETRY_WAIT);
            self.retry();
        }
        self.report(self.backlog.is_empty());
    }

    /// At shutdown: a few more tries for a backlog, then it is reported lost.
    fn close(&mut self) {
        for _ in 0..10 {
            if self.backlog.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            self.retry();
        }
        if self.backlog.is_empty() {
            self.flush();
        } else {
            tracing::error!(
                target: "cedar_gate::audit",
                lost_bytes = self.backlog.len(),
                "audit sink still refusing writes at shutdown; events lost"
            );
        }
    }

    /// Writes what the sink takes of the backlog.
    fn retry(&mut self) {
        let written = write_prefix(&mut *self.out, &self.backlog);
        self.backlog.drain(..written);
    }

    fn flush(&mut self) {
        if self.backlog.is_empty() {
            let ok = self.out.flush().is_ok();
            self.report(ok);
        }
    }

    /// Logs the start and the end of an outage, not every failed write.
    fn report(&mut self, ok: bool) {
        if ok && self.failing {
            tracing::warn!(target: "cedar_gate::audit", "audit sink writable again; backlog written");
        } else if !ok && !self.failing {
            tracing::error!(
                target: "cedar_gate::audit",
                backlog_bytes = self.backlog.len(),
                "cannot write audit events; keeping them and retrying"
            );
        }
        self.failing = !ok;
    }
}

/// Writes as much of `bytes` as the sink takes; how many bytes it took.
fn write_prefix(out: &mut dyn Write, bytes: &[u8]) -> usize {
    let mut written = 0;
    while written < bytes.len() {
        match out.write(&bytes[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    written
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;
    use std::sync::{Arc, Mutex, mpsc::sync_channel};

    use super::{BUFFER_BYTES, Pending, write_loop};

    /// A sink the test reads after the writer has stopped.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Every line arrives whole, in order, one per line, also when a batch
    /// is larger than the buffer.
    #[test]
    fn lines_are_written_in_order_across_buffer_drains() {
        let sink = Shared::default();
        let (tx, rx) = sync_channel(16);
        let out = sink.clone();
        let writer = std::thread::spawn(move || write_loop(rx, Box::new(out)));
        let lines: Vec<String> = (0..(3 * BUFFER_BYTES / 100))
            .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(90)))
            .collect();
        for line in &lines {
            tx.send(Pending::Line(line.clone())).unwrap();
        }
        drop(tx);
        writer.join().unwrap();
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            written,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>()
        );
    }

    /// A sink that refuses the first `fail` writes, and takes at most 1000
    /// bytes a write after that.
    #[derive(Clone, Default)]
    struct Flaky {
        taken: Shared,
        fail: Arc<Mutex<usize>>,
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(std::io::Error::other("disk full"));
            }
            let n = buf.len().min(1000);
            self.taken.write(&buf[..n])
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Lines a failing sink refused are kept and written, whole and in
    /// order, once it takes writes again (here: with the next batch).
    #[test]
    fn a_failing_sink_loses_no_line() {
        let sink = Flaky {
            fail: Arc::new(Mutex::new(3)),
            ..Default::default()
        };
        let (tx, rx) = sync_channel(16);
        let out = sink.clone();
        let writer = std::thread::spawn(move || write_loop(rx, Box::new(out)));
        let lines: Vec<String> = (0..400).map(|i| format!("{{\"n\":{i}}}")).collect();
        for (i, line) in lines.iter().enumerate() {
            tx.send(Pending::Line(line.clone())).unwrap();
            if i % 100 == 99 {
                // Separate batches (the writer gathers for 5 ms).
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        drop(tx);
        writer.join().unwrap();
        let written = String::from_utf8(sink.taken.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            written,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>()
        );
        assert_eq!(*sink.fail.lock().unwrap(), 0);
    }
}
