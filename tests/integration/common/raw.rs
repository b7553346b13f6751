//! Raw HTTP/1.1 over mTLS to Envoy's listener: the request is written byte for byte, so a
//! test can send what an HTTP client library refuses to (invalid UTF-8 in the path or a
//! header value, hundreds of headers, a body shorter than its `content-length`). Every
//! read is bounded in time.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::{ClientCert, TestPki};

/// Most response bytes kept (Envoy's and cedar-gate's answers are small).
const MAX_RESPONSE: usize = 1 << 20;

/// An mTLS connector to one Envoy listener, ALPN `http/1.1` only.
#[derive(Clone)]
pub struct RawClient {
    connector: TlsConnector,
    port: u16,
}

/// What came back, if anything.
#[derive(Debug, Default)]
pub struct RawResponse {
    /// The status code of the first response line; `None` when the connection closed (or
    /// the wait ended) before a complete status line arrived.
    pub status: Option<u16>,
    /// Header lines, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body (`content-length` bytes, or whatever arrived before the connection closed).
    pub body: Vec<u8>,
    /// Whether the wait ended before the answer was complete.
    pub timed_out: bool,
}

// === impl RawClient ===

impl RawClient {
    /// Presents `cert` to Envoy on 127.0.0.1:`port`, trusting only the test CA.
    pub fn new(pki: &TestPki, cert: &ClientCert, port: u16) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca_pem().as_bytes()).expect("CA PEM"))
            .expect("add CA");
        let chain = vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).expect("cert")];
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key PEM");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("client certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            connector: TlsConnector::from(Arc::new(config)),
            port,
        }
    }

    /// A TLS connection to the listener (handshake bounded to 5 s).
    pub async fn connect(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to Envoy");
        // The head and the body go out as separate TLS records: with Nagle's algorithm the
        // second waits for the first one's delayed ACK (40 ms on Linux), which made every
        // request with a body wait that long.
        tcp.set_nodelay(true).expect("TCP_NODELAY");
        let name = ServerName::try_from("localhost").expect("server name");
        tokio::time::timeout(Duration::from_secs(5), self.connector.connect(name, tcp))
            .await
            .expect("TLS handshake within 5 s")
            .expect("TLS handshake")
    }

    /// Writes `head` and then `body` (in a task of its own, so a large body never blocks
    /// reading the answer; write errors are ignored: Envoy may answer and close before it
    /// has read everything), then reads one response for at most `wait`. With
    /// `close_write`, the write side is shut down after the body (a client giving up).
    pub async fn send(
        &self,
        head: Vec<u8>,
        body: Vec<u8>,
        close_write: bool,
        wait: Duration,
    ) -> RawResponse {
        self.send_parts(head, vec![body], Duration::ZERO, close_write, wait)
            .await
    }

    /// Like [`RawClient::send`], with the body written as `parts`, flushed one by one with
    /// `pause` between them (to control what the proxy has buffered when).
    pub async fn send_parts(
        &self,
        head: Vec<u8>,
        parts: Vec<Vec<u8>>,
        pause: Duration,
        close_write: bool,
        wait: Duration,
    ) -> RawResponse {
        let stream = self.connect().await;
        let (mut reader, mut writer) = tokio::io::split(stream);
        let write = tokio::spawn(async move {
            if writer.write_all(&head).await.is_err() {
                return;
            }
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(pause).await;
                }
                for chunk in part.chunks(64 * 1024) {
                    if writer.write_all(chunk).await.is_err() {
                        return;
                    }
                }
                if writer.flush().await.is_err() {
                    return;
                }
            }
            if close_write {
                let _ = writer.shutdown().await;
            } else {
                // Keep the connection open until the reader is done.
                std::future::pending::<()>().await;
            }
        });
        let resp = read_response(&mut reader, wait).await;
        write.abort();
        resp
    }
}

/// Reads one HTTP/1.1 response, for at most `wait`.
async fn read_response<R: AsyncReadExt + Unpin>(reader: &mut R, wait: Duration) -> RawResponse {
    let mut buf = Vec::new();
    let mut resp = RawResponse::default();
    let deadline = tokio::time::Instant::now() + wait;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if parse(&buf, &mut resp) == Some(true) {
            return resp;
        }
        if buf.len() > MAX_RESPONSE {
            return resp;
        }
        match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
            Err(_) => {
                resp.timed_out = true;
                return resp;
            }
            // Closed (or reset): what arrived is the answer.
            Ok(Ok(0)) | Ok(Err(_)) => {
                parse(&buf, &mut resp);
                if resp.status.is_some()
                    && resp.body.is_empty()
                    && let Some(at) = find(&buf, b"\r\n\r\n")
                {
                    resp.body = buf[at + 4..].to_vec();
                }
                return resp;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Fills `resp` from `buf`; `Some(true)` when a complete response (headers and
/// `content-length` body) is there, `Some(false)` when only the head is.
fn parse(buf: &[u8], resp: &mut RawResponse) -> Option<bool> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    resp.status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok());
    resp.headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len = resp
        .headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())?;
    let body = &buf[end + 4..];
    if body.len() >= len {
        resp.body = body[..len].to_vec();
        return Some(true);
    }
    Some(false)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// === impl RawResponse ===

impl RawResponse {
    /// A header's value by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// An HTTP/1.1 request head: request line, `host: localhost`, the given header lines
/// (raw bytes, so they may hold anything), and a blank line.
pub fn head(method: &str, target: &[u8], headers: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nhost: localhost\r\n");
    for h in headers {
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}
