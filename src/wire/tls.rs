//! TLS on the gRPC listener: rustls, optional client-certificate verification,
//! and certificates re-read when their files change.
//!
//! tonic's own `ServerTlsConfig` is fixed at start-up, so the listener does its
//! own accept loop instead: each new connection is handshaken with the
//! [`rustls::ServerConfig`] in force at that moment, held in an `ArcSwap` that a
//! poller replaces when the files change. A rotation that leaves the files
//! half-written (certificate and key that do not match, a truncated PEM) fails
//! to build and keeps the previous configuration until the next poll.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::config::TlsConfig;
use crate::record::metrics;
use crate::wire::conn::Coalescing;

/// A client that does not finish its handshake in this time is dropped, so
/// half-open connections cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepted connections waiting for tonic; the accept loop waits when full.
const ACCEPT_BACKLOG: usize = 128;

/// Handshakes in progress at once. Beyond it the accept loop waits, so a flood of
/// connections that never finish their handshake cannot grow tasks and memory without
/// bound (the kernel's listen backlog absorbs the rest).
const MAX_PENDING_HANDSHAKES: usize = 1024;

/// Why a TLS configuration could not be built from its files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no PEM certificate.
    #[error("`{0}` holds no PEM certificate")]
    NoCertificate(String),
    /// The file holds no PEM private key.
    #[error("`{0}` holds no usable PEM private key")]
    NoKey(String),
    /// The client CA bundle could not be used.
    #[error("client CA `{path}`: {message}")]
    ClientCa {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// rustls refused the certificate and key (for example, they do not match).
    #[error("certificate `{path}` and its key: {source}")]
    Certificate {
        /// The certificate file.
        path: String,
        /// Why.
        source: rustls::Error,
    },
}

/// The TLS configuration in force, and how to refresh it from its files.
#[derive(Debug)]
pub struct ReloadingTls {
    files: TlsConfig,
    current: ArcSwap<rustls::ServerConfig>,
    // Digest of the file contents `current` was built from (or last failed on),
    // so an unchanged or still-broken set of files is not rebuilt every poll.
    seen: Mutex<[u8; 32]>,
}

// === impl ReloadingTls ===

impl ReloadingTls {
    /// Builds the configuration from `files`; fails if they are not usable now.
    pub fn new(files: TlsConfig) -> Result<Arc<Self>, TlsError> {
        let contents = read_files(&files)?;
        let config = build(&files, &contents)?;
        Ok(Arc::new(Self {
            seen: Mutex::new(contents.digest()),
            current: ArcSwap::from_pointee(config),
            files,
        }))
    }

    /// An acceptor using the configuration in force right now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// Re-reads the files and, if they changed and are valid, swaps the new
    /// configuration in. Returns whether a new configuration is in force.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let contents = read_files(&self.files)?;
        let digest = contents.digest();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == digest {
            return Ok(false);
        }
        // Remember the attempt either way: a broken set is reported once, not
        // every poll, and retried as soon as any file changes again.
        *seen = digest;
        let config = build(&self.files, &contents)?;
        self.current.store(Arc::new(config));
        Ok(true)
    }

    /// Polls the files every `reload_interval_seconds` until the task is aborted.
    pub fn spawn_watcher(self: &Arc<Self>) -> JoinHandle<()> {
        let this = self.clone();
        let every = Duration::from_secs(self.files.reload_interval_seconds.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let me = this.clone();
                let result = tokio::task::spawn_blocking(move || me.reload_if_changed()).await;
                match result {
                    Ok(Ok(true)) => {
                        tracing::info!(cert = %this.files.cert_file.display(), "TLS certificate reloaded");
                        metrics::record_tls_reload(true);
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "TLS reload failed; keeping the previous certificate");
                        metrics::record_tls_reload(false);
                    }
                    Err(e) => tracing::error!(error = %e, "TLS reload task failed"),
                }
            }
        })
    }
}

/// The raw bytes of the configured files.
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

// === impl Contents ===

