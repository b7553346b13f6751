use super::*;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rcgen::{
    BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};

const AGENT: &str = "spiffe://example.org/ns/default/sa/agent";
/// 2025-06-01T00:00:00Z, inside the default test validity window.
const NOW_SECS: u64 = 1_748_736_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

/// Leaf SVID parameters (key usage `digitalSignature`), valid 2025-01-01 to 2026-01-01.
fn leaf(sans: Vec<SanType>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = date_time_ymd(2025, 1, 1);
    params.not_after = date_time_ymd(2026, 1, 1);
    params
}

/// A self-signed leaf SVID PEM valid 2025-01-01 to 2026-01-01.
fn pem_with(sans: Vec<SanType>) -> String {
    pem_from(leaf(sans))
}

fn pem_from(params: CertificateParams) -> String {
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

/// URL-encodes the way Envoy's `urlEncodedPemEncodedPeerCertificate` does.
fn envoy_encode(pem: &str) -> String {
    pem.replace('\n', "%0A")
        .replace(' ', "%20")
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

fn err(pem: &str) -> CertError {
    parse_pem(pem.as_bytes(), now()).unwrap_err()
}

#[test]
fn parses_valid_svid() {
    let pem = pem_with(vec![uri(AGENT)]);
    let expected = PeerCertificate {
        spiffe_id: SpiffeId::parse(AGENT).unwrap(),
        not_before: UNIX_EPOCH + Duration::from_secs(1_735_689_600),
        not_after: UNIX_EPOCH + Duration::from_secs(1_767_225_600),
    };
    assert_eq!(parse_pem(pem.as_bytes(), now()).unwrap(), expected);

    let fully_encoded = utf8_percent_encode(&pem, NON_ALPHANUMERIC).to_string();
    assert_eq!(
        parse_url_encoded_pem(&fully_encoded, now()).unwrap(),
        expected
    );
    assert_eq!(
        parse_url_encoded_pem(&envoy_encode(&pem), now()).unwrap(),
        expected
    );
}

#[test]
fn ignores_other_sans() {
    let pem = pem_with(vec![
        SanType::DnsName("agent.example.org".try_into().unwrap()),
        uri("https://example.org/agent"),
        uri(AGENT),
    ]);
    let cert = parse_pem(pem.as_bytes(), now()).unwrap();
    assert_eq!(cert.spiffe_id.as_str(), AGENT);
}

#[test]
fn validity_bounds_are_inclusive() {
    let pem = pem_with(vec![uri(AGENT)]);
    let at = |secs| parse_pem(pem.as_bytes(), UNIX_EPOCH + Duration::from_secs(secs));
    assert!(at(1_735_689_600).is_ok());
    assert!(at(1_767_225_600).is_ok());
}

#[test]
fn rejects_certificate_without_san() {
    assert_eq!(err(&pem_with(vec![])), CertError::NoSpiffeId);
}

#[test]
fn rejects_dns_san_only() {
    let pem = pem_with(vec![SanType::DnsName(
        "agent.example.org".try_into().unwrap(),
    )]);
    assert_eq!(err(&pem), CertError::NoSpiffeId);
}

#[test]
fn rejects_two_spiffe_ids() {
    let pem = pem_with(vec![
        uri(AGENT),
        uri("spiffe://example.org/ns/default/sa/other"),
    ]);
    assert_eq!(err(&pem), CertError::MultipleSpiffeIds { count: 2 });
}

#[test]
fn rejects_invalid_spiffe_id() {
    let pem = pem_with(vec![uri("spiffe://Example.org/ns/default/sa/agent")]);
    let e = err(&pem);
    assert_eq!(
        e,
        CertError::InvalidSpiffeId(SpiffeIdError::InvalidTrustDomainChar('E'))
    );
    assert_eq!(e.reason(), "invalid_spiffe_id");
    // An upper-case scheme is not skipped as "some other URI".
    let pem = pem_with(vec![uri("SPIFFE://example.org/a")]);
    assert_eq!(
        err(&pem),
        CertError::InvalidSpiffeId(SpiffeIdError::WrongScheme)
    );
}

#[test]
fn rejects_expired() {
    let mut params = leaf(vec![uri(AGENT)]);
    params.not_before = date_time_ymd(2024, 1, 1);
    params.not_after = date_time_ymd(2025, 1, 1);
    assert_eq!(
        err(&pem_from(params)),
        CertError::Expired {
            not_after: 1_735_689_600
        }
    );
}

#[test]
fn rejects_not_yet_valid() {
    let mut params = leaf(vec![uri(AGENT)]);
    params.not_before = date_time_ymd(2026, 1, 1);
    params.not_after = date_time_ymd(2027, 1, 1);
    assert_eq!(
        err(&pem_from(params)),
        CertError::NotYetValid {
            not_before: 1_767_225_600
        }
    );
}

#[test]
fn leaf_svid_rules() {
    use KeyUsagePurpose::{CrlSign, DigitalSignature, KeyAgreement, KeyCertSign, KeyEncipherment};
    let ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // (what, cA, key usages, expected)
    type Case = (
        &'static str,
        IsCa,
        Vec<KeyUsagePurpose>,
        Result<(), CertError>,
    );
    let cases: Vec<Case> = vec![
        ("leaf", IsCa::NoCa, vec![DigitalSignature], Ok(())),
        (
            "leaf, explicit cA=FALSE, RSA-style usages",
            IsCa::ExplicitNoCa,
            vec![DigitalSignature, KeyEncipherment, KeyAgreement],
            Ok(()),
        ),
        (
            "CA",
            ca,
            vec![DigitalSignature],
            Err(CertError::CaCertificate),
        ),
        (
            "CA, no key usage",
            ca,
            vec![],
            Err(CertError::CaCertificate),
        ),
        (
            "no key usage",
            IsCa::NoCa,
            vec![],
            Err(CertError::NoKeyUsage),
        ),
        (
            "no digitalSignature",
            IsCa::NoCa,
            vec![KeyEncipherment],
            Err(CertError::NoDigitalSignature),
        ),
        (
            "keyCertSign on a leaf",
            IsCa::NoCa,
            vec![DigitalSignature, KeyCertSign],
            Err(CertError::SigningKeyUsage),
        ),
        (
            "cRLSign on a leaf",
            IsCa::ExplicitNoCa,
            vec![DigitalSignature, CrlSign],
            Err(CertError::SigningKeyUsage),
        ),
    ];
    for (what, is_ca, usages, expected) in cases {
        let mut params = leaf(vec![uri(AGENT)]);
        params.is_ca = is_ca;
        params.key_usages = usages;
        let got = parse_pem(pem_from(params).as_bytes(), now()).map(|_| ());
        assert_eq!(got, expected, "{what}");
    }
}

#[test]
fn lifetime_is_bounded_when_configured() {
    let cert = parse_pem(pem_with(vec![uri(AGENT)]).as_bytes(), now()).unwrap();
    let year = Duration::from_secs(365 * 86_400);
    assert_eq!(cert.lifetime(), year);
    for (max, ok) in [(None, true), (Some(year), true), (Some(year / 2), false)] {
        assert_eq!(cert.check_lifetime(max).is_ok(), ok, "{max:?}");
    }
    let e = cert
        .check_lifetime(Some(Duration::from_secs(3600)))
        .unwrap_err();
    assert_eq!(
        e,
        CertError::LifetimeExceeded {
            lifetime: 31_536_000,
            max: 3600
        }
    );
    assert_eq!(e.reason(), "certificate_lifetime_exceeded");
}

#[test]
fn fuzz_seeds_reach_the_accept_and_refuse_paths() {
    // The fuzz target's fixed clock, 2027-06-01T00:00:00Z.
    let at = UNIX_EPOCH + Duration::from_secs(1_811_808_000);
    let seed = |name| {
        let path = format!("{}/fuzz/seeds/cert_pem/{name}", env!("CARGO_MANIFEST_DIR"));
        parse_pem(&std::fs::read(path).unwrap(), at)
    };
    assert!(seed("svid-leaf.pem").is_ok());
    assert_eq!(seed("spiffe-leaf.pem").unwrap_err(), CertError::NoKeyUsage);
    assert_eq!(seed("ca-no-uri.pem").unwrap_err(), CertError::NoSpiffeId);
}

#[test]
fn rejects_garbage() {
    assert_eq!(err(""), CertError::NoPemBlock);
    assert_eq!(err("hello, world"), CertError::NoPemBlock);
    assert_eq!(
        parse_pem(&[0xff, 0xfe, 0x00, 0x80], now()).unwrap_err(),
        CertError::NoPemBlock
    );
}

#[test]
fn rejects_truncated_pem() {
    let pem = pem_with(vec![uri(AGENT)]);
    assert_eq!(err(&pem[..pem.len() / 2]), CertError::MalformedPem);
    let no_end = pem.replace("-----END CERTIFICATE-----", "");
    assert_eq!(err(&no_end), CertError::MalformedPem);
}

#[test]
fn rejects_bad_base64() {
    let pem = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    assert_eq!(err(pem), CertError::MalformedPem);
}

#[test]
fn rejects_truncated_der() {
    // Keep whole base64 lines so the PEM decodes but the DER is cut short.
    let pem = pem_with(vec![uri(AGENT)]);
    let lines: Vec<&str> = pem.lines().collect();
    let truncated = [&lines[..3], &lines[lines.len() - 1..]].concat().join("\n");
    assert_eq!(err(&truncated), CertError::MalformedCertificate);
}

#[test]
fn rejects_non_certificate_der() {
    let pem = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    assert_eq!(err(pem), CertError::MalformedCertificate);
}

#[test]
fn rejects_wrong_pem_label() {
    let key = KeyPair::generate().unwrap().serialize_pem();
    assert_eq!(
        err(&key),
        CertError::WrongPemLabel {
            label: "PRIVATE KEY".into()
        }
    );
    let long = format!(
        "-----BEGIN {}-----\nAAAA\n-----END X-----\n",
        "X".repeat(500)
    );
    let CertError::WrongPemLabel { label } = err(&long) else {
        unreachable!("expected a wrong label");
    };
    assert_eq!(label.len(), MAX_LABEL_ECHO);
}

#[test]
fn rejects_too_large() {
    let big = "A".repeat(MAX_INPUT_BYTES + 1);
    assert_eq!(
        parse_url_encoded_pem(&big, now()).unwrap_err(),
        CertError::TooLarge {
            len: MAX_INPUT_BYTES + 1
        }
    );
    assert_eq!(
        err(&big),
        CertError::TooLarge {
            len: MAX_INPUT_BYTES + 1
        }
    );
}

#[test]
fn rejects_malformed_percent_encoding() {
    for (s, offset) in [("%zz", 0), ("abc%4", 3), ("abc%", 3), ("%41%g1", 3)] {
        assert_eq!(
            parse_url_encoded_pem(s, now()).unwrap_err(),
            CertError::InvalidPercentEncoding { offset },
            "{s}"
        );
    }
}

#[test]
fn rejects_non_utf8() {
    assert_eq!(
        parse_url_encoded_pem("%C3%28", now()).unwrap_err(),
        CertError::NotUtf8
    );
}

#[test]
fn reasons_are_stable() {
    assert_eq!(CertError::NoSpiffeId.reason(), "no_spiffe_id");
    assert_eq!(CertError::Expired { not_after: 0 }.reason(), "expired");
    assert_eq!(
        CertError::InvalidSpiffeId(SpiffeIdError::Port).to_string(),
        "peer certificate URI SAN is not a valid SPIFFE id: SPIFFE trust domain must not contain a port"
    );
}
