//! A throwaway PKI: one CA, a server certificate for `localhost` / `127.0.0.1`, and client
//! certificates whose only SAN is a SPIFFE URI (X.509-SVID style), all EC P-256.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use tempfile::TempDir;

/// A CA plus the files Envoy's shipped config expects under `/etc/envoy/certs/`:
/// `ca.crt`, `server.crt`, `server.key` (all in [`TestPki::dir`]).
pub struct TestPki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A client certificate and its key, as PEM text and as files in the PKI directory.
#[derive(Clone, Debug)]
pub struct ClientCert {
    /// The URI SAN.
    pub spiffe_id: String,
    /// The leaf certificate (PEM).
    pub cert_pem: String,
    /// Its PKCS#8 private key (PEM).
    pub key_pem: String,
    /// `cert_pem` on disk.
    pub cert_path: PathBuf,
    /// `key_pem` on disk.
    pub key_path: PathBuf,
}

// === impl TestPki ===

impl TestPki {
    /// Creates the CA and the server certificate and writes `ca.crt`, `server.crt` and
    /// `server.key` into a new temporary directory.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cedar-gate-pki-")
            .tempdir()
            .expect("pki tempdir");

        let mut params = CertificateParams::default();
        params.distinguished_name = dn("cedar-gate test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, key()).expect("self-sign CA");
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).expect("write ca.crt");

        let pki = Self { dir, ca };
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server SANs");
        params.distinguished_name = dn("localhost");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let (cert, key) = pki.issue(params);
        std::fs::write(pki.dir().join("server.crt"), cert).expect("write server.crt");
        std::fs::write(pki.dir().join("server.key"), key).expect("write server.key");
        pki
    }

    /// The directory holding `ca.crt`, `server.crt`, `server.key` and the client files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate (PEM): the only root the test clients trust.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// Issues a client certificate (clientAuth EKU) whose only SAN is the URI `spiffe_id`,
    /// signed by this CA. `spiffe_id` need not be valid or of our trust domain: tests use
    /// this to present foreign or malformed ids.
    pub fn client(&self, spiffe_id: &str) -> ClientCert {
        self.client_with(spiffe_id, |_| {})
    }

    /// Like [`TestPki::client`], with the leaf's parameters changed by `customize` before
    /// signing (to present a CA certificate, other key usages, another lifetime, ...).
    pub fn client_with(
        &self,
        spiffe_id: &str,
        customize: impl FnOnce(&mut CertificateParams),
    ) -> ClientCert {
        let mut params = CertificateParams::default();
        // SPIFFE X.509-SVIDs carry the identity in the URI SAN; the CN is informational.
        params.distinguished_name = dn("workload");
        params.subject_alt_names = vec![SanType::URI(
            spiffe_id.try_into().expect("SPIFFE id is not IA5"),
        )];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        customize(&mut params);
        let (cert_pem, key_pem) = self.issue(params);

        let stem: String = spiffe_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let cert_path = self.dir().join(format!("client-{stem}.crt"));
        let key_path = self.dir().join(format!("client-{stem}.key"));
        std::fs::write(&cert_path, &cert_pem).expect("write client cert");
        std::fs::write(&key_path, &key_pem).expect("write client key");
        ClientCert {
            spiffe_id: spiffe_id.to_owned(),
            cert_pem,
            key_pem,
            cert_path,
            key_path,
        }
    }

    /// Signs `params` with a fresh P-256 key; returns (certificate PEM, key PEM).
    fn issue(&self, params: CertificateParams) -> (String, String) {
        let key = key();
        let cert = params.signed_by(&key, &self.ca).expect("sign certificate");
        (cert.pem(), key.serialize_pem())
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

fn key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate P-256 key")
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}
