//! Compiles a manifest file and prints the (redacted) configuration or the errors.
//!
//! `cargo run -p sluice-api --example compile -- examples/standalone.yaml [gateway]`
fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: compile FILE [GATEWAY]");
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
        .and_then(|m| sluice_api::compile_from_manifests(&m, gateway.as_deref()))
    {
        Ok(config) => println!("{:#?}", sluice_api::redacted(&config)),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
