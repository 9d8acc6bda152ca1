//! Thin wrappers that let the fuzz targets (`fuzz/`, see docs/fuzzing.md) reach the data
//! path's receive-side glue: ESP decapsulation and the inner UDP header, the L2TP datagram
//! demultiplexer, the anti-spoofing check and the `IP_PKTINFO` control-message parser.
//! Not part of the daemon's interface.
//!
//! [`Glue`] owns a real [`DataPath`] bound to 127.0.0.1 (a raw GRE socket, the L2TP port, the
//! IKE/NAT-T ports and a raw ESP socket: the process needs `CAP_NET_RAW`), one L2TP session
//! link with a fresh PPP server engine, and one ESP SA pair whose peer is 127.0.0.2; whatever
//! the link answers goes to loopback only.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use sluice_esp::OutboundSa;
use sluice_esp::udp_encap::{Udp4500Payload, classify};
use sluice_ike::cipher::AesKeyLen;
use sluice_ike::sa::{EncapMode, EspAuth, EspCipher, EspTransform, Lifetime};
use sluice_l2tp::{DataSequencer, Role};
use sluice_ppp::{ClientConfig, Event, Ppp, ServerConfig};
use tokio::sync::mpsc;

use crate::datapath::ipsec::{self, IkeDatagram, IpsecIo};
use crate::datapath::l2tp::{self, ControlQueues, ControlRate, L2tpIo, RateLimiter};
use crate::datapath::link::{CtlCmd, Framing, L2tpFraming, Link, LinkState};
use crate::datapath::{self, DataPath, Hooks};
use crate::io::udpsock::UdpPort;
use crate::metrics::Metrics;

/// Our Session ID of the fuzzed link, and its Tunnel ID.
pub const SESSION: u16 = 0x4242;
pub const TUNNEL: u16 = 0x1717;
/// The inbound ESP SPI the harness encrypts for.
pub const SPI: u32 = 0x0000_1001;
/// The peer's address (loopback: whatever the link sends stays on this machine).
pub const PEER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The address the link gets once IPCP is up.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

struct FuzzHooks {
    dp: DataPath,
    /// IP the link delivered (there is no TUN device).
    delivered: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl Hooks for FuzzHooks {
    fn dp(&self) -> &DataPath {
        &self.dp
    }

    fn on_event(&self, _link: &Arc<Link>, st: &mut LinkState, ev: Event, now: Instant) {
        if let Event::AuthRequest { .. } = ev {
            st.ppp.provide_secret(now, Some(b"pw"));
            st.ppp.set_peer_address(CLIENT_ADDR);
            st.address = Some(CLIENT_ADDR);
        }
    }

    fn route(&self, _ip: &[u8]) -> Option<Arc<Link>> {
        None
    }

    fn deliver(&self, _link: &Link, ip: &[u8]) {
        let mut d = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
        if d.len() < 1024 {
            d.push(ip.to_vec());
        }
    }
}

fn transform() -> EspTransform {
    EspTransform {
        cipher: EspCipher::AesCbc(AesKeyLen::Aes128),
        auth: Some(EspAuth::HmacSha1),
        mode: EncapMode::UdpTransport,
        mode_value: 3,
        group: None,
        lifetime: Lifetime {
            seconds: Some(3600),
            kilobytes: None,
        },
    }
}

/// The data path and one session, for the glue targets.
pub struct Glue {
    h: Arc<FuzzHooks>,
    limiter: RateLimiter,
    queues: ControlQueues,
    ike_rx: mpsc::Receiver<IkeDatagram>,
    ctl_rx: mpsc::UnboundedReceiver<CtlCmd>,
    ctl_tx: mpsc::UnboundedSender<CtlCmd>,
    tx: Option<OutboundSa>,
    keymat: Vec<u8>,
    natt_port: u16,
    /// The client end of an established link (see [`Glue::reset`]).
    client: Option<Ppp>,
}

impl Glue {
    /// Opens the sockets (on 127.0.0.1) and installs the link and the SAs.
    pub fn new() -> io::Result<Glue> {
        let lo = Some(Ipv4Addr::LOCALHOST);
        let dp = DataPath::new(lo, None, Arc::new(Metrics::new()), 1)?;
        let (l2tp, queues) = L2tpIo::new(
            UdpPort::open(lo, 0, Duration::from_millis(1))?,
            ControlRate::default(),
        );
        let (ipsec, ike_rx) = IpsecIo::open(lo, 0, 0, 1701, ipsec::Role::Gateway, 1)?;
        let natt_port = ipsec.natt.local_addr().map_or(0, |a| a.port());
        let _ = dp.l2tp.set(l2tp);
        let _ = dp.ipsec.set(ipsec);
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let suite = ipsec::suite_of(&transform()).map_err(io::Error::other)?;
        let keymat = (0..suite.keymat_len()).map(|i| i as u8).collect();
        let mut g = Glue {
            h: Arc::new(FuzzHooks {
                dp,
                delivered: std::sync::Mutex::new(Vec::new()),
            }),
            limiter: RateLimiter::new(ControlRate::default()),
            queues,
            ike_rx,
            ctl_rx,
            ctl_tx,
            tx: None,
            keymat,
            natt_port,
            client: None,
        };
        g.reset(false, false, false);
        Ok(g)
    }

