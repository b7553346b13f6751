//! An HTTPS client for Envoy's mTLS listener: it presents a client certificate, trusts only
//! the test CA, and resolves `localhost` to 127.0.0.1 so no traffic leaves loopback.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Certificate, Identity, Method, RequestBuilder};

use super::{ClientCert, TestPki};

/// A client bound to one Envoy listener (`https://localhost:<port>`).
#[derive(Clone, Debug)]
pub struct MtlsClient {
    http: reqwest::Client,
    base: String,
}

// === impl MtlsClient ===

impl MtlsClient {
    /// Presents `cert` to the listener on 127.0.0.1:`port`.
    pub fn new(pki: &TestPki, cert: &ClientCert, port: u16) -> Self {
        let identity = Identity::from_pem(format!("{}{}", cert.cert_pem, cert.key_pem).as_bytes())
            .expect("client identity from PEM");
        Self::build(pki, Some(identity), port)
    }

    /// Presents no client certificate at all (Envoy must refuse the handshake).
    pub fn without_certificate(pki: &TestPki, port: u16) -> Self {
        Self::build(pki, None, port)
    }

    fn build(pki: &TestPki, identity: Option<Identity>, port: u16) -> Self {
        let ca = Certificate::from_pem(pki.ca_pem().as_bytes()).expect("CA certificate");
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([ca])
            .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], port)))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10));
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        let http = builder.build().expect("build mTLS client");
        Self { http, base: format!("https://localhost:{port}") }
    }

    /// `https://localhost:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A request to `path` (which starts with `/`).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// A GET of `path`.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// A POST of `path`.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }
}
