//! Provider credentials held by the gateway, injected on allow.
//!
//! Callers hold identities (SPIFFE, tokens, gateway-issued API keys); the
//! gateway holds the provider keys. On a route bound in
//! `provider_credentials.routes`:
//! 1. A caller that sends a provider key itself (`authorization` not used as its
//!    identity, `x-api-key`, `api-key`, `x-goog-api-key`, a configured custom
//!    header, or Gemini's `?key=`) is refused with `provider_credential_presented`,
//!    unless the route sets `allow_caller_credentials`. Checked whatever the
//!    policies say (and for a caller with no identity at all), so a raw key
//!    never goes unnoticed; only a refused identity keeps its 401.
//! 2. On allow, the credential is the one the determining permit names
//!    (`@credential("id")`), else the route's `default`. None, two different
//!    ones, or one whose file never loaded: refused (`credential_missing`,
//!    `credential_conflict`, `credential_unavailable`). Never forwarded bare.
//! 3. The answer removes every provider credential header the caller sent (and
//!    `?key=`), then sets the credential's header (overwrite).
//!
//! This module holds the credentials and the rules
//! ([`ProviderCredentials::check_presented`], [`ProviderCredentials::select`]);
//! `decide::credentials` applies them to a decision, and the answer to Envoy
//! (`wire::response`) carries the headers. The value lives only in
//! [`secret::Secret`] (redacting `Debug`, no `Display`), read from its file by
//! [`store::Slot`] and swapped on change by [`crate::watch::FileWatcher`]. The
//! audit, metadata, metrics and `/status` name the credential id only.

pub mod config;
pub mod secret;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::request::HttpRequest;
use crate::vocab::Reason;
pub use config::ProviderCredentialsConfig;
use secret::Secret;
use store::{ReadResult, Slot};

/// The policy annotation that selects a credential.
pub const CREDENTIAL_ANNOTATION: &str = "credential";

// Metric names (defined with the others in `record::metrics`).
pub use crate::record::metrics::{
    CREDENTIAL_AGE as AGE, CREDENTIAL_INJECTIONS as INJECTIONS, CREDENTIAL_LOADED as LOADED,
    CREDENTIAL_PRESENTED as PRESENTED, CREDENTIAL_READ_FAILURES as READ_FAILURES,
    CREDENTIAL_READ_OK as READ_OK, CREDENTIAL_ROTATION_PERIOD as ROTATION_PERIOD,
};

/// What the answer to Envoy does with credentials on an allowed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// The credential id (what the audit names); `None` on a `proxy_signs`
    /// route, where the proxy adds the credential itself.
    pub id: Option<Arc<str>>,
    /// The header set (overwrite), and its value.
    pub set: Option<(Arc<str>, Secret)>,
    /// Caller headers removed first (never the injected one).
    pub remove_headers: Vec<String>,
    /// Caller query parameters removed (`key`).
    pub remove_query: Vec<String>,
}

// === impl Injection ===

impl Injection {
    /// Removes the caller's credentials and sets nothing (the proxy signs).
    fn strip_only(mut remove_headers: Vec<String>, identity_header: Option<&str>) -> Self {
        if let Some(h) = identity_header
            && !remove_headers.iter().any(|r| r == h)
        {
            remove_headers.push(h.to_owned());
        }
        Self {
            id: None,
            set: None,
            remove_headers,
            remove_query: vec![config::PROVIDER_QUERY_KEY.to_owned()],
        }
    }
}

/// Why an allowed request is refused by the credential rules (a deny with
/// this reason; the message goes to the audit's `errors`, never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `provider_credential_presented`, `credential_missing`,
    /// `credential_conflict` or `credential_unavailable`.
    pub reason: Reason,
    /// What is wrong, naming ids, routes and header names only.
    pub message: String,
}

// === impl Refusal ===

impl Refusal {
    fn new(reason: Reason, message: String) -> Self {
        Self { reason, message }
    }
}

/// The configured credentials and their current values.
#[derive(Debug)]
pub struct ProviderCredentials {
    cfg: ProviderCredentialsConfig,
    slots: Vec<Slot>,
}

// === impl ProviderCredentials ===

impl ProviderCredentials {
    /// Loads every credential file now (a file that cannot be read is logged
    /// and retried by the watcher). `None` when no credential is configured.
    pub fn new(cfg: &ProviderCredentialsConfig) -> Option<Self> {
        if cfg.credentials.is_empty() && cfg.routes.is_empty() {
            return None;
        }
        for c in &cfg.credentials {
            metrics::counter!(INJECTIONS, "credential" => c.id.clone()).increment(0);
        }
        for r in cfg.routes.keys() {
            metrics::counter!(PRESENTED, "route" => r.clone()).increment(0);
        }
        let slots: Vec<Slot> = cfg.credentials.iter().cloned().map(Slot::new).collect();
        let this = Self {
            cfg: cfg.clone(),
            slots,
        };
        this.refresh();
        Some(this)
    }

