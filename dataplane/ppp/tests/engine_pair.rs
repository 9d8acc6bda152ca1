//! Client ↔ server engine-pair tests with a simulated clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::*;
use sluice_ppp::*;

use AuthProto::*;
use EncryptionPolicy::*;

fn mppe128() -> Encoding {
    Encoding::Mppe {
        bits: 128,
        stateful: false,
    }
}

fn assert_up(p: &Pair, enc: Encoding) {
    let (sl, sp, sdns, senc) = up_of(&p.server_events).expect("server Up");
    let (cl, cp, cdns, cenc) = up_of(&p.client_events).expect("client Up");
    assert_eq!((senc, cenc), (enc, enc));
    assert_eq!((sl, sp), (LOCAL_IP, PEER_IP));
    assert_eq!((cl, cp), (PEER_IP, LOCAL_IP));
    assert_eq!(sdns, cdns);
    assert_eq!(p.server.encoding(), enc);
    assert_eq!(p.client.encoding(), enc);
    assert!(!enc.to_string().is_empty());
}

#[test]
fn every_auth_and_policy_combination_comes_up() {
    let ms = [MsChapV1, MsChapV2];
    let cases: &[(EncryptionPolicy, EncryptionPolicy, bool)] = &[
        (Require, Require, true),
        (Require, Prefer, true),
        (Require, Allow, true),
        (Prefer, Require, true),
        (Prefer, Prefer, true),
        (Prefer, Allow, true),
        (Allow, Prefer, true),
        (Allow, Require, true),
        (Allow, Allow, false),
        (Deny, Allow, false),
        (Deny, Prefer, false),
        (Prefer, Deny, false),
        (Deny, Deny, false),
    ];
    let mut seed = 1;
    for auth in [Pap, ChapMd5, MsChapV1, MsChapV2] {
        for &(sp, cp, encrypted) in cases {
            let keys = ms.contains(&auth);
            if !keys && (sp == Require || cp == Require) {
                continue;
            }
            seed += 1;
            let mut p = Pair::new(
                server_cfg(vec![auth], sp),
                client_cfg(vec![auth], cp, "s3cret"),
                seed,
            );
            assert!(
                p.bring_up(),
                "{auth} {sp:?}/{cp:?}: {:?} {:?}",
                p.server_events,
                p.client_events
            );
            let enc = if encrypted && keys {
                mppe128()
            } else {
                Encoding::None
            };
            assert_up(&p, enc);
            assert!(matches!(
                p.server_events.iter().find(|e| matches!(e, Event::Authenticated { .. })),
                Some(Event::Authenticated { method, .. }) if *method == auth
            ));
            assert!(
                p.client_events
                    .iter()
                    .any(|e| matches!(e, Event::Authenticated { .. }))
            );
            assert_eq!(p.server.username(), Some("alice"));
            let (sent, got) = p.exchange(50, 1000);
            assert_eq!(sent, got, "{auth} {sp:?}/{cp:?}");
            assert_eq!(p.got_at_server[0][0], 0x45);
        }
    }
}

#[test]
fn require_with_non_ms_auth_is_encryption_required() {
    for auth in [Pap, ChapMd5] {
        let mut p = Pair::new(
            server_cfg(vec![auth], Require),
            client_cfg(vec![auth], Prefer, "s3cret"),
            3,
        );
        p.run_until(Duration::from_secs(60), |p| p.server_down().is_some());
        assert_eq!(p.server_down(), Some(&DownReason::EncryptionRequired));
        p.run_until(Duration::from_secs(60), |p| p.client_down().is_some());
        assert!(p.client_down().is_some());
    }
}

