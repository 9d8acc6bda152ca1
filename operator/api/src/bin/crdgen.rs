//! Writes `crds/*.yaml` and the Helm chart's copies (`charts/sluice/crds/`) from the CRD
//! types: `cargo run -p sluice-api --bin crdgen [DIR...]`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut dirs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if dirs.is_empty() {
        let top = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        dirs = sluice_api::crdgen::CRD_DIRS
            .iter()
            .map(|d| top.join(d))
            .collect();
    }
    let files = match sluice_api::crdgen::crd_files() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("crdgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    for dir in &dirs {
        for (name, yaml) in &files {
            let path = dir.join(name);
            if let Err(e) = std::fs::write(&path, yaml) {
                eprintln!("crdgen: writing {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("wrote {}", path.display());
        }
    }
    ExitCode::SUCCESS
}
