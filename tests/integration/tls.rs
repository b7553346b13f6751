//! TLS on the gRPC listener (`server.tls`): a TLS client is served, a client
//! certificate is required when a client CA is configured, a plaintext client
//! is refused, and a rotated certificate reaches new connections without a
//! restart. And the client certificates Envoy forwards (`source.certificate`): only a leaf
//! X.509-SVID of a workload, no longer-lived than configured, is an identity.

use std::path::Path;
use std::time::Duration;

use cedar_gate::app::Running;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::common::check::{self, code, rejection};
use crate::common::ids::{RESEARCH_AGENT, ROGUE_AGENT};
use crate::common::inproc::{InProc, serve};
use crate::common::{Envoy, Stack, TestPki, Upstream, WAIT, eventually, repo_path};

/// A CA that issues a server certificate for `localhost` and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// (certificate PEM, key PEM)
    fn issue(&self, san: &str, eku: ExtendedKeyUsagePurpose) -> (String, String) {
        self.issue_for(&[san], vec![eku])
    }

    /// (certificate PEM, key PEM) with several DNS SANs and extended key usages.
    fn issue_for(&self, sans: &[&str], ekus: Vec<ExtendedKeyUsagePurpose>) -> (String, String) {
        let sans = sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(sans).unwrap();
        params.extended_key_usages = ekus;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write_server(&self, dir: &Path) {
        let (cert, key) = self.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth);
        // Key first, then certificate, as a rotation might: the half-written
        // state (new key, old certificate) must not be served.
        std::fs::write(dir.join("tls.key"), key).unwrap();
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
    }
}

fn tls_config(dir: &Path, client_ca: bool) -> String {
    let path = |name: &str| serde_json::to_string(&dir.join(name)).unwrap();
    let mut yaml = format!(
        "identity:\n  trust_domains: [example.org]\naudit:\n  sink: off\nserver:\n  max_message_bytes: 65536\n  \
         concurrency_limit_per_connection: 64\n  tls:\n    cert_file: {}\n    key_file: {}\n    \
         reload_interval_seconds: 1\n",
        path("tls.crt"),
        path("tls.key"),
    );
    if client_ca {
        yaml.push_str(&format!("    client_ca_file: {}\n", path("client-ca.crt")));
    }
    yaml
}

async fn start(config: &str) -> Running {
    serve(config, &repo_path("cedar")).await
}

/// Connects over TLS trusting only `ca`, presenting `identity` if given, and
/// makes one Check. `Err` if the connection or the call fails.
async fn check_over_tls(
    running: &Running,
    ca: &str,
    identity: Option<(String, String)>,
) -> Result<(), String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let endpoint = Channel::from_shared(format!("https://{}", running.grpc_addr))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?;
    check_once(endpoint).await
}

/// A plaintext (h2c) client against the TLS port.
async fn check_plaintext(running: &Running) -> Result<(), String> {
    check_once(Channel::from_shared(format!("http://{}", running.grpc_addr)).unwrap()).await
}

/// Connects to `endpoint` and makes one Check, each step bounded.
async fn check_once(endpoint: Endpoint) -> Result<(), String> {
    let channel = endpoint
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    AuthorizationClient::new(channel)
        .check(CheckRequest::default())
        .await
        .map(|_| ())
        .map_err(|e| format!("check: {e:?}"))
}

#[tokio::test]
async fn tls_serves_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server CA");
    ca.write_server(dir.path());
    let running = start(&tls_config(dir.path(), false)).await;

    check_over_tls(&running, &ca.pem(), None).await.unwrap();
    let plaintext = check_plaintext(&running).await;
    assert!(plaintext.is_err(), "plaintext client was served");
    // A client that trusts another CA does not get through either.
    let other = Ca::new("other CA");
    assert!(check_over_tls(&running, &other.pem(), None).await.is_err());
    running.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    server_ca.write_server(dir.path());
    let client_ca = Ca::new("client CA");
    std::fs::write(dir.path().join("client-ca.crt"), client_ca.pem()).unwrap();
    let running = start(&tls_config(dir.path(), true)).await;

    let envoy = client_ca.issue("envoy", ExtendedKeyUsagePurpose::ClientAuth);
    check_over_tls(&running, &server_ca.pem(), Some(envoy))
        .await
        .unwrap();
    let err = check_over_tls(&running, &server_ca.pem(), None).await;
    assert!(err.is_err(), "client without a certificate was served");
    let stranger = Ca::new("stranger CA").issue("envoy", ExtendedKeyUsagePurpose::ClientAuth);
    let err = check_over_tls(&running, &server_ca.pem(), Some(stranger)).await;
    assert!(
        err.is_err(),
        "client certificate from another CA was accepted"
    );
    assert!(check_plaintext(&running).await.is_err());
    running.shutdown().await;
}

