//! What a gateway accepts: Phase 1 and Phase 2 algorithm sets, lifetimes and limits, and the
//! selection of one transform from an initiator's SA payload (RFC 2408 §4.2: the responder
//! picks one proposal and one transform, honouring the initiator's order).

use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::cert::{Credentials, TrustStore};
use crate::cipher::{AesKeyLen, Cipher};
use crate::dh::Group;
use crate::natt::NatDetection;
use crate::prf::HashAlg;
use crate::sa::{
    AuthMethod, EncapMode, EspAuth, EspCipher, EspTransform, IkeTransform, Proposal, SaPayload,
    Transform, protocol,
};

mod show;
pub use show::WEAK_TOKENS;

/// One accepted Phase 1 proposal: any combination of its algorithms (strongSwan semantics:
/// `aes128-aes256-sha1-modp2048` accepts both ciphers with SHA-1 and MODP2048).
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

/// Why a proposal string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    /// A token that names no supported algorithm.
    #[error("unknown algorithm {0:?}")]
    Unknown(String),
    /// A class of algorithm is missing.
    #[error("proposal has no {0}")]
    Missing(&'static str),
    /// MD5 without explicit permission.
    #[error("md5 is broken and refused unless explicitly allowed")]
    Md5,
    /// Integrity given for AEAD-only proposals.
    #[error("AES-GCM proposals take no integrity algorithm")]
    IntegrityWithAead,
}

enum Token {
    Cipher(Cipher),
    EspCipher(EspCipher),
    Hash(HashAlg),
    Group(Group),
}

fn token(t: &str) -> Option<Token> {
    use AesKeyLen::*;
    Some(match t {
        "aes128" => Token::Cipher(Cipher::AesCbc(Aes128)),
        "aes192" => Token::Cipher(Cipher::AesCbc(Aes192)),
        "aes256" => Token::Cipher(Cipher::AesCbc(Aes256)),
        "3des" => Token::Cipher(Cipher::TripleDesCbc),
        "aes128gcm16" => Token::EspCipher(EspCipher::AesGcm16(Aes128)),
        "aes192gcm16" => Token::EspCipher(EspCipher::AesGcm16(Aes192)),
        "aes256gcm16" => Token::EspCipher(EspCipher::AesGcm16(Aes256)),
        "md5" => Token::Hash(HashAlg::Md5),
        "sha1" => Token::Hash(HashAlg::Sha1),
        "sha256" => Token::Hash(HashAlg::Sha256),
        "sha384" => Token::Hash(HashAlg::Sha384),
        "sha512" => Token::Hash(HashAlg::Sha512),
        g => Token::Group(Group::ALL.into_iter().find(|x| x.name() == g)?),
    })
}

/// Every token the proposal grammar accepts (for cross-checking other parsers of it).
pub const PROPOSAL_TOKENS: [&str; 19] = [
    "aes128",
    "aes192",
    "aes256",
    "3des",
    "aes128gcm16",
    "aes192gcm16",
    "aes256gcm16",
    "md5",
    "sha1",
    "sha256",
    "sha384",
    "sha512",
    "modp1024",
    "modp1536",
    "modp2048",
    "modp3072",
    "modp4096",
    "ecp256",
    "ecp384",
];

fn esp_auth(h: HashAlg) -> EspAuth {
    match h {
        HashAlg::Md5 => EspAuth::HmacMd5,
        HashAlg::Sha1 => EspAuth::HmacSha1,
        HashAlg::Sha256 => EspAuth::HmacSha256,
        HashAlg::Sha384 => EspAuth::HmacSha384,
        HashAlg::Sha512 => EspAuth::HmacSha512,
    }
}

impl IkeProposal {
    /// Parses `enc[-enc…]-hash[-hash…]-group[-group…]` (strongSwan's IKEv1 syntax).
    pub fn parse(s: &str, allow_md5: bool) -> Result<IkeProposal, ProposalError> {
        let mut p = IkeProposal {
            ciphers: vec![],
            hashes: vec![],
            groups: vec![],
        };
        for t in s.split('-') {
            match token(&t.to_ascii_lowercase()) {
                Some(Token::Cipher(c)) => p.ciphers.push(c),
                Some(Token::Hash(HashAlg::Md5)) if !allow_md5 => return Err(ProposalError::Md5),
                Some(Token::Hash(h)) => p.hashes.push(h),
                Some(Token::Group(g)) => p.groups.push(g),
                Some(Token::EspCipher(_)) | None => return Err(ProposalError::Unknown(t.into())),
            }
        }
        if p.ciphers.is_empty() {
            return Err(ProposalError::Missing("encryption algorithm"));
        }
        if p.hashes.is_empty() {
            return Err(ProposalError::Missing("hash algorithm"));
        }
        if p.groups.is_empty() {
            return Err(ProposalError::Missing("DH group"));
        }
        Ok(p)
    }

