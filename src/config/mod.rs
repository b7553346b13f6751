//! The YAML configuration file, compiled while it is read: each value is
//! parsed into its own type (trust domains, SPIFFE ids, header names,
//! algorithms) by `#[serde(try_from)]`; what remains checks settings against
//! each other.
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo never silently
//! turns a control off.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::identity::IdentityConfig;
use crate::policy::{AuthorizationConfig, CacheConfig, PolicyReloadConfig};

mod server;
pub use server::{ServerConfig, TlsConfig};

/// Errors raised while reading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML did not match the configuration schema (includes unknown keys).
    #[error("invalid config{}: {message}", location.as_deref().map(|l| format!(" at {l}")).unwrap_or_default())]
    Parse {
        /// `line:column` where known.
        location: Option<String>,
        /// The parser's message, naming the offending key.
        message: String,
    },
    /// A value is well-formed but not acceptable.
    #[error("invalid config: `{key}` {message}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory holding `schema.cedarschema`, `*.cedar` and `entities.json`.
    #[serde(default)]
    pub policy_dir: Option<PathBuf>,
    /// gRPC listen address (ext_authz Check and grpc.health.v1).
    #[serde(default)]
    pub grpc_listen: Option<SocketAddr>,
    /// Admin HTTP listen address (`/metrics`, `/healthz`, `/readyz`).
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    /// How callers are identified.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// How Cedar decisions are made.
    #[serde(default)]
    pub authorization: AuthorizationConfig,
    /// What the answer to Envoy carries.
    #[serde(default)]
    pub response: ResponseConfig,
    /// Where audit events go.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Diagnostic logging.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// The decision cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// How policy changes are picked up.
    #[serde(default)]
    pub policy_reload: PolicyReloadConfig,
    /// gRPC server limits and optional TLS.
    #[serde(default)]
    pub server: ServerConfig,
    /// Route table: which protocol (OpenAI, Anthropic, Gemini, Bedrock, MCP,
    /// plain HTTP) a request speaks. Compiled while parsing; first match wins;
    /// unmatched requests are plain HTTP.
    #[serde(default)]
    pub routes: crate::classify::Routes,
    /// Provider credentials the gateway holds and injects on allow
    /// (`docs/credentials.md`).
    #[serde(default)]
    pub provider_credentials: crate::credentials::ProviderCredentialsConfig,
    /// Gateway-issued API keys (`docs/credentials.md`).
    #[serde(default)]
    pub api_keys: Option<crate::identity::keys::ApiKeysConfig>,
}

/// Settings for the answer sent back to Envoy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    /// Request headers removed before the request goes upstream on allow
    /// (for example the caller's `authorization` before a model provider).
    #[serde(default)]
    pub remove_headers: Vec<crate::request::HeaderName>,
    /// Realm in the `WWW-Authenticate` challenge of a 401.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// RFC 9728 protected resource metadata URL, added to 401 challenges as
    /// `resource_metadata="..."` so clients (for example MCP) find where to get a token.
    #[serde(default)]
    pub resource_metadata: Option<String>,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        Self {
            remove_headers: Vec::new(),
            realm: default_realm(),
            resource_metadata: None,
        }
    }
}

fn default_realm() -> String {
    "cedar-gate".to_owned()
}

/// Where audit events are written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `stdout` (default), `file` or `off`.
    #[serde(default)]
    pub sink: AuditSink,
    /// File to append to when `sink: file`.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

/// Audit destinations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditSink {
    /// One JSON line per decision on standard output.
    #[default]
    Stdout,
    /// One JSON line per decision appended to `audit.path`.
    File,
    /// No audit events (not recommended).
    Off,
}

/// Diagnostic log settings (the audit stream is separate).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `json` (default) or `text`.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `cedar_gate=debug`; `RUST_LOG` wins.
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_level(),
        }
    }
}

fn default_level() -> String {
    "info".to_owned()
}

/// Diagnostic log formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

