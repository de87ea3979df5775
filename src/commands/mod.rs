//! **The edges a person touches.** Owns the subcommands (`execute`), what
//! they print (`report`, through `terminal`'s escaping), `check`, `setup`
//! and `replay`. Turns arguments into calls on the stages and results into
//! exit statuses; holds no pipeline logic of its own.
//!
//! The subcommands: each turns arguments into a pipeline run and an exit
//! status. `parse` is the pipeline without its edges; `run` adds them.

pub(crate) mod account;
pub(crate) mod check;
mod logging;
mod maintenances;
pub(crate) mod replay;
pub(crate) mod report;
pub(crate) mod setup;
pub(crate) mod terminal;

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;

use crate::cli::{Cli, Command, Format, LogArgs};
use crate::decide;
use crate::delivery;
use crate::delivery::journal::{self, Journal};
use crate::desk::config::Config;
use crate::exit::{Failure, Status};
use crate::mail;
use crate::outcome::Outcome;
use crate::run::ansible;

/// The commands that take mail: whatever goes wrong, they exit 0 or 75,
/// never another status a Postfix pipe would bounce the message on.
const TAKES_MAIL: &[&str] = &["run", "retry", "worker", delivery::DELIVER_SPOOLED];

/// The whole program: parse arguments, set up logging, run a command,
/// turn the result into an exit status.
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // Only asked when something went wrong: building clap's command tree
    // again is not worth a delivery's start-up.
    let takes_mail =
        || subcommand_of(&args).is_some_and(|name| TAKES_MAIL.contains(&name.as_str()));
    let cli = match crate::cli::parse(&args) {
        Ok(cli) => cli,
        Err(error) => return refused(&error, takes_mail()).into(),
    };
    logging::init(cli.verbose, cli.log_format, cli.log_file.as_deref());
    // A bug must never turn into a bounce: an MTA bounces a message on a
    // panic's status 101, but keeps it and retries on 75.
    match std::panic::catch_unwind(move || execute(cli)) {
        Ok(Ok(status)) => status.into(),
        Ok(Err(failure)) => {
            eprintln!("helpdesk: {:#}", failure.error);
            failure.status.into()
        }
        Err(_) => {
            eprintln!("helpdesk: internal error (a bug, reported above); please report it");
            if takes_mail() {
                Status::TempFail
            } else {
                Status::Software
            }
            .into()
        }
    }
}

/// A command line clap did not take: its own message (with the usage, in
/// colour only on a terminal), and the status. `--help`, `--version` and
/// `help` are not mistakes (0); a mistake is a usage error (64), except
/// for a command that takes mail (75: the MTA keeps the message while
/// someone fixes the pipe's command line).
fn refused(error: &clap::Error, takes_mail: bool) -> Status {
    let _ = error.print();
    if !error.use_stderr() {
        Status::Ok
    } else if takes_mail {
        Status::TempFail
    } else {
        Status::Usage
    }
}

/// The subcommand `args` name (program name first), found without
/// clap's parse so that it is known when that parse fails: the first
/// word that is no option, stepping over the values of the global options
/// that take one (`--config FILE run`). None for an unknown word.
fn subcommand_of(args: &[OsString]) -> Option<String> {
    let command = <Cli as clap::CommandFactory>::command();
    let takes_value = |word: &str| {
        command.get_arguments().any(|arg| {
            let long = word
                .strip_prefix("--")
                .is_some_and(|name| arg.get_long() == Some(name));
            let short = word
                .strip_prefix('-')
                .filter(|name| !name.starts_with('-'))
                .and_then(|name| name.chars().last())
                .is_some_and(|last| arg.get_short() == Some(last));
            (long || short) && arg.get_action().takes_values()
        })
    };
    let mut words = args.iter().skip(1).map(|word| word.to_string_lossy());
    while let Some(word) = words.next() {
        if word == "--" {
            continue;
        }
        if !word.starts_with('-') {
            return command
                .find_subcommand(word.as_ref())
                .map(|sub| sub.get_name().to_owned());
        }
        if !word.contains('=') && takes_value(&word) {
            words.next();
        }
    }
    None
}

