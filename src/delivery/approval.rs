//! **Approvals: what happens to a request that waits** (`approvals:`).
//! `pipeline` freezes it as a `pending` row and mails the approvers; this
//! module takes their answers (by mail, `answered`, or at the terminal,
//! `decide_locally`), ends it when denied or expired (`expire`, from
//! `retry` and `worker`), and runs it once approved, with the frozen vars.
//!
//! An answer by mail counts only when the loop rules let it through (no
//! auto-reply, list or bounce ever approves), it is authenticated as any
//! request is, it comes from an address the rule named when the request
//! was made, not the requester's, and its text (quotes stripped) starts
//! with approve/yes or deny/no. The journal's `vote` is the arbiter: one
//! transaction conditional on the row still being pending, so two
//! approvals delivered at the same moment start the playbook once. A
//! waiting request holds no playbook slot and no lock: nothing waits on it.

use std::path::Path;

use anyhow::anyhow;

use crate::decide::Decision;
use crate::decide::loops;
use crate::decide::trust::{mailbox, sender_matches};
use crate::delivery::journal::{
    self, Journal, Outcome, PendingRow, Record, Row, Verdict, Vote, Voted,
};
use crate::delivery::{open, spool, write_metrics};
use crate::desk::config::Config;
use crate::mail::Mail;
use crate::pipeline::{self, Decided, SUMMARY};
use crate::reply;

/// The most of an approver's reason that is kept.
const REASON_CHARS: usize = 300;

/// Handles mail row `id`, an answer to the approval request whose token
/// is `token`: counts it if it may count, runs the request if that was
/// the last approval needed, and answers the approver. The record of row
/// `id` itself (nothing of its own runs).
pub(crate) fn answered(
    config: &Config,
    journal: &mut Journal,
    id: i64,
    mail: &Mail,
    decided: &Decided,
    (token, binary): (&str, &Path),
) -> anyhow::Result<Record> {
    let label = format!("row {id}");
    let mut record = Record {
        authentication: Some(decided.authentication_text()),
        ..Record::default()
    };
    let sender = mail.sender.as_deref().unwrap_or("-");
    if let Some(silence) = loops::silence(mail, config.helpdesk_address.as_deref()) {
        let why = format!("an answer to an approval request that never counts: {silence}");
        return Ok(said(
            record,
            &label,
            sender,
            Outcome::Ignored,
            why,
            format!("none: {silence}"),
        ));
    }
    if !decided.authenticated() {
        let why = format!(
            "an answer to an approval request that does not count: {}",
            decided.authentication_text()
        );
        let none = "none: the sender is not authenticated".to_owned();
        return Ok(said(
            record,
            &label,
            sender,
            Outcome::Unauthenticated,
            why,
            none,
        ));
    }
    let (outcome, note) = judge(config, journal, id, mail, decided, (token, binary))?;
    record.reply = Some(pipeline::send(config, &label, Some(mail), || {
        reply::approval::note(config, mail, &note)
    }));
    record.outcome = Some(outcome);
    record.reason = Some(note.clone());
    tracing::info!(target: SUMMARY, "{outcome} row {id}: approval answer from {sender}: {note}");
    Ok(record)
}

/// `record` ended with `outcome`, `why` and `reply`, and said.
fn said(
    mut record: Record,
    label: &str,
    sender: &str,
    outcome: Outcome,
    why: String,
    reply: String,
) -> Record {
    tracing::info!(target: SUMMARY, "{outcome} {label}: {why}; from {sender}");
    record.outcome = Some(outcome);
    record.reason = Some(why);
    record.reply = Some(reply);
    record
}

