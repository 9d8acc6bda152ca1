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

/// Largest datagram we accept: L2TP at the maximum MRU needs 2 KiB, but IKE messages
/// carrying certificate chains (RFC 2409 §5.1) reach several KiB as reassembled IP
/// fragments, and the IKE and NAT-T ports share this receive path.
pub const MAX_DATAGRAM: usize = 16 * 1024;

/// Room for one `IP_PKTINFO` control message (kept 8-byte aligned).
const CONTROL_WORDS: usize = 8;

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

    /// Receives up to `batch` datagrams in one `recvmmsg(2)`; a timeout returns `Ok(0)`.
    pub fn recv_batch(&self, batch: &mut UdpBatch) -> io::Result<usize> {
        let n = batch.bufs.len();
        for i in 0..n {
            batch.iov[i] = libc::iovec {
                iov_base: batch.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            };
            // SAFETY: mmsghdr is plain old data; zeroed is a valid value.
            let mut hdr: libc::mmsghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            hdr.msg_hdr.msg_name = (&mut batch.names[i] as *mut libc::sockaddr_in).cast();
            hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_hdr.msg_iov = &mut batch.iov[i];
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = batch.control[i].as_mut_ptr().cast();
            hdr.msg_hdr.msg_controllen = CONTROL_WORDS * 8;
            batch.hdrs[i] = hdr;
        }
        // SAFETY: every pointer in hdrs points into buffers `batch` owns, sized as declared.
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
            return crate::io::rawsock::recv_error();
        }
        let got = rc as usize;
        for i in 0..got {
            let hdr = &batch.hdrs[i];
            let name = &batch.names[i];
            batch.meta[i] = Meta {
                len: (hdr.msg_len as usize).min(MAX_DATAGRAM),
                remote: SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(name.sin_addr.s_addr)),
                    u16::from_be(name.sin_port),
                ),
                local: pktinfo_dst(&hdr.msg_hdr),
            };
        }
        Ok(got)
    }
}

/// The destination address of a received datagram, from its `IP_PKTINFO` message.
pub(crate) fn pktinfo_dst(msg: &libc::msghdr) -> Ipv4Addr {
    if msg.msg_control.is_null() {
        return Ipv4Addr::UNSPECIFIED;
    }
    // SAFETY: `msg_control` points at a control buffer of at least `msg_controllen` bytes
    // (set to the buffer's size before recvmmsg; the kernel only lowers it).
    let control =
        unsafe { std::slice::from_raw_parts(msg.msg_control.cast::<u8>(), msg.msg_controllen) };
    pktinfo_in(control)
}

/// Walks a control buffer (cmsg(3) layout) with bounds checks on every header, rather than
/// trusting `cmsg_len` as the CMSG_* macros do: a truncated header or a huge length ends
/// the walk.
fn pktinfo_in(control: &[u8]) -> Ipv4Addr {
    const HDR: usize = std::mem::size_of::<libc::cmsghdr>();
    const ALIGN: usize = std::mem::size_of::<usize>();
    let word = |b: &[u8], at: usize| -> Option<[u8; 4]> { b.get(at..at + 4)?.try_into().ok() };
    let mut off = 0usize;
    while let Some(h) = control.get(off..).and_then(|rest| rest.get(..HDR)) {
        let Some(len) = h
            .get(..ALIGN)
            .and_then(|b| b.try_into().ok())
            .map(usize::from_ne_bytes)
        else {
            break;
        };
        let (Some(level), Some(kind)) = (word(h, ALIGN), word(h, ALIGN + 4)) else {
            break;
        };
        let Some(body) = (len >= HDR)
            .then(|| control.get(off + HDR..off.checked_add(len)?))
            .flatten()
        else {
            break;
        };
        if i32::from_ne_bytes(level) == libc::IPPROTO_IP
            && i32::from_ne_bytes(kind) == libc::IP_PKTINFO
        {
            // struct in_pktinfo: ipi_ifindex, ipi_spec_dst, ipi_addr (network order).
            return word(body, 8).map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from);
        }
        let Some(next) = len.checked_add(ALIGN - 1).map(|l| l & !(ALIGN - 1)) else {
            break;
        };
        off = match off.checked_add(next) {
            Some(o) => o,
            None => break,
        };
    }
    Ipv4Addr::UNSPECIFIED
}