    /// Whether the transform matches this proposal.
    pub fn accepts(&self, t: &IkeTransform) -> bool {
        self.ciphers.contains(&t.cipher)
            && self.hashes.contains(&t.hash)
            && self.groups.contains(&t.group)
    }
}

impl EspProposal {
    /// Parses `enc[-enc…][-integ…][-group…]`; groups mean PFS.
    pub fn parse(s: &str, allow_md5: bool) -> Result<EspProposal, ProposalError> {
        let mut p = EspProposal {
            ciphers: vec![],
            auths: vec![],
            groups: vec![],
        };
        for t in s.split('-') {
            match token(&t.to_ascii_lowercase()) {
                Some(Token::Cipher(Cipher::AesCbc(k))) => p.ciphers.push(EspCipher::AesCbc(k)),
                Some(Token::Cipher(Cipher::TripleDesCbc)) => {
                    p.ciphers.push(EspCipher::TripleDesCbc)
                }
                Some(Token::EspCipher(c)) => p.ciphers.push(c),
                Some(Token::Hash(HashAlg::Md5)) if !allow_md5 => return Err(ProposalError::Md5),
                Some(Token::Hash(h)) => p.auths.push(esp_auth(h)),
                Some(Token::Group(g)) => p.groups.push(g),
                None => return Err(ProposalError::Unknown(t.into())),
            }
        }
        if p.ciphers.is_empty() {
            return Err(ProposalError::Missing("encryption algorithm"));
        }
        let all_aead = p.ciphers.iter().all(|c| c.is_aead());
        if all_aead && !p.auths.is_empty() {
            return Err(ProposalError::IntegrityWithAead);
        }
        if !all_aead && p.auths.is_empty() {
            return Err(ProposalError::Missing("integrity algorithm"));
        }
        Ok(p)
    }

    /// Whether the transform matches this proposal.
    pub fn accepts(&self, t: &EspTransform) -> bool {
        let auth_ok = match t.auth {
            None => t.cipher.is_aead(),
            Some(a) => !t.cipher.is_aead() && self.auths.contains(&a),
        };
        let pfs_ok = match t.group {
            None => self.groups.is_empty(),
            Some(g) => self.groups.contains(&g),
        };
        auth_ok && pfs_ok && self.ciphers.contains(&t.cipher)
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

/// Responder configuration.
#[derive(Clone)]
pub struct Config {
    /// The pre-shared key for Main Mode PSK authentication (`None`: PSK is refused).
    pub psk: Option<Zeroizing<Vec<u8>>>,
    /// Our certificate chain and key for RSA-signature authentication (RFC 2409 §5.1);
    /// with `client_ca`, or signatures are refused.
    pub certificate: Option<Arc<Credentials>>,
    /// The CAs client certificates must chain to.
    pub client_ca: Option<Arc<TrustStore>>,
    /// Accepted Phase 1 proposals.
    pub ike: Vec<IkeProposal>,
    /// Accepted ESP proposals.
    pub esp: Vec<EspProposal>,
    /// Longest ISAKMP SA lifetime we agree to; longer proposals are shortened locally.
    pub ike_lifetime: Duration,
    /// Longest ESP SA lifetime; longer proposals get a RESPONDER-LIFETIME notify.
    pub esp_lifetime: Duration,
    /// Largest ESP SA kilobyte lifetime (`None`: no volume limit of ours).
    pub esp_lifetime_kb: Option<u64>,
    /// How to answer NAT-D.
    pub nat_detection: NatDetection,
    /// DPD: idle time before we send R-U-THERE (`None`: never, only answer).
    pub dpd_delay: Option<Duration>,
    /// DPD: how long without any sign of life before the IKE SA is declared dead.
    pub dpd_timeout: Duration,
    /// NAT keep-alive interval when we are behind NAT (RFC 3948 §2.3).
    pub nat_keepalive: Duration,
    /// A half-open IKE SA (Main Mode not completed) is dropped after this.
    pub half_open_timeout: Duration,
    /// Half-open IKE SAs per source IP address (strongSwan's default block threshold is 5).
    pub max_half_open_per_ip: usize,
    /// Half-open IKE SAs in total. When full, a new Main Mode evicts the oldest half-open
    /// SA whose client never answered message 2 (`endpoint::pressure`).
    pub max_half_open: usize,
    /// Established IKE SAs in total.
    pub max_ike_sas: usize,
    /// IKE SAs (half-open or established) per client address and port.
    pub max_ike_sas_per_client: usize,
    /// Quick Mode exchanges in progress per IKE SA.
    pub max_quick_modes_per_sa: usize,
    /// ESP SA pairs per IKE SA.
    pub max_child_sas_per_ike_sa: usize,
    /// UDP port of the L2TP service Quick Mode selectors must name (or 0 = any).
    pub l2tp_port: u16,
    /// Port of NAT-T (messages on it carry the non-ESP marker, RFC 3948 §2.2).
    pub natt_port: u16,
    /// Answer Aggressive Mode (RFC 2409 §5.4). Off by default: its second message carries
    /// a hash of the pre-shared key that anyone can crack offline, before they authenticate.
    pub allow_aggressive: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("psk", &self.psk.as_ref().map(|_| "<redacted>"))
            .field(
                "certificate",
                &self
                    .certificate
                    .as_ref()
                    .map(|c| c.subject_display().to_owned()),
            )
            .field("ike", &self.ike)
            .field("esp", &self.esp)
            .field("ike_lifetime", &self.ike_lifetime)
            .field("esp_lifetime", &self.esp_lifetime)
            .field("nat_detection", &self.nat_detection)
            .field("allow_aggressive", &self.allow_aggressive)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            psk: None,
            certificate: None,
            client_ca: None,
            ike: default_ike_proposals(),
            esp: default_esp_proposals(),
            ike_lifetime: Duration::from_secs(8 * 3600),
            esp_lifetime: Duration::from_secs(3600),
            esp_lifetime_kb: None,
            nat_detection: NatDetection::Honest,
            dpd_delay: Some(Duration::from_secs(30)),
            dpd_timeout: Duration::from_secs(150),
            nat_keepalive: Duration::from_secs(20),
            half_open_timeout: Duration::from_secs(30),
            max_half_open_per_ip: 5,
            max_half_open: 4096,
            max_ike_sas: 16384,
            max_ike_sas_per_client: 4,
            max_quick_modes_per_sa: 4,
            max_child_sas_per_ike_sa: 8,
            l2tp_port: 1701,
            natt_port: 4500,
            allow_aggressive: false,
        }
    }
}

