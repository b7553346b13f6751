//! An issuer's claim rules: audience, times, subject, groups, scopes, actors.

use std::str::FromStr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value as Json};

use super::{TokenError, TokenSource, TokenType, VerifiedToken};
use crate::identity::issuers::IssuerConfig;

/// Most groups taken from a token.
const MAX_GROUPS: usize = 256;
/// Deepest RFC 8693 `act` nesting followed.
const MAX_ACTOR_DEPTH: usize = 8;

/// An issuer's claim rules, compiled from its config.
#[derive(Debug, Clone)]
pub struct IssuerRules {
    /// `iss`.
    pub issuer: String,
    pub(super) entity_type: EntityTypeName,
    pub(super) audiences: Vec<String>,
    /// The allow-list.
    pub algorithms: Vec<Algorithm>,
    pub(super) leeway: i64,
    pub(super) max_lifetime: Option<i64>,
    pub(super) required_claims: Vec<String>,
    pub(super) subject_claim: String,
    pub(super) groups_claim: Option<String>,
    pub(super) groups_prefix: String,
    pub(super) context_claims: Vec<String>,
    pub(super) require_access_token_type: bool,
}

// === impl IssuerRules ===

impl IssuerRules {
    /// An issuer's rules, from its config (parsed when the config was read).
    pub fn new(cfg: &IssuerConfig) -> Self {
        Self {
            issuer: cfg.issuer.clone(),
            entity_type: cfg.entity_type.name().clone(),
            audiences: cfg.audiences.clone(),
            algorithms: cfg.algorithms.iter().map(|a| a.get()).collect(),
            leeway: secs(cfg.leeway_seconds),
            max_lifetime: cfg.max_lifetime_seconds.map(secs),
            required_claims: cfg.required_claims.clone(),
            subject_claim: cfg.subject_claim.clone(),
            groups_claim: cfg.groups_claim.clone(),
            groups_prefix: cfg.groups_prefix.clone(),
            context_claims: cfg.context_claims.clone(),
            require_access_token_type: cfg.require_access_token_type,
        }
    }

    /// Applies the issuer's `require_access_token_type` to the header's `typ`.
    pub fn check_type(&self, typ: TokenType) -> Result<(), TokenError> {
        if self.require_access_token_type && typ != TokenType::AccessToken {
            return Err(TokenError::AccessTokenTypeRequired);
        }
        Ok(())
    }

