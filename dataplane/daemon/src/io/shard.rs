//! Receive shards: one raw socket per receive thread, each with a classic BPF filter
//! (socket(7) `SO_ATTACH_FILTER`) that accepts only the packets of its share of the sessions,
//! chosen by a key the peer puts in every packet. The kernel gives every raw socket of a
//! protocol its own copy of a packet (raw(7)); the filters keep exactly one.
//!
//! - GRE (RFC 2637 §4.1): the Call ID, octets 6–7 of the enhanced GRE header, is the one we
//!   gave the call, so a call's packets always reach the same thread, in order.
//! - ESP (RFC 4303 §2.1): the SPI, octets 0–3, is the one we chose for the SA.
//!
//! A packet too short to hold the key goes to shard 0, which counts it as malformed.

use socket2::SockFilter;

/// Which key of a raw packet (after its IPv4 header) chooses the shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardKey {
    /// The Call ID of enhanced GRE (RFC 2637 §4.1): 16 bits at octet 6.
    GreCallId,
    /// The SPI of ESP (RFC 4303 §2.1): 32 bits at octet 0.
    EspSpi,
}

impl ShardKey {
    /// (offset after the IPv4 header, width in octets).
    fn field(self) -> (u32, u32) {
        match self {
            ShardKey::GreCallId => (6, 2),
            ShardKey::EspSpi => (0, 4),
        }
    }

    /// The shard (of `count`) a key value goes to: what the filter computes.
    pub fn shard_of(value: u32, count: u32) -> u32 {
        value % count.max(1)
    }
}

/// Accept the whole packet (any length up to this).
const ACCEPT: u32 = 0x0004_0000;

const fn op(code: u32, jt: u8, jf: u8, k: u32) -> SockFilter {
    SockFilter::new(code as u16, jt, jf, k)
}

/// The filter of shard `index` of `count` on a raw IPv4 socket (a packet as the filter sees
/// it starts with its IPv4 header).
pub fn filter(key: ShardKey, index: u32, count: u32) -> Vec<SockFilter> {
    use libc::{
        BPF_ADD, BPF_ALU, BPF_B, BPF_H, BPF_IND, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_LDX,
        BPF_LEN, BPF_MISC, BPF_MOD, BPF_MSH, BPF_RET, BPF_TAX, BPF_TXA, BPF_W, BPF_X,
    };
    let (offset, width) = key.field();
    let load = if width == 2 { BPF_H } else { BPF_W };
    let short = if index == 0 { ACCEPT } else { 0 };
    vec![
        // X = the IPv4 header's length (4 × IHL, RFC 791 §3.1); A = X + the key's end.
        op(BPF_LDX | BPF_B | BPF_MSH, 0, 0, 0),
        op(BPF_MISC | BPF_TXA, 0, 0, 0),
        op(BPF_ALU | BPF_ADD | BPF_K, 0, 0, offset + width),
        op(BPF_MISC | BPF_TAX, 0, 0, 0),
        // The packet must hold the key; else go to `short` (6 ahead).
        op(BPF_LD | BPF_W | BPF_LEN, 0, 0, 0),
        op(BPF_JMP | BPF_JGE | BPF_X, 0, 6, 0),
        // A = key mod count; this shard's packets are accepted.
        op(BPF_LDX | BPF_B | BPF_MSH, 0, 0, 0),
        op(BPF_LD | load | BPF_IND, 0, 0, offset),
        op(BPF_ALU | BPF_MOD | BPF_K, 0, 0, count.max(1)),
        op(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, index),
        op(BPF_RET | BPF_K, 0, 0, ACCEPT),
        op(BPF_RET | BPF_K, 0, 0, 0),
        op(BPF_RET | BPF_K, 0, 0, short),
    ]
}

/// The socket of receive shard `shard`: the first one (which also sends) for 0, else one of
/// the rest.
pub fn socket<'a, T>(first: &'a T, rest: &'a [T], shard: usize) -> Option<&'a T> {
    shard.checked_sub(1).map_or(Some(first), |i| rest.get(i))
}

/// How many receive shards to run by default: one per core the process may use, at most 8.
pub fn default_count() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8) as u32)
}
