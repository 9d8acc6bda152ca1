//! The receive threads of the IPsec fast path: the IKE port, the NAT-T port (RFC 3948 §2.2:
//! ESP, IKE behind the non-ESP marker, keep-alives) and raw ESP (RFC 4303), and the
//! decapsulation of one ESP packet into the L2TP fast path.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_esp::udp_encap::{Udp4500Payload, classify};
use tracing::{info, warn};

use super::{
    EspMove, IPPROTO_ESP, IkeDatagram, Inbound, IpsecIo, MAX_ESP_MOVES, MAX_PEERS, PeerMove,
    decap_reason, guard, held, pack,
};
use crate::datapath::Hooks;
use crate::io::batch::RecvBatch;
use crate::io::rawsock;
use crate::io::udpsock::{self, UdpPort};
use crate::metrics::Layer;

/// Decapsulates one ESP packet and passes its L2TP payload on.
pub(crate) fn receive_esp<H: Hooks>(
    h: &H,
    io: &IpsecIo,
    esp: &mut [u8],
    outer: SocketAddrV4,
    local: Ipv4Addr,
    now: Instant,
) {
    let dp = h.dp();
    let Some(spi) = sluice_esp::spi_of(esp) else {
        return dp.metrics.malformed(Layer::Esp);
    };
    let lookup = || {
        io.inbound
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&spi)
            .cloned()
    };
    let entry = match lookup() {
        Some(e) => e,
        None => {
            // Looked up again under the hold lock: the IKE thread installs the SA before it
            // takes this lock to release what was held, so no packet is held after that.
            let mut held = io.held.lock().unwrap_or_else(|p| p.into_inner());
            match lookup() {
                Some(e) => e,
                None => {
                    return match held.hold(spi, esp, (outer, local), now) {
                        held::HoldOutcome::Held => {}
                        held::HoldOutcome::Full | held::HoldOutcome::NotExpected => {
                            dp.metrics.dropped("esp_unknown_spi")
                        }
                    };
                }
            }
        }
    };
    let mut sa = entry.sa.lock().unwrap_or_else(|p| p.into_inner());
    let highest = sa.replay_window().highest();
    let opened = match sa.decapsulate(esp) {
        Ok(o) => o,
        Err(e) => return dp.metrics.dropped(decap_reason(&e)),
    };
    let newest = opened.seq > highest;
    if opened.next_header != 17 {
        return dp.metrics.dropped("esp_not_udp");
    }
    let udp = opened.payload;
    let (Some(&[s0, s1, d0, d1]), true) = (udp.first_chunk::<4>(), udp.len() >= 8) else {
        return dp.metrics.malformed(Layer::Esp);
    };
    let (src_port, dst_port) = (u16::from_be_bytes([s0, s1]), u16::from_be_bytes([d0, d1]));
    if dst_port != io.l2tp_port {
        return dp.metrics.dropped("esp_not_l2tp");
    }
    if entry.udp_encap
        && io.key_by_outer_port()
        && entry.peer.load(Ordering::Relaxed) != pack(outer)
        && !follow_esp(h, io, &entry, outer, local, newest)
    {
        return dp.metrics.dropped("esp_stale_peer_address");
    }
    entry
        .last_rx_ms
        .store(dp.clock.millis(now).max(1), Ordering::Relaxed);
    let key = if entry.udp_encap && io.key_by_outer_port() {
        outer
    } else {
        SocketAddrV4::new(*outer.ip(), src_port)
    };
    let bound = io.peers.read().unwrap_or_else(|p| p.into_inner()).get(&key);
    let entry_ike = entry.ike.load(Ordering::Relaxed);
    let name = match bound {
        // A new IKE SA of the same client (Phase 1 rekey) takes the key over; any other
        // IKE SA is refused (another client cannot inject into this one's tunnel), and so
        // is any while the key's own IKE SA is elsewhere (its client moved; the key is an
        // L2TP name until the rename).
        Some(b) if b.ike != entry_ike => {
            if !io.ike_reaches(entry_ike, key) || io.ike_sends_to(b.ike, key) == Some(false) {
                return dp.metrics.dropped("l2tp_wrong_esp_sa");
            }
            io.peers
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take_over(key, entry_ike, src_port);
            b.l2tp
        }
        Some(b) => b.l2tp,
        None => {
            let mut peers = io.peers.write().unwrap_or_else(|p| p.into_inner());
            if peers.len() >= MAX_PEERS {
                return dp.metrics.dropped("esp_peer_limit");
            }
            peers.bind(key, entry_ike, src_port);
            key
        }
    };
    drop(sa);
    if let Some(l2tp) = udp.get_mut(8..) {
        crate::datapath::l2tp::handle_protected(h, l2tp, name, local, now);
    }
}

