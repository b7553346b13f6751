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
    fn into_line(self) -> String {
        match self {
            Self::Line(line) => line,
            Self::Check(c) => AuditEvent::new(&c.outcome, &c.request, c.now, c.latency).to_json(),
        }
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

fn write_loop(rx: Receiver<Pending>, out: Box<dyn Write + Send>) {
    use std::sync::mpsc::TryRecvError;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        let mut ok = writeln!(out, "{}", line.into_line()).is_ok();
        std::thread::sleep(BATCH_WINDOW);
        let mut open = true;
        loop {
            match rx.try_recv() {
                Ok(line) => ok &= writeln!(out, "{}", line.into_line()).is_ok(),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        ok &= out.flush().is_ok();
        if !ok {
            tracing::error!(target: "cedar_gate::audit", "cannot write audit events");
        }
        if !open {
            break;
        }
    }
    let _ = out.flush();
}
