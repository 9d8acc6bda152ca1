//! PAC ↔ PNS engine pair tests in memory with simulated time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use sluice_pptp::control::*;
use sluice_pptp::pac::{CallState, MAX_PENDING_CALLS};
use sluice_pptp::{ControlConnection, ControlEvent, Error, PacConfig, Pns, PnsConfig, PnsEvent};

struct Pair {
    now: Instant,
    pac: ControlConnection,
    pns: Pns,
    pac_events: Vec<ControlEvent>,
    pns_events: Vec<PnsEvent>,
    /// Bytes PAC → PNS seen on the wire, decoded.
    pac_sent: Vec<ControlMessage>,
    pns_sent: Vec<ControlMessage>,
}

impl Pair {
    fn new(pac_cfg: PacConfig) -> Self {
        let now = Instant::now();
        Self {
            now,
            pac: ControlConnection::new(pac_cfg, now),
            pns: Pns::new(
                PnsConfig {
                    hostname: "client".into(),
                    vendor: "cv".into(),
                    ..Default::default()
                },
                now,
            ),
            pac_events: vec![],
            pns_events: vec![],
            pac_sent: vec![],
            pns_sent: vec![],
        }
    }

    fn established() -> Self {
        let mut p = Self::new(PacConfig {
            max_calls: 4,
            ..Default::default()
        });
        p.pump();
        assert!(p.pac.is_established());
        assert!(p.pns.is_established());
        p
    }

    /// Moves bytes both ways until quiet; collects events.
    fn pump(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(b) = self.pns.poll_transmit() {
                moved = true;
                self.pns_sent
                    .extend(sluice_pptp::Framer::new().push(&b).unwrap());
                let _ = self.pac.handle_input(self.now, &b);
            }
            while let Some(b) = self.pac.poll_transmit() {
                moved = true;
                self.pac_sent
                    .extend(sluice_pptp::Framer::new().push(&b).unwrap());
                let _ = self.pns.handle_input(self.now, &b);
            }
            while let Some(e) = self.pac.poll_event() {
                self.pac_events.push(e);
            }
            while let Some(e) = self.pns.poll_event() {
                self.pns_events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("pump did not settle");
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.pac.poll_timeout(), self.pns.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = t.max(self.now);
                    self.pac.handle_timeout(self.now);
                    self.pns.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
        self.pac.handle_timeout(self.now);
        self.pns.handle_timeout(self.now);
        self.pump();
    }

    /// PNS opens a call, PAC accepts with `local`.
    fn open(&mut self, pns_id: u16, pac_id: u16) {
        self.pns.open_call(self.now, pns_id, 32).unwrap();
        self.pump();
        let req = self.pac_events.iter().rev().find_map(|e| match e {
            ControlEvent::CallRequested { peer_call_id, .. } if *peer_call_id == pns_id => {
                Some(*peer_call_id)
            }
            _ => None,
        });
        assert_eq!(req, Some(pns_id));
        self.pac.accept_call(self.now, pns_id, pac_id).unwrap();
        self.pump();
        assert!(self.pns_events.contains(&PnsEvent::CallConnected {
            local_call_id: pns_id,
            peer_call_id: pac_id,
            peer_recv_window: 64
        }));
    }
}

fn closed_reason<T>(events: &[T], f: impl Fn(&T) -> Option<&String>) -> Option<String> {
    events.iter().find_map(|e| f(e).cloned())
}
fn pac_closed(p: &Pair) -> Option<String> {
    closed_reason(&p.pac_events, |e| match e {
        ControlEvent::Closed { reason } => Some(reason),
        _ => None,
    })
}
fn pns_closed(p: &Pair) -> Option<String> {
    closed_reason(&p.pns_events, |e| match e {
        PnsEvent::Closed { reason } => Some(reason),
        _ => None,
    })
}

#[test]
fn establish_reports_names() {
    let p = Pair::established();
    assert_eq!(
        p.pac_events[0],
        ControlEvent::Established {
            peer_hostname: "client".into(),
            peer_vendor: "cv".into()
        }
    );
    assert_eq!(p.pac.peer_hostname(), "client");
    assert!(
        matches!(&p.pns_events[0], PnsEvent::Established { peer_hostname, .. } if peer_hostname == "sluice")
    );
    let ControlMessage::Sccrp(rep) = &p.pac_sent[0] else {
        panic!()
    };
    assert_eq!(rep.result, SccrpResult::Success);
    assert_eq!(rep.protocol_version, 0x0100);
    assert_eq!(rep.framing_capabilities, FramingCapabilities::ALL);
    assert_eq!(rep.bearer_capabilities, BearerCapabilities::ALL);
    assert_eq!(rep.maximum_channels, 4);
}

#[test]
fn open_several_calls_and_clear_both_ways() {
    let mut p = Pair::established();
    p.open(10, 1000);
    p.open(11, 1001);
    p.open(12, 1002);
    let calls: Vec<_> = p.pac.calls().collect();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c.state == CallState::Connected));
    let ev = p
        .pac_events
        .iter()
        .find(|e| matches!(e, ControlEvent::CallRequested { .. }))
        .unwrap();
    assert!(matches!(
        ev,
        ControlEvent::CallRequested {
            peer_recv_window: 32,
            max_bps: 10_000_000,
            min_bps: 2400,
            ..
        }
    ));

    // PNS clears call 11 → PAC answers CDN and reports CallCleared.
    p.pns.clear_call(p.now, 11).unwrap();
    p.pump();
    assert!(p.pac_events.contains(&ControlEvent::CallCleared {
        local_call_id: 1001
    }));
    assert!(p.pns_events.iter().any(|e| matches!(
        e,
        PnsEvent::CallDisconnected {
            local_call_id: 11,
            result: CdnResult::Request,
            ..
        }
    )));

    // PAC disconnects call 12.
    p.pac.disconnect_call(p.now, 1002, "idle timeout");
    p.pump();
    assert!(p.pns_events.contains(&PnsEvent::CallDisconnected {
        local_call_id: 12,
        result: CdnResult::AdminShutdown,
        cause: "idle timeout".into()
    }));
    assert_eq!(p.pac.calls().count(), 1);
    assert_eq!(p.pns.call_count(), 1);

    // Set-Link-Info for the remaining call.
    p.pns.set_link_info(p.now, 10, 0xFFFF_FFFF, 0).unwrap();
    p.pump();
    assert!(p.pac_events.contains(&ControlEvent::LinkInfo {
        local_call_id: 1000,
        send_accm: 0xFFFF_FFFF,
        recv_accm: 0
    }));
}

