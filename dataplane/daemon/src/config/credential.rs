//! Credentials that never print and are wiped when dropped.

use std::fmt;

use sluice_proto::v1 as pb;
use zeroize::Zeroize;

use super::CompiledError;

/// A user's credential fields that do not make one credential.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("NT hash is {0} octets long, 16 expected")]
    NtHashLength(usize),
    #[error("neither a password nor an NT hash is set")]
    Neither,
    #[error("both a password and an NT hash are set")]
    Both,
}

/// A password that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) Vec<u8>);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An NtPasswordHash (RFC 2759 §8.3: MD4 of the UTF-16LE password) that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct NtHash(pub(super) [u8; 16]);

impl NtHash {
    pub fn expose(&self) -> &[u8; 16] {
        &self.0
    }
}

impl Drop for NtHash {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for NtHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What a user's login is checked against: the cleartext password, or only its
/// NT hash (enough for MS-CHAPv1/v2 and their MPPE keys; PAP and CHAP-MD5 fail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Password(Secret),
    NtHash(NtHash),
}

impl Credential {
    /// The form the PPP engine takes.
    pub fn as_ppp(&self) -> sluice_ppp::Credential<'_> {
        match self {
            Credential::Password(p) => sluice_ppp::Credential::Password(p.expose()),
            Credential::NtHash(h) => sluice_ppp::Credential::NtHash(h.expose()),
        }
    }

    /// "password set" or "NT hash set", for summaries.
    pub fn describe(&self) -> &'static str {
        match self {
            Credential::Password(_) => "password set",
            Credential::NtHash(_) => "NT hash set",
        }
    }

    /// Exactly one of `password` and `nt_hash` (16 octets) must be set.
    pub(super) fn from_proto(u: &pb::User) -> Result<Credential, CompiledError> {
        let problem = match (u.password.is_empty(), u.nt_hash.is_empty()) {
            (false, true) => return Ok(Credential::Password(Secret(u.password.clone()))),
            (true, false) => match <[u8; 16]>::try_from(u.nt_hash.as_slice()) {
                Ok(h) => return Ok(Credential::NtHash(NtHash(h))),
                Err(_) => CredentialError::NtHashLength(u.nt_hash.len()),
            },
            (true, true) => CredentialError::Neither,
            (false, false) => CredentialError::Both,
        };
        Err(CompiledError::Credential {
            user: u.username.clone(),
            problem,
        })
    }
}
