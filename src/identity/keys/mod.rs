//! Gateway-issued API keys, for callers that cannot do mTLS or OIDC (a
//! notebook, a SaaS integration, a CI job).
//!
//! `cedar-gate keys issue` prints a key once (`cgk_<id>_<secret>`, see
//! [`format`](mod@format)) and writes only its hash to the store file ([`store`]). A caller
//! presents it as `Authorization: Bearer <key>` (or in `api_keys.header`).
//! Per request: parse, one hash-map lookup by id, SHA-256 of the secret and a
//! constant-time compare (an unknown id is compared against a dummy digest, so
//! it costs the same), then revocation, expiry and the configured maximum
//! lifetime. A refused key is a 401 with its own reason; an accepted one
//! becomes the Cedar principal, with its groups as parents and
//! `context.auth.method == "api_key"`, `api_key_id` and `api_key_age_seconds`.
//!
//! The store is re-read on change (and every second), so an issued, revoked or
//! rotated key takes effect within a second without a restart; a store that
//! cannot be read or parsed keeps the last good one (`/status`, metrics).

pub mod format;
pub mod store;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use cedar_policy::EntityUid;
use serde::Deserialize;

use crate::identity::PositiveSeconds;
use crate::identity::token::unix_now;
use crate::request::HttpRequest;
use crate::vocab::Value;
use store::{Index, KeyRecord, StoreFile};

/// Default longest lifetime of a key: 90 days.
pub const DEFAULT_MAX_LIFETIME_SECONDS: u64 = 90 * 24 * 3600;
/// Keys expiring within this window are counted by the `expiring_soon` gauge.
pub const EXPIRING_SOON: i64 = 7 * 24 * 3600;
// Metric names (defined with the others in `record::metrics`).
pub use crate::record::metrics::{
    API_KEY_FAILURES as FAILURES, API_KEY_STORE_READ_OK as STORE_READ_OK, API_KEYS as KEYS,
    API_KEYS_EXPIRING_SOON as EXPIRING_SOON_GAUGE,
};

/// `api_keys:` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// The store file (`cedar-gate keys ...` writes it).
    pub store: PathBuf,
    /// The header carrying the key: `authorization` (default, `Bearer`
    /// scheme) or another header holding the bare key.
    #[serde(default)]
    pub header: Option<String>,
    /// The key prefix (default `cgk`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Longest `expires - created` accepted, at issue time and per request
    /// (default 90 days).
    #[serde(default)]
    pub max_lifetime_seconds: Option<PositiveSeconds>,
}

// === impl ApiKeysConfig ===

impl ApiKeysConfig {
    /// The header, lower case.
    pub fn header(&self) -> String {
        self.header
            .as_deref()
            .unwrap_or(crate::identity::issuers::DEFAULT_TOKEN_HEADER)
            .to_ascii_lowercase()
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(format::DEFAULT_PREFIX)
    }

    /// The maximum lifetime in seconds.
    pub fn max_lifetime(&self) -> i64 {
        self.max_lifetime_seconds
            .map_or(DEFAULT_MAX_LIFETIME_SECONDS, PositiveSeconds::get)
            .try_into()
            .unwrap_or(i64::MAX)
    }

    /// Load-time checks (called from `Config::validate`).
    pub fn validate(&self) -> Result<(), String> {
        let prefix = self.prefix();
        if prefix.is_empty()
            || prefix.len() > 16
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(format!(
                "`prefix` `{}` must be 1-16 lower-case letters or digits",
                prefix.escape_debug()
            ));
        }
        let header = self.header();
        if header.is_empty()
            || !header
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || header.starts_with(crate::request::HEADER_PREFIX)
        {
            return Err(format!(
                "`header` `{}` is not a header a caller can send",
                header.escape_debug()
            ));
        }
        Ok(())
    }
}

/// A caller authenticated by an API key. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyIdentity {
    /// The key id.
    pub id: String,
    /// The principal.
    pub principal: EntityUid,
    /// Group ids (parents of the principal).
    pub groups: Vec<String>,
    /// Owner.
    pub owner: String,
    /// Issued at (Unix seconds).
    pub created: i64,
    /// Expires at (Unix seconds).
    pub expires: i64,
}

/// Why a presented key is refused (401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// Has the prefix but not the shape (truncated, extended, bad characters).
    #[error("API key is malformed")]
    Malformed,
    /// No key with this id in the store.
    #[error("API key `{0}` is not known")]
    UnknownId(String),
    /// The id is known, the secret does not match (tampered, or an old secret
    /// after its rotation overlap ended).
    #[error("API key `{0}`: wrong secret")]
    WrongSecret(String),
    /// Past its `expires`.
    #[error("API key `{0}` has expired")]
    Expired(String),
    /// Revoked.
    #[error("API key `{0}` has been revoked")]
    Revoked(String),
    /// `expires - created` is longer than `api_keys.max_lifetime_seconds`.
    #[error("API key `{0}` lives longer than the configured maximum")]
    LifetimeExceeded(String),
}