    /// Re-reads every file (the watcher calls this).
    pub fn refresh(&self) {
        for slot in &self.slots {
            if slot.refresh() == ReadResult::Changed {
                tracing::info!(credential = %slot.def.id, "provider credential loaded");
            }
        }
    }

    /// Starts re-reading on change (and every `poll_seconds`).
    pub fn watch(self: &Arc<Self>) -> std::io::Result<crate::watch::FileWatcher> {
        let files: Vec<_> = self.slots.iter().map(|s| s.def.path.clone()).collect();
        let this = Arc::clone(self);
        crate::watch::FileWatcher::start(
            "credentials",
            &files,
            Duration::from_millis(100),
            self.cfg.poll,
            move || this.refresh(),
        )
    }

    /// Whether requests on route `route` (a `routes[].name`) carry a provider
    /// credential rule.
    pub fn binds(&self, route: &str) -> bool {
        self.cfg.routes.contains_key(route)
    }

    /// Step 1 on a bound route, whatever the policies say: a caller that sent
    /// its own provider key is refused (counted), unless the route lets it
    /// through. `identity_header` carried the caller's accepted token or API
    /// key: its identity, not a provider key.
    pub fn check_presented(
        &self,
        route: &str,
        req: &HttpRequest,
        identity_header: Option<&str>,
    ) -> Result<(), Refusal> {
        let Some(binding) = self.cfg.routes.get(route) else {
            return Ok(());
        };
        if binding.allow_caller_credentials {
            return Ok(());
        }
        let Some(presented) = self.presented(req, identity_header) else {
            return Ok(());
        };
        metrics::counter!(PRESENTED, "route" => route.to_owned()).increment(1);
        Err(Refusal {
            reason: Reason::ProviderCredentialPresented,
            message: format!(
                "the caller sent a provider credential ({presented}) on route `{route}`, which injects the gateway's"
            ),
        })
    }

