//! The `server:` section: gRPC limits and optional TLS on the gRPC listener.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// gRPC server settings: limits that bound what one client can make the
/// server hold, and optional TLS for the Envoy-to-cedar-gate hop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// HTTP/2 streams (concurrent Checks) one connection may open.
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    /// Largest Check request accepted, in bytes (a body Envoy forwards counts).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// HTTP/2 PING interval on idle connections; `0` disables keepalive pings.
    #[serde(default = "default_keepalive_interval")]
    pub http2_keepalive_interval_seconds: u64,
    /// How long to wait for a PING reply before closing the connection.
    #[serde(default = "default_keepalive_timeout")]
    pub http2_keepalive_timeout_seconds: u64,
    /// Checks served at once per connection; more wait. Unset: bounded only by
    /// `max_concurrent_streams`.
    #[serde(default)]
    pub concurrency_limit_per_connection: Option<usize>,
    /// TLS on the gRPC listener; plaintext when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// gRPC server reflection (v1 and v1alpha) on the gRPC listener, describing the
    /// Authorization and Health services: `grpcurl list` works without the protos.
    #[serde(default = "default_reflection")]
    pub reflection: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_concurrent_streams: default_max_concurrent_streams(),
            max_message_bytes: default_max_message_bytes(),
            http2_keepalive_interval_seconds: default_keepalive_interval(),
            http2_keepalive_timeout_seconds: default_keepalive_timeout(),
            concurrency_limit_per_connection: None,
            tls: None,
            reflection: default_reflection(),
        }
    }
}

fn default_max_concurrent_streams() -> u32 {
    1024
}

fn default_max_message_bytes() -> usize {
    4 * 1024 * 1024
}

fn default_keepalive_interval() -> u64 {
    30
}

fn default_keepalive_timeout() -> u64 {
    10
}

fn default_reflection() -> bool {
    true
}

/// TLS (optionally mutual) on the gRPC listener. The files are re-read when
/// they change, so a rotated certificate (cert-manager, a Kubernetes Secret
/// update) is served to new connections without a restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA bundle. When set, every client must present a certificate that
    /// chains to it (mutual TLS); when absent, no client certificate is asked for.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// How often the files are checked for changes.
    #[serde(default = "default_tls_reload_interval")]
    pub reload_interval_seconds: u64,
}

fn default_tls_reload_interval() -> u64 {
    10
}

/// Largest accepted `server.max_message_bytes` (64 MiB).
const MAX_MESSAGE_BYTES_CEILING: usize = 64 * 1024 * 1024;

// === impl ServerConfig ===

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_concurrent_streams == 0 {
            return Err(ConfigError::Invalid {
                key: "server.max_concurrent_streams",
                message: "must be at least 1".to_owned(),
            });
        }
        if !(1024..=MAX_MESSAGE_BYTES_CEILING).contains(&self.max_message_bytes) {
            return Err(ConfigError::Invalid {
                key: "server.max_message_bytes",
                message: format!("must be between 1024 and {MAX_MESSAGE_BYTES_CEILING}"),
            });
        }
        if self.http2_keepalive_timeout_seconds == 0 {
            return Err(ConfigError::Invalid {
                key: "server.http2_keepalive_timeout_seconds",
                message: "must be at least 1".to_owned(),
            });
        }
        if self.concurrency_limit_per_connection == Some(0) {
            return Err(ConfigError::Invalid {
                key: "server.concurrency_limit_per_connection",
                message: "must be at least 1 (omit it for no limit)".to_owned(),
            });
        }
        if let Some(tls) = &self.tls
            && tls.reload_interval_seconds == 0
        {
            return Err(ConfigError::Invalid {
                key: "server.tls.reload_interval_seconds",
                message: "must be at least 1".to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::config::Config;

    #[test]
    fn server_defaults_are_bounded() {
        let c = Config::from_yaml("").unwrap();
        assert_eq!(c.server.max_concurrent_streams, 1024);
        assert_eq!(c.server.max_message_bytes, 4 * 1024 * 1024);
        assert!(c.server.tls.is_none());
    }

    #[test]
    fn server_limits_are_checked() {
        let err = Config::from_yaml("server:\n  max_message_bytes: 10\n").unwrap_err();
        assert!(
            err.to_string().contains("server.max_message_bytes"),
            "{err}"
        );
        let err = Config::from_yaml("server:\n  max_concurrent_streams: 0\n").unwrap_err();
        assert!(
            err.to_string().contains("server.max_concurrent_streams"),
            "{err}"
        );
        let err = Config::from_yaml("server:\n  tls:\n    cert_file: a\n").unwrap_err();
        assert!(err.to_string().contains("key_file"), "{err}");
    }
}
