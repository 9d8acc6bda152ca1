//! The IPsec side of the per-node fast path (L2TP/IPsec, RFC 3193 usage).
//!
//! ESP arrives UDP-encapsulated on the NAT-T port (RFC 3948) or as raw IP protocol 50
//! (RFC 4303). The receive thread demultiplexes it by SPI, decapsulates it in place and hands
//! the inner UDP payload (an L2TP message for our L2TP port) to [`crate::datapath::l2tp`] on the
//! same thread — no task hop per packet, as for GRE and plain L2TP. IKE messages (UDP 500,
//! and UDP 4500 behind the non-ESP marker) go to the IKE thread through bounded queues,
//! after the flood guard of [`guard`] on the gateway (per-SA, per-source and global token
//! buckets; docs/security.md).
//!
//! Every L2TP peer reached over IPsec is known by a *peer key*, the address the L2TP engine
//! sees: for UDP-encapsulated SAs the client's public address and NAT-T port (unique per
//! client even when many share one NAT), for raw ESP the client's address and inner UDP port.
//! A key is bound to the IKE SA whose ESP SA it first arrived under. The same key under
//! another IKE SA is dropped unless that SA reaches the same client (its Phase 1 rekey takes
//! the key over), and L2TP that did not arrive under ESP is dropped unless the configuration
//! allows plain L2TP. When no SA reaches a key any more its L2TP tunnels are closed.
//!
//! A client whose NAT mapping changes mid-session (RFC 3948 §2.3) is followed on the first
//! *authenticated* packet from its new address: an IKE message (the engine's
//! `Event::PeerMoved`) or ESP that passed its ICV and is the newest the SA has seen. Its
//! outbound ESP, its IKE SA (DPD, rekeys) and its L2TP peer key move there ([`peers`]). A NAT
//! keep-alive, a packet with a bad ICV, a replay or an older packet moves nothing.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use sluice_esp::{
    AesKeyLen, Cipher, DecapError, EncapError, InboundSa, Integrity, KeyError, OutboundSa, Suite,
    SuiteError,
};
use sluice_ike::sa::{EspAuth, EspCipher, EspTransform};
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::io::rawsock::RawSocket;
use crate::io::send_batch::{self, Dest, SendError};
use crate::io::shard::ShardKey;
use crate::io::udpsock::UdpPort;

pub mod guard;
pub mod held;
mod outbound;
mod peers;
mod rx;

use outbound::Outbound;
pub use peers::MoveRefused;
use peers::PeerTable;
pub use rx::{esp_raw_rx_loop, ike_rx_loop, natt_rx_loop};
pub(crate) use rx::{ipv4_addresses, receive_esp};

/// IKE datagrams waiting for the IKE task, at most.
pub const IKE_QUEUE: usize = 4096;
/// IP protocol number of ESP.
pub const IPPROTO_ESP: i32 = 50;
/// Anti-replay window of inbound SAs (packets).
pub const REPLAY_WINDOW: usize = 1024;
/// Most IPsec peer keys tracked.
const MAX_PEERS: usize = 65536;

/// One IKE message for the IKE task: the UDP payload as received (with the non-ESP marker on
/// the NAT-T port).
#[derive(Debug)]
pub struct IkeDatagram {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub bytes: Vec<u8>,
}

/// The receiving half of an ESP SA.
pub struct Inbound {
    /// The IKE SA it belongs to (changes when a Phase 1 rekey adopts it).
    pub ike: AtomicU64,
    pub udp_encap: bool,
    sa: Mutex<InboundSa>,
    /// Milliseconds (data-path clock) of the last authentic packet; 0 = none yet.
    pub last_rx_ms: AtomicU64,
    /// Where its IKE SA's outbound ESP goes ([`pack`]ed): ESP from elsewhere is a move.
    peer: AtomicU64,
}

/// AES-128-GCM, the suite unit tests build their SAs with.
#[cfg(test)]
fn test_suite() -> Suite {
    Suite::new(
        Cipher::AesGcm16 {
            key_len: AesKeyLen::Aes128,
        },
        None,
    )
    .unwrap_or_else(|e| panic!("suite: {e}"))
}

