//! CCP (RFC 1962) with the MPPE/MPPC option 18 (RFC 3078 §2). Every other option is rejected.
//!
//! The negotiated result must be one key length and one mode in both directions; both roles
//! offer every allowed key length and Nak the peer towards exactly one (the strongest common)
//! and an agreed H bit.

use crate::config::{KeyLengths, MppePolicy, StatefulMode};
use crate::frame::{self, ConfigOption};
use crate::fsm::{Judge, Negotiator};
use crate::mppe::KeyBits;

/// CCP option type for MPPE/MPPC (RFC 3078 §2).
pub const OPT_MPPE: u8 = 18;
/// H: stateless mode (RFC 3078 §2).
pub const BIT_H: u32 = 0x0100_0000;
/// M: 56-bit keys.
pub const BIT_M: u32 = 0x0000_0080;
/// S: 128-bit keys.
pub const BIT_S: u32 = 0x0000_0040;
/// L: 40-bit keys.
pub const BIT_L: u32 = 0x0000_0020;
/// D: obsolete.
pub const BIT_D: u32 = 0x0000_0010;
/// C: MPPC compression (always refused).
pub const BIT_C: u32 = 0x0000_0001;

/// An MPPE option value reduced to what we support: one key length and a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MppeChoice {
    /// Key strength.
    pub bits: KeyBits,
    /// Stateless (H bit).
    pub stateless: bool,
}

impl MppeChoice {
    fn encode(self) -> u32 {
        let k = match self.bits {
            KeyBits::B40 => BIT_L,
            KeyBits::B56 => BIT_M,
            KeyBits::B128 => BIT_S,
        };
        if self.stateless { k | BIT_H } else { k }
    }

    fn decode_single(v: u32) -> Option<MppeChoice> {
        if v & (BIT_C | BIT_D) != 0 {
            return None;
        }
        let bits = match v & (BIT_S | BIT_M | BIT_L) {
            BIT_S => KeyBits::B128,
            BIT_M => KeyBits::B56,
            BIT_L => KeyBits::B40,
            _ => return None,
        };
        Some(MppeChoice {
            bits,
            stateless: v & BIT_H != 0,
        })
    }
}

fn strongest_in(v: u32, allowed: KeyLengths) -> Option<KeyBits> {
    [
        (BIT_S, KeyBits::B128),
        (BIT_M, KeyBits::B56),
        (BIT_L, KeyBits::B40),
    ]
    .into_iter()
    .find(|(bit, k)| v & bit != 0 && allowed.allows(*k))
    .map(|(_, k)| k)
}

fn value_of(o: &ConfigOption<'_>) -> Option<u32> {
    <[u8; 4]>::try_from(o.data).ok().map(u32::from_be_bytes)
}

/// Every key length `allowed` permits, as option bits.
fn key_bits(allowed: KeyLengths) -> u32 {
    [
        (BIT_S, KeyBits::B128),
        (BIT_M, KeyBits::B56),
        (BIT_L, KeyBits::B40),
    ]
    .into_iter()
    .filter(|(_, k)| allowed.allows(*k))
    .fold(0, |v, (bit, _)| v | bit)
}

/// CCP option state for one side.
///
/// Both roles first request every key length they allow, so that the peer can Nak down to the
/// one it supports (RFC 3078 §2: "the peer ... Nak with the single bit it prefers"); a peer that
/// only supports a weaker allowed length then still agrees instead of rejecting MPPE.
#[derive(Debug)]
pub struct Ccp {
    policy: MppePolicy,
    /// We already Nak'ed the peer's stateless request towards stateful once.
    asked_stateful: bool,
    /// Our current request value.
    request: u32,
    /// Our request as acked by the peer (receive direction).
    pub recv: Option<MppeChoice>,
    /// The peer's request as acked by us (send direction).
    pub send: Option<MppeChoice>,
}

impl Ccp {
    /// New CCP state; both roles negotiate alike.
    pub fn new(policy: MppePolicy) -> Self {
        let mut request = key_bits(policy.key_lengths);
        if policy.stateful != StatefulMode::Prefer {
            request |= BIT_H;
        }
        Ccp {
            policy,
            asked_stateful: false,
            request,
            recv: None,
            send: None,
        }
    }

    /// The agreed choice when both directions match.
    pub fn agreed(&self) -> Option<MppeChoice> {
        match (self.recv, self.send) {
            (Some(a), Some(b)) if a == b => Some(a),
            _ => None,
        }
    }