/// Authentic ESP from `outer` under an SA whose client was elsewhere: follows it there if
/// the packet is the newest the SA has seen, and returns false otherwise (an old packet
/// that took a detour, or one replayed from another address within the window, moves
/// nobody and is dropped).
fn follow_esp<H: Hooks>(
    h: &H,
    io: &IpsecIo,
    entry: &Inbound,
    outer: SocketAddrV4,
    local: Ipv4Addr,
    newest: bool,
) -> bool {
    if !newest {
        return false;
    }
    let ike = entry.ike.load(Ordering::Relaxed);
    let local = SocketAddrV4::new(local, io.natt_port);
    let dp = h.dp();
    // This SA's packets from there are expected now, whatever became of the rest.
    entry.peer.store(pack(outer), Ordering::Relaxed);
    let moved = io.move_peer(ike, local, outer);
    if moved == Ok(PeerMove::Unchanged) {
        return true;
    }
    dp.metrics.ipsec_peer_moves.inc();
    {
        let mut moves = io.esp_moves.lock().unwrap_or_else(|p| p.into_inner());
        if moves.len() < MAX_ESP_MOVES {
            moves.push(EspMove {
                ike,
                local,
                remote: outer,
            });
        }
    }
    match moved {
        Ok(moved) => {
            info!(peer = %outer, ike, "IPsec client moved (NAT rebinding, learned from ESP)");
            if moved == (PeerMove::Moved { l2tp_rename: true })
                && let Some(l2tp) = dp.l2tp.get()
            {
                l2tp.peers_moved();
            }
        }
        Err(e) => {
            warn!(peer = %outer, ike, error = %e, "IPsec client moved; its L2TP peer could not follow")
        }
    }
    true
}