/// The responder's choice from a Phase 1 SA payload.
#[derive(Debug, Clone)]
pub struct IkeChoice {
    /// The understood transform.
    pub transform: IkeTransform,
    /// The SA payload body to send back: the chosen proposal with the chosen transform as the
    /// initiator sent it.
    pub reply: SaPayload,
}

impl Config {
    /// Chooses one KEY_IKE transform (RFC 2409 §5: one proposal with several transforms).
    pub fn choose_ike(&self, sa: &SaPayload) -> Option<IkeChoice> {
        for p in &sa.proposals {
            if p.protocol != protocol::ISAKMP {
                continue;
            }
            for t in &p.transforms {
                let Ok(it) = IkeTransform::from_transform(t) else {
                    continue;
                };
                let auth_ok = match it.auth {
                    AuthMethod::PreSharedKey => self.psk.is_some(),
                    AuthMethod::RsaSignature => {
                        self.certificate.is_some() && self.client_ca.is_some()
                    }
                };
                if auth_ok && self.ike.iter().any(|p| p.accepts(&it)) {
                    return Some(IkeChoice {
                        transform: it,
                        reply: SaPayload {
                            proposals: vec![Proposal {
                                transforms: vec![t.clone()],
                                ..p.clone()
                            }],
                        },
                    });
                }
            }
        }
        None
    }

