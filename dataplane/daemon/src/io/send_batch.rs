//! Datagrams gathered for `sendmmsg(2)`: the packets one TUN read split into (up to 128 for
//! a TCP super-segment) leave in a few system calls per socket ([`FLUSH_AT`] datagrams
//! each) instead of one each, on every socket of the data path: raw GRE, raw ESP, the NAT-T
//! port and the L2TP port.
//!
//! The batches belong to the thread sending. A loop opens a [`SendScope`] around the
//! packets of one read; [`send`] and [`send_built`] inside it only queue (in one lane per
//! socket, in order), and the scope sends every lane when it ends. Outside a scope they send
//! at once. A datagram is built straight into its slot ([`send_built`]: ESP seals in place
//! there), so the path allocates nothing per packet.

use std::cell::RefCell;
use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};

use super::batch::{CONTROL_WORDS, pktinfo_control};

/// Datagrams a lane holds before it sends them. Another thread may send for the same SA or
/// call in the meantime (an LCP Echo-Reply; a CCP Reset-Ack waits for the flushed packet and
/// goes out in its lane, `datapath::encapsulate_ip`); its packet then overtakes at
/// most 31 queued ones, inside the 32-packet anti-replay window an ESP receiver must support
/// (RFC 4303 §3.4.3) and Linux and strongSwan use by default. The system call is still
/// shared by 32 packets.
const FLUSH_AT: usize = 32;

/// Sockets one scope batches at a time (GRE, raw ESP, NAT-T, L2TP); a datagram for another
/// socket sends the oldest lane first.
const LANES: usize = 4;

/// Where a datagram goes: the destination (port 0 on a raw socket) and, on a UDP socket, the
/// local address to send from (`IP_PKTINFO`, ip(7)), so replies leave from the address the
/// peer talked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dest {
    /// The peer.
    pub to: SocketAddrV4,
    /// The source address; `None` (or unspecified) lets the routing table choose.
    pub from: Option<Ipv4Addr>,
}

impl From<Ipv4Addr> for Dest {
    /// A raw-socket destination (the kernel adds the IPv4 header).
    fn from(to: Ipv4Addr) -> Self {
        Dest {
            to: SocketAddrV4::new(to, 0),
            from: None,
        }
    }
}

/// A datagram that was built but could not be sent, or could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SendError<E> {
    /// The builder refused (nothing was queued or sent).
    #[error("the datagram could not be built")]
    Build(E),
    /// The kernel refused the send.
    #[error("send failed: {0}")]
    Io(#[from] io::Error),
}

/// One queued datagram.
struct Slot {
    buf: Vec<u8>,
    to: libc::sockaddr_in,
    control: [u64; CONTROL_WORDS],
    control_len: usize,
    /// The drop reason counted when it cannot be sent.
    reason: &'static str,
}

impl Slot {
    fn new() -> Self {
        Slot {
            buf: Vec::with_capacity(2048),
            // SAFETY: sockaddr_in is plain old data; zeroed is a valid value.
            to: unsafe { MaybeUninit::zeroed().assume_init() },
            control: [0; CONTROL_WORDS],
            control_len: 0,
            reason: "",
        }
    }

    fn address(&mut self, dest: Dest) {
        self.to.sin_family = libc::AF_INET as libc::sa_family_t;
        self.to.sin_port = dest.to.port().to_be();
        self.to.sin_addr.s_addr = u32::from(*dest.to.ip()).to_be();
        self.control_len = match dest.from.filter(|a| !a.is_unspecified()) {
            Some(src) => pktinfo_control(&mut self.control, src),
            None => 0,
        };
    }
}