    fn dp(&self) -> &DataPath {
        &self.h.dp
    }

    /// A fresh link (`sequencing`: L2TP data must carry Ns/Nr), fresh SAs, plain L2TP
    /// allowed or not, and the queues emptied. With `established` the link's PPP engine has
    /// already negotiated (MS-CHAPv2, MPPE-128, address [`CLIENT_ADDR`]) with an in-memory
    /// client, which [`Glue::client_frame`] then uses to encrypt IP for it; else it is new.
    pub fn reset(&mut self, sequencing: bool, plain_allowed: bool, established: bool) {
        let now = Instant::now();
        let dp = &self.h.dp;
        if let Some(old) = dp.links.remove(SESSION) {
            old.lock().session = crate::gateway::policy::SessionPhase::Closed;
        }
        let mut ppp = Ppp::server(ServerConfig::default(), now, [9; 32]);
        self.client = None;
        if established {
            let mut client = Ppp::client(
                ClientConfig {
                    username: "fuzz".into(),
                    password: b"pw".to_vec(),
                    ..ClientConfig::default()
                },
                now,
                [10; 32],
            );
            for _ in 0..64 {
                while let Some(mut f) = client.poll_transmit() {
                    let _ = ppp.handle_input(now, &mut f);
                }
                while let Some(mut f) = ppp.poll_transmit() {
                    let _ = client.handle_input(now, &mut f);
                }
                while let Some(ev) = ppp.poll_event() {
                    if let Event::AuthRequest { .. } = ev {
                        ppp.provide_secret(now, Some(b"pw"));
                        ppp.set_peer_address(CLIENT_ADDR);
                    }
                }
                while client.poll_event().is_some() {}
                if ppp.is_up() && client.is_up() {
                    self.client = Some(client);
                    break;
                }
            }
        }
        let framing = Framing::L2tp(L2tpFraming {
            local_tunnel: TUNNEL,
            peer_tunnel: 7,
            peer_session: 8,
            remote: SocketAddrV4::new(PEER, 1701),
            local: Ipv4Addr::LOCALHOST,
            seq: DataSequencer::new(Role::Lns, sequencing),
        });
        let link = Link::new(SESSION, 8, PEER, now, self.ctl_tx.clone(), ppp, framing);
        if self.client.is_some() {
            link.lock().address = Some(CLIENT_ADDR);
        }
        dp.links.insert(Arc::new(link));
        dp.l2tp_plain
            .store(plain_allowed, std::sync::atomic::Ordering::Relaxed);
        if let Some(io) = dp.ipsec.get() {
            let _ = io.remove_ike(1);
            let remote = SocketAddrV4::new(PEER, 4500);
            let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.natt_port);
            let _ = io.install(
                1,
                &transform(),
                (SPI, self.keymat.as_slice()),
                (0x2002, self.keymat.as_slice()),
                local,
                remote,
                true,
                None,
                [3; 32],
            );
        }
        self.tx = ipsec::suite_of(&transform())
            .ok()
            .and_then(|s| OutboundSa::new(SPI, s, &self.keymat, [5; 32]).ok());
        self.drain();
        self.take_delivered();
    }

