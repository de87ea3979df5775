//! Command-line arguments, as clap sees them.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

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

    /// Say more on stderr (-v: each decision, -vv: debugging)
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
        /// How often to look at the spool
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
    },
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff)
    Man,
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
    /// unauthenticated, duplicate, ignored, limited, quarantined, unknown)
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
