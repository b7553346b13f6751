//! The policy part of the configuration: how decisions are made, cached and
//! reloaded (`authorization`, `cache`, `policy_reload`).

use serde::Deserialize;

/// What to do when a policy reports an evaluation error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnPolicyError {
    /// Deny with reason `policy_error` (fail closed). Cedar skips erroring
    /// policies, so without this a broken `forbid` would let the request through.
    #[default]
    Deny,
    /// Use Cedar's decision as it is, errors notwithstanding (logged and audited).
    Ignore,
}

/// Cedar decision settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// `deny` (default) or `ignore`.
    #[serde(default)]
    pub on_policy_error: OnPolicyError,
}

/// Decision cache settings. Entries never outlive the snapshot that made them,
/// the credential that earned them, nor `ttl_seconds`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Whether decisions are cached (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Most decisions held (default 10000; roughly 1 KB each).
    #[serde(default = "default_cache_entries")]
    pub max_entries: u64,
    /// Longest an entry lives, in seconds (default 60).
    #[serde(default = "default_cache_ttl")]
    pub ttl_seconds: u64,
    /// Entities the per-principal caches of one policy snapshot may hold
    /// (what a decision-cache miss reuses of a principal seen before; about
    /// 30 for a workload in one group). 0 turns them off.
    #[serde(default = "default_principal_entities")]
    pub principal_entities: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: default_cache_entries(),
            ttl_seconds: default_cache_ttl(),
            principal_entities: default_principal_entities(),
        }
    }
}

/// Policy hot-reload settings (`SIGHUP` always reloads).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyReloadConfig {
    /// Watch the policy directory for changes (default true).
    #[serde(default = "default_true")]
    pub watch: bool,
    /// Quiet period after the last change before reloading, in milliseconds
    /// (default 200), so a burst of writes becomes one reload.
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u64,
}

impl Default for PolicyReloadConfig {
    fn default() -> Self {
        Self {
            watch: true,
            debounce_ms: default_debounce_ms(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_cache_entries() -> u64 {
    10_000
}

fn default_cache_ttl() -> u64 {
    60
}

/// The default of `cache.principal_entities`: some 8,000 one-group
/// workloads, at a few hundred bytes an entity some tens of MB at most.
pub const DEFAULT_PRINCIPAL_ENTITIES: u64 = 262_144;

fn default_principal_entities() -> u64 {
    DEFAULT_PRINCIPAL_ENTITIES
}

fn default_debounce_ms() -> u64 {
    200
}