/// Reads `sock` in batches until stopped, handing every datagram to `each`.
fn udp_rx_loop<H: Hooks>(
    h: &H,
    sock: &UdpPort,
    what: &str,
    mut each: impl FnMut(&mut [u8], SocketAddrV4, Ipv4Addr, Instant),
) {
    let mut batch = RecvBatch::new(32, udpsock::MAX_DATAGRAM);
    crate::datapath::aqm::attach(h.dp().aqm);
    while !h.dp().stop.load(Ordering::Relaxed) {
        let n = match sock.recv_batch(&mut batch) {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "{what} receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let now = Instant::now();
        crate::datapath::tun_writes_together(h.dp(), || {
            for i in 0..n {
                crate::datapath::dequeued(h.dp(), &batch, i, now);
                if let Some((buf, remote, local)) = batch.get_mut(i) {
                    each(buf, remote, local, now);
                }
            }
        });
    }
}

/// Queues an IKE message (as received, marker included) for the IKE thread: through the
/// flood guard when there is one (known SAs and first messages in queues of their own).
fn forward_ike<H: Hooks>(
    h: &H,
    io: &IpsecIo,
    port: u16,
    buf: &[u8],
    remote: SocketAddrV4,
    local: Ipv4Addr,
    now: Instant,
) {
    let d = |bytes: &[u8]| IkeDatagram {
        local: SocketAddrV4::new(local, port),
        remote,
        bytes: bytes.to_vec(),
    };
    let Some(g) = io.guard.get() else {
        if !io.to_ike(d(buf)) {
            h.dp().metrics.dropped("ike_queue_full");
        }
        return;
    };
    // RFC 3948 §2.2: IKE on the NAT-T port follows a four-octet non-ESP marker.
    let isakmp = if port == io.natt_port {
        buf.get(4..).unwrap_or_default()
    } else {
        buf
    };
    let refused = match g.admit(isakmp, *remote.ip(), now) {
        Ok(guard::Class::Known) => (!io.to_ike(d(buf))).then_some("ike_queue_full"),
        Ok(guard::Class::New) => (!g.queue_new(d(buf))).then_some("ike_new_queue_full"),
        Err(why) => Some(why),
    };
    if let Some(why) = refused {
        h.dp().metrics.dropped(g.count(why));
    }
}

/// Reads the NAT-T port of receive shard `shard` until stopped (0: `IpsecIo::natt`): ESP to
/// the fast path, IKE to the IKE task.
pub fn natt_rx_loop<H: Hooks>(h: Arc<H>, shard: usize) {
    let Some(io) = h.dp().ipsec.get() else { return };
    let Some(sock) = crate::io::shard::socket(&io.natt, &io.natt_shards, shard) else {
        return;
    };
    let port = io.natt.local_addr().map_or(0, |a| a.port());
    udp_rx_loop(
        &*h,
        sock,
        "NAT-T",
        |buf, remote, local, now| match classify(buf) {
            Udp4500Payload::Keepalive => {}
            Udp4500Payload::Ike(_) => forward_ike(&*h, io, port, buf, remote, local, now),
            Udp4500Payload::Esp(_) => receive_esp(&*h, io, buf, remote, local, now),
            Udp4500Payload::Malformed => h.dp().metrics.malformed(Layer::Esp),
        },
    );
}

/// Reads the IKE port until stopped.
pub fn ike_rx_loop<H: Hooks>(h: Arc<H>) {
    let Some(io) = h.dp().ipsec.get() else { return };
    let port = io.ike.local_addr().map_or(0, |a| a.port());
    udp_rx_loop(&*h, &io.ike, "IKE", |buf, remote, local, now| {
        forward_ike(&*h, io, port, buf, remote, local, now)
    });
}

/// Reads raw ESP (IP protocol 50) of receive shard `shard` until stopped (0: `IpsecIo::raw`).
pub fn esp_raw_rx_loop<H: Hooks>(h: Arc<H>, shard: usize) {
    let Some(io) = h.dp().ipsec.get() else { return };
    let Some(sock) = crate::io::shard::socket(&io.raw, &io.raw_shards, shard) else {
        return;
    };
    let mut batch = RecvBatch::new(32, rawsock::MAX_DATAGRAM);
    crate::datapath::aqm::attach(h.dp().aqm);
    while !h.dp().stop.load(Ordering::Relaxed) {
        let n = match sock.recv_batch(&mut batch) {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "raw ESP receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let now = Instant::now();
        crate::datapath::tun_writes_together(h.dp(), || {
            for i in 0..n {
                crate::datapath::dequeued(h.dp(), &batch, i, now);
                let Some(pkt) = batch.payload_mut(i) else {
                    continue;
                };
                let Some((src, dst, range)) = ipv4_addresses(pkt) else {
                    h.dp().metrics.malformed(Layer::Ip);
                    continue;
                };
                if let Some(esp) = pkt.get_mut(range) {
                    receive_esp(&*h, io, esp, SocketAddrV4::new(src, 0), dst, now);
                }
            }
        });
    }
}

/// Source, destination and payload range of an IPv4 ESP packet as the raw socket delivers
/// it (after reassembly; the Total Length bounds the payload).
pub(crate) fn ipv4_addresses(pkt: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, std::ops::Range<usize>)> {
    let h = pkt.first_chunk::<20>()?;
    let [
        vihl,
        _,
        t0,
        t1,
        _,
        _,
        _,
        _,
        _,
        proto,
        _,
        _,
        s0,
        s1,
        s2,
        s3,
        d0,
        d1,
        d2,
        d3,
    ] = *h;
    let ihl = usize::from(vihl & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([t0, t1]));
    if vihl >> 4 != 4
        || ihl < 20
        || total < ihl
        || pkt.len() < total
        || i32::from(proto) != IPPROTO_ESP
    {
        return None;
    }
    Some((
        Ipv4Addr::new(s0, s1, s2, s3),
        Ipv4Addr::new(d0, d1, d2, d3),
        ihl..total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_of_raw_esp() {
        let mut p = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 50, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 1, 9, 9]);
        let (s, d, r) = ipv4_addresses(&p).unwrap_or_else(|| panic!("valid header"));
        assert_eq!(
            (s, d, r),
            (
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2),
                20..28
            )
        );
        p[9] = 47;
        assert!(ipv4_addresses(&p).is_none());
        assert!(ipv4_addresses(&p[..10]).is_none());
    }
}
