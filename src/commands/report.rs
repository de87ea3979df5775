//! How `parse` shows a decision: one JSON object, or text for people; and
//! how `log` and `show` show journal rows. Every text that came from a mail
//! goes through `terminal::escape` on its way to the screen.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::commands::terminal::{escape, escape_lines};
use crate::decide::Decision;
use crate::decide::loops;
use crate::decide::redact::Secrets;
use crate::desk::config::Config;
use crate::desk::keywords::Keywords;
use crate::mail::Mail;
use crate::maintenance::{Notice, format_time};
use crate::outcome::State;
use crate::reply::{self, Reply, ReplyError};
use crate::run::ansible::{self, VARS_FILE_PLACEHOLDER};

/// The reply `run` would send, or why it would send none.
#[derive(Debug, Clone)]
pub(crate) enum Preview {
    Reply(Reply),
    None(String),
}

/// What `run` would answer, without sending anything or counting it
/// against the reply limit.
pub(crate) fn preview(
    config: &Config,
    keywords: &Keywords,
    mail: &Mail,
    decision: &Decision,
) -> Result<Preview, ReplyError> {
    if let Some(silence) = loops::silence(mail, config.helpdesk_address.as_deref()) {
        let what = if silence.drops_request() {
            "ignored, nothing runs"
        } else {
            "no reply"
        };
        return Ok(Preview::None(format!("{what}: {silence}")));
    }
    let Some(answer) = reply::answer(&config.desk, keywords, decision)? else {
        return Ok(Preview::None(format!(
            "no reply, nothing runs: {}",
            decision.authentication
        )));
    };
    let secrets = Secrets::new(&decision.vars, &decision.secret_names);
    Ok(Preview::Reply(reply::compose(
        config, keywords, mail, decision, &answer, &secrets,
    )?))
}

fn preview_json(preview: &Preview) -> Value {
    match preview {
        Preview::Reply(reply) => json!(reply),
        Preview::None(why) => json!({ "none": why }),
    }
}

/// The JSON object of `parse --format json`.
pub(crate) fn json(
    config: &Config,
    mail: &Mail,
    decision: &Decision,
    preview: &Preview,
    explain: bool,
) -> Value {
    let command = command(config, decision);
    let mut object = json!({
        "request_type": decision.request_type,
        "playbook": decision.playbook.as_ref().map(|p| p.display.clone()),
        "command": command,
        "vars": decision.vars,
        "reason": decision.reason,
        "missing": decision.missing,
        "invalid": decision.invalid,
        "trust": {
            "authentication": decision.authentication.to_string(),
            "access": decision.access.as_ref().map(ToString::to_string),
        },
        "reply": preview_json(preview),
        "text": decision.searched,
        "cuts": mail.cuts,
    });
    if explain && let Some(map) = object.as_object_mut() {
        map.insert("explain".into(), json!(explanation(config, mail, decision)));
    }
    object
}

/// What `parse --format json` puts over a request's fields for a
/// provider's maintenance notice: `maintenance` (the object read),
/// `maintenance_event` and `maintenance_playbook` (what a notice newer than
/// the journal's would run) with its `vars`; or `unreadable` and who it is
/// forwarded to. A notice has no keywords, phrasebook or reply, so the
/// request's `reason`, `vars`, `missing` and `invalid` would mislead.
pub(crate) fn notice_json(config: &Config, notice: &Notice) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(
        "request_type".into(),
        json!(crate::delivery::maintenance::MAINTENANCE),
    );
    map.insert("command".into(), Value::Null);
    map.insert("missing".into(), json!([]));
    map.insert("invalid".into(), json!([]));
    // A notice is never answered.
    map.insert("reply".into(), Value::Null);
    match notice {
        Notice::Read(m) => {
            let (event, playbook) = crate::delivery::maintenance::would_run(config, m);
            let vars = json!(crate::delivery::maintenance::vars(m, event));
            map.insert(
                "reason".into(),
                json!(format!(
                    "a maintenance notice from provider {}: runs {event} when newer than the journal's notice",
                    m.provider
                )),
            );
            map.insert("maintenance".into(), json!(m));
            map.insert("maintenance_event".into(), json!(event));
            map.insert("maintenance_playbook".into(), json!(playbook));
            map.insert("playbook".into(), json!(playbook));
            map.insert("maintenance_vars".into(), vars.clone());
            map.insert("vars".into(), vars);
        }
        Notice::Unreadable(reason) => {
            map.insert(
                "reason".into(),
                json!(format!(
                    "a maintenance notice no parser could read: {reason}"
                )),
            );
            map.insert("unreadable".into(), json!(reason));
            map.insert("forward_to".into(), json!(config.maintenance.unreadable));
            map.insert("playbook".into(), Value::Null);
            map.insert("vars".into(), json!({}));
        }
    }
    map
}

