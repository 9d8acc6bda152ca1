//! Enhanced GRE header (RFC 2637 §4.1), IPv4 helper and GRE channel (§4.4) tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use sluice_pptp::channel::{ACK_DELAY, seq_gt};
use sluice_pptp::{GreChannel, GreError, GrePacket, GreRepr, Ipv4Error, RxVerdict, ipv4_payload};

#[test]
fn gre_known_layouts() {
    // Data with sequence and acknowledgement: K|S = 0x30, A|Ver1 = 0x81.
    let r = GreRepr {
        call_id: 0x0102,
        seq: Some(7),
        ack: Some(3),
        payload_len: 5,
    };
    let mut v = Vec::new();
    r.emit_vec(&mut v);
    assert_eq!(
        v,
        [
            0x30, 0x81, 0x88, 0x0B, 0x00, 0x05, 0x01, 0x02, 0, 0, 0, 7, 0, 0, 0, 3
        ]
    );
    assert_eq!(r.header_len(), 16);

    // Data without ack.
    let r = GreRepr {
        call_id: 0xBEEF,
        seq: Some(0xFFFF_FFFF),
        ack: None,
        payload_len: 1,
    };
    let mut buf = [0u8; 12];
    assert_eq!(r.emit(&mut buf).unwrap(), 12);
    assert_eq!(
        buf,
        [
            0x30, 0x01, 0x88, 0x0B, 0x00, 0x01, 0xBE, 0xEF, 0xFF, 0xFF, 0xFF, 0xFF
        ]
    );
    assert_eq!(r.emit(&mut buf[..11]), Err(GreError::BufferTooSmall));

    // Ack only: K = 0x20.
    let r = GreRepr {
        call_id: 1,
        seq: None,
        ack: Some(0x01020304),
        payload_len: 0,
    };
    let mut v = Vec::new();
    r.emit_vec(&mut v);
    assert_eq!(v, [0x20, 0x81, 0x88, 0x0B, 0, 0, 0, 1, 1, 2, 3, 4]);
}

#[test]
fn gre_parse_round_trip_and_payload() {
    for (seq, ack) in [(Some(1), Some(2)), (Some(9), None), (None, Some(4))] {
        let payload: &[u8] = if seq.is_some() { b"hello" } else { b"" };
        let r = GreRepr {
            call_id: 77,
            seq,
            ack,
            payload_len: payload.len() as u16,
        };
        let mut v = Vec::new();
        r.emit_vec(&mut v);
        v.extend_from_slice(payload);
        v.extend_from_slice(b"trailing");
        let p = GrePacket::new_checked(&v[..]).unwrap();
        assert_eq!(GreRepr::parse(&p).unwrap(), r);
        assert_eq!(p.payload(), payload);
        assert_eq!(p.header_len(), r.header_len());
    }
}

#[test]
fn gre_rejects() {
    let base = [
        0x30u8, 0x81, 0x88, 0x0B, 0x00, 0x01, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0xAA,
    ];
    assert!(GrePacket::new_checked(&base[..]).is_ok());
    let with = |i: usize, b: u8| {
        let mut v = base.to_vec();
        v[i] = b;
        v
    };
    assert_eq!(
        GrePacket::new_checked(&with(1, 0x80)[..]).unwrap_err(),
        GreError::BadVersion(0)
    );
    assert_eq!(
        GrePacket::new_checked(&with(3, 0x0C)[..]).unwrap_err(),
        GreError::BadProtocol(0x880C)
    );
    assert_eq!(
        GrePacket::new_checked(&with(0, 0x10)[..]).unwrap_err(),
        GreError::KeyMissing
    );
    assert_eq!(
        GrePacket::new_checked(&with(0, 0xB0)[..]).unwrap_err(),
        GreError::UnsupportedFlags
    );
    assert_eq!(
        GrePacket::new_checked(&with(0, 0x70)[..]).unwrap_err(),
        GreError::UnsupportedFlags
    );
    assert_eq!(
        GrePacket::new_checked(&with(5, 2)[..]).unwrap_err(),
        GreError::Truncated
    );
    assert_eq!(
        GrePacket::new_checked(&base[..7]).unwrap_err(),
        GreError::Truncated
    );
    assert_eq!(
        GrePacket::new_checked(&base[..15]).unwrap_err(),
        GreError::Truncated
    );
    // s, recur and flag bits are ignored.
    assert!(GrePacket::new_checked(&with(0, 0x3F)[..]).is_ok());
    // Payload without S.
    let v = [0x20u8, 0x01, 0x88, 0x0B, 0, 1, 0, 1, 0xAA];
    let p = GrePacket::new_checked(&v[..]).unwrap();
    assert_eq!(
        GreRepr::parse(&p).unwrap_err(),
        GreError::PayloadWithoutSequence
    );
}