#[test]
fn call_rejections() {
    let mut p = Pair::established();
    // Reject by the daemon.
    p.pns.open_call(p.now, 1, 8).unwrap();
    p.pump();
    p.pac.reject_call(
        p.now,
        1,
        OcrpResult::GeneralError,
        Some(GeneralError::NoResource),
    );
    p.pump();
    assert!(p.pns_events.contains(&PnsEvent::CallFailed {
        local_call_id: 1,
        result: OcrpResult::GeneralError,
        error: GeneralError::NoResource
    }));
    assert_eq!(p.pac.calls().count(), 0);

    // Limit max_calls = 4 → fifth is Busy.
    for id in 1..=4 {
        p.open(id, 100 + id);
    }
    p.pns.open_call(p.now, 5, 8).unwrap();
    p.pump();
    assert!(p.pns_events.contains(&PnsEvent::CallFailed {
        local_call_id: 5,
        result: OcrpResult::Busy,
        error: GeneralError::None
    }));

    // accept_call errors.
    assert_eq!(
        p.pac.accept_call(p.now, 77, 5000),
        Err(Error::UnknownCall(77))
    );
}

#[test]
fn duplicate_peer_call_id_rejected() {
    let mut p = Pair::established();
    p.open(7, 700);
    // A raw OCRQ with the same Call ID.
    let dup = ControlMessage::Ocrq(Ocrq {
        call_id: 7,
        call_serial_number: 9,
        minimum_bps: 0,
        maximum_bps: 0,
        bearer_type: BearerType::Any,
        framing_type: FramingType::Any,
        recv_window: 1,
        processing_delay: 0,
        phone_number: String::new(),
        subaddress: String::new(),
    });
    p.pac.handle_input(p.now, &dup.to_bytes()).unwrap();
    let out = sluice_pptp::Framer::new()
        .push(&p.pac.poll_transmit().unwrap())
        .unwrap();
    let ControlMessage::Ocrp(rep) = &out[0] else {
        panic!()
    };
    assert_eq!(
        (rep.result, rep.error, rep.peer_call_id),
        (OcrpResult::GeneralError, GeneralError::BadCallId, 7)
    );
    assert_eq!(p.pac.calls().count(), 1);
    // accept with a local id already in use.
    p.pns.open_call(p.now, 8, 8).unwrap();
    p.pump();
    assert_eq!(
        p.pac.accept_call(p.now, 8, 700),
        Err(Error::CallIdInUse(700))
    );
}

