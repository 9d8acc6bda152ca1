//! Unit tests of the authentication phase state machines (PAP, CHAP-MD5, MS-CHAPv1/v2).

use super::*;
use crate::test_vectors::*;
use rand_chacha::rand_core::SeedableRng as _;

struct Server {
    now: Instant,
    auth: ServerAuth,
    rng: ChaCha20Rng,
    tx: Tx,
}

/// An authenticator whose challenge is `challenge` (the RFC's, not a random one).
fn server(method: AuthProto, challenge: &[u8]) -> Server {
    let now = Instant::now();
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let mut tx = Tx::default();
    let mut auth = ServerAuth::start(
        now,
        method,
        "sluice",
        3,
        Duration::from_secs(30),
        &mut rng,
        &mut tx,
    );
    while tx.pop().is_some() {}
    auth.challenge[..challenge.len()].copy_from_slice(challenge);
    Server { now, auth, rng, tx }
}

impl Server {
    /// Feeds a PAP Authenticate-Request or CHAP Response and expects `NeedSecret`.
    fn request(&mut self, value: &[u8], name: &[u8]) {
        let mut data = Vec::new();
        let protocol = if self.auth.method == AuthProto::Pap {
            pap::Request {
                peer_id: name,
                password: value,
            }
            .emit(&mut data);
            proto::PAP
        } else {
            ValueName { value, name }.emit(&mut data);
            proto::CHAP
        };
        let code = if protocol == proto::PAP {
            pap::AUTH_REQ
        } else {
            chap::RESPONSE
        };
        let pkt = ControlPacket {
            code,
            id: self.auth.id,
            data: &data,
        };
        let r = self.auth.handle_packet(protocol, &pkt, &mut self.tx);
        assert_eq!(
            r.unwrap(),
            Some(AuthResult::NeedSecret {
                username: lossy(name)
            })
        );
    }

    /// Answers with `credential`: the result and the reply frame sent to the peer.
    fn answer(&mut self, credential: Option<Credential<'_>>) -> (AuthResult, Vec<u8>) {
        let r = self
            .auth
            .provide_credential(self.now, credential, &mut self.rng, &mut self.tx)
            .unwrap();
        (r, self.tx.pop().unwrap())
    }
}

/// One RFC 2759 §9.2 exchange answered with `credential`.
fn v2_exchange(credential: Credential<'_>) -> (AuthResult, Vec<u8>, u8) {
    let mut s = server(AuthProto::MsChapV2, &arr::<16>(V2_AUTH_CHALLENGE));
    // RFC 2759 §4: peer challenge, 8 reserved, NT-Response, flags.
    let mut value = hex(V2_PEER_CHALLENGE);
    value.extend_from_slice(&[0; 8]);
    value.extend_from_slice(&hex(V2_NT_RESPONSE));
    value.push(0);
    s.request(&value, V2_USER);
    let id = s.auth.id;
    let (r, reply) = s.answer(Some(credential));
    (r, reply, id)
}

#[test]
fn rfc2759_known_answer_from_password_and_nt_hash() {
    let hash = mschap::nt_password_hash(V2_PASSWORD);
    let rfc_hash: [u8; 16] = arr(V2_PASSWORD_HASH);
    // RFC 3079 §3.5.1: the server sends with SendStartKey128 and receives with the other.
    let keys = MppeKeys {
        send: arr(V2_SERVER_SEND_START_KEY),
        recv: mppe::get_asymmetric_start_key(&arr(V2_MASTER_KEY), false, true),
    };
    let success = |id| {
        let msg = format!("{V2_AUTH_RESPONSE} M=Access granted");
        crate::frame::control_frame(proto::CHAP, chap::SUCCESS, id, msg.as_bytes())
    };
    let with_password = v2_exchange(Credential::Password(V2_PASSWORD));
    for credential in [
        Credential::Password(V2_PASSWORD),
        Credential::NtHash(&hash),
        Credential::NtHash(&rfc_hash),
    ] {
        let (r, reply, id) = v2_exchange(credential);
        assert_eq!(
            r,
            AuthResult::Success {
                username: "User".to_owned(),
                keys: Some(keys),
            },
            "{credential:?}"
        );
        assert_eq!(reply, success(id), "{credential:?}");
        assert_eq!((r, reply, id), with_password);
    }
    // A different hash is a wrong password (with a retry, RFC 2759 §6).
    let wrong = mschap::nt_password_hash(b"clientpass");
    let (r, reply, _) = v2_exchange(Credential::NtHash(&wrong));
    assert!(
        matches!(&r, AuthResult::Failure { reason, fatal: false, .. } if reason.starts_with("E=691 R=1")),
        "{r:?}"
    );
    assert_eq!(reply.get(4), Some(&chap::FAILURE));
}

/// One RFC 2433 B.2 exchange (`use_nt` false: LM-only) answered with `credential`.
fn v1_exchange(credential: Credential<'_>, use_nt: bool) -> (AuthResult, Vec<u8>) {
    let mut s = server(AuthProto::MsChapV1, &arr::<8>(V1_CHALLENGE));
    // RFC 2433 §5: LM response, NT response, "use NT" flag.
    let mut value = vec![0; 24];
    value.extend_from_slice(&hex(V1_NT_RESPONSE));
    value.push(u8::from(use_nt));
    s.request(&value, b"User");
    s.answer(Some(credential))
}