/// The queued datagrams of one socket, in order; slots are allocated on first use and kept.
struct Lane {
    fd: RawFd,
    slots: Vec<Slot>,
    len: usize,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

/// Datagrams of a flush that could not be sent, by drop reason.
#[derive(Debug, Default)]
pub struct SendFailures {
    /// (drop reason, datagrams) for each reason that failed.
    pub counts: Vec<(&'static str, u64)>,
    /// The first error.
    pub first: Option<io::Error>,
}

impl SendFailures {
    fn add(&mut self, reason: &'static str, err: Option<io::Error>) {
        match self.counts.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((reason, 1)),
        }
        if self.first.is_none() {
            self.first = err;
        }
    }

    /// Whether every datagram went out.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

impl Lane {
    fn new(fd: RawFd) -> Self {
        Lane {
            fd,
            slots: Vec::new(),
            len: 0,
            iov: Vec::new(),
            hdrs: Vec::new(),
        }
    }

    /// Builds the next datagram in its slot; nothing is queued when `build` fails.
    fn push<E>(
        &mut self,
        dest: Dest,
        reason: &'static str,
        build: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.len == self.slots.len() {
            self.slots.push(Slot::new());
        }
        let Some(slot) = self.slots.get_mut(self.len) else {
            return Ok(());
        };
        slot.buf.clear();
        build(&mut slot.buf)?;
        slot.address(dest);
        slot.reason = reason;
        self.len += 1;
        Ok(())
    }

