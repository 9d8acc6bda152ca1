//! The `sluice.v1` protobuf package: configuration the operator (or the
//! standalone loader) compiles from manifests and the data plane applies.

/// `sluice.v1` messages.
pub mod v1 {
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/sluice.v1.rs"));
}
