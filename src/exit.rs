//! Exit statuses, in one place. They follow sysexits(3) because the first
//! reader of `helpdesk run`'s status is an MTA: Postfix defers (and
//! retries) a message on 75 and bounces it to the sender on most others.

use std::process::ExitCode;

/// A sysexits status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Status {
    Ok = 0,
    /// EX_USAGE: the command line was wrong.
    Usage = 64,
    /// EX_DATAERR: what was named cannot be acted on (`approve` of a row
    /// that does not wait for approval).
    DataErr = 65,
    /// EX_NOINPUT: the input file could not be read.
    NoInput = 66,
    /// EX_UNAVAILABLE: a service it needs (a mailbox of `sources:`)
    /// could not be reached.
    Unavailable = 69,
    /// EX_SOFTWARE: a bug: something that should never happen did.
    Software = 70,
    /// EX_CANTCREAT: a file or folder could not be written.
    CantCreate = 73,
    /// EX_TEMPFAIL: could not take the message now; the MTA keeps it and
    /// tries again later.
    TempFail = 75,
    /// EX_NOPERM: a server refused the login (a mailbox of `sources:`).
    NoPerm = 77,
    /// EX_CONFIG: the configuration or the helpdesk folder is wrong.
    Config = 78,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        ExitCode::from(status as u8)
    }
}

/// An error on its way out, with the status it ends the program with.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: Status,
    pub error: anyhow::Error,
}

impl Failure {
    pub(crate) fn new(status: Status, error: impl Into<anyhow::Error>) -> Self {
        Self {
            status,
            error: error.into(),
        }
    }
}