#[cfg(test)]
impl Inbound {
    /// An inbound half with no traffic yet, for unit tests.
    fn for_test() -> Inbound {
        let suite = test_suite();
        Inbound {
            ike: AtomicU64::new(1),
            udp_encap: true,
            sa: Mutex::new(
                InboundSa::new(0x1000, suite, &[7; 20], REPLAY_WINDOW)
                    .unwrap_or_else(|e| panic!("inbound SA: {e}")),
            ),
            last_rx_ms: AtomicU64::new(0),
            peer: AtomicU64::new(0),
        }
    }
}

/// A client address in one word, for [`Inbound::peer`].
fn pack(a: SocketAddrV4) -> u64 {
    (u64::from(a.ip().to_bits()) << 16) | u64::from(a.port())
}

/// Most moves learned from ESP waiting for the IKE thread.
const MAX_ESP_MOVES: usize = 4096;

/// What [`IpsecIo::move_peer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerMove {
    /// The IKE SA has no outbound ESP SA, or it already sends there.
    Unchanged,
    /// The outbound ESP SA sends to the new address; `l2tp_rename`: the L2TP side has a peer
    /// to rename ([`IpsecIo::renames`]).
    Moved { l2tp_rename: bool },
}

/// A client that moved, learned from its ESP, for the IKE thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspMove {
    pub ike: u64,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
}

/// The IKE and NAT-T ports, the raw ESP socket and the SA tables.
pub struct IpsecIo {
    pub ike: UdpPort,
    /// The NAT-T port: every send, and the receive of shard 0.
    pub natt: UdpPort,
    /// The NAT-T port's receive shards 1.. (`UdpPort::open_shards`: by peer, one thread each).
    pub natt_shards: Vec<UdpPort>,
    /// Raw ESP: every send, and the receive of shard 0.
    pub raw: RawSocket,
    /// The receive sockets of ESP shards 1.. (`io::shard`: by SPI, one thread each).
    pub raw_shards: Vec<RawSocket>,
    pub l2tp_port: u16,
    role: Role,
    ike_tx: mpsc::Sender<IkeDatagram>,
    inbound: RwLock<HashMap<u32, Arc<Inbound>>>,
    outbound: RwLock<HashMap<u64, Arc<Mutex<Outbound>>>>,
    peers: RwLock<PeerTable>,
    /// Moves learned from ESP that the IKE thread has not applied yet.
    esp_moves: Mutex<Vec<EspMove>>,
    natt_port: u16,
    /// The gateway's admission of IKE datagrams (set by the IKE thread; the client has none).
    pub guard: OnceLock<guard::IkeGuard>,
    /// ESP that overtook Quick Mode message 3, until its SA is installed.
    held: Mutex<held::Held>,
}

/// Which end of L2TP/IPsec this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Keys UDP-encapsulated peers by their outer port (clients behind one NAT), and keeps a
    /// replaced outbound SA sealing until the client has the new pair ([`outbound`]).
    Gateway,
    /// Keys peers by their inner port (the gateway's L2TP port), and seals with a new
    /// outbound SA at once.
    Client,
}

/// Why an ESP SA pair could not be installed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InstallError {
    /// The negotiated transform has no ESP suite here.
    #[error("ESP suite: {0}")]
    Suite(#[from] SuiteError),
    /// The key material does not fit the suite, or the SPI is reserved.
    #[error("ESP keys: {0}")]
    Keys(#[from] KeyError),
    /// Another SA of this node already receives on the SPI.
    #[error("inbound SPI {0:#010x} already in use on this node")]
    SpiInUse(u32),
}

/// The ESP suite for a negotiated transform.
pub fn suite_of(t: &EspTransform) -> Result<Suite, SuiteError> {
    let key = |k: sluice_ike::cipher::AesKeyLen| match k {
        sluice_ike::cipher::AesKeyLen::Aes128 => AesKeyLen::Aes128,
        sluice_ike::cipher::AesKeyLen::Aes192 => AesKeyLen::Aes192,
        sluice_ike::cipher::AesKeyLen::Aes256 => AesKeyLen::Aes256,
    };
    let cipher = match t.cipher {
        EspCipher::AesCbc(k) => Cipher::AesCbc { key_len: key(k) },
        EspCipher::TripleDesCbc => Cipher::TripleDesCbc,
        EspCipher::AesGcm16(k) => Cipher::AesGcm16 { key_len: key(k) },
    };
    let integrity = t.auth.map(|a| match a {
        EspAuth::HmacMd5 => Integrity::HmacMd5_96,
        EspAuth::HmacSha1 => Integrity::HmacSha1_96,
        EspAuth::HmacSha256 => Integrity::HmacSha256_128,
        EspAuth::HmacSha384 => Integrity::HmacSha384_192,
        EspAuth::HmacSha512 => Integrity::HmacSha512_256,
    });
    Suite::new(cipher, integrity)
}

/// The metrics drop reason of a refused ESP packet.
fn decap_reason(e: &DecapError) -> &'static str {
    match e {
        DecapError::Replayed { .. } | DecapError::TooOld { .. } => "esp_replay",
        DecapError::IntegrityFailed => "esp_integrity",
        DecapError::DummyPacket => "esp_dummy",
        _ => "esp_malformed",
    }
}