    /// Steps 2 and 3 on an allowed request on a bound route: the credential
    /// the determining permits name (`named`, their `@credential` values), else
    /// the route's default, and the headers the answer sets and removes.
    /// `None`: the route is not bound.
    pub fn select<'p>(
        &self,
        route: &str,
        named: impl IntoIterator<Item = &'p str>,
        identity_header: Option<&str>,
    ) -> Option<Result<Injection, Refusal>> {
        let binding = self.cfg.routes.get(route)?;
        if binding.proxy_signs {
            // Envoy signs after the allow (SigV4): strip what the caller brought.
            let mut remove = self.cfg.provider_headers.clone();
            remove.extend(config::SIGV4_HEADERS.iter().map(|h| (*h).to_owned()));
            return Some(Ok(Injection::strip_only(remove, identity_header)));
        }
        Some(
            self.choose(route, binding, named)
                .and_then(|slot| self.inject(slot, identity_header)),
        )
    }

    /// The slot of the credential the policies or the route name.
    fn choose<'p>(
        &self,
        route: &str,
        binding: &config::RouteBinding,
        named: impl IntoIterator<Item = &'p str>,
    ) -> Result<&Slot, Refusal> {
        let mut chosen: Option<&str> = None;
        for id in named {
            match chosen {
                Some(n) if n != id => {
                    return Err(Refusal::new(
                        Reason::CredentialConflict,
                        format!("determining policies name two credentials, `{n}` and `{id}`"),
                    ));
                }
                _ => chosen = Some(id),
            }
        }
        let index = match chosen {
            Some(id) => *self.cfg.by_id.get(id).ok_or_else(|| {
                Refusal::new(
                    Reason::CredentialUnavailable,
                    format!("policy names credential `{id}`, which is not configured"),
                )
            })?,
            None => binding.default.ok_or_else(|| {
                Refusal::new(
                    Reason::CredentialMissing,
                    format!(
                        "route `{route}` needs a provider credential and neither the determining policy (`@credential`) nor the route names one"
                    ),
                )
            })?,
        };
        self.slots.get(index).ok_or_else(|| {
            Refusal::new(
                Reason::CredentialUnavailable,
                format!("credential #{index} is not configured"),
            )
        })
    }

    /// The injection of `slot`'s value in force.
    fn inject(&self, slot: &Slot, identity_header: Option<&str>) -> Result<Injection, Refusal> {
        let Some(loaded) = slot.current() else {
            return Err(Refusal::new(
                Reason::CredentialUnavailable,
                format!("credential `{}` has no value loaded", slot.def.id),
            ));
        };
        let mut remove_headers: Vec<String> = self
            .cfg
            .provider_headers
            .iter()
            .filter(|h| **h != slot.def.header)
            .cloned()
            .collect();
        if let Some(h) = identity_header
            && h != slot.def.header
            && !remove_headers.iter().any(|r| r == h)
        {
            remove_headers.push(h.to_owned());
        }
        metrics::counter!(INJECTIONS, "credential" => slot.def.id.clone()).increment(1);
        Ok(Injection {
            id: Some(Arc::from(slot.def.id.as_str())),
            set: Some((
                Arc::from(slot.def.header.as_str()),
                loaded.header_value.clone(),
            )),
            remove_headers,
            remove_query: vec![config::PROVIDER_QUERY_KEY.to_owned()],
        })
    }

    /// The first provider credential the caller sent, named by where it was.
    fn presented(&self, req: &HttpRequest, identity_header: Option<&str>) -> Option<String> {
        for h in &self.cfg.provider_headers {
            if Some(h.as_str()) == identity_header {
                continue;
            }
            if req.header(h).is_some_and(|v| !v.trim().is_empty()) {
                return Some(format!("header `{h}`"));
            }
        }
        let has_key = req.query.split('&').any(|pair| {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            percent_encoding::percent_decode_str(name)
                .decode_utf8_lossy()
                .eq_ignore_ascii_case(config::PROVIDER_QUERY_KEY)
        });
        has_key.then(|| format!("query parameter `{}`", config::PROVIDER_QUERY_KEY))
    }

    /// `/status`: per credential its id, header, source, whether it has a
    /// value, its age and the latest read. Never the value.
    pub fn status(&self, now: SystemTime) -> serde_json::Value {
        let items: Vec<serde_json::Value> = self
            .slots
            .iter()
            .map(|s| {
                let current = s.current();
                serde_json::json!({
                    "id": s.def.id,
                    "header": s.def.kind.as_str(),
                    "header_name": s.def.header,
                    "source": if s.def.token_file { "token_file" } else { "file" },
                    "path": s.def.path.display().to_string(),
                    "loaded": current.is_some(),
                    "age_seconds": current.as_ref().map(|c| age(c.since, now)),
                    "rotation_period_seconds": s.def.rotation_period.map(|p| p.get()),
                    "last_read": s.status(),
                })
            })
            .collect();
        serde_json::json!({
            "credentials": items,
            "routes": self.cfg.routes.iter().map(|(route, b)| serde_json::json!({
                "route": route,
                "default": b.default.and_then(|i| self.slots.get(i)).map(|s| s.def.id.clone()),
                "allow_caller_credentials": b.allow_caller_credentials,
                "proxy_signs": b.proxy_signs,
            })).collect::<Vec<_>>(),
        })
    }

    /// Prometheus text for `/metrics`, computed at scrape time (ages grow
    /// between scrapes). Labels: credential ids from the config only.
    pub fn render_metrics(&self, now: SystemTime) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let families: [(&str, &str, &str); 5] = [
            (
                AGE,
                "gauge",
                "Seconds since the provider credential in force was written to its file.",
            ),
            (
                ROTATION_PERIOD,
                "gauge",
                "Declared rotation period of the provider credential (rotation_period_seconds).",
            ),
            (
                LOADED,
                "gauge",
                "1 when the provider credential has a value in force.",
            ),
            (
                READ_OK,
                "gauge",
                "1 when the latest read of the credential file succeeded; 0: the last good value (if any) is kept.",
            ),
            (
                READ_FAILURES,
                "counter",
                "Failed reads of the credential file.",
            ),
        ];
        for (name, kind, help) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for s in &self.slots {
                let id = &s.def.id;
                let current = s.current();
                let value = match name {
                    AGE => match &current {
                        Some(c) => age(c.since, now) as f64,
                        None => continue,
                    },
                    ROTATION_PERIOD => match s.def.rotation_period {
                        Some(p) => p.get() as f64,
                        None => continue,
                    },
                    LOADED => f64::from(u8::from(current.is_some())),
                    READ_OK => f64::from(u8::from(s.status().ok)),
                    _ => s.status().failures as f64,
                };
                let _ = writeln!(out, "{name}{{credential=\"{id}\"}} {value}");
            }
        }
        out
    }
}

fn age(since: SystemTime, now: SystemTime) -> u64 {
    now.duration_since(since).map_or(0, |d| d.as_secs())
}
