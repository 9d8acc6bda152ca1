//! NAT traversal (RFC 3947 and the drafts older clients still speak) and the vendor IDs that
//! announce it, DPD (RFC 3706) and IKE fragmentation.

use std::net::{IpAddr, SocketAddr};

use crate::prf::HashAlg;

/// The flavour of NAT-T the peer announced (RFC 3947 §3.1). It decides payload type numbers
/// (20/21 vs 130/131) and encapsulation mode values (3/4 vs 61443/61444).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NatTVariant {
    /// draft-ietf-ipsec-nat-t-ike-02/03 (Windows XP/7 era, old macOS).
    Draft,
    /// RFC 3947.
    Rfc3947,
}

impl NatTVariant {
    /// NAT-D payload type.
    pub fn nat_d_kind(self) -> u8 {
        match self {
            NatTVariant::Rfc3947 => crate::payload::kind::NAT_D,
            NatTVariant::Draft => crate::payload::kind::NAT_D_DRAFT,
        }
    }

    /// NAT-OA payload type.
    pub fn nat_oa_kind(self) -> u8 {
        match self {
            NatTVariant::Rfc3947 => crate::payload::kind::NAT_OA,
            NatTVariant::Draft => crate::payload::kind::NAT_OA_DRAFT,
        }
    }

    /// Encapsulation mode value of UDP-Encapsulated-Transport.
    pub fn udp_transport_mode(self) -> u16 {
        match self {
            NatTVariant::Rfc3947 => 4,
            NatTVariant::Draft => 61444,
        }
    }

    /// The vendor ID we send back.
    pub fn vendor_id(self) -> [u8; 16] {
        match self {
            NatTVariant::Rfc3947 => vid::md5(b"RFC 3947"),
            NatTVariant::Draft => vid::md5(b"draft-ietf-ipsec-nat-t-ike-02\n"),
        }
    }
}

/// Vendor IDs.
pub mod vid {
    use md5::{Digest, Md5};

    /// MD5 of a string: how NAT-T vendor IDs are formed (RFC 3947 §3.1).
    pub fn md5(s: &[u8]) -> [u8; 16] {
        Md5::digest(s).into()
    }

    /// DPD (RFC 3706 §5.1): fixed value, major version 1, minor 0.
    pub const DPD: [u8; 16] = [
        0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01,
        0x00,
    ];

    /// Proprietary IKE fragmentation: MD5("FRAGMENTATION"), optionally followed by 4
    /// capability octets.
    pub fn fragmentation() -> [u8; 16] {
        md5(b"FRAGMENTATION")
    }

    /// Windows: MD5("MS NT5 ISAKMPOAKLEY") followed by a 4-octet version.
    pub fn ms_nt5() -> [u8; 16] {
        md5(b"MS NT5 ISAKMPOAKLEY")
    }
}

/// What the peer's Vendor ID payloads announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerVendor {
    /// Best NAT-T variant announced.
    pub nat_t: Option<NatTVariant>,
    /// DPD (RFC 3706).
    pub dpd: bool,
    /// IKE fragmentation.
    pub fragmentation: bool,
    /// A Windows peer (MS NT5 ISAKMPOAKLEY).
    pub windows: bool,
}

impl PeerVendor {
    /// Records one Vendor ID payload.
    pub fn note(&mut self, v: &[u8]) {
        let best =
            |cur: Option<NatTVariant>, new| Some(cur.map_or(new, |c: NatTVariant| c.max(new)));
        if v == vid::md5(b"RFC 3947") {
            self.nat_t = best(self.nat_t, NatTVariant::Rfc3947);
        } else if v == vid::md5(b"draft-ietf-ipsec-nat-t-ike-02\n")
            || v == vid::md5(b"draft-ietf-ipsec-nat-t-ike-02")
            || v == vid::md5(b"draft-ietf-ipsec-nat-t-ike-03")
        {
            self.nat_t = best(self.nat_t, NatTVariant::Draft);
        } else if v == vid::DPD {
            self.dpd = true;
        } else if v.get(..16) == Some(&vid::fragmentation()[..]) {
            self.fragmentation = true;
        } else if v.get(..16) == Some(&vid::ms_nt5()[..]) {
            self.windows = true;
        }
    }
}

