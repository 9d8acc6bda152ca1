//! The bearer token of the admin endpoint (`/sessions`, `/drain`).
//!
//! The data plane makes a fresh 256-bit token at every start and writes it to a file only
//! root can read (mode 0600 in a 0700 directory). `sluice-dataplane sessions` and `drain`
//! (the pod's preStop hook) read it from there. On a host-network pod, loopback is shared
//! with every process and pod of the node; the token keeps them out.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroizing;

/// Where the data plane writes its token by default.
pub const DEFAULT_TOKEN_FILE: &str = "/run/sluice/admin-token";

/// Failures handling the token file.
#[derive(Debug, Error)]
pub enum TokenError {
    #[error("writing the admin token to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "reading the admin token from {path}: {source} (run as the data plane's user, or pass --token-file)"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the admin token file {0} is empty or not a token")]
    Invalid(PathBuf),
}

/// A bearer token (64 hex digits), wiped from memory when dropped.
pub struct AdminToken(Zeroizing<String>);

impl AdminToken {
    /// A new token from the OS generator.
    pub fn generate() -> AdminToken {
        let bytes = Zeroizing::new(crate::host::seed());
        let mut hex = String::with_capacity(64);
        for b in bytes.iter() {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        AdminToken(Zeroizing::new(hex))
    }

    /// Writes the token to `path` (mode 0600; a missing parent directory is made 0700),
    /// replacing the file atomically.
    pub fn write_file(&self, path: &Path) -> Result<(), TokenError> {
        let err = |source| TokenError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
        }
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(self.0.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(err)?;
        fs::rename(&tmp, path).map_err(err)
    }

    /// Reads a token written by [`AdminToken::write_file`].
    pub fn read_file(path: &Path) -> Result<AdminToken, TokenError> {
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.to_owned(),
            source,
        })?);
        let token = text.trim();
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::Invalid(path.to_owned()));
        }
        Ok(AdminToken(Zeroizing::new(token.to_owned())))
    }

    /// The token as sent in `Authorization: Bearer …`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` header value carries this token (constant time in the
    /// token's bytes).
    pub fn accepts(&self, authorization: &[u8]) -> bool {
        let Some(presented) = authorization.strip_prefix(b"Bearer ") else {
            return false;
        };
        presented.ct_eq(self.0.as_bytes()).into()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn written_token_reads_back_private_and_checks() {
        let dir = std::env::temp_dir().join(format!("sluice-token-{}", std::process::id()));
        let path = dir.join("sub/admin-token");
        let t = AdminToken::generate();
        t.write_file(&path).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let back = AdminToken::read_file(&path).unwrap();
        assert_eq!(back.as_str(), t.as_str());
        let header = format!("Bearer {}", t.as_str());
        assert!(t.accepts(header.as_bytes()));
        assert!(!t.accepts(t.as_str().as_bytes()));
        assert!(!t.accepts(&header.as_bytes()[..header.len() - 1]));
        assert!(!t.accepts(format!("Bearer {}", AdminToken::generate().as_str()).as_bytes()));
        // A second start replaces the token.
        let t2 = AdminToken::generate();
        t2.write_file(&path).unwrap();
        assert_eq!(AdminToken::read_file(&path).unwrap().as_str(), t2.as_str());
        fs::write(&path, "short").unwrap();
        assert!(matches!(
            AdminToken::read_file(&path),
            Err(TokenError::Invalid(_))
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
