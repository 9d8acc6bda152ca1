//! One `recvmmsg(2)` batch type for every receive thread: the raw GRE and ESP sockets and
//! the UDP ports (L2TP, IKE, NAT-T). Each slot has its buffer, the sender's address and a
//! control buffer for `IP_PKTINFO` (ip(7): the `in_pktinfo` control message
//! names the local address a datagram arrived on) and `SO_TIMESTAMPNS` (socket(7): when the
//! kernel received the datagram, so the thread knows how long it queued; `datapath::aqm`).
//! Raw IP sockets carry the sender in the IP header and have no `IP_PKTINFO`; their slots
//! report `0.0.0.0` as the local address.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;
use std::time::{Duration, SystemTime};

/// Room for an `IP_PKTINFO` and an `SO_TIMESTAMPNS` control message (32 octets each on
/// 64-bit Linux), twice over; kept 8-byte aligned.
pub(crate) const CONTROL_WORDS: usize = 16;

#[derive(Clone, Copy)]
struct Meta {
    len: usize,
    remote: SocketAddrV4,
    local: Ipv4Addr,
    /// When the kernel received the datagram (ns since the Unix epoch), if it said.
    stamp: Option<u64>,
}

const EMPTY: Meta = Meta {
    len: 0,
    remote: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
    local: Ipv4Addr::UNSPECIFIED,
    stamp: None,
};

/// Asks the kernel to timestamp every datagram `fd` receives (socket(7) `SO_TIMESTAMPNS`).
pub(crate) fn enable_timestamps(fd: RawFd) -> io::Result<()> {
    switch_on(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS)
}

/// Sets the boolean socket option `level`/`name` of `fd` to 1 (the control messages this
/// batch reads: `SO_TIMESTAMPNS`, `IP_PKTINFO`).
pub(crate) fn switch_on(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Nanoseconds since the Unix epoch on the clock `SO_TIMESTAMPNS` uses (CLOCK_REALTIME).
fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Buffers for one `recvmmsg(2)` call: `capacity` datagrams of up to `datagram` bytes.
pub struct RecvBatch {
    bufs: Vec<Box<[u8]>>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    names: Vec<libc::sockaddr_in>,
    control: Vec<[u64; CONTROL_WORDS]>,
    meta: Vec<Meta>,
    /// When the last receive returned (ns since the Unix epoch).
    dequeued: u64,
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
            dequeued: 0,
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
        self.dequeued = realtime_ns();
        let got = (rc as usize).min(n);
        for i in 0..got {
            let hdr = &self.hdrs[i];
            let name = &self.names[i];
            let control = control_of(&hdr.msg_hdr);
            self.meta[i] = Meta {
                len: (hdr.msg_len as usize).min(self.bufs[i].len()),
                remote: SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(name.sin_addr.s_addr)),
                    u16::from_be(name.sin_port),
                ),
                local: pktinfo_in(control),
                stamp: timestamp_in(control),
            };
        }
        Ok(got)
    }

    /// How long the `i`-th received datagram waited in the socket's queue (`None` without a
    /// kernel timestamp; zero if the clock stepped back).
    pub fn sojourn(&self, i: usize) -> Option<Duration> {
        let stamp = self.meta.get(i)?.stamp?;
        Some(Duration::from_nanos(self.dequeued.saturating_sub(stamp)))
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

/// The control buffer of a received message: `msg_controllen` octets at `msg_control`.
fn control_of(msg: &libc::msghdr) -> &[u8] {
    if msg.msg_control.is_null() {
        return &[];
    }
    // SAFETY: `msg_control` points at a control buffer of at least `msg_controllen` bytes
    // (set to the buffer's size before recvmmsg; the kernel only lowers it).
    unsafe { std::slice::from_raw_parts(msg.msg_control.cast::<u8>(), msg.msg_controllen) }
}

/// The destination address of a received datagram, from its `IP_PKTINFO` message.
pub(crate) fn pktinfo_dst(msg: &libc::msghdr) -> Ipv4Addr {
    pktinfo_in(control_of(msg))
}

/// When the kernel received a datagram (ns since the Unix epoch), from its
/// `SCM_TIMESTAMPNS` message (socket(7)).
pub(crate) fn timestamp_of(msg: &libc::msghdr) -> Option<u64> {
    timestamp_in(control_of(msg))
}

/// Walks a control buffer (cmsg(3) layout) with bounds checks on every header, rather than
/// trusting `cmsg_len` as the CMSG_* macros do: a truncated header or a huge length ends
/// the walk. Yields each message's level, type and data.
fn control_messages(control: &[u8]) -> impl Iterator<Item = (i32, i32, &[u8])> {
    const HDR: usize = std::mem::size_of::<libc::cmsghdr>();
    const ALIGN: usize = std::mem::size_of::<usize>();
    let int = |b: &[u8], at: usize| -> Option<i32> {
        b.get(at..at + 4)?.try_into().ok().map(i32::from_ne_bytes)
    };
    let mut off = Some(0usize);
    std::iter::from_fn(move || {
        let at = off?;
        let h = control.get(at..)?.get(..HDR)?;
        let len = usize::from_ne_bytes(h.get(..ALIGN)?.try_into().ok()?);
        let (level, kind) = (int(h, ALIGN)?, int(h, ALIGN + 4)?);
        let body = (len >= HDR)
            .then(|| control.get(at + HDR..at.checked_add(len)?))
            .flatten()?;
        // The next header, CMSG_ALIGN(len) further on (or none, past any address).
        off = len
            .checked_add(ALIGN - 1)
            .map(|l| l & !(ALIGN - 1))
            .and_then(|step| at.checked_add(step));
        Some((level, kind, body))
    })
}

/// The address an `IP_PKTINFO` message in `control` names (`0.0.0.0` without one).
fn pktinfo_in(control: &[u8]) -> Ipv4Addr {
    control_messages(control)
        .find(|&(level, kind, _)| level == libc::IPPROTO_IP && kind == libc::IP_PKTINFO)
        // struct in_pktinfo: ipi_ifindex, ipi_spec_dst, ipi_addr (network order).
        .and_then(|(_, _, body)| <[u8; 4]>::try_from(body.get(8..12)?).ok())
        .map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from)
}

