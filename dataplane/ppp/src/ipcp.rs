//! IPCP configuration options (RFC 1332 §3, DNS per RFC 1877 §1).

use std::net::Ipv4Addr;

use crate::frame::{self, ConfigOption};
use crate::fsm::{Judge, Negotiator};

/// IP-Compression-Protocol (RFC 1332 §3.2), always rejected.
pub const OPT_COMPRESSION: u8 = 2;
/// IP-Address (RFC 1332 §3.3).
pub const OPT_ADDRESS: u8 = 3;
/// Primary DNS server (RFC 1877 §1.1).
pub const OPT_DNS1: u8 = 129;
/// Primary NBNS server (RFC 1877 §1.2), always rejected.
pub const OPT_NBNS1: u8 = 130;
/// Secondary DNS server (RFC 1877 §1.3).
pub const OPT_DNS2: u8 = 131;
/// Secondary NBNS server (RFC 1877 §1.4), always rejected.
pub const OPT_NBNS2: u8 = 132;

fn addr_of(o: &ConfigOption<'_>) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(o.data).ok().map(Ipv4Addr::from)
}

/// IPCP option state.
#[derive(Debug)]
pub enum Ipcp {
    /// Authenticator side: assigns the peer's address and DNS.
    Server {
        /// Our address (sent in our request).
        local: Ipv4Addr,
        send_local: bool,
        /// Address assigned to the peer (`None` until the daemon provides it).
        peer: Option<Ipv4Addr>,
        /// DNS servers to hand out.
        dns: Vec<Ipv4Addr>,
    },
    /// Peer side: learns its address and DNS from Naks.
    Client {
        /// Our address (0.0.0.0 until Nak'ed).
        local: Ipv4Addr,
        send_local: bool,
        /// DNS servers requested / learned ([primary, secondary]); `None` = not requested.
        dns: [Option<Ipv4Addr>; 2],
        /// Server's address from its request.
        remote: Option<Ipv4Addr>,
    },
}

impl Ipcp {
    /// Our address.
    pub fn local(&self) -> Ipv4Addr {
        match self {
            Ipcp::Server { local, .. } | Ipcp::Client { local, .. } => *local,
        }
    }

    /// Peer's address.
    pub fn remote(&self) -> Option<Ipv4Addr> {
        match self {
            Ipcp::Server { peer, .. } => *peer,
            Ipcp::Client { remote, .. } => *remote,
        }
    }

    /// DNS servers (server: offered; client: learned, non-zero only).
    pub fn dns(&self) -> Vec<Ipv4Addr> {
        match self {
            Ipcp::Server { dns, .. } => dns.clone(),
            Ipcp::Client { dns, .. } => dns
                .iter()
                .flatten()
                .copied()
                .filter(|a| !a.is_unspecified())
                .collect(),
        }
    }
}

impl Negotiator for Ipcp {
    fn request_options(&mut self, out: &mut Vec<u8>) {
        match self {
            Ipcp::Server {
                local, send_local, ..
            } => {
                if *send_local {
                    frame::push_option(out, OPT_ADDRESS, &local.octets());
                }
            }
            Ipcp::Client {
                local,
                send_local,
                dns,
                ..
            } => {
                if *send_local {
                    frame::push_option(out, OPT_ADDRESS, &local.octets());
                }
                for (kind, d) in [OPT_DNS1, OPT_DNS2].into_iter().zip(dns.iter()) {
                    if let Some(a) = d {
                        frame::push_option(out, kind, &a.octets());
                    }
                }
            }
        }
    }

    fn acked(&mut self, _opts: &[u8]) {}