pub(crate) fn execute(cli: Cli) -> Result<Status, Failure> {
    let program = program(&cli);
    match cli.command {
        Command::Parse {
            input,
            format,
            explain,
        } => parse(cli.config.as_deref(), input.as_deref(), format, explain),
        Command::Run { input } => run(cli.config.as_deref(), input.as_deref(), &program),
        Command::Retry { rerun, now } => retry(cli.config.as_deref(), rerun, now, &program),
        Command::Worker { interval } => worker(cli.config.as_deref(), &interval, &program),
        Command::DeliverSpooled {
            path,
            retry,
            supervisor,
            intake,
        } => deliver_spooled(
            cli.config.as_deref(),
            &path,
            (retry, intake.as_deref()),
            supervisor,
            &program,
        ),
        Command::Fetch { once } => fetch(cli.config.as_deref(), once, &program),
        Command::Log(args) => log(cli.config.as_deref(), args),
        Command::Show { id } => show(cli.config.as_deref(), id),
        Command::Pending => pending(cli.config.as_deref()),
        Command::Maintenances { all, format } => {
            maintenances::list(cli.config.as_deref(), all, format)
        }
        Command::Approve { id } => approve(cli.config.as_deref(), id, None, &program),
        Command::Deny { id, reason } => {
            approve(cli.config.as_deref(), id, Some(reason.as_deref()), &program)
        }
        Command::Setup(args) => setup(&args),
        Command::Replay { path, jsonl, diff } => {
            replay(cli.config.as_deref(), &path, jsonl, diff.as_deref())
        }
        Command::Check { online, as_user } => {
            check(cli.config.as_deref(), online, as_user.as_deref())
        }
        Command::ProbeAccess => {
            let config = cli.config.as_deref().unwrap_or(Path::new("config.yaml"));
            let said = account::probe(config);
            print_stdout(&said.iter().map(|l| format!("{l}\n")).collect::<String>());
            Ok(if said.is_empty() {
                Status::Ok
            } else {
                Status::Config
            })
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "helpdesk", &mut script);
            print_stdout(&String::from_utf8_lossy(&script));
            Ok(Status::Ok)
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|e| Failure::new(Status::Software, e))?;
            print_stdout(&String::from_utf8_lossy(&page));
            Ok(Status::Ok)
        }
        Command::Guard => {
            ansible::guard(&mut std::io::stdin().lock());
            Ok(Status::Ok)
        }
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
    // What the thread repeats is cut as `run` would (read only).
    crate::mail::thread::cut_repeats(&config.state_dir, &mut mail);
    let config_error = |e: anyhow::Error| Failure::new(Status::Config, e);
    let keywords = config.desk.keywords().map_err(|e| config_error(e.into()))?;
    let decision = decide::decide(&config, &keywords, &mail).map_err(|e| config_error(e.into()))?;
    let preview = report::preview(&config, &keywords, &mail, &decision)
        .map_err(|e| config_error(e.into()))?;
    // A provider's notice: what it reads as (a command parser runs, with
    // no journal and no playbook).
    let notice = crate::pipeline::notice(&config, &mail, &raw.bytes, &decision);
    let output = match format {
        Format::Json => {
            let mut json = report::json(&config, &mail, &decision, &preview, explain);
            if let (Some(notice), Some(map)) = (&notice, json.as_object_mut()) {
                map.extend(report::notice_json(&config, notice));
            }
            terminal::escape_json(&json.to_string()).into_owned() + "\n"
        }
        Format::Text => match &notice {
            Some(notice) => report::notice_text(&config, &decision, notice),
            None => report::text(&config, &mail, &decision, &preview, explain),
        },
    };
    print_stdout(&output);
    Ok(Status::Ok)
}

/// The MTA's command. Anything that stops it from taking the message
/// safely exits 75 so the MTA keeps the message and retries, rather than
/// bouncing it or losing it while an administrator fixes things.
fn run(
    config_path: Option<&Path>,
    input: Option<&Path>,
    program: &delivery::Program,
) -> Result<Status, Failure> {
    let tempfail = |e| Failure::new(Status::TempFail, e);
    let config = load_for_mail(config_path).map_err(tempfail)?;
    let raw = read_input(input, config.limits.message_size).map_err(tempfail)?;
    delivery::deliver(&config, &raw.bytes, raw.truncated, program, None).map_err(tempfail)
}

