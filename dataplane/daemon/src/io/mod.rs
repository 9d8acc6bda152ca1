//! Sockets and the host's network configuration: raw IP sockets (GRE, ESP), UDP sockets
//! that know which local address a datagram came to, and the TUN device's addresses and routes.

pub mod batch;
pub mod netcfg;
pub mod rawsock;
pub mod udpsock;
