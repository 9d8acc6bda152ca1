//! The node's one raw GRE socket (IP protocol 47): batched receive with
//! `recvmmsg(2)`, one `sendto(2)` per packet (the kernel adds the IPv4 header).

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

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

    /// Receives up to `batch.len()` datagrams in one `recvmmsg(2)`.
    /// Returns how many slots were filled; each slot's `len` is set.
    /// A timeout returns `Ok(0)`.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        let n = batch.bufs.len();
        for i in 0..n {
            batch.iov[i] = libc::iovec {
                iov_base: batch.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            };
            // SAFETY: mmsghdr is plain old data; zeroed is a valid value.
            let mut hdr: libc::mmsghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            hdr.msg_hdr.msg_iov = &mut batch.iov[i];
            hdr.msg_hdr.msg_iovlen = 1;
            batch.hdrs[i] = hdr;
        }
        // SAFETY: hdrs/iov/bufs live for the call; every iovec points into a
        // MAX_DATAGRAM-sized buffer owned by `batch`.
        let rc = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                batch.hdrs.as_mut_ptr(),
                n as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return recv_error();
        }
        let got = rc as usize;
        for i in 0..got {
            batch.lens[i] = (batch.hdrs[i].msg_len as usize).min(MAX_DATAGRAM);
        }
        Ok(got)
    }

    /// Local address, if bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.sock.local_addr().ok().and_then(|a| a.as_socket())
    }
}

/// The result of a failed `recvmmsg(2)`: a timeout or signal is "nothing received".
pub(crate) fn recv_error() -> io::Result<usize> {
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => Ok(0),
        _ => Err(e),
    }
}

/// Buffers for one `recvmmsg(2)` call.
pub struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    lens: Vec<usize>,
}

// SAFETY: the raw pointers inside iovec/mmsghdr only ever point into `bufs`,
// which the batch owns; they are rebuilt before every receive.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        RecvBatch {
            bufs: vec![[0u8; MAX_DATAGRAM]; n],
            iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                n
            ],
            // SAFETY: mmsghdr is plain old data; zeroed is a valid value.
            hdrs: (0..n)
                .map(|_| unsafe { MaybeUninit::<libc::mmsghdr>::zeroed().assume_init() })
                .collect(),
            lens: vec![0; n],
        }
    }

    /// The `i`-th received datagram (mutable: decryption happens in place).
    pub fn get_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let len = *self.lens.get(i)?;
        self.bufs.get_mut(i).map(|b| &mut b[..len])
    }
}
