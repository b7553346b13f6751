//! The route table: which protocol a request speaks, by host, path and method.
//!
//! Compiled while the config is deserialized (`#[serde(try_from)]`), so an
//! invalid pattern fails at load and never per request. First match wins; a
//! request no route matches is plain HTTP. Routes match the canonical path
//! and host (`crate::target`); literal path text is compared ignoring ASCII
//! case, because some upstreams route case-insensitively.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::classify::Protocol;
use crate::request::HttpRequest;
use crate::target::{ends_with_ignore_case, starts_with_ignore_case};

/// Default bound on the body bytes parsed, equal to the shipped Envoy
/// `with_request_body.max_request_bytes`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest `max_body_bytes` accepted.
pub const MAX_BODY_BYTES_LIMIT: usize = 16 * 1024 * 1024;

/// Whether a route's protocol must be able to read the body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyMode {
    /// A body the protocol needs but cannot read denies the request (fail closed).
    #[default]
    Required,
    /// A missing, partial or unreadable body is ignored: the request is
    /// classified from its path alone (no model from the body, no tool).
    Optional,
}

/// One route as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// A name for logs and diagnostics.
    #[serde(default)]
    pub name: Option<String>,
    /// `api.example.com` (exact, case-insensitive, port ignored) or
    /// `*.example.com` (any subdomain). Absent: any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Matches paths starting with this string at a segment boundary
    /// (`/mcp/github` matches `/mcp/github` and `/mcp/github/x`, not
    /// `/mcp/github-admin`), ignoring ASCII case.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Matches a whole path, segment by segment: literal segments, `*` or
    /// `{name}` for exactly one segment, and a final `**` for any rest.
    #[serde(default)]
    pub path: Option<String>,
    /// Upper-case methods; absent or empty: any method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// The protocol spoken on this route.
    pub protocol: Protocol,
    /// MCP only (required there): the server's name, prefixing tool names.
    #[serde(default)]
    pub server: Option<String>,
    /// MCP only: whether clients older than 2026-07-28 (or sending no
    /// `MCP-Protocol-Version`) are accepted (`accept`, the default) or refused.
    #[serde(default)]
    pub mcp_legacy: Option<crate::classify::mcp_headers::Legacy>,
    /// MCP only: the canonical URI of the MCP server (RFC 8707 resource);
    /// tokens on the route must name it in `aud` unless `audience: issuer`.
    #[serde(default)]
    pub resource: Option<String>,
    /// MCP only, with `resource`: `resource` (default) or `issuer`.
    #[serde(default)]
    pub audience: Option<crate::classify::resource::AudienceMode>,
    /// `required` (default) or `optional`.
    #[serde(default)]
    pub body: BodyMode,
    /// Most body bytes parsed; a longer body is `body_too_large`.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Model spellings on this route that name another model, e.g. Azure
    /// deployments (`gpt4o-prod: gpt-4o`) or Bedrock application inference
    /// profile ARNs. Keys and values are compared lower-cased.
    #[serde(default)]
    pub model_aliases: BTreeMap<String, String>,
}

