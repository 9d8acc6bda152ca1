//! The proposal grammar (strongSwan's IKEv1 syntax: algorithm words joined by `-`), the one
//! parser of `spec.l2tp.ipsec.ikeProposals`/`espProposals`, of the client's `--ike-proposal`
//! and `--esp-proposal`, and of the defaults.
//!
//! A proposal accepts every combination of its algorithms (`aes128-aes256-sha1-modp2048` is
//! AES-128 and AES-256, each with SHA-1 and MODP2048):
//!
//! * IKE (Phase 1, RFC 2409 §5): at least one encryption, one hash (integrity and PRF) and
//!   one DH group. IKEv1 has no AEAD ciphers.
//! * ESP (Phase 2, RFC 2409 §5.5): at least one encryption. Integrity is required when a
//!   non-GCM cipher is listed (it is used with those) and refused when only AES-GCM is
//!   listed (RFC 4106 §8.4: GCM authenticates by itself). Groups mean PFS with one of them;
//!   without groups the proposal is without PFS.
//! * Words are case-insensitive; each may appear once; `md5` only when allowed; at most
//!   [`MAX_PROPOSAL_TOKENS`] words per proposal and [`MAX_PROPOSALS`] proposals per list.

use std::fmt;

use crate::cipher::{AesKeyLen, Cipher};
use crate::dh::Group;
use crate::prf::HashAlg;
use crate::sa::{EspAuth, EspCipher};

/// Most algorithm words in one proposal: every word once (the default ESP proposal with
/// PFS has 17).
pub const MAX_PROPOSAL_TOKENS: usize = TOKENS.len();
/// Most proposals in one list (`ikeProposals`, `espProposals`).
pub const MAX_PROPOSALS: usize = 16;

/// One accepted Phase 1 proposal: any combination of its algorithms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeProposal {
    /// Encryption algorithms.
    pub ciphers: Vec<Cipher>,
    /// Hash algorithms.
    pub hashes: Vec<HashAlg>,
    /// DH groups.
    pub groups: Vec<Group>,
}

/// One accepted ESP proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspProposal {
    /// Encryption algorithms.
    pub ciphers: Vec<EspCipher>,
    /// Integrity algorithms for the non-AEAD ciphers.
    pub auths: Vec<EspAuth>,
    /// PFS groups: empty means the proposal is without PFS, otherwise PFS with one of them.
    pub groups: Vec<Group>,
}

/// Which list a proposal belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalKind {
    /// Phase 1 (ISAKMP SA).
    Ike,
    /// Phase 2 (ESP SA).
    Esp,
}

/// A class of algorithm a proposal needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgorithmClass {
    /// Encryption.
    Encryption,
    /// Integrity (the IKE hash is also the PRF).
    Integrity,
    /// Diffie-Hellman group.
    DhGroup,
}

/// Why a proposal was refused. Displays as a phrase that follows the field's name
/// (`espProposals[1] lists sha1 twice`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    /// Nothing at all.
    #[error("is empty")]
    Empty,
    /// More than [`MAX_PROPOSAL_TOKENS`] words.
    #[error("has {0} algorithms, at most {MAX_PROPOSAL_TOKENS} are allowed")]
    TooManyTokens(usize),
    /// `aes128--sha1`, or a leading or trailing dash.
    #[error("has an empty algorithm (separate algorithms with single dashes)")]
    EmptyToken,
    /// A word that names no algorithm of this kind of proposal.
    #[error("unknown algorithm {token:?} ({})", unknown_hint(*.kind, .token))]
    Unknown {
        /// The list the proposal belongs to.
        kind: ProposalKind,
        /// The word, lower-cased.
        token: String,
    },
    /// The same word twice.
    #[error("lists {0} twice")]
    Repeated(String),
    /// `md5` without permission.
    #[error("uses md5, which is refused: MD5 is broken (practical collisions)")]
    Md5,
    /// A class of algorithm is missing.
    #[error("has no {} (one of {}){}", class_name(*.class), words(*.kind, *.class).join(", "),
        if *.kind == ProposalKind::Esp && *.class == AlgorithmClass::Integrity {
            ", which non-GCM ciphers need"
        } else { "" })]
    Missing {
        /// The list the proposal belongs to.
        kind: ProposalKind,
        /// What is missing.
        class: AlgorithmClass,
    },
    /// Integrity listed with AES-GCM ciphers only.
    #[error(
        "lists an integrity algorithm with only AES-GCM ciphers: GCM authenticates by itself, \
         so GCM-only proposals take none"
    )]
    IntegrityWithAead,
}

