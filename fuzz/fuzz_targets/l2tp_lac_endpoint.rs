#![no_main]
//! An L2TP endpoint in the LAC role (the in-repo client's) facing a real LNS whose datagrams
//! the input may replace or corrupt. Operations: pass datagrams through unchanged (both ways),
//! inject a datagram from the LNS's address, corrupt the LNS's next datagram, let time pass,
//! open tunnels and sessions, close them. Tunnel secret, hidden AVPs, tie breaker and
//! sequencing come from the first octet. Invariants: no panic, bounded tables and queues.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::Ops;
use sluice_l2tp::endpoint::{MAX_QUEUED_EVENTS, MAX_QUEUED_TRANSMITS};
use sluice_l2tp::{CdnResult, Endpoint, EndpointConfig, Event, Role, StopCcnResult};

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let flags = ops.u8();
    let secret = (flags & 1 != 0).then(|| b"fuzz".to_vec());
    let lac_cfg = EndpointConfig {
        role: Role::Lac,
        secret: secret.clone(),
        hide_avps: flags & 2 != 0 && secret.is_some(),
        send_tie_breaker: flags & 4 != 0,
        sequencing_required: flags & 8 != 0,
        max_tunnels: 4,
        max_pending_tunnels: 4,
        max_sessions_per_tunnel: 4,
        max_pending_sessions: 4,
        ..Default::default()
    };
    let mut lac = Endpoint::new(lac_cfg, [flags; 32]);
    let mut lns = Endpoint::new(
        EndpointConfig {
            role: Role::Lns,
            // A mismatched secret now and then.
            secret: if flags & 16 != 0 {
                Some(b"other".to_vec())
            } else {
                secret
            },
            max_tunnels: 4,
            max_pending_tunnels: 4,
            max_sessions_per_tunnel: 4,
            max_pending_sessions: 4,
            ..Default::default()
        },
        [!flags; 32],
    );
    let lac_addr: SocketAddr = "192.0.2.1:1701".parse().unwrap();
    let lns_addr: SocketAddr = "198.51.100.1:1701".parse().unwrap();
    let mut now = Instant::now();
    let _ = lac.connect(now, lac_addr, lns_addr);
    let mut next_session = 1u16;
    let mut rounds = 0;
    while !ops.is_empty() && rounds < 256 {
        rounds += 1;
        match ops.u8() % 8 {
            0 | 1 => {
                while let Some(t) = lac.poll_transmit() {
                    let _ = lns.handle_input(now, t.remote, t.local, &t.payload);
                }
                while let Some(t) = lns.poll_transmit() {
                    let _ = lac.handle_input(now, t.remote, t.local, &t.payload);
                }
            }
            2 => {
                let _ = lac.handle_input(now, lac_addr, lns_addr, ops.long(2048));
            }
            3 => {
                if let Some(t) = lns.poll_transmit() {
                    let mut b = t.payload;
                    ops.mutate(&mut b, 4);
                    let _ = lac.handle_input(now, t.remote, t.local, &b);
                }
            }
            4 => {
                now += Duration::from_millis(u64::from(ops.u16()) * 10);
                lac.handle_timeout(now);
                lns.handle_timeout(now);
            }
            5 => {
                let tunnels = lac.tunnel_ids();
                if let Some(&t) = tunnels.get(usize::from(ops.u8()) % tunnels.len().max(1)) {
                    let _ = lac.open_session(now, t, next_session);
                    next_session = next_session.wrapping_add(1).max(1);
                }
            }
            6 => {
                let tunnels = lac.tunnel_ids();
                let pick = ops.u8();
                if let Some(&t) = tunnels.get(usize::from(pick >> 2) % tunnels.len().max(1)) {
                    match pick & 3 {
                        0 => lac.close_session(now, t, ops.u16(), CdnResult::AdminDisconnect, "x"),
                        1 => lac.close_tunnel(now, t, StopCcnResult::Shutdown, "x"),
                        2 => {
                            let _ = lac.set_link_info(now, t, ops.u16(), ops.u32(), ops.u32());
                        }
                        _ => lac.note_data_activity(now, t),
                    }
                }
            }
            _ => match ops.u8() % 3 {
                0 => {
                    let _ = lac.connect(now, lac_addr, lns_addr);
                }
                1 => lac.shutdown(now),
                _ => {
                    // A datagram from somewhere else.
                    let _ = lac.handle_input(
                        now,
                        lac_addr,
                        "203.0.113.9:1701".parse().unwrap(),
                        ops.short(),
                    );
                }
            },
        }
        while let Some(ev) = lns.poll_event() {
            if let Event::SessionRequested {
                tunnel,
                peer_session,
                ..
            } = ev
            {
                let _ = lns.accept_session(now, tunnel, peer_session, next_session);
                next_session = next_session.wrapping_add(1).max(1);
            }
        }
        while lac.poll_event().is_some() {}
        let _ = lac.poll_timeout();
        assert!(lac.tunnel_count() <= 4);
        assert!(lac.queued_events() <= MAX_QUEUED_EVENTS);
        assert!(lac.queued_transmits() <= MAX_QUEUED_TRANSMITS);
        for t in lac.tunnels() {
            assert!(t.sessions + t.pending_sessions <= 4);
            assert!(t.in_flight <= usize::from(t.peer_window));
        }
    }
});
