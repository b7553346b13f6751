use super::*;
use crate::identity::issuers::IssuerConfig;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::json;
use serde_json::{Map, Value as Json};

fn rules(extra: &str) -> IssuerRules {
    let yaml = format!(
        "issuer: https://idp\njwks_file: /dev/null\naudiences: [api]\nentity_type: User\nalgorithms: [RS256, ES256]\nleeway_seconds: 10\ngroups_claim: groups\ncontext_claims: [tenant, level]\n{extra}"
    );
    let cfg: IssuerConfig = serde_norway::from_str(&yaml).unwrap();
    IssuerRules::new(&cfg)
}

fn claims(v: Json) -> Map<String, Json> {
    v.as_object().unwrap().clone()
}

const NOW: i64 = 1_700_000_000;

fn base() -> Json {
    json!({"iss": "https://idp", "sub": "alice", "aud": "api", "iat": NOW - 10, "exp": NOW + 300})
}

fn check(r: &IssuerRules, v: Json) -> Result<VerifiedToken, TokenError> {
    r.check_claims(&claims(v), NOW, TokenSource::Header)
}

fn with(mut v: Json, k: &str, x: Json) -> Json {
    v[k] = x;
    v
}

fn without(mut v: Json, k: &str) -> Json {
    v.as_object_mut().unwrap().remove(k);
    v
}

#[test]
fn valid_claims_map_to_a_principal() {
    let r = rules("");
    let t = check(
            &r,
            json!({"iss": "https://idp", "sub": "alice", "aud": ["x", "api"], "iat": NOW, "exp": NOW + 60,
                "scope": "read write", "scp": ["admin"], "groups": ["eng"], "jti": "j1", "tenant": "acme", "level": 3,
                "act": {"sub": "agent-1", "act": {"sub": "agent-0"}}}),
        )
        .unwrap();
    assert_eq!(t.principal.to_string(), "User::\"alice\"");
    assert_eq!(t.audience, "api");
    assert_eq!(t.scopes, vec!["admin", "read", "write"]);
    assert_eq!(t.groups, vec!["eng"]);
    assert_eq!(t.jti.as_deref(), Some("j1"));
    assert_eq!(t.actors, vec!["agent-1", "agent-0"]);
    assert_eq!(
        t.claims,
        vec![
            ("tenant".into(), "acme".into()),
            ("level".into(), "3".into())
        ]
    );
}

#[test]
fn time_rules() {
    let r = rules("");
    assert_eq!(
        check(&r, without(base(), "exp")),
        Err(TokenError::MissingExpiry)
    );
    assert_eq!(
        check(&r, with(base(), "exp", json!(NOW - 11))),
        Err(TokenError::Expired)
    );
    // Within the leeway.
    assert!(check(&r, with(base(), "exp", json!(NOW - 5))).is_ok());
    assert_eq!(
        check(&r, with(base(), "nbf", json!(NOW + 11))),
        Err(TokenError::NotYetValid)
    );
    assert!(check(&r, with(base(), "nbf", json!(NOW + 5))).is_ok());
    assert_eq!(
        check(&r, with(base(), "iat", json!(NOW + 60))),
        Err(TokenError::IssuedInFuture)
    );
    assert_eq!(
        check(&r, with(base(), "exp", json!("tomorrow"))),
        Err(TokenError::InvalidClaim("exp"))
    );
}

#[test]
fn max_lifetime() {
    let r = rules("max_lifetime_seconds: 600\n");
    assert!(check(&r, base()).is_ok());
    assert_eq!(
        check(&r, with(base(), "exp", json!(NOW + 3600))),
        Err(TokenError::LifetimeExceeded)
    );
    assert_eq!(
        check(&r, without(base(), "iat")),
        Err(TokenError::MissingIssuedAt)
    );
    // Without a maximum, no iat is fine.
    assert!(check(&rules(""), without(base(), "iat")).is_ok());
}