    /// Chooses one ESP transform for transport mode (UDP-encapsulated when `udp_encap`).
    /// Proposals sharing a number form one bundle (RFC 2408 §4.2); only single-ESP bundles
    /// are acceptable. Returns the proposal and the transform as sent.
    pub fn choose_esp<'a>(
        &self,
        sa: &'a SaPayload,
        udp_encap: bool,
    ) -> Option<(&'a Proposal, &'a Transform, EspTransform)> {
        for p in &sa.proposals {
            let bundle = sa.proposals.iter().filter(|q| q.number == p.number).count();
            if bundle != 1 || p.protocol != protocol::ESP || p.spi.len() != 4 {
                continue;
            }
            for t in &p.transforms {
                let Ok(et) = EspTransform::from_transform(t) else {
                    continue;
                };
                let mode_ok = match et.mode {
                    EncapMode::Transport => !udp_encap,
                    EncapMode::UdpTransport => udp_encap,
                    EncapMode::Tunnel | EncapMode::UdpTunnel => false,
                };
                if mode_ok && self.esp.iter().any(|p| p.accepts(&et)) {
                    return Some((p, t, et));
                }
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sa::Lifetime;

    fn psk_config() -> Config {
        Config {
            psk: Some(Zeroizing::new(b"k".to_vec())),
            ..Config::default()
        }
    }

    #[test]
    fn ike_choice_honours_initiator_order_and_policy() {
        let mk = |cipher, hash, group| IkeTransform {
            cipher,
            hash,
            auth: AuthMethod::PreSharedKey,
            group,
            lifetime: Lifetime::default(),
        };
        let offered = [
            mk(
                Cipher::AesCbc(AesKeyLen::Aes256),
                HashAlg::Md5,
                Group::Modp2048,
            ),
            mk(Cipher::TripleDesCbc, HashAlg::Sha1, Group::Modp1024),
            mk(
                Cipher::AesCbc(AesKeyLen::Aes128),
                HashAlg::Sha256,
                Group::Modp2048,
            ),
        ];
        let sa = SaPayload {
            proposals: vec![Proposal {
                number: 1,
                protocol: protocol::ISAKMP,
                spi: vec![],
                transforms: offered
                    .iter()
                    .enumerate()
                    .map(|(i, t)| t.to_transform(i as u8 + 1, Lifetime::default()))
                    .collect(),
            }],
        };
        let c = psk_config().choose_ike(&sa).unwrap();
        // MD5 is refused by default; the next acceptable transform in the initiator's order wins.
        assert_eq!(c.transform, offered[1]);
        assert_eq!(c.reply.proposals[0].transforms[0].number, 2);
        // Without a PSK nothing is acceptable.
        assert!(Config::default().choose_ike(&sa).is_none());
    }

    #[test]
    fn proposal_strings() {
        let p = IkeProposal::parse("aes128-AES256-sha1-modp2048-ecp256", false).unwrap();
        assert_eq!(p.ciphers.len(), 2);
        assert_eq!(p.groups, vec![Group::Modp2048, Group::Ecp256]);
        assert_eq!(
            IkeProposal::parse("aes128-md5-modp2048", false),
            Err(ProposalError::Md5)
        );
        assert!(IkeProposal::parse("aes128-md5-modp2048", true).is_ok());
        assert_eq!(
            IkeProposal::parse("aes128-sha1", false),
            Err(ProposalError::Missing("DH group"))
        );
        assert_eq!(
            IkeProposal::parse("aes512-sha1-modp2048", false),
            Err(ProposalError::Unknown("aes512".into()))
        );
        assert!(IkeProposal::parse("aes128gcm16-sha1-modp2048", false).is_err());
        let e = EspProposal::parse("aes256gcm16", false).unwrap();
        assert!(e.auths.is_empty() && e.groups.is_empty());
        assert_eq!(
            EspProposal::parse("aes128gcm16-sha1", false),
            Err(ProposalError::IntegrityWithAead)
        );
        assert_eq!(
            EspProposal::parse("aes128", false),
            Err(ProposalError::Missing("integrity algorithm"))
        );
        let pfs = EspProposal::parse("aes256-sha256-modp2048", false).unwrap();
        assert_eq!(pfs.groups, vec![Group::Modp2048]);
        for t in PROPOSAL_TOKENS {
            assert!(token(t).is_some(), "{t}");
        }
    }

    #[test]
    fn esp_choice_needs_the_right_mode() {
        let t = |mode_value| EspTransform {
            cipher: EspCipher::AesCbc(AesKeyLen::Aes128),
            auth: Some(EspAuth::HmacSha1),
            mode: EncapMode::Transport,
            mode_value,
            group: None,
            lifetime: Lifetime::default(),
        };
        let sa = SaPayload {
            proposals: vec![Proposal {
                number: 1,
                protocol: protocol::ESP,
                spi: vec![1, 2, 3, 4],
                transforms: vec![
                    t(1).to_transform(1, Lifetime::default()),
                    t(61444).to_transform(2, Lifetime::default()),
                ],
            }],
        };
        let c = psk_config();
        let (_, tr, et) = c.choose_esp(&sa, true).unwrap();
        assert_eq!((tr.number, et.mode), (2, EncapMode::UdpTransport));
        assert!(c.choose_esp(&sa, false).is_none(), "tunnel mode is refused");
    }
}
