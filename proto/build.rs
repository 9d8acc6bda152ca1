//! Compiles `proto/sluice/v1/*.proto` with protox (pure Rust): no host `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/sluice/v1/config.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