#[test]
fn audience_subject_required_claims() {
    let r = rules("required_claims: [email]\n");
    let ok = with(base(), "email", json!("a@x"));
    assert!(check(&r, ok.clone()).is_ok());
    assert_eq!(
        check(&r, base()),
        Err(TokenError::MissingClaim("email".into()))
    );
    assert_eq!(
        check(&r, with(ok.clone(), "aud", json!("other"))),
        Err(TokenError::InvalidAudience)
    );
    assert_eq!(
        check(&r, without(ok.clone(), "aud")),
        Err(TokenError::InvalidAudience)
    );
    assert_eq!(
        check(&r, with(ok.clone(), "sub", json!(""))),
        Err(TokenError::MissingSubject)
    );
    assert_eq!(
        check(&r, with(ok, "sub", json!(42))),
        Err(TokenError::MissingSubject)
    );
}

#[test]
fn malformed_claims() {
    let r = rules("");
    assert_eq!(
        check(&r, with(base(), "groups", json!([1]))),
        Err(TokenError::InvalidClaim("groups"))
    );
    assert_eq!(
        check(&r, with(base(), "act", json!("agent"))),
        Err(TokenError::InvalidClaim("act"))
    );
    let mut act = json!({"sub": "a"});
    for _ in 0..10 {
        act = json!({"sub": "a", "act": act});
    }
    assert_eq!(
        check(&r, with(base(), "act", act)),
        Err(TokenError::InvalidClaim("act"))
    );
}

#[test]
fn nested_groups_and_prefix() {
    let r = rules("groups_prefix: \"idp:\"\n");
    let r = IssuerRules {
        groups_claim: Some("realm_access.roles".into()),
        ..r
    };
    let t = check(
        &r,
        with(base(), "realm_access", json!({"roles": ["a", "b"]})),
    )
    .unwrap();
    assert_eq!(t.groups, vec!["idp:a", "idp:b"]);
}

