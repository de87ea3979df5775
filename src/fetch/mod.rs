//! **Fetch: mailboxes as intake, with the pipe's contract.** `helpdesk
//! fetch` reads the mailboxes in `sources:` (IMAP in `imap`, Maildir in
//! `maildir`) and hands each message to `delivery` exactly as `run` does
//! for the MTA: spooled (fsync'd) and claimed in the journal before
//! anything else, and only moved out of the mailbox (to `done`, or to
//! `failed` when it was quarantined) once its outcome is durable.
//!
//! Each message is named in the journal by where it was found
//! (`messages.intake`): `<source>/<UIDVALIDITY>/<UID>` for IMAP, and
//! `<source>/maildir/<unique name>` for a Maildir. Before fetching a
//! message's bytes, `fetch` looks that name up:
//!
//! - no row: the message is delivered (spool, claim, decide, run);
//! - a finished row: it is only moved (a crash came between the outcome
//!   and the move, or the move failed): nothing runs again;
//! - a row still claimed, running or waiting for approval: it stays where
//!   it is until the row is finished (the spooled copy is `retry`'s, which
//!   `fetch` runs at start and every minute, as `worker` does).
//!
//! A crash between the spool write and the claim leaves a spooled copy
//! without a row and the message in its mailbox: `retry` handles the copy,
//! and fetching the message again is a duplicate in the journal's claim
//! (the last guard), which runs nothing. A new UIDVALIDITY makes every
//! name new; the same guard keeps that from running anything twice.
//!
//! A source that cannot be read is health, not a message's outcome: the
//! `sources` table (`journal::Health`), shown by `log`, `check` and the
//! metrics. It is logged as a warning when it starts, as an error once
//! when it has lasted `alert_after`, and again when it is back; between,
//! the reconnection backs off (1 s doubling to 5 minutes).

mod imap;
mod maildir;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;

use crate::delivery::journal::{self, Health, Outcome, Problem, Row};
use crate::delivery::{self, Program, state};
use crate::desk::config::Config;
use crate::desk::sources::{Source, SourceKind};
use crate::exit::Status;

/// Why a source could not be read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub problem: Problem,
    /// What went wrong, with the server's own words where it said any.
    pub message: String,
}

/// What a mailbox holds now: its UIDVALIDITY and each message's UID and
/// size.
#[derive(Debug, Default)]
pub(crate) struct Listed {
    pub validity: u32,
    pub items: Vec<(u32, u64)>,
}

/// Where a handled message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Folder {
    Done,
    /// It was quarantined.
    Failed,
}

/// What to do with a message found in a source, from its journal row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Nothing is known of it: deliver it.
    Deliver,
    /// Its outcome is durable: move it.
    File(Folder),
    /// Its row is not finished yet (claimed, running, queued, waiting for
    /// approval): leave it.
    Wait,
}

/// What became of one message a pass looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Taken {
    File(Folder),
    Wait,
    /// It could not be taken now (the journal is busy, the spool is
    /// full...): it stays in its mailbox, and is tried again later.
    NotNow(String),
}

/// Holds `source` for this process: of two fetches (a cron job that
/// overlaps the one before it, a service and a manual `fetch --once`),
/// one reads a source at a time. `None` when another one holds it.
pub(crate) fn hold(config: &Config, source: &Source) -> Result<Option<std::fs::File>, String> {
    let path = state::source_lock(&config.state_dir, &source.name);
    let held = path
        .parent()
        .map_or(Ok(()), state::create_folder)
        .and_then(|()| {
            state::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        })
        .and_then(|file| Ok(state::try_lock(&file)?.then_some(file)));
    held.map_err(|e| format!("{}: cannot lock it: {e}", path.display()))
}

/// What a fetch needs in every thread and task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub program: Program,
}

/// What one pass over a source did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Pass {
    /// Messages delivered (new to the journal).
    pub delivered: u64,
    /// Messages moved to `done` or `failed`.
    pub filed: u64,
    /// Messages left where they are: their rows are not finished.
    pub waiting: u64,
    /// Messages that could not be taken now.
    pub not_now: u64,
}

pub(crate) fn next(row: Option<&Row>) -> Next {
    match row {
        None => Next::Deliver,
        Some(row) if row.state == journal::FINISHED => {
            if row.record.outcome == Some(Outcome::Quarantined) {
                Next::File(Folder::Failed)
            } else {
                Next::File(Folder::Done)
            }
        }
        Some(_) => Next::Wait,
    }
}

/// The journal row of `intake`, if any; an error is "not now".
pub(crate) fn look_up(config: &Config, intake: &str) -> Result<Next, String> {
    let journal = delivery::open(config).map_err(|e| format!("{e:#}"))?;
    let row = journal.by_intake(intake).map_err(|e| e.to_string())?;
    Ok(next(row.as_ref()))
}

/// Hands one message to `delivery` as `run` would, then asks the journal
/// what became of it.
pub(crate) fn take(shared: &Shared, raw: &[u8], truncated: bool, intake: &str) -> Taken {
    let config = &shared.config;
    match delivery::deliver(config, raw, truncated, &shared.program, Some(intake)) {
        Ok(Status::Ok) => match look_up(config, intake) {
            Ok(Next::File(folder)) => Taken::File(folder),
            Ok(Next::Wait) => Taken::Wait,
            // Delivered, but nothing journaled under its name: leave it
            // rather than lose it (the next pass delivers it again, and a
            // duplicate runs nothing).
            Ok(Next::Deliver) => Taken::NotNow(format!("{intake}: delivered but not journaled")),
            Err(e) => Taken::NotNow(e),
        },
        Ok(status) => Taken::NotNow(format!("{intake}: not taken now (status {})", status as u8)),
        Err(e) => Taken::NotNow(format!("{intake}: {e:#}")),
    }
}