// === impl ApiKeyError ===

impl ApiKeyError {
    /// The fixed code (401 `error_description`, metrics, audit).
    pub fn reason(&self) -> &'static str {
        match self {
            ApiKeyError::Malformed => "api_key_malformed",
            ApiKeyError::UnknownId(_) => "api_key_unknown",
            ApiKeyError::WrongSecret(_) => "api_key_wrong_secret",
            ApiKeyError::Expired(_) => "api_key_expired",
            ApiKeyError::Revoked(_) => "api_key_revoked",
            ApiKeyError::LifetimeExceeded(_) => "api_key_lifetime_exceeded",
        }
    }

    /// Every reason, for pre-registering the failure counter.
    pub const REASONS: [&'static str; 6] = [
        "api_key_malformed",
        "api_key_unknown",
        "api_key_wrong_secret",
        "api_key_expired",
        "api_key_revoked",
        "api_key_lifetime_exceeded",
    ];
}

/// The latest store read, for `/status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StoreStatus {
    /// Whether it succeeded.
    pub ok: bool,
    /// Its error, when it failed (names the file, never a secret: it holds none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Successful loads that changed the store.
    pub loads: u64,
    /// Failed reads.
    pub failures: u64,
}

/// The API keys in force.
pub struct ApiKeys {
    cfg: ApiKeysConfig,
    header: String,
    index: ArcSwap<Index>,
    status: Mutex<StoreStatus>,
    reload_lock: Mutex<()>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("store", &self.cfg.store)
            .field("keys", &self.index.load().keys.len())
            .finish_non_exhaustive()
    }
}

// === impl ApiKeys ===

impl ApiKeys {
    /// Loads the store now (a store that cannot be read starts empty, logged,
    /// and is retried by the watcher).
    pub fn new(cfg: &ApiKeysConfig) -> Self {
        for reason in ApiKeyError::REASONS {
            metrics::counter!(FAILURES, "reason" => reason).increment(0);
        }
        let this = Self {
            header: cfg.header(),
            cfg: cfg.clone(),
            index: ArcSwap::from_pointee(Index::default()),
            status: Mutex::new(StoreStatus::default()),
            reload_lock: Mutex::new(()),
        };
        this.reload();
        this
    }

