//! The subcommands: each turns arguments into a pipeline run and an exit
//! status. `parse` is the pipeline without its edges; `run` adds them.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::cli::{Cli, Command, Format};
use crate::config::Config;
use crate::exit::{Failure, Status};
use crate::mail;
use crate::pipeline;
use crate::report;
use crate::request;

pub fn execute(cli: Cli) -> Result<Status, Failure> {
    match cli.command {
        Command::Parse {
            input,
            format,
            explain,
        } => parse(cli.config.as_deref(), input.as_deref(), format, explain),
        Command::Run { input } => run(cli.config.as_deref(), input.as_deref()),
    }
}

fn parse(
    config_path: Option<&Path>,
    input: Option<&Path>,
    format: Format,
    explain: bool,
) -> Result<Status, Failure> {
    let config = match config_path {
        Some(path) => Config::load(path).map_err(|e| Failure::new(Status::Config, e))?,
        None => Config::builtin(),
    };
    let raw = read_input(input).map_err(|e| Failure::new(Status::NoInput, e))?;
    let mail = mail::read(&raw, &config.sender_header);
    let config_error = |e: anyhow::Error| Failure::new(Status::Config, e);
    let keywords = config.desk.keywords().map_err(|e| config_error(e.into()))?;
    let decision =
        request::decide(&config, &keywords, &mail).map_err(|e| config_error(e.into()))?;
    let preview = report::preview(&config, &keywords, &mail, &decision)
        .map_err(|e| config_error(e.into()))?;
    let output = match format {
        Format::Json => {
            report::json(&config, &mail, &decision, &preview, explain).to_string() + "\n"
        }
        Format::Text => report::text(&config, &mail, &decision, &preview, explain),
    };
    print_stdout(&output);
    Ok(Status::Ok)
}

/// The MTA's command. Anything that stops it from handling the message
/// exits 75 so the MTA keeps the message and retries, rather than bouncing
/// it or losing it while an administrator fixes the configuration.
fn run(config_path: Option<&Path>, input: Option<&Path>) -> Result<Status, Failure> {
    let tempfail = |e| Failure::new(Status::TempFail, e);
    let config_path = config_path.ok_or_else(|| {
        tempfail(anyhow!(
            "helpdesk run needs a config file: pass --config PATH or set HELPDESK_CONFIG (start from config.example.yaml; `helpdesk parse` works without one)"
        ))
    })?;
    let config = Config::load(config_path).map_err(|e| tempfail(e.into()))?;
    let raw = read_input(input).map_err(tempfail)?;
    pipeline::handle(&config, &raw).map_err(tempfail)?;
    Ok(Status::Ok)
}

fn read_input(input: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let mut raw = Vec::new();
    match input {
        None => std::io::stdin().lock().read_to_end(&mut raw).map(|_| ()),
        Some(path) if path == Path::new("-") => {
            std::io::stdin().lock().read_to_end(&mut raw).map(|_| ())
        }
        Some(path) => std::fs::read(path).map(|bytes| raw = bytes),
    }
    .map_err(|e| {
        let name = input.map_or_else(|| PathBuf::from("-"), Path::to_path_buf);
        anyhow!("{}: cannot read the message: {e}", name.display())
    })?;
    Ok(raw)
}

/// Writes to stdout, ignoring a closed pipe (`helpdesk parse | head`).
fn print_stdout(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
