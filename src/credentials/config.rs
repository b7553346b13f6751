//! `provider_credentials:` in the config file, compiled while it is
//! deserialized (`#[serde(try_from)]`): a bad header name, a duplicate id or a
//! `{value}`-less format fails at load, never per request. Route names are
//! checked against the route table by [`ProviderCredentialsConfig::check_routes`].

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::path::PathBuf;

use serde::Deserialize;

/// The header every standard provider reads its key from, and how the value
/// is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HeaderKind {
    /// `authorization: Bearer <value>` (OpenAI, Mistral, most OpenAI-compatible
    /// servers; Vertex AI and Azure Entra access tokens).
    #[serde(rename = "bearer")]
    Bearer,
    /// `x-api-key: <value>` (Anthropic).
    #[serde(rename = "x-api-key")]
    XApiKey,
    /// `api-key: <value>` (Azure OpenAI keys).
    #[serde(rename = "api-key")]
    ApiKey,
    /// `x-goog-api-key: <value>` (Gemini API).
    #[serde(rename = "x-goog-api-key")]
    XGoogApiKey,
    /// `header_name` with `format` (`{value}` replaced by the secret).
    #[serde(rename = "custom")]
    Custom,
}

/// Every header a provider reads a key from. The caller's copies of these are
/// removed before the request goes upstream on a route with injection.
pub const PROVIDER_HEADERS: [&str; 5] = [
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    // AWS temporary credentials (a caller signing Bedrock requests itself).
    "x-amz-security-token",
];

/// The rest of a caller's own SigV4 signature, removed on `proxy_signs` routes
/// so only the proxy's signature reaches the provider.
pub const SIGV4_HEADERS: [&str; 2] = ["x-amz-date", "x-amz-content-sha256"];

/// The query parameter the Gemini API also accepts its key in.
pub const PROVIDER_QUERY_KEY: &str = "key";

// === impl HeaderKind ===

impl HeaderKind {
    /// The snake_case name used in `/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderKind::Bearer => "bearer",
            HeaderKind::XApiKey => "x-api-key",
            HeaderKind::ApiKey => "api-key",
            HeaderKind::XGoogApiKey => "x-goog-api-key",
            HeaderKind::Custom => "custom",
        }
    }
}

/// One credential as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    /// The name policies (`@credential("...")`), routes, metrics and the audit use.
    pub id: String,
    /// Which header it goes in.
    pub header: HeaderKind,
    /// `custom` only: the header name.
    #[serde(default)]
    pub header_name: Option<String>,
    /// `custom` only: the value, `{value}` standing for the secret (default `{value}`).
    #[serde(default)]
    pub format: Option<String>,
    /// A file holding the key (a mounted Kubernetes Secret), re-read on change.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A file holding a short-lived access token that an agent outside
    /// cedar-gate refreshes (Vertex AI, Azure Entra), re-read on change.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// How often this secret is meant to be replaced. Exported as a metric; the
    /// shipped alert fires when the secret is older.
    #[serde(default)]
    pub rotation_period_seconds: Option<NonZeroU64>,
}

/// Which credential a route injects, as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCredentialSpec {
    /// `routes[].name` of the route.
    pub route: String,
    /// The credential used when the determining policy names none.
    #[serde(default)]
    pub default: Option<String>,
    /// Let callers' own provider keys through instead of refusing the request
    /// (`provider_credential_presented`). They are still replaced by the
    /// injected credential. Default false.
    #[serde(default)]
    pub allow_caller_credentials: bool,
    /// The proxy signs the request after cedar-gate allows it (Bedrock: Envoy's
    /// `aws_request_signing` filter): cedar-gate injects nothing, and still
    /// refuses and strips the caller's own credentials. Not with `default`.
    #[serde(default)]
    pub proxy_signs: bool,
}

/// The section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderCredentialsSpec {
    /// The credentials.
    #[serde(default)]
    pub credentials: Vec<CredentialSpec>,
    /// Routes that inject one.
    #[serde(default)]
    pub routes: Vec<RouteCredentialSpec>,
    /// How often every file is re-read even without a change event, in seconds
    /// (default 5): a safety net for file systems that report no events.
    #[serde(default)]
    pub poll_seconds: Option<NonZeroU64>,
}

/// A compiled credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialDef {
    /// Its id.
    pub id: String,
    /// The header kind.
    pub kind: HeaderKind,
    /// The header name, lower case.
    pub header: String,
    /// Text before and after the secret in the header value.
    pub prefix: String,
    /// See `prefix`.
    pub suffix: String,
    /// The file read.
    pub path: PathBuf,
    /// Whether it is a refreshed token file rather than a key.
    pub token_file: bool,
    /// Declared rotation period.
    pub rotation_period: Option<NonZeroU64>,
}

/// A compiled route binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteBinding {
    /// Index of the default credential.
    pub default: Option<usize>,
    /// See [`RouteCredentialSpec::allow_caller_credentials`].
    pub allow_caller_credentials: bool,
    /// See [`RouteCredentialSpec::proxy_signs`].
    pub proxy_signs: bool,
}

