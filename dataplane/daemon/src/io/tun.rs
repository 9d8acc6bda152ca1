//! The TUN device with the kernel's virtio-net offloads (`IFF_VNET_HDR` with TSO/USO and
//! checksum offload, tun(4)), the way wireguard-go uses it:
//!
//! - **Reads** return a TCP or UDP super-segment of up to 64 KiB as one packet; `tun-rs`
//!   splits it into MTU-sized packets with their checksums. One system call brings in up to
//!   [`BATCH`] packets, which then leave through one `sendmmsg(2)` (`io::send_batch`).
//! - **Writes** go out per receive batch: `tun-rs`'s GRO table coalesces the segments of a TCP
//!   flow into one write, so the kernel's TCP stack sees large segments too.
//!
//! Without offloads (a kernel without `IFF_VNET_HDR`, or `--tun-offload=false`) the same types
//! read and write one packet per system call.
//!
//! Packets for the device are gathered per receive batch by the thread handling it: a receive
//! loop opens a [`WriteScope`] around a batch, and [`write`] inside it only queues; the scope
//! writes everything when it ends. Outside a scope [`write`] writes at once.

use std::cell::RefCell;
use std::io;

use tun_rs::{GROTable, IDEAL_BATCH_SIZE, SyncDevice, VIRTIO_NET_HDR_LEN};

/// Most packets one read returns (and one write batch holds).
pub const BATCH: usize = IDEAL_BATCH_SIZE;
/// Largest read: a super-segment before splitting.
const MAX_PACKET: usize = 65_535;

/// The TUN device.
pub struct Tun {
    dev: SyncDevice,
    /// `IFF_VNET_HDR` is on: every read and write carries a virtio-net header.
    offload: bool,
}

impl Tun {
    /// Wraps an open device; offloads are on when the device was built with them.
    pub fn new(dev: SyncDevice) -> Self {
        let offload = dev.tcp_gso();
        Tun { dev, offload }
    }

    /// The room a write needs in front of each packet.
    fn headroom(&self) -> usize {
        if self.offload { VIRTIO_NET_HDR_LEN } else { 0 }
    }
}

/// Buffers for reading: one super-segment, split into at most [`BATCH`] packets.
pub struct TunReader {
    original: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    count: usize,
    /// The last read was a plain one (no offload): its one packet is in `original`.
    plain: bool,
}

impl TunReader {
    /// Buffers for packets of up to `mtu` octets.
    pub fn new(mtu: u16) -> Self {
        let packet = usize::from(mtu).max(1500) + 64;
        TunReader {
            original: vec![0; VIRTIO_NET_HDR_LEN + MAX_PACKET],
            bufs: vec![vec![0; packet]; BATCH],
            sizes: vec![0; BATCH],
            count: 0,
            plain: false,
        }
    }

    /// Blocks for the next read and returns how many packets it held.
    pub fn read(&mut self, tun: &Tun) -> io::Result<usize> {
        self.count = 0;
        self.plain = !tun.offload;
        let n = if tun.offload {
            tun.dev
                .recv_multiple(&mut self.original, &mut self.bufs, &mut self.sizes, 0)?
        } else {
            let n = tun.dev.recv(&mut self.original)?;
            if let Some(size) = self.sizes.first_mut() {
                *size = n;
            }
            1
        };
        self.count = n.min(BATCH);
        Ok(self.count)
    }

    /// Packet `i` of the last read.
    pub fn packet(&self, i: usize) -> Option<&[u8]> {
        if i >= self.count {
            return None;
        }
        let size = *self.sizes.get(i)?;
        if self.plain {
            self.original.get(..size)
        } else {
            self.bufs.get(i)?.get(..size)
        }
    }
}

/// Packets queued for one write batch.
struct WriteBatch {
    gro: GROTable,
    bufs: Vec<Vec<u8>>,
    len: usize,
}

impl WriteBatch {
    fn new() -> Self {
        WriteBatch {
            gro: GROTable::default(),
            bufs: (0..BATCH).map(|_| Vec::with_capacity(2048)).collect(),
            len: 0,
        }
    }

    fn push(&mut self, headroom: usize, ip: &[u8]) {
        if let Some(buf) = self.bufs.get_mut(self.len) {
            buf.clear();
            buf.resize(headroom, 0);
            buf.extend_from_slice(ip);
            self.len += 1;
        }
    }

    fn flush(&mut self, tun: &Tun) -> io::Result<()> {
        let n = std::mem::take(&mut self.len);
        let Some(bufs) = self.bufs.get_mut(..n) else {
            return Ok(());
        };
        if n == 0 {
            return Ok(());
        }
        tun.dev
            .send_multiple(&mut self.gro, bufs, tun.headroom())
            .map(drop)
    }
}

thread_local! {
    /// This thread's queued writes, and whether a [`WriteScope`] is open.
    static PENDING: RefCell<(WriteBatch, bool)> = RefCell::new((WriteBatch::new(), false));
}

/// Writes one IP packet to the device, or queues it while this thread has a [`WriteScope`]
/// open. An error is that of this write or of the batch it completed.
pub fn write(tun: &Tun, ip: &[u8]) -> io::Result<()> {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let (batch, scoped) = &mut *p;
        batch.push(tun.headroom(), ip);
        if !*scoped || batch.len >= BATCH {
            batch.flush(tun)
        } else {
            Ok(())
        }
    })
}

/// Gathers this thread's writes to `tun` until it ends, then writes them together.
pub struct WriteScope<'a> {
    tun: Option<&'a Tun>,
}

impl<'a> WriteScope<'a> {
    /// Opens the scope (a no-op without a device).
    pub fn open(tun: Option<&'a Tun>) -> Self {
        if tun.is_some() {
            PENDING.with(|p| p.borrow_mut().1 = true);
        }
        WriteScope { tun }
    }

    /// Closes the scope and writes what is queued.
    pub fn finish(mut self) -> io::Result<()> {
        self.close()
    }

    fn close(&mut self) -> io::Result<()> {
        let Some(tun) = self.tun.take() else {
            return Ok(());
        };
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            p.1 = false;
            p.0.flush(tun)
        })
    }
}

impl Drop for WriteScope<'_> {
    fn drop(&mut self) {
        // Unwinding or an early return: the queued packets still go out.
        let _ = self.close();
    }
}
