//! Compiles `proto/sluice/v1/*.proto` with protox (pure Rust): no host `protoc`.
//! The tonic client and server of `sluice.v1.Control` are generated only with the
//! `grpc` feature, so crates that need just the messages stay free of tonic.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/sluice/v1/config.proto",
        "proto/sluice/v1/control.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        .compile_fds(fds)?;
    Ok(())
}