/// Whether an authenticated answer counts, and what follows: this row's
/// outcome and the note for the approver.
fn judge(
    config: &Config,
    journal: &mut Journal,
    id: i64,
    mail: &Mail,
    decided: &Decided,
    (token, binary): (&str, &Path),
) -> anyhow::Result<(Outcome, String)> {
    let sender = mail.sender.as_deref().unwrap_or_default();
    let waiting = match journal.token_row(token)? {
        Some(target) => journal.pending_row(target)?,
        None => None,
    };
    let Some(pending) = waiting else {
        let note = "This mail answers no approval request the helpdesk knows of, so it counts for nothing.";
        return Ok((Outcome::Refused, note.into()));
    };
    let target = pending.row.id;
    let requester = pending.row.sender.as_deref().unwrap_or_default();
    if mailbox(sender) == mailbox(requester) {
        let note = format!(
            "Request {target} is your own: someone else must approve it, so your answer counts for nothing."
        );
        return Ok((Outcome::Unauthorized, note));
    }
    if !pending.approvers.iter().any(|p| sender_matches(p, sender)) {
        let note = format!(
            "You are not among the approvers of request {target} ({}), so your answer counts for nothing.",
            pending.approvers.join(", ")
        );
        return Ok((Outcome::Unauthorized, note));
    }
    let Some((verdict, reason)) = verdict_of(&mail.body) else {
        let note = format!(
            "To approve request {target}, reply with \"approve\" (or \"yes\") as the first word; to deny it, with \"deny\" (or \"no\"), optionally followed by a reason. Nothing was counted."
        );
        return Ok((Outcome::Refused, note));
    };
    let vote = Vote {
        approver: &mailbox(sender),
        verdict,
        authentication: &decided.authentication_text(),
        reason: reason.as_deref(),
        answer_row: Some(id),
        claimer: &spool::process_token(),
    };
    let voted = journal.vote(target, &vote)?;
    settle(config, journal, &pending, voted, &vote, binary)
}

/// The verdict an answer's text starts with, and the reason after it.
fn verdict_of(body: &str) -> Option<(Verdict, Option<String>)> {
    let text = body.trim_start();
    let end = text
        .find(|c: char| !c.is_alphabetic())
        .unwrap_or(text.len());
    let (word, rest) = text.split_at(end);
    let verdict = match word.to_lowercase().as_str() {
        "approve" | "approved" | "yes" => Verdict::Approve,
        "deny" | "denied" | "no" => Verdict::Deny,
        _ => return None,
    };
    let rest = rest.trim_start_matches(|c: char| c.is_whitespace() || ".,:;!-".contains(c));
    let reason: String = rest
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .take(REASON_CHARS)
        .collect();
    Some((verdict, (!reason.is_empty()).then_some(reason)))
}

/// What follows from a journaled vote on `pending`: the answer's outcome
/// and the note for the one who gave it.
fn settle(
    config: &Config,
    journal: &mut Journal,
    pending: &PendingRow,
    voted: Voted,
    vote: &Vote<'_>,
    binary: &Path,
) -> anyhow::Result<(Outcome, String)> {
    let target = pending.row.id;
    Ok(match voted {
        Voted::NotWaiting(outcome) => (
            Outcome::Ignored,
            format!(
                "Request {target} no longer waits for approval ({}): your answer changes nothing.",
                outcome.map_or("it is running", Outcome::as_str)
            ),
        ),
        Voted::Expired => {
            expire_with(config, journal)?;
            (
                Outcome::Ignored,
                format!(
                    "Request {target} was not approved in time and has expired; the requester has been told."
                ),
            )
        }
        Voted::Again => (
            Outcome::Ignored,
            format!("Your answer to request {target} was already counted; the first one stands."),
        ),
        Voted::Counted { have, need } => (
            Outcome::Done,
            format!(
                "Your approval of request {target} is counted: {have} of the {need} needed. It runs once the others approve."
            ),
        ),
        Voted::Denied => {
            let why = vote.reason.map(|r| format!(": {r}")).unwrap_or_default();
            let note = format!(
                "Your {} request (request {target}) was denied by {}{why}. Nothing was run.",
                request_type(&pending.row),
                vote.approver
            );
            tell_requester(config, journal, &pending.row, &note);
            (
                Outcome::Done,
                format!(
                    "Request {target} is denied: nothing was run, and the requester has been told."
                ),
            )
        }
        Voted::Run(vars) => {
            let outcome = run_approved(config, journal, pending, &vars, binary)?;
            (
                Outcome::Done,
                format!(
                    "Request {target} is approved and has run ({outcome}); the requester and the approvers got its result."
                ),
            )
        }
    })
}

fn request_type(row: &Row) -> &str {
    row.record.request_type.as_deref().unwrap_or("-")
}

