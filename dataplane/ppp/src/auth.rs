//! Authentication phase state machines (RFC 1661 §3.5): PAP (RFC 1334), CHAP-MD5 (RFC 1994),
//! MS-CHAPv1 (RFC 2433) and MS-CHAPv2 (RFC 2759), authenticator and peer roles.

use std::fmt;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::Rng as _;
use subtle::ConstantTimeEq as _;

use crate::chap::{self, ValueName};
use crate::config::AuthProto;
use crate::error::{Error, Layer};
use crate::frame::{ControlPacket, proto};
use crate::fsm::{RESTART, Tx};
use crate::{mppe, mschap, pap};

/// A user's secret, given by the daemon after `AuthRequest`.
///
/// MS-CHAPv1 (RFC 2433) and MS-CHAPv2 (RFC 2759), MPPE keys included (RFC 3079), need only
/// the NT hash; PAP (RFC 1334) and CHAP-MD5 (RFC 1994) need the cleartext and fail without it.
/// `Debug` never prints the secret.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// Cleartext password.
    Password(&'a [u8]),
    /// NtPasswordHash (RFC 2759 §8.3, RFC 2433 A.6): MD4 of the UTF-16LE password.
    NtHash(&'a [u8; 16]),
}

impl<'a> Credential<'a> {
    /// The cleartext password, when this credential carries it.
    pub fn password(&self) -> Option<&'a [u8]> {
        match self {
            Credential::Password(p) => Some(p),
            Credential::NtHash(_) => None,
        }
    }

    /// NtPasswordHash (RFC 2759 §8.3), computed from the password when needed.
    pub fn nt_hash(&self) -> [u8; 16] {
        match self {
            Credential::Password(p) => mschap::nt_password_hash(p),
            Credential::NtHash(h) => **h,
        }
    }
}

impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credential::Password(_) => "Password(<redacted>)",
            Credential::NtHash(_) => "NtHash(<redacted>)",
        })
    }
}

/// A secret value whose `Debug` prints nothing of it.
struct Redacted<T>(T);

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// MPPE start keys per direction (16 octets; 40/56-bit use the first 8). `Debug` redacts them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MppeKeys {
    /// Start key for what we send.
    pub send: [u8; 16],
    /// Start key for what we receive.
    pub recv: [u8; 16],
}

impl fmt::Debug for MppeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MppeKeys(<redacted>)")
    }
}

/// What an authentication step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    /// Server: the daemon must look up the user's password.
    NeedSecret { username: String },
    /// Authentication succeeded.
    Success {
        username: String,
        keys: Option<MppeKeys>,
    },
    /// Authentication failed; `fatal` when no retry remains.
    Failure {
        username: String,
        reason: String,
        fatal: bool,
    },
}

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name.get(..name.len().min(255)).unwrap_or_default()).into_owned()
}

/// MS-CHAPv2 keys (RFC 3079 §3.4) from the NtPasswordHash.
fn mschap_v2_keys(password_hash: &[u8; 16], nt: &[u8; 24], server: bool) -> MppeKeys {
    let hh = mschap::hash_nt_password_hash(password_hash);
    let master = mppe::get_master_key(&hh, nt);
    MppeKeys {
        send: mppe::get_asymmetric_start_key(&master, true, server),
        recv: mppe::get_asymmetric_start_key(&master, false, server),
    }
}

/// MS-CHAPv1 keys (RFC 3079 §2.3 Get_Start_Key, same key both directions). As in pppd and
/// the Linux kernel, 40/56-bit sessions use the first 8 octets of this NT-hash-based key.
fn mschap_v1_keys(password_hash: &[u8; 16], challenge: &[u8; 8]) -> MppeKeys {
    let hh = mschap::hash_nt_password_hash(password_hash);
    let k = mppe::mschap_v1_start_key(challenge, &hh);
    MppeKeys { send: k, recv: k }
}

/// The peer's response, kept while the daemon looks the user up.
enum Pending {
    Pap {
        password: Vec<u8>,
    },
    Md5 {
        response: [u8; 16],
    },
    /// `None`: LM-only response (RFC 2433 §5, "use NT" flag clear).
    V1 {
        nt: Option<[u8; 24]>,
    },
    V2 {
        peer: [u8; 16],
        nt: [u8; 24],
    },
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pending::Pap { .. } => "Pap(<redacted>)",
            Pending::Md5 { .. } => "Md5(<redacted>)",
            Pending::V1 { .. } => "V1(<redacted>)",
            Pending::V2 { .. } => "V2(<redacted>)",
        })
    }
}

