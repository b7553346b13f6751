//! Policy lifecycle against the real server: hot reload (good edit, bad edit,
//! recovery, ConfigMap `..data` swap, bursts, SIGHUP, late first load),
//! revocation under traffic with the decision cache on, and checks racing
//! reloads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::google::protobuf::value::Kind;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::common::check;
use crate::common::ids::{RESEARCH_AGENT, ROGUE_AGENT};
use crate::common::{
    GateOptions, InProc, WAIT, audit_file_yaml, copy_shipped_policies, eventually, repo_path,
};

/// Short debounce so the tests run fast.
const CONFIG: &str = "identity:\n  trust_domains: [example.org]\naudit:\n  sink: off\npolicy_reload:\n  debounce_ms: 50\n";

const ENTITIES_RESEARCH_ONLY: &str = r#"[
  {"uid": {"type": "RouteGroup", "id": "agent-api"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Route", "id": "/v1/models"}, "attrs": {},
   "parents": [{"type": "RouteGroup", "id": "agent-api"}]},
  {"uid": {"type": "Group", "id": "approved-agents"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Group", "id": "quarantined"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Workload", "id": "spiffe://example.org/ns/agents/sa/research-agent"},
   "attrs": {}, "parents": [{"type": "Group", "id": "approved-agents"}]}
]"#;

const ENTITIES_ROGUE_ONLY: &str = r#"[
  {"uid": {"type": "RouteGroup", "id": "agent-api"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Route", "id": "/v1/models"}, "attrs": {},
   "parents": [{"type": "RouteGroup", "id": "agent-api"}]},
  {"uid": {"type": "Group", "id": "approved-agents"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Group", "id": "quarantined"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Workload", "id": "spiffe://example.org/ns/agents/sa/rogue-agent"},
   "attrs": {}, "parents": [{"type": "Group", "id": "approved-agents"}]}
]"#;

