//! LCP configuration options (RFC 1661 §6).

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::Rng as _;

use crate::config::AuthProto;
use crate::frame::{self, ConfigOption};
use crate::fsm::{Judge, Negotiator};

/// Maximum-Receive-Unit (RFC 1661 §6.1).
pub const OPT_MRU: u8 = 1;
/// Async-Control-Character-Map (RFC 1662 §7.1).
pub const OPT_ACCM: u8 = 2;
/// Authentication-Protocol (RFC 1661 §6.2).
pub const OPT_AUTH: u8 = 3;
/// Magic-Number (RFC 1661 §6.4).
pub const OPT_MAGIC: u8 = 5;
/// Protocol-Field-Compression (RFC 1661 §6.5).
pub const OPT_PFC: u8 = 7;
/// Address-and-Control-Field-Compression (RFC 1661 §6.6).
pub const OPT_ACFC: u8 = 8;

/// Smallest peer MRU we accept (RFC 791 minimum datagram plus headroom is not required here).
pub const MIN_MRU: u16 = 64;
/// Default MRU when the option is absent (RFC 1661 §6.1).
pub const DEFAULT_MRU: u16 = 1500;

/// LCP option state for one side.
#[derive(Debug)]
pub struct Lcp {
    /// Our MRU (requested when `send_mru`).
    pub our_mru: u16,
    send_mru: bool,
    /// Our magic number.
    pub magic: u32,
    send_magic: bool,
    /// Server: authentication protocols to request, in order.
    auth_list: Vec<AuthProto>,
    auth_idx: usize,
    auth_tried: u8,
    /// Client: authentication protocols we accept.
    accept_auth: Vec<AuthProto>,
    /// Fallback MRU to Nak with when the peer's is too small.
    nak_mru: u16,
    /// Peer's MRU (effective after the peer's request was acked).
    pub peer_mru: u16,
    /// Peer's magic number.
    pub peer_magic: Option<u32>,
    /// Authentication protocol agreed (server: the peer acked it; client: we acked it).
    pub agreed_auth: Option<AuthProto>,
    /// Source of fresh magic numbers.
    magic_source: ChaCha20Rng,
}

impl Lcp {
    /// Server-side options: requests `auth_list[0]` first.
    pub fn server(
        mru: u16,
        mtu: u16,
        auth_list: Vec<AuthProto>,
        mut magic_source: ChaCha20Rng,
    ) -> Self {
        let magic = nonzero(&mut magic_source);
        Lcp {
            our_mru: mru,
            send_mru: true,
            magic,
            send_magic: true,
            auth_list,
            auth_idx: 0,
            auth_tried: 0,
            accept_auth: Vec::new(),
            nak_mru: mtu.max(MIN_MRU),
            peer_mru: DEFAULT_MRU,
            peer_magic: None,
            agreed_auth: None,
            magic_source,
        }
    }

    /// Client-side options: accepts any protocol of `accept_auth`.
    pub fn client(
        mru: u16,
        mtu: u16,
        accept_auth: Vec<AuthProto>,
        mut magic_source: ChaCha20Rng,
    ) -> Self {
        let magic = nonzero(&mut magic_source);
        Lcp {
            our_mru: mru,
            send_mru: true,
            magic,
            send_magic: true,
            auth_list: Vec::new(),
            auth_idx: 0,
            auth_tried: 0,
            accept_auth,
            nak_mru: mtu.max(MIN_MRU),
            peer_mru: DEFAULT_MRU,
            peer_magic: None,
            agreed_auth: None,
            magic_source,
        }
    }

    fn current_auth(&self) -> Option<AuthProto> {
        self.auth_list.get(self.auth_idx).copied()
    }

    fn walk_auth(&mut self, suggestion: Option<AuthProto>) -> Result<(), &'static str> {
        self.auth_tried |= 1 << self.auth_idx.min(7);
        let untried = |i: usize, tried: u8| i < 8 && tried & (1 << i) == 0;
        if let Some(s) = suggestion
            && let Some(i) = self.auth_list.iter().position(|a| *a == s)
            && untried(i, self.auth_tried)
        {
            self.auth_idx = i;
            return Ok(());
        }
        match (0..self.auth_list.len()).find(|&i| untried(i, self.auth_tried)) {
            Some(i) => {
                self.auth_idx = i;
                Ok(())
            }
            None => Err("no common authentication protocol"),
        }
    }
}

fn nonzero(src: &mut ChaCha20Rng) -> u32 {
    let m = src.next_u32();
    if m == 0 { 0x5A5A_A5A5 } else { m }
}

fn u16_of(o: &ConfigOption<'_>) -> Option<u16> {
    o.data.try_into().ok().map(u16::from_be_bytes)
}

fn u32_of(o: &ConfigOption<'_>) -> Option<u32> {
    o.data.try_into().ok().map(u32::from_be_bytes)
}