#[test]
fn pending_calls_bounded_and_cancellable() {
    let mut p = Pair::new(PacConfig {
        max_calls: 1000,
        ..Default::default()
    });
    p.pump();
    for id in 0..(MAX_PENDING_CALLS as u16 + 2) {
        p.pns.open_call(p.now, id, 8).unwrap();
    }
    p.pump();
    let requested = p
        .pac_events
        .iter()
        .filter(|e| matches!(e, ControlEvent::CallRequested { .. }))
        .count();
    assert_eq!(requested, MAX_PENDING_CALLS);
    let failed = p
        .pns_events
        .iter()
        .filter(|e| {
            matches!(
                e,
                PnsEvent::CallFailed {
                    result: OcrpResult::GeneralError,
                    error: GeneralError::NoResource,
                    ..
                }
            )
        })
        .count();
    assert_eq!(failed, 2);

    // Clearing a pending call: PAC reports cancellation; later accept fails.
    p.pns.clear_call(p.now, 3).unwrap();
    p.pump();
    assert!(
        p.pac_events
            .contains(&ControlEvent::CallRequestCancelled { peer_call_id: 3 })
    );
    assert_eq!(p.pac.accept_call(p.now, 3, 1), Err(Error::UnknownCall(3)));
    assert!(p.pns_events.iter().any(|e| matches!(
        e,
        PnsEvent::CallDisconnected {
            local_call_id: 3,
            ..
        }
    )));
}

#[test]
fn echo_both_ways_keeps_alive() {
    let mut p = Pair::established();
    // Ten idle minutes: each side echoes every 60 s, the other replies, nobody closes.
    p.advance(Duration::from_secs(600));
    assert!(p.pac.is_established() && p.pns.is_established());
    let pac_echo = p
        .pac_sent
        .iter()
        .filter(|m| matches!(m, ControlMessage::EchoRequest(_)))
        .count();
    let pns_reply = p
        .pns_sent
        .iter()
        .filter(|m| matches!(m, ControlMessage::EchoReply(_)))
        .count();
    let pns_echo = p
        .pns_sent
        .iter()
        .filter(|m| matches!(m, ControlMessage::EchoRequest(_)))
        .count();
    let pac_reply = p
        .pac_sent
        .iter()
        .filter(|m| matches!(m, ControlMessage::EchoReply(_)))
        .count();
    assert!(
        pac_echo >= 5 && pns_reply == pac_echo,
        "{pac_echo} {pns_reply}"
    );
    assert_eq!(pns_echo, pac_reply);
    // Identifiers echoed.
    for (req, rep) in p
        .pac_sent
        .iter()
        .filter_map(|m| {
            if let ControlMessage::EchoRequest(r) = m {
                Some(r.identifier)
            } else {
                None
            }
        })
        .zip(p.pns_sent.iter().filter_map(|m| {
            if let ControlMessage::EchoReply(r) = m {
                Some(r.identifier)
            } else {
                None
            }
        }))
    {
        assert_eq!(req, rep);
    }
}

#[test]
fn echo_timeout_closes() {
    let mut p = Pair::established();
    let t0 = p.now;
    // The PNS goes silent: we simply stop delivering to it.
    let mut now = t0;
    loop {
        let t = p.pac.poll_timeout().unwrap();
        now = now.max(t);
        p.pac.handle_timeout(now);
        while p.pac.poll_transmit().is_some() {}
        if p.pac.is_closed() {
            break;
        }
        assert!(now - t0 <= Duration::from_secs(121));
    }
    assert_eq!(now - t0, Duration::from_secs(120));
    let mut ev = vec![];
    while let Some(e) = p.pac.poll_event() {
        ev.push(e);
    }
    assert!(matches!(ev.last(), Some(ControlEvent::Closed { reason }) if reason.contains("echo")));
    assert_eq!(p.pac.poll_timeout(), None);
}

#[test]
fn live_calls_stand_in_for_echo_and_their_silence_brings_it_back() {
    let mut p = Pair::established();
    let t0 = p.now;
    // The PNS stops answering control messages; its calls' data says it is alive.
    let mut now = t0;
    let mut echoes = 0;
    let step = |p: &mut Pair, now: Instant, echoes: &mut usize| {
        p.pac.handle_timeout(now);
        while let Some(bytes) = p.pac.poll_transmit() {
            *echoes += usize::from(bytes.get(8..10) == Some(&[0, 5][..]));
        }
    };
    while now - t0 < Duration::from_secs(600) {
        now += Duration::from_secs(10);
        p.pac.note_peer_alive(now);
        step(&mut p, now, &mut echoes);
    }
    assert_eq!(echoes, 0, "no Echo-Request while the calls carry data");
    assert!(p.pac.is_established());
    // Data stops: Echo-Request after 60 s, the connection closed 60 s later.
    let quiet = now;
    while !p.pac.is_closed() {
        now = p.pac.poll_timeout().unwrap();
        step(&mut p, now, &mut echoes);
    }
    assert_eq!(echoes, 1);
    assert_eq!(now - quiet, Duration::from_secs(120));
}