/// `provider_credentials:`, compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ProviderCredentialsSpec")]
pub struct ProviderCredentialsConfig {
    /// The credentials, in config order (their index is their handle).
    pub credentials: Vec<CredentialDef>,
    /// Credential index by id.
    pub by_id: BTreeMap<String, usize>,
    /// Route name → binding.
    pub routes: BTreeMap<String, RouteBinding>,
    /// Every header a caller's provider key can be in (standard and custom), lower case.
    pub provider_headers: Vec<String>,
    /// Safety-net re-read interval.
    pub poll: std::time::Duration,
}

/// Why `provider_credentials:` is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("provider_credentials: {0}")]
pub struct CredentialConfigError(String);

/// Headers a credential may not be written to: Envoy owns them, or cedar-gate does.
fn reserved_header(name: &str) -> bool {
    name.starts_with(':')
        || name.starts_with(crate::request::HEADER_PREFIX)
        || matches!(
            name,
            "host"
                | "connection"
                | "content-length"
                | "content-type"
                | "transfer-encoding"
                | "te"
                | "upgrade"
                | "keep-alive"
                | "proxy-connection"
                | "x-forwarded-client-cert"
        )
}

fn header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

// === impl ProviderCredentialsConfig ===

impl ProviderCredentialsConfig {
    /// Compiles the section.
    pub fn compile(spec: ProviderCredentialsSpec) -> Result<Self, CredentialConfigError> {
        let err = |m: String| CredentialConfigError(m);
        let mut out = ProviderCredentialsConfig {
            poll: spec
                .poll_seconds
                .map_or(std::time::Duration::from_secs(5), |p| {
                    std::time::Duration::from_secs(p.get())
                }),
            provider_headers: PROVIDER_HEADERS.iter().map(|h| (*h).to_owned()).collect(),
            ..Default::default()
        };
        for (i, c) in spec.credentials.into_iter().enumerate() {
            let at = format!("credentials[{i}]");
            if !id_ok(&c.id) {
                return Err(err(format!(
                    "{at}: `id` `{}` must be 1-64 letters, digits, `-`, `_` or `.`",
                    c.id.escape_debug()
                )));
            }
            if out.by_id.insert(c.id.clone(), i).is_some() {
                return Err(err(format!("{at}: `id` `{}` is used twice", c.id)));
            }
            let (path, token_file) = match (c.file.clone(), c.token_file.clone()) {
                (Some(p), None) => (p, false),
                (None, Some(p)) => (p, true),
                _ => {
                    return Err(err(format!(
                        "{at} (`{}`): set exactly one of `file` and `token_file`",
                        c.id
                    )));
                }
            };
            let (header, prefix, suffix) = header_of(&at, &c)?;
            if c.header == HeaderKind::Custom && !out.provider_headers.contains(&header) {
                out.provider_headers.push(header.clone());
            }
            out.credentials.push(CredentialDef {
                id: c.id,
                kind: c.header,
                header,
                prefix,
                suffix,
                path,
                token_file,
                rotation_period: c.rotation_period_seconds,
            });
        }
        for (i, r) in spec.routes.into_iter().enumerate() {
            let default = match &r.default {
                None => None,
                Some(id) => Some(*out.by_id.get(id).ok_or_else(|| {
                    err(format!(
                        "routes[{i}] (`{}`): `default` `{id}` is not a credential id",
                        r.route
                    ))
                })?),
            };
            if r.proxy_signs && default.is_some() {
                return Err(err(format!(
                    "routes[{i}] (`{}`): `proxy_signs` routes inject nothing; drop `default`",
                    r.route
                )));
            }
            let binding = RouteBinding {
                default,
                allow_caller_credentials: r.allow_caller_credentials,
                proxy_signs: r.proxy_signs,
            };
            if out.routes.insert(r.route.clone(), binding).is_some() {
                return Err(err(format!(
                    "routes[{i}]: route `{}` is listed twice",
                    r.route
                )));
            }
        }
        Ok(out)
    }

    /// Whether any route injects a credential.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every bound route must exist in the route table: a typo would leave a
    /// provider route without injection (and callers' keys accepted).
    pub fn check_routes(
        &self,
        mut names: impl FnMut(&str) -> bool,
    ) -> Result<(), CredentialConfigError> {
        for route in self.routes.keys() {
            if !names(route) {
                return Err(CredentialConfigError(format!(
                    "route `{route}` is not the name of any entry of `routes`"
                )));
            }
        }
        Ok(())
    }
}

impl TryFrom<ProviderCredentialsSpec> for ProviderCredentialsConfig {
    type Error = CredentialConfigError;

    fn try_from(spec: ProviderCredentialsSpec) -> Result<Self, Self::Error> {
        Self::compile(spec)
    }
}