/// Records a pass that read `source`, saying so when it was down before.
pub(crate) fn reached(config: &Config, source: &Source, pass: &Pass) {
    let recorded = delivery::open(config).and_then(|journal| {
        let before = journal.source_reached(&source.name, pass.delivered)?;
        delivery::write_metrics(config, &journal);
        Ok(before)
    });
    match recorded {
        Ok(Some(before)) => tracing::info!(
            "source {}: reachable again, after {} failed attempt(s) since {}",
            source.name,
            before.failures,
            before.since
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!("source {}: cannot record its health: {e:#}", source.name),
    }
    if pass.delivered + pass.filed + pass.not_now > 0 {
        tracing::info!(
            "source {}: {} delivered, {} moved, {} waiting, {} not taken now",
            source.name,
            pass.delivered,
            pass.filed,
            pass.waiting,
            pass.not_now
        );
    }
}

/// Records a failed attempt to read `source`: a warning the first time,
/// an error once when it has been down for `alert_after`, and quiet
/// (-vv) in between, however often it is tried.
pub(crate) fn failed(config: &Config, source: &Source, failure: &Failure) {
    let name = &source.name;
    let recorded = delivery::open(config).and_then(|journal| {
        let health = journal.source_failed(name, failure.problem, &failure.message)?;
        let alert = down_for(&health) >= source.alert_after && journal.source_alerted(name)?;
        delivery::write_metrics(config, &journal);
        Ok((health, alert))
    });
    let (failures, alert) = match recorded {
        Ok((health, alert)) => (health.failures, alert),
        Err(e) => {
            tracing::warn!("source {name}: cannot record its health: {e:#}");
            (1, false)
        }
    };
    let problem = failure.problem.as_str();
    if alert {
        tracing::error!(
            "source {name}: {problem} for more than {}: {}",
            humantime::format_duration(source.alert_after),
            failure.message
        );
    } else if failures == 1 {
        tracing::warn!("source {name}: {problem}: {}", failure.message);
    } else {
        tracing::debug!(
            "source {name}: {problem} (attempt {failures}): {}",
            failure.message
        );
    }
}

fn down_for(health: &Health) -> Duration {
    humantime::parse_rfc3339_weak(&health.since)
        .ok()
        .and_then(|since| since.elapsed().ok())
        .unwrap_or_default()
}

/// `helpdesk fetch`: every source once (`once`), or watched until SIGTERM
/// or SIGINT. With `once`, the status says the worst that happened.
pub(crate) fn fetch(config: Config, program: Program, once: bool) -> anyhow::Result<Status> {
    let runtime = runtime()?;
    let shared = Arc::new(Shared { config, program });
    if once {
        Ok(runtime.block_on(watch::once(shared)))
    } else {
        runtime.block_on(watch::forever(shared));
        Ok(Status::Ok)
    }
}

/// The event loop of a fetch: one thread (the blocking work has a pool).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow!("cannot start fetch's event loop: {e}"))
}

/// `check --online`: logs in to `imap` and selects its mailbox, as a
/// pass would, and says what it found.
pub(crate) fn probe(imap: &crate::desk::sources::Imap) -> Result<String, Failure> {
    let runtime = runtime().map_err(|e| Failure {
        problem: Problem::Unreachable,
        message: e.to_string(),
    })?;
    runtime.block_on(async {
        let mut mailbox = imap::Mailbox::open(imap).await?;
        let listed = mailbox.list().await;
        mailbox.close().await;
        let listed = listed?;
        Ok(format!(
            "logged in to {}:{} as {}; {} holds {} message(s) (UIDVALIDITY {})",
            imap.host,
            imap.port,
            imap.username,
            imap.mailbox,
            listed.items.len(),
            listed.validity
        ))
    })
}

/// The status of a `fetch --once` whose sources failed so.
pub(crate) fn status_of(failure: &Failure) -> Status {
    match failure.problem {
        Problem::Login => Status::NoPerm,
        Problem::Unreachable | Problem::Mailbox => Status::Unavailable,
    }
}

/// Which of two statuses `fetch --once` ends with: a refused login over
/// an unreachable source over a message not taken now over success.
pub(crate) fn worse(a: Status, b: Status) -> Status {
    let rank = |s: Status| match s {
        Status::NoPerm => 3,
        Status::Unavailable => 2,
        Status::TempFail => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// The kind of a source, for messages.
pub(crate) fn kind(source: &Source) -> &'static str {
    match source.kind {
        SourceKind::Imap(_) => "IMAP mailbox",
        SourceKind::Maildir(_) => "Maildir",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_status_wins() {
        assert_eq!(worse(Status::Ok, Status::TempFail), Status::TempFail);
        assert_eq!(worse(Status::NoPerm, Status::Unavailable), Status::NoPerm);
        assert_eq!(worse(Status::Unavailable, Status::Ok), Status::Unavailable);
    }
}