#[test]
fn rfc2433_known_answer_from_password_and_nt_hash() {
    let hash = mschap::nt_password_hash(V1_PASSWORD);
    let rfc_hash: [u8; 16] = arr(V1_PASSWORD_HASH);
    let key = mppe::mschap_v1_start_key(
        &arr(V1_CHALLENGE),
        &mschap::hash_nt_password_hash(&rfc_hash),
    );
    let with_password = v1_exchange(Credential::Password(V1_PASSWORD), true);
    for credential in [
        Credential::Password(V1_PASSWORD),
        Credential::NtHash(&hash),
        Credential::NtHash(&rfc_hash),
    ] {
        let (r, reply) = v1_exchange(credential, true);
        assert_eq!(
            r,
            AuthResult::Success {
                username: "User".to_owned(),
                keys: Some(MppeKeys {
                    send: key,
                    recv: key
                }),
            }
        );
        assert_eq!(reply.get(4), Some(&chap::SUCCESS));
        assert_eq!((r, reply), with_password);
    }
    let (r, _) = v1_exchange(Credential::NtHash(&[0; 16]), true);
    assert!(matches!(r, AuthResult::Failure { fatal: true, .. }));
}

#[test]
fn mschapv1_lm_only_fails_cleanly() {
    let hash = mschap::nt_password_hash(V1_PASSWORD);
    for credential in [Credential::Password(V1_PASSWORD), Credential::NtHash(&hash)] {
        let (r, reply) = v1_exchange(credential, false);
        assert!(
            matches!(&r, AuthResult::Failure { reason, fatal: true, .. } if reason.contains("LM-only")),
            "{r:?}"
        );
        // The peer sees an ordinary failure.
        assert_eq!(reply.get(4), Some(&chap::FAILURE));
        assert!(reply.ends_with(b"E=691 R=0"));
    }
}

#[test]
fn pap_and_chap_md5_need_the_cleartext() {
    let hash = mschap::nt_password_hash(b"s3cret");
    let cases = [
        (AuthProto::Pap, "no cleartext password available for PAP"),
        (
            AuthProto::ChapMd5,
            "no cleartext password available for CHAP-MD5",
        ),
    ];
    for (method, expected) in cases {
        let run = |credential: Option<Credential<'_>>| {
            let mut s = server(method, &[]);
            let value = if method == AuthProto::Pap {
                b"s3cret".to_vec()
            } else {
                chap::md5_response(s.auth.id, b"s3cret", &s.auth.challenge).to_vec()
            };
            s.request(&value, b"alice");
            let out = s.answer(credential);
            assert!(s.auth.is_done());
            out
        };
        let (r, reply) = run(Some(Credential::NtHash(&hash)));
        assert_eq!(
            r,
            AuthResult::Failure {
                username: "alice".to_owned(),
                reason: expected.to_owned(),
                fatal: true,
            }
        );
        // The peer sees the same Nak / Failure as for a wrong password.
        let (wrong, wrong_reply) = run(Some(Credential::Password(b"other")));
        assert!(matches!(wrong, AuthResult::Failure { fatal: true, .. }));
        assert_eq!(reply, wrong_reply);
        let (ok, _) = run(Some(Credential::Password(b"s3cret")));
        assert!(matches!(ok, AuthResult::Success { keys: None, .. }));
        let (unknown, _) = run(None);
        assert!(matches!(unknown, AuthResult::Failure { fatal: true, .. }));
    }
}

#[test]
fn debug_never_prints_secrets() {
    let hash = mschap::nt_password_hash(b"s3cret");
    let bytes = format!("{hash:?}");
    let hash_list = bytes.trim_start_matches('[').trim_end_matches(']');
    let cred = format!(
        "{:?} {:?}",
        Credential::NtHash(&hash),
        Credential::Password(b"s3cret")
    );
    assert!(
        !cred.contains(hash_list) && !cred.contains("s3cret"),
        "{cred}"
    );
    let keys = MppeKeys {
        send: hash,
        recv: hash,
    };
    assert!(!format!("{keys:?}").contains(hash_list));

    let mut s = server(AuthProto::Pap, &[]);
    s.request(b"s3cret", b"alice");
    let dbg = format!("{:?}", s.auth);
    assert!(!dbg.contains("115, 51, 99"), "{dbg}"); // b"s3c"

    let mut tx = Tx::default();
    let mut rng = ChaCha20Rng::from_seed([2; 32]);
    let c = ClientAuth::start(
        Instant::now(),
        AuthProto::MsChapV2,
        "alice",
        b"s3cret",
        &mut rng,
        &mut tx,
    );
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("115, 51, 99") && !dbg.contains(hash_list),
        "{dbg}"
    );
    let cfg = crate::ClientConfig {
        password: b"s3cret".to_vec(),
        ..Default::default()
    };
    let dbg = format!("{cfg:?}");
    assert!(
        !dbg.contains("115, 51, 99") && !dbg.contains("s3cret"),
        "{dbg}"
    );
}
