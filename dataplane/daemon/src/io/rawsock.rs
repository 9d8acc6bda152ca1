//! The node's one raw GRE socket (IP protocol 47): batched receive with `recvmmsg(2)`;
//! sends one at a time or batched with `sendmmsg(2)` (`send_batch`). The kernel adds the
//! IPv4 header.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::batch::RecvBatch;
use super::shard::{self, ShardKey};

/// IP protocol number of GRE.
pub const IPPROTO_GRE: i32 = 47;

/// Largest datagram we accept (IPv4 header + GRE + PPP at the maximum MRU).
pub const MAX_DATAGRAM: usize = 2048;

/// A raw IPv4 socket for one IP protocol.
pub struct RawSocket {
    sock: Socket,
}

impl RawSocket {
    /// Opens a raw socket for `protocol`, optionally bound to a local address.
    /// `read_timeout` bounds each blocking receive so threads can notice shutdown.
    pub fn open(protocol: i32, bind: Option<Ipv4Addr>, read_timeout: Duration) -> io::Result<Self> {
        let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(protocol)))?;
        if let Some(addr) = bind {
            sock.bind(&SockAddr::from(SocketAddrV4::new(addr, 0)))?;
        }
        sock.set_read_timeout(Some(read_timeout))?;
        super::batch::enable_timestamps(sock.as_raw_fd())?;
        // Room for bursts: 4 MiB each way (the kernel caps at rmem_max/wmem_max).
        let _ = sock.set_recv_buffer_size(4 << 20);
        let _ = sock.set_send_buffer_size(4 << 20);
        Ok(RawSocket { sock })
    }

    /// Sends one protocol payload (e.g. a GRE packet) to `dst`.
    pub fn send_to(&self, payload: &[u8], dst: Ipv4Addr) -> io::Result<usize> {
        self.sock
            .send_to(payload, &SockAddr::from(SocketAddrV4::new(dst, 0)))
    }

    /// Receives up to `batch.capacity()` datagrams in one `recvmmsg(2)` (each with its IP
    /// header); a timeout returns `Ok(0)`.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.recv(self.sock.as_raw_fd())
    }

    /// Keeps only shard `index` of `count` of the packets this socket receives (`io::shard`).
    pub fn keep_shard(&self, key: ShardKey, index: u32, count: u32) -> io::Result<()> {
        self.sock.attach_filter(&shard::filter(key, index, count))
    }

    /// Local address, if bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.sock.local_addr().ok().and_then(|a| a.as_socket())
    }
}

impl AsRawFd for RawSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}
