//! Helpers shared by the fuzz targets: a byte-stream reader that turns the fuzzer's input
//! into a sequence of operations, and the scripted IKE peer of the structure-aware targets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod ike_peer;

/// Whether `SLUICE_FUZZ_TRACE=1` asks the targets to print what the engines report.
pub fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("SLUICE_FUZZ_TRACE").is_some_and(|v| v == "1"))
}

/// Reads operations out of the fuzzer's input. Running out of input reads zeros, so every
/// prefix of an input is a valid (shorter) program.
pub struct Ops<'a> {
    data: &'a [u8],
}

impl<'a> Ops<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Ops { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// At most `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// A one-octet length, then that many bytes.
    pub fn short(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.bytes(n)
    }

    /// A two-octet length (capped at `cap`), then that many bytes.
    pub fn long(&mut self, cap: usize) -> &'a [u8] {
        let n = usize::from(self.u16()).min(cap);
        self.bytes(n)
    }

    /// Applies up to `max` edits read from the input to `buf`: each is a position, an
    /// operation (xor, set, truncate, insert) and a value.
    pub fn mutate(&mut self, buf: &mut Vec<u8>, max: usize) {
        let n = usize::from(self.u8()) % (max + 1);
        for _ in 0..n {
            if buf.is_empty() {
                buf.push(self.u8());
                continue;
            }
            let pos = usize::from(self.u16()) % buf.len();
            let op = self.u8();
            let v = self.u8();
            match op % 4 {
                0 => buf[pos] ^= v.max(1),
                1 => buf[pos] = v,
                2 => buf.truncate(pos),
                _ => buf.insert(pos, v),
            }
        }
    }
}

/// What the gateway's anti-spoofing may let through (RFC 791 §3.1): IPv4, a header length of
/// at least 5 words, header ≤ Total Length ≤ the packet, and a source the session owns.
pub fn well_formed_ipv4_from(ip: &[u8], owns: impl Fn(std::net::Ipv4Addr) -> bool) -> bool {
    let [vihl, _, t0, t1, _, _, _, _, _, _, _, _, s0, s1, s2, s3, ..] = *ip else {
        return false;
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([t0, t1]));
    vihl >> 4 == 4
        && ihl >= 20
        && ihl <= total
        && total <= ip.len()
        && owns(std::net::Ipv4Addr::new(s0, s1, s2, s3))
}

/// An IPv4 header (20 octets, no options) from `src` to `dst` with protocol `proto`
/// around `payload`; the checksum is left zero (nothing on the receive path checks it).
pub fn ipv4(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    proto: u8,
    payload: &[u8],
) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap_or(u16::MAX);
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}