#[tokio::test]
async fn rotated_certificate_is_served_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old CA");
    old_ca.write_server(dir.path());
    let running = start(&tls_config(dir.path(), false)).await;
    check_over_tls(&running, &old_ca.pem(), None).await.unwrap();

    let new_ca = Ca::new("new CA");
    new_ca.write_server(dir.path());
    eventually("the rotated certificate to be served", WAIT, || async {
        check_over_tls(&running, &new_ca.pem(), None).await.ok()
    })
    .await;
    // New connections no longer get the old certificate.
    assert!(check_over_tls(&running, &old_ca.pem(), None).await.is_err());

    // A broken rotation keeps the last good certificate.
    std::fs::write(dir.path().join("tls.crt"), "garbage").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    check_over_tls(&running, &new_ca.pem(), None).await.unwrap();
    running.shutdown().await;
}

/// The shipped `envoy/sidecar.yaml` as deployed: a real Envoy calls cedar-gate over mutual
/// TLS (its workload certificate as the client certificate, cedar-gate's DNS name pinned),
/// and the decisions come back through it. Only the cedar-gate address, ports and
/// certificate directory are substituted.
#[tokio::test]
async fn sidecar_envoy_calls_cedar_gate_over_mutual_tls() {
    // Callers' certificates come from the test PKI; the workload CA issues the sidecar's
    // certificate (server and client use, like a SPIFFE SVID) and cedar-gate's.
    let pki = TestPki::new();
    let workload_ca = Ca::new("workload CA");
    let (svid, svid_key) = workload_ca.issue_for(
        &["localhost"],
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    );
    std::fs::write(pki.dir().join("server.crt"), svid).unwrap();
    std::fs::write(pki.dir().join("server.key"), svid_key).unwrap();
    // The sidecar's one CA bundle verifies callers and cedar-gate alike.
    let bundle = format!("{}{}", pki.ca_pem(), workload_ca.pem());
    std::fs::write(pki.dir().join("ca.crt"), bundle).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = workload_ca.issue(
        "cedar-gate.cedar-gate.svc",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), key).unwrap();
    std::fs::write(dir.path().join("client-ca.crt"), workload_ca.pem()).unwrap();
    let running = start(&tls_config(dir.path(), true)).await;
    let upstream = Upstream::start().await;

    let shipped = std::fs::read_to_string(repo_path("envoy/sidecar.yaml")).unwrap();
    let template = dir.path().join("sidecar.yaml");
    std::fs::write(
        &template,
        shipped.replace(
            "cedar-gate-headless.cedar-gate.svc.cluster.local",
            "127.0.0.1",
        ),
    )
    .unwrap();
    let envoy = Envoy::start_config(&template, running.grpc_addr, upstream.addr(), &pki).await;

    let port = envoy.listener_port();
    let caller = |spiffe_id: &str| {
        let cert = pki.client(spiffe_id);
        reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([reqwest::Certificate::from_pem(workload_ca.pem().as_bytes()).unwrap()])
            .identity(
                reqwest::Identity::from_pem(
                    format!("{}{}", cert.cert_pem, cert.key_pem).as_bytes(),
                )
                .unwrap(),
            )
            .resolve(
                "localhost",
                std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            )
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let url = format!("https://localhost:{port}/v1/models");
    let allowed = caller(RESEARCH_AGENT).get(&url).send().await.unwrap();
    assert_eq!(allowed.status(), 200, "{}", envoy.logs());
    let denied = caller(ROGUE_AGENT).get(&url).send().await.unwrap();
    assert_eq!(denied.status(), 403);
    assert_eq!(
        upstream.requests().len(),
        1,
        "only the allowed request went upstream"
    );

    let stats = envoy.stats().await;
    let handshakes = stats
        .lines()
        .find_map(|l| l.strip_prefix("cluster.cedar_gate.ssl.handshake: "))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(
        handshakes.is_some_and(|n| n > 0),
        "no TLS handshake to cedar-gate in Envoy's stats"
    );
    drop(envoy);
    running.shutdown().await;
}

