//! The node's L2TP UDP socket (RFC 2661 §8.1: port 1701). Receives in batches
//! with `recvmmsg(2)` and learns, through `IP_PKTINFO`, the local address each
//! datagram arrived on; sends choose that address as their source, so on a
//! multi-homed node replies leave from the address and port the client talked
//! to (what NAT devices and stateful firewalls expect).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::batch::RecvBatch;
use super::send_batch::{self, Dest};

/// Largest datagram we accept: L2TP at the maximum MRU needs 2 KiB, but IKE messages
/// carrying certificate chains (RFC 2409 §5.1) reach several KiB as reassembled IP
/// fragments, and the IKE and NAT-T ports share this receive path.
pub const MAX_DATAGRAM: usize = 16 * 1024;

/// A UDP socket bound to the L2TP port with `IP_PKTINFO` enabled.
pub struct UdpPort {
    sock: Socket,
}

impl UdpPort {
    /// Binds `bind` (default: every address) and `port`. `read_timeout` bounds each
    /// blocking receive so threads notice shutdown.
    pub fn open(bind: Option<Ipv4Addr>, port: u16, read_timeout: Duration) -> io::Result<Self> {
        Self::open_with(bind, port, read_timeout, false)
    }

    /// `count` sockets (at least 1) on one port, in a `SO_REUSEPORT` group (socket(7)) when
    /// there are several: the kernel hands each a share of the peers, by a hash of the
    /// addresses and ports, so one peer's datagrams always reach the same socket (and
    /// thread). Returns the first (which also sends) and the rest.
    pub fn open_shards(
        bind: Option<Ipv4Addr>,
        port: u16,
        read_timeout: Duration,
        count: u32,
    ) -> io::Result<(Self, Vec<Self>)> {
        let shared = count > 1;
        let first = Self::open_with(bind, port, read_timeout, shared)?;
        let port = first.local_addr().map_or(port, |a| a.port());
        let rest = (1..count.max(1))
            .map(|_| Self::open_with(bind, port, read_timeout, true))
            .collect::<io::Result<Vec<_>>>()?;
        Ok((first, rest))
    }

    fn open_with(
        bind: Option<Ipv4Addr>,
        port: u16,
        read_timeout: Duration,
        reuse_port: bool,
    ) -> io::Result<Self> {
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        sock.set_reuse_address(true)?;
        if reuse_port {
            sock.set_reuse_port(true)?;
        }
        super::batch::switch_on(sock.as_raw_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO)?;
        let addr = SocketAddrV4::new(bind.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
        sock.bind(&SockAddr::from(addr))?;
        sock.set_read_timeout(Some(read_timeout))?;
        super::batch::enable_timestamps(sock.as_raw_fd())?;
        let _ = sock.set_recv_buffer_size(4 << 20);
        let _ = sock.set_send_buffer_size(4 << 20);
        Ok(UdpPort { sock })
    }

    /// The bound address (the port, when 0 was asked for).
    pub fn local_addr(&self) -> Option<SocketAddrV4> {
        match self.sock.local_addr().ok()?.as_socket()? {
            SocketAddr::V4(a) => Some(a),
            SocketAddr::V6(_) => None,
        }
    }

    /// Sends `payload` to `remote`, from local address `from` when given (and not
    /// unspecified), else from whatever the routing table picks. Queued while the thread has
    /// a send scope open (`io::send_batch`); `reason` is the drop reason counted then.
    pub fn send_from(
        &self,
        payload: &[u8],
        from: Option<Ipv4Addr>,
        remote: SocketAddrV4,
        reason: &'static str,
    ) -> io::Result<()> {
        send_batch::send(self, payload, Dest { to: remote, from }, reason)
    }

    /// Receives up to `batch.capacity()` datagrams in one `recvmmsg(2)`, with their
    /// sources and the local addresses they arrived on; a timeout returns `Ok(0)`.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.recv(self.sock.as_raw_fd())
    }
}

impl AsRawFd for UdpPort {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_leave_from_the_address_the_datagram_arrived_on() -> io::Result<()> {
        let port = UdpPort::open(None, 0, Duration::from_millis(500))?;
        let bound = port
            .local_addr()
            .ok_or_else(|| io::Error::other("no address"))?;
        let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
        peer.set_read_timeout(Some(Duration::from_secs(2)))?;
        let to = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), bound.port());
        peer.send_to(b"hello", to)?;
        let mut batch = RecvBatch::new(4, MAX_DATAGRAM);
        let mut got = 0;
        for _ in 0..4 {
            got = port.recv_batch(&mut batch)?;
            if got > 0 {
                break;
            }
        }
        assert_eq!(got, 1);
        let (data, remote, local) = batch
            .get_mut(0)
            .ok_or_else(|| io::Error::other("empty slot"))?;
        assert_eq!(&*data, b"hello");
        assert_eq!(local, Ipv4Addr::new(127, 0, 0, 2));
        let peer_addr = match peer.local_addr()? {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => return Err(io::Error::other("v6")),
        };
        assert_eq!(remote, peer_addr);
        port.send_from(b"reply", Some(local), remote, "test")?;
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf)?;
        assert_eq!(&buf[..n], b"reply");
        assert_eq!(from, SocketAddr::V4(to));
        Ok(())
    }

    #[test]
    fn shards_share_the_peers_and_keep_each_peer_on_one_socket() -> io::Result<()> {
        let (first, rest) = UdpPort::open_shards(None, 0, Duration::from_millis(100), 2)?;
        let port = first
            .local_addr()
            .ok_or_else(|| io::Error::other("no address"))?
            .port();
        assert_eq!(rest.len(), 1);
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        let peers = (0..24)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0"))
            .collect::<io::Result<Vec<_>>>()?;
        for _ in 0..3 {
            for p in &peers {
                p.send_to(b"x", to)?;
            }
        }
        // Which socket each peer's datagrams reached.
        let mut seen: std::collections::HashMap<SocketAddrV4, Vec<usize>> = Default::default();
        for (i, sock) in std::iter::once(&first).chain(&rest).enumerate() {
            let mut batch = RecvBatch::new(64, 64);
            loop {
                let n = sock.recv_batch(&mut batch)?;
                if n == 0 {
                    break;
                }
                for j in 0..n {
                    if let Some((_, from, _)) = batch.get_mut(j) {
                        seen.entry(from).or_default().push(i);
                    }
                }
            }
        }
        assert_eq!(seen.len(), peers.len());
        for shards in seen.values() {
            assert_eq!(shards.len(), 3);
            assert!(shards.iter().all(|&s| s == shards[0]), "{shards:?}");
        }
        let on_first = seen.values().filter(|s| s[0] == 0).count();
        assert!(
            on_first > 0 && on_first < peers.len(),
            "{on_first} of 24 on one socket"
        );
        Ok(())
    }
}