impl IpsecIo {
    /// Opens the IKE port, the NAT-T port and the raw ESP sockets (`rx_shards` receive
    /// shards by SPI, `io::shard`).
    pub fn open(
        bind: Option<Ipv4Addr>,
        ike_port: u16,
        natt_port: u16,
        l2tp_port: u16,
        role: Role,
        rx_shards: u32,
    ) -> std::io::Result<(IpsecIo, mpsc::Receiver<IkeDatagram>)> {
        let timeout = Duration::from_millis(200);
        let (tx, rx) = mpsc::channel(IKE_QUEUE);
        let (raw, raw_shards) = super::sharded(
            || RawSocket::open(IPPROTO_ESP, bind, timeout),
            ShardKey::EspSpi,
            rx_shards,
        )?;
        let (natt, natt_shards) = UdpPort::open_shards(bind, natt_port, timeout, rx_shards)?;
        Ok((
            IpsecIo {
                ike: UdpPort::open(bind, ike_port, timeout)?,
                natt,
                natt_shards,
                raw,
                raw_shards,
                l2tp_port,
                role,
                ike_tx: tx,
                inbound: RwLock::new(HashMap::new()),
                outbound: RwLock::new(HashMap::new()),
                peers: RwLock::new(PeerTable::default()),
                esp_moves: Mutex::new(Vec::new()),
                natt_port,
                guard: OnceLock::new(),
                held: Mutex::new(held::Held::default()),
            },
            rx,
        ))
    }

    /// Whether UDP-encapsulated peers are keyed by their outer port (the gateway).
    fn key_by_outer_port(&self) -> bool {
        self.role == Role::Gateway
    }

    /// Installs both ESP SAs of a Quick Mode exchange; the newest outbound SA of an IKE SA
    /// carries its traffic (on the gateway once the client has the pair, [`outbound`]).
    #[allow(clippy::too_many_arguments)]
    pub fn install(
        &self,
        ike: u64,
        transform: &EspTransform,
        inbound: (u32, &[u8]),
        outbound: (u32, &[u8]),
        local: SocketAddrV4,
        remote: SocketAddrV4,
        udp_encap: bool,
        lifetime_kb: Option<u64>,
        iv_seed: [u8; 32],
    ) -> Result<(), InstallError> {
        let suite = suite_of(transform)?;
        let rx = InboundSa::new(inbound.0, suite, inbound.1, REPLAY_WINDOW)?;
        let tx = OutboundSa::new(outbound.0, suite, outbound.1, iv_seed)?;
        let mut table = self.inbound.write().unwrap_or_else(|p| p.into_inner());
        if table.contains_key(&inbound.0) {
            return Err(InstallError::SpiInUse(inbound.0));
        }
        let new_inbound = Arc::new(Inbound {
            ike: AtomicU64::new(ike),
            udp_encap,
            sa: Mutex::new(rx),
            last_rx_ms: AtomicU64::new(0),
            peer: AtomicU64::new(pack(remote)),
        });
        table.insert(inbound.0, new_inbound.clone());
        drop(table);
        let mut out = Outbound::new(outbound.0, tx, (local, remote), udp_encap, lifetime_kb);
        let mut table = self.outbound.write().unwrap_or_else(|p| p.into_inner());
        if self.role == Role::Gateway
            && let Some(old) = table.get(&ike)
        {
            out.supersede(old.clone(), new_inbound, Instant::now());
        }
        table.insert(ike, Arc::new(Mutex::new(out)));
        Ok(())
    }