/// Outcome of checking a response against a credential.
enum Verdict {
    /// Proven: MPPE keys (MS-CHAP) and the Success message.
    Accepted {
        keys: Option<MppeKeys>,
        message: Vec<u8>,
    },
    /// Wrong password or unknown user.
    Rejected,
    /// The credential cannot check this response (e.g. PAP given only the NT hash).
    Unverifiable(String),
}

#[derive(Debug)]
enum ServerState {
    AwaitResponse {
        retransmit: Option<Instant>,
    },
    AwaitSecret {
        username: String,
        resp_id: u8,
        pending: Pending,
    },
    Done {
        resp_id: u8,
        reply: Vec<u8>,
    },
}

/// Authenticator side.
#[derive(Debug)]
pub struct ServerAuth {
    method: AuthProto,
    name: Vec<u8>,
    max_attempts: u8,
    attempts: u8,
    deadline: Instant,
    challenge: [u8; 16],
    id: u8,
    any_id: bool,
    state: ServerState,
}

impl ServerAuth {
    /// Starts authentication (CHAP variants send a Challenge).
    pub fn start(
        now: Instant,
        method: AuthProto,
        name: &str,
        max_attempts: u8,
        timeout: Duration,
        rng: &mut ChaCha20Rng,
        tx: &mut Tx,
    ) -> Self {
        let mut s = ServerAuth {
            method,
            name: name
                .as_bytes()
                .get(..name.len().min(64))
                .unwrap_or_default()
                .to_vec(),
            max_attempts: max_attempts.max(1),
            attempts: 0,
            deadline: now + timeout,
            challenge: [0; 16],
            id: (rng.next_u32() & 0xFF) as u8,
            any_id: false,
            state: ServerState::AwaitResponse { retransmit: None },
        };
        if method != AuthProto::Pap {
            s.new_challenge(rng);
            s.send_challenge(now, tx);
        }
        s
    }

    fn challenge_len(&self) -> usize {
        match self.method {
            AuthProto::MsChapV1 => 8,
            _ => 16,
        }
    }

    fn new_challenge(&mut self, rng: &mut ChaCha20Rng) {
        rng.fill_bytes(&mut self.challenge);
    }

    fn send_challenge(&mut self, now: Instant, tx: &mut Tx) {
        let mut data = Vec::with_capacity(1 + 16 + self.name.len());
        ValueName {
            value: self
                .challenge
                .get(..self.challenge_len())
                .unwrap_or_default(),
            name: &self.name,
        }
        .emit(&mut data);
        tx.control(proto::CHAP, chap::CHALLENGE, self.id, &data);
        self.state = ServerState::AwaitResponse {
            retransmit: Some(now + RESTART),
        };
    }

    /// Whether the phase is finished (success or final failure already reported).
    pub fn is_done(&self) -> bool {
        matches!(self.state, ServerState::Done { .. })
    }

