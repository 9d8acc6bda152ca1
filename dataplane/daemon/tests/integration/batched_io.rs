//! The batched I/O of the data path against the kernel (root only: raw sockets, TUN):
//! `sendmmsg(2)` through a send scope delivers every datagram in order, and the TUN device
//! with offloads takes a batch of writes and gives packets back.

use std::net::Ipv4Addr;
use std::time::Duration;

use sluice_dataplane::io::batch::RecvBatch;
use sluice_dataplane::io::rawsock::{IPPROTO_GRE, MAX_DATAGRAM, RawSocket};
use sluice_dataplane::io::send_batch::{self, SendScope};

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