/// A maintenance as `maintenances` and `parse` print it: a line with the
/// provider, id, status and times, then its summary and circuits.
pub(crate) fn maintenance_block(m: &crate::maintenance::Maintenance) -> String {
    let mut out = format!(
        "{} {}  {}  {} → {}{}\n",
        escape(&m.provider),
        escape(&m.maintenance_id),
        m.status.as_str(),
        format_time(&m.start),
        format_time(&m.end),
        m.sequence
            .map_or_else(String::new, |n| format!("  seq {n}"))
    );
    if !m.summary.is_empty() {
        let _ = writeln!(out, "  {}", escape(&m.summary));
    }
    for circuit in &m.circuits {
        let _ = writeln!(
            out,
            "  circuit {} {}",
            escape(&circuit.id),
            escape(&circuit.impact)
        );
    }
    out
}

/// `parse --format text` for a maintenance notice: what it reads as,
/// what would run, the trust line, and that no reply goes out. The
/// request lines are left out: a notice is never a request.
pub(crate) fn notice_text(config: &Config, decision: &Decision, notice: &Notice) -> String {
    let mut out = match notice {
        Notice::Read(m) => {
            let (event, playbook) = crate::delivery::maintenance::would_run(config, m);
            format!(
                "maintenance notice\n{}  runs {event} when newer than the journal's notice:\n    {}\n",
                maintenance_block(m),
                playbook.as_deref().map_or(
                    "no playbook (maintenance.playbooks names none)".into(),
                    escape
                )
            )
        }
        Notice::Unreadable(reason) => format!(
            "maintenance notice, unreadable: {}\n  forwarded to {} with the reason\n",
            escape(reason),
            escape(&config.maintenance.unreadable.join(", "))
        ),
    };
    let _ = writeln!(
        out,
        "trust         {}",
        escape(&decision.authentication.to_string())
    );
    let _ = writeln!(out, "reply         none: a provider's notice gets no reply");
    out
}

/// The text of `parse --format text`.
pub(crate) fn text(
    config: &Config,
    mail: &Mail,
    decision: &Decision,
    preview: &Preview,
    explain: bool,
) -> String {
    let mut out = String::new();
    let none = "-".to_owned();
    let _ = writeln!(
        out,
        "request type  {}",
        decision.request_type.as_ref().unwrap_or(&none)
    );
    if let Some(reason) = &decision.reason {
        let _ = writeln!(out, "reason        {}", escape(reason));
    }
    let playbook = decision.playbook.as_ref().map(|p| p.display.clone());
    let _ = writeln!(out, "playbook      {}", playbook.as_ref().unwrap_or(&none));
    let command = command(config, decision).map(|argv| ansible::shell_words(&argv));
    let _ = writeln!(out, "command       {}", command.as_ref().unwrap_or(&none));
    let _ = writeln!(out, "vars");
    for (name, value) in &decision.vars {
        let _ = writeln!(out, "  {}: {}", escape(name), escape(&value.to_string()));
    }
    let _ = writeln!(
        out,
        "trust         {}",
        escape(&decision.authentication.to_string())
    );
    if let Some(access) = &decision.access {
        let _ = writeln!(out, "              {}", escape(&access.to_string()));
    }
    for invalid in &decision.invalid {
        let _ = writeln!(
            out,
            "invalid       {} {}",
            escape(&invalid.var),
            escape(&invalid.why)
        );
    }
    for missing in &decision.missing {
        let _ = writeln!(
            out,
            "missing       {} (write: {})",
            escape(&missing.var),
            escape(&missing.form)
        );
    }
    write_preview(&mut out, preview);
    if explain {
        let _ = writeln!(out, "explain");
        for line in explanation(config, mail, decision) {
            let _ = writeln!(out, "  {}", escape(&line));
        }
        let _ = writeln!(out, "text read (subject, then body)");
        for line in decision.searched.lines() {
            let _ = writeln!(out, "  | {}", escape(line));
        }
    }
    out
}

/// The `reply` lines of `parse --format text`.
fn write_preview(out: &mut String, preview: &Preview) {
    match preview {
        Preview::None(why) => {
            let _ = writeln!(out, "reply         none: {}", escape(why));
        }
        Preview::Reply(reply) => {
            let _ = writeln!(
                out,
                "reply         to {}, {}, from template {}",
                escape(&reply.to),
                escape(&format!("{:?}", reply.subject)),
                escape(&reply.template)
            );
            if let Some(body) = &reply.body {
                for line in body.lines() {
                    let _ = writeln!(out, "  | {}", escape(line));
                }
            }
        }
    }
}