    /// Earliest timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ServerState::Done { .. } => None,
            ServerState::AwaitResponse {
                retransmit: Some(r),
            } => Some(r.min(self.deadline)),
            _ => Some(self.deadline),
        }
    }

    /// Timer expiry: challenge retransmission or the overall bound.
    pub fn handle_timeout(&mut self, now: Instant, tx: &mut Tx) -> Option<AuthResult> {
        if self.is_done() {
            return None;
        }
        if now >= self.deadline {
            let username = match &self.state {
                ServerState::AwaitSecret { username, .. } => username.clone(),
                _ => String::new(),
            };
            self.state = ServerState::Done {
                resp_id: 0,
                reply: Vec::new(),
            };
            return Some(AuthResult::Failure {
                username,
                reason: "authentication timeout".to_owned(),
                fatal: true,
            });
        }
        if let ServerState::AwaitResponse {
            retransmit: Some(r),
        } = self.state
            && now >= r
        {
            self.send_challenge(now, tx);
        }
        None
    }

    /// A PAP or CHAP packet from the peer.
    pub fn handle_packet(
        &mut self,
        protocol: u16,
        pkt: &ControlPacket<'_>,
        tx: &mut Tx,
    ) -> Result<Option<AuthResult>, Error> {
        let expected = if self.method == AuthProto::Pap {
            (proto::PAP, pap::AUTH_REQ)
        } else {
            (proto::CHAP, chap::RESPONSE)
        };
        if (protocol, pkt.code) != expected {
            return Err(Error::unexpected(
                Layer::Auth,
                "packet not expected by authenticator",
            ));
        }
        match &self.state {
            ServerState::AwaitSecret { .. } => return Ok(None), // duplicate while looking up
            ServerState::Done { resp_id, reply } => {
                if *resp_id == pkt.id && !reply.is_empty() {
                    tx.push(reply.clone());
                }
                return Ok(None);
            }
            ServerState::AwaitResponse { .. } => {}
        }
        let (username, pending) = if self.method == AuthProto::Pap {
            let r = pap::Request::parse(pkt.data)?;
            (
                lossy(r.peer_id),
                Pending::Pap {
                    password: r.password.to_vec(),
                },
            )
        } else {
            if pkt.id != self.id && !self.any_id {
                return Err(Error::unexpected(
                    Layer::Auth,
                    "CHAP Response with a stale Identifier",
                ));
            }
            let vn = ValueName::parse(pkt.data)?;
            let bad = Error::malformed(Layer::Auth, "CHAP Response value size");
            let pending = match self.method {
                AuthProto::ChapMd5 => Pending::Md5 {
                    response: vn.value.try_into().map_err(|_| bad)?,
                },
                AuthProto::MsChapV1 => {
                    // RFC 2433 §5: 24 LM + 24 NT + flag (1 = use NT response).
                    let v: &[u8; 49] = vn.value.try_into().map_err(|_| bad)?;
                    let (_, rest) = v.split_at(24);
                    let (nt, flag) = rest.split_at(24);
                    Pending::V1 {
                        nt: (flag == [1]).then(|| nt.try_into().unwrap_or([0; 24])),
                    }
                }
                AuthProto::MsChapV2 | AuthProto::Pap => {
                    // RFC 2759 §4: 16 peer challenge + 8 reserved + 24 NT-Response + flags.
                    let v: &[u8; 49] = vn.value.try_into().map_err(|_| bad)?;
                    let (peer, rest) = v.split_at(16);
                    let nt = rest.get(8..32).unwrap_or_default();
                    Pending::V2 {
                        peer: peer.try_into().unwrap_or([0; 16]),
                        nt: nt.try_into().unwrap_or([0; 24]),
                    }
                }
            };
            (lossy(vn.name), pending)
        };
        self.state = ServerState::AwaitSecret {
            username: username.clone(),
            resp_id: pkt.id,
            pending,
        };
        Ok(Some(AuthResult::NeedSecret { username }))
    }

    /// The daemon's answer to `NeedSecret`. Unknown users (`None`) fail like a wrong password.
    pub fn provide_credential(
        &mut self,
        now: Instant,
        credential: Option<Credential<'_>>,
        rng: &mut ChaCha20Rng,
        tx: &mut Tx,
    ) -> Option<AuthResult> {
        let ServerState::AwaitSecret {
            username,
            resp_id,
            pending,
        } = std::mem::replace(
            &mut self.state,
            ServerState::AwaitResponse { retransmit: None },
        )
        else {
            return None;
        };
        let verdict = match credential {
            Some(c) => self.verify(c, resp_id, &username, &pending),
            None => Verdict::Rejected,
        };
        self.attempts = self.attempts.saturating_add(1);
        let (proto_no, code_ok, code_fail) = if self.method == AuthProto::Pap {
            (proto::PAP, pap::AUTH_ACK, pap::AUTH_NAK)
        } else {
            (proto::CHAP, chap::SUCCESS, chap::FAILURE)
        };
        let unverifiable = match verdict {
            Verdict::Accepted { keys, message } => {
                let reply = self.reply_frame(proto_no, code_ok, resp_id, &message);
                tx.push(reply.clone());
                self.state = ServerState::Done { resp_id, reply };
                return Some(AuthResult::Success { username, keys });
            }
            Verdict::Rejected => None,
            Verdict::Unverifiable(reason) => Some(reason),
        };
        // Retrying cannot help when the credential cannot check the response.
        let retry = self.method == AuthProto::MsChapV2
            && self.attempts < self.max_attempts
            && unverifiable.is_none();
        let msg: Vec<u8> = match self.method {
            AuthProto::MsChapV2 => {
                self.new_challenge(rng);
                let mut m = format!("E=691 R={} C=", u8::from(retry));
                mschap::push_hex_upper(&mut m, &self.challenge);
                m.push_str(" V=3 M=Authentication failure");
                m.into_bytes()
            }
            AuthProto::MsChapV1 => b"E=691 R=0".to_vec(),
            _ => b"Authentication failure".to_vec(),
        };
        let reply = self.reply_frame(proto_no, code_fail, resp_id, &msg);
        tx.push(reply.clone());
        let reason = unverifiable.unwrap_or_else(|| String::from_utf8_lossy(&msg).into_owned());
        if retry {
            // RFC 2759 §6: the peer retries with the new challenge from C=.
            self.id = resp_id.wrapping_add(1);
            self.any_id = true;
            self.state = ServerState::AwaitResponse { retransmit: None };
            let _ = now;
        } else {
            self.state = ServerState::Done { resp_id, reply };
        }
        Some(AuthResult::Failure {
            username,
            reason,
            fatal: !retry,
        })
    }

    /// Checks the pending response. MS-CHAP works from the NT hash alone (computed once from a
    /// password); PAP and CHAP-MD5 need the cleartext.
    fn verify(
        &self,
        credential: Credential<'_>,
        resp_id: u8,
        username: &str,
        pending: &Pending,
    ) -> Verdict {
        let no_cleartext = || {
            Verdict::Unverifiable(format!(
                "no cleartext password available for {}",
                self.method
            ))
        };
        let granted = |ok: bool, keys: Option<MppeKeys>| {
            if ok {
                Verdict::Accepted {
                    keys,
                    message: b"Access granted".to_vec(),
                }
            } else {
                Verdict::Rejected
            }
        };
        match pending {
            Pending::Pap { password } => match credential.password() {
                Some(secret) => granted(bool::from(password.as_slice().ct_eq(secret)), None),
                None => no_cleartext(),
            },
            Pending::Md5 { response } => match credential.password() {
                Some(secret) => {
                    let exp = chap::md5_response(resp_id, secret, &self.challenge);
                    granted(bool::from(exp.ct_eq(response)), None)
                }
                None => no_cleartext(),
            },
            // RFC 2433 §5: an LM-only response needs the LM hash, which we never keep.
            Pending::V1 { nt: None } => Verdict::Unverifiable(
                "MS-CHAPv1 LM-only response (use-NT flag clear) cannot be verified".to_owned(),
            ),
            Pending::V1 { nt: Some(nt) } => {
                let hash = credential.nt_hash();
                let mut challenge8 = [0u8; 8];
                challenge8.copy_from_slice(self.challenge.get(..8).unwrap_or(&[0; 8]));
                let exp = mschap::challenge_response(&challenge8, &hash);
                granted(
                    mschap::responses_equal(&exp, nt),
                    Some(mschap_v1_keys(&hash, &challenge8)),
                )
            }
            Pending::V2 { peer, nt } => {
                let hash = credential.nt_hash();
                let user = username.as_bytes();
                let exp =
                    mschap::generate_nt_response_with_hash(&self.challenge, peer, user, &hash);
                if !mschap::responses_equal(&exp, nt) {
                    return Verdict::Rejected;
                }
                // RFC 2759 §5: "S=<auth_string> M=<message>".
                let ar = mschap::generate_authenticator_response_with_hash(
                    &hash,
                    nt,
                    peer,
                    &self.challenge,
                    user,
                );
                Verdict::Accepted {
                    keys: Some(mschap_v2_keys(&hash, nt, true)),
                    message: format!(
                        "{} M=Access granted",
                        mschap::format_authenticator_response(&ar)
                    )
                    .into_bytes(),
                }
            }
        }
    }

    fn reply_frame(&self, protocol: u16, code: u8, id: u8, msg: &[u8]) -> Vec<u8> {
        let mut data = Vec::with_capacity(msg.len() + 1);
        if protocol == proto::PAP {
            pap::emit_message(msg, &mut data);
        } else {
            data.extend_from_slice(msg);
        }
        crate::frame::control_frame(protocol, code, id, &data)
    }
}

