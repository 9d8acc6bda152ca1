//! Writes `crds/*.yaml` and the Helm chart's `templates/crds.yaml` from the CRD types:
//! `cargo run -p sluice-api --bin crdgen`. With `--cases`, prints instead the schema test
//! cases (one JSON object a line: every CEL rule and schema constraint with a valid and an
//! invalid object) that `e2e/kube/` sends through a real apiserver.

use std::path::PathBuf;
use std::process::ExitCode;

fn write(path: PathBuf, text: &str) -> Result<(), String> {
    std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

fn run() -> Result<(), String> {
    if std::env::args().nth(1).as_deref() == Some("--cases") {
        for case in sluice_api::schema_cases::cases() {
            println!("{}", case.to_json());
        }
        return Ok(());
    }
    let top = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = sluice_api::crdgen::crd_files().map_err(|e| e.to_string())?;
    for dir in sluice_api::crdgen::CRD_DIRS {
        for (name, yaml) in &files {
            write(top.join(dir).join(name), yaml)?;
        }
    }
    write(
        top.join(sluice_api::crdgen::CHART_TEMPLATE),
        &sluice_api::crdgen::chart_template().map_err(|e| e.to_string())?,
    )
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crdgen: {e}");
            ExitCode::FAILURE
        }
    }
}