/// HASH(CKY-I | CKY-R | IP | Port) of a NAT-D payload (RFC 3947 §3.2).
pub fn nat_d(hash: HashAlg, cky_i: &[u8; 8], cky_r: &[u8; 8], addr: SocketAddr) -> Vec<u8> {
    let port = addr.port().to_be_bytes();
    match addr.ip() {
        IpAddr::V4(a) => hash.hash(&[cky_i, cky_r, &a.octets(), &port]),
        IpAddr::V6(a) => hash.hash(&[cky_i, cky_r, &a.octets(), &port]),
    }
}

/// How the responder answers NAT-D when the gateway itself may be behind NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NatDetection {
    /// Hash the addresses we really see and use.
    #[default]
    Honest,
    /// Echo the initiator's hash of our address as our own, so the initiator never sees the
    /// gateway as behind NAT (what Windows needs without its
    /// `AssumeUDPEncapsulationContextOnSendRule` registry change, SoftEther's technique).
    /// UDP encapsulation is still chosen whenever the client is behind NAT.
    Parrot,
    /// Like `Parrot`, and also claim the client is behind NAT, so every client floats to UDP
    /// 4500 — for gateways reachable only through a UDP load balancer (no IP protocol 50).
    ParrotForceEncapsulation,
}

/// The NAT situation after comparing NAT-D payloads (RFC 3947 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatState {
    /// Our address as the peer saw it differs from ours: we are behind NAT.
    pub local_behind_nat: bool,
    /// None of the peer's local addresses matches what we see: the peer is behind NAT.
    pub peer_behind_nat: bool,
}

impl NatState {
    /// Whether ESP must be UDP-encapsulated.
    pub fn any(&self) -> bool {
        self.local_behind_nat || self.peer_behind_nat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MD5 vendor IDs against the published byte strings (RFC 3947 §3.1 and the values
    /// every implementation's table carries).
    #[test]
    fn vendor_ids() {
        assert_eq!(
            NatTVariant::Rfc3947.vendor_id(),
            [
                0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95,
                0x45, 0x2f
            ]
        );
        assert_eq!(
            NatTVariant::Draft.vendor_id(),
            [
                0x90, 0xcb, 0x80, 0x91, 0x3e, 0xbb, 0x69, 0x6e, 0x08, 0x63, 0x81, 0xb5, 0xec, 0x42,
                0x7b, 0x1f
            ]
        );
        assert_eq!(
            vid::fragmentation(),
            [
                0x40, 0x48, 0xb7, 0xd5, 0x6e, 0xbc, 0xe8, 0x85, 0x25, 0xe7, 0xde, 0x7f, 0x00, 0xd6,
                0xc2, 0xd3
            ]
        );
        let mut v = PeerVendor::default();
        v.note(&NatTVariant::Draft.vendor_id());
        v.note(&NatTVariant::Rfc3947.vendor_id());
        v.note(&vid::DPD);
        assert_eq!(v.nat_t, Some(NatTVariant::Rfc3947));
        assert!(v.dpd && !v.windows);
    }

    #[test]
    fn nat_d_depends_on_port() {
        let a: SocketAddr = "192.0.2.1:500".parse().unwrap_or_else(|_| unreachable!());
        let b: SocketAddr = "192.0.2.1:4500".parse().unwrap_or_else(|_| unreachable!());
        let (i, r) = ([1; 8], [2; 8]);
        assert_ne!(
            nat_d(HashAlg::Sha1, &i, &r, a),
            nat_d(HashAlg::Sha1, &i, &r, b)
        );
        assert_eq!(nat_d(HashAlg::Sha256, &i, &r, a).len(), 32);
    }
}