#[derive(Debug)]
enum ClientState {
    AwaitChallenge,
    PapSent {
        id: u8,
        frame: Vec<u8>,
        retransmit: Instant,
        left: u8,
    },
    Responded {
        id: u8,
        frame: Vec<u8>,
        retransmit: Instant,
        left: u8,
        challenge: [u8; 16],
        peer: [u8; 16],
        nt: [u8; 24],
    },
    Done,
}

/// Peer (authenticatee) side.
#[derive(Debug)]
pub struct ClientAuth {
    method: AuthProto,
    username: Vec<u8>,
    /// Cleartext, for PAP and CHAP-MD5.
    password: Redacted<Vec<u8>>,
    /// NtPasswordHash (RFC 2759 §8.3), for MS-CHAP and MPPE keys.
    nt_hash: Redacted<[u8; 16]>,
    deadline: Instant,
    state: ClientState,
}

/// Client-side bound on the authentication phase.
pub const CLIENT_AUTH_TIMEOUT: Duration = Duration::from_secs(30);

impl ClientAuth {
    /// Starts authentication (PAP sends its request at once).
    pub fn start(
        now: Instant,
        method: AuthProto,
        username: &str,
        password: &[u8],
        rng: &mut ChaCha20Rng,
        tx: &mut Tx,
    ) -> Self {
        let mut c = ClientAuth {
            method,
            username: username
                .as_bytes()
                .get(..username.len().min(255))
                .unwrap_or_default()
                .to_vec(),
            password: Redacted(password.to_vec()),
            nt_hash: Redacted(mschap::nt_password_hash(password)),
            deadline: now + CLIENT_AUTH_TIMEOUT,
            state: ClientState::AwaitChallenge,
        };
        if method == AuthProto::Pap {
            let id = (rng.next_u32() & 0xFF) as u8;
            let mut data = Vec::new();
            pap::Request {
                peer_id: &c.username,
                password: &c.password.0,
            }
            .emit(&mut data);
            let frame = crate::frame::control_frame(proto::PAP, pap::AUTH_REQ, id, &data);
            tx.push(frame.clone());
            c.state = ClientState::PapSent {
                id,
                frame,
                retransmit: now + RESTART,
                left: crate::fsm::MAX_CONFIGURE,
            };
        }
        c
    }