fn retry(
    config_path: Option<&Path>,
    rerun: Option<i64>,
    now: bool,
    program: &delivery::Program,
) -> Result<Status, Failure> {
    let tempfail = |e| Failure::new(Status::TempFail, e);
    let config = load_for_mail(config_path).map_err(tempfail)?;
    if let Some(id) = rerun {
        let outcome = delivery::rerun(&config, program, id).map_err(tempfail)?;
        print_stdout(&format!("row {id}: run again: {outcome}\n"));
        return Ok(Status::Ok);
    }
    let swept = delivery::retry(&config, program, now).map_err(tempfail)?;
    tracing::info!("{} message(s) handled from the spool", swept.handled);
    if let Some(next) = swept.next {
        print_stdout(&format!(
            "{} message(s) back off after a failure to start, the first until {next} (helpdesk log says which, helpdesk show ID why; helpdesk retry --now tries them at once)\n",
            swept.backing_off
        ));
    }
    Ok(Status::Ok)
}

/// The child `run` and `retry` decide each message in (see `delivery`).
/// Every failure is a 75 for its supervisor to pass on; a panic is not
/// (`main` makes it 70, which the supervisor takes for a crash).
fn deliver_spooled(
    config_path: Option<&Path>,
    path: &Path,
    (retry, intake): (bool, Option<&str>),
    supervisor: u32,
    program: &delivery::Program,
) -> Result<Status, Failure> {
    use std::os::fd::AsFd as _;
    let tempfail = |e| Failure::new(Status::TempFail, e);
    delivery::watch_supervisor(supervisor).map_err(tempfail)?;
    let config_path = config_path
        .ok_or_else(|| tempfail(anyhow!("{} needs --config", delivery::DELIVER_SPOOLED)))?;
    // Not load_for_mail: its warnings were given by the supervisor.
    let config = Config::load(config_path).map_err(|e| tempfail(e.into()))?;
    // The supervisor's locked spool file.
    let lock = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .map_err(|e| {
            tempfail(anyhow!(
                "cannot take the spool file from standard input: {e}"
            ))
        })?;
    delivery::deliver_spooled(&config, path, lock, retry, intake, program).map_err(tempfail)?;
    Ok(Status::Ok)
}

/// `helpdesk fetch`: the sources of `sources:`; see `fetch`.
fn fetch(
    config_path: Option<&Path>,
    once: bool,
    program: &delivery::Program,
) -> Result<Status, Failure> {
    let config = load_for_mail(config_path).map_err(|e| Failure::new(Status::Config, e))?;
    if config.sources.is_empty() {
        return Err(Failure::new(
            Status::Config,
            anyhow!(
                "{}: no sources: to read: add a sources: list (an IMAP mailbox or a Maildir; see docs/configuration.md)",
                config_path.unwrap_or(Path::new("config.yaml")).display()
            ),
        ));
    }
    crate::fetch::fetch(config, program.clone(), once)
        .map_err(|e| Failure::new(Status::TempFail, e))
}

fn worker(
    config_path: Option<&Path>,
    interval: &str,
    program: &delivery::Program,
) -> Result<Status, Failure> {
    let interval = humantime::parse_duration(interval)
        .map_err(|e| Failure::new(Status::TempFail, anyhow!("--interval {interval:?}: {e}")))?;
    let config = load_for_mail(config_path).map_err(|e| Failure::new(Status::TempFail, e))?;
    tracing::info!(
        "worker: looking at {} every {}",
        crate::delivery::state::spool(&config.state_dir).display(),
        humantime::format_duration(interval)
    );
    loop {
        if let Err(e) = delivery::retry(&config, program, false) {
            tracing::warn!("worker: {e:#}");
        }
        // Maintenances' `started` and `ended` playbooks, at their times.
        if let Err(e) = delivery::maintenance::pass(&config, Some(&program.path)) {
            tracing::warn!("worker: maintenances: {e:#}");
        }
        std::thread::sleep(interval);
    }
}

/// The config file `run`, `retry` and `worker` need, with warnings about
/// sections whose absence means nothing will run.
fn load_for_mail(config_path: Option<&Path>) -> anyhow::Result<Config> {
    let config_path = config_path.ok_or_else(|| {
        anyhow!(
            "this command needs a config file: pass --config PATH or set HELPDESK_CONFIG (start from config.example.yaml; `helpdesk parse` works without one)"
        )
    })?;
    let config = Config::load(config_path)?;
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
    Ok(config)
}