/// A compiled route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The name, or `routes[<n>]`.
    pub name: String,
    host: Option<HostMatch>,
    path: PathMatch,
    methods: Vec<String>,
    /// The protocol spoken on this route.
    pub protocol: Protocol,
    /// The MCP server name (MCP routes only).
    pub server: String,
    /// Whether pre-2026-07-28 MCP clients are accepted (MCP routes only).
    pub mcp_legacy: crate::classify::mcp_headers::Legacy,
    /// The canonical resource URI (MCP routes only).
    pub resource: Option<String>,
    /// Whether tokens must name `resource` in `aud`.
    pub audience: crate::classify::resource::AudienceMode,
    /// Whether the body must be readable.
    pub body: BodyMode,
    /// Most body bytes parsed.
    pub max_body_bytes: usize,
    /// Lower-cased model spelling → lower-cased model id.
    pub model_aliases: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathMatch {
    Any,
    Prefix(String),
    Pattern { segments: Vec<Segment>, rest: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
}

/// The compiled route table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<RouteSpec>")]
pub struct Routes {
    routes: Vec<Route>,
}

/// Why a route could not be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("routes[{index}]: {message}")]
pub struct RouteError {
    /// Position in the list.
    pub index: usize,
    /// What is wrong.
    pub message: String,
}

// === impl Routes ===

impl Routes {
    /// Compiles a route table.
    pub fn compile(specs: Vec<RouteSpec>) -> Result<Self, RouteError> {
        let routes = specs
            .into_iter()
            .enumerate()
            .map(|(index, spec)| {
                Route::compile(index, spec).map_err(|message| RouteError { index, message })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { routes })
    }

    /// The first route matching the request.
    pub fn find(&self, req: &HttpRequest) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(req))
    }

    /// Whether a route has this name (`routes[].name`, or `routes[<n>]`).
    pub fn has_name(&self, name: &str) -> bool {
        self.routes.iter().any(|r| r.name == name)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there is no route (everything is plain HTTP).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

impl TryFrom<Vec<RouteSpec>> for Routes {
    type Error = RouteError;

    fn try_from(specs: Vec<RouteSpec>) -> Result<Self, Self::Error> {
        Self::compile(specs)
    }
}

// === impl Route ===

impl Route {
    /// The route a request on no route is read with when its path ends like
    /// an endpoint of `protocol` that runs a model (`classify::classify`):
    /// any host, path and method, the defaults of a route in the config.
    pub fn inferred(protocol: Protocol) -> Self {
        Self {
            name: format!("(none: a {} endpoint)", protocol.as_str()),
            host: None,
            path: PathMatch::Any,
            methods: Vec::new(),
            protocol,
            server: String::new(),
            mcp_legacy: Default::default(),
            resource: None,
            audience: Default::default(),
            body: BodyMode::Required,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            model_aliases: BTreeMap::new(),
        }
    }

    /// How many leading path segments the route itself names (its
    /// `path_prefix`, or its `path` pattern): chosen by the operator, not the
    /// client.
    pub fn own_segments(&self) -> usize {
        match &self.path {
            PathMatch::Any => 0,
            PathMatch::Prefix(p) => p.split('/').filter(|s| !s.is_empty()).count(),
            PathMatch::Pattern { segments, .. } => segments.len(),
        }
    }

    fn compile(index: usize, spec: RouteSpec) -> Result<Self, String> {
        let host = spec.host.as_deref().map(compile_host).transpose()?;
        let path = match (&spec.path_prefix, &spec.path) {
            (Some(_), Some(_)) => return Err("set `path_prefix` or `path`, not both".to_owned()),
            (Some(p), None) => {
                if !p.starts_with('/') {
                    return Err(format!("`path_prefix` `{p}` must start with `/`"));
                }
                PathMatch::Prefix(p.clone())
            }
            (None, Some(p)) => compile_pattern(p)?,
            (None, None) => PathMatch::Any,
        };
        let mut methods = Vec::with_capacity(spec.methods.len());
        for m in spec.methods {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("`methods` has `{m}`, not an HTTP method"));
            }
            methods.push(m.to_ascii_uppercase());
        }
        let server = match (spec.protocol, spec.server) {
            (Protocol::Mcp, Some(s)) => {
                if s.is_empty() || s.contains('/') || s.chars().any(char::is_control) {
                    return Err(format!(
                        "`server` `{s}` must be non-empty, without `/` (tools are named `<server>/<tool>`)"
                    ));
                }
                s
            }
            (Protocol::Mcp, None) => {
                return Err("`server` is required for `protocol: mcp`".to_owned());
            }
            (_, Some(_)) => return Err("`server` applies only to `protocol: mcp`".to_owned()),
            (_, None) => String::new(),
        };
        if spec.mcp_legacy.is_some() && spec.protocol != Protocol::Mcp {
            return Err("`mcp_legacy` applies only to `protocol: mcp`".to_owned());
        }
        if let Some(uri) = &spec.resource {
            if spec.protocol != Protocol::Mcp {
                return Err("`resource` applies only to `protocol: mcp`".to_owned());
            }
            crate::classify::resource::check_uri(uri)?;
        } else if spec.audience.is_some() {
            return Err("`audience` needs the route's `resource`".to_owned());
        }
        let max_body_bytes = spec.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 || max_body_bytes > MAX_BODY_BYTES_LIMIT {
            return Err(format!(
                "`max_body_bytes` must be between 1 and {MAX_BODY_BYTES_LIMIT}"
            ));
        }
        let mut model_aliases = BTreeMap::new();
        for (from, to) in spec.model_aliases {
            for name in [&from, &to] {
                crate::classify::model::check_name("model", name)
                    .map_err(|e| format!("`model_aliases`: {e} (`{}`)", name.escape_debug()))?;
            }
            if spec.protocol == Protocol::Http || spec.protocol == Protocol::Mcp {
                return Err("`model_aliases` applies only to model-provider routes".to_owned());
            }
            model_aliases.insert(from.to_lowercase(), to.to_lowercase());
        }
        Ok(Self {
            model_aliases,
            name: spec.name.unwrap_or_else(|| format!("routes[{index}]")),
            host,
            path,
            methods,
            protocol: spec.protocol,
            server,
            mcp_legacy: spec.mcp_legacy.unwrap_or_default(),
            resource: spec.resource,
            audience: spec.audience.unwrap_or_default(),
            body: spec.body,
            max_body_bytes,
        })
    }

    /// Whether the request is on this route.
    pub fn matches(&self, req: &HttpRequest) -> bool {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == &req.method) {
            return false;
        }
        if self.host.as_ref().is_some_and(|h| !h.matches(&req.host)) {
            return false;
        }
        match &self.path {
            PathMatch::Any => true,
            // At a segment boundary: `/mcp/github` is not a prefix of
            // `/mcp/github-admin`, another server an upstream routes apart.
            PathMatch::Prefix(p) => {
                starts_with_ignore_case(&req.path, p)
                    && (p.ends_with('/')
                        || matches!(req.path.as_bytes().get(p.len()), None | Some(b'/')))
            }
            PathMatch::Pattern { segments, rest } => pattern_matches(segments, *rest, &req.path),
        }
    }
}

