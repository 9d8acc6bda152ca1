//! IPsec for the in-repo L2TP client: one IKEv1 initiator (Main Mode PSK + Quick Mode for
//! the L2TP selectors, [`sluice_ike::initiator`]) and the same ESP fast path as the gateway.
//! L2TP starts once the ESP SAs are installed; from then on every L2TP datagram to the
//! gateway travels inside ESP (UDP 4500 when NAT-D found a NAT, raw ESP otherwise).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_ike::cert::{Credentials, TrustStore};
use sluice_ike::cipher::{AesKeyLen, Cipher};
use sluice_ike::dh::Group;
use sluice_ike::initiator::{Initiator, InitiatorConfig, InitiatorEvent, esp_proposal};
use sluice_ike::prf::HashAlg;
use sluice_ike::sa::{AuthMethod, EspAuth, EspCipher, IkeTransform, Lifetime};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::ClientError;
use sluice_dataplane::client::Client;
use sluice_dataplane::datapath::Hooks;
use sluice_dataplane::datapath::ipsec::{self, IkeDatagram, IpsecIo};
use sluice_dataplane::host::{seed, unix_now};
use sluice_ike::policy::{EspProposal, IkeProposal, ProposalError};

/// The IKE SA id the client's single IKE SA has in the ESP tables.
const CLIENT_IKE: u64 = 1;

/// What the client proposes.
#[derive(Debug, Clone)]
pub struct IpsecParams {
    pub psk: Vec<u8>,
    /// Phase 1: `cipher-hash-group` (one transform).
    pub ike: String,
    /// ESP: `cipher[-integrity][-group]`.
    pub esp: String,
    pub bind: Option<Ipv4Addr>,
    pub ike_port: u16,
    pub natt_port: u16,
    /// Aggressive Mode instead of Main Mode (for testing a gateway's refusal or opt-in).
    pub aggressive: bool,
    /// RSA signatures instead of the pre-shared key: our chain and key, the gateway's CAs.
    pub certificate: Option<(Arc<Credentials>, Arc<TrustStore>)>,
}

impl IpsecParams {
    /// Loads `--ipsec-cert` (chain, leaf first), `--ipsec-key` and `--ipsec-ca` (PEM files).
    pub fn load_certificate(
        cert: &str,
        key: &str,
        ca: &str,
    ) -> Result<(Arc<Credentials>, Arc<TrustStore>), ClientError> {
        let read = |flag, path: &str| {
            std::fs::read(path).map_err(|source| ClientError::ReadFile {
                flag,
                path: path.to_owned(),
                source,
            })
        };
        let cert_err = |flag| move |source| ClientError::Certificate { flag, source };
        let creds = Credentials::from_pem(&read("--ipsec-cert", cert)?, &read("--ipsec-key", key)?)
            .map_err(cert_err("--ipsec-cert/--ipsec-key"))?;
        let trust =
            TrustStore::from_pem(&read("--ipsec-ca", ca)?).map_err(cert_err("--ipsec-ca"))?;
        Ok((Arc::new(creds), Arc::new(trust)))
    }
}

fn proposal_err(flag: &'static str, s: &str) -> impl Fn(ProposalError) -> ClientError {
    move |source| ClientError::Proposal {
        flag,
        proposal: s.to_owned(),
        source,
    }
}

/// The first transform of `--ike-proposal` (the grammar guarantees one of each class).
fn parse_ike(s: &str) -> Result<IkeTransform, ClientError> {
    let p = IkeProposal::parse(s, true).map_err(proposal_err("--ike-proposal", s))?;
    let (Some(&cipher), Some(&hash), Some(&group)) =
        (p.ciphers.first(), p.hashes.first(), p.groups.first())
    else {
        return Err(proposal_err("--ike-proposal", s)(ProposalError::Empty));
    };
    Ok(IkeTransform {
        cipher,
        hash,
        auth: AuthMethod::PreSharedKey,
        group,
        lifetime: Lifetime {
            seconds: Some(28800),
            kilobytes: None,
        },
    })
}

