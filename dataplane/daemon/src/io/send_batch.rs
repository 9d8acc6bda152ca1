//! Datagrams gathered for one `sendmmsg(2)` on a raw socket: the packets one TUN read split
//! into (up to 128 for a TCP super-segment) leave in one system call instead of one each.
//!
//! The batch belongs to the thread sending; a loop opens a [`SendScope`] around the packets of
//! one read, [`send`] inside it only queues, and the scope sends everything when it ends.
//! Outside a scope [`send`] sends at once.

use std::cell::RefCell;
use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};

use super::rawsock::RawSocket;
use super::tun::BATCH;

/// Queued datagrams and their destinations.
struct SendBatch {
    bufs: Vec<Vec<u8>>,
    dsts: Vec<libc::sockaddr_in>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    len: usize,
}

impl SendBatch {
    fn new() -> Self {
        SendBatch {
            bufs: (0..BATCH).map(|_| Vec::with_capacity(2048)).collect(),
            // SAFETY: sockaddr_in and mmsghdr are plain old data; zeroed is a valid value.
            dsts: (0..BATCH)
                .map(|_| unsafe { MaybeUninit::<libc::sockaddr_in>::zeroed().assume_init() })
                .collect(),
            iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                };
                BATCH
            ],
            hdrs: (0..BATCH)
                .map(|_| unsafe { MaybeUninit::<libc::mmsghdr>::zeroed().assume_init() })
                .collect(),
            len: 0,
        }
    }

    fn push(&mut self, payload: &[u8], dst: Ipv4Addr) {
        let (Some(buf), Some(to)) = (self.bufs.get_mut(self.len), self.dsts.get_mut(self.len))
        else {
            return;
        };
        buf.clear();
        buf.extend_from_slice(payload);
        to.sin_family = libc::AF_INET as libc::sa_family_t;
        to.sin_port = 0;
        to.sin_addr.s_addr = u32::from(dst).to_be();
        self.len += 1;
    }

    /// Sends everything queued; returns how many datagrams could not be sent and the first
    /// error.
    fn flush(&mut self, fd: RawFd) -> (usize, Option<io::Error>) {
        let n = std::mem::take(&mut self.len);
        for i in 0..n {
            let (Some(buf), Some(iov), Some(hdr), Some(dst)) = (
                self.bufs.get_mut(i),
                self.iov.get_mut(i),
                self.hdrs.get_mut(i),
                self.dsts.get_mut(i),
            ) else {
                return (n, None);
            };
            *iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: mmsghdr is plain old data; zeroed is a valid value.
            *hdr = unsafe { MaybeUninit::zeroed().assume_init() };
            hdr.msg_hdr.msg_name = (dst as *mut libc::sockaddr_in).cast();
            hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
        }
        // `sendmmsg` stops at the first datagram it cannot send: count it, skip it, go on.
        let (mut at, mut failed, mut first) = (0usize, 0usize, None);
        while at < n {
            let Some(rest) = self.hdrs.get_mut(at..n) else {
                break;
            };
            // SAFETY: every pointer in `rest` points into buffers this batch owns, sized as
            // declared, and they stay alive and unmoved for the call.
            let rc = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
            if rc > 0 {
                at += rc as usize;
                continue;
            }
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                first.get_or_insert(e);
            }
            failed += 1;
            at += 1;
        }
        (failed, first)
    }
}

/// Errors of a scope's sends.
#[derive(Debug, Default)]
pub struct SendFailures {
    /// Datagrams that could not be sent.
    pub count: usize,
    /// The first error.
    pub first: Option<io::Error>,
}

thread_local! {
    /// This thread's queued datagrams, and the socket of its open [`SendScope`], if any.
    static PENDING: RefCell<(SendBatch, Option<RawFd>)> = RefCell::new((SendBatch::new(), None));
}

/// Sends one datagram on `sock`, or queues it while this thread has a [`SendScope`] open on
/// that socket (sending the batch when it is full). Failures of a queued send are reported by the
/// scope; here they are those of this send or of the batch it completed.
pub fn send(sock: &RawSocket, payload: &[u8], dst: Ipv4Addr) -> io::Result<()> {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let (batch, scope) = &mut *p;
        let fd = sock.as_raw_fd();
        if *scope != Some(fd) {
            return sock.send_to(payload, dst).map(drop);
        }
        batch.push(payload, dst);
        if batch.len >= BATCH {
            let (_, err) = batch.flush(fd);
            return err.map_or(Ok(()), Err);
        }
        Ok(())
    })
}

/// Gathers this thread's sends on one socket until it ends, then sends them in one
/// `sendmmsg(2)` (or a few, when one datagram fails).
pub struct SendScope<'a> {
    sock: Option<&'a RawSocket>,
}

impl<'a> SendScope<'a> {
    /// Opens the scope.
    pub fn open(sock: &'a RawSocket) -> Self {
        PENDING.with(|p| p.borrow_mut().1 = Some(sock.as_raw_fd()));
        SendScope { sock: Some(sock) }
    }

    /// Closes the scope and sends what is queued.
    pub fn finish(mut self) -> SendFailures {
        self.close()
    }

    fn close(&mut self) -> SendFailures {
        let Some(sock) = self.sock.take() else {
            return SendFailures::default();
        };
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            p.1 = None;
            let (count, first) = p.0.flush(sock.as_raw_fd());
            SendFailures { count, first }
        })
    }
}

impl Drop for SendScope<'_> {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
