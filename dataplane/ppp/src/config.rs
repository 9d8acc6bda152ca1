//! Engine configuration and negotiated-encoding types.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::mppe::KeyBits;

/// Authentication protocols (LCP option 3, RFC 1661 §6.2; CHAP algorithms per RFC 1994/2433/2759).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthProto {
    /// PAP, protocol 0xC023 (RFC 1334).
    Pap,
    /// CHAP with MD5, algorithm 0x05 (RFC 1994).
    ChapMd5,
    /// MS-CHAPv1, CHAP algorithm 0x80 (RFC 2433).
    MsChapV1,
    /// MS-CHAPv2, CHAP algorithm 0x81 (RFC 2759).
    MsChapV2,
}

impl AuthProto {
    /// True for the MS-CHAP variants, the only ones that yield MPPE keys.
    pub fn yields_mppe_keys(self) -> bool {
        matches!(self, AuthProto::MsChapV1 | AuthProto::MsChapV2)
    }

    /// CHAP algorithm octet, `None` for PAP.
    pub fn chap_algorithm(self) -> Option<u8> {
        match self {
            AuthProto::Pap => None,
            AuthProto::ChapMd5 => Some(0x05),
            AuthProto::MsChapV1 => Some(0x80),
            AuthProto::MsChapV2 => Some(0x81),
        }
    }

    /// Encodes the LCP Authentication-Protocol option data (protocol + algorithm).
    pub(crate) fn lcp_option_data(self) -> &'static [u8] {
        match self {
            AuthProto::Pap => &[0xC0, 0x23],
            AuthProto::ChapMd5 => &[0xC2, 0x23, 0x05],
            AuthProto::MsChapV1 => &[0xC2, 0x23, 0x80],
            AuthProto::MsChapV2 => &[0xC2, 0x23, 0x81],
        }
    }

    /// Decodes LCP Authentication-Protocol option data.
    pub(crate) fn from_lcp_option(data: &[u8]) -> Option<AuthProto> {
        match data {
            [0xC0, 0x23] => Some(AuthProto::Pap),
            [0xC2, 0x23, 0x05] => Some(AuthProto::ChapMd5),
            [0xC2, 0x23, 0x80] => Some(AuthProto::MsChapV1),
            [0xC2, 0x23, 0x81] => Some(AuthProto::MsChapV2),
            _ => None,
        }
    }
}

impl fmt::Display for AuthProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthProto::Pap => "PAP",
            AuthProto::ChapMd5 => "CHAP-MD5",
            AuthProto::MsChapV1 => "MS-CHAPv1",
            AuthProto::MsChapV2 => "MS-CHAPv2",
        })
    }
}

/// Encryption policy (MikroTik `use-encryption` semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EncryptionPolicy {
    /// Never encrypt: CCP is Protocol-Rejected.
    Deny,
    /// Encrypt only when the peer asks (CCP passive).
    Allow,
    /// Ask for encryption; continue unencrypted if the peer refuses.
    Prefer,
    /// Encryption mandatory: the link is closed (`DownReason::EncryptionRequired`) without it.
    #[default]
    Require,
}

/// Acceptable MPPE key lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyLengths {
    /// 40-bit keys.
    pub bits40: bool,
    /// 56-bit keys.
    pub bits56: bool,
    /// 128-bit keys.
    pub bits128: bool,
}

impl Default for KeyLengths {
    fn default() -> Self {
        KeyLengths {
            bits40: false,
            bits56: false,
            bits128: true,
        }
    }
}

impl KeyLengths {
    /// All three key lengths.
    pub const ALL: KeyLengths = KeyLengths {
        bits40: true,
        bits56: true,
        bits128: true,
    };

    pub(crate) fn allows(self, bits: KeyBits) -> bool {
        match bits {
            KeyBits::B40 => self.bits40,
            KeyBits::B56 => self.bits56,
            KeyBits::B128 => self.bits128,
        }
    }

    /// Strongest allowed key length.
    pub(crate) fn strongest(self) -> Option<KeyBits> {
        [KeyBits::B128, KeyBits::B56, KeyBits::B40]
            .into_iter()
            .find(|b| self.allows(*b))
    }
}

