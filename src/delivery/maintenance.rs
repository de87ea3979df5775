//! Provider maintenance notices through the journal: a notice changes the
//! journal's maintenance (new, updated, cancelled, or nothing when it is
//! older), the change runs `maintenance.playbooks.scheduled` or
//! `cancelled`, and `worker`'s pass runs `started` and `ended` at their
//! times, each once (a conditional UPDATE takes the phase before its
//! playbook starts, so a crash can lose a phase's run but never repeat
//! it). A notice no parser could read is forwarded to
//! `maintenance.unreadable`. The values reach Ansible as every request's
//! do: flat extra-vars, every string not plainly inert tagged `!unsafe`.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::{Map, Value, json};

use crate::delivery::journal::maintenances::{Change, Phase, Stored};
use crate::delivery::journal::{Record, Start};
use crate::desk::Playbook;
use crate::desk::config::Config;
use crate::mail::Mail;
use crate::maintenance::{Maintenance, Notice, format_time};
use crate::outcome::Outcome;
use crate::pipeline::{self, Journaling, OutcomeNotKept};
use crate::reply::forward;

/// The request type a notice's row is journaled under.
pub(crate) const MAINTENANCE: &str = "maintenance";

/// The extra-vars a maintenance's playbooks get: flat, because the vars
/// file is (see `run::ansible::extra_vars_yaml`); the circuits also as
/// JSON text, for `from_json`.
pub(crate) fn vars(m: &Maintenance, event: &str) -> Map<String, Value> {
    let ids: Vec<&str> = m.circuits.iter().map(|c| c.id.as_str()).collect();
    let circuits = serde_json::to_string(&m.circuits).unwrap_or_else(|_| "[]".into());
    let object = json!({
        "maintenance_event": event,
        "maintenance_provider": m.provider,
        "maintenance_id": m.maintenance_id,
        "maintenance_account": m.account.clone().unwrap_or_default(),
        "maintenance_status": m.status.as_str(),
        "maintenance_sequence": m.sequence,
        "maintenance_start": format_time(&m.start),
        "maintenance_end": format_time(&m.end),
        "maintenance_summary": m.summary,
        "maintenance_organizer": m.organizer.clone().unwrap_or_default(),
        "maintenance_circuit_ids": ids.join(","),
        "maintenance_circuits": circuits,
    });
    match object {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The playbook a change runs, if the config names one.
fn playbook_of<'a>(config: &'a Config, event: &str) -> Option<&'a PathBuf> {
    let playbooks = &config.maintenance.playbooks;
    match event {
        "scheduled" => playbooks.scheduled.as_ref(),
        "cancelled" => playbooks.cancelled.as_ref(),
        "started" => playbooks.started.as_ref(),
        "ended" => playbooks.ended.as_ref(),
        _ => None,
    }
}

/// The event a change is: `scheduled` (new or updated), `cancelled`, or
/// none (an older or equal notice).
fn event_of(change: Change) -> Option<&'static str> {
    match change {
        Change::New | Change::Updated => Some("scheduled"),
        Change::Cancelled => Some("cancelled"),
        Change::Unchanged => None,
    }
}

/// What `parse` shows: the event a notice would be if it is newer than
/// what the journal has, and that event's playbook.
pub(crate) fn would_run(config: &Config, m: &Maintenance) -> (&'static str, Option<String>) {
    let event = if m.status == crate::maintenance::Status::Cancelled {
        "cancelled"
    } else {
        "scheduled"
    };
    let shown = playbook_of(config, event).map(|p| p.display().to_string());
    (event, shown)
}

/// Handles row `id`, a notice: the record to journal.
pub(crate) fn handle(
    config: &Config,
    id: i64,
    (mail, raw): (&Mail, &[u8]),
    notice: Option<&Notice>,
    guard: Option<&Path>,
    journaling: &mut dyn Journaling,
) -> anyhow::Result<Record> {
    let provider = mail
        .sender
        .as_deref()
        .and_then(|s| config.maintenance.provider_of(s))
        .map_or("-", |p| p.name.as_str());
    let m = match notice {
        Some(Notice::Read(m)) => m,
        None => return Err(anyhow::anyhow!("row {id}: not a maintenance notice")),
        Some(Notice::Unreadable(reason)) => {
            return Ok(unreadable(config, id, (mail, raw), provider, reason));
        }
    };
    let change = journaling.note_maintenance(m)?;
    let key = format!("{}/{}", m.provider, m.maintenance_id);
    let label = format!("row {id}");
    let mut record = Record {
        request_type: Some(MAINTENANCE.into()),
        vars: Some(Value::Object(vars(m, change.as_str())).to_string()),
        ..Record::default()
    };
    let Some(event) = event_of(change) else {
        record.outcome = Some(Outcome::Ignored);
        record.reason = Some(format!(
            "maintenance {key}: an older or equal notice ({}): nothing changed",
            ordering(m)
        ));
        record.reply = Some("none: a maintenance notice".into());
        tracing::info!(target: pipeline::SUMMARY, "ignored {label}: {}", record.reason.as_deref().unwrap_or_default());
        return Ok(record);
    };
    let said = format!("maintenance {key}: {} ({})", change.as_str(), ordering(m));
    record.reply = Some("none: a maintenance notice".into());
    let Some(path) = playbook_of(config, event) else {
        record.outcome = Some(Outcome::Done);
        record.reason = Some(format!(
            "{said}; no {event} playbook in maintenance.playbooks"
        ));
        tracing::info!(target: pipeline::SUMMARY, "done {label}: {}", record.reason.as_deref().unwrap_or_default());
        return Ok(record);
    };
    if let Start::Limited { limit, .. } = journaling.running(&record)? {
        record.outcome = Some(Outcome::Limited);
        record.reason = Some(format!(
            "{said}; its {event} playbook not run: the provider's sender started {limit} runs in the past hour (limits.runs_per_sender_per_hour)"
        ));
        tracing::warn!(target: pipeline::SUMMARY, "limited {label}: {}", record.reason.as_deref().unwrap_or_default());
        return Ok(record);
    }
    let playbook = Playbook {
        path: Some(path.clone()),
        display: path.display().to_string(),
    };
    let vars = vars(m, event);
    let how = format!("{said}, maintenance {event}");
    let (ran, _) =
        pipeline::run_playbook(config, &playbook, event, &vars, (id, guard, &label), &how)?;
    let record = Record {
        request_type: record.request_type,
        reply: record.reply,
        reason: ran.reason.clone().or(Some(said)),
        vars: Some(Value::Object(vars).to_string()),
        ..ran
    };
    journaling
        .finished(&record)
        .map_err(|e| anyhow::Error::new(OutcomeNotKept(e)))?;
    Ok(record)
}

