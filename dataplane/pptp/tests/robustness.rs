//! Deterministic pseudo-random and mutation inputs into every parser and engine: no panics,
//! bounded buffers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use sluice_pptp::control::*;
use sluice_pptp::{
    ControlConnection, Framer, GreChannel, GrePacket, GreRepr, PacConfig, Pns, PnsConfig,
    ipv4_payload,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn valid_stream() -> Vec<u8> {
    let msgs = [
        ControlMessage::Sccrq(Sccrq {
            protocol_version: PROTOCOL_VERSION,
            framing_capabilities: FramingCapabilities::ALL,
            bearer_capabilities: BearerCapabilities::ALL,
            maximum_channels: 0,
            firmware_revision: 1,
            host_name: "h".into(),
            vendor: "v".into(),
        }),
        ControlMessage::EchoRequest(EchoRequest { identifier: 3 }),
        ControlMessage::Ocrq(Ocrq {
            call_id: 1,
            call_serial_number: 1,
            minimum_bps: 1,
            maximum_bps: 2,
            bearer_type: BearerType::Any,
            framing_type: FramingType::Any,
            recv_window: 4,
            processing_delay: 0,
            phone_number: "1".into(),
            subaddress: String::new(),
        }),
        ControlMessage::SetLinkInfo(SetLinkInfo {
            peer_call_id: 1,
            send_accm: 0,
            recv_accm: 0,
        }),
        ControlMessage::CallClearRequest(CallClearRequest { call_id: 1 }),
        ControlMessage::Sccrp(Sccrp {
            protocol_version: PROTOCOL_VERSION,
            result: SccrpResult::Success,
            error: GeneralError::None,
            framing_capabilities: FramingCapabilities::ALL,
            bearer_capabilities: BearerCapabilities::ALL,
            maximum_channels: 1,
            firmware_revision: 1,
            host_name: "p".into(),
            vendor: "v".into(),
        }),
        ControlMessage::Ocrp(Ocrp {
            call_id: 9,
            peer_call_id: 1,
            result: OcrpResult::Connected,
            error: GeneralError::None,
            cause: 0,
            connect_speed: 0,
            recv_window: 1,
            processing_delay: 0,
            physical_channel_id: 0,
        }),
        ControlMessage::StopCcrq(StopCcrq {
            reason: StopReason::None,
        }),
    ];
    msgs.iter().flat_map(|m| m.to_bytes()).collect()
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        if v.is_empty() {
            break;
        }
        match rng.below(4) {
            0 => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 => {
                let i = rng.below(v.len());
                v.truncate(i);
            }
            2 => {
                let i = rng.below(v.len());
                v.insert(i, rng.next() as u8);
            }
            _ => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
        }
    }
    v
}

fn inputs(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    let base = valid_stream();
    (0..count)
        .map(|i| {
            if i % 2 == 0 {
                mutate(&mut rng, &base)
            } else {
                {
                    let n = rng.below(400);
                    rng.bytes(n)
                }
            }
        })
        .collect()
}