impl Negotiator for Lcp {
    fn request_options(&mut self, out: &mut Vec<u8>) {
        if self.send_mru {
            frame::push_option(out, OPT_MRU, &self.our_mru.to_be_bytes());
        }
        if let Some(a) = self.current_auth() {
            frame::push_option(out, OPT_AUTH, a.lcp_option_data());
        }
        if self.send_magic {
            frame::push_option(out, OPT_MAGIC, &self.magic.to_be_bytes());
        }
    }

    fn acked(&mut self, _opts: &[u8]) {
        if !self.auth_list.is_empty() {
            self.agreed_auth = self.current_auth();
        }
    }

    fn nak_or_reject(&mut self, opts: &[u8], reject: bool) -> Result<(), &'static str> {
        for o in frame::options(opts) {
            match o.kind {
                OPT_MRU if reject => self.send_mru = false,
                OPT_MRU => {
                    if let Some(m) = u16_of(&o) {
                        self.our_mru = m.max(MIN_MRU);
                    }
                }
                OPT_MAGIC if reject => self.send_magic = false,
                OPT_MAGIC => self.magic = nonzero(&mut self.magic_source),
                OPT_AUTH if reject => return Err("peer refused to authenticate"),
                OPT_AUTH if !self.auth_list.is_empty() => {
                    self.walk_auth(AuthProto::from_lcp_option(o.data))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn judge(&mut self, opts: &[u8], j: &mut Judge) -> Result<(), ()> {
        for o in frame::options(opts) {
            match o.kind {
                OPT_MRU => match u16_of(&o) {
                    Some(m) if m >= MIN_MRU => {}
                    Some(_) => j.nak(OPT_MRU, &self.nak_mru.to_be_bytes()),
                    None => j.reject(&o),
                },
                OPT_ACCM if o.data.len() == 4 => {}
                OPT_AUTH if !self.accept_auth.is_empty() => {
                    match AuthProto::from_lcp_option(o.data) {
                        Some(a) if self.accept_auth.contains(&a) => {}
                        _ => {
                            if let Some(p) = self.accept_auth.first() {
                                j.nak(OPT_AUTH, p.lcp_option_data());
                            }
                        }
                    }
                }
                OPT_MAGIC => match u32_of(&o) {
                    Some(m) if self.send_magic && m == self.magic => {
                        // Possible looped-back link (RFC 1661 §6.4): suggest another number.
                        let fresh = nonzero(&mut self.magic_source);
                        j.nak(OPT_MAGIC, &fresh.to_be_bytes());
                    }
                    Some(_) => {}
                    None => j.reject(&o),
                },
                OPT_PFC | OPT_ACFC if o.data.is_empty() => {}
                _ => j.reject(&o),
            }
        }
        Ok(())
    }

    fn peer_acked(&mut self, opts: &[u8]) {
        self.peer_mru = DEFAULT_MRU;
        for o in frame::options(opts) {
            match o.kind {
                OPT_MRU => self.peer_mru = u16_of(&o).unwrap_or(DEFAULT_MRU),
                OPT_MAGIC => self.peer_magic = u32_of(&o),
                OPT_AUTH => self.agreed_auth = AuthProto::from_lcp_option(o.data),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Layer;
    use crate::frame::check_options;

    fn src() -> ChaCha20Rng {
        use rand_chacha::rand_core::SeedableRng;
        ChaCha20Rng::from_seed([7; 32])
    }

    #[test]
    fn server_walks_auth_list_on_nak() {
        let mut l = Lcp::server(
            1400,
            1400,
            vec![AuthProto::MsChapV2, AuthProto::MsChapV1, AuthProto::Pap],
            src(),
        );
        let mut req = Vec::new();
        l.request_options(&mut req);
        check_options(&req, Layer::Lcp).unwrap();
        assert!(req.windows(5).any(|w| w == [3, 5, 0xC2, 0x23, 0x81]));
        // Peer suggests PAP: jump to it.
        let mut nak = Vec::new();
        frame::push_option(&mut nak, OPT_AUTH, &[0xC0, 0x23]);
        l.nak_or_reject(&nak, false).unwrap();
        assert_eq!(l.current_auth(), Some(AuthProto::Pap));
        // Peer suggests EAP (unknown): walk to the next untried.
        let mut nak = Vec::new();
        frame::push_option(&mut nak, OPT_AUTH, &[0xC2, 0x27]);
        l.nak_or_reject(&nak, false).unwrap();
        assert_eq!(l.current_auth(), Some(AuthProto::MsChapV1));
        assert!(l.nak_or_reject(&nak, false).is_err());
    }

    #[test]
    fn judge_rejects_unknown_and_naks_small_mru() {
        let mut l = Lcp::client(1400, 1400, vec![AuthProto::MsChapV2], src());
        let opts = [1, 4, 0, 10, 13, 3, 6, 17, 4, 5, 0xDC, 7, 2];
        let mut j = Judge::default();
        l.judge(&opts, &mut j).unwrap();
        assert!(!j.is_clean());
    }
}
