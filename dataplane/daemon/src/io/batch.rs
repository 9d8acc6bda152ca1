//! One `recvmmsg(2)` batch type for every receive thread: the raw GRE and ESP sockets and
//! the UDP ports (L2TP, IKE, NAT-T). Each slot has its buffer, the sender's address and a
//! control buffer for `IP_PKTINFO` (ip(7): the `in_pktinfo` control message
//! names the local address a datagram arrived on). Raw IP sockets carry the sender in the
//! IP header and have no `IP_PKTINFO`; their slots report `0.0.0.0` as the local address.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;

/// Room for one `IP_PKTINFO` control message (kept 8-byte aligned).
pub(crate) const CONTROL_WORDS: usize = 8;

#[derive(Clone, Copy)]
struct Meta {
    len: usize,
    remote: SocketAddrV4,
    local: Ipv4Addr,
}

const EMPTY: Meta = Meta {
    len: 0,
    remote: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
    local: Ipv4Addr::UNSPECIFIED,
};

/// Buffers for one `recvmmsg(2)` call: `capacity` datagrams of up to `datagram` bytes.
pub struct RecvBatch {
    bufs: Vec<Box<[u8]>>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    names: Vec<libc::sockaddr_in>,
    control: Vec<[u64; CONTROL_WORDS]>,
    meta: Vec<Meta>,
}

// SAFETY: the raw pointers inside iovec/mmsghdr only ever point into buffers the batch
// owns; they are rebuilt before every receive.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Room for `capacity` (at least 1) datagrams of up to `datagram` bytes each (longer
    /// ones are truncated by the kernel).
    pub fn new(capacity: usize, datagram: usize) -> Self {
        let n = capacity.max(1);
        RecvBatch {
            bufs: (0..n)
                .map(|_| vec![0u8; datagram].into_boxed_slice())
                .collect(),
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
            meta: vec![EMPTY; n],
        }
    }

    /// How many datagrams one receive can return.
    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }

    /// One `recvmmsg(2)` on `fd` (returning once at least one datagram is there, or at the
    /// socket's read timeout with `Ok(0)`). Returns how many slots were filled.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.bufs.len();
        for i in 0..n {
            self.iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: self.bufs[i].len(),
            };
            // SAFETY: mmsghdr is plain old data; zeroed is a valid value.
            let mut hdr: libc::mmsghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            hdr.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_in).cast();
            hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_hdr.msg_iov = &mut self.iov[i];
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = self.control[i].as_mut_ptr().cast();
            hdr.msg_hdr.msg_controllen = CONTROL_WORDS * 8;
            self.hdrs[i] = hdr;
        }
        // SAFETY: every pointer in hdrs points into buffers the batch owns, sized as declared.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            // A timeout or a signal is "nothing received".
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let got = (rc as usize).min(n);
        for i in 0..got {
            let hdr = &self.hdrs[i];
            let name = &self.names[i];
            self.meta[i] = Meta {
                len: (hdr.msg_len as usize).min(self.bufs[i].len()),
                remote: SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(name.sin_addr.s_addr)),
                    u16::from_be(name.sin_port),
                ),
                local: pktinfo_dst(&hdr.msg_hdr),
            };
        }
        Ok(got)
    }

    /// The `i`-th received datagram (mutable: decryption happens in place).
    pub fn payload_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        self.get_mut(i).map(|(buf, _, _)| buf)
    }

    /// The `i`-th received datagram with its source and the local address it arrived on.
    pub fn get_mut(&mut self, i: usize) -> Option<(&mut [u8], SocketAddrV4, Ipv4Addr)> {
        let m = *self.meta.get(i)?;
        let buf = self.bufs.get_mut(i)?.get_mut(..m.len)?;
        Some((buf, m.remote, m.local))
    }
}

/// Writes an `IP_PKTINFO` control message naming `src` as the source address of a send
/// (ip(7): `ipi_spec_dst`) into `control`; returns the control length to declare.
pub(crate) fn pktinfo_control(control: &mut [u64; CONTROL_WORDS], src: Ipv4Addr) -> usize {
    const HDR: usize = size_of::<libc::cmsghdr>();
    const INFO: usize = size_of::<libc::in_pktinfo>();
    // cmsg(3): the header, then the data, each padded to the alignment of a `size_t`.
    let align = |n: usize| (n + size_of::<usize>() - 1) & !(size_of::<usize>() - 1);
    let info = libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(src).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    };
    let hdr = libc::cmsghdr {
        cmsg_len: HDR + INFO,
        cmsg_level: libc::IPPROTO_IP,
        cmsg_type: libc::IP_PKTINFO,
    };
    let space = align(HDR) + align(INFO);
    debug_assert!(space <= CONTROL_WORDS * 8);
    // SAFETY: the buffer is CONTROL_WORDS * 8 = 64 octets, 8-byte aligned, and holds
    // `space` (32) octets; both structs are plain old data written unaligned-safe.
    unsafe {
        let base = control.as_mut_ptr().cast::<u8>();
        std::ptr::write_unaligned(base.cast::<libc::cmsghdr>(), hdr);
        std::ptr::write_unaligned(base.add(align(HDR)).cast::<libc::in_pktinfo>(), info);
    }
    space
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
    fn the_send_side_control_message_is_what_the_cmsg_macros_lay_out() {
        let src = Ipv4Addr::new(10, 99, 1, 7);
        let mut ours = [0u64; CONTROL_WORDS];
        let len = pktinfo_control(&mut ours, src);
        let mut theirs = [0u64; CONTROL_WORDS];
        // SAFETY: msghdr is plain old data; the macros only compute inside `theirs`.
        let want = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_control = theirs.as_mut_ptr().cast();
            msg.msg_controllen = CONTROL_WORDS * 8;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::IPPROTO_IP;
            (*c).cmsg_type = libc::IP_PKTINFO;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as usize;
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(src).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
            libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as usize
        };
        assert_eq!(len, want);
        assert_eq!(ours, theirs);
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