    fn nak_or_reject(&mut self, opts: &[u8], reject: bool) -> Result<(), &'static str> {
        for o in frame::options(opts) {
            match self {
                Ipcp::Server { send_local, .. } => {
                    if o.kind == OPT_ADDRESS && reject {
                        *send_local = false;
                    }
                }
                Ipcp::Client {
                    local,
                    send_local,
                    dns,
                    ..
                } => {
                    let slot = match o.kind {
                        OPT_DNS1 => dns.get_mut(0),
                        OPT_DNS2 => dns.get_mut(1),
                        _ => None,
                    };
                    match (o.kind, reject) {
                        (OPT_ADDRESS, true) => *send_local = false,
                        (OPT_ADDRESS, false) => {
                            if let Some(a) = addr_of(&o) {
                                *local = a;
                            }
                        }
                        (_, true) => {
                            if let Some(s) = slot {
                                *s = None;
                            }
                        }
                        (_, false) => {
                            if let (Some(s), Some(a)) = (slot, addr_of(&o)) {
                                *s = Some(a);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn judge(&mut self, opts: &[u8], j: &mut Judge) -> Result<(), ()> {
        match self {
            Ipcp::Server { peer, dns, .. } => {
                // Until the daemon assigns an address the request is silently discarded.
                let assigned = peer.ok_or(())?;
                for o in frame::options(opts) {
                    match (o.kind, addr_of(&o)) {
                        (OPT_ADDRESS, Some(a)) => {
                            if a != assigned {
                                j.nak(OPT_ADDRESS, &assigned.octets());
                            }
                        }
                        (OPT_DNS1 | OPT_DNS2, Some(a)) => {
                            let idx = usize::from(o.kind == OPT_DNS2);
                            match dns.get(idx) {
                                Some(d) if *d == a => {}
                                Some(d) => j.nak(o.kind, &d.octets()),
                                None => j.reject(&o),
                            }
                        }
                        // IP-Compression, NBNS and anything unknown are rejected.
                        (OPT_COMPRESSION | OPT_NBNS1 | OPT_NBNS2, _) => j.reject(&o),
                        _ => j.reject(&o),
                    }
                }
                if !frame::options(opts).any(|o| o.kind == OPT_ADDRESS) && j.is_clean() {
                    // The peer must take the assigned address (RFC 1332 §3.3: Nak to supply one).
                    j.nak(OPT_ADDRESS, &assigned.octets());
                }
            }
            Ipcp::Client { .. } => {
                for o in frame::options(opts) {
                    match (o.kind, addr_of(&o)) {
                        (OPT_ADDRESS, Some(a)) if !a.is_unspecified() => {}
                        _ => j.reject(&o),
                    }
                }
            }
        }
        Ok(())
    }

    fn peer_acked(&mut self, opts: &[u8]) {
        if let Ipcp::Client { remote, .. } = self {
            for o in frame::options(opts) {
                if o.kind == OPT_ADDRESS {
                    *remote = addr_of(&o);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_naks_wrong_address_and_dns() {
        let mut s = Ipcp::Server {
            local: Ipv4Addr::new(10, 0, 0, 1),
            send_local: true,
            peer: Some(Ipv4Addr::new(10, 0, 0, 2)),
            dns: vec![Ipv4Addr::new(1, 1, 1, 1)],
        };
        let mut req = Vec::new();
        frame::push_option(&mut req, OPT_ADDRESS, &[0, 0, 0, 0]);
        frame::push_option(&mut req, OPT_DNS1, &[0, 0, 0, 0]);
        let mut j = Judge::default();
        s.judge(&req, &mut j).unwrap();
        assert!(!j.is_clean());
        // DNS2 requested but not configured: rejected.
        let mut req = Vec::new();
        frame::push_option(&mut req, OPT_ADDRESS, &[10, 0, 0, 2]);
        frame::push_option(&mut req, OPT_DNS2, &[0, 0, 0, 0]);
        frame::push_option(&mut req, OPT_NBNS1, &[0, 0, 0, 0]);
        let mut j = Judge::default();
        s.judge(&req, &mut j).unwrap();
        assert!(!j.is_clean());
        // Before an address is assigned the request is ignored.
        if let Ipcp::Server { peer, .. } = &mut s {
            *peer = None;
        }
        assert!(s.judge(&req, &mut Judge::default()).is_err());
    }

    #[test]
    fn client_adopts_naks() {
        let mut c = Ipcp::Client {
            local: Ipv4Addr::UNSPECIFIED,
            send_local: true,
            dns: [Some(Ipv4Addr::UNSPECIFIED), Some(Ipv4Addr::UNSPECIFIED)],
            remote: None,
        };
        let mut nak = Vec::new();
        frame::push_option(&mut nak, OPT_ADDRESS, &[10, 0, 0, 9]);
        frame::push_option(&mut nak, OPT_DNS1, &[8, 8, 8, 8]);
        c.nak_or_reject(&nak, false).unwrap();
        let mut rej = Vec::new();
        frame::push_option(&mut rej, OPT_DNS2, &[0, 0, 0, 0]);
        c.nak_or_reject(&rej, true).unwrap();
        assert_eq!(c.local(), Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(c.dns(), vec![Ipv4Addr::new(8, 8, 8, 8)]);
    }
}