/// This program and the global options it was given, for the deciding
/// child, the detached `retry` and the process guard.
fn program(cli: &Cli) -> delivery::Program {
    let mut options: Vec<std::ffi::OsString> = Vec::new();
    options.extend((0..cli.verbose).map(|_| "-v".into()));
    if cli.log_format == crate::cli::LogFormat::Json {
        options.extend(["--log-format".into(), "json".into()]);
    }
    if let Some(file) = &cli.log_file {
        options.extend(["--log-file".into(), file.clone().into_os_string()]);
    }
    delivery::Program {
        path: binary(),
        options,
    }
}

/// This program, for the detached `retry` and the process guard.
fn binary() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("helpdesk"))
}

fn journal_for_reading(config_path: Option<&Path>) -> Result<(Config, Journal), Failure> {
    let config = load_for_mail(config_path).map_err(|e| Failure::new(Status::Config, e))?;
    let path = crate::delivery::state::journal(&config.state_dir);
    if !path.exists() {
        return Err(Failure::new(
            Status::NoInput,
            anyhow!(
                "{}: no journal yet: nothing has been delivered with this config",
                path.display()
            ),
        ));
    }
    let journal = Journal::open(&config.state_dir, config.journal_timeout)
        .map_err(|e| Failure::new(Status::TempFail, e))?;
    Ok((config, journal))
}

#[allow(clippy::too_many_arguments)]
fn log(config_path: Option<&Path>, args: LogArgs) -> Result<Status, Failure> {
    let LogArgs {
        sender,
        request_type,
        outcome,
        since,
        limit,
        format,
    } = args;
    let since = since
        .map(|s| since_time(&s))
        .transpose()
        .map_err(|e| Failure::new(Status::Usage, e))?;
    let outcome = outcome
        .map(|word| outcome_word(&word))
        .transpose()
        .map_err(|e| Failure::new(Status::Usage, e))?;
    let (config, journal) = journal_for_reading(config_path)?;
    let rows = journal
        .list(&journal::Filter {
            sender,
            request_type,
            outcome,
            since,
            limit,
        })
        .map_err(|e| Failure::new(Status::TempFail, e))?;
    let output = match format {
        Format::Json => rows
            .iter()
            .map(|r| {
                let json = serde_json::to_string(r).unwrap_or_default();
                terminal::escape_json(&json).into_owned() + "\n"
            })
            .collect(),
        Format::Text => {
            // Only shown, so a queue that cannot be read shows no queue.
            let queue = crate::run::slots::waiting(&config.state_dir).unwrap_or_default();
            let sources = journal.sources().unwrap_or_default();
            report::sources_lines(&sources) + &report::log_table(&rows, &queue)
        }
    };
    print_stdout(&output);
    Ok(Status::Ok)
}

/// `--outcome`'s word, or an error listing the words there are.
fn outcome_word(word: &str) -> anyhow::Result<Outcome> {
    word.parse().map_err(|_| {
        let words: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        anyhow!(
            "--outcome {word:?}: no such outcome; one of: {}",
            words.join(", ")
        )
    })
}

/// `2h` (that long ago) or an RFC 3339 time, as an RFC 3339 time.
fn since_time(text: &str) -> anyhow::Result<String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        let then = std::time::SystemTime::now()
            .checked_sub(ago)
            .unwrap_or(std::time::UNIX_EPOCH);
        return Ok(humantime::format_rfc3339_millis(then).to_string());
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| {
        anyhow!("--since {text:?}: {e}: give a duration (2h, 7d) or a time (2026-11-22T08:00:00Z)")
    })?;
    Ok(humantime::format_rfc3339_millis(time).to_string())
}

fn show(config_path: Option<&Path>, id: i64) -> Result<Status, Failure> {
    let (_, journal) = journal_for_reading(config_path)?;
    let row = journal
        .get(id)
        .map_err(|e| Failure::new(Status::TempFail, e))?
        .ok_or_else(|| {
            Failure::new(
                Status::NoInput,
                anyhow!("no row {id} in the journal (see helpdesk log)"),
            )
        })?;
    print_stdout(&report::show_row(&row));
    Ok(Status::Ok)
}