impl Contents {
    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()] {
            let part = part.map(Vec::as_slice).unwrap_or_default();
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().into()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn read_files(files: &TlsConfig) -> Result<Contents, TlsError> {
    Ok(Contents {
        cert: read(&files.cert_file)?,
        key: read(&files.key_file)?,
        client_ca: files.client_ca_file.as_deref().map(read).transpose()?,
    })
}

fn build(files: &TlsConfig, contents: &Contents) -> Result<rustls::ServerConfig, TlsError> {
    let cert_path = files.cert_file.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&contents.cert)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate(cert_path.clone()))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate(cert_path));
    };
    let expiry = leaf_not_after(leaf);
    let key = PrivateKeyDer::from_pem_slice(&contents.key)
        .map_err(|_| TlsError::NoKey(files.key_file.display().to_string()))?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Certificate {
            path: cert_path.clone(),
            source,
        })?;
    let builder = match (&files.client_ca_file, &contents.client_ca) {
        (Some(path), Some(pem)) => {
            let ca_error = |message: String| TlsError::ClientCa {
                path: path.display().to_string(),
                message,
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| ca_error(e.to_string()))?;
                roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_error("holds no PEM certificate".to_owned()));
            }
            // INVARIANT: with a client CA configured, a client without a
            // certificate chaining to it never completes the handshake.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ca_error(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config =
        builder
            .with_single_cert(chain, key)
            .map_err(|source| TlsError::Certificate {
                path: cert_path,
                source,
            })?;
    // gRPC is HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    if let Some(at) = expiry {
        metrics::record_tls_expiry(at);
    }
    Ok(config)
}

/// The leaf's notAfter, in Unix seconds.
fn leaf_not_after(leaf: &CertificateDer<'_>) -> Option<i64> {
    x509_parser::parse_x509_certificate(leaf.as_ref())
        .ok()
        .map(|(_, cert)| cert.validity().not_after.timestamp())
}

/// Accepts TCP connections on `listener` and yields those that complete a TLS
/// handshake, for `serve_with_incoming_shutdown`. The loop ends when the
/// server drops the stream. Each is [`Coalescing`] (see [`super::conn`]).
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ReloadingTls>,
) -> ReceiverStream<Result<Coalescing<TlsStream<TcpStream>>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                permit = pending.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                () = tx.closed() => return,
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "gRPC accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            // Handshakes run beside the accept loop: one slow client must not
            // hold up the others.
            tokio::spawn(async move {
                let handshake =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                drop(permit);
                match handshake {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(Coalescing(stream))).await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        metrics::record_tls_handshake_failure();
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        metrics::record_tls_handshake_failure();
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn files(dir: &Path) -> TlsConfig {
        TlsConfig {
            cert_file: dir.join("tls.crt"),
            key_file: dir.join("tls.key"),
            client_ca_file: None,
            reload_interval_seconds: 1,
        }
    }

    #[test]
    fn reloads_only_on_change_and_keeps_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("a.example");
        std::fs::write(dir.path().join("tls.crt"), &cert).unwrap();
        std::fs::write(dir.path().join("tls.key"), &key).unwrap();
        let tls = ReloadingTls::new(files(dir.path())).unwrap();
        assert!(!tls.reload_if_changed().unwrap());

        let before = tls.current.load_full();
        // A new certificate with the old key: mismatched, refused, old config kept.
        let (cert2, key2) = self_signed("b.example");
        std::fs::write(dir.path().join("tls.crt"), &cert2).unwrap();
        assert!(tls.reload_if_changed().is_err());
        assert!(Arc::ptr_eq(&before, &tls.current.load_full()));
        // The same broken files are not retried (or reported) again.
        assert!(!tls.reload_if_changed().unwrap());

        std::fs::write(dir.path().join("tls.key"), &key2).unwrap();
        assert!(tls.reload_if_changed().unwrap());
        assert!(!Arc::ptr_eq(&before, &tls.current.load_full()));
    }

    #[test]
    fn missing_or_empty_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            ReloadingTls::new(files(dir.path())),
            Err(TlsError::Read { .. })
        ));
        std::fs::write(dir.path().join("tls.crt"), "not pem").unwrap();
        std::fs::write(dir.path().join("tls.key"), "not pem").unwrap();
        assert!(matches!(
            ReloadingTls::new(files(dir.path())),
            Err(TlsError::NoCertificate(_))
        ));
    }

    #[test]
    fn empty_client_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("a.example");
        std::fs::write(dir.path().join("tls.crt"), &cert).unwrap();
        std::fs::write(dir.path().join("tls.key"), &key).unwrap();
        std::fs::write(dir.path().join("ca.crt"), "").unwrap();
        let mut cfg = files(dir.path());
        cfg.client_ca_file = Some(dir.path().join("ca.crt"));
        assert!(matches!(
            ReloadingTls::new(cfg),
            Err(TlsError::ClientCa { .. })
        ));
    }
}
