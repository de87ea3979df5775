//! The `helpdesk` binary: parse arguments, set up logging, run a command,
//! turn the result into an exit status.

use std::process::ExitCode;

use clap::Parser;
use helpdesk::cli::{Cli, Command};
use helpdesk::commands;
use helpdesk::exit::Status;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    // A bug must never turn into a bounce: an MTA bounces a message on a
    // panic's status 101, but keeps it and retries on 75.
    let takes_mail = matches!(
        cli.command,
        Command::Run { .. } | Command::Retry | Command::Worker { .. }
    );
    match std::panic::catch_unwind(move || commands::execute(cli)) {
        Ok(Ok(status)) => status.into(),
        Ok(Err(failure)) => {
            eprintln!("helpdesk: {:#}", failure.error);
            failure.status.into()
        }
        Err(_) => {
            eprintln!("helpdesk: internal error (a bug, reported above); please report it");
            if takes_mail {
                Status::TempFail
            } else {
                Status::Software
            }
            .into()
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
