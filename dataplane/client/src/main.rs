//! `sluice-client`: the in-repo VPN client and load generator.
//!
//! ```text
//! sluice-client --server ADDR --user U --password P ...   open sessions (PPTP, L2TP, L2TP/IPsec)
//! sluice-client bench ...                                 benchmarks (figures, never asserted)
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_client::{bench, cli};
use sluice_telemetry::LogFormat;

#[derive(Parser, Debug)]
#[command(
    name = "sluice-client",
    version,
    about = "Sluice's in-repo VPN client (PPTP, L2TP, L2TP/IPsec) and load generator"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    client: cli::ClientArgs,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Benchmarks (figures are printed, never asserted).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = sluice_telemetry::init("sluice-client", cli.log_format, false);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        None => rt.block_on(cli::run(cli.client)),
        Some(Command::Bench(args)) => rt.block_on(bench::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
