//! What a gateway accepts: Phase 1 and Phase 2 algorithm sets, lifetimes and limits, and the
//! selection of one transform from an initiator's SA payload (RFC 2408 §4.2: the responder
//! picks one proposal and one transform, honouring the initiator's order).

use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::cert::{Credentials, TrustStore};
use crate::natt::NatDetection;
use crate::sa::{
    AuthMethod, EncapMode, EspTransform, IkeTransform, Proposal, SaPayload, Transform, protocol,
};

mod proposal;
mod show;
pub use proposal::{
    AlgorithmClass, EspProposal, IkeProposal, MAX_PROPOSAL_TOKENS, MAX_PROPOSALS, ProposalError,
    ProposalKind, default_esp_proposals, default_ike_proposals, words,
};
pub use show::WEAK_TOKENS;

/// The IKE port (RFC 2409 §2.2 as registered: UDP 500).
pub const DEFAULT_IKE_PORT: u16 = 500;
/// The NAT-T port (RFC 3947 §4, RFC 3948 §2: UDP 4500).
pub const DEFAULT_NATT_PORT: u16 = 4500;
/// Longest ISAKMP SA lifetime agreed to by default: 8 h, what Windows proposes.
pub const DEFAULT_IKE_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Longest ESP SA lifetime agreed to by default: 1 h.
pub const DEFAULT_ESP_LIFETIME: Duration = Duration::from_secs(3600);
/// Idle time before a DPD R-U-THERE (RFC 3706 §5.5) by default.
pub const DEFAULT_DPD_DELAY: Duration = Duration::from_secs(30);
/// Silence after which a DPD peer is declared dead by default (strongSwan's 150 s).
pub const DEFAULT_DPD_TIMEOUT: Duration = Duration::from_secs(150);

impl IkeProposal {
    /// Whether the transform matches this proposal.
    pub fn accepts(&self, t: &IkeTransform) -> bool {
        self.ciphers.contains(&t.cipher)
            && self.hashes.contains(&t.hash)
            && self.groups.contains(&t.group)
    }
}

impl EspProposal {
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
            ike_lifetime: DEFAULT_IKE_LIFETIME,
            esp_lifetime: DEFAULT_ESP_LIFETIME,
            esp_lifetime_kb: None,
            nat_detection: NatDetection::Honest,
            dpd_delay: Some(DEFAULT_DPD_DELAY),
            dpd_timeout: DEFAULT_DPD_TIMEOUT,
            nat_keepalive: Duration::from_secs(20),
            half_open_timeout: Duration::from_secs(30),
            max_half_open_per_ip: 5,
            max_half_open: 4096,
            max_ike_sas: 16384,
            max_ike_sas_per_client: 4,
            max_quick_modes_per_sa: 4,
            max_child_sas_per_ike_sa: 8,
            l2tp_port: 1701,
            natt_port: DEFAULT_NATT_PORT,
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
    use crate::cipher::{AesKeyLen, Cipher};
    use crate::dh::Group;
    use crate::prf::HashAlg;
    use crate::sa::{EspAuth, EspCipher, Lifetime};

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
