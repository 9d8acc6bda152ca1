//! The operator's integration tests, in one test binary: each module was its own binary,
//! and every one of them linked kube, tonic and the operator again.

mod common;
mod grpc;
mod otlp_export;
mod reconcile;