const ENTITIES_NOBODY: &str = r#"[
  {"uid": {"type": "RouteGroup", "id": "agent-api"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Route", "id": "/v1/models"}, "attrs": {},
   "parents": [{"type": "RouteGroup", "id": "agent-api"}]},
  {"uid": {"type": "Group", "id": "approved-agents"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Group", "id": "quarantined"}, "attrs": {}, "parents": []}
]"#;

/// The in-process server over a policy directory of its own, and what these tests ask of
/// its `/status`.
struct Server {
    gate: InProc,
}

/// One answered check.
#[derive(Debug, Clone, Copy)]
struct Answer {
    allowed: bool,
    generation: u64,
    cache_hit: bool,
}

impl Server {
    /// A server over a fresh policy directory made by `fill`.
    async fn start_with(config: &str, fill: impl FnOnce(&Path)) -> Self {
        Self {
            gate: InProc::start_in(config, fill).await,
        }
    }

    /// A server over a copy of `cedar/`.
    async fn start(config: &str) -> Self {
        Self::start_with(config, copy_shipped_policies).await
    }

    fn dir(&self) -> &Path {
        self.gate.policy_dir()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    async fn check(&self, principal: &str, path: &str) -> Answer {
        answer(&mut self.gate.client(), principal, path)
            .await
            .unwrap()
    }

    async fn admin(&self, path: &str) -> (u16, String) {
        self.gate.admin(path).await
    }

    async fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.admin("/status").await.1).unwrap()
    }

    async fn generation(&self) -> u64 {
        self.status().await["snapshot"]["generation"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Waits until `/status` shows a generation above `above` and a successful last reload.
    async fn wait_swap(&self, above: u64) -> u64 {
        eventually(
            &format!("a snapshot newer than generation {above}"),
            WAIT,
            || async {
                let s = self.status().await;
                let g = s["snapshot"]["generation"].as_u64().unwrap_or(0);
                (g > above && s["last_reload"]["ok"] == true).then_some(g)
            },
        )
        .await
    }

    /// Waits until `/status` shows a successful last reload.
    async fn wait_recovered(&self) {
        eventually("a successful reload on /status", WAIT, || async {
            (self.status().await["last_reload"]["ok"] == true).then_some(())
        })
        .await
    }

    /// Waits until `/status` shows a failed last reload.
    async fn wait_failure(&self) -> serde_json::Value {
        eventually("a failed reload on /status", WAIT, || async {
            let s = self.status().await;
            (s["last_reload"]["ok"] == false).then_some(s)
        })
        .await
    }
}

/// Replaces a file atomically (write a temp file, rename), as editors and
/// GitOps agents do.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn request(principal: &str, path: &str) -> CheckRequest {
    check::request("reload-test", principal, "GET", path, &[])
}

async fn answer(
    client: &mut AuthorizationClient<Channel>,
    principal: &str,
    path: &str,
) -> Result<Answer, tonic::Status> {
    let resp = client.check(request(principal, path)).await?.into_inner();
    let field = |k: &str| {
        resp.dynamic_metadata
            .as_ref()
            .and_then(|m| m.fields.get(k))
            .and_then(|v| v.kind.clone())
    };
    let generation = match field("policy_generation") {
        Some(Kind::NumberValue(n)) => n as u64,
        other => panic!("policy_generation missing: {other:?}"),
    };
    let cache_hit = matches!(field("cache_hit"), Some(Kind::BoolValue(true)));
    Ok(Answer {
        allowed: resp.status.map(|s| s.code) == Some(0),
        generation,
        cache_hit,
    })
}

#[tokio::test]
async fn good_edit_bad_edit_and_recovery() {
    let s = Server::start(CONFIG).await;
    assert!(!s.check(ROGUE_AGENT, "/v1/models").await.allowed);
    assert!(s.check(RESEARCH_AGENT, "/v1/models").await.allowed);

    // Good edit: approve the rogue agent.
    replace(&s.path("entities.json"), ENTITIES_ROGUE_ONLY);
    let g2 = s.wait_swap(1).await;
    let a = s.check(ROGUE_AGENT, "/v1/models").await;
    assert!(a.allowed && a.generation == g2, "{a:?}");
    assert!(!s.check(RESEARCH_AGENT, "/v1/models").await.allowed);

    // Bad edit: a syntax error. The last good snapshot stays in force.
    std::fs::write(
        s.path("broken.cedar"),
        "permit (principal, action resource);",
    )
    .unwrap();
    let status = s.wait_failure().await;
    assert_eq!(status["snapshot"]["generation"], g2, "{status}");
    assert!(status["last_reload"]["at_unix"].as_u64().unwrap() > 0);
    let diags = status["last_reload"]["diagnostics"].to_string();
    assert!(diags.contains("broken.cedar"), "{diags}");
    let a = s.check(ROGUE_AGENT, "/v1/models").await;
    assert!(a.allowed && a.generation == g2, "{a:?}");
    let metrics = s.admin("/metrics").await.1;
    assert!(
        metrics.contains("cedar_gate_policy_reloads_total{result=\"failure\"}"),
        "{metrics}"
    );

    // Recovery: the next good update is picked up by itself. The content is
    // back to generation g2's, so g2 stays in force (same hash, cache kept).
    std::fs::remove_file(s.path("broken.cedar")).unwrap();
    s.wait_recovered().await;
    assert_eq!(s.generation().await, g2);
    assert!(s.check(ROGUE_AGENT, "/v1/models").await.allowed);

    // A missing schema is a failure too; the next real change recovers.
    let schema = std::fs::read_to_string(s.path("schema.cedarschema")).unwrap();
    std::fs::remove_file(s.path("schema.cedarschema")).unwrap();
    let status = s.wait_failure().await;
    assert!(
        status["last_reload"]["diagnostics"]
            .to_string()
            .contains("schema.cedarschema"),
        "{status}"
    );
    assert!(
        s.check(ROGUE_AGENT, "/v1/models").await.allowed,
        "last good kept"
    );
    replace(&s.path("schema.cedarschema"), &schema);
    replace(&s.path("entities.json"), ENTITIES_NOBODY);
    let g3 = s.wait_swap(g2).await;
    let a = s.check(ROGUE_AGENT, "/v1/models").await;
    assert!(!a.allowed && a.generation == g3, "{a:?}");
}

/// Builds a ConfigMap-style mount: `<name> -> ..data/<name>`, `..data -> ..<version>`.
fn configmap_version(root: &Path, version: &str, entities: &str) {
    let versioned = root.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    for name in ["schema.cedarschema", "policies.cedar", "guardrails.cedar"] {
        std::fs::copy(repo_path("cedar").join(name), versioned.join(name)).unwrap();
    }
    std::fs::write(versioned.join("entities.json"), entities).unwrap();
    // kubelet: symlink `..data_tmp` to the new version, rename it over `..data`.
    let tmp = root.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, root.join("..data")).unwrap();
}

#[tokio::test]
async fn configmap_data_symlink_swap_is_picked_up() {
    let s = Server::start_with(CONFIG, |root| {
        configmap_version(root, "2026_01_01_00_00_00.1", ENTITIES_RESEARCH_ONLY);
        for name in [
            "schema.cedarschema",
            "policies.cedar",
            "guardrails.cedar",
            "entities.json",
        ] {
            std::os::unix::fs::symlink(format!("..data/{name}"), root.join(name)).unwrap();
        }
    })
    .await;
    assert!(!s.check(ROGUE_AGENT, "/v1/models").await.allowed);

    configmap_version(s.dir(), "2026_01_01_00_01_00.2", ENTITIES_ROGUE_ONLY);
    std::fs::remove_dir_all(s.path("..2026_01_01_00_00_00.1")).unwrap();
    let g = s.wait_swap(1).await;
    let a = s.check(ROGUE_AGENT, "/v1/models").await;
    assert!(a.allowed && a.generation == g, "{a:?}");
    assert!(!s.check(RESEARCH_AGENT, "/v1/models").await.allowed);
}

#[tokio::test]
async fn a_burst_of_edits_settles_on_the_last_one() {
    let s = Server::start(CONFIG).await;
    const EDITS: usize = 40;
    for i in 0..EDITS {
        let text = if i % 2 == 0 {
            ENTITIES_NOBODY
        } else {
            ENTITIES_ROGUE_ONLY
        };
        replace(&s.path("entities.json"), text);
    }
    // The last edit approves the rogue agent.
    eventually("the last edit in force", WAIT, || async {
        s.check(ROGUE_AGENT, "/v1/models")
            .await
            .allowed
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let g = s.generation().await;
    assert!(
        g < 1 + EDITS as u64 / 2,
        "debounce should merge the burst: generation {g}"
    );
    assert_eq!(s.status().await["last_reload"]["ok"], true);
    assert!(s.check(ROGUE_AGENT, "/v1/models").await.allowed);
    assert!(!s.check(RESEARCH_AGENT, "/v1/models").await.allowed);
}

#[tokio::test]
async fn a_late_first_snapshot_makes_the_server_ready_and_serving() {
    let s = Server::start_with(CONFIG, |d| {
        std::fs::write(
            d.join("policies.cedar"),
            "permit (principal, action, resource);",
        )
        .unwrap();
    })
    .await;
    assert_eq!(s.admin("/readyz").await.0, 503);
    assert_eq!(s.gate.health().await.unwrap(), ServingStatus::NotServing);

    copy_shipped_policies(s.dir());
    s.wait_swap(0).await;
    assert_eq!(s.admin("/readyz").await.0, 200);
    eventually("gRPC health SERVING", WAIT, || async {
        (s.gate.health().await.unwrap() == ServingStatus::Serving).then_some(())
    })
    .await;
    assert!(s.check(RESEARCH_AGENT, "/v1/models").await.allowed);
}

#[tokio::test]
async fn sighup_reloads_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    copy_shipped_policies(dir.path());
    let gate = crate::common::CedarGate::start_with(GateOptions {
        policy_dir: dir.path().to_owned(),
        config: format!(
            "{}policy_reload:\n  watch: false\n",
            crate::common::gate::DEFAULT_CONFIG
        ),
    })
    .await;
    let generation = || async {
        let body = gate.admin_get("/status").await.1;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["snapshot"]["generation"].as_u64().unwrap_or(0)
    };
    assert_eq!(generation().await, 1);
    replace(&dir.path().join("entities.json"), ENTITIES_ROGUE_ONLY);
    // Not watching: nothing happens until SIGHUP.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(generation().await, 1);
    let pid = gate.pid().unwrap();
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    eventually("generation 2 after SIGHUP", WAIT, || async {
        (generation().await == 2).then_some(())
    })
    .await;
}

/// Keeps `principal` checking from `tasks` tasks until `stop`; returns each
/// answer with the instant its request was sent.
fn traffic(
    s: &Server,
    principal: &'static str,
    tasks: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<(Instant, Answer)>>> {
    (0..tasks)
        .map(|_| {
            let mut client = s.gate.client();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let a = answer(&mut client, principal, "/v1/models")
                        .await
                        .expect("no failed checks");
                    seen.push((sent, a));
                }
                seen
            })
        })
        .collect()
}

