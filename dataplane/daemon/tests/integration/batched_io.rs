//! The batched I/O of the data path against the kernel (root only: raw sockets, TUN):
//! `sendmmsg(2)` through a send scope delivers every datagram in order, and the TUN device
//! with offloads takes a batch of writes and gives packets back.

use std::net::Ipv4Addr;
use std::time::Duration;

use sluice_dataplane::io::batch::RecvBatch;
use sluice_dataplane::io::rawsock::{IPPROTO_GRE, MAX_DATAGRAM, RawSocket};
use sluice_dataplane::io::send_batch::{self, SendScope};
use sluice_dataplane::io::shard::ShardKey;

/// A GRE-looking payload numbered `n` (the receiving raw socket does not parse it).
fn payload(n: u16) -> Vec<u8> {
    let mut p = vec![0x30, 0x01, 0x88, 0x0b, 0, 4, 0, 7];
    p.extend_from_slice(&n.to_be_bytes());
    p.resize(200 + usize::from(n % 100), 0xAB);
    p
}

#[test]
#[ignore = "needs root (raw sockets)"]
fn a_send_scope_delivers_every_datagram_in_order() {
    let rx = RawSocket::open(IPPROTO_GRE, None, Duration::from_millis(200)).unwrap();
    let tx = RawSocket::open(IPPROTO_GRE, None, Duration::from_millis(200)).unwrap();
    let (sent_in_scope, sent_alone) = (300u16, 5u16);
    let scope = SendScope::open();
    for n in 0..sent_in_scope {
        send_batch::send(&tx, &payload(n), Ipv4Addr::LOCALHOST, "test").unwrap();
    }
    let failed = scope.finish();
    assert!(failed.is_empty(), "{failed:?}");
    for n in sent_in_scope..sent_in_scope + sent_alone {
        send_batch::send(&tx, &payload(n), Ipv4Addr::LOCALHOST, "test").unwrap();
    }
    let mut got = Vec::new();
    let mut batch = RecvBatch::new(64, MAX_DATAGRAM);
    while got.len() < usize::from(sent_in_scope + sent_alone) {
        let n = rx.recv_batch(&mut batch).unwrap();
        assert!(n > 0, "timed out after {} datagrams", got.len());
        for i in 0..n {
            let d = batch.payload_mut(i).unwrap();
            // 20-octet IPv4 header, then a payload; other tests' GRE on the loopback is not
            // ours (its first octets differ).
            let body = &d[20..];
            if body.len() < 10 || body[..8] != payload(0)[..8] {
                continue;
            }
            let n = u16::from_be_bytes([body[8], body[9]]);
            assert_eq!(body, &payload(n)[..]);
            got.push(n);
        }
    }
    let want: Vec<u16> = (0..sent_in_scope + sent_alone).collect();
    assert_eq!(got, want);
}

#[test]
#[ignore = "needs root (raw sockets)"]
fn receive_shards_split_gre_by_call_id_and_esp_by_spi_and_keep_short_packets_in_shard_0() {
    const MARK: &[u8] = b"sluice-shard-test";
    // Receives from `sock` until a read times out: the payloads (IPv4 header removed) that
    // carry MARK at octet 12, or are exactly `short`.
    let collect = |sock: &RawSocket, short: &[u8]| {
        let mut got = Vec::new();
        let mut batch = RecvBatch::new(64, MAX_DATAGRAM);
        loop {
            let n = sock.recv_batch(&mut batch).unwrap();
            if n == 0 {
                return got;
            }
            for i in 0..n {
                let body = &batch.payload_mut(i).unwrap()[20..];
                if body == short || body.get(12..12 + MARK.len()) == Some(MARK) {
                    got.push(body.to_vec());
                }
            }
        }
    };
    for (protocol, key, at) in [
        (IPPROTO_GRE, ShardKey::GreCallId, 6usize),
        (50, ShardKey::EspSpi, 0usize),
    ] {
        let open = || RawSocket::open(protocol, None, Duration::from_millis(300)).unwrap();
        let shards: Vec<RawSocket> = (0..3)
            .map(|i| {
                let s = open();
                s.keep_shard(key, i, 3).unwrap();
                s
            })
            .collect();
        let tx = open();
        let packet = |id: u32| {
            let mut p = vec![0x30, 0x01, 0x88, 0x0b, 0, 4, 0, 0, 0, 0, 0, 1];
            match key {
                ShardKey::GreCallId => p[6..8].copy_from_slice(&(id as u16).to_be_bytes()),
                ShardKey::EspSpi => p[0..4].copy_from_slice(&id.to_be_bytes()),
            }
            p.extend_from_slice(MARK);
            p
        };
        let ids: Vec<u32> = (0..30).map(|i| i * 7919 + 1).collect();
        for &id in &ids {
            tx.send_to(&packet(id), Ipv4Addr::LOCALHOST).unwrap();
        }
        // Too short to hold the key (GRE: 5 octets; ESP: 3): shard 0 only, where it is
        // counted as malformed.
        let short: &[u8] = if key == ShardKey::GreCallId {
            &[0x30, 0x01, 0x88, 0x0b, 0xEE]
        } else {
            &[0xEE, 0xEE, 0xEE]
        };
        tx.send_to(short, Ipv4Addr::LOCALHOST).unwrap();
        for (i, s) in shards.iter().enumerate() {
            let got = collect(s, short);
            let mut want: Vec<Vec<u8>> = ids
                .iter()
                .filter(|&&id| {
                    ShardKey::shard_of(id & if at == 6 { 0xFFFF } else { u32::MAX }, 3) == i as u32
                })
                .map(|&id| packet(id))
                .collect();
            if i == 0 {
                want.push(short.to_vec());
            }
            assert_eq!(got, want, "{key:?} shard {i}");
        }
    }
}
