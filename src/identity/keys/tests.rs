//! Keys: the CLI writes the store, the server reads it, each refusal has its reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::cli::keys::{IdArgs, IssueArgs, KeysArgs, KeysCommand, ListArgs, RotateArgs, run_to};
use crate::request::HttpRequest;

fn issue_args(store: &std::path::Path, expires: &str) -> KeysArgs {
    KeysArgs {
        store: Some(store.to_owned()),
        config: None,
        command: KeysCommand::Issue(IssueArgs {
            principal: r#"App::"notebook-alice""#.into(),
            groups: vec!["data-science".into(), " ml ".into()],
            owner: "alice@example.com".into(),
            expires: expires.into(),
        }),
    }
}

fn cmd(store: &std::path::Path, command: KeysCommand, now: i64) -> String {
    let mut out = Vec::new();
    run_to(
        &KeysArgs {
            store: Some(store.to_owned()),
            config: None,
            command,
        },
        now,
        &mut out,
    )
    .unwrap();
    String::from_utf8(out).unwrap()
}

fn bearer(key: &str) -> HttpRequest {
    HttpRequest {
        headers: vec![("authorization".into(), format!("Bearer {key}").into())],
        ..Default::default()
    }
}

fn at(unix: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(unix as u64)
}

#[test]
fn issue_use_rotate_revoke_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("keys.json");
    let now = 1_800_000_000;
    let mut out = Vec::new();
    run_to(&issue_args(&store, "30d"), now, &mut out).unwrap();
    let key = String::from_utf8(out).unwrap().trim().to_owned();
    assert!(
        key.starts_with("cgk_") && key.len() == 4 + 16 + 1 + 43,
        "{key}"
    );
    let id = key[4..20].to_owned();
    // The store holds no secret.
    let text = std::fs::read_to_string(&store).unwrap();
    assert!(!text.contains(&key[21..]), "{text}");
    assert!(text.contains("sha256:"), "{text}");

    let keys = ApiKeys::new(&ApiKeysConfig {
        store: store.clone(),
        header: None,
        prefix: None,
        max_lifetime_seconds: None,
    });
    let k = keys.resolve(&bearer(&key), at(now + 60)).unwrap().unwrap();
    assert_eq!(k.principal.to_string(), r#"App::"notebook-alice""#);
    assert_eq!(k.groups, vec!["data-science".to_owned(), "ml".to_owned()]);
    let ctx = context(&k, now + 60);
    assert!(ctx.contains(&("api_key_age_seconds".into(), Value::Long(60))));
    assert!(ctx.contains(&("api_key_id".into(), Value::str(&id))));

    // A JWT or another scheme is not a key.
    assert_eq!(keys.resolve(&bearer("eyJ.a.b"), at(now)).unwrap(), None);
    // Refusals, each with its reason.
    let mut tampered = key.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let unknown = format!("cgk_0000000000000000_{}", &key[21..]);
    for (value, reason) in [
        (&key[..key.len() - 3], "api_key_malformed"),
        (&format!("{key}A"), "api_key_malformed"),
        (&tampered, "api_key_wrong_secret"),
        (&unknown, "api_key_unknown"),
    ] {
        let e = keys.resolve(&bearer(value), at(now)).unwrap_err();
        assert_eq!(e.reason(), reason, "{value}");
        assert!(!e.to_string().contains(&key[21..]), "{e}");
    }
    assert_eq!(
        keys.resolve(&bearer(&key), at(now + 31 * 86_400))
            .unwrap_err()
            .reason(),
        "api_key_expired"
    );

    // Rotate: both secrets work for the overlap, then only the new one.
    let rotated = cmd(
        &store,
        KeysCommand::Rotate(RotateArgs {
            id: id.clone(),
            overlap: "1h".into(),
        }),
        now + 100,
    )
    .trim()
    .to_owned();
    assert_ne!(rotated, key);
    keys.reload();
    assert!(keys.resolve(&bearer(&rotated), at(now + 200)).is_ok());
    assert!(keys.resolve(&bearer(&key), at(now + 200)).is_ok());
    assert_eq!(
        keys.resolve(&bearer(&key), at(now + 100 + 3600))
            .unwrap_err()
            .reason(),
        "api_key_wrong_secret"
    );

    // List names no secret; revoke refuses it.
    let listed = cmd(
        &store,
        KeysCommand::List(ListArgs { json: true }),
        now + 300,
    );
    assert!(
        listed.contains(&id) && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&rotated[21..]) && !listed.contains("sha256"));
    cmd(
        &store,
        KeysCommand::Revoke(IdArgs { id: id.clone() }),
        now + 400,
    );
    keys.reload();
    assert_eq!(
        keys.resolve(&bearer(&rotated), at(now + 500))
            .unwrap_err()
            .reason(),
        "api_key_revoked"
    );
    let status = keys.status(at(now + 500)).to_string();
    assert!(status.contains(r#""revoked":1"#), "{status}");
}

#[test]
fn lifetime_bounds_and_a_bad_store_keeps_the_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("keys.json");
    let now = 1_800_000_000;
    let mut out = Vec::new();
    assert!(run_to(&issue_args(&store, "91d"), now, &mut out).is_err());
    assert!(run_to(&issue_args(&store, "soon"), now, &mut out).is_err());
    run_to(&issue_args(&store, "5d"), now, &mut out).unwrap();
    let key = String::from_utf8(out).unwrap().trim().to_owned();
    let cfg = ApiKeysConfig {
        store: store.clone(),
        header: Some("x-gateway-key".into()),
        prefix: None,
        max_lifetime_seconds: None,
    };
    let keys = Arc::new(ApiKeys::new(&cfg));
    let req = |v: &str| HttpRequest {
        headers: vec![("x-gateway-key".into(), v.into())],
        ..Default::default()
    };
    assert!(keys.resolve(&req(&key), at(now)).unwrap().is_some());
    // In a dedicated header, another prefix is a malformed key.
    let other = key.replacen("cgk_", "sk_", 1);
    assert_eq!(
        keys.resolve(&req(&other), at(now)).unwrap_err().reason(),
        "api_key_malformed"
    );
    let metrics = keys.render_metrics(at(now));
    assert!(
        metrics.contains("cedar_gate_api_keys_expiring_soon 1"),
        "{metrics}"
    );
    // A shorter maximum refuses the 5-day key per request.
    let strict = ApiKeys::new(&ApiKeysConfig {
        max_lifetime_seconds: Some(crate::identity::PositiveSeconds::try_from(86_400).unwrap()),
        ..cfg.clone()
    });
    assert_eq!(
        strict.resolve(&req(&key), at(now)).unwrap_err().reason(),
        "api_key_lifetime_exceeded"
    );
    // Garbage in the store: the last good store stays, the failure shows.
    std::fs::write(&store, "{not json").unwrap();
    keys.reload();
    assert!(keys.resolve(&req(&key), at(now)).unwrap().is_some());
    assert!(
        keys.render_metrics(at(now))
            .contains("cedar_gate_api_key_store_read_ok 0")
    );
    assert!(!format!("{keys:?}").contains(&key[21..]));
}

/// The watcher sees an issued key within a second.
#[test]
fn a_store_change_is_seen_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("keys.json");
    StoreFile::empty().write(&store).unwrap();
    let keys = Arc::new(ApiKeys::new(&ApiKeysConfig {
        store: store.clone(),
        header: None,
        prefix: None,
        max_lifetime_seconds: None,
    }));
    let _watch = keys.watch().unwrap();
    let now = crate::identity::token::unix_now(SystemTime::now());
    let mut out = Vec::new();
    run_to(&issue_args(&store, "1d"), now, &mut out).unwrap();
    let key = String::from_utf8(out).unwrap().trim().to_owned();
    let started = std::time::Instant::now();
    while keys.resolve(&bearer(&key), SystemTime::now()).is_err()
        && started.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
