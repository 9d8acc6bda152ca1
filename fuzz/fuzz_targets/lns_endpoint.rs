#![no_main]
//! An arbitrary sequence of datagrams and time steps into an LNS endpoint; accept/reject
//! decisions come from the input. Checks that queues and tables stay bounded.
//!
//! To get past the header checks, a round's `decision` byte can ask for the bytes to be used
//! as the AVPs of a control message addressed to an existing tunnel with a plausible Ns, or
//! to be appended to a valid SCCRQ.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_l2tp::endpoint::{MAX_QUEUED_EVENTS, MAX_QUEUED_TRANSMITS};
use sluice_l2tp::message::{Avps, PROTOCOL_VERSION};
use sluice_l2tp::{
    CdnResult, ControlMessage, Endpoint, EndpointConfig, Event, HeaderRepr, MessageType, Role,
};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut ep = Endpoint::new(
        EndpointConfig {
            role: Role::Lns,
            secret: (flags & 1 != 0).then(|| b"fuzz".to_vec()),
            max_tunnels: 4,
            max_pending_tunnels: 2,
            max_sessions_per_tunnel: 4,
            max_pending_sessions: 2,
            ..Default::default()
        },
        [flags; 32],
    );
    let local: SocketAddr = "198.51.100.1:1701".parse().expect("addr");
    let mut now = Instant::now();
    let mut next_local = 1u16;
    let mut next_ns = [1u16; 4];
    // Each round: [len][step][peer][decision] then `len` bytes of datagram.
    while let [len, step, peer, decision, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (datagram, tail) = tail.split_at(n);
        rest = tail;
        let remote = SocketAddr::from(([192, 0, 2, peer & 3], 1701));
        let built;
        let input: &[u8] = match decision >> 6 {
            1 => {
                // Valid SCCRQ + fuzz AVPs.
                let m = ControlMessage {
                    message_type: MessageType::Sccrq,
                    avps: Avps {
                        protocol_version: Some(PROTOCOL_VERSION),
                        host_name: Some("f".into()),
                        framing_capabilities: Some(3),
                        assigned_tunnel_id: Some(u16::from(*peer) + 1),
                        ..Avps::default()
                    },
                };
                let mut d = m.to_datagram(0, 0, 0, 0, None);
                d.extend_from_slice(datagram);
                let l = u16::try_from(d.len()).unwrap_or(u16::MAX);
                if let Some(b) = d.get_mut(2..4) {
                    b.copy_from_slice(&l.to_be_bytes());
                }
                built = d;
                &built
            }
            2 | 3 => {
                // Fuzz AVPs in a control message for an existing tunnel.
                let ids = ep.tunnel_ids();
                let slot = usize::from(*peer) % 4;
                let Some(&tunnel) = ids.get(slot % ids.len().max(1)) else {
                    continue;
                };
                let remote_of = ep.tunnels().find(|t| t.tunnel == tunnel).map(|t| t.remote);
                let ns = next_ns.get_mut(slot).map_or(0, |n| {
                    let v = *n;
                    *n = n.wrapping_add(1);
                    v
                });
                let mut d = Vec::new();
                HeaderRepr::control(tunnel, u16::from(decision & 7), ns, 0)
                    .emit(&mut d, datagram.len());
                d.extend_from_slice(datagram);
                built = d;
                if let Some(r) = remote_of {
                    let _ = ep.handle_input(now, local, r, &built);
                }
                &[]
            }
            _ => datagram,
        };
        let _ = ep.handle_input(now, local, remote, input);
        now += Duration::from_millis(u64::from(*step) * 50);
        ep.handle_timeout(now);
        while let Some(ev) = ep.poll_event() {
            if let Event::SessionRequested {
                tunnel,
                peer_session,
                ..
            } = ev
            {
                match decision % 3 {
                    0 => {
                        let _ = ep.accept_session(now, tunnel, peer_session, next_local);
                        next_local = next_local.wrapping_add(1).max(1);
                    }
                    1 => ep.reject_session(now, tunnel, peer_session, CdnResult::Busy, "busy"),
                    _ => {}
                }
            }
        }
        while ep.poll_transmit().is_some() {}
        let _ = ep.poll_timeout();
        assert!(ep.tunnel_count() <= 4);
        assert!(ep.queued_events() <= MAX_QUEUED_EVENTS);
        assert!(ep.queued_transmits() <= MAX_QUEUED_TRANSMITS);
        for t in ep.tunnels() {
            assert!(t.sessions + t.pending_sessions <= 4);
            assert!(t.in_flight <= usize::from(t.peer_window));
        }
    }
});
