//! Request mixes. Each scenario turns a sequence number into one `CheckRequest`, shaped
//! like what Envoy sends with the shipped `envoy/envoy.yaml` (minus the peer certificate;
//! the `jwt-*` and `api-key` scenarios as with `envoy/envoy-tokens.yaml`, from a client
//! without one).
//!
//! To add a scenario: add a variant, its `--scenario` name via
//! `clap::ValueEnum`, and a branch in [`Scenario::request`]. Keep the work done here small
//! and allocation-light: it runs on the load generator's own CPU budget. Anything costly
//! (signing tokens, building bodies) is done once, before the run, into [`Params`].

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, bail};

use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, attribute_context,
};
use serde_json::json;

/// The SPIFFE id of bench workload `n`: `scripts/gen_policies.py` puts workload `n` in
/// `Group::"team-{n % groups}"` for `n < workloads`; ids past that are unknown to the
/// entity store (no group, so no permit: a deny).
pub fn workload_id(n: u64) -> String {
    format!("spiffe://example.org/ns/bench/sa/agent-{n}")
}

/// The model the `openai` scenario asks for: a `ModelGroup::"standard"` model of the
/// shipped catalogue (`cedar/entities.json`, copied by `gen_policies.py --ai`).
pub const CHAT_MODEL: &str = "gpt-4o-mini";

/// A request mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// A different workload principal on every request, cycling over `--principals` ids:
    /// a decision cache sees only misses while `--principals` exceeds its capacity.
    SpiffeDistinct,
    /// The same workload principal (`agent-0`) on every request: a decision cache sees hits.
    SpiffeRepeat,
    /// A different RS256 bearer token on every request (`sub` = `user-N`, N cycling over
    /// `--principals`), no client certificate: token and decision caches are cold for the
    /// first cycle. Tokens come from `--tokens` (`loadgen mint-jwt`).
    JwtDistinct,
    /// The same bearer token (`user-0`) on every request: token and decision caches hot.
    JwtRepeat,
    /// `POST /v1/chat/completions` with a 2 KB OpenAI chat body (as Envoy forwards it with
    /// `with_request_body`), workload principals cycling as in `spiffe-distinct`.
    Openai,
    /// `POST /mcp/github` with an MCP `tools/call` of `search_issues` (JSON-RPC body as Envoy
    /// forwards it), workload principals cycling as in `spiffe-distinct`.
    Mcp,
    /// The `spiffe-distinct` requests, sent to a cedar-gate whose route injects a provider
    /// credential on allow (`scripts/bench.sh` configures it): what the caller sends does
    /// not change, so the difference to `spiffe-distinct` is the route binding, the
    /// credential selection and the injected header.
    Credential,
    /// A gateway-issued API key as `authorization: Bearer <key>`, no client certificate;
    /// request N sends key N modulo the keys in `--tokens` (one a line, as `cedar-gate keys
    /// issue` prints them).
    ApiKey,
}

/// The MCP route of the shipped route table the `mcp` scenario calls (server `github`).
pub const MCP_PATH: &str = "/mcp/github";

/// The chat completions route of the `openai` scenario and the plain-HTTP ones.
pub const CHAT_PATH: &str = "/v1/chat/completions";

/// Everything a scenario needs, prepared before the run.
pub struct Params {
    /// Distinct principals the `*-distinct`, `openai`, `mcp` and `credential` scenarios
    /// cycle over.
    pub principals: u64,
    /// `authorization` values (`Bearer <token>`): for `jwt-*` value N for `user-N`, for
    /// `api-key` the issued keys; empty for the other scenarios.
    pub bearers: Vec<String>,
    /// The `openai` scenario's body.
    pub chat_body: Vec<u8>,
    /// The `mcp` scenario's body.
    pub mcp_body: Vec<u8>,
}

// === impl Scenario ===