    /// The header keys are read from.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// Re-reads the store; swaps it in when it changed and is valid.
    pub fn reload(&self) {
        let _serial = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let path = &self.cfg.store;
        // Polled every second: an unchanged file is recognised by its hash,
        // before anything is parsed.
        let result = StoreFile::read_bytes(path).and_then(|(bytes, hash)| {
            if self.index.load().content_hash == hash && hash != [0; 32] {
                return Ok(None);
            }
            StoreFile::parse(&bytes, path)?
                .compile(path, hash)
                .map(Some)
        });
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(None) => {
                status.ok = true;
                status.error = None;
            }
            Ok(Some(index)) => {
                tracing::info!(keys = index.keys.len(), store = %path.display(), "API key store loaded");
                self.index.store(Arc::new(index));
                status.ok = true;
                status.error = None;
                status.loads += 1;
            }
            Err(e) => {
                if status.ok || status.failures == 0 {
                    tracing::error!(error = %e, "API key store not loaded; keeping the last good one");
                }
                status.ok = false;
                status.error = Some(e.to_string());
                status.failures += 1;
            }
        }
    }

    /// Starts re-reading the store on change and every second.
    pub fn watch(self: &Arc<Self>) -> std::io::Result<crate::watch::FileWatcher> {
        let this = Arc::clone(self);
        crate::watch::FileWatcher::start(
            "api-keys",
            std::slice::from_ref(&self.cfg.store),
            Duration::from_millis(50),
            Duration::from_secs(1),
            move || this.reload(),
        )
    }

    /// The key the request presents, if any. `Ok(None)`: no key (another
    /// credential, or none, decides who is calling).
    pub fn resolve(
        &self,
        req: &HttpRequest,
        now: SystemTime,
    ) -> Result<Option<Arc<ApiKeyIdentity>>, ApiKeyError> {
        let Some(raw) = req.header(&self.header).map(str::trim) else {
            return Ok(None);
        };
        let value = if self.header == crate::identity::issuers::DEFAULT_TOKEN_HEADER {
            match raw.split_once(' ') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                _ => return Ok(None),
            }
        } else {
            raw
        };
        // On `authorization`, only a value with our prefix is a key (anything
        // else may be a JWT); in a dedicated header, every value is.
        if self.header == crate::identity::issuers::DEFAULT_TOKEN_HEADER
            && !format::has_prefix(value, self.cfg.prefix())
        {
            return Ok(None);
        }
        let result = self.verify(value, unix_now(now));
        if let Err(e) = &result {
            metrics::counter!(FAILURES, "reason" => e.reason()).increment(1);
        }
        result.map(Some)
    }

    fn verify(&self, value: &str, now: i64) -> Result<Arc<ApiKeyIdentity>, ApiKeyError> {
        let parsed = format::parse(value, self.cfg.prefix()).map_err(|_| ApiKeyError::Malformed)?;
        let index = self.index.load();
        let record = index.keys.get(parsed.id);
        let presented = format::hash(parsed.id, parsed.secret);
        // The same work whether or not the id exists: one digest, one compare
        // per stored secret (a dummy one for an unknown id).
        const DUMMY: [([u8; 32], Option<i64>); 1] = [([0; 32], None)];
        let secrets = record.map_or(&DUMMY[..], |r| r.secrets.as_slice());
        let mut matched = false;
        for (digest, not_after) in secrets {
            let equal = format::digest_eq(&presented, digest);
            matched |= equal && not_after.is_none_or(|t| now < t);
        }
        let Some(record) = record else {
            return Err(ApiKeyError::UnknownId(parsed.id.to_owned()));
        };
        if !matched {
            return Err(ApiKeyError::WrongSecret(record.identity.id.clone()));
        }
        check_record(record, now, self.cfg.max_lifetime())?;
        Ok(record.identity.clone())
    }

    /// `/status`: store path, keys by state, latest read. No hashes.
    pub fn status(&self, now: SystemTime) -> serde_json::Value {
        let counts = self.counts(unix_now(now));
        serde_json::json!({
            "store": self.cfg.store.display().to_string(),
            "header": self.header,
            "prefix": self.cfg.prefix(),
            "keys": {
                "active": counts.active,
                "expired": counts.expired,
                "revoked": counts.revoked,
                "expiring_within_7_days": counts.expiring_soon,
            },
            "last_read": self.status.lock().map(|s| s.clone()).unwrap_or_default(),
        })
    }

    fn counts(&self, now: i64) -> Counts {
        let mut c = Counts::default();
        for k in self.index.load().keys.values() {
            if k.revoked.is_some_and(|t| t <= now) {
                c.revoked += 1;
            } else if k.identity.expires <= now {
                c.expired += 1;
            } else {
                c.active += 1;
                if k.identity.expires - now <= EXPIRING_SOON {
                    c.expiring_soon += 1;
                }
            }
        }
        c
    }

    /// Prometheus text for `/metrics` (computed at scrape time).
    pub fn render_metrics(&self, now: SystemTime) -> String {
        let c = self.counts(unix_now(now));
        let ok = self.status.lock().map(|s| s.ok).unwrap_or(false);
        format!(
            "# HELP cedar_gate_api_keys API keys in the store, by state.\n\
             # TYPE cedar_gate_api_keys gauge\n\
             cedar_gate_api_keys{{state=\"active\"}} {}\n\
             cedar_gate_api_keys{{state=\"expired\"}} {}\n\
             cedar_gate_api_keys{{state=\"revoked\"}} {}\n\
             # HELP cedar_gate_api_keys_expiring_soon Active API keys that expire within 7 days.\n\
             # TYPE cedar_gate_api_keys_expiring_soon gauge\n\
             cedar_gate_api_keys_expiring_soon {}\n\
             # HELP cedar_gate_api_key_store_read_ok 1 when the latest read of the key store succeeded.\n\
             # TYPE cedar_gate_api_key_store_read_ok gauge\n\
             cedar_gate_api_key_store_read_ok {}\n",
            c.active,
            c.expired,
            c.revoked,
            c.expiring_soon,
            u8::from(ok)
        )
    }
}

#[derive(Debug, Default)]
struct Counts {
    active: u64,
    expired: u64,
    revoked: u64,
    expiring_soon: u64,
}

fn check_record(record: &KeyRecord, now: i64, max_lifetime: i64) -> Result<(), ApiKeyError> {
    let key = &record.identity;
    if record.revoked.is_some_and(|t| t <= now) {
        return Err(ApiKeyError::Revoked(key.id.clone()));
    }
    if now >= key.expires {
        return Err(ApiKeyError::Expired(key.id.clone()));
    }
    if key.expires.saturating_sub(key.created) > max_lifetime {
        return Err(ApiKeyError::LifetimeExceeded(key.id.clone()));
    }
    Ok(())
}

/// `context.auth` entries for a key: its id, age and remaining lifetime.
pub fn context(k: &ApiKeyIdentity, now: i64) -> Vec<(String, Value)> {
    vec![
        ("api_key_id".to_owned(), Value::str(&k.id)),
        (
            "api_key_age_seconds".to_owned(),
            Value::Long(now.saturating_sub(k.created).max(0)),
        ),
        (
            "api_key_remaining_seconds".to_owned(),
            Value::Long(k.expires.saturating_sub(now).max(0)),
        ),
        ("api_key_owner".to_owned(), Value::str(&k.owner)),
    ]
}

#[cfg(test)]
mod tests;
