//! **The control address** (`control_address:`), for operators, like the
//! debbugs control robot: a mail sent to it (To or Cc) is a list of
//! commands, one a line, and the answer is a transcript by mail. Only an
//! authenticated sender that an access grant names for `control` (by that
//! name: `"*"` does not give it) may use it; the loop rules apply first.
//!
//! Commands: `status ID`, `cancel ID` (a request that waits for approval
//! or in the queue; nothing of it has started), `pending`, `log` (the
//! latest rows). Reading stops at `quit`, `thanks` or a signature line,
//! and after `MAX_COMMANDS` commands.

use std::fmt::Write as _;

use crate::decide::loops;
use crate::decide::trust::sender_matches;
use crate::delivery::approval::tell_requester;
use crate::delivery::journal::{Filter, Journal, Outcome, Record};
use crate::desk::config::Config;
use crate::mail::Mail;
use crate::pipeline::{self, Decided, SUMMARY};
use crate::reply;

/// The most commands read from one mail.
const MAX_COMMANDS: usize = 20;

/// The rows `log` lists.
const LOG_ROWS: usize = 10;

/// Whether `mail` was sent to the control address.
pub(crate) fn addressed(config: &Config, mail: &Mail) -> bool {
    config
        .control_address
        .as_deref()
        .is_some_and(|control| mail.recipients.iter().any(|r| r == control))
}

/// Handles mail row `id`, sent to the control address: runs its
/// commands if its sender may, and answers with the transcript.
pub(crate) fn handle(
    config: &Config,
    journal: &mut Journal,
    id: i64,
    mail: &Mail,
    decided: &Decided,
) -> anyhow::Result<Record> {
    let label = format!("row {id}");
    let sender = mail.sender.as_deref().unwrap_or("-");
    let mut record = Record {
        request_type: Some("control".into()),
        authentication: Some(decided.authentication_text()),
        ..Record::default()
    };
    let (outcome, reason, reply) = if let Some(silence) =
        loops::silence(mail, config.helpdesk_address.as_deref())
    {
        (
            Outcome::Ignored,
            format!("control mail not acted on: {silence}"),
            format!("none: {silence}"),
        )
    } else if !decided.authenticated() {
        let why = format!(
            "control mail not acted on: {}",
            decided.authentication_text()
        );
        (
            Outcome::Unauthenticated,
            why,
            "none: the sender is not authenticated".into(),
        )
    } else if !may_control(config, sender) {
        let note = "You may not use the helpdesk's control address: no access grant names you for control.";
        let sent = pipeline::send(config, &label, Some(mail), || {
            reply::approval::note(config, mail, note)
        });
        (Outcome::Unauthorized, note.to_owned(), sent)
    } else {
        let (count, transcript) = run_commands(config, journal, &mail.body, sender)?;
        let sent = pipeline::send(config, &label, Some(mail), || {
            reply::approval::transcript(config, mail, &transcript)
        });
        (Outcome::Done, format!("control: {count} command(s)"), sent)
    };
    tracing::info!(target: SUMMARY, "{outcome} {label}: {reason}; from {sender}");
    record.outcome = Some(outcome);
    record.reason = Some(reason);
    record.reply = Some(reply);
    Ok(record)
}

/// Whether a grant names `sender` for `control`.
fn may_control(config: &Config, sender: &str) -> bool {
    config.access.iter().flatten().any(|grant| {
        grant.requests.iter().any(|r| r == "control")
            && grant.senders.iter().any(|p| sender_matches(p, sender))
    })
}

/// Runs the commands of `body` for `sender`: how many, and the transcript.
fn run_commands(
    config: &Config,
    journal: &mut Journal,
    body: &str,
    sender: &str,
) -> anyhow::Result<(usize, String)> {
    let mut transcript = String::new();
    let mut count = 0;
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let word = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_lowercase();
        if matches!(word.as_str(), "quit" | "thanks" | "thank" | "stop") || line.starts_with("--") {
            let _ = writeln!(transcript, "> {line}\nStopping here.\n");
            break;
        }
        if count == MAX_COMMANDS {
            let _ = writeln!(transcript, "Stopping after {MAX_COMMANDS} commands.\n");
            break;
        }
        count += 1;
        let answer = command(config, journal, line, sender)?;
        let _ = writeln!(transcript, "> {line}\n{answer}\n");
    }
    if count == 0 {
        transcript
            .push_str("No command found. The commands are: status ID, cancel ID, pending, log.\n");
    }
    Ok((count, transcript))
}