#[derive(Clone, Copy)]
enum Token {
    Cbc(Cipher),
    Gcm(AesKeyLen),
    Hash(HashAlg),
    Group(Group),
}

impl Token {
    fn class(self) -> AlgorithmClass {
        match self {
            Token::Cbc(_) | Token::Gcm(_) => AlgorithmClass::Encryption,
            Token::Hash(_) => AlgorithmClass::Integrity,
            Token::Group(_) => AlgorithmClass::DhGroup,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Token::Cbc(c) => c.name(),
            Token::Gcm(k) => EspCipher::AesGcm16(k).name(),
            Token::Hash(h) => h.name(),
            Token::Group(g) => g.name(),
        }
    }

    fn allowed_in(self, kind: ProposalKind) -> bool {
        !(kind == ProposalKind::Ike && matches!(self, Token::Gcm(_)))
    }
}

/// Every word, in the order error messages list them.
const TOKENS: [Token; 19] = {
    use AesKeyLen::{Aes128, Aes192, Aes256};
    [
        Token::Cbc(Cipher::AesCbc(Aes128)),
        Token::Cbc(Cipher::AesCbc(Aes192)),
        Token::Cbc(Cipher::AesCbc(Aes256)),
        Token::Cbc(Cipher::TripleDesCbc),
        Token::Gcm(Aes128),
        Token::Gcm(Aes192),
        Token::Gcm(Aes256),
        Token::Hash(HashAlg::Md5),
        Token::Hash(HashAlg::Sha1),
        Token::Hash(HashAlg::Sha256),
        Token::Hash(HashAlg::Sha384),
        Token::Hash(HashAlg::Sha512),
        Token::Group(Group::Modp1024),
        Token::Group(Group::Modp1536),
        Token::Group(Group::Modp2048),
        Token::Group(Group::Modp3072),
        Token::Group(Group::Modp4096),
        Token::Group(Group::Ecp256),
        Token::Group(Group::Ecp384),
    ]
};

/// The words a proposal of `kind` accepts for `class`, in documentation order.
pub fn words(kind: ProposalKind, class: AlgorithmClass) -> Vec<&'static str> {
    TOKENS
        .iter()
        .filter(|t| t.allowed_in(kind) && t.class() == class)
        .map(|t| t.name())
        .collect()
}

fn class_name(class: AlgorithmClass) -> &'static str {
    match class {
        AlgorithmClass::Encryption => "encryption algorithm",
        AlgorithmClass::Integrity => "integrity algorithm",
        AlgorithmClass::DhGroup => "DH group",
    }
}

fn unknown_hint(kind: ProposalKind, token: &str) -> String {
    let gcm = TOKENS
        .iter()
        .any(|t| matches!(t, Token::Gcm(_)) && t.name() == token);
    match kind {
        ProposalKind::Ike if gcm => "AES-GCM is an ESP algorithm; IKEv1 has no AEAD ciphers".into(),
        _ => {
            let all: Vec<&str> = [
                AlgorithmClass::Encryption,
                AlgorithmClass::Integrity,
                AlgorithmClass::DhGroup,
            ]
            .into_iter()
            .flat_map(|c| words(kind, c))
            .collect();
            format!("{kind} proposals accept {}", all.join(" "))
        }
    }
}

/// Splits and checks the words of a proposal: the rules every proposal shares.
fn tokens(kind: ProposalKind, s: &str, allow_md5: bool) -> Result<Vec<Token>, ProposalError> {
    if s.is_empty() {
        return Err(ProposalError::Empty);
    }
    let count = s.split('-').count();
    if count > MAX_PROPOSAL_TOKENS {
        return Err(ProposalError::TooManyTokens(count));
    }
    let mut out: Vec<Token> = Vec::with_capacity(count);
    for word in s.split('-') {
        if word.is_empty() {
            return Err(ProposalError::EmptyToken);
        }
        let lower = word.to_ascii_lowercase();
        let Some(t) = TOKENS
            .iter()
            .find(|t| t.allowed_in(kind) && t.name() == lower)
        else {
            return Err(ProposalError::Unknown { kind, token: lower });
        };
        if out.iter().any(|o| o.name() == t.name()) {
            return Err(ProposalError::Repeated(lower));
        }
        if matches!(t, Token::Hash(HashAlg::Md5)) && !allow_md5 {
            return Err(ProposalError::Md5);
        }
        out.push(*t);
    }
    Ok(out)
}

fn missing(kind: ProposalKind, class: AlgorithmClass) -> ProposalError {
    ProposalError::Missing { kind, class }
}