fn ipv4(total_extra: usize, proto: u8, frag: u16) -> Vec<u8> {
    let gre = [0x30u8, 0x01, 0x88, 0x0B, 0, 0, 0, 1, 0, 0, 0, 0];
    let total = 20 + gre.len();
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&(total as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&frag.to_be_bytes());
    v.extend_from_slice(&[64, proto, 0, 0, 10, 1, 2, 3, 10, 0, 0, 1]);
    v.extend_from_slice(&gre);
    v.extend(std::iter::repeat_n(0u8, total_extra));
    v
}

#[test]
fn ipv4_helper() {
    let v = ipv4(4, 47, 0x4000); // DF set, padding after total length
    let (src, gre) = ipv4_payload(&v).unwrap();
    assert_eq!(src, Ipv4Addr::new(10, 1, 2, 3));
    assert_eq!(gre.len(), 12);
    assert!(GrePacket::new_checked(gre).is_ok());
    assert_eq!(
        ipv4_payload(&ipv4(0, 6, 0)).unwrap_err(),
        Ipv4Error::NotGre(6)
    );
    assert_eq!(
        ipv4_payload(&ipv4(0, 47, 0x2000)).unwrap_err(),
        Ipv4Error::Fragment
    );
    assert_eq!(
        ipv4_payload(&ipv4(0, 47, 0x0001)).unwrap_err(),
        Ipv4Error::Fragment
    );
    let full = ipv4(0, 47, 0);
    assert_eq!(
        ipv4_payload(&full[..full.len() - 1]).unwrap_err(),
        Ipv4Error::Truncated
    );
    assert_eq!(ipv4_payload(&full[..19]).unwrap_err(), Ipv4Error::Truncated);
    let mut v6 = full.clone();
    v6[0] = 0x65;
    assert_eq!(ipv4_payload(&v6).unwrap_err(), Ipv4Error::BadVersion(6));
    let mut short_ihl = full.clone();
    short_ihl[0] = 0x44;
    assert_eq!(
        ipv4_payload(&short_ihl).unwrap_err(),
        Ipv4Error::BadHeaderLength
    );
    let mut big_ihl = full.clone();
    big_ihl[0] = 0x4F; // 60-byte header > total length 32
    assert_eq!(
        ipv4_payload(&big_ihl).unwrap_err(),
        Ipv4Error::BadHeaderLength
    );
}

#[test]
fn serial_number_comparison() {
    assert!(seq_gt(1, 0));
    assert!(seq_gt(0, u32::MAX));
    assert!(!seq_gt(u32::MAX, 0));
    assert!(!seq_gt(5, 5));
    assert!(seq_gt(0x8000_0000 - 1, 0));
}

fn data(seq: u32, ack: Option<u32>) -> GreRepr {
    GreRepr {
        call_id: 1,
        seq: Some(seq),
        ack,
        payload_len: 10,
    }
}

#[test]
fn channel_receive_order_rules() {
    let t0 = Instant::now();
    let mut ch = GreChannel::new(5, 8, t0);
    assert_eq!(ch.on_receive(t0, &data(100, None)), RxVerdict::Accept); // any first seq
    assert_eq!(ch.on_receive(t0, &data(100, None)), RxVerdict::Duplicate);
    assert_eq!(ch.on_receive(t0, &data(103, None)), RxVerdict::Accept); // gap allowed
    assert_eq!(ch.on_receive(t0, &data(101, None)), RxVerdict::OutOfWindow); // late
    assert_eq!(ch.on_receive(t0, &data(104, None)), RxVerdict::Accept);
    let ack_only = GreRepr {
        call_id: 1,
        seq: None,
        ack: Some(0),
        payload_len: 0,
    };
    assert_eq!(ch.on_receive(t0, &ack_only), RxVerdict::AckOnly);
    let s = ch.stats();
    assert_eq!(
        (
            s.rx_accepted,
            s.rx_duplicate,
            s.rx_out_of_window,
            s.rx_ack_only
        ),
        (3, 1, 1, 1)
    );

    // Wrap-around.
    let mut ch = GreChannel::new(5, 8, t0);
    assert_eq!(
        ch.on_receive(t0, &data(u32::MAX - 1, None)),
        RxVerdict::Accept
    );
    assert_eq!(ch.on_receive(t0, &data(u32::MAX, None)), RxVerdict::Accept);
    assert_eq!(ch.on_receive(t0, &data(0, None)), RxVerdict::Accept);
    assert_eq!(
        ch.on_receive(t0, &data(u32::MAX, None)),
        RxVerdict::OutOfWindow
    );
}