impl Scenario {
    /// The `--scenario` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SpiffeDistinct => "spiffe-distinct",
            Self::SpiffeRepeat => "spiffe-repeat",
            Self::JwtDistinct => "jwt-distinct",
            Self::JwtRepeat => "jwt-repeat",
            Self::Openai => "openai",
            Self::Mcp => "mcp",
            Self::Credential => "credential",
            Self::ApiKey => "api-key",
        }
    }

    /// Whether the scenario sends bearer tokens or keys (and so needs `--tokens`).
    pub fn needs_tokens(self) -> bool {
        matches!(self, Self::JwtDistinct | Self::JwtRepeat | Self::ApiKey)
    }

    /// Request number `seq` of this scenario.
    pub fn request(self, seq: u64, params: &Params) -> CheckRequest {
        let cycle = seq % params.principals.max(1);
        let (peer, bearer, body) = match self {
            Self::SpiffeDistinct => (Some(workload_id(cycle)), None, &[][..]),
            Self::SpiffeRepeat => (Some(workload_id(0)), None, &[][..]),
            Self::JwtDistinct => (None, Some(bearer(params, cycle)), &[][..]),
            Self::JwtRepeat => (None, Some(bearer(params, 0)), &[][..]),
            Self::Openai => (Some(workload_id(cycle)), None, &params.chat_body[..]),
            Self::Mcp => (Some(workload_id(cycle)), None, &params.mcp_body[..]),
            Self::Credential => (Some(workload_id(cycle)), None, &[][..]),
            Self::ApiKey => (None, Some(bearer(params, cycle)), &[][..]),
        };
        let path = if self == Self::Mcp {
            MCP_PATH
        } else {
            CHAT_PATH
        };
        check_request(seq, path, peer.as_deref(), bearer, body)
    }
}

// === impl Params ===

// By hand, so that tokens never end up in a log line.
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Params")
            .field("principals", &self.principals)
            .field("bearers", &self.bearers.len())
            .field("chat_body_bytes", &self.chat_body.len())
            .field("mcp_body_bytes", &self.mcp_body.len())
            .finish()
    }
}

impl Params {
    /// Settings for a run; `bearers` may be empty when no `jwt-*` scenario runs.
    pub fn new(principals: u64, bearers: Vec<String>) -> Self {
        Self {
            principals,
            bearers,
            chat_body: chat_body(),
            mcp_body: mcp_body(),
        }
    }
}

/// Reads bearer credentials, one a line (tokens from `loadgen mint-jwt`, keys from
/// `cedar-gate keys issue`), as `authorization` header values (`Bearer <credential>`).
pub fn load_bearers(path: &Path) -> anyhow::Result<Vec<String>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bearers = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        let credential = line.trim();
        if !credential.is_empty() {
            bearers.push(format!("Bearer {credential}"));
        }
    }
    if bearers.is_empty() {
        bail!("{} holds no tokens or keys", path.display());
    }
    Ok(bearers)
}

fn bearer(params: &Params, n: u64) -> &str {
    // `jwt-distinct`: `main` checked that there are `--principals` tokens. `api-key` cycles
    // over however many keys were issued, so this wrap is what picks its key.
    let i = usize::try_from(n).unwrap_or(0) % params.bearers.len().max(1);
    params.bearers.get(i).map_or("", String::as_str)
}