/// `helpdesk pending`: one line per waiting request.
fn pending(config_path: Option<&Path>) -> Result<Status, Failure> {
    let (config, _) = journal_for_reading(config_path)?;
    let rows = crate::delivery::approval::waiting(&config)
        .map_err(|e| Failure::new(Status::TempFail, e))?;
    print_stdout(&report::pending_table(&rows));
    Ok(Status::Ok)
}

/// `helpdesk approve ID`, and `helpdesk deny ID` (`deny` holds its
/// reason, if any).
fn approve(
    config_path: Option<&Path>,
    id: i64,
    deny: Option<Option<&str>>,
    program: &delivery::Program,
) -> Result<Status, Failure> {
    let (config, journal) = journal_for_reading(config_path)?;
    drop(journal);
    let verdict = match deny {
        Some(_) => crate::delivery::journal::Verdict::Deny,
        None => crate::delivery::journal::Verdict::Approve,
    };
    let reason = deny.flatten();
    let said =
        crate::delivery::approval::decide_locally(&config, &program.path, id, verdict, reason)
            .map_err(|e| Failure::new(Status::DataErr, e))?;
    print_stdout(&format!("{said}\n"));
    Ok(Status::Ok)
}

fn replay(
    config_path: Option<&Path>,
    path: &Path,
    jsonl: bool,
    diff: Option<&Path>,
) -> Result<Status, Failure> {
    let load = |path: &Path| Config::load(path).map_err(|e| Failure::new(Status::Config, e));
    let config = match config_path {
        Some(path) => load(path)?,
        None => Config::builtin(),
    };
    let other = diff.map(load).transpose()?;
    let sources = replay::read_sources(path).map_err(|e| Failure::new(Status::NoInput, e))?;
    let configs: Vec<&Config> = std::iter::once(&config).chain(other.as_ref()).collect();
    let printed = replay::replay(&configs, &sources, jsonl, diff)
        .map_err(|e| Failure::new(Status::Config, e))?;
    eprint!("{}", printed.stderr);
    print_stdout(&printed.stdout);
    Ok(Status::Ok)
}

fn check(
    config_path: Option<&Path>,
    online: bool,
    as_user: Option<&str>,
) -> Result<Status, Failure> {
    let config_path = config_path.ok_or_else(|| {
        Failure::new(
            Status::Usage,
            anyhow!("helpdesk check needs --config PATH (or HELPDESK_CONFIG)"),
        )
    })?;
    let mut problems = crate::commands::check::check(config_path, online);
    if let Some(user) = as_user {
        problems.extend(account::check_as(config_path, user));
    }
    let mut out = String::new();
    for problem in &problems {
        out.push_str(&format!("{problem}\n"));
    }
    print_stdout(&out);
    let errors = problems
        .iter()
        .filter(|p| p.severity == crate::commands::check::Severity::Error)
        .count();
    let warnings = problems
        .iter()
        .filter(|p| p.severity == crate::commands::check::Severity::Warning)
        .count();
    eprintln!("{errors} error(s), {warnings} warning(s)");
    Ok(if errors > 0 {
        Status::Config
    } else {
        Status::Ok
    })
}

fn setup(args: &setup::SetupArgs) -> Result<Status, Failure> {
    let usage = |e: anyhow::Error| Failure::new(Status::Usage, e);
    let answers = setup::answers(args).map_err(usage)?;
    answers.validate().map_err(usage)?;
    let interactive = !args.non_interactive && args.answers.is_none();
    let mut decide = |path: &Path| setup::keep_or_replace(path, args.replace_changed, interactive);
    let (dir, notes) =
        setup::write(&answers, &mut decide).map_err(|e| Failure::new(Status::CantCreate, e))?;
    let account_notes =
        setup::settle_account(&answers, &dir).map_err(|e| Failure::new(Status::CantCreate, e))?;
    let config_path = dir.join("config.yaml");
    let mut out: String = notes
        .iter()
        .chain(&account_notes)
        .map(|note| format!("{note}\n"))
        .collect();
    out.push_str(&setup::dry_run(&config_path).map_err(|e| Failure::new(Status::Config, e))?);
    let as_user = answers
        .user
        .as_ref()
        .map_or_else(String::new, |user| format!(" --as {user}"));
    out.push_str(&format!(
        "\nCheck it: helpdesk --config {} check{as_user}\n\n",
        config_path.display()
    ));
    out.push_str(&setup::snippets(&binary(), &config_path, &answers));
    print_stdout(&out);
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