#[test]
fn channel_acks_piggyback_or_delayed() {
    let t0 = Instant::now();
    let mut ch = GreChannel::new(9, 8, t0);
    assert_eq!(ch.poll_timeout(), None);
    ch.on_receive(t0, &data(0, None));
    ch.on_receive(t0, &data(1, None));
    assert_eq!(ch.poll_timeout(), Some(t0 + ACK_DELAY));
    assert_eq!(ch.poll_ack_only(t0), None); // not due yet
    // Piggyback on data.
    let mut out = Vec::new();
    let r = ch.write_header(3, &mut out).repr;
    assert_eq!(
        r,
        GreRepr {
            call_id: 9,
            seq: Some(0),
            ack: Some(1),
            payload_len: 3
        }
    );
    assert_eq!(out.len(), 16);
    assert_eq!(ch.poll_timeout(), None);
    // Next data packet has no ack to carry.
    let r = ch.write_header(3, &mut out).repr;
    assert_eq!(r.ack, None);
    // Delayed ack-only.
    ch.on_receive(t0, &data(2, None));
    ch.handle_timeout(t0 + ACK_DELAY);
    let a = ch.poll_ack_only(t0 + ACK_DELAY).unwrap();
    assert_eq!(
        a,
        GreRepr {
            call_id: 9,
            seq: None,
            ack: Some(2),
            payload_len: 0
        }
    );
    assert_eq!(ch.poll_ack_only(t0 + ACK_DELAY * 2), None);
    assert_eq!(ch.stats().tx_ack_only, 1);
}

/// The peer's window is never a reason to hold data back (RFC 2637 §4.4 as deployed stacks do
/// it, see `channel.rs`): packets beyond it go out and are counted; 0 means no limit.
#[test]
fn channel_sends_beyond_the_window_and_counts_it() {
    let t0 = Instant::now();
    let mut ch = GreChannel::new(9, 3, t0);
    let mut out = Vec::new();
    for i in 0..3 {
        assert_eq!(ch.write_header(1, &mut out).repr.seq, Some(i));
    }
    assert_eq!(ch.unacked(), 3);
    assert_eq!(ch.stats().tx_beyond_window, 0);
    let before = out.len();
    assert_eq!(ch.write_header(1, &mut out).repr.seq, Some(3));
    assert!(out.len() > before, "the header was written");
    assert_eq!(ch.stats().tx_beyond_window, 1);
    // Bogus ack for an unsent packet and a stale ack are ignored.
    let ack = |n| GreRepr {
        call_id: 1,
        seq: None,
        ack: Some(n),
        payload_len: 0,
    };
    ch.on_receive(t0, &ack(50));
    assert_eq!(ch.unacked(), 4);
    // Ack of seq 2 leaves one unacknowledged.
    ch.on_receive(t0, &ack(2));
    assert_eq!(ch.unacked(), 1);
    ch.on_receive(t0, &ack(0));
    assert_eq!(ch.unacked(), 1);
    ch.write_header(1, &mut out);
    ch.write_header(1, &mut out);
    assert_eq!(ch.stats().tx_beyond_window, 1);
    ch.write_header(1, &mut out);
    assert_eq!(ch.stats().tx_beyond_window, 2);
    assert_eq!(ch.stats().tx_data, 7);

    // A window of 0 is no limit.
    let mut ch = GreChannel::new(9, 0, t0);
    assert_eq!(ch.window(), None);
    for _ in 0..1000 {
        ch.write_header(1, &mut out);
    }
    assert_eq!(ch.stats().tx_beyond_window, 0);
}

/// Deterministic xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

struct InFlight {
    at: Instant,
    bytes: Vec<u8>,
}

