#![no_main]
//! `datapath::l2tp::handle_datagram`: L2TP on the L2TP port into the data path, with one session
//! link and real sockets on 127.0.0.1 (needs CAP_NET_RAW; whatever the link answers goes to
//! 127.0.0.2). Operations: any datagram from the session's peer or another source; a data
//! message with the session's IDs (optionally sequenced) around a PPP frame of the input's;
//! IP through an already negotiated link (its client encrypts it with MPPE); time passing.
//! Control messages end up in the control queue. Invariants: no panic, no hang, bounded
//! deliveries. (The anti-spoofing verdict itself is `daemon_source_allowed`'s.)

use std::cell::RefCell;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_dataplane::fuzzing::{CLIENT_ADDR, Glue, SESSION, TUNNEL};
use sluice_fuzz::{Ops, ipv4};

thread_local! {
    static GLUE: RefCell<Glue> = RefCell::new(Glue::new().expect("sockets on 127.0.0.1 (CAP_NET_RAW)"));
}

fn data_message(seq: Option<(u16, u16)>, frame: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    sluice_l2tp::emit_data_header(&mut m, TUNNEL, SESSION, seq);
    m.extend_from_slice(frame);
    m
}

fuzz_target!(|data: &[u8]| {
    GLUE.with(|g| {
        let mut g = g.borrow_mut();
        let mut ops = Ops::new(data);
        let flags = ops.u8();
        let sequencing = flags & 1 != 0;
        g.reset(sequencing, flags & 2 == 0, flags & 4 != 0);
        let mut now = Instant::now();
        let mut ns = 0u16;
        let mut rounds = 0;
        while !ops.is_empty() && rounds < 64 {
            rounds += 1;
            let op = ops.u8();
            match op % 6 {
                0 => {
                    let mut b = ops.long(4096).to_vec();
                    g.l2tp_plain(&mut b, op & 0x10 == 0, now);
                }
                1 | 2 => {
                    // A data message for the session around the input's PPP frame.
                    let seq = (op & 0x20 != 0).then(|| {
                        ns = ns.wrapping_add(1);
                        (ns, 0)
                    });
                    let mut m = data_message(seq, ops.long(2048));
                    g.l2tp_plain(&mut m, true, now);
                }
                3 | 4 => {
                    // IP from the negotiated client: as given or with a header of the input's
                    // choosing (own address or another).
                    let body = ops.long(2048);
                    let ip = match op >> 6 {
                        0 => body.to_vec(),
                        1 => ipv4(CLIENT_ADDR, [192, 168, 77, 2].into(), 17, body),
                        _ => ipv4(ops.u32().into(), [192, 168, 77, 2].into(), 17, body),
                    };
                    if let Some(frame) = g.client_frame(&ip) {
                        let seq = sequencing.then(|| {
                            ns = ns.wrapping_add(1);
                            (ns, 0)
                        });
                        let mut m = data_message(seq, &frame);
                        g.l2tp_plain(&mut m, true, now);
                    }
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