fn parse_esp(s: &str) -> Result<sluice_ike::sa::EspTransform, ClientError> {
    let p = EspProposal::parse(s, true).map_err(proposal_err("--esp-proposal", s))?;
    let cipher = *p
        .ciphers
        .first()
        .ok_or_else(|| proposal_err("--esp-proposal", s)(ProposalError::Empty))?;
    let auth = if cipher.is_aead() {
        None
    } else {
        p.auths.first().copied()
    };
    Ok(esp_proposal(cipher, auth, p.groups.first().copied()))
}

/// The default client proposal (what Windows 10 sends first for L2TP/IPsec).
pub fn default_ike() -> IkeTransform {
    IkeTransform {
        cipher: Cipher::AesCbc(AesKeyLen::Aes256),
        hash: HashAlg::Sha1,
        auth: AuthMethod::PreSharedKey,
        group: Group::Modp2048,
        lifetime: Lifetime {
            seconds: Some(28800),
            kilobytes: None,
        },
    }
}

/// The address the kernel would send from toward `server`.
fn source_toward(server: Ipv4Addr, bind: Option<Ipv4Addr>) -> Result<Ipv4Addr, ClientError> {
    if let Some(b) = bind.filter(|b| !b.is_unspecified()) {
        return Ok(b);
    }
    let s = UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect((server, 500)).map(|()| s));
    match s.and_then(|s| s.local_addr()) {
        Ok(SocketAddr::V4(a)) => Ok(*a.ip()),
        Ok(_) => Err(ClientError::NoRoute(server)),
        Err(source) => Err(ClientError::Route { server, source }),
    }
}

/// The task that keeps the client's IKE SA alive (answers DPD).
pub struct IkeTask {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl IkeTask {
    /// Deletes the IKE SA and its ESP SAs (RFC 2408 §3.15), once L2TP has closed over
    /// them: L2TP's StopCCN travels inside ESP, so the SAs go last, as with xl2tpd and
    /// strongSwan.
    pub async fn close(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.handle).await;
    }
}