    /// Quick Mode message 2 with inbound SPI `spi` goes out: hold ESP for it (see
    /// [`held`]). Returns the number of held packets dropped because their time was up.
    pub fn expect_child(&self, spi: u32, now: Instant) -> usize {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expect(spi, now)
    }

    /// The ESP held for inbound SPI `spi`, once its SA is installed (or failed to be).
    pub fn release_held(&self, spi: u32) -> Vec<held::HeldPacket> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(spi)
    }

    /// Removes one ESP SA pair (the outbound only if it is still the current one, or the
    /// one it replaced while that still seals).
    pub fn remove_child(&self, ike: u64, inbound_spi: u32, outbound_spi: u32) {
        self.inbound
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&inbound_spi);
        let mut out = self.outbound.write().unwrap_or_else(|p| p.into_inner());
        let current = out.get(&ike).is_some_and(|o| {
            let mut o = o.lock().unwrap_or_else(|p| p.into_inner());
            if o.spi == outbound_spi {
                return true;
            }
            o.forget_superseded(outbound_spi);
            false
        });
        if current {
            out.remove(&ike);
        }
    }

    /// An ESP SA pair now belongs to IKE SA `to` (a Phase 1 rekey): its inbound half, its
    /// outbound half unless `to` already has a newer one, and the peer keys of `from`.
    pub fn adopt_child(&self, from: u64, to: u64, inbound_spi: u32, outbound_spi: u32) {
        if let Some(i) = self
            .inbound
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&inbound_spi)
        {
            i.ike.store(to, Ordering::Relaxed);
        }
        let mut out = self.outbound.write().unwrap_or_else(|p| p.into_inner());
        let current = out
            .get(&from)
            .is_some_and(|o| o.lock().unwrap_or_else(|p| p.into_inner()).spi == outbound_spi);
        if current && let Some(o) = out.remove(&from) {
            out.entry(to).or_insert(o);
        }
        drop(out);
        self.peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .adopt(from, to);
    }

    /// Removes every SA of an IKE SA. Its peer keys move to another IKE SA that reaches the
    /// same client (a Phase 1 rekey); returns the L2TP names of the peers no SA reaches any
    /// more.
    pub fn remove_ike(&self, ike: u64) -> Vec<SocketAddrV4> {
        self.inbound
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, i| i.ike.load(Ordering::Relaxed) != ike);
        self.outbound
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ike);
        let mut peers = self.peers.write().unwrap_or_else(|p| p.into_inner());
        let mut gone = Vec::new();
        for key in peers.keys_of(ike) {
            // Rare (a key and a dying IKE SA): only then look for its successor.
            let others: Vec<u64> = self
                .outbound
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .copied()
                .collect();
            match others.into_iter().find(|o| self.ike_reaches(*o, key)) {
                Some(other) => peers.adopt_key(key, other),
                None => gone.extend(peers.remove(&key)),
            }
        }
        gone.sort_unstable();
        gone.dedup();
        gone
    }

    /// Whether an SA sending to `remote` reaches the L2TP peer `key`: the same outer address
    /// and port when keys are outer ports (clients behind one NAT), else the same address.
    fn reaches(&self, remote: SocketAddrV4, udp_encap: bool, key: SocketAddrV4) -> bool {
        if udp_encap && self.key_by_outer_port() {
            remote == key
        } else {
            remote.ip() == key.ip()
        }
    }

    /// Whether the IKE SA `ike` currently sends to the client behind `key` (`None`: it has
    /// no outbound ESP SA).
    fn ike_sends_to(&self, ike: u64, key: SocketAddrV4) -> Option<bool> {
        let out = self
            .outbound
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ike)
            .cloned()?;
        let o = out.lock().unwrap_or_else(|p| p.into_inner());
        Some(self.reaches(o.remote, o.udp_encap, key))
    }

    /// Whether the IKE SA `ike` currently sends to the client behind `key`.
    fn ike_reaches(&self, ike: u64, key: SocketAddrV4) -> bool {
        self.ike_sends_to(ike, key) == Some(true)
    }

    /// The client of IKE SA `ike` is now at `remote`, reached from `local` (NAT rebinding, or
    /// the float to the NAT-T port), as an authenticated packet showed: its outbound ESP goes
    /// there, and its L2TP peer key follows ([`peers`]).
    ///
    /// # Errors
    /// [`MoveRefused`] when the peer key cannot follow (the ESP SA moved all the same).
    pub fn move_peer(
        &self,
        ike: u64,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> Result<PeerMove, MoveRefused> {
        let Some(out) = self
            .outbound
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ike)
            .cloned()
        else {
            return Ok(PeerMove::Unchanged);
        };
        let (old, udp_encap) = {
            let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
            if o.remote == remote && o.local == local {
                return Ok(PeerMove::Unchanged);
            }
            let old = o.remote;
            o.local = local;
            o.remote = remote;
            (old, o.udp_encap)
        };
        for i in self
            .inbound
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|i| i.ike.load(Ordering::Relaxed) == ike)
        {
            i.peer.store(pack(remote), Ordering::Relaxed);
        }
        // Keys by outer address (the gateway's UDP-encapsulated peers) follow the client;
        // other keys name its inner port, which a NAT does not change.
        if !(udp_encap && self.key_by_outer_port()) || old == remote {
            return Ok(PeerMove::Moved { l2tp_rename: false });
        }
        let l2tp_rename = self
            .peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .follow(ike, old, remote)?;
        Ok(PeerMove::Moved { l2tp_rename })
    }

    /// Peers the L2TP side still knows by an old name: (name, current key).
    pub fn renames(&self) -> Vec<(SocketAddrV4, SocketAddrV4)> {
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .renames()
    }

    /// The L2TP side has renamed peer `from` to `to`: the old address is retired.
    pub fn renamed(&self, from: SocketAddrV4, to: SocketAddrV4) {
        self.peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .renamed(from, to);
    }

    /// Moves learned from ESP since the last call, for the IKE thread: those still current
    /// (a later move learned from IKE must not be undone by an older one from ESP).
    pub fn take_esp_moves(&self) -> Vec<EspMove> {
        let moves = std::mem::take(&mut *self.esp_moves.lock().unwrap_or_else(|p| p.into_inner()));
        let out = self.outbound.read().unwrap_or_else(|p| p.into_inner());
        moves
            .into_iter()
            .filter(|m| {
                out.get(&m.ike).is_some_and(|o| {
                    let o = o.lock().unwrap_or_else(|p| p.into_inner());
                    (o.local, o.remote) == (m.local, m.remote)
                })
            })
            .collect()
    }

    /// Current outbound SAs that reached a soft limit (sequence numbers, 3DES volume, 90 %
    /// of the kilobyte lifetime): (IKE SA, SPI) for IKE to rekey.
    pub fn rekey_due(&self) -> Vec<(u64, u32)> {
        self.outbound
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(ike, o)| {
                let o = o.lock().unwrap_or_else(|p| p.into_inner());
                let volume = o.soft_bytes.is_some_and(|b| o.sa.stats().bytes >= b);
                (o.sa.needs_rekey() || volume).then_some((*ike, o.spi))
            })
            .collect()
    }

    /// Inbound SAs with their last-traffic times (for DPD).
    pub fn activity(&self) -> Vec<(u64, u64)> {
        self.inbound
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|i| {
                (
                    i.ike.load(Ordering::Relaxed),
                    i.last_rx_ms.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Installed inbound SAs.
    pub fn sa_count(&self) -> usize {
        self.inbound.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether `key` is an L2TP peer reached over IPsec.
    pub fn is_peer(&self, key: SocketAddrV4) -> bool {
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
    }

    /// Registers a peer key ahead of traffic (the client knows its gateway).
    pub fn bind_peer(&self, key: SocketAddrV4, ike: u64) {
        self.bind_peer_to(key, ike, key.port());
    }

    fn bind_peer_to(&self, key: SocketAddrV4, ike: u64, inner_port: u16) {
        self.peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .bind(key, ike, inner_port);
    }

    /// Sends an L2TP datagram to `key` inside ESP. `None` when `key` is not an IPsec peer
    /// (the caller sends it in clear if that is allowed).
    pub fn send_l2tp(&self, key: SocketAddrV4, l2tp: &[u8]) -> Option<Result<(), &'static str>> {
        let b = self
            .peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)?;
        let out = self
            .outbound
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&b.ike)
            .cloned();
        let Some(out) = out else {
            return Some(Err("esp_no_outbound_sa"));
        };
        // Inner UDP header (RFC 768); checksum 0 is allowed for IPv4 and avoids the
        // NAT-OA dance of RFC 3948 §3.1.2 for the client. Built in the send slot after room
        // for the ESP header, then sealed around it in place: no buffer of its own.
        let len = u16::try_from(l2tp.len() + 8).ok()?;
        let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
        // Rare (a rekey's first second): the replaced SA seals, sent where the current goes.
        let superseded = o.still_superseded(Instant::now);
        let mut old = superseded
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()));
        let (fd, dest) = if o.udp_encap {
            (
                self.natt.as_raw_fd(),
                Dest {
                    to: o.remote,
                    from: Some(*o.local.ip()),
                },
            )
        } else {
            (self.raw.as_raw_fd(), Dest::from(*o.remote.ip()))
        };
        let (l2tp_port, inner_port) = (self.l2tp_port, b.inner_port);
        let sa = match old.as_deref_mut() {
            Some(old) => &mut old.sa,
            None => &mut o.sa,
        };
        let sent = send_batch::send_built(&fd, dest, "esp_send_error", |pkt| {
            let suite = sa.suite();
            let at = suite.header_len();
            pkt.resize(suite.encapsulated_len(usize::from(len)), 0);
            let actual = pkt.len();
            let body =
                pkt.get_mut(at..at + usize::from(len))
                    .ok_or(EncapError::BufferTooSmall {
                        needed: at + usize::from(len),
                        actual,
                    })?;
            let (udp, data) = body.split_at_mut(8);
            udp[..2].copy_from_slice(&l2tp_port.to_be_bytes());
            udp[2..4].copy_from_slice(&inner_port.to_be_bytes());
            udp[4..6].copy_from_slice(&len.to_be_bytes());
            udp[6..].fill(0);
            data.copy_from_slice(l2tp);
            let n = sa.encapsulate_in_place(17, pkt, usize::from(len))?;
            pkt.truncate(n);
            Ok::<(), EncapError>(())
        });
        Some(match sent {
            Ok(()) => Ok(()),
            Err(SendError::Build(e)) => {
                warn!(error = %e, "ESP encapsulation failed");
                Err("esp_encap_error")
            }
            Err(SendError::Io(_)) => Err("esp_send_error"),
        })
    }

    /// Sends an IKE datagram from the port the engine named (IKE or NAT-T); false on an
    /// IPv6 address or a send error (logged at debug).
    pub fn send_ike(&self, local: SocketAddr, remote: SocketAddr, payload: &[u8]) -> bool {
        let (SocketAddr::V4(local), SocketAddr::V4(remote)) = (local, remote) else {
            return false;
        };
        let sock = if local.port() == self.natt_port {
            &self.natt
        } else {
            &self.ike
        };
        match sock.send_from(payload, Some(*local.ip()), remote, "ike_send_error") {
            Ok(()) => true,
            Err(e) => {
                debug!(%remote, error = %e, "IKE send failed");
                false
            }
        }
    }

    /// Queues an IKE message for the IKE task.
    fn to_ike(&self, d: IkeDatagram) -> bool {
        self.ike_tx.try_send(d).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_ike::sa::{EncapMode, Lifetime};

    #[test]
    fn every_negotiable_transform_has_a_suite() {
        let ciphers = [
            EspCipher::AesCbc(sluice_ike::cipher::AesKeyLen::Aes128),
            EspCipher::AesCbc(sluice_ike::cipher::AesKeyLen::Aes256),
            EspCipher::TripleDesCbc,
        ];
        for c in ciphers {
            for a in [
                EspAuth::HmacSha1,
                EspAuth::HmacSha256,
                EspAuth::HmacSha512,
                EspAuth::HmacMd5,
            ] {
                let t = EspTransform {
                    cipher: c,
                    auth: Some(a),
                    mode: EncapMode::Transport,
                    mode_value: 2,
                    group: None,
                    lifetime: Lifetime::default(),
                };
                let s = suite_of(&t).unwrap_or_else(|e| panic!("{t:?}: {e}"));
                assert_eq!(s.keymat_len(), t.keymat_len(), "{t:?}");
            }
        }
        let gcm = EspTransform {
            cipher: EspCipher::AesGcm16(sluice_ike::cipher::AesKeyLen::Aes256),
            auth: None,
            mode: EncapMode::UdpTransport,
            mode_value: 4,
            group: None,
            lifetime: Lifetime::default(),
        };
        assert_eq!(suite_of(&gcm).map(|s| s.keymat_len()), Ok(36));
    }
}