    /// Sends everything queued; a datagram the kernel refuses is counted and skipped.
    fn flush(&mut self, failures: &mut SendFailures) {
        let n = std::mem::take(&mut self.len);
        self.iov.resize(
            n.max(self.iov.len()),
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
        );
        while self.hdrs.len() < n {
            // SAFETY: mmsghdr is plain old data; zeroed is a valid value.
            self.hdrs
                .push(unsafe { MaybeUninit::zeroed().assume_init() });
        }
        for i in 0..n {
            let (Some(slot), Some(iov), Some(hdr)) = (
                self.slots.get_mut(i),
                self.iov.get_mut(i),
                self.hdrs.get_mut(i),
            ) else {
                return;
            };
            *iov = libc::iovec {
                iov_base: slot.buf.as_mut_ptr().cast(),
                iov_len: slot.buf.len(),
            };
            // SAFETY: mmsghdr is plain old data; zeroed is a valid value.
            *hdr = unsafe { MaybeUninit::zeroed().assume_init() };
            hdr.msg_hdr.msg_name = (&mut slot.to as *mut libc::sockaddr_in).cast();
            hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
            if slot.control_len > 0 {
                hdr.msg_hdr.msg_control = slot.control.as_mut_ptr().cast();
                hdr.msg_hdr.msg_controllen = slot.control_len;
            }
        }
        // `sendmmsg` stops at the first datagram it cannot send: count it, skip it, go on.
        let mut at = 0usize;
        while at < n {
            let Some(rest) = self.hdrs.get_mut(at..n) else {
                break;
            };
            // SAFETY: every pointer in `rest` points into slots this lane owns, sized as
            // declared, and they stay alive and unmoved for the call.
            let rc = unsafe { libc::sendmmsg(self.fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
            if rc > 0 {
                at += rc as usize;
                continue;
            }
            let err = (rc < 0).then(io::Error::last_os_error);
            if err
                .as_ref()
                .is_some_and(|e| e.kind() == io::ErrorKind::Interrupted)
            {
                continue;
            }
            let reason = self.slots.get(at).map_or("send_error", |s| s.reason);
            failures.add(reason, err);
            at += 1;
        }
    }
}

/// A thread's lanes, and how many scopes are open on it.
struct Pending {
    scopes: usize,
    lanes: Vec<Lane>,
    /// Datagrams of lanes that went out before the scope ended (full, or evicted) and failed:
    /// the scope reports them with its own.
    failed: SendFailures,
    /// The one-datagram lane of sends outside a scope (its fd is set per send).
    single: Lane,
}

/// The lane of `fd` (a new one, or the oldest sent and taken over when all are in use).
fn lane_for<'a>(
    lanes: &'a mut Vec<Lane>,
    failed: &mut SendFailures,
    fd: RawFd,
) -> Option<&'a mut Lane> {
    let at = match lanes.iter().position(|l| l.fd == fd) {
        Some(at) => at,
        None if lanes.len() < LANES => {
            lanes.push(Lane::new(fd));
            lanes.len() - 1
        }
        None => {
            // A fifth socket: the oldest lane goes out now and takes the new one.
            let mut oldest = lanes.remove(0);
            oldest.flush(failed);
            oldest.fd = fd;
            lanes.push(oldest);
            lanes.len() - 1
        }
    };
    lanes.get_mut(at)
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending {
        scopes: 0,
        lanes: Vec::new(),
        failed: SendFailures::default(),
        single: Lane::new(-1),
    });
}

/// Sends one datagram, or queues it while this thread has a [`SendScope`] open (sending the
/// socket's lane when it is full). A queued datagram that cannot be sent is reported by the
/// scope under `reason`; an error here is that of a send outside a scope.
pub fn send(
    sock: &impl AsRawFd,
    payload: &[u8],
    dest: impl Into<Dest>,
    reason: &'static str,
) -> io::Result<()> {
    match send_built(sock, dest.into(), reason, |buf| {
        buf.extend_from_slice(payload);
        Ok::<(), std::convert::Infallible>(())
    }) {
        Ok(()) => Ok(()),
        Err(SendError::Io(e)) => Err(e),
        Err(SendError::Build(never)) => match never {},
    }
}

/// Like [`send`], with the datagram built by `build` straight into its buffer (given empty,
/// with room for 2 KiB).
pub fn send_built<E>(
    sock: &impl AsRawFd,
    dest: Dest,
    reason: &'static str,
    build: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), SendError<E>> {
    let fd = sock.as_raw_fd();
    PENDING.with(|p| {
        let Ok(mut p) = p.try_borrow_mut() else {
            // Called from inside a builder: send on a lane of its own.
            return send_alone(&mut Lane::new(fd), dest, reason, build);
        };
        if p.scopes == 0 {
            let single = &mut p.single;
            single.fd = fd;
            return send_alone(single, dest, reason, build);
        }
        let Pending { lanes, failed, .. } = &mut *p;
        let Some(lane) = lane_for(lanes, failed, fd) else {
            return Ok(());
        };
        lane.push(dest, reason, build).map_err(SendError::Build)?;
        if lane.len >= FLUSH_AT {
            lane.flush(failed);
        }
        Ok(())
    })
}

fn send_alone<E>(
    lane: &mut Lane,
    dest: Dest,
    reason: &'static str,
    build: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), SendError<E>> {
    lane.push(dest, reason, build).map_err(SendError::Build)?;
    let mut failures = SendFailures::default();
    lane.flush(&mut failures);
    match (failures.is_empty(), failures.first) {
        (true, _) => Ok(()),
        (false, Some(e)) => Err(SendError::Io(e)),
        (false, None) => Err(SendError::Io(io::Error::other("datagram not sent"))),
    }
}

/// Gathers this thread's sends until it ends, then sends each socket's datagrams in one
/// `sendmmsg(2)` (or a few, when one datagram fails). Scopes nest: the outermost sends.
pub struct SendScope {
    open: bool,
}

impl SendScope {
    /// Opens the scope.
    pub fn open() -> Self {
        PENDING.with(|p| p.borrow_mut().scopes += 1);
        SendScope { open: true }
    }

    /// Closes the scope and sends what is queued (when it is the outermost).
    pub fn finish(mut self) -> SendFailures {
        self.close()
    }

    fn close(&mut self) -> SendFailures {
        if !std::mem::take(&mut self.open) {
            return SendFailures::default();
        }
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            let p = &mut *p;
            p.scopes = p.scopes.saturating_sub(1);
            if p.scopes > 0 {
                return SendFailures::default();
            }
            let mut failures = std::mem::take(&mut p.failed);
            for lane in &mut p.lanes {
                lane.flush(&mut failures);
            }
            failures
        })
    }
}