fn command(config: &Config, decision: &Decision) -> Option<Vec<String>> {
    if !decision.runs_playbook() {
        return None;
    }
    let playbook = decision.playbook.as_ref()?;
    Some(ansible::command_line(
        &config.ansible,
        &playbook.display,
        VARS_FILE_PLACEHOLDER,
    ))
}

/// One line per fact: where the body came from, which keyword chose the
/// request type, and which phrase set each variable.
fn explanation(config: &Config, mail: &Mail, decision: &Decision) -> Vec<String> {
    let mut lines = vec![
        format!(
            "sender {} (from the {} header)",
            mail.sender.as_deref().unwrap_or("unknown"),
            config.sender_header
        ),
        format!(
            "body read from {}, quoted text and signature removed ({} lines left)",
            mail.body_source.as_str(),
            if mail.body.is_empty() {
                0
            } else {
                mail.body.lines().count()
            }
        ),
    ];
    lines.extend(mail.cuts.iter().map(ToString::to_string));
    if mail.topic != mail.subject {
        lines.push(format!(
            "subject {:?} classified as {:?}",
            mail.subject, mail.topic
        ));
    }
    match &decision.classification {
        Some(c) => lines.push(format!(
            "request type {}: keyword '{}' ({}:{}) at {}",
            c.request_type,
            c.phrase,
            c.file,
            c.line,
            decision.locate(c.start)
        )),
        None => lines.push(format!(
            "no request type: {}",
            decision.reason.as_deref().unwrap_or("no keyword")
        )),
    }
    for e in &decision.evidence {
        let at = e.span.map(|(start, _)| decision.locate(start));
        let phrase = if e.phrase.is_empty() {
            String::new()
        } else {
            format!("'{}' ", e.phrase)
        };
        let mut line = format!(
            "{} = {}: {phrase}(*{}* at {}:{})",
            e.var, e.value, e.section, e.file, e.line
        );
        if let Some(at) = at {
            let _ = write!(line, " at {at}");
        }
        if let Some(note) = &e.note {
            let _ = write!(line, ": {note}");
        }
        lines.push(line);
    }
    let unexplained: Vec<&str> = decision
        .vars
        .iter()
        .filter(|(name, value)| {
            (value.is_null() || **value == Value::Bool(false))
                && !decision.evidence.iter().any(|e| &e.var == *name)
        })
        .map(|(name, _)| name.as_str())
        .collect();
    if decision.request_type.is_some() && !unexplained.is_empty() {
        lines.push(format!("not found in the mail: {}", unexplained.join(", ")));
    }
    lines
}

/// `helpdesk log`: one line per row; a row whose delivery waits for a
/// playbook slot (`queue`) says `waiting` and its place in line,
/// `waiting 2/5`, where a running one says `running`.
pub(crate) fn log_table(
    rows: &[crate::delivery::journal::Row],
    queue: &[crate::run::slots::Waiting],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>6}  {:<24}  {:<28}  {:<16}  {:<15}  {:>7}  subject",
        "id", "received", "sender", "type", "outcome", "secs"
    );
    for row in rows {
        let cut = |text: &str, width: usize| -> String {
            if text.chars().count() <= width {
                text.to_owned()
            } else {
                text.chars()
                    .take(width.saturating_sub(1))
                    .collect::<String>()
                    + "…"
            }
        };
        let outcome = match (row.record.outcome, waiting_at(row, queue)) {
            (Some(outcome), _) => outcome.as_str().to_owned(),
            (None, Some(position)) => format!("waiting {position}/{}", queue.len()),
            (None, None) if row.backing_off().is_some() => "backing off".to_owned(),
            (None, None) => row.state.as_str().to_owned(),
        };
        let secs = row
            .record
            .duration_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{:.1}", ms as f64 / 1000.0));
        // A quarantined message's subject was never read: its reason instead.
        let subject = match (row.subject.as_deref(), row.record.reason.as_deref()) {
            (None | Some(""), Some(reason)) => reason,
            (subject, _) => subject.unwrap_or(""),
        };
        let _ = writeln!(
            out,
            "{:>6}  {:<24}  {:<28}  {:<16}  {:<15}  {:>7}  {}",
            row.id,
            cut(&escape(&row.received_at), 24),
            cut(&escape(row.sender.as_deref().unwrap_or("-")), 28),
            cut(
                &escape(row.record.request_type.as_deref().unwrap_or("-")),
                16
            ),
            cut(&escape(&outcome), 15),
            secs,
            cut(&escape(subject), 60)
        );
    }
    out
}

