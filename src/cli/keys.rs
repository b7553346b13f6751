//! `cedar-gate keys issue|list|revoke|rotate`: edit the key store file.
//!
//! The commands write the store atomically; a running server picks the change
//! up within a second. A key is printed once, by `issue` and `rotate`, on
//! standard output and nowhere else; the store keeps its hash only.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::{Args, Subcommand};

use crate::identity::keys::format;
use crate::identity::keys::store::{KeyEntry, SecretEntry, StoreFile};

/// `cedar-gate keys ...`
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The key store file (default: `api_keys.store` of `--config`).
    #[arg(long, global = true, env = "CEDAR_GATE_KEY_STORE")]
    pub store: Option<PathBuf>,
    /// The server's config file, for `api_keys` (store, prefix, maximum lifetime).
    #[arg(long, global = true, env = "CEDAR_GATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// Key store commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key; prints it once.
    Issue(IssueArgs),
    /// List keys (never a secret or a hash).
    List(ListArgs),
    /// Revoke a key now.
    Revoke(IdArgs),
    /// Give a key a new secret (printed once); the old one keeps working for the overlap.
    Rotate(RotateArgs),
}

/// `keys issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The Cedar principal, e.g. `App::"notebook-alice"`.
    #[arg(long)]
    pub principal: String,
    /// Groups (comma-separated `Group` ids).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Who is responsible for the key.
    #[arg(long)]
    pub owner: String,
    /// Lifetime: `<n>d`, `<n>h`, `<n>m` or `<n>s` (at most the configured maximum).
    #[arg(long)]
    pub expires: String,
}

/// `keys list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A key id.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The key id (16 hex digits).
    pub id: String,
}

/// `keys rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The key id (16 hex digits).
    pub id: String,
    /// How long the old secret keeps working (default `24h`; `0s` ends it now).
    #[arg(long, default_value = "24h")]
    pub overlap: String,
}

/// Why a keys command failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysCliError {
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// The config could not be loaded.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] crate::identity::keys::store::StoreError),
    /// No randomness.
    #[error(transparent)]
    Random(#[from] format::RandomError),
}

/// Runs a keys command; returns the exit code.
pub fn run(args: &KeysArgs) -> i32 {
    let mut out = std::io::stdout();
    match run_to(args, now(), &mut out) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn now() -> i64 {
    crate::identity::token::unix_now(std::time::SystemTime::now())
}

/// What every subcommand works with.
struct Ctx {
    store: std::path::PathBuf,
    prefix: String,
    max_lifetime: i64,
    now: i64,
}

/// [`run`] writing to `out` at time `now` (tests).
pub fn run_to(
    args: &KeysArgs,
    now: i64,
    out: &mut impl std::io::Write,
) -> Result<(), KeysCliError> {
    let cfg = match &args.config {
        Some(path) => crate::config::Config::load(path)?.api_keys,
        None => None,
    };
    let store = args
        .store
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.store.clone()))
        .ok_or_else(|| {
            KeysCliError::Usage(
                "no key store: pass --store or a --config with `api_keys.store`".to_owned(),
            )
        })?;
    let ctx = Ctx {
        store,
        prefix: cfg
            .as_ref()
            .map_or(format::DEFAULT_PREFIX, |c| c.prefix())
            .to_owned(),
        max_lifetime: cfg.as_ref().map_or(
            i64::try_from(crate::identity::keys::DEFAULT_MAX_LIFETIME_SECONDS).unwrap_or(i64::MAX),
            |c| c.max_lifetime(),
        ),
        now,
    };
    let text = match &args.command {
        KeysCommand::Issue(a) => issue(&ctx, a)?,
        KeysCommand::List(a) => list(&ctx, a)?,
        KeysCommand::Revoke(a) => revoke(&ctx, a)?,
        KeysCommand::Rotate(a) => rotate(&ctx, a)?,
    };
    out.write_all(text.as_bytes())
        .map_err(|e| KeysCliError::Usage(format!("cannot write output: {e}")))
}

/// `issue`: a new key; returns it (the only time it is shown).
fn issue(ctx: &Ctx, a: &IssueArgs) -> Result<String, KeysCliError> {
    cedar_policy::EntityUid::from_str(&a.principal).map_err(|e| {
        KeysCliError::Usage(format!(
            "--principal `{}` is not a Cedar entity uid such as App::\"notebook-alice\": {e}",
            a.principal
        ))
    })?;
    let lifetime = duration(&a.expires)?;
    if lifetime <= 0 || lifetime > ctx.max_lifetime {
        return Err(KeysCliError::Usage(format!(
            "--expires {} is not between 1 second and the maximum lifetime ({} s)",
            a.expires, ctx.max_lifetime
        )));
    }
    let now = ctx.now;
    let mut file = load_or_empty(&ctx.store)?;
    let mut id = format::new_id()?;
    while file.keys.iter().any(|k| k.id == id) {
        id = format::new_id()?;
    }
    let secret = format::new_secret()?;
    let groups: Vec<String> = a
        .groups
        .iter()
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
        .collect();
    file.keys.push(KeyEntry {
        id: id.clone(),
        principal: a.principal.clone(),
        groups,
        owner: a.owner.clone(),
        created: now,
        expires: now + lifetime,
        revoked: None,
        secrets: vec![SecretEntry {
            hash: format::hash_text(&format::hash(&id, &secret)),
            created: now,
            not_after: None,
        }],
    });
    file.write(&ctx.store)?;
    eprintln!(
        "issued key {id} for {} (owner {}), expires {}; it is shown once, below",
        a.principal,
        a.owner,
        rfc3339(now + lifetime)
    );
    Ok(format!("{}\n", format::render(&ctx.prefix, &id, &secret)))
}