// === impl Config ===

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Parses and validates YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        // An empty file is a valid, all-defaults config.
        let config: Config = if text.trim().is_empty() {
            serde_norway::from_str("{}")
        } else {
            serde_norway::from_str(text)
        }
        .map_err(|e| ConfigError::Parse {
            location: e
                .location()
                .map(|l| format!("line {} column {}", l.line(), l.column())),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.identity.xfcc.trusted_peers.is_empty() && !self.identity.xfcc.trusted {
            return Err(ConfigError::Invalid {
                key: "identity.xfcc.trusted_peers",
                message: "is set but `identity.xfcc.trusted` is false".to_owned(),
            });
        }
        if self.response.realm.contains('"') || self.response.realm.contains('\\') {
            return Err(ConfigError::Invalid {
                key: "response.realm",
                message: "must not contain quotes or backslashes".to_owned(),
            });
        }
        if self.cache.enabled && (self.cache.max_entries == 0 || self.cache.ttl_seconds == 0) {
            return Err(ConfigError::Invalid {
                key: "cache",
                message:
                    "`max_entries` and `ttl_seconds` must be positive (or set `enabled: false`)"
                        .to_owned(),
            });
        }
        if self.policy_reload.debounce_ms > 60_000 {
            return Err(ConfigError::Invalid {
                key: "policy_reload.debounce_ms",
                message: "must be at most 60000".to_owned(),
            });
        }
        crate::identity::issuers::validate(
            &self.identity.issuers,
            self.identity.jwt_authn_metadata.as_ref(),
        )
        .map_err(|e| ConfigError::Invalid {
            key: e.key,
            message: e.message,
        })?;
        if let Some(url) = &self.response.resource_metadata
            && ((!url.starts_with("https://") && !url.starts_with("http://"))
                || url.contains('"')
                || url.contains('\\'))
        {
            return Err(ConfigError::Invalid {
                key: "response.resource_metadata",
                message: "must be an http(s) URL without quotes or backslashes".to_owned(),
            });
        }
        if self.audit.sink == AuditSink::File && self.audit.path.is_none() {
            return Err(ConfigError::Invalid {
                key: "audit.path",
                message: "is required when `audit.sink` is `file`".to_owned(),
            });
        }
        if let Some(keys) = &self.api_keys {
            keys.validate().map_err(|message| ConfigError::Invalid {
                key: "api_keys",
                message,
            })?;
        }
        self.provider_credentials
            .check_routes(|name| self.routes.has_name(name))
            .map_err(|e| ConfigError::Invalid {
                key: "provider_credentials.routes",
                message: e.to_string(),
            })?;
        self.server.validate()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::identity::PositiveSeconds;
    use crate::policy::OnPolicyError;

    #[test]
    fn empty_is_defaults() {
        let c = Config::from_yaml("").unwrap();
        assert_eq!(c.authorization.on_policy_error, OnPolicyError::Deny);
        assert!(!c.identity.xfcc.trusted);
        assert_eq!(c.audit.sink, AuditSink::Stdout);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_yaml("identity:\n  trust_domain: [x]\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("trust_domain"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn bad_trust_domain_rejected() {
        let err = Config::from_yaml("identity:\n  trust_domains: [Example.ORG]\n").unwrap_err();
        assert!(err.to_string().contains("identity.trust_domains"), "{err}");
    }

    #[test]
    fn identity_options_refused_at_load() {
        for (yaml, needle) in [
            (
                "identity:\n  max_certificate_lifetime_seconds: 0\n",
                "positive",
            ),
            (
                "identity:\n  max_certificate_lifetime_seconds: -5\n",
                "max_certificate_lifetime_seconds",
            ),
            (
                "identity:\n  max_certificate_lifetime: 60\n",
                "max_certificate_lifetime",
            ),
            (
                "identity:\n  xfcc:\n    trusted: true\n    trusted_peers: [\"spiffe://example.org\"]\n",
                "trust domain, not a workload",
            ),
        ] {
            let err = Config::from_yaml(yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let c =
            Config::from_yaml("identity:\n  max_certificate_lifetime_seconds: 86400\n").unwrap();
        assert_eq!(
            c.identity
                .max_certificate_lifetime_seconds
                .map(PositiveSeconds::get),
            Some(86_400)
        );
    }

    #[test]
    fn file_sink_needs_path() {
        let err = Config::from_yaml("audit:\n  sink: file\n").unwrap_err();
        assert!(err.to_string().contains("audit.path"), "{err}");
    }

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cedar-gate.yaml");
        Config::load(&path).unwrap();
    }
}