/// The time an `SCM_TIMESTAMPNS` message in `control` carries (struct timespec: seconds and
/// nanoseconds, two native 64-bit words), in ns since the Unix epoch.
fn timestamp_in(control: &[u8]) -> Option<u64> {
    let (_, _, body) = control_messages(control)
        .find(|&(level, kind, _)| level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS)?;
    let word = |at: usize| -> Option<i64> {
        body.get(at..at + 8)?
            .try_into()
            .ok()
            .map(i64::from_ne_bytes)
    };
    let (secs, nanos) = (u64::try_from(word(0)?).ok()?, u64::try_from(word(8)?).ok()?);
    (nanos < 1_000_000_000).then(|| secs.saturating_mul(1_000_000_000).saturating_add(nanos))
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

    fn timespec(secs: i64, nanos: i64) -> Vec<u8> {
        [secs.to_ne_bytes(), nanos.to_ne_bytes()].concat()
    }

    #[test]
    fn finds_the_timestamp_next_to_ip_pktinfo_and_refuses_nonsense() {
        let info = [2, 0, 0, 0, 10, 0, 0, 1, 10, 99, 1, 1];
        let mut buf = cmsg(libc::IPPROTO_IP, libc::IP_PKTINFO, &info, None);
        buf.extend(cmsg(
            libc::SOL_SOCKET,
            libc::SCM_TIMESTAMPNS,
            &timespec(1_700_000_000, 123),
            None,
        ));
        assert!(buf.len() <= CONTROL_WORDS * 8);
        assert_eq!(timestamp_in(&buf), Some(1_700_000_000_000_000_123));
        assert_eq!(pktinfo_in(&buf), Ipv4Addr::new(10, 99, 1, 1));
        for (secs, nanos) in [(-1, 0), (0, -1), (1, 1_000_000_000)] {
            let bad = cmsg(
                libc::SOL_SOCKET,
                libc::SCM_TIMESTAMPNS,
                &timespec(secs, nanos),
                None,
            );
            assert_eq!(timestamp_in(&bad), None, "{secs} s {nanos} ns");
        }
        let short = cmsg(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &[0; 12], None);
        assert_eq!(timestamp_in(&short), None);
        let past = cmsg(
            libc::SOL_SOCKET,
            libc::SCM_TIMESTAMPNS,
            &timespec(1, 2),
            Some(4096),
        );
        assert_eq!(timestamp_in(&past), None);
        assert_eq!(timestamp_in(&buf[..buf.len() - 1]), None);
        assert_eq!(timestamp_in(&[]), None);
    }

    #[test]
    fn a_timestamped_socket_reports_how_long_a_datagram_queued() -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let rx = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let tx = std::net::UdpSocket::bind("127.0.0.1:0")?;
        rx.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut batch = RecvBatch::new(4, 64);
        // Without the option: no timestamp.
        tx.send_to(b"one", rx.local_addr()?)?;
        assert_eq!(batch.recv(rx.as_raw_fd())?, 1);
        assert_eq!(batch.sojourn(0), None);
        // The kernel turns receive timestamps on a moment after the first socket asks
        // (a deferred static key); until then it stamps at the read.
        enable_timestamps(rx.as_raw_fd())?;
        std::thread::sleep(Duration::from_millis(100));
        tx.send_to(b"two", rx.local_addr()?)?;
        std::thread::sleep(Duration::from_millis(30));
        tx.send_to(b"three", rx.local_addr()?)?;
        assert_eq!(batch.recv(rx.as_raw_fd())?, 2);
        let (first, second) = (batch.sojourn(0), batch.sojourn(1));
        assert!(
            first.is_some_and(|d| d >= Duration::from_millis(30) && d < Duration::from_secs(2)),
            "{first:?}"
        );
        assert!(
            second.is_some_and(|d| d < Duration::from_millis(30)),
            "{second:?}"
        );
        assert_eq!(batch.sojourn(2), None);
        Ok(())
    }
}
