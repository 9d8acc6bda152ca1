#![no_main]
//! `udpsock`'s `IP_PKTINFO` parser (the local address every L2TP/IKE/NAT-T datagram arrived
//! on) over a fuzzed control buffer of up to 64 octets (the size `UdpBatch` gives the kernel),
//! checked against a safe reference walk of the cmsg chain (RFC 3542 §20 / Linux `cmsg(3)`
//! rules). Control buffers obey what the kernel guarantees: every header's `cmsg_len` lies
//! within the buffer, and an `IP_PKTINFO` message is exactly `CMSG_LEN(sizeof in_pktinfo)`.
//! With `SLUICE_FUZZ_CMSG_RAW=1` the buffer is used as is (see docs/fuzzing.md: the parser
//! trusts `cmsg_len`, which only the kernel writes).

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_dataplane::fuzzing::pktinfo_dst;

const HDR: usize = 16; // sizeof(struct cmsghdr) on 64-bit Linux
const PKTINFO_LEN: usize = HDR + 12; // CMSG_LEN(sizeof(struct in_pktinfo))
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
        let fixed = if pktinfo {
            PKTINFO_LEN
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
/// octets, except that nothing past `len` is read: an `IP_PKTINFO` header whose data would
/// lie past it reports no address.
fn reference(b: &[u8], len: usize) -> Ipv4Addr {
    let mut off = 0;
    if len < HDR {
        return Ipv4Addr::UNSPECIFIED;
    }
    loop {
        if int(b, off + 8) == libc::IPPROTO_IP && int(b, off + 12) == libc::IP_PKTINFO {
            // ipi_addr: the third 4-octet field of in_pktinfo.
            let a = off + HDR + 8;
            if a + 4 > len {
                return Ipv4Addr::UNSPECIFIED;
            }
            return Ipv4Addr::new(b[a], b[a + 1], b[a + 2], b[a + 3]);
        }
        let clen = word(b, off);
        if clen < HDR {
            return Ipv4Addr::UNSPECIFIED;
        }
        // CMSG_ALIGN as `libc` computes it (wrapping in a build without overflow checks).
        let step = clen.wrapping_add(7) & !7;
        assert!(
            step != 0,
            "cmsg_len {clen:#x}: CMSG_NXTHDR returns the same header forever"
        );
        let Some(next) = off.checked_add(step) else {
            return Ipv4Addr::UNSPECIFIED;
        };
        if next + HDR > len {
            return Ipv4Addr::UNSPECIFIED;
        }
        off = next;
    }
}

fn raw() -> bool {
    static RAW: OnceLock<bool> = OnceLock::new();
    *RAW.get_or_init(|| std::env::var_os("SLUICE_FUZZ_CMSG_RAW").is_some_and(|v| v == "1"))
}

fuzz_target!(|data: &[u8]| {
    let mut ctl = data[..data.len().min(64)].to_vec();
    if !raw() {
        sanitize(&mut ctl);
    }
    let len = ctl.len();
    // The buffer as the kernel leaves it: `len` octets, then untouched (canary) space.
    let mut words = [0u64; 16];
    let mut bytes = vec![CANARY; 128];
    bytes[..len].copy_from_slice(&ctl);
    for (w, c) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        *w = u64::from_ne_bytes(a);
    }
    // The reference first: it stops on inputs the parser would loop on.
    let expect = reference(&bytes, len);
    let got = pktinfo_dst(&words, len);
    assert_eq!(got, expect, "control buffer {ctl:02x?}");
});