#[test]
fn framer_and_parsers_never_panic() {
    let mut rng = Rng(0xfeed_beef);
    for input in inputs(1, 4000) {
        let mut f = Framer::new();
        for chunk in input.chunks(1 + rng.below(64)) {
            let _ = f.push(chunk);
            assert!(f.buffered() <= MAX_MESSAGE_LEN);
        }
        let _ = ControlMessage::parse_bytes(&input);
        let p = ControlPacket::new_unchecked(&input[..]);
        let _ = (p.length(), p.body(), p.message_type(), p.magic_cookie());
    }
    // Every valid header with random bodies parses (fixed layouts have no invalid bodies).
    for t in 1..=15u16 {
        let ty = MessageType::from_u16(t).unwrap();
        for _ in 0..50 {
            let mut b = rng.bytes(ty.fixed_len());
            b[..12].copy_from_slice(&{
                let mut h = [0u8; 12];
                h[..2].copy_from_slice(&(ty.fixed_len() as u16).to_be_bytes());
                h[2..4].copy_from_slice(&1u16.to_be_bytes());
                h[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                h[8..10].copy_from_slice(&t.to_be_bytes());
                h
            });
            let m = ControlMessage::parse_bytes(&b).unwrap();
            // After one lossy (UTF-8 replacement) round, emit/parse is a fixed point.
            let m2 = ControlMessage::parse_bytes(&m.to_bytes()).unwrap();
            assert_eq!(ControlMessage::parse_bytes(&m2.to_bytes()).unwrap(), m2);
        }
    }
}

#[test]
fn pac_engine_never_panics() {
    let mut rng = Rng(42);
    let t0 = Instant::now();
    for input in inputs(2, 3000) {
        let mut pac = ControlConnection::new(
            PacConfig {
                max_calls: 8,
                ..Default::default()
            },
            t0,
        );
        let mut now = t0;
        for chunk in input.chunks(1 + rng.below(200)) {
            now += Duration::from_millis(rng.below(20_000) as u64);
            let _ = pac.handle_input(now, chunk);
            pac.handle_timeout(now);
            while let Some(ev) = pac.poll_event() {
                if let sluice_pptp::ControlEvent::CallRequested { peer_call_id, .. } = ev {
                    let _ = pac.accept_call(now, peer_call_id, rng.next() as u16);
                }
            }
            while pac.poll_transmit().is_some() {}
            if rng.below(10) == 0 {
                pac.disconnect_call(now, rng.next() as u16, "x");
            }
            let _ = pac.poll_timeout();
        }
        assert!(pac.calls().count() <= 8);
    }
}

#[test]
fn pns_engine_never_panics() {
    let mut rng = Rng(7);
    let t0 = Instant::now();
    for input in inputs(3, 3000) {
        let mut pns = Pns::new(PnsConfig::default(), t0);
        let _ = pns.poll_transmit();
        let mut now = t0;
        for chunk in input.chunks(1 + rng.below(200)) {
            now += Duration::from_millis(rng.below(20_000) as u64);
            let _ = pns.handle_input(now, chunk);
            let _ = pns.open_call(now, rng.next() as u16, 4);
            let _ = pns.clear_call(now, rng.next() as u16);
            pns.handle_timeout(now);
            while pns.poll_event().is_some() {}
            while pns.poll_transmit().is_some() {}
        }
    }
}

#[test]
fn gre_parsers_and_channel_never_panic() {
    let mut rng = Rng(99);
    let t0 = Instant::now();
    let mut ch = GreChannel::new(1, 4, t0);
    let base = {
        let mut v = Vec::new();
        GreRepr {
            call_id: 1,
            seq: Some(5),
            ack: Some(0),
            payload_len: 4,
        }
        .emit_vec(&mut v);
        v.extend_from_slice(b"abcd");
        v
    };
    let mut now = t0;
    let mut accepted = 0;
    for i in 0..20_000 {
        let input = if i % 2 == 0 {
            mutate(&mut rng, &base)
        } else {
            let n = rng.below(40);
            rng.bytes(n)
        };
        now += Duration::from_millis(1);
        if let Ok(p) = GrePacket::new_checked(&input[..]) {
            let _ = (p.payload(), p.seq(), p.ack(), p.call_id());
            if let Ok(r) = GreRepr::parse(&p) {
                assert!(r.header_len() + usize::from(r.payload_len) <= input.len());
                if ch.on_receive(now, &r) == sluice_pptp::RxVerdict::Accept {
                    accepted += 1;
                }
            }
        }
        let mut out = Vec::new();
        let _ = ch.write_header(4, &mut out);
        let _ = ch.poll_ack_only(now);
        let _ = ipv4_payload(&input);
    }
    assert!(accepted > 0);
}
