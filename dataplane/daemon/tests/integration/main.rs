//! The data plane's integration tests, in one test binary: each module was its own binary,
//! and every one of them linked tonic, OpenTelemetry and the whole daemon again.
//!
//! The root-only tests (`setup_spans`, `batched_io`) are `#[ignore]`d; `e2e/test-all.sh` runs them with
//! `cargo test --workspace --release --test integration -- --ignored`.

mod admin_endpoint;
mod agent;
mod batched_io;
mod readiness;
mod setup_spans;
