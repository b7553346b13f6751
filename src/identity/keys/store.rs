//! The key store file: every key's id, the hash of its secret(s), principal,
//! groups, owner, times and revocation. No secret is ever in it, so it can
//! live in Git or a Kubernetes Secret alike.
//!
//! ```json
//! {"version": 1, "keys": [{"id": "3f1c0a9b2d4e6f70", "principal": "App::\"notebook-alice\"",
//!   "groups": ["data-science"], "owner": "alice@example.com", "created": 1765000000,
//!   "expires": 1772776000, "revoked": null,
//!   "secrets": [{"hash": "sha256:…", "created": 1765000000, "not_after": null}]}]}
//! ```
//! Times are Unix seconds. `secrets[0]` is the current secret; a rotation
//! prepends a new one and gives the old one a `not_after` (the overlap window).

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::EntityUid;
use serde::{Deserialize, Serialize};

use crate::identity::keys::{ApiKeyIdentity, format};

/// Largest store file read.
pub const MAX_STORE_BYTES: u64 = 16 * 1024 * 1024;

/// The file as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    /// Format version (1).
    pub version: u32,
    /// The keys.
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
}

/// One key as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// 16 hex digits.
    pub id: String,
    /// The Cedar principal, e.g. `App::"notebook-alice"`.
    pub principal: String,
    /// `Group` ids the principal is a member of while using this key.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Who is responsible for the key (a person or team).
    pub owner: String,
    /// Issued at.
    pub created: i64,
    /// Refused from this time on.
    pub expires: i64,
    /// Refused from this time on, when revoked.
    #[serde(default)]
    pub revoked: Option<i64>,
    /// Current secret first.
    pub secrets: Vec<SecretEntry>,
}

/// One secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretEntry {
    /// `sha256:<hex>` of the secret (see [`format::hash`]).
    pub hash: String,
    /// When it was issued.
    pub created: i64,
    /// After a rotation: the end of the overlap window.
    #[serde(default)]
    pub not_after: Option<i64>,
}

/// Why a store file cannot be used (the last good store stays in force).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Missing or unreadable.
    #[error("cannot read the key store `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Larger than [`MAX_STORE_BYTES`].
    #[error("the key store `{0}` is larger than {MAX_STORE_BYTES} bytes")]
    TooLarge(String),
    /// Not the format.
    #[error("the key store `{path}` is not valid: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong (never a secret: the file holds none).
        message: String,
    },
    /// Could not be written (CLI).
    #[error("cannot write the key store `{path}`: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A key ready for lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Who the key stands for: what a request presenting it resolves to,
    /// shared, not rebuilt per request.
    pub identity: Arc<ApiKeyIdentity>,
    /// Revoked at.
    pub revoked: Option<i64>,
    /// (digest, not_after), current first.
    pub secrets: Vec<([u8; 32], Option<i64>)>,
}

/// The store in force: keys by id (one hash lookup per request).
#[derive(Debug, Default)]
pub struct Index {
    /// Keys by id.
    pub keys: HashMap<String, Arc<KeyRecord>>,
    /// SHA-256 of the file, to skip identical re-reads.
    pub content_hash: [u8; 32],
}

// === impl StoreFile ===

impl StoreFile {
    /// Reads and parses a store file (without compiling it).
    pub fn read(path: &Path) -> Result<(Self, [u8; 32]), StoreError> {
        let (bytes, hash) = Self::read_bytes(path)?;
        Ok((Self::parse(&bytes, path)?, hash))
    }

    /// The file's bytes, bounded, and their SHA-256: what a reload compares
    /// before parsing anything.
    pub fn read_bytes(path: &Path) -> Result<(Vec<u8>, [u8; 32]), StoreError> {
        use sha2::Digest;
        use std::io::Read;
        let shown = || path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| StoreError::Read {
            path: shown(),
            source,
        })?;
        let mut bytes = Vec::new();
        file.take(MAX_STORE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| StoreError::Read {
                path: shown(),
                source,
            })?;
        if bytes.len() as u64 > MAX_STORE_BYTES {
            return Err(StoreError::TooLarge(shown()));
        }
        let hash: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        Ok((bytes, hash))
    }

    /// Parses the bytes of the store file at `path` (named in errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, StoreError> {
        let file: StoreFile = serde_json::from_slice(bytes).map_err(|e| StoreError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        if file.version != 1 {
            return Err(StoreError::Invalid {
                path: path.display().to_string(),
                message: format!("`version` is {}, expected 1", file.version),
            });
        }
        Ok(file)
    }

    /// An empty store (`keys issue` on a file that does not exist yet).
    pub fn empty() -> Self {
        Self {
            version: 1,
            keys: Vec::new(),
        }
    }

    /// Compiles the entries; one bad entry refuses the whole file, so a
    /// half-understood store never replaces a good one.
    pub fn compile(&self, path: &Path, content_hash: [u8; 32]) -> Result<Index, StoreError> {
        let invalid = |message: String| StoreError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let mut keys = HashMap::with_capacity(self.keys.len());
        for (i, k) in self.keys.iter().enumerate() {
            let at = format!("keys[{i}] (`{}`)", k.id.escape_debug());
            if k.id.len() != format::ID_LEN
                || !k
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(invalid(format!(
                    "{at}: `id` must be 16 lower-case hex digits"
                )));
            }
            let principal = EntityUid::from_str(&k.principal).map_err(|e| {
                invalid(format!("{at}: `principal` is not a Cedar entity uid: {e}"))
            })?;
            if k.secrets.is_empty() {
                return Err(invalid(format!("{at}: no `secrets`")));
            }
            let mut secrets = Vec::with_capacity(k.secrets.len());
            for s in &k.secrets {
                let digest = format::parse_hash(&s.hash)
                    .ok_or_else(|| invalid(format!("{at}: a `hash` is not `sha256:<64 hex>`")))?;
                secrets.push((digest, s.not_after));
            }
            for g in &k.groups {
                if g.is_empty() || g.chars().any(char::is_control) {
                    return Err(invalid(format!(
                        "{at}: a group name is empty or has control characters"
                    )));
                }
            }
            let record = KeyRecord {
                identity: Arc::new(ApiKeyIdentity {
                    id: k.id.clone(),
                    principal,
                    groups: k.groups.clone(),
                    owner: k.owner.clone(),
                    created: k.created,
                    expires: k.expires,
                }),
                revoked: k.revoked,
                secrets,
            };
            if keys.insert(k.id.clone(), Arc::new(record)).is_some() {
                return Err(invalid(format!("{at}: `id` is used twice")));
            }
        }
        Ok(Index { keys, content_hash })
    }

    /// Writes the store atomically: a temp file in the same directory, then a
    /// rename, so the server never reads half a file.
    pub fn write(&self, path: &Path) -> Result<(), StoreError> {
        let shown = path.display().to_string();
        let write_err = |source: std::io::Error| StoreError::Write {
            path: shown.clone(),
            source,
        };
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| write_err(std::io::Error::other(e)))?;
        text.push('\n');
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "keys.json".to_owned());
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            write_err(e)
        })
    }
}