    /// Empties the control, IKE and link-command queues; returns how many were waiting.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while self.queues.control.try_recv().is_ok() {
            n += 1;
        }
        while self.queues.gone.try_recv().is_ok() {
            n += 1;
        }
        while self.ike_rx.try_recv().is_ok() {
            n += 1;
        }
        while self.ctl_rx.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    /// An L2TP datagram on the L2TP port (rate limited, refused when plain L2TP is not
    /// allowed), from the session's peer or from elsewhere.
    pub fn l2tp_plain(&mut self, buf: &mut [u8], from_peer: bool, now: Instant) {
        let remote = if from_peer {
            SocketAddrV4::new(PEER, 1701)
        } else {
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 3), 1701)
        };
        l2tp::handle_datagram(
            &*self.h,
            Some(&mut self.limiter),
            buf,
            remote,
            Ipv4Addr::LOCALHOST,
            1701,
            now,
        );
    }

    /// `payload` as the plaintext of an authentic ESP packet (`next_header`: 17 for the UDP
    /// header and L2TP the gateway expects) through the NAT-T receive path.
    pub fn esp_inner(&mut self, next_header: u8, payload: &[u8], now: Instant) {
        let Some(tx) = self.tx.as_mut() else { return };
        let mut pkt = Vec::new();
        if tx.encapsulate(next_header, payload, &mut pkt).is_err() {
            return;
        }
        self.natt_datagram(&mut pkt, now);
    }

    /// A datagram on the NAT-T port from the peer: keepalive, IKE (to the queue) or ESP.
    pub fn natt_datagram(&mut self, buf: &mut [u8], now: Instant) {
        let h = &*self.h;
        let Some(io) = h.dp.ipsec.get() else { return };
        let remote = SocketAddrV4::new(PEER, 4500);
        match classify(buf) {
            Udp4500Payload::Keepalive | Udp4500Payload::Malformed => {}
            Udp4500Payload::Ike(_) => {}
            Udp4500Payload::Esp(_) => {
                ipsec::receive_esp(h, io, buf, remote, Ipv4Addr::LOCALHOST, now)
            }
        }
    }

    /// A packet as the raw ESP socket delivers it (IPv4 header first).
    pub fn esp_raw(&mut self, pkt: &mut [u8], now: Instant) {
        let h = &*self.h;
        let Some(io) = h.dp.ipsec.get() else { return };
        let Some((src, dst, range)) = ipsec::ipv4_addresses(pkt) else {
            return;
        };
        assert!(range.end <= pkt.len() && range.start >= 20);
        if let Some(esp) = pkt.get_mut(range) {
            ipsec::receive_esp(h, io, esp, SocketAddrV4::new(src, 0), dst, now);
        }
    }

    /// A PPP frame carrying `ip` from the established link's client (MPPE-encrypted), or
    /// `None` without one.
    pub fn client_frame(&mut self, ip: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.client.as_mut()?.encapsulate_ip(ip, &mut out).ok()?;
        Some(out)
    }

    /// Runs the link's timers.
    pub fn timeout(&mut self, now: Instant) {
        if let Some(link) = self.dp().links.get(SESSION) {
            let mut st = link.lock();
            st.ppp.handle_timeout(now);
            datapath::drive(&*self.h, &link, &mut st, now);
        }
    }

    /// The link's PPP engine is up (IPCP opened).
    pub fn link_up(&self) -> bool {
        self.dp()
            .links
            .get(SESSION)
            .is_some_and(|l| l.lock().ppp.is_up())
    }

    /// The IP packets the link delivered since the last call.
    pub fn take_delivered(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.h.delivered.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// [`datapath::source_allowed`] for a link with tunnel address `address` and routed
/// networks `routes`.
pub fn source_allowed(address: Option<Ipv4Addr>, routes: &[Ipv4Net], ip: &[u8]) -> bool {
    thread_local! {
        static LINK: Link = {
            let now = Instant::now();
            let (tx, _rx) = mpsc::unbounded_channel();
            Link::new(
                1,
                1,
                PEER,
                now,
                tx,
                Ppp::server(ServerConfig::default(), now, [0; 32]),
                Framing::L2tp(L2tpFraming {
                    local_tunnel: 1,
                    peer_tunnel: 1,
                    peer_session: 1,
                    remote: SocketAddrV4::new(PEER, 1701),
                    local: Ipv4Addr::LOCALHOST,
                    seq: DataSequencer::new(Role::Lns, false),
                }),
            )
        };
    }
    LINK.with(|link| {
        let mut st = link.lock();
        st.address = address;
        st.routes = routes.to_vec();
        datapath::source_allowed(&st, ip)
    })
}

/// The destination address `IP_PKTINFO` reports in a received message's control buffer
/// (`udpsock`'s parser), for a control buffer of `control.len()` octets.
pub fn pktinfo_dst(control: &[u64], len: usize) -> Ipv4Addr {
    crate::io::batch::pktinfo_dst(&received(control, len))
}

/// The receive time an `SCM_TIMESTAMPNS` message reports in the same kind of control buffer
/// (`io::batch`'s parser; ns since the Unix epoch).
pub fn timestamp(control: &[u64], len: usize) -> Option<u64> {
    crate::io::batch::timestamp_of(&received(control, len))
}

/// A received message's header as `recvmmsg` leaves it: `len` octets of `control` filled.
fn received(control: &[u64], len: usize) -> libc::msghdr {
    // SAFETY: msghdr is plain old data; zeroed is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::MaybeUninit::zeroed().assume_init() };
    msg.msg_control = control.as_ptr() as *mut libc::c_void;
    msg.msg_controllen = len.min(std::mem::size_of_val(control));
    msg
}
