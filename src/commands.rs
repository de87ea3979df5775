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
    let raw = read_input(input, config.limits.message_size)
        .map_err(|e| Failure::new(Status::NoInput, e))?;
    let mut mail = mail::read(&raw.bytes, &config.sender_header);
    mail.truncated = raw.truncated;
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
    if config.access.is_none() {
        tracing::warn!(
            "config.yaml has no access: grants, so no request will run (see config.example.yaml)"
        );
    }
    if config.authentication.is_none() {
        tracing::warn!(
            "config.yaml has no authentication: section, so no sender is trusted (see config.example.yaml)"
        );
    }
    let raw = read_input(input, config.limits.message_size).map_err(tempfail)?;
    pipeline::handle(&config, &raw.bytes, raw.truncated).map_err(tempfail)?;
    Ok(Status::Ok)
}

/// A message as read: at most `limit` bytes, and whether there was more.
#[derive(Debug)]
struct Input {
    bytes: Vec<u8>,
    pub truncated: bool,
}

/// Reads the message, keeping at most `limit` bytes. The rest of standard
/// input is still read (and dropped), so that the MTA feeding the pipe sees
/// it taken.
fn read_input(input: Option<&Path>, limit: u64) -> anyhow::Result<Input> {
    let name = input.map_or_else(|| PathBuf::from("-"), Path::to_path_buf);
    let error = |e: std::io::Error| anyhow!("{}: cannot read the message: {e}", name.display());
    let mut bytes = Vec::new();
    let truncated = match input {
        Some(path) if path != Path::new("-") => {
            let file = std::fs::File::open(path).map_err(error)?;
            let mut reader = file.take(limit.saturating_add(1));
            reader.read_to_end(&mut bytes).map_err(error)?;
            bytes.len() as u64 > limit
        }
        _ => {
            let mut stdin = std::io::stdin().lock();
            (&mut stdin)
                .take(limit.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(error)?;
            let more = bytes.len() as u64 > limit;
            if more {
                std::io::copy(&mut stdin, &mut std::io::sink()).map_err(error)?;
            }
            more
        }
    };
    bytes.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(Input { bytes, truncated })
}

/// Writes to stdout, ignoring a closed pipe (`helpdesk parse | head`).
fn print_stdout(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
