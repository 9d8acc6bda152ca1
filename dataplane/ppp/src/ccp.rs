//! CCP (RFC 1962) with the MPPE/MPPC option 18 (RFC 3078 §2). Every other option is rejected.
//!
//! The negotiated result must be one key length and one mode in both directions; both roles
//! Nak towards exactly one key length (the strongest common) and an agreed H bit.

use crate::config::MppePolicy;
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

fn strongest_in(v: u32, allowed: crate::config::KeyLengths) -> Option<KeyBits> {
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

/// CCP option state for one side.
#[derive(Debug)]
pub struct Ccp {
    policy: MppePolicy,
    server: bool,
    /// Client: ask for stateless.
    want_stateless: bool,
    /// Client: we already Nak'ed the server towards stateful once.
    asked_stateful: bool,
    /// Our current request value.
    request: u32,
    /// Our request as acked by the peer (receive direction).
    pub recv: Option<MppeChoice>,
    /// The peer's request as acked by us (send direction).
    pub send: Option<MppeChoice>,
}

impl Ccp {
    /// New CCP state.
    pub fn new(policy: MppePolicy, server: bool, request_stateless: bool) -> Self {
        let request = if server {
            MppeChoice {
                bits: policy.key_lengths.strongest().unwrap_or(KeyBits::B128),
                stateless: true,
            }
            .encode()
        } else {
            let mut v = 0;
            if policy.key_lengths.bits128 {
                v |= BIT_S;
            }
            if policy.key_lengths.bits56 {
                v |= BIT_M;
            }
            if policy.key_lengths.bits40 {
                v |= BIT_L;
            }
            if request_stateless || !policy.stateful_allowed {
                v |= BIT_H;
            }
            v
        };
        Ccp {
            policy,
            server,
            want_stateless: request_stateless || !policy.stateful_allowed,
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

    fn stateless_for(&self, peer_stateless: bool) -> bool {
        peer_stateless || !self.policy.stateful_allowed
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
            .and_then(MppeChoice::decode_single);
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
            let stateless = self.stateless_for(v & BIT_H != 0);
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
            let stateless = if self.server {
                self.stateless_for(peer_stateless)
            } else if peer_stateless && !self.want_stateless && !self.asked_stateful {
                self.asked_stateful = true;
                false
            } else {
                self.stateless_for(peer_stateless)
            };
            // Prefer what our own direction already agreed, for symmetric results.
            let target = match self.recv {
                Some(r)
                    if v & MppeChoice {
                        stateless: false,
                        ..r
                    }
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
    use crate::config::{EncryptionPolicy, KeyLengths};

    fn pol(kl: KeyLengths, stateful: bool) -> MppePolicy {
        MppePolicy {
            policy: EncryptionPolicy::Require,
            key_lengths: kl,
            stateful_allowed: stateful,
        }
    }

    fn judge(c: &mut Ccp, v: u32) -> Option<u32> {
        let mut req = Vec::new();
        frame::push_option(&mut req, OPT_MPPE, &v.to_be_bytes());
        let mut j = Judge::default();
        c.judge(&req, &mut j).unwrap();
        (!j.is_clean()).then_some(v)
    }

    #[test]
    fn server_naks_down_to_one_key() {
        let mut s = Ccp::new(pol(KeyLengths::ALL, false), true, true);
        assert!(judge(&mut s, BIT_S | BIT_M | BIT_L | BIT_H).is_some());
        assert!(judge(&mut s, BIT_S | BIT_H).is_none());
        // Stateful not allowed: H=0 is Nak'ed.
        assert!(judge(&mut s, BIT_S).is_some());
        // MPPC bit refused.
        assert!(judge(&mut s, BIT_S | BIT_H | BIT_C).is_some());
        let s2 = Ccp::new(
            pol(
                KeyLengths {
                    bits40: true,
                    bits56: false,
                    bits128: false,
                },
                false,
            ),
            true,
            true,
        );
        assert_eq!(s2.request, BIT_L | BIT_H);
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