impl Drop for SendScope {
    fn drop(&mut self) {
        // Unwinding or an early return: the queued datagrams still go out.
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, UdpSocket};
    use std::time::Duration;

    use super::*;
    use crate::io::udpsock::UdpPort;

    /// Datagrams waiting at `peer` now: (number in each, source).
    fn drain(peer: &UdpSocket) -> Vec<(u16, SocketAddr)> {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = peer.recv_from(&mut buf) {
            assert_eq!(n, 2);
            got.push((u16::from_be_bytes([buf[0], buf[1]]), from));
        }
        got
    }

    #[test]
    fn a_scope_holds_at_most_a_replay_window_and_keeps_order_and_source() -> io::Result<()> {
        let port = UdpPort::open(None, 0, Duration::from_millis(100))?;
        let bound = port
            .local_addr()
            .ok_or_else(|| io::Error::other("unbound"))?;
        let peer = UdpSocket::bind("127.0.0.1:0")?;
        peer.set_read_timeout(Some(Duration::from_millis(50)))?;
        let SocketAddr::V4(to) = peer.local_addr()? else {
            return Err(io::Error::other("v6"));
        };
        let source = Ipv4Addr::new(127, 0, 0, 3);
        let from = Some(source);
        let scope = SendScope::open();
        let inner = SendScope::open();
        for n in 0..40u16 {
            port.send_from(&n.to_be_bytes(), from, to, "test")?;
        }
        drop(inner);
        // The lane went out once it held FLUSH_AT datagrams; the nested scope sent nothing.
        let first = drain(&peer);
        assert_eq!(first.len(), FLUSH_AT);
        let built = send_built(&port, Dest { to, from }, "test", |b| {
            b.extend_from_slice(&40u16.to_be_bytes());
            Ok::<(), ()>(())
        });
        assert!(built.is_ok());
        let refused = send_built(&port, Dest { to, from }, "test", |_| Err("no"));
        assert!(matches!(refused, Err(SendError::Build("no"))));
        assert!(scope.finish().is_empty());
        let mut got = first;
        got.extend(drain(&peer));
        let want: Vec<_> = (0..41u16)
            .map(|n| (n, SocketAddr::new(source.into(), bound.port())))
            .collect();
        assert_eq!(got, want);
        // Outside a scope a send leaves at once.
        port.send_from(&7u16.to_be_bytes(), None, to, "test")?;
        assert_eq!(drain(&peer).len(), 1);
        Ok(())
    }

    #[test]
    fn a_scope_reports_every_datagram_the_kernel_refused_under_its_reason() -> io::Result<()> {
        let port = UdpPort::open(None, 0, Duration::from_millis(100))?;
        let peer = UdpSocket::bind("127.0.0.1:0")?;
        peer.set_read_timeout(Some(Duration::from_millis(50)))?;
        let SocketAddr::V4(to) = peer.local_addr()? else {
            return Err(io::Error::other("v6"));
        };
        // Broadcast without SO_BROADCAST: refused by the kernel (EACCES).
        let refused = SocketAddrV4::new(Ipv4Addr::BROADCAST, 9);
        let scope = SendScope::open();
        for n in 0..40u16 {
            let (dest, reason) = if n % 10 == 3 {
                (refused, "refused")
            } else {
                (to, "test")
            };
            // Queued: no error here, even for the lane that went out at 32 with a refusal.
            port.send_from(&n.to_be_bytes(), None, dest, reason)?;
        }
        let failures = scope.finish();
        assert_eq!(failures.counts, vec![("refused", 4)]);
        assert!(failures.first.is_some());
        let got: Vec<u16> = drain(&peer).into_iter().map(|(n, _)| n).collect();
        let want: Vec<u16> = (0..40).filter(|n| n % 10 != 3).collect();
        assert_eq!(got, want);
        // Outside a scope the refusal is the caller's.
        assert!(port.send_from(b"x", None, refused, "refused").is_err());
        Ok(())
    }
}