#[cfg(test)]
mod pktinfo_tests {
    use super::*;

    fn cmsg(level: i32, kind: i32, data: &[u8], len_override: Option<usize>) -> Vec<u8> {
        let hdr = std::mem::size_of::<libc::cmsghdr>();
        let mut v = Vec::new();
        v.extend_from_slice(&len_override.unwrap_or(hdr + data.len()).to_ne_bytes());
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % std::mem::size_of::<usize>() != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn finds_ip_pktinfo_and_survives_hostile_lengths() {
        let info = [2, 0, 0, 0, 10, 0, 0, 1, 10, 99, 1, 1];
        let mut buf = cmsg(libc::SOL_SOCKET, 29, &[0; 8], None);
        buf.extend(cmsg(libc::IPPROTO_IP, libc::IP_PKTINFO, &info, None));
        assert_eq!(pktinfo_in(&buf), Ipv4Addr::new(10, 99, 1, 1));
        // A header cut short, a length past the end, a length of u64::MAX, zero: no read
        // past the buffer, no endless loop.
        assert_eq!(
            pktinfo_in(&buf[..buf.len() - 4]),
            Ipv4Addr::new(10, 99, 1, 1)
        );
        let past = cmsg(libc::IPPROTO_IP, libc::IP_PKTINFO, &info, Some(4096));
        assert_eq!(pktinfo_in(&past), Ipv4Addr::UNSPECIFIED);
        let huge = cmsg(libc::SOL_SOCKET, 29, &[0; 8], Some(usize::MAX));
        assert_eq!(pktinfo_in(&huge), Ipv4Addr::UNSPECIFIED);
        let zero = cmsg(libc::SOL_SOCKET, 29, &[0; 8], Some(0));
        assert_eq!(pktinfo_in(&zero), Ipv4Addr::UNSPECIFIED);
        assert_eq!(pktinfo_in(&[]), Ipv4Addr::UNSPECIFIED);
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

#[derive(Clone, Copy)]
struct Meta {
    len: usize,
    remote: SocketAddrV4,
    local: Ipv4Addr,
}

/// Buffers for one `recvmmsg(2)` call on a [`UdpPort`].
pub struct UdpBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    names: Vec<libc::sockaddr_in>,
    control: Vec<[u64; CONTROL_WORDS]>,
    meta: Vec<Meta>,
}

// SAFETY: the raw pointers inside iovec/mmsghdr only ever point into buffers the batch
// owns; they are rebuilt before every receive.
unsafe impl Send for UdpBatch {}

impl UdpBatch {
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        UdpBatch {
            bufs: vec![[0u8; MAX_DATAGRAM]; n],
            iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                n
            ],
            // SAFETY: mmsghdr and sockaddr_in are plain old data; zeroed is valid.
            hdrs: (0..n)
                .map(|_| unsafe { MaybeUninit::<libc::mmsghdr>::zeroed().assume_init() })
                .collect(),
            names: (0..n)
                .map(|_| unsafe { MaybeUninit::<libc::sockaddr_in>::zeroed().assume_init() })
                .collect(),
            control: vec![[0u64; CONTROL_WORDS]; n],
            meta: vec![
                Meta {
                    len: 0,
                    remote: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                    local: Ipv4Addr::UNSPECIFIED,
                };
                n
            ],
        }
    }

    /// The `i`-th received datagram with its source and the local address it arrived on.
    pub fn get_mut(&mut self, i: usize) -> Option<(&mut [u8], SocketAddrV4, Ipv4Addr)> {
        let m = *self.meta.get(i)?;
        let buf = self.bufs.get_mut(i)?.get_mut(..m.len)?;
        Some((buf, m.remote, m.local))
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
        let mut batch = UdpBatch::new(4);
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