/// The requester's mail as far as the journal knows it (sender, subject,
/// Message-ID), and the decision it had, with the frozen vars.
fn frozen(
    config: &Config,
    row: &Row,
    vars: &serde_json::Map<String, serde_json::Value>,
) -> (Mail, Decision) {
    let mail = Mail {
        sender: row.sender.clone(),
        subject: row.subject.clone().unwrap_or_default(),
        message_id: row.message_id.clone(),
        ..Mail::default()
    };
    let mut decision = crate::decide::undecided(config, &mail);
    decision.request_type.clone_from(&row.record.request_type);
    vars.clone_into(&mut decision.vars);
    (mail, decision)
}

/// Whether the requester was told nothing when the request began to wait
/// (list or bulk mail, a robot address): then they are told nothing now.
fn requester_silent(row: &Row) -> bool {
    row.record
        .reply
        .as_deref()
        .and_then(|r| r.rsplit("; ").next())
        .is_some_and(|last| last.starts_with("none:"))
}

/// Sends `note` to the requester of `row`, and journals what became of it.
pub(super) fn tell_requester(config: &Config, journal: &Journal, row: &Row, note: &str) {
    let label = format!("row {}", row.id);
    if requester_silent(row) {
        return;
    }
    let (mail, _) = frozen(config, row, &serde_json::Map::new());
    let told = pipeline::send(config, &label, None, || {
        reply::approval::note(config, &mail, note)
    });
    if let Err(e) = journal.set_reply(row.id, Some(&told)) {
        tracing::warn!("{label}: what became of its reply is not journaled: {e}");
    }
}

/// Runs an approved request (its row already marked running for this
/// process) with its frozen vars, journals the outcome, and sends the
/// result to the requester and to each approver who answered by mail.
fn run_approved(
    config: &Config,
    journal: &mut Journal,
    pending: &PendingRow,
    vars: &serde_json::Map<String, serde_json::Value>,
    binary: &Path,
) -> anyhow::Result<Outcome> {
    let row = &pending.row;
    let (id, label) = (row.id, format!("row {}", row.id));
    let approvals = journal.approvals_of(id)?;
    let by: Vec<&str> = approvals
        .iter()
        .filter(|a| a.verdict == Verdict::Approve.as_str())
        .map(|a| a.approver.as_str())
        .collect();
    let how = format!("approved by {}", by.join(", "));
    let job = (id, Some(binary), label.as_str());
    let (run_record, run) = match pipeline::run_frozen(config, request_type(row), vars, job, &how) {
        Ok(ran) => ran,
        Err(e) if pipeline::playbook_started(&e) => return Err(e),
        Err(e) => {
            // Nothing ran; approved once, it is not started again by itself.
            let record = Record {
                outcome: Some(Outcome::Failed),
                reason: Some(format!("{how}, but its playbook could not start: {e:#}")),
                ..row.record.clone()
            };
            journal.record(id, &record, journal::FINISHED)?;
            tell_requester(
                config,
                journal,
                row,
                &format!(
                    "Your {} request (request {id}) was approved, but it could not be started: an administrator has been told. Please ask again later.",
                    request_type(row)
                ),
            );
            return Ok(Outcome::Failed);
        }
    };
    let record = Record {
        reason: Some(how),
        ..run_record.clone()
    };
    let record = Record {
        request_type: row.record.request_type.clone(),
        vars: row.record.vars.clone(),
        authentication: row.record.authentication.clone(),
        access: row.record.access.clone(),
        ..record
    };
    journal.record(id, &record, journal::FINISHED)?;
    tell_results(config, journal, row, vars, &run, &by);
    Ok(record.outcome.unwrap_or(Outcome::Unknown))
}

/// Sends the result of `run` to the requester of `row` and to each of
/// `approvers` who answered by mail, and journals what became of them.
fn tell_results(
    config: &Config,
    journal: &Journal,
    row: &Row,
    vars: &serde_json::Map<String, serde_json::Value>,
    run: &crate::run::ansible::Run,
    approvers: &[&str],
) {
    let label = format!("row {}", row.id);
    let (mail, decision) = frozen(config, row, vars);
    let requester = row.sender.as_deref().filter(|_| !requester_silent(row));
    let told: Vec<String> = requester
        .into_iter()
        .chain(approvers.iter().copied().filter(|a| a.contains('@')))
        .map(|to| pipeline::tell_result(config, &mail, &decision, run.clone(), to, &label))
        .collect();
    if let Err(e) = journal.set_reply(row.id, Some(&told.join("; "))) {
        tracing::warn!("{label}: what became of its replies is not journaled: {e}");
    }
}