    /// Reduce an acknowledged value to one choice: a compliant peer acks one key length, a
    /// lenient one may ack our whole offer, in which case the strongest bit it acked wins.
    fn reduce(&self, v: u32) -> Option<MppeChoice> {
        MppeChoice::decode_single(v).or_else(|| {
            (v & (BIT_C | BIT_D) == 0)
                .then(|| strongest_in(v, self.policy.key_lengths))
                .flatten()
                .map(|bits| MppeChoice {
                    bits,
                    stateless: v & BIT_H != 0,
                })
        })
    }
}

impl Negotiator for Ccp {
    fn request_options(&mut self, out: &mut Vec<u8>) {
        frame::push_option(out, OPT_MPPE, &self.request.to_be_bytes());
    }

    fn acked(&mut self, opts: &[u8]) {
        self.recv = frame::options(opts)
            .find(|o| o.kind == OPT_MPPE)
            .and_then(|o| value_of(&o))
            .and_then(|v| self.reduce(v));
    }

    fn nak_or_reject(&mut self, opts: &[u8], reject: bool) -> Result<(), &'static str> {
        for o in frame::options(opts) {
            if o.kind != OPT_MPPE {
                continue;
            }
            if reject {
                return Err("peer refused MPPE");
            }
            let v = value_of(&o).ok_or("malformed MPPE option in Nak")?;
            let bits =
                strongest_in(v, self.policy.key_lengths).ok_or("no common MPPE key length")?;
            let stateless = v & BIT_H != 0 || !self.policy.stateful.allowed();
            self.request = MppeChoice { bits, stateless }.encode();
        }
        Ok(())
    }

    fn judge(&mut self, opts: &[u8], j: &mut Judge) -> Result<(), ()> {
        for o in frame::options(opts) {
            let v = match (o.kind, value_of(&o)) {
                (OPT_MPPE, Some(v)) => v,
                _ => {
                    j.reject(&o);
                    continue;
                }
            };
            let Some(bits) =
                strongest_in(v, self.policy.key_lengths).or(self.policy.key_lengths.strongest())
            else {
                j.reject(&o);
                continue;
            };
            let peer_stateless = v & BIT_H != 0;
            let stateless = match self.policy.stateful {
                StatefulMode::Refuse => true,
                StatefulMode::Allow => peer_stateless,
                StatefulMode::Prefer if peer_stateless && !self.asked_stateful => {
                    self.asked_stateful = true;
                    false
                }
                StatefulMode::Prefer => peer_stateless,
            };
            // Both directions must end up alike: once our own direction is agreed and the peer
            // offers its key length, steer the peer's request to exactly that choice.
            let target = match self.recv {
                Some(r)
                    if v & (MppeChoice {
                        stateless: false,
                        ..r
                    })
                    .encode()
                        != 0 =>
                {
                    r
                }
                _ => MppeChoice { bits, stateless },
            };
            if v != target.encode() {
                j.nak(OPT_MPPE, &target.encode().to_be_bytes());
            }
        }
        Ok(())
    }

    fn peer_acked(&mut self, opts: &[u8]) {
        self.send = frame::options(opts)
            .find(|o| o.kind == OPT_MPPE)
            .and_then(|o| value_of(&o))
            .and_then(MppeChoice::decode_single);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EncryptionPolicy;

    const ONLY_40: KeyLengths = KeyLengths {
        bits40: true,
        bits56: false,
        bits128: false,
    };

    fn pol(key_lengths: KeyLengths, stateful: StatefulMode) -> MppePolicy {
        MppePolicy {
            policy: EncryptionPolicy::Require,
            key_lengths,
            stateful,
        }
    }

    fn opt(v: u32) -> Vec<u8> {
        let mut o = Vec::new();
        frame::push_option(&mut o, OPT_MPPE, &v.to_be_bytes());
        o
    }

    /// The value we Nak with, if any.
    fn judge(c: &mut Ccp, v: u32) -> Option<u32> {
        let mut j = Judge::default();
        c.judge(&opt(v), &mut j).unwrap();
        let nak = j.nak_options();
        frame::options(nak)
            .find(|o| o.kind == OPT_MPPE)
            .and_then(|o| value_of(&o))
    }

    fn request(c: &mut Ccp) -> u32 {
        let mut out = Vec::new();
        c.request_options(&mut out);
        frame::options(&out)
            .find_map(|o| value_of(&o))
            .unwrap_or_default()
    }

    #[test]
    fn server_naks_down_to_one_key() {
        let mut s = Ccp::new(pol(KeyLengths::ALL, StatefulMode::Refuse));
        assert_eq!(
            judge(&mut s, BIT_S | BIT_M | BIT_L | BIT_H),
            Some(BIT_S | BIT_H)
        );
        assert_eq!(judge(&mut s, BIT_S | BIT_H), None);
        // Stateful not allowed: H=0 is Nak'ed.
        assert_eq!(judge(&mut s, BIT_S), Some(BIT_S | BIT_H));
        // MPPC bit refused.
        assert_eq!(judge(&mut s, BIT_S | BIT_H | BIT_C), Some(BIT_S | BIT_H));
        let mut s40 = Ccp::new(pol(ONLY_40, StatefulMode::Refuse));
        assert_eq!(request(&mut s40), BIT_L | BIT_H);
    }

    #[test]
    fn request_offers_every_allowed_key_length() {
        let mut s = Ccp::new(pol(KeyLengths::ALL, StatefulMode::Allow));
        assert_eq!(request(&mut s), BIT_S | BIT_M | BIT_L | BIT_H);
        let mut p = Ccp::new(pol(KeyLengths::default(), StatefulMode::Prefer));
        assert_eq!(request(&mut p), BIT_S);
    }

    /// pppd with `require-mppe-40` Naks a multi-length offer down to L (RFC 3078 §2); the
    /// gateway must follow instead of insisting on 128 bits.
    #[test]
    fn follows_a_nak_to_a_weaker_allowed_key() {
        let mut s = Ccp::new(pol(KeyLengths::ALL, StatefulMode::Allow));
        s.nak_or_reject(&opt(BIT_L | BIT_H), false).unwrap();
        assert_eq!(request(&mut s), BIT_L | BIT_H);
        s.acked(&opt(BIT_L | BIT_H));
        // Symmetric: the peer's own 40-bit request is accepted as is.
        assert_eq!(judge(&mut s, BIT_L | BIT_H), None);
        s.peer_acked(&opt(BIT_L | BIT_H));
        assert_eq!(
            s.agreed(),
            Some(MppeChoice {
                bits: KeyBits::B40,
                stateless: true
            })
        );
        // A Nak towards a length the policy does not allow fails the option.
        let mut strict = Ccp::new(pol(KeyLengths::default(), StatefulMode::Allow));
        assert!(strict.nak_or_reject(&opt(BIT_L | BIT_H), false).is_err());
    }

    #[test]
    fn lenient_ack_of_the_whole_offer_picks_the_strongest() {
        let mut s = Ccp::new(pol(KeyLengths::ALL, StatefulMode::Refuse));
        s.acked(&opt(BIT_S | BIT_L | BIT_H));
        assert_eq!(
            s.recv,
            Some(MppeChoice {
                bits: KeyBits::B128,
                stateless: true
            })
        );
    }

    #[test]
    fn prefer_stateful_asks_once_then_accepts_stateless() {
        let mut s = Ccp::new(pol(KeyLengths::default(), StatefulMode::Prefer));
        assert_eq!(judge(&mut s, BIT_S | BIT_H), Some(BIT_S));
        assert_eq!(judge(&mut s, BIT_S | BIT_H), None);
        // Allow: the peer's stateless request stands, its stateful one is accepted too.
        let mut a = Ccp::new(pol(KeyLengths::default(), StatefulMode::Allow));
        assert_eq!(judge(&mut a, BIT_S | BIT_H), None);
        assert_eq!(judge(&mut a, BIT_S), None);
        // A Nak without H is followed only when stateful is allowed.
        let mut r = Ccp::new(pol(KeyLengths::default(), StatefulMode::Refuse));
        r.nak_or_reject(&opt(BIT_S), false).unwrap();
        assert_eq!(request(&mut r), BIT_S | BIT_H);
    }

    #[test]
    fn choice_roundtrip() {
        for bits in [KeyBits::B40, KeyBits::B56, KeyBits::B128] {
            for stateless in [false, true] {
                let c = MppeChoice { bits, stateless };
                assert_eq!(MppeChoice::decode_single(c.encode()), Some(c));
            }
        }
        assert_eq!(MppeChoice::decode_single(BIT_S | BIT_L), None);
    }
}