/// Client SVIDs issued by the test CA, forwarded as Envoy forwards them: each way a
/// certificate is not a workload's leaf SVID is refused with its own reason.
#[tokio::test]
async fn forwarded_client_certificates_must_be_leaf_svids() {
    let pki = TestPki::new();
    let s = InProc::shipped(
        "identity:\n  trust_domains: [example.org]\n  max_certificate_lifetime_seconds: 86400\naudit:\n  sink: off\n",
    )
    .await;
    let ca = |p: &mut CertificateParams| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    type Customize = fn(&mut CertificateParams);
    // (what, SPIFFE id, change to a leaf living one hour, reason; "" is allowed)
    let cases: [(&str, &str, Customize, &str); 7] = [
        ("leaf SVID", RESEARCH_AGENT, |_| {}, ""),
        ("CA certificate", RESEARCH_AGENT, ca, "ca_certificate"),
        (
            "no key usage",
            RESEARCH_AGENT,
            |p| p.key_usages.clear(),
            "no_key_usage",
        ),
        (
            "keyEncipherment only",
            RESEARCH_AGENT,
            |p| p.key_usages = vec![KeyUsagePurpose::KeyEncipherment],
            "key_usage_lacks_digital_signature",
        ),
        (
            "keyCertSign on a leaf",
            RESEARCH_AGENT,
            |p| p.key_usages.push(KeyUsagePurpose::KeyCertSign),
            "signing_key_usage",
        ),
        (
            "two days, one allowed",
            RESEARCH_AGENT,
            |p| {
                p.not_after =
                    (std::time::SystemTime::now() + Duration::from_secs(2 * 86_400)).into()
            },
            "certificate_lifetime_exceeded",
        ),
        (
            "bare trust domain",
            "spiffe://example.org",
            |_| {},
            "trust_domain_id",
        ),
    ];
    for (what, id, customize, reason) in cases {
        let cert = pki.client_with(id, |p| {
            let now = std::time::SystemTime::now();
            p.not_before = (now - Duration::from_secs(60)).into();
            p.not_after = (now + Duration::from_secs(3600)).into();
            customize(p);
        });
        for principal in ["", id] {
            let mut req = check::request("req-1", principal, "GET", "/v1/models", &[]);
            req.attributes
                .as_mut()
                .unwrap()
                .source
                .as_mut()
                .unwrap()
                .certificate = percent_encoding::utf8_percent_encode(
                &cert.cert_pem,
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string();
            let resp = s.check(req).await;
            if reason.is_empty() {
                assert_eq!(code(&resp), 0, "{what}: {:?}", resp.http_response);
            } else {
                assert_eq!(rejection(&resp), reason, "{what} (principal `{principal}`)");
            }
        }
    }
    let (_, metrics) = s.admin("/metrics").await;
    assert!(
        metrics.contains("cedar_gate_identity_rejections_total{reason=\"ca_certificate\"} 2"),
        "{metrics}"
    );
}

/// Through the shipped `envoy/envoy.yaml`: a CA certificate (or one without key usage)
/// chains to the trusted CA and names an approved workload, so Envoy completes the
/// handshake; cedar-gate reads the forwarded certificate and refuses it.
#[tokio::test]
async fn envoy_forwarded_ca_certificate_is_refused() {
    let stack = Stack::start().await;
    let port = stack.envoy.listener_port();
    // The approved workload's own leaf gets through, so the refusals are about the certificate.
    let ok = stack
        .client(RESEARCH_AGENT)
        .get("/v1/models")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    type Customize = fn(&mut CertificateParams);
    let cases: [(&str, Customize, &str); 2] = [
        (
            "CA certificate",
            |p| {
                p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                p.key_usages.push(KeyUsagePurpose::KeyCertSign);
            },
            "ca_certificate",
        ),
        ("no key usage", |p| p.key_usages.clear(), "no_key_usage"),
    ];
    for (what, customize, reason) in cases {
        let cert = stack.pki.client_with(RESEARCH_AGENT, customize);
        let client = crate::common::MtlsClient::new(&stack.pki, &cert, port);
        let resp = client.get("/v1/models").send().await.unwrap();
        assert_eq!(resp.status(), 401, "{what}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains(&format!("error_description=\"{reason}\"")),
            "{what}: {challenge}"
        );
    }
    assert_eq!(
        stack.upstream.requests().len(),
        1,
        "only the leaf SVID went upstream"
    );
}