/// A POST to `path` (the chat completions route or an MCP server's). `peer`: the SPIFFE id of an mTLS client
/// (Envoy's `source.principal`); `bearer`: an `authorization` header; `body`: the request
/// body as Envoy packs it with `with_request_body { pack_as_bytes: true }` (`raw_body`).
fn check_request(
    seq: u64,
    path: &str,
    peer: Option<&str>,
    bearer: Option<&str>,
    body: &[u8],
) -> CheckRequest {
    let fixed = [
        (":authority", "models.example.com"),
        (":method", "POST"),
        (":path", path),
        (":scheme", "https"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("user-agent", "bench-agent/1.0"),
        ("x-forwarded-proto", "https"),
    ];
    let mut headers: HashMap<String, String> = fixed
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let id = format!("bench-{seq}");
    headers.insert("x-request-id".to_owned(), id.clone());
    if let Some(value) = bearer {
        headers.insert("authorization".to_owned(), value.to_owned());
    }
    if path == MCP_PATH {
        // What a streamable HTTP MCP client sends after `initialize`.
        headers.insert(
            "accept".to_owned(),
            "application/json, text/event-stream".to_owned(),
        );
        headers.insert("mcp-protocol-version".to_owned(), "2025-06-18".to_owned());
        headers.insert(
            "mcp-session-id".to_owned(),
            "bench-session-7f3a9c2e".to_owned(),
        );
    }
    if !body.is_empty() {
        headers.insert("content-length".to_owned(), body.len().to_string());
        // Envoy adds this when it buffered the body for ext_authz; `false`: the whole body.
        headers.insert("x-envoy-auth-partial-body".to_owned(), "false".to_owned());
    }
    let http = attribute_context::HttpRequest {
        id,
        method: "POST".to_owned(),
        path: path.to_owned(),
        host: "models.example.com".to_owned(),
        scheme: "https".to_owned(),
        protocol: "HTTP/2".to_owned(),
        headers,
        size: if body.is_empty() {
            0
        } else {
            i64::try_from(body.len()).unwrap_or(-1)
        },
        raw_body: body.to_vec(),
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                principal: peer.unwrap_or_default().to_owned(),
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "127.0.0.1".to_owned(),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// An OpenAI chat completions request of about 2 KB: a system prompt, a short exchange and
/// a question carrying some pasted context, as an agent would send it. Within every cap of
/// the shipped AI guardrails (`max_tokens` 512 of 4096, no streaming, no tools).
pub fn chat_body() -> Vec<u8> {
    let system = "You are the internal support assistant of a logistics company. Answer in \
        plain English, at most five sentences, and never invent order numbers, prices or \
        delivery dates: if the context below does not contain the answer, say so and suggest \
        which team to ask. Quote the order number in every answer.";
    let earlier_question = "Can you tell me where order 48213-B is? The customer says it \
        should have arrived on Monday.";
    let earlier_answer = "Order 48213-B left the Rotterdam warehouse on Friday and was handed \
        to the regional carrier on Saturday morning. The tracking shows a failed delivery \
        attempt on Monday because nobody was at the address; a second attempt is planned for \
        Wednesday.";
    let question = "The customer now asks whether the parcel can be sent to a pickup point \
        instead, and whether that costs anything. Here is what the carrier portal shows for \
        the shipment:\n\nStatus: held at depot Utrecht-Noord since Monday 18:42\nService: \
        standard, signature required\nRedirect options: pickup point (free within the same \
        postcode area), new address (4.50 EUR), depot collection (free, within 7 days)\n\
        Customer postcode: 3584 CS\nNearest pickup points: Bloemenwinkel De Uithof (3584 CS), \
        Tabak & Lectuur Centrum (3511 BK)\nRequested by: customer service ticket 99107\n\n\
        Tracking history:\nFri 16:05 label created, Rotterdam warehouse\nFri 21:40 departed \
        Rotterdam warehouse\nSat 07:12 received by regional carrier, hub Nieuwegein\nSat 09:30 \
        sorted for delivery route U-14\nMon 08:02 out for delivery\nMon 13:37 delivery \
        attempt failed: recipient not at home, card left\nMon 18:42 returned to depot \
        Utrecht-Noord\nTue 06:15 awaiting instructions (second attempt Wed, or redirect)\n\n\
        Please draft the reply I should send, and tell me which option I have to select in \
        the portal.";
    let body = json!({
        "model": CHAT_MODEL,
        "messages": [
            { "role": "system", "content": system },
            { "role": "user", "content": earlier_question },
            { "role": "assistant", "content": earlier_answer },
            { "role": "user", "content": question },
        ],
        "max_tokens": 512,
        "temperature": 0.2,
        "top_p": 1,
        "n": 1,
        "stream": false,
        "user": "support-desk-7",
    });
    // INVARIANT: a `json!` value always serializes.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// An MCP `tools/call` of the `github` server's `search_issues` (about 300 bytes), as an
/// agent's MCP client sends it: allowed for every bench team by `gen_policies.py --mcp`, and
/// not a destructive tool, so the shipped `destructive-tools-need-delegating-user` forbid
/// does not apply.
pub fn mcp_body() -> Vec<u8> {
    let body = json!({
        "jsonrpc": "2.0",
        "id": 42,
        "method": "tools/call",
        "params": {
            "name": "search_issues",
            "arguments": {
                "repo": "acme/logistics-portal",
                "query": "failed delivery redirect to pickup point",
                "state": "open",
                "labels": ["carrier", "customer-service"],
                "limit": 20,
            },
            "_meta": { "progressToken": "bench-1" },
        },
    });
    // INVARIANT: a `json!` value always serializes.
    serde_json::to_vec(&body).unwrap_or_default()
}
