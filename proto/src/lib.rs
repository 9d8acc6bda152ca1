//! The `sluice.v1` protobuf package: the configuration the operator (or the
//! standalone loader) compiles from manifests and the data plane applies, and
//! (feature `grpc`) the `sluice.v1.Control` service that carries it.

/// `sluice.v1` messages (and, with feature `grpc`, the `Control` client and server).
pub mod v1 {
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/sluice.v1.rs"));
}
