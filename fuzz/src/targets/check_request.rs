//! The whole Check path from a fuzzed, protobuf-encoded `CheckRequest`: wire → HttpRequest
//! conversion, identity (peer principal, forwarded certificate, XFCC), classification,
//! Cedar evaluation against the shipped `cedar/` snapshot (loaded once), the response to
//! Envoy and the audit event. The same steps as `service.rs`, minus tonic.
//!
//! Invariants: never panics; the server's lean decode reads a request as envoy-types' full
//! message does wherever both decode; an allow always carries a principal and a determining
//! policy; every answer has a status and is written canonically; the audit event serializes.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use cedar_gate::config::Config;
use cedar_gate::decide::Gate;
use cedar_gate::policy::Snapshot;
use cedar_gate::record::audit::AuditEvent;
use cedar_gate::request::HttpRequest;
use cedar_gate::wire::lean::WireCheckRequest;
use cedar_gate::wire::response;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use prost::Message;

/// The token issuer of the third gate; `make-seeds` signs the `bearer` seed for it.
const ISSUER: &str = "https://idp.example.com";
const AUDIENCE: &str = "https://models.example.com";

struct World {
    snapshot: Snapshot,
    /// XFCC ignored (the default), XFCC trusted, and a bearer-token issuer with the
    /// `rsa-a` test key (`seeds/jwks-rsa-a.json`), so every identity path is reached.
    gates: [Gate; 3],
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cedar");
        let snapshot = cedar_gate::policy::load::load_dir(&dir, 1).expect("shipped cedar/ loads");
        let gate = |yaml: &str| Gate::new(Arc::new(Config::from_yaml(yaml).expect("config")));
        World {
            snapshot,
            gates: [
                gate("identity:\n  trust_domains: [example.org]\n"),
                gate("identity:\n  trust_domains: [example.org]\n  xfcc:\n    trusted: true\n"),
                gate(&format!(
                    "identity:\n  trust_domains: [example.org]\n  issuers:\n  \
                     - issuer: {ISSUER}\n    jwks_file: {}/seeds/jwks-rsa-a.json\n    \
                     audiences: [{AUDIENCE}]\n    entity_type: User\n    groups_claim: groups\n",
                    env!("CARGO_MANIFEST_DIR")
                )),
            ],
        }
    })
}

/// One input; panics when an invariant above does not hold.
pub fn run(data: &[u8]) {
    // As the server decodes it: the parts it reads.
    let Ok(check) = WireCheckRequest::decode(data) else {
        return;
    };
    // Where envoy-types' full message decodes too, it reads as the same request
    // (the lean decode skips only fields nothing reads, and keeps the header
    // map's last-wins semantics).
    if let Ok(full) = CheckRequest::decode(data) {
        assert_eq!(
            HttpRequest::try_from(full),
            HttpRequest::try_from(check.clone())
        );
    }
    let w = world();
    let req = match HttpRequest::try_from(check) {
        Ok(req) => req,
        Err(e) => {
            let resp = decoded(&response::bad_request(&e.to_string()));
            assert!(resp.status.is_some_and(|s| s.code != 0));
            return;
        }
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_811_808_000);
    for gate in &w.gates {
        let outcome = gate.check(&w.snapshot, &req, now);
        if outcome.decision.is_allow() {
            assert!(!outcome.principal.is_empty());
            assert!(!outcome.decision.policies.is_empty());
            assert!(outcome.identity_error.is_none());
        }
        let resp = decoded(&response::build(&outcome, &req, &gate.config().response));
        let code = resp.status.as_ref().map(|s| s.code);
        assert_eq!(code == Some(0), outcome.decision.is_allow());
        let event = AuditEvent::new(&outcome, &req, now, Duration::from_micros(1));
        let serde = serde_json::to_string(&event).expect("audit event serializes");
        // The hand-written audit line is byte for byte serde's.
        assert_eq!(event.to_json(), serde);
    }
}

/// The answer as Envoy reads it: it decodes, and is exactly as long as prost's
/// own encoding of what it decodes to (the hand-written encoder in
/// `wire::pbwrite` writes no field twice and none that proto3 leaves out).
fn decoded(answer: &response::Encoded) -> envoy_types::ext_authz::v3::pb::CheckResponse {
    let message = answer
        .decode()
        .expect("every answer decodes as a CheckResponse");
    assert_eq!(message.encoded_len(), answer.as_bytes().len());
    message
}