/// MPPE policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MppePolicy {
    /// When to encrypt.
    pub policy: EncryptionPolicy,
    /// Which key lengths are acceptable.
    pub key_lengths: KeyLengths,
    /// Whether stateful (history) mode may be agreed; stateless is always acceptable.
    pub stateful: StatefulMode,
}

/// Stateful MPPE (RFC 3078 §2, H bit clear) policy. Stateless mode is always acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatefulMode {
    /// Only stateless mode: a request without the H bit is Nak'ed.
    #[default]
    Refuse,
    /// Ask for stateless; agree to stateful when the peer asks for it.
    Allow,
    /// Ask for stateful and Nak the peer's stateless request once towards stateful; accept
    /// stateless when the peer insists (pppd's `mppe-stateful` only goes stateful this way).
    Prefer,
}

impl StatefulMode {
    /// Whether stateful mode may be agreed at all.
    pub fn allowed(self) -> bool {
        self != StatefulMode::Refuse
    }
}

/// Data encoding agreed for the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Plaintext.
    None,
    /// MPPE with the given key strength (40, 56 or 128) and mode.
    Mppe {
        /// 40, 56 or 128.
        bits: u16,
        /// True when stateful (history) mode is used.
        stateful: bool,
    },
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encoding::None => f.write_str("none"),
            Encoding::Mppe { bits, stateful } => write!(
                f,
                "MPPE {bits} bit, {}",
                if *stateful { "stateful" } else { "stateless" }
            ),
        }
    }
}

/// Configuration of the server (authenticator) role.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Accepted authentication protocols, most preferred first (offered in LCP in this order).
    pub auth: Vec<AuthProto>,
    /// MPPE policy.
    pub mppe: MppePolicy,
    /// Our MRU.
    pub mru: u16,
    /// Cap on what we send: min(peer MRU, mtu).
    pub mtu: u16,
    /// Our IPCP address.
    pub local_addr: Ipv4Addr,
    /// Up to two DNS servers offered via IPCP options 129/131.
    pub dns: Vec<Ipv4Addr>,
    /// After this much receive silence send LCP Echo-Request every second; close after twice it.
    pub keepalive: Option<std::time::Duration>,
    /// Authentication attempts before the link is closed.
    pub max_auth_attempts: u8,
    /// Bound on the whole authentication phase.
    pub auth_timeout: Duration,
    /// Our CHAP name.
    pub name: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            auth: vec![AuthProto::MsChapV2],
            mppe: MppePolicy::default(),
            mru: 1400,
            mtu: 1400,
            local_addr: Ipv4Addr::new(10, 0, 0, 1),
            dns: Vec::new(),
            keepalive: Some(Duration::from_secs(10)),
            max_auth_attempts: 3,
            auth_timeout: Duration::from_secs(30),
            name: "sluice".to_owned(),
        }
    }
}

/// Configuration of the client (authenticatee) role. `Debug` redacts the password.
#[derive(Clone)]
pub struct ClientConfig {
    /// User name sent in PAP/CHAP.
    pub username: String,
    /// Cleartext password.
    pub password: Vec<u8>,
    /// Accepted authentication protocols, most preferred first.
    pub auth: Vec<AuthProto>,
    /// MPPE policy.
    pub mppe: MppePolicy,
    /// Our MRU.
    pub mru: u16,
    /// Cap on what we send.
    pub mtu: u16,
    /// Ask for DNS servers (IPCP options 129/131).
    pub request_dns: bool,
    /// Keepalive, as for the server.
    pub keepalive: Option<Duration>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("auth", &self.auth)
            .field("mppe", &self.mppe)
            .field("mru", &self.mru)
            .field("mtu", &self.mtu)
            .field("request_dns", &self.request_dns)
            .field("keepalive", &self.keepalive)
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            username: String::new(),
            password: Vec::new(),
            auth: vec![AuthProto::MsChapV2],
            mppe: MppePolicy::default(),
            mru: 1400,
            mtu: 1400,
            request_dns: true,
            keepalive: None,
        }
    }
}
