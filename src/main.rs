//! The `helpdesk` binary: parse arguments, set up logging, run a command,
//! turn the result into an exit status.

use std::process::ExitCode;

use clap::Parser;
use helpdesk::cli::Cli;
use helpdesk::commands;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match commands::execute(cli) {
        Ok(status) => status.into(),
        Err(failure) => {
            eprintln!("helpdesk: {:#}", failure.error);
            failure.status.into()
        }
    }
}

/// Diagnostics go to stderr; `HELPDESK_LOG` (e.g. `debug`) overrides -v.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        EnvFilter::try_from_env("HELPDESK_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No colour codes in what an MTA copies into a bounce.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