/// `list`: every key with its state, never a secret or hash.
fn list(ctx: &Ctx, a: &ListArgs) -> Result<String, KeysCliError> {
    let file = load_or_empty(&ctx.store)?;
    let now = ctx.now;
    let mut text = String::new();
    if !a.json {
        text.push_str(&format!(
            "{:<16}  {:<8}  {:<20}  {:<20}  {:<30}  {:<20}  GROUPS\n",
            "ID", "STATE", "CREATED", "EXPIRES", "PRINCIPAL", "OWNER"
        ));
    }
    for k in &file.keys {
        let state = if k.revoked.is_some_and(|t| t <= now) {
            "revoked"
        } else if k.expires <= now {
            "expired"
        } else {
            "active"
        };
        let line = if a.json {
            serde_json::json!({
                "id": k.id, "state": state, "principal": k.principal,
                "groups": k.groups, "owner": k.owner,
                "created": rfc3339(k.created), "expires": rfc3339(k.expires),
                "revoked": k.revoked.map(rfc3339),
                "secrets": k.secrets.len(),
            })
            .to_string()
        } else {
            format!(
                "{:<16}  {:<8}  {:<20}  {:<20}  {:<30}  {:<20}  {}",
                k.id,
                state,
                rfc3339(k.created),
                rfc3339(k.expires),
                k.principal,
                k.owner,
                k.groups.join(",")
            )
        };
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

/// `revoke`: from now on (revoking twice keeps the first time).
fn revoke(ctx: &Ctx, a: &IdArgs) -> Result<String, KeysCliError> {
    let mut file = StoreFile::read(&ctx.store)?.0;
    let key = find(&mut file, &a.id)?;
    if key.revoked.is_none() {
        key.revoked = Some(ctx.now);
    }
    file.write(&ctx.store)?;
    eprintln!("revoked key {}", a.id);
    Ok(String::new())
}

/// `rotate`: a new secret for the same key id; returns the new key.
fn rotate(ctx: &Ctx, a: &RotateArgs) -> Result<String, KeysCliError> {
    let overlap = duration(&a.overlap)?;
    if overlap < 0 {
        return Err(KeysCliError::Usage(
            "--overlap must not be negative".to_owned(),
        ));
    }
    let now = ctx.now;
    let mut file = StoreFile::read(&ctx.store)?.0;
    let key = find(&mut file, &a.id)?;
    if key.revoked.is_some() {
        return Err(KeysCliError::Usage(format!(
            "key {} is revoked; issue a new one",
            a.id
        )));
    }
    let secret = format::new_secret()?;
    // Old secrets end after the overlap (or sooner, if already set); ended
    // ones are dropped.
    let until = now + overlap;
    for s in &mut key.secrets {
        s.not_after = Some(s.not_after.map_or(until, |t| t.min(until)));
    }
    key.secrets.retain(|s| s.not_after.is_none_or(|t| t > now));
    key.secrets.insert(
        0,
        SecretEntry {
            hash: format::hash_text(&format::hash(&key.id, &secret)),
            created: now,
            not_after: None,
        },
    );
    let id = key.id.clone();
    file.write(&ctx.store)?;
    eprintln!(
        "rotated key {id}; the old secret works until {}; the new key is shown once, below",
        rfc3339(until)
    );
    Ok(format!("{}\n", format::render(&ctx.prefix, &id, &secret)))
}

fn load_or_empty(path: &Path) -> Result<StoreFile, KeysCliError> {
    if !path.exists() {
        return Ok(StoreFile::empty());
    }
    Ok(StoreFile::read(path)?.0)
}

fn find<'a>(file: &'a mut StoreFile, id: &str) -> Result<&'a mut KeyEntry, KeysCliError> {
    file.keys
        .iter_mut()
        .find(|k| k.id == id)
        .ok_or_else(|| KeysCliError::Usage(format!("no key `{id}` in the store")))
}

/// `<n>d|h|m|s` in seconds.
fn duration(text: &str) -> Result<i64, KeysCliError> {
    let bad = || {
        KeysCliError::Usage(format!(
            "`{text}` is not a duration like 30d, 12h, 15m or 60s"
        ))
    };
    let (n, unit) = text
        .split_at_checked(text.len().saturating_sub(1))
        .ok_or_else(bad)?;
    let n: i64 = n.parse().map_err(|_| bad())?;
    let mult = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

fn rfc3339(unix: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    crate::vocab::rfc3339_seconds(t)
}
