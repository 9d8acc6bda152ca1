#![no_main]
//! `datapath::ipsec::receive_esp`: ESP on the NAT-T port and raw ESP (IPv4 header first) into the
//! data path, with one ESP SA pair and one L2TP session link on real sockets bound to
//! 127.0.0.1 (needs CAP_NET_RAW; answers go to 127.0.0.2). The harness holds the inbound SA's
//! keys, so the input writes the *plaintext*: the next-header value and the inner UDP header,
//! L2TP and PPP behind it — past the ICV check random bytes never get. Operations: inner
//! plaintext as given; a UDP header to the L2TP port around a data message for the session;
//! IP through an already negotiated link (MPPE by its client); raw ESP packets (parsed IPv4
//! header); arbitrary NAT-T datagrams; time. Invariants: no panic, no hang, bounded
//! deliveries. (The anti-spoofing verdict itself is `daemon_source_allowed`'s.)

use std::cell::RefCell;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_dataplane::fuzzing::{CLIENT_ADDR, Glue, PEER, SESSION, TUNNEL};
use sluice_fuzz::{Ops, ipv4};

thread_local! {
    static GLUE: RefCell<Glue> = RefCell::new(Glue::new().expect("sockets on 127.0.0.1 (CAP_NET_RAW)"));
}

/// UDP header (source port, destination 1701) + L2TP data header for the session + frame.
fn udp_l2tp(sport: u16, seq: Option<(u16, u16)>, frame: &[u8]) -> Vec<u8> {
    let mut l2tp = Vec::new();
    sluice_l2tp::emit_data_header(&mut l2tp, TUNNEL, SESSION, seq);
    l2tp.extend_from_slice(frame);
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&1701u16.to_be_bytes());
    u.extend_from_slice(&u16::try_from(8 + l2tp.len()).unwrap_or(0).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(&l2tp);
    u
}

fuzz_target!(|data: &[u8]| {
    GLUE.with(|g| {
        let mut g = g.borrow_mut();
        let mut ops = Ops::new(data);
        let flags = ops.u8();
        let sequencing = flags & 1 != 0;
        g.reset(sequencing, false, flags & 4 != 0);
        let mut now = Instant::now();
        let mut ns = 0u16;
        let mut rounds = 0;
        while !ops.is_empty() && rounds < 64 {
            rounds += 1;
            let op = ops.u8();
            match op % 7 {
                0 => {
                    // Any plaintext (UDP header and all) and next-header value.
                    let nh = if op & 0x80 != 0 { ops.u8() } else { 17 };
                    g.esp_inner(nh, ops.long(4096), now);
                }
                1 | 2 => {
                    let sport = if op & 0x40 != 0 { ops.u16() } else { 1701 };
                    let seq = (op & 0x20 != 0).then(|| {
                        ns = ns.wrapping_add(1);
                        (ns, 0)
                    });
                    let u = udp_l2tp(sport, seq, ops.long(2048));
                    g.esp_inner(17, &u, now);
                }
                3 => {
                    let body = ops.long(2048);
                    let ip = match op >> 6 {
                        0 => body.to_vec(),
                        1 => ipv4(CLIENT_ADDR, [192, 168, 77, 2].into(), 6, body),
                        _ => ipv4(ops.u32().into(), [192, 168, 77, 2].into(), 6, body),
                    };
                    if let Some(frame) = g.client_frame(&ip) {
                        let seq = sequencing.then(|| {
                            ns = ns.wrapping_add(1);
                            (ns, 0)
                        });
                        g.esp_inner(17, &udp_l2tp(1701, seq, &frame), now);
                    }
                }
                4 => {
                    // Raw ESP: an IPv4 header (as given, or ours around the bytes).
                    let body = ops.long(4096);
                    let mut pkt = if op & 0x80 != 0 {
                        body.to_vec()
                    } else {
                        ipv4(PEER, [127, 0, 0, 1].into(), 50, body)
                    };
                    g.esp_raw(&mut pkt, now);
                }
                5 => {
                    let mut b = ops.long(4096).to_vec();
                    g.natt_datagram(&mut b, now);
                }
                _ => {
                    now += Duration::from_millis(u64::from(ops.u16()) * 10);
                    g.timeout(now);
                }
            }
            for ip in g.take_delivered() {
                assert!(ip.len() <= 4096, "delivered {} octets", ip.len());
            }
            g.drain();
        }
    });
});