/// Two channels over a lossy, reordering, duplicating link, simulated time.
#[test]
fn channel_pair_lossy_link() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let t0 = Instant::now();
    let mut now = t0;
    let mut a = GreChannel::new(200, 16, t0); // A sends to call id 200 (B's)
    let mut b = GreChannel::new(100, 16, t0); // B sends to call id 100 (A's)
    let mut to_b: VecDeque<InFlight> = VecDeque::new();
    let mut to_a: VecDeque<InFlight> = VecDeque::new();
    let mut delivered_b: Vec<u32> = Vec::new();
    let mut delivered_a: Vec<u32> = Vec::new();
    let mut sent_a = 0u32;
    let mut sent_b = 0u32;

    fn send(rng: &mut Rng, q: &mut VecDeque<InFlight>, now: Instant, bytes: Vec<u8>) {
        if rng.chance(10) {
            return; // loss
        }
        // Occasional extra delay reorders packets.
        let extra = if rng.chance(10) { rng.next() % 10 } else { 0 };
        let delay = Duration::from_millis(10 + extra);
        if rng.chance(5) {
            q.push_back(InFlight {
                at: now + delay + Duration::from_millis(3),
                bytes: bytes.clone(),
            });
        }
        q.push_back(InFlight {
            at: now + delay,
            bytes,
        });
    }

    fn deliver(
        ch: &mut GreChannel,
        q: &mut VecDeque<InFlight>,
        now: Instant,
        expect_call: u16,
        delivered: &mut Vec<u32>,
    ) {
        let mut keep = VecDeque::new();
        while let Some(p) = q.pop_front() {
            if p.at > now {
                keep.push_back(p);
                continue;
            }
            let pkt = GrePacket::new_checked(&p.bytes[..]).unwrap();
            let repr = GreRepr::parse(&pkt).unwrap();
            assert_eq!(repr.call_id, expect_call);
            if ch.on_receive(now, &repr) == RxVerdict::Accept {
                let v = u32::from_be_bytes(pkt.payload().try_into().unwrap());
                delivered.push(v);
            }
        }
        *q = keep;
    }

    for _step in 0..5000 {
        now += Duration::from_millis(2);
        // A sends a burst sometimes; B sends less.
        if rng.chance(60) {
            let mut out = Vec::new();
            a.write_header(4, &mut out);
            out.extend_from_slice(&sent_a.to_be_bytes());
            sent_a += 1;
            send(&mut rng, &mut to_b, now, out);
        }
        if rng.chance(10) {
            let mut out = Vec::new();
            b.write_header(4, &mut out);
            out.extend_from_slice(&sent_b.to_be_bytes());
            sent_b += 1;
            send(&mut rng, &mut to_a, now, out);
        }
        deliver(&mut b, &mut to_b, now, 200, &mut delivered_b);
        deliver(&mut a, &mut to_a, now, 100, &mut delivered_a);
        for (ch, q) in [(&mut a, &mut to_b), (&mut b, &mut to_a)] {
            if let Some(ack) = ch.poll_ack_only(now) {
                let mut out = Vec::new();
                ack.emit_vec(&mut out);
                send(&mut rng, q, now, out);
            }
        }
    }
    // Delivered payloads are strictly increasing (no duplicates, nothing older).
    for d in [&delivered_a, &delivered_b] {
        assert!(d.windows(2).all(|w| w[0] < w[1]), "not strictly increasing");
    }
    assert!(
        delivered_b.len() as f64 > sent_a as f64 * 0.6,
        "{} of {}",
        delivered_b.len(),
        sent_a
    );
    assert!(sent_a > 1000, "window blocked sending: {sent_a}");
    let sa = a.stats();
    let sb = b.stats();
    assert!(sb.rx_duplicate + sb.rx_out_of_window > 0);
    assert!(sb.tx_ack_only > 0);
    assert_eq!(sa.tx_data, sent_a as u64, "every packet went out");
    // B's acknowledgements keep up: at most half its default window (32) accepted and not yet
    // acknowledged, plus what is in flight and what its acks lost.
    assert!(a.unacked() <= 48, "unacked {}", a.unacked());
}

#[test]
fn acks_go_out_after_half_the_advertised_window() {
    let t0 = std::time::Instant::now();
    let mut rx = GreChannel::new(7, 64, t0);
    rx.set_recv_window(8);
    for seq in 0..3u32 {
        let v = rx.on_receive(
            t0,
            &GreRepr {
                call_id: 1,
                seq: Some(seq),
                ack: None,
                payload_len: 10,
            },
        );
        assert_eq!(v, RxVerdict::Accept);
        assert!(
            rx.poll_ack_only(t0).is_none(),
            "ack delayed below the threshold"
        );
    }
    rx.on_receive(
        t0,
        &GreRepr {
            call_id: 1,
            seq: Some(3),
            ack: None,
            payload_len: 10,
        },
    );
    let ack = rx
        .poll_ack_only(t0)
        .expect("ack due at once after window/2 packets");
    assert_eq!(ack.ack, Some(3));
    assert!(rx.poll_ack_only(t0).is_none());
}