/// Ends every request whose approval expired, telling each requester
/// (`retry` and `worker` call it on every sweep).
pub(crate) fn expire(config: &Config) -> anyhow::Result<()> {
    let mut journal = open(config)?;
    expire_with(config, &mut journal)
}

fn expire_with(config: &Config, journal: &mut Journal) -> anyhow::Result<()> {
    let ended = journal.expire_due()?;
    for id in &ended {
        let Some(row) = journal.get(*id)? else {
            continue;
        };
        tracing::warn!(target: SUMMARY, "expired row {id}: {}: nobody approved it in time, nothing run", request_type(&row));
        let note = format!(
            "Your {} request (request {id}) was not approved in time and has expired: nothing was run. Send it again if it is still needed.",
            request_type(&row)
        );
        tell_requester(config, journal, &row, &note);
    }
    if !ended.is_empty() {
        write_metrics(config, journal);
    }
    Ok(())
}

/// The local user at the terminal, as `approve` and `deny` journal them.
fn local_user() -> (String, String) {
    let uid = rustix::process::getuid().as_raw();
    let name = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty() && u.chars().all(|c| c.is_alphanumeric() || "._-".contains(c)))
        .unwrap_or_else(|| format!("uid{uid}"));
    (
        format!("local:{name}"),
        format!("local user {name} (uid {uid}) at the terminal"),
    )
}

/// `helpdesk approve ID` / `helpdesk deny ID`: the operator's answer,
/// journaled as the local user's; what came of it, for the terminal.
pub(crate) fn decide_locally(
    config: &Config,
    binary: &Path,
    id: i64,
    verdict: Verdict,
    reason: Option<&str>,
) -> anyhow::Result<String> {
    let mut journal = open(config)?;
    let pending = journal.pending_row(id)?.ok_or_else(|| {
        anyhow!("row {id} never waited for approval (helpdesk pending lists those that do)")
    })?;
    let (approver, how) = local_user();
    let reason: Option<String> = reason.map(|r| {
        r.chars()
            .filter(|c| !c.is_control())
            .take(REASON_CHARS)
            .collect()
    });
    let vote = Vote {
        approver: &approver,
        verdict,
        authentication: &how,
        reason: reason.as_deref(),
        answer_row: None,
        claimer: &spool::process_token(),
    };
    let voted = journal.vote(id, &vote)?;
    let (outcome, note) = settle(config, &mut journal, &pending, voted, &vote, binary)?;
    write_metrics(config, &journal);
    if outcome == Outcome::Ignored {
        return Err(anyhow!("row {id}: {note}"));
    }
    Ok(format!("row {id}: {note}"))
}

/// `helpdesk pending`: the requests that wait, oldest first.
pub(crate) fn waiting(config: &Config) -> anyhow::Result<Vec<PendingRow>> {
    Ok(open(config)?.waiting()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_starts_with_one_of_the_two_words() {
        let approve = Some((Verdict::Approve, None));
        assert_eq!(verdict_of("approve"), approve);
        assert_eq!(verdict_of("  Yes.\n"), approve);
        assert_eq!(verdict_of("APPROVED!"), approve);
        assert_eq!(
            verdict_of("no: not during the freeze\nthanks"),
            Some((Verdict::Deny, Some("not during the freeze thanks".into())))
        );
        assert_eq!(
            verdict_of("deny - wrong group").map(|v| v.1),
            Some(Some("wrong group".into()))
        );
        for other in [
            "",
            "ok",
            "approves",
            "yesterday",
            "I approve",
            "nope",
            "\u{0}approve",
        ] {
            assert_eq!(verdict_of(other), None, "{other:?}");
        }
        let long = format!("deny {}", "x".repeat(1000));
        assert_eq!(
            verdict_of(&long).unwrap().1.unwrap().chars().count(),
            REASON_CHARS
        );
    }
}