/// Whether a path matches a compiled `path` pattern. The path is split on the
/// byte `/` (ASCII: the pieces are those of `str::split('/')`), without the
/// char searcher `str::split` sets up per call: every Check tries each
/// pattern route before the one it is on.
fn pattern_matches(segments: &[Segment], rest: bool, path: &str) -> bool {
    let Some(path) = path.strip_prefix('/') else {
        return false;
    };
    let mut parts = path.as_bytes().split(|&b| b == b'/');
    for seg in segments {
        match (seg, parts.next()) {
            (Segment::Literal(l), Some(p)) if p.eq_ignore_ascii_case(l.as_bytes()) => {}
            (Segment::Any, Some(p)) if !p.is_empty() => {}
            _ => return false,
        }
    }
    // One trailing slash is the same route.
    rest || matches!((parts.next(), parts.next()), (None | Some([]), None))
}

// === impl HostMatch ===

impl HostMatch {
    /// Whether a request's host (any case, port ignored) is this one.
    fn matches(&self, host: &str) -> bool {
        // The compiled names are ASCII lower case (`compile_host`), so
        // comparing ignoring ASCII case is comparing the lower-cased host,
        // without allocating it for every route of every Check.
        let h = strip_port(host);
        match self {
            HostMatch::Exact(e) => h.eq_ignore_ascii_case(e),
            HostMatch::Suffix(s) => h.len() > s.len() && ends_with_ignore_case(h, s),
        }
    }
}