#[test]
fn wrong_password_fails_on_both_sides() {
    for auth in [Pap, ChapMd5, MsChapV1, MsChapV2] {
        let mut s = server_cfg(vec![auth], Prefer);
        s.max_auth_attempts = 1;
        let mut p = Pair::new(s, client_cfg(vec![auth], Prefer, "wrong"), 9);
        p.run_until(Duration::from_secs(60), |p| {
            p.server_down().is_some() && p.client_down().is_some()
        });
        assert_eq!(p.server_down(), Some(&DownReason::AuthFailed), "{auth}");
        assert!(
            p.server_events
                .iter()
                .any(|e| matches!(e, Event::AuthFailed { .. }))
        );
        let reason = p.client_events.iter().find_map(|e| match e {
            Event::AuthFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        let reason = reason.expect("client AuthFailed");
        if matches!(auth, MsChapV1 | MsChapV2) {
            assert!(reason.contains("E=691"), "{reason}");
        }
        assert!(p.client_down().is_some());
        assert!(!p.client.is_up() && !p.server.is_up());
    }
}

#[test]
fn unknown_user_fails_like_wrong_password() {
    let mut p = Pair::new(
        server_cfg(vec![MsChapV2], Require),
        client_cfg(vec![MsChapV2], Require, "s3cret"),
        4,
    );
    p.users.clear();
    p.run_until(Duration::from_secs(60), |p| {
        p.server_down().is_some() && p.client_down().is_some()
    });
    assert_eq!(p.server_down(), Some(&DownReason::AuthFailed));
    // Default 3 attempts with R=1: the client gives up after the first (it has no other
    // password), so exactly one attempt is counted by the server.
    let fails = p
        .server_events
        .iter()
        .filter(|e| matches!(e, Event::AuthFailed { .. }))
        .count();
    assert!(fails >= 1);
}

#[test]
fn client_refusing_mppe_with_server_require_goes_down() {
    let mut p = Pair::new(
        server_cfg(vec![MsChapV2], Require),
        client_cfg(vec![MsChapV2], Deny, "s3cret"),
        5,
    );
    p.run_until(Duration::from_secs(120), |p| p.server_down().is_some());
    assert_eq!(p.server_down(), Some(&DownReason::EncryptionRequired));
    assert!(!p.client.is_up());
}

#[test]
fn key_length_selection() {
    // 40-bit only on the server, client allows all: 40-bit.
    let mut s = server_cfg(vec![MsChapV2], Require);
    s.mppe.key_lengths = KeyLengths {
        bits40: true,
        bits56: false,
        bits128: false,
    };
    let mut p = Pair::new(s, client_cfg(vec![MsChapV2], Require, "s3cret"), 6);
    assert!(p.bring_up());
    assert_up(
        &p,
        Encoding::Mppe {
            bits: 40,
            stateful: false,
        },
    );
    assert_eq!(p.exchange(20, 300), (40, 40));
    // 56-bit common.
    let mut s = server_cfg(vec![MsChapV1], Require);
    s.mppe.key_lengths = KeyLengths {
        bits40: true,
        bits56: true,
        bits128: false,
    };
    let mut c = client_cfg(vec![MsChapV1], Require, "s3cret");
    c.mppe.key_lengths = KeyLengths {
        bits40: false,
        bits56: true,
        bits128: true,
    };
    let mut p = Pair::new(s, c, 7);
    assert!(p.bring_up());
    assert_up(
        &p,
        Encoding::Mppe {
            bits: 56,
            stateful: false,
        },
    );
    assert_eq!(p.exchange(20, 300), (40, 40));
    // No common key length: encryption required fails.
    let mut s = server_cfg(vec![MsChapV2], Require);
    s.mppe.key_lengths = KeyLengths {
        bits40: false,
        bits56: false,
        bits128: true,
    };
    let mut c = client_cfg(vec![MsChapV2], Require, "s3cret");
    c.mppe.key_lengths = KeyLengths {
        bits40: true,
        bits56: false,
        bits128: false,
    };
    let mut p = Pair::new(s, c, 8);
    p.run_until(Duration::from_secs(200), |p| p.server_down().is_some());
    assert_eq!(p.server_down(), Some(&DownReason::EncryptionRequired));
}

fn stateful_pair(seed: u8) -> Pair {
    let mut s = server_cfg(vec![MsChapV2], Require);
    s.mppe.stateful = StatefulMode::Allow;
    let mut c = client_cfg(vec![MsChapV2], Require, "s3cret");
    c.mppe.stateful = StatefulMode::Prefer;
    Pair::new(s, c, seed)
}

#[test]
fn stateful_negotiated_only_when_allowed() {
    let mut p = stateful_pair(10);
    assert!(p.bring_up());
    assert_up(
        &p,
        Encoding::Mppe {
            bits: 128,
            stateful: true,
        },
    );
    // Server forbids stateful: client asking for it ends up stateless.
    let mut c = client_cfg(vec![MsChapV2], Require, "s3cret");
    c.mppe.stateful = StatefulMode::Prefer;
    let mut p = Pair::new(server_cfg(vec![MsChapV2], Require), c, 11);
    assert!(p.bring_up());
    assert_up(&p, mppe128());
}

/// A gateway that prefers stateful mode gets it from a client that merely allows it (pppd's
/// `mppe-stateful`), and stateless from a client that refuses it.
#[test]
fn server_preferring_stateful() {
    for (client_mode, stateful) in [(StatefulMode::Allow, true), (StatefulMode::Refuse, false)] {
        let mut s = server_cfg(vec![MsChapV2], Require);
        s.mppe.stateful = StatefulMode::Prefer;
        let mut c = client_cfg(vec![MsChapV2], Require, "s3cret");
        c.mppe.stateful = client_mode;
        let mut p = Pair::new(s, c, 13);
        assert!(p.bring_up());
        assert_up(
            &p,
            Encoding::Mppe {
                bits: 128,
                stateful,
            },
        );
    }
}

/// A server allowing every key length agrees on the only one a client supports (pppd
/// `require-mppe-40`), and on the strongest when the client supports several.
#[test]
fn key_length_follows_the_client() {
    for (client_keys, bits) in [
        (
            KeyLengths {
                bits40: true,
                bits56: false,
                bits128: false,
            },
            40,
        ),
        (KeyLengths::ALL, 128),
    ] {
        let mut s = server_cfg(vec![MsChapV2], Require);
        s.mppe.key_lengths = KeyLengths::ALL;
        let mut c = client_cfg(vec![MsChapV2], Require, "s3cret");
        c.mppe.key_lengths = client_keys;
        let mut p = Pair::new(s, c, 14);
        assert!(p.bring_up());
        assert_up(
            &p,
            Encoding::Mppe {
                bits,
                stateful: false,
            },
        );
    }
}

#[test]
fn stateless_recovers_from_loss_reorder_duplication() {
    let mut p = Pair::new(
        server_cfg(vec![MsChapV2], Require),
        client_cfg(vec![MsChapV2], Require, "s3cret"),
        12,
    );
    assert!(p.bring_up());
    p.impair = Impair {
        loss_ctrl: 0,
        loss_data: 100,
        dup_data: 50,
        reorder_data: 50,
    };
    let (sent, got) = p.exchange(2000, 200);
    // Lost ~10% and late (reordered) packets are dropped; duplicates are dropped; the rest decrypt.
    assert!(got > sent * 7 / 10, "{got}/{sent}");
    assert!(got <= sent);
    p.impair = Impair::default();
    assert_eq!(p.exchange(100, 200), (200, 200));
    assert!(p.got_at_server.iter().all(|ip| ip[0] == 0x45 && ip[1] == 0));
    assert!(p.got_at_client.iter().all(|ip| ip[0] == 0x45 && ip[1] == 1));
}

#[test]
fn stateful_recovers_via_reset_request() {
    let mut p = stateful_pair(13);
    assert!(p.bring_up());
    p.impair = Impair {
        loss_ctrl: 0,
        loss_data: 30,
        dup_data: 20,
        reorder_data: 20,
    };
    let (sent, got) = p.exchange(3000, 100);
    assert!(got > sent / 2, "{got}/{sent}");
    p.impair = Impair::default();
    // Clean traffic after impairments: the first packet may still be discarded until a
    // flushed one arrives; afterwards everything gets through.
    p.exchange(5, 100);
    assert_eq!(p.exchange(300, 100), (600, 600));
    assert!(p.got_at_server.iter().all(|ip| ip[0] == 0x45 && ip[1] == 0));
}

/// RFC 1962 §2 with stateful MPPE: the Reset-Ack leaves with the flushed packet it announces
/// (so no packet encrypted before the reset can follow it), or on its own after 10 ms of no
/// data; a repeated Reset-Request meanwhile is answered once, with its Identifier.
#[test]
fn reset_ack_travels_with_the_flushed_packet() {
    const CCP_HEADER: [u8; 4] = [0xFF, 0x03, 0x80, 0xFD];
    let reset_request = |id: u8| [&CCP_HEADER[..], &[14, id, 0, 4]].concat();
    let reset_ack = |id: u8| [&CCP_HEADER[..], &[15, id, 0, 4]].concat();
    let mut p = stateful_pair(14);
    assert!(p.bring_up());
    assert_eq!(p.exchange(3, 100), (6, 6));
    let now = p.now;
    let mut ip = vec![0u8; 100];
    ip[0] = 0x45;

    p.server.handle_input(now, &mut reset_request(7)).unwrap();
    p.server.handle_input(now, &mut reset_request(8)).unwrap();
    assert_eq!(p.server.poll_transmit(), None, "the Ack waits for data");
    let mut data = Vec::new();
    p.server.encapsulate_ip(&ip, &mut data).unwrap();
    assert_eq!(p.server.poll_transmit(), Some(reset_ack(8)));
    assert_eq!(p.server.poll_transmit(), None);
    // RFC 3078 §3.1: the flushed bit (A, 0x80) is set in the packet after the reset.
    assert_eq!(data[4] & 0x80, 0x80, "flushed: {data:02x?}");

    // No data to carry it: the Ack leaves alone once its hold is over.
    p.server.handle_input(now, &mut reset_request(9)).unwrap();
    p.server.handle_timeout(now + Duration::from_millis(9));
    assert_eq!(p.server.poll_transmit(), None);
    assert!(p.server.poll_timeout().unwrap() <= now + Duration::from_millis(10));
    p.server.handle_timeout(now + Duration::from_millis(10));
    assert_eq!(p.server.poll_transmit(), Some(reset_ack(9)));
    assert_eq!(p.server.mppe_repairs().resets_received, 3);
}

#[test]
fn lost_control_frames_recover_via_restart_timer() {
    for seed in 20..30 {
        let mut p = Pair::new(
            server_cfg(vec![MsChapV2], Require),
            client_cfg(vec![MsChapV2], Require, "s3cret"),
            seed,
        );
        p.impair.loss_ctrl = 250;
        assert!(
            p.bring_up(),
            "seed {seed}: {:?} / {:?}",
            p.server_events,
            p.client_events
        );
        p.impair = Impair::default();
        assert_eq!(p.exchange(10, 100), (20, 20));
    }
}

#[test]
fn keepalive_timeout_after_twice_the_interval() {
    let mut p = Pair::new(
        server_cfg(vec![MsChapV2], Require),
        client_cfg(vec![MsChapV2], Require, "s3cret"),
        31,
    );
    assert!(p.bring_up());
    // Echoes keep a healthy link up for a long time.
    let t0 = p.now;
    p.run_until(Duration::from_secs(100), |_| false);
    assert!(p.both_up());
    assert!(p.now >= t0 + Duration::from_secs(100));
    p.cut_client_to_server = true;
    let cut = p.now;
    p.run_until(Duration::from_secs(60), |p| p.server_down().is_some());
    assert_eq!(p.server_down(), Some(&DownReason::KeepaliveTimeout));
    let elapsed = p.now - cut;
    assert!(
        elapsed >= Duration::from_secs(19) && elapsed <= Duration::from_secs(21),
        "{elapsed:?}"
    );
}

#[test]
fn terminate_from_either_side() {
    let mut p = Pair::new(
        server_cfg(vec![MsChapV2], Require),
        client_cfg(vec![MsChapV2], Require, "s3cret"),
        32,
    );
    assert!(p.bring_up());
    let now = p.now;
    p.client.close(now, "user hangup");
    assert!(!p.client.is_up());
    let mut out = Vec::new();
    assert_eq!(
        p.client.encapsulate_ip(&[0x45; 20], &mut out),
        Err(SendError::NotReady)
    );
    p.run_until(Duration::from_secs(30), |p| {
        p.server_down().is_some() && p.client_down().is_some()
    });
    assert_eq!(p.server_down(), Some(&DownReason::PeerTerminated));
    assert_eq!(
        p.client_down(),
        Some(&DownReason::LocalClose("user hangup".into()))
    );
    assert_eq!(p.client.phase(), Phase::Dead);
    assert_eq!(p.client.poll_timeout(), None);

    let mut p = Pair::new(
        server_cfg(vec![MsChapV2], Require),
        client_cfg(vec![MsChapV2], Require, "s3cret"),
        33,
    );
    assert!(p.bring_up());
    let now = p.now;
    p.server.close(now, "admin");
    p.run_until(Duration::from_secs(30), |p| {
        p.server_down().is_some() && p.client_down().is_some()
    });
    assert_eq!(p.client_down(), Some(&DownReason::PeerTerminated));
    assert_eq!(
        p.server_down(),
        Some(&DownReason::LocalClose("admin".into()))
    );

    // Close with the peer gone: bounded Terminate-Requests, then Down.
    let mut p = Pair::new(
        server_cfg(vec![MsChapV2], Require),
        client_cfg(vec![MsChapV2], Require, "s3cret"),
        34,
    );
    assert!(p.bring_up());
    p.impair.loss_ctrl = 1000;
    let now = p.now;
    p.server.close(now, "gone");
    p.run_until(Duration::from_secs(30), |p| p.server_down().is_some());
    assert_eq!(
        p.server_down(),
        Some(&DownReason::LocalClose("gone".into()))
    );
    assert!(p.now - now <= Duration::from_secs(7));
}

#[test]
fn server_walks_auth_list_to_client_choice() {
    let mut p = Pair::new(
        server_cfg(vec![MsChapV2, MsChapV1, ChapMd5, Pap], Prefer),
        client_cfg(vec![ChapMd5], Prefer, "s3cret"),
        40,
    );
    assert!(p.bring_up());
    assert_eq!(p.server.auth_method(), Some(ChapMd5));
    // Nothing in common: LCP fails.
    let mut p = Pair::new(
        server_cfg(vec![MsChapV2], Prefer),
        client_cfg(vec![Pap], Prefer, "s3cret"),
        41,
    );
    p.run_until(Duration::from_secs(120), |p| p.server_down().is_some());
    assert!(matches!(
        p.server_down(),
        Some(DownReason::NegotiationFailed(_))
    ));
}

#[test]
fn ip_before_up_and_plaintext_under_mppe_are_dropped() {
    let mut p = Pair::new(
        server_cfg(vec![MsChapV2], Require),
        client_cfg(vec![MsChapV2], Require, "s3cret"),
        42,
    );
    let now = p.now;
    let mut f = vec![0xFF, 0x03, 0x00, 0x21, 0x45, 0, 0, 20];
    assert_eq!(p.server.handle_input(now, &mut f), Ok(None));
    let mut out = Vec::new();
    assert_eq!(
        p.server.encapsulate_ip(&[0x45; 20], &mut out),
        Err(SendError::NotReady)
    );
    assert!(p.bring_up());
    let now = p.now;
    let mut f = vec![0x21, 0x45, 0, 0, 20];
    assert_eq!(p.server.handle_input(now, &mut f), Ok(None));
    // Too big for the peer's MRU (1400) with MPPE overhead.
    assert!(matches!(
        p.server.encapsulate_ip(&vec![0x45; 1400], &mut out),
        Err(SendError::TooBig { max: 1396, .. })
    ));
    assert!(p.server.encapsulate_ip(&vec![0x45; 1396], &mut out).is_ok());
}

#[test]
fn server_ignores_ipcp_until_address_is_set() {
    let mut p = Pair::new(
        server_cfg(vec![MsChapV2], Require),
        client_cfg(vec![MsChapV2], Require, "s3cret"),
        43,
    );
    // Intercept: don't auto-assign the address.
    p.run_until(Duration::from_secs(10), |p| {
        p.server_events
            .iter()
            .any(|e| matches!(e, Event::Authenticated { .. }))
    });
    assert!(p.server.phase() == Phase::Network || p.server.is_up());
    assert!(p.bring_up());
}

#[test]
fn mschapv2_retry_with_new_challenge_counts_attempts() {
    // Wrong password with 3 attempts: our client gives up at the first failure (it has no other
    // password); the server must still close the link after the client's terminate.
    let mut p = Pair::new(
        server_cfg(vec![MsChapV2], Require),
        client_cfg(vec![MsChapV2], Require, "bad"),
        44,
    );
    p.run_until(Duration::from_secs(60), |p| {
        p.client_down().is_some() && p.server_down().is_some()
    });
    assert_eq!(p.client_down(), Some(&DownReason::AuthFailed));
    assert!(p.server_down().is_some());
    let reason = p.client_events.iter().find_map(|e| match e {
        Event::AuthFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.unwrap().starts_with("E=691 R=1 C="));
}

#[test]
fn auth_timeout_when_secret_never_provided() {
    let mut p = Pair::new(
        server_cfg(vec![MsChapV2], Require),
        client_cfg(vec![MsChapV2], Require, "s3cret"),
        45,
    );
    p.answer_auth = false;
    let t0 = p.now;
    p.run_until(Duration::from_secs(120), |p| p.server_down().is_some());
    assert!(
        p.server_events
            .iter()
            .any(|e| matches!(e, Event::AuthRequest { .. }))
    );
    assert_eq!(p.server_down(), Some(&DownReason::AuthTimeout));
    assert!(p.now - t0 <= Duration::from_secs(31));
}

/// A peer that keeps renegotiating (here: the same unacceptable LCP request, retransmitted
/// every second with the same Identifier, so Max-Failure never trips) cannot hold the
/// server's session beyond the setup bound.
#[test]
fn setup_is_bounded() {
    let start = std::time::Instant::now();
    let mut s = Ppp::server(server_cfg(vec![MsChapV2], Require), start, [7; 32]);
    // LCP Configure-Request id 1 with MRU 32 (below the minimum: always Nak'ed).
    let req = [0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 8, 1, 4, 0, 32];
    let mut down = None;
    for t in 0..200 {
        let now = start + Duration::from_secs(t);
        let mut f = req.to_vec();
        let _ = s.handle_input(now, &mut f);
        s.handle_timeout(now);
        while let Some(mut out) = s.poll_transmit() {
            // Acknowledge our own LCP requests, so only the peer's side never converges.
            if out.starts_with(&[0xff, 0x03, 0xc0, 0x21, 1]) {
                out[4] = 2;
                let _ = s.handle_input(now, &mut out);
            }
        }
        while let Some(ev) = s.poll_event() {
            if let Event::Down { reason } = ev {
                down = Some((t, reason));
            }
        }
        if down.is_some() {
            break;
        }
    }
    let (t, reason) = down.expect("session never torn down");
    // Down follows the orderly LCP termination (Terminate-Requests for a few restart periods).
    assert!(t <= SETUP_TIMEOUT.as_secs() + 10, "{t}");
    assert!(
        matches!(&reason, DownReason::NegotiationFailed(w) if w.contains("not up within")),
        "{reason:?}"
    );
}

/// The operator may hold only the NT hash (RFC 2759 §8.3). MS-CHAPv2 and MS-CHAPv1 with
/// MPPE-128 come up exactly as with the password: with the same seeds every frame, the
/// MPPE-encrypted data included, is the same, so the keys are the same.
#[test]
fn nt_hash_credential_matches_password_for_ms_chap() {
    for (auth, seed) in [(MsChapV2, 60), (MsChapV1, 61)] {
        let run = |with_hash: bool| {
            let mut p = Pair::new(
                server_cfg(vec![auth], Require),
                client_cfg(vec![auth], Require, "s3cret"),
                seed,
            );
            p.answer_with_nt_hash = with_hash;
            assert!(
                p.bring_up(),
                "{auth} hash={with_hash}: {:?} {:?}",
                p.server_events,
                p.client_events
            );
            assert_up(&p, mppe128());
            assert_eq!(p.exchange(50, 500), (100, 100), "{auth} hash={with_hash}");
            p
        };
        let (pw, nt) = (run(false), run(true));
        assert!(
            nt.server_events
                .iter()
                .any(|e| matches!(e, Event::Authenticated { method, .. } if *method == auth))
        );
        assert_eq!(pw.server_events, nt.server_events, "{auth}");
        assert_eq!(pw.client_events, nt.client_events, "{auth}");
        assert_eq!(pw.log, nt.log, "{auth}: frames differ");
        assert_eq!(pw.got_at_server, nt.got_at_server);
        assert_eq!(pw.got_at_client, nt.got_at_client);

        // The hash of another password is a wrong password.
        let mut s = server_cfg(vec![auth], Require);
        s.max_auth_attempts = 1;
        let mut p = Pair::new(s, client_cfg(vec![auth], Require, "wrong"), seed);
        p.answer_with_nt_hash = true;
        p.run_until(Duration::from_secs(60), |p| {
            p.server_down().is_some() && p.client_down().is_some()
        });
        assert_eq!(p.server_down(), Some(&DownReason::AuthFailed), "{auth}");
    }
}

/// PAP and CHAP-MD5 need the cleartext: given only the NT hash the attempt fails with a clear
/// reason (AuthFailed, then Down), and the peer sees an ordinary failure.
#[test]
fn pap_and_chap_md5_fail_with_only_the_nt_hash() {
    for auth in [Pap, ChapMd5] {
        let mut p = Pair::new(
            server_cfg(vec![auth], Prefer),
            client_cfg(vec![auth], Prefer, "s3cret"),
            62,
        );
        p.answer_with_nt_hash = true;
        p.run_until(Duration::from_secs(60), |p| {
            p.server_down().is_some() && p.client_down().is_some()
        });
        let expected = format!("no cleartext password available for {auth}");
        let failed = p.server_events.iter().position(|e| {
            matches!(e, Event::AuthFailed { username, method, reason }
                if username == "alice" && *method == auth && *reason == expected)
        });
        let down = p
            .server_events
            .iter()
            .position(|e| matches!(e, Event::Down { .. }));
        assert!(
            matches!((failed, down), (Some(f), Some(d)) if f < d),
            "{auth}: {:?}",
            p.server_events
        );
        assert_eq!(p.server_down(), Some(&DownReason::AuthFailed), "{auth}");
        assert!(
            !p.server_events
                .iter()
                .any(|e| matches!(e, Event::Authenticated { .. }))
        );
        assert!(
            p.client_events
                .iter()
                .any(|e| matches!(e, Event::AuthFailed { .. })),
            "{auth}: {:?}",
            p.client_events
        );
        assert!(p.client_down().is_some());
        assert!(!p.client.is_up() && !p.server.is_up());
    }
}

#[test]
fn ip_mtu_is_what_encapsulate_accepts() {
    for (policy, expected) in [(Require, 1396), (Deny, 1400)] {
        let mut p = Pair::new(
            server_cfg(vec![MsChapV2], policy),
            client_cfg(vec![MsChapV2], policy, "s3cret"),
            7,
        );
        assert!(p.bring_up());
        for engine in [&mut p.client, &mut p.server] {
            let mtu = engine.ip_mtu();
            assert_eq!(mtu, expected, "{policy:?}");
            let mut out = Vec::new();
            let mut ip = vec![0u8; usize::from(mtu)];
            ip[0] = 0x45;
            assert!(engine.encapsulate_ip(&ip, &mut out).is_ok());
            ip.push(0);
            assert!(engine.encapsulate_ip(&ip, &mut out).is_err());
        }
    }
}