    /// Checks `alg` against the allow-list.
    pub fn algorithm(&self, alg: &str) -> Result<Algorithm, TokenError> {
        Algorithm::from_str(alg)
            .ok()
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| TokenError::AlgorithmNotAllowed(alg.chars().take(16).collect()))
    }

    /// Applies every claim rule to (signature-checked or Envoy-verified) claims.
    pub fn check_claims(
        &self,
        claims: &Map<String, Json>,
        now: i64,
        source: TokenSource,
    ) -> Result<VerifiedToken, TokenError> {
        let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingExpiry)?;
        let nbf = numeric_date(claims, "nbf")?;
        let iat = numeric_date(claims, "iat")?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired);
        }
        if nbf.is_some_and(|nbf| now.saturating_add(self.leeway) < nbf) {
            return Err(TokenError::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now.saturating_add(self.leeway)) {
            return Err(TokenError::IssuedInFuture);
        }
        if let Some(max) = self.max_lifetime {
            let iat = iat.ok_or(TokenError::MissingIssuedAt)?;
            if exp.saturating_sub(iat) > max {
                return Err(TokenError::LifetimeExceeded);
            }
        }
        let audiences = self.audiences(claims.get("aud"));
        let audience = audiences
            .first()
            .cloned()
            .ok_or(TokenError::InvalidAudience)?;
        for c in &self.required_claims {
            if claims.get(c).is_none_or(Json::is_null) {
                return Err(TokenError::MissingClaim(c.chars().take(64).collect()));
            }
        }
        let subject = match claims.get(&self.subject_claim) {
            Some(Json::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(TokenError::MissingSubject),
        };
        let principal =
            EntityUid::from_type_name_and_id(self.entity_type.clone(), EntityId::new(&subject));
        Ok(VerifiedToken {
            issuer: self.issuer.clone(),
            principal,
            subject,
            audience,
            audiences,
            scopes: scopes(claims)?,
            groups: self.groups(claims)?,
            issued_at: iat,
            not_before: nbf,
            expires_at: exp,
            leeway: self.leeway,
            jti: match claims.get("jti") {
                None => None,
                Some(Json::String(s)) => Some(s.clone()),
                Some(_) => return Err(TokenError::InvalidClaim("jti")),
            },
            actors: actors(claims.get("act"))?,
            claims: self.context_claims(claims),
            source,
        })
    }

    fn audiences(&self, aud: Option<&Json>) -> Vec<String> {
        let named: Vec<&str> = match aud {
            Some(Json::String(s)) => vec![s.as_str()],
            Some(Json::Array(items)) => items.iter().filter_map(Json::as_str).collect(),
            _ => Vec::new(),
        };
        self.audiences
            .iter()
            .filter(|a| named.contains(&a.as_str()))
            .cloned()
            .collect()
    }

    fn groups(&self, claims: &Map<String, Json>) -> Result<Vec<String>, TokenError> {
        let Some(path) = &self.groups_claim else {
            return Ok(Vec::new());
        };
        // A dotted path reaches nested claims such as Keycloak's `realm_access.roles`.
        let mut value = None;
        let mut map = Some(claims);
        for part in path.split('.') {
            value = map.and_then(|m| m.get(part));
            map = value.and_then(Json::as_object);
        }
        let groups: Vec<String> = match value {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::String(s)) => vec![s.clone()],
            Some(Json::Array(items)) => items
                .iter()
                .map(|g| g.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or(TokenError::InvalidClaim("groups"))?,
            Some(_) => return Err(TokenError::InvalidClaim("groups")),
        };
        if groups.len() > MAX_GROUPS || groups.iter().any(String::is_empty) {
            return Err(TokenError::InvalidClaim("groups"));
        }
        Ok(groups
            .into_iter()
            .map(|g| format!("{}{g}", self.groups_prefix))
            .collect())
    }

    fn context_claims(&self, claims: &Map<String, Json>) -> Vec<(String, String)> {
        self.context_claims
            .iter()
            .filter_map(|name| {
                let v = match claims.get(name)? {
                    Json::String(s) => s.clone(),
                    Json::Number(n) => n.to_string(),
                    Json::Bool(b) => b.to_string(),
                    _ => return None,
                };
                Some((name.clone(), v))
            })
            .collect()
    }
}

fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A NumericDate claim (seconds; fractions truncated).
fn numeric_date(claims: &Map<String, Json>, name: &'static str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Json::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(TokenError::InvalidClaim(name)),
        Some(_) => Err(TokenError::InvalidClaim(name)),
    }
}

fn scopes(claims: &Map<String, Json>) -> Result<Vec<String>, TokenError> {
    let mut out: Vec<String> = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            None | Some(Json::Null) => {}
            Some(Json::String(s)) => out.extend(s.split_whitespace().map(str::to_owned)),
            Some(Json::Array(items)) => {
                for i in items {
                    out.push(
                        i.as_str()
                            .ok_or(TokenError::InvalidClaim("scope"))?
                            .to_owned(),
                    );
                }
            }
            Some(_) => return Err(TokenError::InvalidClaim("scope")),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The RFC 8693 delegation chain: `act.sub`, then `act.act.sub`, ...
fn actors(act: Option<&Json>) -> Result<Vec<String>, TokenError> {
    let mut out = Vec::new();
    let mut next = act;
    while let Some(v) = next {
        if out.len() == MAX_ACTOR_DEPTH {
            return Err(TokenError::InvalidClaim("act"));
        }
        let obj = v.as_object().ok_or(TokenError::InvalidClaim("act"))?;
        let sub = obj
            .get("sub")
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::InvalidClaim("act"))?;
        out.push(sub.to_owned());
        next = obj.get("act");
    }
    Ok(out)
}
