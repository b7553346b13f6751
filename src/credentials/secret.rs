//! A secret value: what a credential file holds, or a header built from it.
//!
//! The type has no `Display`, no `Serialize`, and a `Debug` that prints
//! `<redacted>`, so a secret cannot reach a log line, an audit event, `/status`
//! or a panic message by formatting the struct that holds it. The one way out
//! is [`Secret::expose`], called where the header is put into the answer to
//! Envoy.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Largest credential file read, in bytes. Provider keys are < 200 bytes and
/// OAuth access tokens a few KB; anything larger is not a header value.
pub const MAX_SECRET_BYTES: u64 = 16 * 1024;

/// A secret string. Cloning shares it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a secret file could not be used. Messages never contain its content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The file could not be opened or read (missing, permissions, ...).
    #[error("cannot read `{path}`: {message}")]
    Unreadable {
        /// The file.
        path: String,
        /// The I/O error's kind, never content.
        message: String,
    },
    /// The file is larger than [`MAX_SECRET_BYTES`].
    #[error("`{path}` is larger than {MAX_SECRET_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// Nothing but whitespace.
    #[error("`{path}` is empty")]
    Empty {
        /// The file.
        path: String,
    },
    /// A byte that cannot be in an HTTP header value (a control character,
    /// a line break inside the value, non-ASCII): it would split or corrupt
    /// the header.
    #[error("`{path}` holds a byte that cannot be in a header value (at offset {offset})")]
    NotHeaderSafe {
        /// The file.
        path: String,
        /// Where (the offset, never the byte).
        offset: usize,
    },
}

// === impl SecretError ===

impl SecretError {
    /// A fixed code for metrics labels and `/status`.
    pub fn reason(&self) -> &'static str {
        match self {
            SecretError::Unreadable { .. } => "unreadable",
            SecretError::TooLarge { .. } => "too_large",
            SecretError::Empty { .. } => "empty",
            SecretError::NotHeaderSafe { .. } => "not_header_safe",
        }
    }
}

// === impl Secret ===

impl Secret {
    /// Wraps a value already known to be header-safe.
    pub(crate) fn new(value: String) -> Self {
        Self(Arc::from(value))
    }

    /// The value itself: only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A SHA-256 of the value, to tell whether a re-read changed it without
    /// keeping a second copy around. Never shown anywhere.
    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// Reads a secret file: bounded, surrounding whitespace (the trailing
    /// newline `kubectl create secret --from-file` and editors leave) trimmed,
    /// and refused when it could not be a header value.
    pub fn read_file(path: &Path) -> Result<Self, SecretError> {
        use std::io::Read;
        let shown = path.display().to_string();
        let unreadable = |e: std::io::Error| SecretError::Unreadable {
            path: shown.clone(),
            message: e.kind().to_string(),
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        file.take(MAX_SECRET_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > MAX_SECRET_BYTES {
            return Err(SecretError::TooLarge { path: shown });
        }
        Self::from_bytes(&bytes, &shown)
    }

    /// [`Secret::read_file`] on bytes already read.
    pub(crate) fn from_bytes(bytes: &[u8], shown: &str) -> Result<Self, SecretError> {
        let start = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .ok_or_else(|| SecretError::Empty {
                path: shown.to_owned(),
            })?;
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(start, |e| e + 1);
        let trimmed = bytes.get(start..end).unwrap_or_default();
        // Visible ASCII and inner spaces only: a CR or LF would let the file
        // add headers, and Envoy refuses other control bytes anyway.
        if let Some(offset) = trimmed.iter().position(|b| !(b' '..=b'~').contains(b)) {
            return Err(SecretError::NotHeaderSafe {
                path: shown.to_owned(),
                offset: start + offset,
            });
        }
        // All visible ASCII: valid UTF-8.
        let text = String::from_utf8_lossy(trimmed).into_owned();
        Ok(Self::new(text))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_refuses_unsafe_bytes_without_showing_them() {
        let s = Secret::from_bytes(b"  sk-abc123\n", "f").unwrap();
        assert_eq!(s.expose(), "sk-abc123");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(
            Secret::from_bytes(b"\n \n", "f").unwrap_err().reason(),
            "empty"
        );
        let e = Secret::from_bytes(b"sk-abc\r\nx-evil: 1", "f").unwrap_err();
        assert_eq!(e.reason(), "not_header_safe");
        assert!(!e.to_string().contains("sk-abc"), "{e}");
        let e = Secret::from_bytes("sk-é".as_bytes(), "f").unwrap_err();
        assert_eq!(e.reason(), "not_header_safe");
    }

    #[test]
    fn file_errors_name_the_file_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = Secret::read_file(&missing).unwrap_err();
        assert_eq!(e.reason(), "unreadable");
        assert!(e.to_string().contains("missing"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_SECRET_BYTES as usize + 1]).unwrap();
        assert_eq!(Secret::read_file(&big).unwrap_err().reason(), "too_large");
    }
}
