#![no_main]
//! GrePacket::new_checked + GreRepr::parse + GreChannel::on_receive, and the IPv4 helper.

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_pptp::{GreChannel, GrePacket, GreRepr, ipv4_payload};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut ch = GreChannel::new(1, 4, t0);
    let _ = ipv4_payload(data);
    // Treat the input as a sequence of length-prefixed GRE packets.
    let mut rest = data;
    let mut now = t0;
    while let [len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (pkt, tail) = tail.split_at(n);
        rest = tail;
        now += Duration::from_millis(7);
        if let Ok(p) = GrePacket::new_checked(pkt) {
            let _ = p.payload();
            if let Ok(r) = GreRepr::parse(&p) {
                assert!(r.header_len() + usize::from(r.payload_len) <= pkt.len());
                let mut v = Vec::new();
                r.emit_vec(&mut v);
                v.resize(v.len() + usize::from(r.payload_len), 0);
                let re = GrePacket::new_checked(&v[..]).map(|p| GreRepr::parse(&p));
                assert_eq!(re, Ok(Ok(r)));
                let _ = ch.on_receive(now, &r);
            }
        }
        let mut out = Vec::new();
        let _ = ch.write_header(1, &mut out);
        let _ = ch.poll_ack_only(now);
    }
});
