//! The node's L2TP UDP socket (RFC 2661 §8.1: port 1701). Receives in batches
//! with `recvmmsg(2)` and learns, through `IP_PKTINFO`, the local address each
//! datagram arrived on; sends choose that address as their source, so on a
//! multi-homed node replies leave from the address and port the client talked
//! to (what NAT devices and stateful firewalls expect).

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::batch::{CONTROL_WORDS, RecvBatch};

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
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        sock.set_reuse_address(true)?;
        let on: libc::c_int = 1;
        // SAFETY: a valid fd and a c_int option value of the right size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                (&on as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let addr = SocketAddrV4::new(bind.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
        sock.bind(&SockAddr::from(addr))?;
        sock.set_read_timeout(Some(read_timeout))?;
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
    /// unspecified), else from whatever the routing table picks.
    pub fn send_from(
        &self,
        payload: &[u8],
        from: Option<Ipv4Addr>,
        remote: SocketAddrV4,
    ) -> io::Result<usize> {
        let dst = sockaddr_in(remote);
        let mut iov = libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        };
        let mut control = [0u64; CONTROL_WORDS];
        // SAFETY: msghdr is plain old data; zeroed is a valid value.
        let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        msg.msg_name = (&dst as *const libc::sockaddr_in as *mut libc::sockaddr_in).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(src) = from.filter(|a| !a.is_unspecified()) {
            // SAFETY: CMSG_SPACE is a pure size computation.
            let space = unsafe { libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) } as usize;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space;
            // SAFETY: the control buffer is CONTROL_WORDS * 8 ≥ `space` bytes, 8-byte
            // aligned, and `msg` points at it; CMSG_FIRSTHDR returns a header inside it.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                if cmsg.is_null() {
                    return Err(io::Error::other("no room for IP_PKTINFO"));
                }
                (*cmsg).cmsg_level = libc::IPPROTO_IP;
                (*cmsg).cmsg_type = libc::IP_PKTINFO;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as usize;
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(src).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
            }
        }
        // SAFETY: every pointer in `msg` refers to locals that outlive the call.
        let rc = unsafe { libc::sendmsg(self.sock.as_raw_fd(), &msg, 0) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc as usize)
        }
    }

    /// Receives up to `batch.capacity()` datagrams in one `recvmmsg(2)`, with their
    /// sources and the local addresses they arrived on; a timeout returns `Ok(0)`.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.recv(self.sock.as_raw_fd())
    }
}

fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; zeroed is a valid value.
    let mut sin: libc::sockaddr_in = unsafe { MaybeUninit::zeroed().assume_init() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = a.port().to_be();
    sin.sin_addr = libc::in_addr {
        s_addr: u32::from(*a.ip()).to_be(),
    };
    sin
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
        port.send_from(b"reply", Some(local), remote)?;
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf)?;
        assert_eq!(&buf[..n], b"reply");
        assert_eq!(from, SocketAddr::V4(to));
        Ok(())
    }
}
