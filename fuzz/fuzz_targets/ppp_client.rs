#![no_main]
//! The PPP engine in the client role (the in-repo client's), facing a real server engine
//! whose frames the input may replace or corrupt. The first octets pick the client's
//! authentication protocols and MPPE policy and the server's. Operations: pass frames through
//! unchanged (both ways), inject a frame, corrupt the server's next frame, let time pass, send
//! IP, close. Invariants: no panic; once up, IP round-trips from the server to the client.

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::Ops;
use sluice_ppp::{
    AuthProto, ClientConfig, EncryptionPolicy, Event, MppePolicy, Ppp, ServerConfig, StatefulMode,
};

const PROTOS: [AuthProto; 4] = [
    AuthProto::Pap,
    AuthProto::ChapMd5,
    AuthProto::MsChapV1,
    AuthProto::MsChapV2,
];
const POLICIES: [EncryptionPolicy; 4] = [
    EncryptionPolicy::Deny,
    EncryptionPolicy::Allow,
    EncryptionPolicy::Prefer,
    EncryptionPolicy::Require,
];
const STATEFUL: [StatefulMode; 3] = [
    StatefulMode::Refuse,
    StatefulMode::Allow,
    StatefulMode::Prefer,
];

fn protos(mask: u8) -> Vec<AuthProto> {
    let v: Vec<AuthProto> = PROTOS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, p)| *p)
        .collect();
    if v.is_empty() {
        vec![AuthProto::MsChapV2]
    } else {
        v
    }
}

fn mppe(b: u8) -> MppePolicy {
    MppePolicy {
        policy: POLICIES[usize::from(b & 3)],
        stateful: STATEFUL[usize::from(b >> 2) % 3],
        ..MppePolicy::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let (a, b) = (ops.u8(), ops.u8());
    let mut now = Instant::now();
    let mut client = Ppp::client(
        ClientConfig {
            username: "alice".into(),
            password: b"pw".to_vec(),
            auth: protos(a),
            mppe: mppe(b),
            request_dns: a & 0x80 != 0,
            ..ClientConfig::default()
        },
        now,
        [a; 32],
    );
    let mut server = Ppp::server(
        ServerConfig {
            auth: protos(a >> 4),
            mppe: mppe(b >> 4),
            ..ServerConfig::default()
        },
        now,
        [b; 32],
    );
    let mut rounds = 0;
    // Set once a frame toward the client was injected or corrupted: from then on the
    // client's MPPE state may legitimately disagree with the server's.
    let mut tampered = false;
    while !ops.is_empty() && rounds < 256 {
        rounds += 1;
        match ops.u8() % 8 {
            0 | 1 => {
                while let Some(mut f) = client.poll_transmit() {
                    let _ = server.handle_input(now, &mut f);
                }
                while let Some(mut f) = server.poll_transmit() {
                    let _ = client.handle_input(now, &mut f);
                }
            }
            2 => {
                tampered = true;
                let mut f = ops.short().to_vec();
                let _ = client.handle_input(now, &mut f);
            }
            3 => {
                if let Some(mut f) = server.poll_transmit() {
                    tampered = true;
                    ops.mutate(&mut f, 4);
                    let _ = client.handle_input(now, &mut f);
                }
            }
            4 => {
                now += Duration::from_millis(u64::from(ops.u16()) * 10);
                client.handle_timeout(now);
                server.handle_timeout(now);
            }
            5 => {
                // IP from the server to the client: delivered intact once both are up (unless frames were tampered with).
                let ip = ops.short().to_vec();
                let mut out = Vec::new();
                if server.encapsulate_ip(&ip, &mut out).is_ok() {
                    let up = client.is_up() && server.is_up();
                    let got = client.handle_input(now, &mut out);
                    if up && !tampered && !ip.is_empty() {
                        assert_eq!(got.ok().flatten(), Some(&ip[..]), "IP lost on an up link");
                    }
                }
            }
            6 => {
                let mut out = Vec::new();
                let _ = client.encapsulate_ip(ops.short(), &mut out);
                let _ = server.handle_input(now, &mut out);
            }
            _ => match ops.u8() % 2 {
                0 => client.close(now, "fuzz"),
                _ => server.close(now, "fuzz"),
            },
        }
        while let Some(ev) = server.poll_event() {
            if let Event::AuthRequest { .. } = ev {
                server.provide_secret(now, Some(b"pw"));
                server.set_peer_address([10, 0, 0, 2].into());
            }
        }
        while client.poll_event().is_some() {}
        let _ = client.poll_timeout();
    }
});
