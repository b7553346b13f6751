//! Audience per route (RFC 8707 resource indicators, the MCP authorization
//! specification's token audience binding).
//!
//! The route options (the check itself is in `decide::gate`, which sees the
//! token). An MCP route may declare the canonical URI of the server it fronts
//! (`resource: https://mcp.example.com/mcp/github`). Then a token presented
//! on it must name that URI in `aud` (one of its issuer's accepted
//! audiences): a token minted for another MCP server, or for the model API,
//! is refused with 401 `resource_mismatch` instead of being passed through.
//! This is the default (`audience: resource`) as soon as a route declares its
//! resource; `audience: issuer` keeps only the issuer-level `audiences` check
//! (for a migration, while the authorization server does not yet mint
//! per-resource tokens).

use serde::Deserialize;

/// Which audience a token must carry on a route with a `resource`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudienceMode {
    /// `aud` must name the route's `resource` (strict, the default).
    #[default]
    Resource,
    /// Any of the issuer's `audiences` is enough (the route's `resource` is
    /// informational only).
    Issuer,
}

/// Checks that `uri` is a canonical resource URI (RFC 8707 §2, MCP
/// "canonical server URI"): an absolute `https` (or `http`) URI with a
/// lower-case scheme and host, no fragment, no query, no whitespace.
/// Tokens are compared to it byte for byte, so a spelling variant would
/// refuse every token.
pub fn check_uri(uri: &str) -> Result<(), String> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))
        .ok_or_else(|| format!("`resource` `{uri}` must start with `https://` (lower case)"))?;
    if uri.bytes().any(|b| b <= b' ' || b == 0x7f || b >= 0x80) {
        return Err(format!(
            "`resource` `{}` must be ASCII without spaces or control characters",
            uri.escape_debug()
        ));
    }
    if uri.contains('#') || uri.contains('?') {
        return Err(format!("`resource` `{uri}` must have no fragment or query"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "`resource` `{uri}` needs a host (and no user info)"
        ));
    }
    if authority != authority.to_ascii_lowercase() {
        return Err(format!("`resource` `{uri}`: write the host in lower case"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uris_only() {
        for ok in [
            "https://mcp.example.com/mcp",
            "https://mcp.example.com",
            "https://mcp.example.com:8443/mcp/GitHub",
            "http://127.0.0.1:8080/mcp",
        ] {
            assert_eq!(check_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "mcp.example.com/mcp",
            "HTTPS://mcp.example.com",
            "https://MCP.example.com/mcp",
            "https://mcp.example.com/mcp#x",
            "https://mcp.example.com/mcp?x=1",
            "https:///mcp",
            "https://u@mcp.example.com",
            "https://mcp.example.com/a b",
            "ftp://mcp.example.com",
        ] {
            assert!(check_uri(bad).is_err(), "{bad}");
        }
    }
}