/// Opens the IPsec ports, negotiates the SAs with `server` and installs them; returns once
/// L2TP to `server` (its L2TP address) travels inside ESP, with the task that keeps the IKE
/// SA alive. Dropping the task's handle deletes the SA too.
pub async fn establish(
    client: Arc<Client>,
    params: IpsecParams,
    server: SocketAddrV4,
    local_l2tp_port: u16,
    timeout: Duration,
) -> Result<IkeTask, ClientError> {
    let (stop_tx, mut stop) = watch::channel(false);
    let (io, mut rx) = IpsecIo::open(
        params.bind,
        params.ike_port,
        params.natt_port,
        local_l2tp_port,
        ipsec::Role::Client,
        1,
    )
    .map_err(|source| ClientError::IpsecSockets {
        ike: params.ike_port,
        natt: params.natt_port,
        source,
    })?;
    if client.dp().ipsec.set(io).is_err() {
        return Err(ClientError::AlreadyOpen("IPsec ports"));
    }
    for (name, f) in [
        ("ike-rx", ipsec::ike_rx_loop::<Client> as fn(Arc<Client>)),
        ("natt-rx", |c| ipsec::natt_rx_loop::<Client>(c, 0)),
        ("esp-rx", |c| ipsec::esp_raw_rx_loop::<Client>(c, 0)),
    ] {
        let c = client.clone();
        sluice_dataplane::host::spawn(name, move || f(c))?;
    }
    let local = source_toward(*server.ip(), params.bind)?;
    let mut ike = if params.ike.is_empty() {
        default_ike()
    } else {
        parse_ike(&params.ike)?
    };
    if params.certificate.is_some() {
        ike.auth = AuthMethod::RsaSignature;
    }
    let cfg = InitiatorConfig {
        psk: params.psk.clone().into(),
        ike: vec![ike],
        esp: vec![if params.esp.is_empty() {
            esp_proposal(
                EspCipher::AesCbc(AesKeyLen::Aes128),
                Some(EspAuth::HmacSha1),
                None,
            )
        } else {
            parse_esp(&params.esp)?
        }],
        local: SocketAddr::V4(SocketAddrV4::new(local, params.ike_port)),
        local_natt: SocketAddr::V4(SocketAddrV4::new(local, params.natt_port)),
        remote: SocketAddr::V4(SocketAddrV4::new(*server.ip(), params.ike_port)),
        remote_natt_port: params.natt_port,
        nat_t: true,
        dpd: true,
        l2tp_port: server.port(),
        retransmit: Duration::from_secs(2),
        aggressive: params.aggressive,
        certificate: params.certificate.as_ref().map(|(c, _)| c.clone()),
        ca: params.certificate.as_ref().map(|(_, t)| t.clone()),
        unix_time: unix_now(),
    };
    let mut ini = Initiator::new(cfg, seed());
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), ClientError>>();
    let c = client.clone();
    let handle = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let Some(io) = c.dp().ipsec.get() else { return };
        ini.start(Instant::now());
        loop {
            flush(io, &mut ini);
            while let Some(ev) = ini.poll_event() {
                match ev {
                    InitiatorEvent::IkeUp { nat } => {
                        info!(client_behind_nat = nat.local_behind_nat, "IKE SA up");
                    }
                    InitiatorEvent::ChildUp {
                        transform,
                        inbound,
                        outbound,
                        udp_encap,
                    } => {
                        let remote = if udp_encap {
                            SocketAddrV4::new(*server.ip(), params.natt_port)
                        } else {
                            SocketAddrV4::new(*server.ip(), 0)
                        };
                        let local = SocketAddrV4::new(local, params.natt_port);
                        let r = io.install(
                            CLIENT_IKE,
                            &transform,
                            (inbound.spi, &inbound.keymat),
                            (outbound.spi, &outbound.keymat),
                            local,
                            remote,
                            udp_encap,
                            None,
                            seed(),
                        );
                        if r.is_ok() {
                            io.bind_peer(server, CLIENT_IKE);
                            info!(
                                udp_encap,
                                spi_in = format_args!("{:#010x}", inbound.spi),
                                "ESP SAs installed"
                            );
                        }
                        if let Some(t) = ready.take() {
                            let _ = t.send(r.map_err(ClientError::EspInstall));
                        }
                    }
                    InitiatorEvent::Notified(code) => {
                        let name = sluice_ike::notify::code::name(code);
                        debug!(code, name, "IKE notify from the gateway");
                        // Error types are below 8192 (RFC 2408 §3.14.1); status notifies
                        // such as RESPONDER-LIFETIME are not refusals.
                        if code < 8192
                            && let Some(t) = ready.take()
                        {
                            let _ = t.send(Err(ClientError::IkeRefused(name)));
                        }
                    }
                    InitiatorEvent::Deleted => {
                        info!("the gateway deleted the IKE SA");
                        io.remove_ike(CLIENT_IKE);
                    }
                }
            }
            let deadline = ini.poll_timeout();
            tokio::select! {
                d = rx.recv() => match d {
                    Some(IkeDatagram { bytes, .. }) => ini.handle_input(Instant::now(), &bytes),
                    None => break,
                },
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        ini.delete(Instant::now());
                        flush(io, &mut ini);
                        break;
                    }
                }
                _ = sleep_until(deadline) => ini.handle_timeout(Instant::now()),
            }
        }
    });
    let task = IkeTask {
        stop: stop_tx,
        handle,
    };
    match tokio::time::timeout(timeout, ready_rx).await {
        Ok(Ok(r)) => r.map(|()| task),
        Ok(Err(_)) => Err(ClientError::IkeTaskEnded),
        Err(_) => Err(ClientError::IkeTimeout {
            server: *server.ip(),
            timeout,
        }),
    }
}

fn flush(io: &IpsecIo, ini: &mut Initiator) {
    while let Some(t) = ini.poll_transmit() {
        io.send_ike(t.local, t.remote, &t.payload);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposal_flags_parse() {
        assert_eq!(
            parse_ike("3des-sha1-modp1024").map(|t| t.group).ok(),
            Some(Group::Modp1024)
        );
        let e = parse_ike("aes128-sha1")
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err(
                "--ike-proposal \"aes128-sha1\": has no DH group (one of modp1024, modp1536, \
                 modp2048, modp3072, modp4096, ecp256, ecp384)"
                    .into()
            )
        );
        assert_eq!(parse_esp("aes256gcm16").map(|t| t.auth).ok(), Some(None));
        assert_eq!(
            parse_esp("aes128-sha256").map(|t| t.auth).ok(),
            Some(Some(EspAuth::HmacSha256))
        );
    }
}