impl IkeProposal {
    /// Parses `enc[-enc…]-hash[-hash…]-group[-group…]`.
    pub fn parse(s: &str, allow_md5: bool) -> Result<IkeProposal, ProposalError> {
        const K: ProposalKind = ProposalKind::Ike;
        let mut p = IkeProposal {
            ciphers: vec![],
            hashes: vec![],
            groups: vec![],
        };
        for t in tokens(K, s, allow_md5)? {
            match t {
                Token::Cbc(c) => p.ciphers.push(c),
                Token::Hash(h) => p.hashes.push(h),
                Token::Group(g) => p.groups.push(g),
                // Not allowed in IKE proposals: `tokens` refused it.
                Token::Gcm(_) => {}
            }
        }
        if p.ciphers.is_empty() {
            return Err(missing(K, AlgorithmClass::Encryption));
        }
        if p.hashes.is_empty() {
            return Err(missing(K, AlgorithmClass::Integrity));
        }
        if p.groups.is_empty() {
            return Err(missing(K, AlgorithmClass::DhGroup));
        }
        Ok(p)
    }
}

impl EspProposal {
    /// Parses `enc[-enc…][-integ…][-group…]`; groups mean PFS.
    pub fn parse(s: &str, allow_md5: bool) -> Result<EspProposal, ProposalError> {
        const K: ProposalKind = ProposalKind::Esp;
        let mut p = EspProposal {
            ciphers: vec![],
            auths: vec![],
            groups: vec![],
        };
        for t in tokens(K, s, allow_md5)? {
            match t {
                Token::Cbc(c) => p.ciphers.push(c.into()),
                Token::Gcm(k) => p.ciphers.push(EspCipher::AesGcm16(k)),
                Token::Hash(h) => p.auths.push(EspAuth::with_hash(h)),
                Token::Group(g) => p.groups.push(g),
            }
        }
        if p.ciphers.is_empty() {
            return Err(missing(K, AlgorithmClass::Encryption));
        }
        let all_aead = p.ciphers.iter().all(|c| c.is_aead());
        if all_aead && !p.auths.is_empty() {
            return Err(ProposalError::IntegrityWithAead);
        }
        if !all_aead && p.auths.is_empty() {
            return Err(missing(K, AlgorithmClass::Integrity));
        }
        Ok(p)
    }
}

/// The default Phase 1 proposals: what Windows 10/11 (3DES/AES + SHA-1 + MODP1024/2048),
/// macOS/iOS (AES-256 + SHA-256 + MODP2048) and strongSwan (AES + SHA-2 + MODP2048/ECP)
/// propose by default. MD5 and DES are never in it.
pub fn default_ike_proposals() -> Vec<IkeProposal> {
    vec![IkeProposal {
        ciphers: vec![
            Cipher::AesCbc(AesKeyLen::Aes256),
            Cipher::AesCbc(AesKeyLen::Aes192),
            Cipher::AesCbc(AesKeyLen::Aes128),
            Cipher::TripleDesCbc,
        ],
        hashes: vec![
            HashAlg::Sha512,
            HashAlg::Sha384,
            HashAlg::Sha256,
            HashAlg::Sha1,
        ],
        groups: Group::ALL.to_vec(),
    }]
}

/// The default ESP proposals: AES-GCM, AES-CBC and 3DES with SHA-1/SHA-2, with or without PFS.
pub fn default_esp_proposals() -> Vec<EspProposal> {
    let ciphers = vec![
        EspCipher::AesGcm16(AesKeyLen::Aes256),
        EspCipher::AesGcm16(AesKeyLen::Aes128),
        EspCipher::AesCbc(AesKeyLen::Aes256),
        EspCipher::AesCbc(AesKeyLen::Aes192),
        EspCipher::AesCbc(AesKeyLen::Aes128),
        EspCipher::TripleDesCbc,
    ];
    let auths = vec![
        EspAuth::HmacSha512,
        EspAuth::HmacSha384,
        EspAuth::HmacSha256,
        EspAuth::HmacSha1,
    ];
    vec![
        EspProposal {
            ciphers: ciphers.clone(),
            auths: auths.clone(),
            groups: vec![],
        },
        EspProposal {
            ciphers,
            auths,
            groups: Group::ALL.to_vec(),
        },
    ]
}

impl fmt::Display for ProposalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProposalKind::Ike => "IKE",
            ProposalKind::Esp => "ESP",
        })
    }
}

#[cfg(test)]
#[path = "proposal_tests.rs"]
mod tests;