/// Row `id`, a notice no parser could read: forwarded to
/// `maintenance.unreadable` with the reason; the record to journal.
fn unreadable(
    config: &Config,
    id: i64,
    (mail, raw): (&Mail, &[u8]),
    provider: &str,
    reason: &str,
) -> Record {
    let what = forward::Unreadable {
        provider,
        reason,
        row: id,
    };
    tracing::warn!(
        target: pipeline::SUMMARY,
        "unreadable row {id}: maintenance notice from {provider}: {reason}; forwarded to maintenance.unreadable"
    );
    Record {
        request_type: Some(MAINTENANCE.into()),
        outcome: Some(Outcome::Unreadable),
        reason: Some(format!("unreadable notice from {provider}: {reason}")),
        reply: Some(forward::unreadable(config, mail, raw, &what)),
        ..Record::default()
    }
}

/// `SEQUENCE 2`, or the stamp a notice without one is ordered by.
fn ordering(m: &Maintenance) -> String {
    match (m.sequence, m.stamp) {
        (Some(n), _) => format!("SEQUENCE {n}"),
        (None, Some(stamp)) => format!("no SEQUENCE, stamped {}", format_time(&stamp)),
        (None, None) => "no SEQUENCE and no stamp".into(),
    }
}

/// `worker`'s pass: runs each due `started` and `ended` playbook once.
/// Returns how many phases it took.
pub(crate) fn pass(config: &Config, guard: Option<&Path>) -> anyhow::Result<usize> {
    if config.maintenance.providers.is_empty() {
        return Ok(0);
    }
    let journal = crate::delivery::open(config)?;
    let due = journal.due_maintenances(Utc::now(), config.maintenance.lead)?;
    let mut taken = 0;
    for (phase, stored) in due {
        let m = &stored.maintenance;
        if !journal.claim_phase(&m.provider, &m.maintenance_id, phase)? {
            continue;
        }
        taken += 1;
        let outcome = run_phase(config, &stored, phase, guard);
        if let Err(e) = journal.phase_outcome(&m.provider, &m.maintenance_id, phase, &outcome) {
            tracing::warn!(
                "maintenance {}/{}: {} ran ({outcome}) but that is not journaled: {e}",
                m.provider,
                m.maintenance_id,
                phase.as_str()
            );
        }
    }
    if taken > 0 {
        crate::delivery::write_metrics(config, &journal);
    }
    Ok(taken)
}

/// Runs one phase's playbook; what became of it, for the journal.
fn run_phase(config: &Config, stored: &Stored, phase: Phase, guard: Option<&Path>) -> String {
    let m = &stored.maintenance;
    let event = phase.as_str();
    let key = format!("{}/{}", m.provider, m.maintenance_id);
    let Some(path) = playbook_of(config, event) else {
        tracing::info!(target: pipeline::SUMMARY, "maintenance {key}: {event} (no {event} playbook)");
        return format!("not run: no {event} playbook in maintenance.playbooks");
    };
    let playbook = Playbook {
        path: Some(path.clone()),
        display: path.display().to_string(),
    };
    let label = format!("maintenance {key}");
    let how = format!(
        "{event} ({} to {})",
        format_time(&m.start),
        format_time(&m.end)
    );
    match pipeline::run_playbook(
        config,
        &playbook,
        event,
        &vars(m, event),
        (stored.row, guard, &label),
        &how,
    ) {
        Ok((record, run)) => {
            let outcome = record.outcome.map_or("unknown", Outcome::as_str);
            format!("{outcome}; log {}", run.log.display())
        }
        Err(e) => {
            tracing::warn!(target: pipeline::SUMMARY, "{label}: {event} not run: {e:#}");
            format!("not run: {e:#}")
        }
    }
}