/// The health of `fetch`'s sources, above `helpdesk log`'s rows: one line
/// each, so that a mailbox that cannot be read is not taken for messages
/// that failed.
pub(crate) fn sources_lines(sources: &[crate::delivery::journal::Health]) -> String {
    let mut out = String::new();
    for source in sources {
        let _ = if source.reachable {
            writeln!(
                out,
                "source {}: reachable (last read {}, {} message(s) taken in all)",
                escape(&source.name),
                escape(&source.checked_at),
                source.fetched
            )
        } else {
            writeln!(
                out,
                "source {}: {} since {} ({} failed attempt(s), the last {}): {}",
                escape(&source.name),
                source.problem.map_or("unreachable", |p| p.as_str()),
                escape(&source.since),
                source.failures,
                escape(&source.checked_at),
                escape(source.error.as_deref().unwrap_or("-"))
            )
        };
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// The place in line of `row`'s delivery, if it waits for a slot: its
/// claimer's process (`<pid>:<start>`) holds a ticket. Only a claimed row
/// waits: the slot is taken before the row is marked running (see
/// `delivery`'s state machine).
fn waiting_at(
    row: &crate::delivery::journal::Row,
    queue: &[crate::run::slots::Waiting],
) -> Option<usize> {
    if row.state != State::Claimed {
        return None;
    }
    let pid = row
        .claimed_by
        .as_deref()?
        .split_once(':')?
        .0
        .parse::<u32>()
        .ok()?;
    queue.iter().find(|w| w.pid == pid).map(|w| w.position)
}

/// `helpdesk pending`: one line per request that waits for approval.
pub(crate) fn pending_table(rows: &[crate::delivery::journal::PendingRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>6}  {:<24}  {:<28}  {:<16}  {:>8}  {:<24}  approvers",
        "id", "received", "sender", "type", "approved", "expires"
    );
    for pending in rows {
        let row = &pending.row;
        let approved = pending
            .approvals
            .iter()
            .filter(|a| a.verdict == "approve")
            .count();
        let _ = writeln!(
            out,
            "{:>6}  {:<24}  {:<28}  {:<16}  {:>8}  {:<24}  {}",
            row.id,
            escape(&row.received_at),
            escape(row.sender.as_deref().unwrap_or("-")),
            escape(row.record.request_type.as_deref().unwrap_or("-")),
            format!("{approved}/{}", pending.required),
            escape(&pending.expires_at),
            escape(&pending.approvers.join(", "))
        );
    }
    if rows.is_empty() {
        out.push_str("(no request waits for approval)\n");
    }
    out
}

/// `helpdesk show`: every field of a row, then its run log.
pub(crate) fn show_row(row: &crate::delivery::journal::Row) -> String {
    let mut out = String::new();
    let line = |out: &mut String, name: &str, value: Option<String>| {
        let value = value.unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "{name:<15} {}", escape(&value));
    };
    let r = &row.record;
    line(&mut out, "id", Some(row.id.to_string()));
    line(&mut out, "message id", row.message_id.clone());
    line(&mut out, "received", Some(row.received_at.clone()));
    line(&mut out, "sender", row.sender.clone());
    line(&mut out, "subject", row.subject.clone());
    line(&mut out, "request type", r.request_type.clone());
    line(&mut out, "authentication", r.authentication.clone());
    line(&mut out, "access", r.access.clone());
    line(&mut out, "state", Some(row.state.to_string()));
    line(&mut out, "outcome", r.outcome.map(|o| o.to_string()));
    if r.reason.is_some() {
        line(&mut out, "reason", r.reason.clone());
    }
    if let Some(after) = row.backing_off() {
        line(
            &mut out,
            "next attempt",
            Some(format!(
                "after {after} (helpdesk retry --now tries it at once)"
            )),
        );
    }
    line(
        &mut out,
        "duplicate of",
        row.duplicate_of.map(|d| d.to_string()),
    );
    line(&mut out, "attempts", Some(row.attempts.to_string()));
    line(&mut out, "exit code", r.exit_code.map(|c| c.to_string()));
    line(&mut out, "run started", row.started_at.clone());
    line(
        &mut out,
        "duration",
        r.duration_ms
            .map(|ms| format!("{:.1}s", ms as f64 / 1000.0)),
    );
    for approval in &row.approvals {
        let reason = approval
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        line(
            &mut out,
            approval.verdict.as_str(),
            Some(format!(
                "{} by {} ({}){reason}",
                approval.at, approval.approver, approval.authentication
            )),
        );
    }
    line(&mut out, "reply", r.reply.clone());
    line(&mut out, "raw message", row.spool_path.clone());
    line(&mut out, "vars", r.vars.clone());
    line(&mut out, "run log", r.run_log.clone());
    if let Some(log) = r
        .run_log
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        let _ = writeln!(out);
        // The run log holds what the playbook printed of the mail's values.
        out.push_str(&escape_lines(&log));
    }
    out
}