fn compile_host(h: &str) -> Result<HostMatch, String> {
    let lower = h.to_ascii_lowercase();
    let (suffix, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !valid {
        return Err(format!(
            "`host` `{h}` must be a host name or `*.<domain>`, without port"
        ));
    }
    Ok(if suffix {
        HostMatch::Suffix(format!(".{name}"))
    } else {
        HostMatch::Exact(name.to_owned())
    })
}

fn compile_pattern(p: &str) -> Result<PathMatch, String> {
    let Some(body) = p.strip_prefix('/') else {
        return Err(format!("`path` `{p}` must start with `/`"));
    };
    let parts: Vec<&str> = body.split('/').collect();
    let mut segments = Vec::with_capacity(parts.len());
    let mut rest = false;
    for (i, part) in parts.iter().enumerate() {
        if *part == "**" {
            if i + 1 != parts.len() {
                return Err(format!("`path` `{p}`: `**` must be the last segment"));
            }
            rest = true;
        } else if *part == "*" {
            segments.push(Segment::Any);
        } else if let Some(name) = part.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("`path` `{p}`: bad placeholder `{part}`"));
            }
            segments.push(Segment::Any);
        } else if part.contains(['{', '}', '*']) {
            return Err(format!(
                "`path` `{p}`: `{part}` mixes a wildcard with text; use a whole segment"
            ));
        } else {
            segments.push(Segment::Literal((*part).to_owned()));
        }
    }
    Ok(PathMatch::Pattern { segments, rest })
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn routes(yaml: &str) -> Result<Routes, String> {
        serde_norway::from_str::<Routes>(yaml).map_err(|e| e.to_string())
    }

    fn req(method: &str, host: &str, path: &str) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            host: host.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn first_match_wins_and_default_is_none() {
        let r = routes(
            "- {path_prefix: /v1/messages, protocol: anthropic}\n- {path_prefix: /v1/, protocol: openai}\n",
        )
        .unwrap();
        let found = |p: &str| r.find(&req("POST", "x", p)).map(|r| r.protocol);
        assert_eq!(found("/v1/messages"), Some(Protocol::Anthropic));
        assert_eq!(found("/v1/chat/completions"), Some(Protocol::Openai));
        assert_eq!(found("/healthz"), None);
    }

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        let r = routes("- {path_prefix: /mcp/github, protocol: mcp, server: github}\n- {path_prefix: /v1/, protocol: openai}\n").unwrap();
        let found = |p: &str| r.find(&req("POST", "x", p)).map(|r| r.protocol);
        assert_eq!(found("/mcp/github"), Some(Protocol::Mcp));
        assert_eq!(found("/MCP/GitHub/"), Some(Protocol::Mcp));
        assert_eq!(found("/mcp/github/sse"), Some(Protocol::Mcp));
        assert_eq!(found("/mcp/github-admin"), None);
        assert_eq!(found("/mcp/githubx/y"), None);
        assert_eq!(found("/v1/x"), Some(Protocol::Openai));
        assert_eq!(found("/v1"), None);
    }

    #[test]
    fn host_and_method_match() {
        let r = routes(
            "- {host: '*.openai.azure.com', methods: [post], protocol: openai}\n- {host: API.example.com, protocol: gemini}\n",
        )
        .unwrap();
        assert_eq!(
            r.find(&req("POST", "my.openai.azure.com:443", "/x"))
                .map(|r| r.protocol),
            Some(Protocol::Openai)
        );
        assert!(r.find(&req("GET", "my.openai.azure.com", "/x")).is_none());
        assert!(r.find(&req("POST", "openai.azure.com", "/x")).is_none());
        assert_eq!(
            r.find(&req("GET", "api.example.com", "/"))
                .map(|r| r.protocol),
            Some(Protocol::Gemini)
        );
    }

    #[test]
    fn patterns() {
        let r = routes(
            "- {path: '/openai/deployments/{deployment}/**', protocol: openai}\n- {path: /mcp/*, protocol: mcp, server: s}\n",
        )
        .unwrap();
        let found = |p: &str| r.find(&req("POST", "x", p)).map(|r| r.protocol);
        assert_eq!(
            found("/openai/deployments/gpt4/chat/completions"),
            Some(Protocol::Openai)
        );
        assert_eq!(found("/openai/deployments//chat"), None);
        assert_eq!(found("/mcp/a"), Some(Protocol::Mcp));
        assert_eq!(found("/mcp/a/b"), None);
        assert_eq!(found("/mcp"), None);
    }

    #[test]
    fn invalid_routes_fail_at_load() {
        for bad in [
            "- {path: /a/**/b, protocol: http}",
            "- {path: /a/x*, protocol: http}",
            "- {path: 'a', protocol: http}",
            "- {path: '/{}', protocol: http}",
            "- {path_prefix: /a, path: /b, protocol: http}",
            "- {protocol: mcp}",
            "- {protocol: mcp, server: a/b}",
            "- {protocol: openai, server: a}",
            "- {protocol: openai, max_body_bytes: 0}",
            "- {protocol: openai, methods: ['GET /']}",
            "- {protocol: openai, host: 'a:80'}",
            "- {protocol: smtp}",
            "- {protocol: http, extra: 1}",
        ] {
            assert!(routes(bad).is_err(), "{bad}");
        }
    }

    /// The pattern matcher `pattern_matches` replaced (`str::split`).
    fn pattern_matches_by_str_split(segments: &[Segment], rest: bool, path: &str) -> bool {
        let Some(path) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = path.split('/');
        for seg in segments {
            match (seg, parts.next()) {
                (Segment::Literal(l), Some(p)) if p.eq_ignore_ascii_case(l) => {}
                (Segment::Any, Some(p)) if !p.is_empty() => {}
                _ => return false,
            }
        }
        rest || matches!((parts.next(), parts.next()), (None | Some(""), None))
    }

    proptest::proptest! {
        /// Byte splitting matches what `str::split` matched, for every
        /// pattern that compiles, on paths near it and arbitrary ones
        /// (non-ASCII, empty segments, trailing slashes, case).
        #[test]
        fn pattern_matches_is_str_split(
            pattern in "(/([aAé]|b[bB]?|\\*|\\*\\*|\\{x\\}|)){0,5}",
            path in "(/([aAéÉ]|[bB]{1,2}|c|)){0,6}/?",
            any_path in "\\PC{0,16}",
        ) {
            if let Ok(PathMatch::Pattern { segments, rest }) = compile_pattern(&pattern) {
                for path in [path.as_str(), any_path.as_str(), pattern.as_str()] {
                    proptest::prop_assert_eq!(
                        pattern_matches(&segments, rest, path),
                        pattern_matches_by_str_split(&segments, rest, path),
                        "{:?} {:?}", pattern, path
                    );
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn compile_and_match_never_panic(
            pattern in "[/a-z{}*:%.-]{0,24}",
            prefix in proptest::bool::ANY,
            path in "[/a-z{}*:%.-]{0,32}",
            host in "[a-zA-Z0-9.:\\[\\]*-]{0,20}",
        ) {
            let spec = RouteSpec {
                name: None,
                host: Some(host.clone()),
                path_prefix: prefix.then(|| pattern.clone()),
                path: (!prefix).then(|| pattern.clone()),
                methods: vec!["POST".into()],
                protocol: Protocol::Openai,
                server: None,
                mcp_legacy: None,
                resource: None,
                audience: None,
                body: BodyMode::Required,
                max_body_bytes: None,
                model_aliases: BTreeMap::new(),
            };
            if let Ok(r) = Routes::compile(vec![spec]) {
                let _ = r.find(&req("POST", &host, &path));
            }
        }
    }

    #[test]
    fn config_error_names_the_route() {
        let err = crate::config::Config::from_yaml(
            "routes:\n  - {path_prefix: /v1/, protocol: openai}\n  - {path: /a/**/b, protocol: mcp, server: s}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("routes[1]") && err.contains("`**`"), "{err}");
    }

    #[test]
    fn hosts_match_as_when_lower_cased() {
        for pattern in [
            "api.openai.com",
            "*.openai.azure.com",
            "A.Example.COM",
            "*.B_c.d",
        ] {
            let m = compile_host(pattern).unwrap();
            for host in [
                "api.openai.com",
                "API.OpenAI.com:443",
                "x.openai.azure.com",
                "X.OPENAI.AZURE.COM:8443",
                "openai.azure.com",
                ".openai.azure.com",
                "a.example.com",
                "z.b_c.D",
                "[::1]:80",
                "api.openai.com.",
                "\u{212a}.openai.azure.com",
                "",
            ] {
                let lower = strip_port(host).to_ascii_lowercase();
                let was = match &m {
                    HostMatch::Exact(e) => lower == *e,
                    HostMatch::Suffix(s) => lower.len() > s.len() && lower.ends_with(s.as_str()),
                };
                assert_eq!(m.matches(host), was, "{pattern} {host}");
            }
        }
    }

    #[test]
    fn strip_port_forms() {
        assert_eq!(strip_port("a.b:8443"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