#[test]
fn setup_timeout_closes() {
    let t0 = Instant::now();
    let mut pac = ControlConnection::new(PacConfig::default(), t0);
    assert_eq!(pac.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    pac.handle_timeout(t0 + Duration::from_secs(9));
    assert!(pac.poll_event().is_none());
    pac.handle_timeout(t0 + Duration::from_secs(10));
    assert!(
        matches!(pac.poll_event(), Some(ControlEvent::Closed { reason }) if reason.contains("setup"))
    );
    assert_eq!(pac.handle_input(t0, &[]), Err(Error::Closed));

    let mut pns = Pns::new(PnsConfig::default(), t0);
    assert!(pns.poll_transmit().is_some());
    pns.handle_timeout(t0 + Duration::from_secs(10));
    assert!(matches!(pns.poll_event(), Some(PnsEvent::Closed { .. })));
}

#[test]
fn stop_initiated_by_pns() {
    let mut p = Pair::established();
    p.open(1, 2);
    p.pns.shutdown(p.now);
    p.pump();
    assert!(
        p.pns_sent
            .iter()
            .any(|m| matches!(m, ControlMessage::StopCcrq(_)))
    );
    assert!(
        p.pac_sent
            .iter()
            .any(|m| matches!(m, ControlMessage::StopCcrp(_)))
    );
    assert!(pac_closed(&p).unwrap().contains("Stop"));
    assert!(pns_closed(&p).is_some());
    assert!(p.pac.is_closed() && p.pns.is_closed());
    assert_eq!(p.pac.calls().count(), 0);
}

#[test]
fn stop_initiated_by_pac() {
    let mut p = Pair::established();
    p.pac.shutdown(p.now, StopReason::LocalShutdown);
    assert!(!p.pac.is_established());
    p.pump();
    assert!(matches!(
        p.pac_sent.last(),
        Some(ControlMessage::StopCcrq(StopCcrq {
            reason: StopReason::LocalShutdown
        }))
    ));
    assert!(pac_closed(&p).is_some());
    assert!(pns_closed(&p).is_some());
}

#[test]
fn stop_reply_timeout_is_bounded() {
    let t0 = Instant::now();
    let mut p = Pair::established();
    p.pac.shutdown(t0, StopReason::None);
    assert!(p.pac.poll_transmit().is_some()); // dropped: peer never answers
    p.pac.handle_timeout(t0 + Duration::from_secs(5));
    assert!(p.pac.is_closed());
}

#[test]
fn version_mismatch_gets_result_5_and_close() {
    let t0 = Instant::now();
    let mut pac = ControlConnection::new(PacConfig::default(), t0);
    let req = ControlMessage::Sccrq(Sccrq {
        protocol_version: 0x0200,
        framing_capabilities: FramingCapabilities::ALL,
        bearer_capabilities: BearerCapabilities::ALL,
        maximum_channels: 0,
        firmware_revision: 0,
        host_name: String::new(),
        vendor: String::new(),
    });
    assert_eq!(
        pac.handle_input(t0, &req.to_bytes()),
        Err(Error::UnsupportedVersion(0x0200))
    );
    let out = sluice_pptp::Framer::new()
        .push(&pac.poll_transmit().unwrap())
        .unwrap();
    let ControlMessage::Sccrp(rep) = &out[0] else {
        panic!()
    };
    assert_eq!(rep.result, SccrpResult::UnsupportedVersion);
    assert!(pac.is_closed());
    assert!(matches!(
        pac.poll_event(),
        Some(ControlEvent::Closed { .. })
    ));

    // The PNS engine treats that reply as a refusal.
    let mut pns = Pns::new(PnsConfig::default(), t0);
    let _ = pns.poll_transmit();
    assert!(matches!(
        pns.handle_input(t0, &out[0].to_bytes()),
        Err(Error::Refused(_))
    ));
}

#[test]
fn first_message_must_be_sccrq() {
    let t0 = Instant::now();
    let mut pac = ControlConnection::new(PacConfig::default(), t0);
    let echo = ControlMessage::EchoRequest(EchoRequest { identifier: 1 }).to_bytes();
    assert!(matches!(
        pac.handle_input(t0, &echo),
        Err(Error::Unexpected { .. })
    ));
    assert!(pac.poll_transmit().is_none());
    assert!(pac.is_closed());
}

#[test]
fn second_sccrq_and_wrong_direction_messages_close() {
    let sccrq = {
        let mut p = Pair::new(PacConfig::default());
        p.pns.poll_transmit().unwrap()
    };
    let mut p = Pair::established();
    assert!(p.pac.handle_input(p.now, &sccrq).is_err());
    assert!(p.pac.is_closed());

    let mut p = Pair::established();
    let icrq = ControlMessage::Icrq(Icrq {
        call_id: 1,
        call_serial_number: 1,
        bearer_type: BearerType::Analog,
        physical_channel_id: 0,
        dialed_number: String::new(),
        dialing_number: String::new(),
        subaddress: String::new(),
    });
    assert!(matches!(
        p.pac.handle_input(p.now, &icrq.to_bytes()),
        Err(Error::Unexpected { .. })
    ));
    // The PNS refuses an incoming call politely.
    let mut p = Pair::established();
    p.pns.handle_input(p.now, &icrq.to_bytes()).unwrap();
    let out = sluice_pptp::Framer::new()
        .push(&p.pns.poll_transmit().unwrap())
        .unwrap();
    assert!(matches!(
        out[0],
        ControlMessage::Icrp(Icrp {
            result: IcrpResult::DoNotAccept,
            peer_call_id: 1,
            ..
        })
    ));
}

#[test]
fn call_clear_for_unknown_call_is_ignored() {
    let mut p = Pair::established();
    let ccrq = ControlMessage::CallClearRequest(CallClearRequest { call_id: 999 }).to_bytes();
    p.pac.handle_input(p.now, &ccrq).unwrap();
    assert!(p.pac.poll_transmit().is_none());
    assert!(p.pac.is_established());
}

#[test]
fn garbled_input_closes_both_roles() {
    let mut p = Pair::established();
    p.open(1, 1);
    let mut garbage = ControlMessage::EchoRequest(EchoRequest { identifier: 1 }).to_bytes();
    garbage[5] ^= 0xFF; // magic cookie
    assert!(matches!(
        p.pac.handle_input(p.now, &garbage),
        Err(Error::Parse(_))
    ));
    assert!(p.pac.is_closed());
    assert_eq!(p.pac.calls().count(), 0);
    assert!(p.pns.handle_input(p.now, &garbage).is_err());
    assert!(p.pns.is_closed());
}

#[test]
fn lost_ocrp_times_out_on_pns() {
    let mut p = Pair::established();
    p.pns.open_call(p.now, 5, 8).unwrap();
    p.pump();
    // PAC never answers (daemon ignores the request).
    p.advance(Duration::from_secs(31));
    assert!(p.pns_events.contains(&PnsEvent::CallFailed {
        local_call_id: 5,
        result: OcrpResult::Timeout,
        error: GeneralError::None
    }));
}

#[test]
fn byte_at_a_time_delivery() {
    let t0 = Instant::now();
    let mut pac = ControlConnection::new(PacConfig::default(), t0);
    let mut pns = Pns::new(PnsConfig::default(), t0);
    let b = pns.poll_transmit().unwrap();
    for byte in &b {
        pac.handle_input(t0, std::slice::from_ref(byte)).unwrap();
    }
    assert!(pac.is_established());
    let b = pac.poll_transmit().unwrap();
    for byte in &b {
        pns.handle_input(t0, std::slice::from_ref(byte)).unwrap();
    }
    assert!(pns.is_established());
}

#[test]
fn output_flood_is_bounded() {
    let mut p = Pair::established();
    // 20k Echo-Requests in one read without draining: the outbox cap closes the connection.
    let one = ControlMessage::EchoRequest(EchoRequest { identifier: 1 }).to_bytes();
    let flood: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * 20_000)
        .collect();
    assert_eq!(
        p.pac.handle_input(p.now, &flood),
        Err(Error::OutputOverflow)
    );
    assert!(p.pac.poll_transmit().unwrap().len() <= sluice_pptp::MAX_OUTPUT_BYTES);
    // Draining between reads keeps it alive.
    let mut p = Pair::established();
    for chunk in flood.chunks(64 * 1024) {
        p.pac.handle_input(p.now, chunk).unwrap();
        while p.pac.poll_transmit().is_some() {}
    }
    assert!(p.pac.is_established());
}