/// The header a credential goes in, and the text around its value.
fn header_of(
    at: &str,
    c: &CredentialSpec,
) -> Result<(String, String, String), CredentialConfigError> {
    let err = |m: String| CredentialConfigError(m);
    match c.header {
        HeaderKind::Custom => {
            let Some(name) = c.header_name.as_ref().map(|h| h.to_ascii_lowercase()) else {
                return Err(err(format!(
                    "{at} (`{}`): `header: custom` needs `header_name`",
                    c.id
                )));
            };
            if !header_name_ok(&name) || reserved_header(&name) {
                return Err(err(format!(
                    "{at} (`{}`): `header_name` `{}` is not a header a credential can go in",
                    c.id,
                    name.escape_debug()
                )));
            }
            let format = c.format.as_deref().unwrap_or("{value}");
            let Some((prefix, suffix)) = format.split_once("{value}") else {
                return Err(err(format!(
                    "{at} (`{}`): `format` must contain `{{value}}`",
                    c.id
                )));
            };
            if suffix.contains("{value}") || !format.bytes().all(|b| (b' '..=b'~').contains(&b)) {
                return Err(err(format!(
                    "{at} (`{}`): `format` must contain `{{value}}` once, in visible ASCII",
                    c.id
                )));
            }
            Ok((name, prefix.to_owned(), suffix.to_owned()))
        }
        kind => {
            if c.header_name.is_some() || c.format.is_some() {
                return Err(err(format!(
                    "{at} (`{}`): `header_name` and `format` apply only to `header: custom`",
                    c.id
                )));
            }
            let (name, prefix) = match kind {
                HeaderKind::Bearer => ("authorization", "Bearer "),
                HeaderKind::XApiKey => ("x-api-key", ""),
                HeaderKind::ApiKey => ("api-key", ""),
                _ => ("x-goog-api-key", ""),
            };
            Ok((name.to_owned(), prefix.to_owned(), String::new()))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> Result<ProviderCredentialsConfig, String> {
        serde_norway::from_str::<ProviderCredentialsConfig>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn compiles_every_header_kind() {
        let c = compile(
            r#"
credentials:
  - { id: openai, header: bearer, file: /s/openai }
  - { id: anthropic, header: x-api-key, file: /s/anthropic, rotation_period_seconds: 86400 }
  - { id: azure, header: api-key, file: /s/azure }
  - { id: gemini, header: x-goog-api-key, file: /s/gemini }
  - { id: vertex, header: bearer, token_file: /s/vertex-token }
  - { id: internal, header: custom, header_name: X-Internal-Key, format: "Key {value};v=1", file: /s/i }
routes:
  - { route: openai, default: openai }
  - { route: gemini, allow_caller_credentials: true }
"#,
        )
        .unwrap();
        assert_eq!(c.credentials.len(), 6);
        let internal = &c.credentials[5];
        assert_eq!(
            (
                internal.header.as_str(),
                internal.prefix.as_str(),
                internal.suffix.as_str()
            ),
            ("x-internal-key", "Key ", ";v=1")
        );
        assert_eq!(c.credentials[0].prefix, "Bearer ");
        assert!(c.credentials[4].token_file);
        assert!(c.provider_headers.contains(&"x-internal-key".to_owned()));
        assert_eq!(c.routes["openai"].default, Some(0));
        assert!(c.routes["gemini"].allow_caller_credentials);
        assert!(c.check_routes(|r| r == "openai").is_err());
        assert!(c.check_routes(|_| true).is_ok());
    }

    #[test]
    fn refuses_what_could_never_work() {
        for (yaml, needle) in [
            ("credentials: [{ id: a, header: bearer }]", "exactly one of"),
            (
                "credentials: [{ id: a, header: bearer, file: /x, token_file: /y }]",
                "exactly one of",
            ),
            (
                "credentials: [{ id: 'a b', header: bearer, file: /x }]",
                "`id`",
            ),
            (
                "credentials: [{ id: a, header: bearer, file: /x }, { id: a, header: bearer, file: /y }]",
                "used twice",
            ),
            (
                "credentials: [{ id: a, header: custom, file: /x }]",
                "needs `header_name`",
            ),
            (
                "credentials: [{ id: a, header: custom, header_name: host, file: /x }]",
                "not a header",
            ),
            (
                "credentials: [{ id: a, header: custom, header_name: x-cedar-gate-k, file: /x }]",
                "not a header",
            ),
            (
                "credentials: [{ id: a, header: custom, header_name: x-k, format: 'Key', file: /x }]",
                "`{value}`",
            ),
            (
                "credentials: [{ id: a, header: bearer, format: 'x {value}', file: /x }]",
                "only to `header: custom`",
            ),
            (
                "routes: [{ route: r, default: nope }]",
                "not a credential id",
            ),
            (
                "credentials: [{ id: a, header: bearer, file: /x }]\nroutes: [{ route: r, default: a, proxy_signs: true }]",
                "inject nothing",
            ),
            (
                "credentials: [{ id: a, header: basic, file: /x }]",
                "unknown variant",
            ),
            (
                "credentials: [{ id: a, header: bearer, file: /x, rotation_period_seconds: 0 }]",
                "rotation_period_seconds: invalid value: integer `0`, expected a nonzero",
            ),
        ] {
            let e = compile(yaml).unwrap_err();
            assert!(e.contains(needle), "{yaml}: {e}");
        }
    }
}