#[test]
fn parse_structure() {
    let enc = |v: &Json| URL_SAFE_NO_PAD.encode(v.to_string());
    let h = enc(&json!({"alg": "RS256", "kid": "k1"}));
    let p = enc(&base());
    let ok = format!("{h}.{p}.c2ln");
    let parsed = parse(&ok).unwrap();
    assert_eq!(parsed.alg, "RS256");
    assert_eq!(parsed.kid.as_deref(), Some("k1"));
    assert_eq!(parsed.signing_input, format!("{h}.{p}"));

    assert_eq!(
        parse(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err(),
        TokenError::TooLarge(MAX_TOKEN_BYTES + 1)
    );
    for bad in [
        "",
        "a.b",
        "a.b.c.d",
        "a..c",
        "a.b.c d",
        "a.b.c=",
        &format!("{h}.{p}."),
    ] {
        assert_eq!(parse(bad).unwrap_err(), TokenError::Malformed, "{bad}");
    }
    assert_eq!(
        parse(&format!("AAAA.{p}.c2ln")).unwrap_err(),
        TokenError::MalformedHeader
    );
    assert_eq!(
        parse(&format!("{h}.AAAA.c2ln")).unwrap_err(),
        TokenError::MalformedClaims
    );
    let none = enc(&json!({"alg": "nOnE"}));
    for sig in ["", "c2ln"] {
        assert_eq!(
            parse(&format!("{none}.{p}.{sig}")).unwrap_err(),
            TokenError::AlgorithmNone
        );
    }
    let crit = enc(&json!({"alg": "RS256", "crit": ["exp"]}));
    assert_eq!(
        parse(&format!("{crit}.{p}.c2ln")).unwrap_err(),
        TokenError::UnsupportedHeader
    );
}

#[test]
fn token_types() {
    use TokenType::{AccessToken, Jwt, Unspecified};
    let not = |t: &str| Err(TokenError::UnacceptedType(t.into()));
    let cases: Vec<(Json, Result<TokenType, TokenError>)> = vec![
        (json!("JWT"), Ok(Jwt)),
        (json!("jwt"), Ok(Jwt)),
        (json!("application/jwt"), Ok(Jwt)),
        (json!("Application/JWT"), Ok(Jwt)),
        (json!("at+jwt"), Ok(AccessToken)),
        (json!("AT+JWT"), Ok(AccessToken)),
        (json!("application/at+jwt"), Ok(AccessToken)),
        (json!("secevent+jwt"), not("secevent+jwt")),
        (
            json!("application/secevent+jwt"),
            not("application/secevent+jwt"),
        ),
        (json!("id_token+jwt"), not("id_token+jwt")),
        (json!("dpop+jwt"), not("dpop+jwt")),
        (json!("logout+jwt"), not("logout+jwt")),
        (
            json!("token-introspection+jwt"),
            not("token-introspection+jwt"),
        ),
        (json!("JOSE"), not("JOSE")),
        (json!("text/jwt"), not("text/jwt")),
        (json!("application/at+jwt/x"), not("application/at+jwt/x")),
        (json!("application/"), not("application/")),
        (json!(""), not("")),
        (json!(" JWT"), not(" JWT")),
        (json!("at+jwt; charset=utf-8"), not("at+jwt; charset=utf-8")),
        (json!(null), Err(TokenError::MalformedType)),
        (json!(1), Err(TokenError::MalformedType)),
        (json!(["JWT"]), Err(TokenError::MalformedType)),
        (json!({"typ": "JWT"}), Err(TokenError::MalformedType)),
    ];
    let enc = |v: &Json| URL_SAFE_NO_PAD.encode(v.to_string());
    let p = enc(&base());
    for (typ, expected) in cases {
        let h = enc(&json!({"alg": "RS256", "typ": typ}));
        let got = parse(&format!("{h}.{p}.c2ln")).map(|parsed| parsed.typ);
        assert_eq!(got, expected, "{typ}");
    }
    let h = enc(&json!({"alg": "RS256"}));
    assert_eq!(parse(&format!("{h}.{p}.c2ln")).unwrap().typ, Unspecified);
    // Long values are cut and control characters escaped in the message.
    let long = format!("x\u{1b}{}", "y".repeat(100));
    let e = token_type(Some(&json!(long))).unwrap_err();
    assert_eq!(e.reason(), "token_type_not_accepted");
    assert!(e.to_string().contains("x\\u{1b}yyy"), "{e}");
    assert!(e.to_string().len() < 100, "{e}");
}

#[test]
fn issuer_may_require_access_token_type() {
    for (extra, typ, ok) in [
        ("", TokenType::Unspecified, true),
        ("", TokenType::Jwt, true),
        ("", TokenType::AccessToken, true),
        (
            "require_access_token_type: true\n",
            TokenType::AccessToken,
            true,
        ),
        ("require_access_token_type: true\n", TokenType::Jwt, false),
        (
            "require_access_token_type: true\n",
            TokenType::Unspecified,
            false,
        ),
    ] {
        let got = rules(extra).check_type(typ);
        assert_eq!(got.is_ok(), ok, "{extra} {typ:?}");
        if !ok {
            assert_eq!(got.unwrap_err().reason(), "access_token_type_required");
        }
    }
}

proptest::proptest! {
    /// Untrusted input never panics the parser, whatever its segments hold.
    #[test]
    fn parse_never_panics(s in "\\PC{0,300}") {
        let _ = parse(&s);
    }

    #[test]
    fn parse_never_panics_on_encoded_garbage(
        h in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        p in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        s in "[A-Za-z0-9_-]{0,40}",
    ) {
        let token = format!("{}.{}.{s}", URL_SAFE_NO_PAD.encode(h), URL_SAFE_NO_PAD.encode(p));
        let _ = parse(&token);
    }

    #[test]
    fn claim_rules_never_panic(exp in proptest::num::i64::ANY, iat in proptest::num::i64::ANY, nbf in proptest::num::f64::ANY) {
        let r = rules("max_lifetime_seconds: 60\n");
        let mut c = base();
        c["exp"] = json!(exp);
        c["iat"] = json!(iat);
        c["nbf"] = serde_json::Number::from_f64(nbf).map_or(Json::Null, Json::Number);
        let _ = check(&r, c);
    }
}

#[test]
fn allow_list() {
    let r = rules("");
    assert_eq!(r.algorithm("RS256").unwrap(), Algorithm::RS256);
    assert!(matches!(
        r.algorithm("HS256"),
        Err(TokenError::AlgorithmNotAllowed(_))
    ));
    assert!(matches!(
        r.algorithm("PS256"),
        Err(TokenError::AlgorithmNotAllowed(_))
    ));
}
