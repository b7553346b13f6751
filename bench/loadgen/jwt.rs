//! RS256 bearer tokens for the `jwt-*` scenarios.
//!
//! `loadgen mint-jwt` signs them ahead of the run and writes them to a file, with the
//! public key as a JWKS for cedar-gate's `jwks_file`: signing is never measured, and the
//! several `loadgen` runs of one benchmark (warm-up, null, cedar-gate) send the same tokens.
//! The `kid` is written into both files, so token and key set always agree; issuer and
//! audience must equal the issuer configured in cedar-gate (`scripts/bench.sh` passes the
//! same values to both).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// Sign `--count` RS256 tokens (`sub` = `user-N`) and write them with their JWKS.
#[derive(Debug, clap::Args)]
pub struct MintArgs {
    /// RSA private key (PEM, PKCS#1 or PKCS#8), e.g. from `openssl genrsa 2048`.
    #[arg(long)]
    key: PathBuf,
    /// Tokens to sign; token N has `sub` = `user-N`.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Token N's groups claim is `["team-{N % groups}"]`: the teams of
    /// `scripts/gen_policies.py --policies <groups>`.
    #[arg(long, default_value_t = 100)]
    groups: u64,
    /// `iss` (the issuer cedar-gate is configured with).
    #[arg(long, default_value = "https://idp.example.com")]
    issuer: String,
    /// `aud` (one of that issuer's `audiences`).
    #[arg(long, default_value = "https://models.example.com")]
    audience: String,
    /// `kid` of the key, in the token header and the JWKS.
    #[arg(long, default_value = "bench-rs256")]
    kid: String,
    /// `exp` - `iat` in seconds; must outlast the benchmark.
    #[arg(long, default_value_t = 3600)]
    lifetime: u64,
    /// Where to write the tokens, one a line (line N: `user-N`).
    #[arg(long)]
    tokens_out: PathBuf,
    /// Where to write the public key as a JWKS document.
    #[arg(long)]
    jwks_out: PathBuf,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    iat: u64,
    exp: u64,
    groups: [String; 1],
}

/// Signs the tokens (on every core: 10,000 RSA signatures take seconds) and writes both
/// files.
pub fn mint(args: &MintArgs) -> anyhow::Result<()> {
    if args.count == 0 || args.groups == 0 {
        bail!("--count and --groups must be at least 1");
    }
    let pem =
        std::fs::read(&args.key).with_context(|| format!("cannot read {}", args.key.display()))?;
    let key = EncodingKey::from_rsa_pem(&pem)
        .with_context(|| format!("{} is not an RSA private key", args.key.display()))?;
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256)?;
    jwk.common.key_id = Some(args.kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let jwks = serde_json::to_string_pretty(&JwkSet { keys: vec![jwk] })?;
    std::fs::write(&args.jwks_out, jwks + "\n")
        .with_context(|| format!("cannot write {}", args.jwks_out.display()))?;

    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(args.kid.clone());
    let iat = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let sign = |n: u64| {
        let claims = Claims {
            iss: &args.issuer,
            sub: format!("user-{n}"),
            aud: &args.audience,
            iat,
            exp: iat + args.lifetime,
            groups: [format!("team-{}", n % args.groups)],
        };
        jsonwebtoken::encode(&header, &claims, &key)
    };

    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let per_thread = args.count.div_ceil(threads);
    let chunks: Vec<anyhow::Result<Vec<String>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * per_thread)..((t + 1) * per_thread).min(args.count);
                s.spawn(move || range.map(sign).collect::<Result<Vec<_>, _>>())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(chunk) => chunk.map_err(anyhow::Error::from),
                Err(_) => Err(anyhow::anyhow!("a signing thread panicked")),
            })
            .collect()
    });
    let file = std::fs::File::create(&args.tokens_out)
        .with_context(|| format!("cannot write {}", args.tokens_out.display()))?;
    let mut out = BufWriter::new(file);
    for chunk in chunks {
        for token in chunk? {
            writeln!(out, "{token}")?;
        }
    }
    out.flush()?;
    eprintln!(
        "signed {} RS256 tokens (kid `{}`) in {:.1} s: {}, {}",
        args.count,
        args.kid,
        started.elapsed().as_secs_f64(),
        args.tokens_out.display(),
        args.jwks_out.display(),
    );
    Ok(())
}
