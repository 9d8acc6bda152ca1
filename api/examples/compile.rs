//! Compiles a manifest file and prints the (redacted) configuration and the users left out,
//! or the errors; `--protobuf` writes the encoded `GatewayConfig` to stdout instead (seeds
//! for the `gateway_config` fuzz target).
//!
//! `cargo run -p sluice-api --example compile -- [--protobuf] examples/standalone.yaml [gateway]`
use std::io::Write;

use prost::Message;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let protobuf = args.first().is_some_and(|a| a == "--protobuf");
    if protobuf {
        args.remove(0);
    }
    let mut args = args.into_iter();
    let Some(path) = args.next() else {
        eprintln!("usage: compile [--protobuf] FILE [GATEWAY]");
        std::process::exit(2);
    };
    let gateway = args.next();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    match sluice_api::parse_manifests(&text)
        .and_then(|m| sluice_api::compile_manifests(&m, gateway.as_deref()))
    {
        Ok(c) if protobuf => {
            if let Err(e) = std::io::stdout().write_all(&c.config.encode_to_vec()) {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        Ok(c) => {
            println!("{:#?}", sluice_api::redacted(&c.config));
            for e in c.left_out.values() {
                eprintln!("left out:\n{e}");
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
