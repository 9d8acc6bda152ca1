//! Sockets and the host's network configuration: raw IP sockets (GRE, ESP), UDP sockets
//! that know which local address a datagram came to, batched sends, and the TUN device (with
//! the kernel's offloads), its addresses and routes.

pub mod batch;
pub mod netcfg;
pub mod rawsock;
pub mod send_batch;
pub mod shard;
pub mod tun;
pub mod udpsock;
