#![no_main]
//! `io::batch`'s control-message parsers: `IP_PKTINFO` (the local address every
//! L2TP/IKE/NAT-T datagram arrived on) and `SCM_TIMESTAMPNS` (when the kernel received it,
//! for the receive queues' CoDel), over a fuzzed control buffer of up to 128 octets (the size
//! `RecvBatch` gives the kernel), checked against a safe reference walk of the cmsg chain
//! (RFC 3542 §20 / Linux `cmsg(3)` rules). Control buffers obey what the kernel guarantees:
//! every header's `cmsg_len` lies within the buffer, and an `IP_PKTINFO` or
//! `SCM_TIMESTAMPNS` message is exactly `CMSG_LEN` of its struct.
//! With `SLUICE_FUZZ_CMSG_RAW=1` the buffer is used as is (see docs/fuzzing.md: the parser
//! trusts `cmsg_len`, which only the kernel writes).

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_dataplane::fuzzing::{pktinfo_dst, timestamp};

const HDR: usize = 16; // sizeof(struct cmsghdr) on 64-bit Linux
const PKTINFO_LEN: usize = HDR + 12; // CMSG_LEN(sizeof(struct in_pktinfo))
const TIMESTAMP_LEN: usize = HDR + 16; // CMSG_LEN(sizeof(struct timespec))
const MAX: usize = 128;
const CANARY: u8 = 0xEE;

fn align(n: usize) -> usize {
    (n + 7) & !7
}

fn word(b: &[u8], at: usize) -> usize {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    usize::from_ne_bytes(w)
}

fn int(b: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The kernel's promises: each walked header's length within the buffer, IP_PKTINFO whole.
fn sanitize(b: &mut Vec<u8>) {
    let mut off = 0;
    while off + HDR <= b.len() {
        let len = word(b, off);
        let pktinfo = int(b, off + 8) == libc::IPPROTO_IP && int(b, off + 12) == libc::IP_PKTINFO;
        let stamp =
            int(b, off + 8) == libc::SOL_SOCKET && int(b, off + 12) == libc::SCM_TIMESTAMPNS;
        let fixed = if pktinfo {
            PKTINFO_LEN
        } else if stamp {
            TIMESTAMP_LEN
        } else {
            len.clamp(HDR, b.len() - off)
        };
        if off + fixed > b.len() {
            b.truncate(off);
            return;
        }
        b[off..off + 8].copy_from_slice(&fixed.to_ne_bytes());
        off += align(fixed);
    }
}

/// A safe walk with the `libc` crate's CMSG_FIRSTHDR / CMSG_NXTHDR semantics over `len`
/// octets, except that nothing past `len` is read: the data of the first message of `level`
/// and `kind`, `None` if there is none or its data (`data` octets) would lie past `len`.
fn reference(b: &[u8], len: usize, level: i32, kind: i32, data: usize) -> Option<&[u8]> {
    let mut off = 0;
    if len < HDR {
        return None;
    }
    loop {
        if int(b, off + 8) == level && int(b, off + 12) == kind {
            let at = off + HDR;
            return (at + data <= len).then(|| &b[at..at + data]);
        }
        let clen = word(b, off);
        if clen < HDR {
            return None;
        }
        // CMSG_ALIGN as `libc` computes it (wrapping in a build without overflow checks).
        let step = clen.wrapping_add(7) & !7;
        assert!(
            step != 0,
            "cmsg_len {clen:#x}: CMSG_NXTHDR returns the same header forever"
        );
        let next = off.checked_add(step)?;
        if next + HDR > len {
            return None;
        }
        off = next;
    }
}

/// `IP_PKTINFO`'s `ipi_addr` (the third 4-octet field of in_pktinfo), as the reference reads it.
fn reference_pktinfo(b: &[u8], len: usize) -> Ipv4Addr {
    reference(b, len, libc::IPPROTO_IP, libc::IP_PKTINFO, 12)
        .map_or(Ipv4Addr::UNSPECIFIED, |d| Ipv4Addr::new(d[8], d[9], d[10], d[11]))
}

/// `SCM_TIMESTAMPNS`'s struct timespec in ns, as the reference reads it: none if negative or
/// if the nanoseconds are not below one second.
fn reference_timestamp(b: &[u8], len: usize) -> Option<u64> {
    let d = reference(b, len, libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, 16)?;
    let secs = i64::from_ne_bytes(d[..8].try_into().ok()?);
    let nanos = i64::from_ne_bytes(d[8..16].try_into().ok()?);
    if secs < 0 || !(0..1_000_000_000).contains(&nanos) {
        return None;
    }
    Some((secs as u64).saturating_mul(1_000_000_000).saturating_add(nanos as u64))
}

fn raw() -> bool {
    static RAW: OnceLock<bool> = OnceLock::new();
    *RAW.get_or_init(|| std::env::var_os("SLUICE_FUZZ_CMSG_RAW").is_some_and(|v| v == "1"))
}

fuzz_target!(|data: &[u8]| {
    let mut ctl = data[..data.len().min(MAX)].to_vec();
    if !raw() {
        sanitize(&mut ctl);
    }
    let len = ctl.len();
    // The buffer as the kernel leaves it: `len` octets, then untouched (canary) space.
    let mut words = [0u64; MAX / 8 + 8];
    let mut bytes = vec![CANARY; MAX + 64];
    bytes[..len].copy_from_slice(&ctl);
    for (w, c) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        *w = u64::from_ne_bytes(a);
    }
    // The reference first: it stops on inputs the parser would loop on.
    let expect = reference_pktinfo(&bytes, len);
    let got = pktinfo_dst(&words, len);
    assert_eq!(got, expect, "control buffer {ctl:02x?}");
    let expect = reference_timestamp(&bytes, len);
    assert_eq!(timestamp(&words, len), expect, "control buffer {ctl:02x?}");
});