    fn name(&self) -> String {
        lossy(&self.username)
    }

    /// Earliest timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            ClientState::Done => None,
            ClientState::PapSent { retransmit, .. } => Some((*retransmit).min(self.deadline)),
            ClientState::Responded {
                retransmit, left, ..
            } if *left > 0 => Some((*retransmit).min(self.deadline)),
            _ => Some(self.deadline),
        }
    }

    fn fail(&mut self, reason: String) -> Option<AuthResult> {
        self.state = ClientState::Done;
        Some(AuthResult::Failure {
            username: self.name(),
            reason,
            fatal: true,
        })
    }

    /// Timer expiry.
    pub fn handle_timeout(&mut self, now: Instant, tx: &mut Tx) -> Option<AuthResult> {
        if matches!(self.state, ClientState::Done) {
            return None;
        }
        if now >= self.deadline {
            return self.fail("authentication timeout".to_owned());
        }
        if let ClientState::PapSent {
            frame,
            retransmit,
            left,
            ..
        } = &mut self.state
            && now >= *retransmit
        {
            if *left == 0 {
                return self.fail("no reply to PAP Authenticate-Request".to_owned());
            }
            *left -= 1;
            *retransmit = now + RESTART;
            tx.push(frame.clone());
        }
        // The authenticator answers a repeated Response with its earlier Success/Failure,
        // which recovers a lost reply (RFC 1994 §4.2).
        if let ClientState::Responded {
            frame,
            retransmit,
            left,
            ..
        } = &mut self.state
            && *left > 0
            && now >= *retransmit
        {
            *left -= 1;
            *retransmit = now + RESTART;
            tx.push(frame.clone());
        }
        None
    }

    /// A PAP or CHAP packet from the authenticator.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        protocol: u16,
        pkt: &ControlPacket<'_>,
        rng: &mut ChaCha20Rng,
        tx: &mut Tx,
    ) -> Result<Option<AuthResult>, Error> {
        let unexpected = Error::unexpected(Layer::Auth, "packet not expected by the peer");
        if matches!(self.state, ClientState::Done) {
            return Ok(None);
        }
        if self.method == AuthProto::Pap {
            let ClientState::PapSent { id, .. } = &self.state else {
                return Err(unexpected);
            };
            if protocol != proto::PAP || pkt.id != *id {
                return Err(unexpected);
            }
            let msg = lossy(pap::parse_message(pkt.data));
            return match pkt.code {
                pap::AUTH_ACK => {
                    self.state = ClientState::Done;
                    Ok(Some(AuthResult::Success {
                        username: self.name(),
                        keys: None,
                    }))
                }
                pap::AUTH_NAK => Ok(self.fail(msg)),
                _ => Err(unexpected),
            };
        }
        if protocol != proto::CHAP {
            return Err(unexpected);
        }
        match pkt.code {
            chap::CHALLENGE => {
                let vn = ValueName::parse(pkt.data)?;
                if let ClientState::Responded { id, frame, .. } = &self.state
                    && *id == pkt.id
                {
                    tx.push(frame.clone());
                    return Ok(None);
                }
                self.respond(now, pkt.id, vn.value, rng, tx)?;
                Ok(None)
            }
            chap::SUCCESS | chap::FAILURE => {
                let ClientState::Responded {
                    id,
                    challenge,
                    peer,
                    nt,
                    ..
                } = &self.state
                else {
                    return Err(unexpected);
                };
                if *id != pkt.id {
                    return Err(Error::unexpected(
                        Layer::Auth,
                        "CHAP reply with a stale Identifier",
                    ));
                }
                let (challenge, peer, nt) = (*challenge, *peer, *nt);
                let msg = lossy(pkt.data);
                if pkt.code == chap::FAILURE {
                    return Ok(self.fail(if msg.is_empty() {
                        "authentication failed".to_owned()
                    } else {
                        msg
                    }));
                }
                let keys = match self.method {
                    AuthProto::MsChapV2 => {
                        if !mschap::check_authenticator_response_with_hash(
                            &self.nt_hash.0,
                            &nt,
                            &peer,
                            &challenge,
                            &self.username,
                            pkt.data,
                        ) {
                            return Ok(self.fail("authenticator response mismatch".to_owned()));
                        }
                        Some(mschap_v2_keys(&self.nt_hash.0, &nt, false))
                    }
                    AuthProto::MsChapV1 => {
                        let mut c8 = [0u8; 8];
                        c8.copy_from_slice(challenge.get(..8).unwrap_or(&[0; 8]));
                        Some(mschap_v1_keys(&self.nt_hash.0, &c8))
                    }
                    _ => None,
                };
                self.state = ClientState::Done;
                Ok(Some(AuthResult::Success {
                    username: self.name(),
                    keys,
                }))
            }
            _ => Err(unexpected),
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        id: u8,
        challenge_value: &[u8],
        rng: &mut ChaCha20Rng,
        tx: &mut Tx,
    ) -> Result<(), Error> {
        let bad = Error::malformed(Layer::Auth, "CHAP challenge size");
        let mut challenge = [0u8; 16];
        let mut peer = [0u8; 16];
        let mut nt = [0u8; 24];
        let mut value = Vec::with_capacity(49);
        match self.method {
            AuthProto::ChapMd5 => {
                if challenge_value.is_empty() {
                    return Err(bad);
                }
                value.extend_from_slice(&chap::md5_response(id, &self.password.0, challenge_value));
            }
            AuthProto::MsChapV1 => {
                let c: &[u8; 8] = challenge_value.try_into().map_err(|_| bad)?;
                if let Some(dst) = challenge.get_mut(..8) {
                    dst.copy_from_slice(c);
                }
                nt = mschap::challenge_response(c, &self.nt_hash.0);
                value.extend_from_slice(&[0; 24]);
                value.extend_from_slice(&nt);
                value.push(1);
            }
            AuthProto::MsChapV2 | AuthProto::Pap => {
                challenge = challenge_value.try_into().map_err(|_| bad)?;
                rng.fill_bytes(&mut peer);
                nt = mschap::generate_nt_response_with_hash(
                    &challenge,
                    &peer,
                    &self.username,
                    &self.nt_hash.0,
                );
                value.extend_from_slice(&peer);
                value.extend_from_slice(&[0; 8]);
                value.extend_from_slice(&nt);
                value.push(0);
            }
        }
        let mut data = Vec::with_capacity(1 + value.len() + self.username.len());
        ValueName {
            value: &value,
            name: &self.username,
        }
        .emit(&mut data);
        let frame = crate::frame::control_frame(proto::CHAP, chap::RESPONSE, id, &data);
        tx.push(frame.clone());
        self.state = ClientState::Responded {
            id,
            frame,
            retransmit: now + RESTART,
            left: crate::fsm::MAX_CONFIGURE,
            challenge,
            peer,
            nt,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests;
