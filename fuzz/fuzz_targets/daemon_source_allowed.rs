#![no_main]
//! `datapath::source_allowed`, the gateway's anti-spoofing check on every decapsulated packet
//! (issue 19, item 2: IPv6 and malformed headers got through). Input: the session's address
//! (or none), up to 4 routed networks, then the packet. Invariants: an allowed packet is
//! well-formed IPv4 from the address or a routed network; a minimal well-formed packet from
//! the address is allowed.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use libfuzzer_sys::fuzz_target;
use sluice_dataplane::fuzzing::source_allowed;
use sluice_fuzz::{Ops, ipv4, well_formed_ipv4_from};

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let flags = ops.u8();
    let addr = Ipv4Addr::from(ops.u32());
    let address = (flags & 1 != 0).then_some(addr);
    let mut routes = Vec::new();
    for _ in 0..(flags >> 1) % 5 {
        let a = Ipv4Addr::from(ops.u32());
        if let Ok(n) = Ipv4Net::new(a, ops.u8() % 33) {
            routes.push(n);
        }
    }
    let rest = ops.bytes(usize::MAX);
    // The packet as given, or (flags bit 7) a header from the address around it.
    let ip = if flags & 0x80 != 0 {
        ipv4(addr, Ipv4Addr::new(10, 0, 0, 1), 17, rest)
    } else {
        rest.to_vec()
    };
    let owns = |s: Ipv4Addr| address == Some(s) || routes.iter().any(|n| n.contains(&s));
    let allowed = source_allowed(address, &routes, &ip);
    if allowed {
        assert!(well_formed_ipv4_from(&ip, owns), "let through: {ip:02x?}");
    }
    if flags & 0x81 == 0x81 && ip.len() <= usize::from(u16::MAX) {
        assert!(
            allowed,
            "well-formed packet from the session's address refused"
        );
    }
});