/// What one command line does and says.
fn command(
    config: &Config,
    journal: &mut Journal,
    line: &str,
    sender: &str,
) -> anyhow::Result<String> {
    let mut words = line.split_whitespace();
    let verb = words.next().unwrap_or_default().to_lowercase();
    let id = words
        .next()
        .and_then(|w| w.trim_start_matches('#').parse::<i64>().ok());
    let extra = words.next().is_some();
    Ok(match (verb.as_str(), id, extra) {
        ("status", Some(id), false) => status(journal, id)?,
        ("cancel", Some(id), false) => cancel(config, journal, id, sender)?,
        ("pending", None, false) => pending(journal)?,
        ("log", None, false) => log(journal)?,
        _ => "Not understood. The commands are: status ID, cancel ID, pending, log.".into(),
    })
}

fn status(journal: &Journal, id: i64) -> anyhow::Result<String> {
    let Some(row) = journal.get(id)? else {
        return Ok(format!("There is no request {id}."));
    };
    let mut said = format!(
        "Request {id}: {} from {}, received {}, {}",
        row.record.request_type.as_deref().unwrap_or("-"),
        row.sender.as_deref().unwrap_or("-"),
        row.received_at,
        row.record
            .outcome
            .map_or_else(|| row.state.to_string(), |o| o.to_string())
    );
    if let Some(pending) = journal.pending_row(id)? {
        let approved = pending
            .approvals
            .iter()
            .filter(|a| a.verdict == "approve")
            .count();
        let _ = write!(
            said,
            "; approvals {approved}/{}, expires {}",
            pending.required, pending.expires_at
        );
    }
    if let Some(reason) = &row.record.reason {
        let _ = write!(said, "; {reason}");
    }
    Ok(said)
}

fn cancel(config: &Config, journal: &mut Journal, id: i64, sender: &str) -> anyhow::Result<String> {
    if !journal.cancel(id, sender)? {
        return Ok(format!(
            "Request {id} was not cancelled: only a request that waits for approval or in the queue can be (see status {id})."
        ));
    }
    if let Some(row) = journal.get(id)? {
        let note = format!(
            "Your {} request (request {id}) was cancelled by {sender}. Nothing was run.",
            row.record.request_type.as_deref().unwrap_or("-")
        );
        tell_requester(config, journal, &row, &note);
    }
    Ok(format!(
        "Request {id} is cancelled: nothing was run, and the requester has been told."
    ))
}

fn pending(journal: &Journal) -> anyhow::Result<String> {
    let rows = journal.waiting()?;
    if rows.is_empty() {
        return Ok("No request waits for approval.".into());
    }
    Ok(rows
        .iter()
        .map(|p| {
            let approved = p
                .approvals
                .iter()
                .filter(|a| a.verdict == "approve")
                .count();
            format!(
                "{} {} from {}: approvals {approved}/{}, expires {}",
                p.row.id,
                p.row.record.request_type.as_deref().unwrap_or("-"),
                p.row.sender.as_deref().unwrap_or("-"),
                p.required,
                p.expires_at
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

fn log(journal: &Journal) -> anyhow::Result<String> {
    let rows = journal.list(&Filter {
        limit: LOG_ROWS,
        ..Filter::default()
    })?;
    Ok(rows
        .iter()
        .map(|row| {
            format!(
                "{} {} {} {} {}",
                row.id,
                row.received_at,
                row.sender.as_deref().unwrap_or("-"),
                row.record.request_type.as_deref().unwrap_or("-"),
                row.record
                    .outcome
                    .map_or_else(|| row.state.to_string(), |o| o.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}
