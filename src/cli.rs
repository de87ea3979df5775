//! Command-line arguments, as clap sees them.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Turns plain email into Ansible runs.
///
/// An MTA or fetcher pipes each message into `helpdesk run`: the subject's
/// keywords pick a request type, its phrasebook pulls the values out of the
/// body, and the matching playbook runs with them as extra-vars.
/// `helpdesk parse` shows all of that without running anything.
#[derive(Debug, Parser)]
#[command(name = "helpdesk", version, max_term_width = 100)]
pub(crate) struct Cli {
    /// The config.yaml to use; without one, `parse` uses the built-in
    /// helpdesk folder and `run` refuses to run
    #[arg(long, global = true, env = "HELPDESK_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Say more on stderr (-v: each decision, -vv: debugging, -vvv: the libraries' too)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Log lines as text (default) or JSON objects
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Also append the log to this file
    #[arg(long, global = true, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The command line as clap sees it, with `setup`'s help showing only
/// setup's own options: the global ones are about a config.yaml and its
/// log, which `setup` writes rather than reads.
pub(crate) fn command() -> clap::Command {
    let command = Cli::command();
    // clap copies a global option into every subcommand that has no
    // option of that id, and its value back up by id: a hidden, local copy
    // keeps `helpdesk setup --config X` (and `-v`) working, out of sight.
    let hidden: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .map(|arg| arg.clone().global(false).hide(true))
        .collect();
    command.mut_subcommand("setup", |setup| setup.args(hidden))
}

/// Parses `args` (program name first) with [`command`].
pub(crate) fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = command();
    let matches = command.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Read one message, decide, and run its playbook (the MTA's pipe command)
    Run {
        /// The message file; standard input when absent or `-`
        #[arg(value_name = "FILE|-")]
        input: Option<PathBuf>,
    },
    /// Dry run: print everything `run` would decide, run nothing
    Parse {
        /// The message file; standard input when absent or `-`
        #[arg(value_name = "FILE|-")]
        input: Option<PathBuf>,

        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,

        /// Show which phrase of which section matched where
        #[arg(long)]
        explain: bool,
    },
    /// Handle what is left in the spool: crashed or queued deliveries
    Retry {
        /// Run the playbook of this row, whose outcome is unknown (it
        /// started, then helpdesk lost track of it), once more with the
        /// vars journaled for it: an operator's decision, never automatic
        #[arg(long, value_name = "ID")]
        rerun: Option<i64>,
        /// Also try the messages that back off after a failure to start
        /// (they wait 1 minute after the first failure, doubling up to an
        /// hour), e.g. once the cause is fixed
        #[arg(long, conflicts_with = "rerun")]
        now: bool,
    },
    /// Keep handling queued and left-over messages (for `delivery: queue`,
    /// e.g. as a systemd service)
    Worker {
        /// How often to look at the spool, and at maintenances' start and end times
        #[arg(long, default_value = "5s", value_name = "DURATION")]
        interval: String,
    },
    /// Recent requests from the journal, newest first
    Log(LogArgs),
    /// One request from the journal, with its run log
    Show {
        /// The row id (first column of `helpdesk log`)
        id: i64,
    },
    /// The requests that wait for approval (approvals:), oldest first
    Pending,
    /// Provider maintenances (maintenance:): upcoming and ongoing, with
    /// their circuits and whether started/ended ran
    Maintenances {
        /// Every maintenance the journal has, cancelled and ended ones too
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Approve a waiting request as the local user; it runs once it has
    /// the approvals its rule requires
    Approve {
        /// The row id (first column of `helpdesk pending`)
        id: i64,
    },
    /// Deny a waiting request as the local user: nothing runs, and the
    /// requester is told
    Deny {
        /// The row id (first column of `helpdesk pending`)
        id: i64,
        /// Why, for the requester
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Read the mailboxes in `sources:` (IMAP, Maildir) and handle each
    /// message as `run` would; stays connected (IMAP IDLE, inotify) unless
    /// --once
    Fetch {
        /// Handle what is there now, then exit (for cron or a systemd
        /// timer). Exit status: 0 when every source was read, 69 when one
        /// could not be reached, 77 when one refused the login, 75 when a
        /// message could not be taken now (it stays in its mailbox), 78 for a
        /// config without sources
        #[arg(long)]
        once: bool,
    },
    /// Decide every message of an mbox file, a Maildir or a folder of .eml
    /// files as `parse` would (nothing runs, nothing is sent)
    Replay {
        /// The mailbox
        path: PathBuf,
        /// One JSON line per message on stdout (the summary goes to stderr)
        #[arg(long)]
        jsonl: bool,
        /// Also decide with this config and list the messages whose
        /// decision changes
        #[arg(long, value_name = "OTHER_CONFIG")]
        diff: Option<PathBuf>,
    },
    /// Create or update a helpdesk folder (an interactive wizard)
    Setup(Box<crate::commands::setup::SetupArgs>),
    /// Check a helpdesk folder and report problems as file:line: error|warning: message
    Check {
        /// Also connect to the SMTP server
        #[arg(long)]
        online: bool,
        /// Also check, as this user (the one the mail system runs helpdesk as), that it can read the config, folder and secrets, write state_dir and run ansible-playbook (as root)
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
    },
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff)
    Man,
    /// Internal: what `check --as USER` runs as that user; prints one line
    /// per thing it cannot do
    #[command(hide = true, name = "probe-access")]
    ProbeAccess,
    /// Internal: kills a playbook's process group if the helpdesk that
    /// started it dies
    #[command(hide = true)]
    Guard,
    /// Internal: decides one spooled message within limits.decision_* and
    /// handles it, for the `run` or `retry` that started it (its standard
    /// input is the locked spool file)
    #[command(hide = true, name = "deliver-spooled")]
    DeliverSpooled {
        path: PathBuf,
        /// Handle it as `retry` does (a leftover), not as a new delivery
        #[arg(long)]
        retry: bool,
        /// The process id of the `run` or `retry` that started it
        #[arg(long)]
        supervisor: u32,
        /// Where `fetch` took it from (journaled with it)
        #[arg(long)]
        intake: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// `log`'s filters and format.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LogArgs {
    /// Only this sender address
    #[arg(long)]
    pub sender: Option<String>,
    /// Only this request type
    #[arg(long = "type", value_name = "TYPE")]
    pub request_type: Option<String>,
    /// Only this outcome (done, failed, timeout, refused, unauthorized,
    /// unauthenticated, duplicate, ignored, limited, quarantined, unknown,
    /// denied, expired, cancelled)
    #[arg(long)]
    pub outcome: Option<String>,
    /// Only the last DURATION (e.g. 2h, 7d) or since an RFC 3339 time
    #[arg(long, value_name = "DURATION|TIME")]
    pub since: Option<String>,
    /// At most this many rows
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The global options still work on both sides of `setup`, though
    /// its help does not show them.
    #[test]
    fn global_options_around_setup() {
        for args in [
            &[
                "helpdesk", "--config", "c.yaml", "-vv", "setup", "--dir", "d",
            ][..],
            &[
                "helpdesk", "setup", "--config", "c.yaml", "-vv", "--dir", "d",
            ],
        ] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.config.as_deref(), Some(std::path::Path::new("c.yaml")));
            assert_eq!(cli.verbose, 2, "{args:?}");
            assert!(matches!(cli.command, Command::Setup(_)));
        }
        let cli = parse(["helpdesk", "setup", "--log-format", "json"]).unwrap();
        assert_eq!(cli.log_format, LogFormat::Json);
        let cli = parse(["helpdesk", "check", "--config", "c.yaml"]).unwrap();
        assert!(cli.config.is_some());
    }
}