/// Applies `change` under traffic and asserts that no request sent after the
/// swap was visible on `/status` was allowed.
async fn assert_revoked(change: impl FnOnce(&Path)) {
    let s = Server::start(CONFIG).await;
    let stop = Arc::new(AtomicBool::new(false));
    let workers = traffic(&s, RESEARCH_AGENT, 3, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    change(s.dir());
    let g = s.wait_swap(1).await;
    let visible = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let before: Vec<_> = all.iter().filter(|(t, _)| *t < visible).collect();
    let after: Vec<_> = all.iter().filter(|(t, _)| *t >= visible).collect();
    assert!(
        before.iter().any(|(_, a)| a.allowed),
        "allowed before the change"
    );
    assert!(
        before.iter().any(|(_, a)| a.cache_hit),
        "the cache was in use"
    );
    assert!(!after.is_empty(), "requests after the swap");
    let stale: Vec<_> = after.iter().filter(|(_, a)| a.allowed).collect();
    assert!(
        stale.is_empty(),
        "{} allows after the swap was visible: {stale:?}",
        stale.len()
    );
    // Stronger: nothing decided by the new generation allowed, cached or not.
    assert!(all.iter().all(|(_, a)| a.generation < g || !a.allowed));
    eprintln!(
        "revocation: {} checks before, {} after the swap (generation {g}), 0 allows after",
        before.len(),
        after.len()
    );
}

#[tokio::test]
async fn revocation_by_group_removal_denies_the_next_request() {
    assert_revoked(|dir| replace(&dir.join("entities.json"), ENTITIES_NOBODY)).await;
}

#[tokio::test]
async fn revocation_by_new_forbid_denies_the_next_request() {
    assert_revoked(|dir| {
        replace(
            &dir.join("revoke.cedar"),
            &format!(
                "@id(\"revoke-research\")\nforbid (principal == Workload::\"{RESEARCH_AGENT}\", action, resource);\n"
            ),
        )
    })
    .await;
}

#[tokio::test]
async fn checks_racing_reloads_agree_with_the_generation_that_served_them() {
    // Reloads are driven by the test alone, so it knows what each generation holds.
    let config = CONFIG.replace("debounce_ms: 50", "watch: false");
    let s = Server::start(&config).await;
    let store = s.gate.running().store.clone();
    // Generation -> which principal is approved (the shipped entities approve research).
    let mut approved: Vec<(u64, &str)> = vec![(1, RESEARCH_AGENT)];

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = traffic(&s, RESEARCH_AGENT, 2, stop.clone());
    workers.extend(traffic(&s, ROGUE_AGENT, 2, stop.clone()));
    for i in 0..20 {
        let (text, who) = if i % 2 == 0 {
            (ENTITIES_ROGUE_ONLY, ROGUE_AGENT)
        } else {
            (ENTITIES_RESEARCH_ONLY, RESEARCH_AGENT)
        };
        replace(&s.path("entities.json"), text);
        let store = store.clone();
        let snapshot = tokio::task::spawn_blocking(move || store.reload())
            .await
            .unwrap()
            .unwrap();
        approved.push((snapshot.generation, who));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, Ordering::Relaxed);

    let (mut checked, mut hits) = (0, 0);
    for (n, w) in workers.into_iter().enumerate() {
        let principal = if n < 2 { RESEARCH_AGENT } else { ROGUE_AGENT };
        for (_, a) in w.await.unwrap() {
            let who = approved
                .iter()
                .find(|(g, _)| *g == a.generation)
                .map(|(_, who)| *who)
                .unwrap_or_else(|| panic!("unknown generation {}", a.generation));
            assert_eq!(
                a.allowed,
                who == principal,
                "{principal} at generation {}: {a:?}",
                a.generation
            );
            checked += 1;
            hits += usize::from(a.cache_hit);
        }
    }
    assert!(checked > 100, "only {checked} checks");
    assert!(hits > 0, "the cache took part");
    eprintln!(
        "concurrency: {checked} checks ({hits} cache hits) across {} generations, all consistent",
        approved.len()
    );
}

#[tokio::test]
async fn shadow_policies_never_change_the_decision_and_disagreements_are_audited() {
    let audit = tempfile::tempdir().unwrap();
    let audit_path = audit.path().join("audit.log");
    let config = CONFIG.replace("audit:\n  sink: off\n", &audit_file_yaml(&audit_path));
    let s = Server::start_with(&config, |d| {
        copy_shipped_policies(d);
        std::fs::write(
            d.join("candidate.cedar"),
            format!(
                "@id(\"candidate-block-research\")\n@owner(\"security\")\n@shadow\nforbid (principal == Workload::\"{RESEARCH_AGENT}\", action, resource);\n"
            ),
        )
        .unwrap();
    })
    .await;
    let shipped = cedar_gate::policy::load_dir(&repo_path("cedar"), 1)
        .unwrap()
        .policy_count();
    let status = s.status().await;
    assert_eq!(
        status["snapshot"]["policies"], shipped,
        "shadow policies are not enforced"
    );
    assert_eq!(status["snapshot"]["shadow_policies"], 1);

    // Enforced: still allowed, twice (the second from the cache, shadow included).
    let first = s.check(RESEARCH_AGENT, "/v1/models").await;
    let second = s.check(RESEARCH_AGENT, "/v1/models").await;
    assert!(first.allowed && second.allowed);
    assert!(!first.cache_hit && second.cache_hit, "{first:?} {second:?}");
    // Agreement: the rogue agent is denied either way.
    assert!(!s.check(ROGUE_AGENT, "/v1/models").await.allowed);

    let events = eventually("three audit events", WAIT, || async {
        let lines = crate::common::read_json_lines(&audit_path);
        (lines.len() >= 3).then_some(lines)
    })
    .await;
    for e in &events[..2] {
        assert_eq!(e["decision"], "allow", "{e}");
        assert_eq!(e["shadow"]["decision"], "deny", "{e}");
        assert_eq!(e["shadow"]["disagrees"], true, "{e}");
        assert_eq!(
            e["shadow"]["policies"][0]["id"], "candidate-block-research",
            "{e}"
        );
        assert_eq!(
            e["shadow"]["policies"][0]["annotations"]["owner"], "security",
            "{e}"
        );
    }
    assert_eq!(events[1]["cache_hit"], true);
    assert_eq!(events[2]["shadow"]["disagrees"], false, "{}", events[2]);

    let metrics = s.admin("/metrics").await.1;
    assert!(
        metrics.contains(
            "cedar_gate_shadow_disagreements_total{action=\"http\",shadow_decision=\"deny\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("cedar_gate_decision_cache_hits_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cedar_gate_shadow_policies_loaded"),
        "{metrics}"
    );

    // What promoting the candidate would change, on this traffic: `shadow-report` over the
    // real audit log of the shipped set with the candidate.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cedar-gate"))
        .arg("shadow-report")
        .arg(&audit_path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("candidate-block-research (@owner security): allow->deny 2, deny->allow 0"),
        "{report}"
    );
    let first_id = events[0]["decision_id"].as_str().unwrap();
    assert!(report.contains(first_id), "a sample decision id: {report}");
}

/// The whole path: client ──mTLS──▶ real Envoy ──▶ cedar-gate binary. Removing the agent
/// from its group in `entities.json` turns its next request into a 403 once the reload is
/// visible, although its earlier allows are in the decision cache.
#[tokio::test]
async fn e2e_revocation_through_envoy() {
    let dir = tempfile::tempdir().unwrap();
    copy_shipped_policies(dir.path());
    let stack = crate::common::Stack::start_with(
        &repo_path("envoy/envoy.yaml"),
        GateOptions {
            policy_dir: dir.path().to_owned(),
            config: crate::common::gate::DEFAULT_CONFIG.to_owned(),
        },
    )
    .await;
    let client = stack.client(RESEARCH_AGENT);
    for _ in 0..3 {
        let resp = client.get("/v1/models").send().await.unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
    }
    eventually("a cache hit in the audit log", WAIT, || async {
        stack
            .gate
            .audit_lines()
            .iter()
            .any(|e| e["cache_hit"] == true)
            .then_some(())
    })
    .await;

    // Revoke: the research agent leaves `approved-agents`.
    let path = dir.path().join("entities.json");
    let mut entities: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for e in entities.as_array_mut().unwrap() {
        if e["uid"]["id"] == RESEARCH_AGENT {
            e["parents"] = serde_json::json!([]);
        }
    }
    replace(&path, &entities.to_string());
    eventually("generation 2 on /status", WAIT, || async {
        let body = stack.gate.admin_get("/status").await.1;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        (v["snapshot"]["generation"] == 2).then_some(())
    })
    .await;
    for _ in 0..3 {
        let resp = client.get("/v1/models").send().await.unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::FORBIDDEN);
    }
}
