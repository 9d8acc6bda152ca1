//! `sluice-client`: the in-repo VPN client and load generator.
//!
//! ```text
//! sluice-client --server ADDR --user U --password P ...   open sessions (PPTP, L2TP, L2TP/IPsec)
//! sluice-client bench ...                                 benchmarks (figures, never asserted)
//! ```

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
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
    /// The client's arguments (absent with a subcommand; `main` asks for them otherwise).
    #[command(flatten)]
    client: Option<cli::ClientArgs>,
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
    let client = match (&cli.command, cli.client) {
        (None, None) => Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "--server and --user are required",
            )
            .exit(),
        (_, client) => client,
    };
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
        None => match client {
            Some(client) => rt.block_on(cli::run(client)),
            None => Ok(()),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmarks_parse_without_the_client_arguments() {
        for argv in [
            &["sluice-client", "bench", "engine", "--seconds", "0.1"][..],
            &[
                "sluice-client",
                "bench",
                "idle",
                "--server",
                "10.98.0.1",
                "--user",
                "bench",
                "--gateway-pid",
                "1",
                "--settle",
                "75",
            ],
        ] {
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("{argv:?}: {e}");
            }
        }
        assert!(Cli::try_parse_from(["sluice-client", "--user", "alice"]).is_err());
        let plain = Cli::try_parse_from(["sluice-client", "--server", "10.0.0.1", "--user", "a"]);
        assert!(plain.is_ok_and(|c| c.client.is_some() && c.command.is_none()));
    }
}
