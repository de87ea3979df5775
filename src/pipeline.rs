//! One mail through every stage and out through the edges (the playbook run
//! and the reply), returning what happened for the journal. `parse` walks
//! the same stages and stops before the edges; `delivery` wraps this in the
//! spool and the journal.

use std::path::Path;

use anyhow::anyhow;

use crate::decide::loops::{self, Silence};
use crate::decide::redact::Secrets;
use crate::decide::{self, Decision};
use crate::delivery::journal::{Pending, Record, Start};
use crate::desk::config::Config;
use crate::desk::keywords::Keywords;
use crate::mail::Mail;
use crate::maintenance::Notice;
use crate::outcome::Outcome;
use crate::reply::ratelimit;
use crate::reply::transport;
use crate::reply::{self, Answer, Reply, ReplyError};
use crate::run::ansible;
use crate::run::slots;

/// A mail decided before the journal sees it.
#[derive(Debug)]
pub(crate) struct Decided {
    keywords: Keywords,
    decision: Decision,
    secrets: Secrets,
    /// A provider's maintenance notice (`maintenance:`): no request.
    notice: Option<Notice>,
}

impl Decided {
    /// Whether the mail gave a secret value. Its raw bytes then hold the
    /// secret, perhaps encoded (base64, quoted-printable, RFC 2047), where
    /// no redaction could be sure to find every copy: such a mail is not
    /// archived.
    pub(crate) fn has_secrets(&self) -> bool {
        self.secrets.any()
    }

    /// Whether the sender is proven (the claim key depends on it).
    pub(crate) fn authenticated(&self) -> bool {
        self.decision.authentication.is_yes()
    }

    /// How the sender was (or was not) proven, as the journal says it.
    pub(crate) fn authentication_text(&self) -> String {
        self.decision.authentication.to_string()
    }

    /// The maintenance notice this mail is, if its sender is a provider's.
    pub(crate) fn notice(&self) -> Option<&Notice> {
        self.notice.as_ref()
    }
}

/// The notice a mail is: `None` unless its sender is proven and one of a
/// provider's (`maintenance.providers[].senders`). A provider's mail is
/// never a request, whatever its subject says; mail that only claims a
/// provider's address is no notice (and, unproven, no request either).
pub(crate) fn notice(
    config: &Config,
    mail: &Mail,
    raw: &[u8],
    decision: &Decision,
) -> Option<Notice> {
    if !decision.authentication.is_yes() {
        return None;
    }
    let provider = config.maintenance.provider_of(mail.sender.as_deref()?)?;
    Some(crate::maintenance::read(
        provider,
        raw,
        crate::mail::calendar::date(raw),
    ))
}

/// Decides `mail` (every mail, even one that will be ignored, so that its
/// secrets are known), and leaves `mail.subject` redacted: from here on
/// the journal, the logs and the reply only ever see the subject with the
/// secret values it gave replaced by `[redacted]`, and the raw subject is
/// never written to disk (not even to the journal's WAL). An error means
/// the helpdesk folder cannot be read: nothing can be handled now.
pub(crate) fn decide(config: &Config, mail: &mut Mail, raw: &[u8]) -> anyhow::Result<Decided> {
    crate::mail::thread::cut_repeats(&config.state_dir, mail);
    let keywords = config.desk.keywords()?;
    let decision = decide::decide(config, &keywords, mail)?;
    let secrets = Secrets::new(&decision.vars, &decision.secret_names);
    let notice = notice(config, mail, raw, &decision);
    decision.subject().clone_into(&mut mail.subject);
    Ok(Decided {
        keywords,
        decision,
        secrets,
        notice,
    })
}

/// What `handle` tells the journal on the way, so that a row always says
/// where its message is (see `delivery`'s state machine).
pub(crate) trait Journaling {
    /// Asked with the record just before the playbook starts whether it
    /// may (`limits.runs_per_sender_per_hour`); marks the row running.
    fn running(&mut self, record: &Record) -> anyhow::Result<Start>;
    /// Whether `running` would refuse it at once (a hint: `running`
    /// decides), so that a refusal does not wait for a playbook slot.
    fn over_limit(&mut self) -> bool {
        false
    }
    /// Makes the outcome durable, before the reply tells the sender of it.
    fn finished(&mut self, record: &Record) -> anyhow::Result<()>;
    /// Makes the row wait for approval with `pending` frozen, durably,
    /// before any mail about it is sent; nothing runs.
    fn pend(&mut self, record: &Record, pending: &Pending<'_>) -> anyhow::Result<()>;
    /// Records a provider's maintenance notice in the journal (one
    /// transaction): what it changed (`delivery::maintenance`).
    fn note_maintenance(
        &mut self,
        _maintenance: &crate::maintenance::Maintenance,
    ) -> anyhow::Result<crate::delivery::journal::maintenances::Change> {
        Err(anyhow!("this delivery keeps no maintenances"))
    }
}

/// The playbook ran, but its outcome could not be journaled: the row
/// stays `running`, and `retry` marks its outcome unknown.
#[derive(Debug, thiserror::Error)]
#[error("the playbook ran, but its outcome cannot be journaled: {0:#}")]
pub(crate) struct OutcomeNotKept(pub(crate) anyhow::Error);

/// Whether `handle`'s error came after its playbook had started (the
/// outcome is then unknown), rather than before (nothing ran).
pub(crate) fn playbook_started(error: &anyhow::Error) -> bool {
    error.downcast_ref::<OutcomeNotKept>().is_some()
        || matches!(
            error.downcast_ref::<ansible::DispatchError>(),
            Some(ansible::DispatchError::Wait { .. })
        )
}

/// Handles one message, decided by `decide`. An error means it could not
/// be handled now (`playbook_started` says whether nothing has run); a
/// failed playbook or an unsent reply is an outcome, in the returned
/// record. `journaling` is told when the playbook starts and, before any
/// reply is sent, the outcome; its errors are this one's.
pub(crate) fn handle(
    config: &Config,
    row: i64,
    mail: &Mail,
    decided: &Decided,
    guard: Option<&Path>,
    journaling: &mut dyn Journaling,
) -> anyhow::Result<Record> {
    let Decided {
        keywords,
        decision,
        secrets,
        ..
    } = decided;
    let id = mail
        .message_id
        .clone()
        .unwrap_or_else(|| "(no Message-ID)".into());
    let silence = loops::silence(mail, config.helpdesk_address.as_deref());
    let said = Said { row, mail, secrets };
    if let Some(reason) = silence.as_ref().filter(|s| s.drops_request()) {
        let none = format!("none: {reason}");
        let record = ended(Record::default(), Outcome::Ignored, none);
        said.summary(&record, &format!("nothing run and no reply: {reason}"));
        return Ok(record);
    }
    remember_thread(config, mail, decided, &id);
    let record = Record {
        request_type: decision.request_type.clone(),
        vars: Some(serde_json::Value::Object(secrets.redact_vars(&decision.vars)).to_string()),
        authentication: Some(decision.authentication.to_string()),
        access: decision.access.as_ref().map(ToString::to_string),
        ..Record::default()
    };
    let Some(answer) = reply::answer(&config.desk, keywords, decision)? else {
        let none = "none: the sender is not authenticated";
        let record = ended(record, Outcome::Unauthenticated, none);
        let what = format!("{}; nothing run, no reply", decision.authentication);
        said.summary(&record, &what);
        return Ok(record);
    };
    let (mut record, answer) = match answer {
        Answer::Pending if waits(config, decision).is_some() => {
            let rule = waits(config, decision).unwrap_or_default();
            if decided.has_secrets() {
                (record, Answer::Refused(SECRET_WAITS.into()))
            } else {
                return wait_stage(config, &said, decided, journaling, record, rule);
            }
        }
        Answer::Pending => {
            // The row and the guard: what names and watches the run.
            match run_stage(config, &said, decided, guard, journaling, record)? {
                Next::Reply(record, answer) => (record, *answer),
                Next::Done(record) => return Ok(record),
            }
        }
        answer => (record, answer),
    };
    record.outcome = answer.outcome();
    let ran = record.run_log.is_some();
    journaling.finished(&record).map_err(|e| {
        if ran {
            anyhow::Error::new(OutcomeNotKept(e))
        } else {
            e
        }
    })?;
    // Said once the outcome is durable and before the reply goes, so that
    // it is the first line of this delivery's output.
    said.summary(&record, &what_answer(decision, &answer));
    record.reply = Some(send_reply(
        config,
        keywords,
        mail,
        decision,
        &answer,
        silence.as_ref(),
        secrets,
        &id,
    ));
    Ok(record)
}

/// Why a request that must wait for approval and gave a secret value is
/// refused: it would have to be kept until approved, and helpdesk never
/// keeps one.
const SECRET_WAITS: &str = "it needs approval, and it gives a secret value, which helpdesk never keeps while a request waits; ask for it without the secret (e.g. have a temporary password generated) or ask an administrator";

/// The number (from 1) of the `approvals:` rule a decided request must
/// wait under, if any: the first that covers its type and sender.
fn waits(config: &Config, decision: &Decision) -> Option<usize> {
    let request_type = decision.request_type.as_deref()?;
    let sender = decision.vars.get("from")?.as_str()?;
    config
        .approvals
        .iter()
        .position(|rule| rule.covers(request_type, sender))
        .map(|n| n + 1)
}

/// The stage of a request that waits for approval under rule `number`:
/// freezes it in the journal (nothing runs, no playbook slot is held),
/// then mails each approver the rule names by address an approval
/// request carrying a random token, and tells the requester.
fn wait_stage(
    config: &Config,
    said: &Said<'_>,
    decided: &Decided,
    journaling: &mut dyn Journaling,
    mut record: Record,
    number: usize,
) -> anyhow::Result<Record> {
    let rule = config
        .approvals
        .get(number - 1)
        .ok_or_else(|| anyhow!("approvals rule {number} is gone"))?;
    let decision = &decided.decision;
    let requester = said.mail.sender.as_deref().unwrap_or_default();
    // The requester may be named too (a team approving each other's
    // requests), but never approves their own: not mailed one.
    let tokens = rule
        .mailed()
        .filter(|to| crate::decide::trust::mailbox(to) != crate::decide::trust::mailbox(requester))
        .map(|to| Ok((crate::delivery::state::random_token()?, to.to_owned())))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| anyhow!("cannot make an approval token (/dev/urandom): {e}"))?;
    let expires =
        humantime::format_rfc3339_millis(std::time::SystemTime::now() + rule.expires).to_string();
    let vars = serde_json::Value::Object(decision.vars.clone()).to_string();
    journaling.pend(
        &record,
        &Pending {
            rule: number,
            vars: &vars,
            approvers: &rule.approvers,
            required: rule.required,
            expires_at: &expires,
            tokens: &tokens,
        },
    )?;
    let context = reply::approval::Context {
        row: Some(said.row),
        requester: said.mail.sender.clone(),
        authentication: Some(decision.authentication.to_string()),
        approvers: rule.approvers.clone(),
        required: Some(rule.required),
        expires: Some(expires),
        note: None,
        transcript: None,
    };
    let what = format!(
        "waits for {} approval(s) from {} (approvals rule {number})",
        rule.required,
        rule.approvers.join(", ")
    );
    said.summary(&record, &what);
    record.reply = Some(mail_waiting(config, said, decided, &tokens, &context));
    Ok(record)
}

/// Mails each approver of `tokens` their approval request and tells the
/// requester the request waits; what became of each mail, for the journal.
fn mail_waiting(
    config: &Config,
    said: &Said<'_>,
    decided: &Decided,
    tokens: &[(String, String)],
    context: &reply::approval::Context,
) -> String {
    let (label, decision, secrets) = (said.label(), &decided.decision, &decided.secrets);
    let mut sent: Vec<String> = tokens
        .iter()
        .map(|(token, to)| {
            // The approval request's own thread keeps its digests, so an
            // answer quoting it without quote marks has the repeats cut.
            let thread = Mail {
                message_id: Some(reply::approval::message_id(config, token)),
                ..Mail::default()
            };
            send(config, &label, Some(&thread), || {
                reply::approval::request(config, said.mail, decision, secrets, context, (to, token))
            })
        })
        .collect();
    let silence = loops::silence(said.mail, config.helpdesk_address.as_deref());
    sent.push(match silence {
        Some(reason) => format!("none: {reason}"),
        None => send(config, &label, Some(said.mail), || {
            reply::approval::waiting(config, said.mail, decision, secrets, context)
        }),
    });
    sent.join("; ")
}

/// What comes after the run stage.
enum Next {
    /// Reply with this answer (boxed: a run's is large).
    Reply(Record, Box<Answer>),
    /// Journal this record, with no reply.
    Done(Record),
}

/// `record` with its outcome and why no reply was sent.
fn ended(mut record: Record, outcome: Outcome, reply: impl Into<String>) -> Record {
    record.outcome = Some(outcome);
    record.reply = Some(reply.into());
    record
}

/// Keeps the thread's digests, so that a later mail quoting this one has
/// the repeats cut (`mail::thread`); only of a proven sender's mail that
/// gave no secret.
fn remember_thread(config: &Config, mail: &Mail, decided: &Decided, id: &str) {
    if decided.authenticated()
        && !decided.has_secrets()
        && let Some(message_id) = &mail.message_id
        && let Err(e) = crate::mail::thread::remember(&config.state_dir, message_id, &mail.body)
    {
        tracing::warn!("{id}: cannot keep the thread's digests in the state folder: {e}");
    }
}

/// The stage of a request whose playbook may run: the cap on runs per
/// sender, the run, and whether its result is answered.
fn run_stage(
    config: &Config,
    said: &Said<'_>,
    decided: &Decided,
    guard: Option<&Path>,
    journaling: &mut dyn Journaling,
    mut record: Record,
) -> anyhow::Result<Next> {
    let request_type = decided.decision.request_type.as_deref().unwrap_or("-");
    // The slot first: a delivery killed while it waits for one has not
    // started its playbook, and its row must not say it has. A request
    // the cap refuses needs none.
    let slot = if journaling.over_limit() {
        None
    } else {
        Some(take_slot(config)?)
    };
    if let Start::Limited { limit, reply } = journaling.running(&record)? {
        if !reply {
            // One reply per stretch over the limit, not one per mail: a
            // sender (or a robot) that keeps asking is not answered each
            // time.
            let none = "none: the sender was already told of limits.runs_per_sender_per_hour";
            let record = ended(record, Outcome::Limited, none);
            said.summary(&record, &over_limit(limit));
            return Ok(Next::Done(record));
        }
        return Ok(Next::Reply(record, Box::new(Answer::Limited(limit))));
    }
    // Under the cap after all (its hour ran out meanwhile): the slot now.
    // A kill while waiting for it leaves a row that says running, which
    // `retry` ends as unknown, never as a second start.
    let slot = match slot {
        Some(slot) => slot,
        None => take_slot(config)?,
    };
    let playbook = decided.decision.playbook.as_ref();
    let vars = &decided.decision.vars;
    let run = dispatch(config, playbook, vars, (said.row, guard), request_type)?;
    drop(slot);
    note_run(&run, &decided.secrets, &mut record, &said.label());
    let quiet = config
        .mail
        .as_ref()
        .is_some_and(|m| m.no_result_reply.iter().any(|t| t == request_type));
    if quiet {
        let outcome = Outcome::of_run(&run.outcome);
        let record = ended(record, outcome, "none: mail.no_result_reply");
        let what = format!(
            "{}; no result reply: mail.no_result_reply lists {request_type}",
            ran(&run)
        );
        said.summary(&record, &what);
        return Ok(Next::Done(record));
    }
    Ok(Next::Reply(record, Box::new(Answer::Result(run))))
}

/// Where a delivery's summary line comes from: the row, the mail and the
/// secrets to keep out of it.
struct Said<'a> {
    row: i64,
    mail: &'a Mail,
    secrets: &'a Secrets,
}

impl Said<'_> {
    fn label(&self) -> String {
        format!("row {}", self.row)
    }

    /// Logs the one line that sums up a handled request: the outcome and
    /// the row first, then the request type and what happened, and the
    /// long parts (sender, Message-ID, run log) last. An MTA keeps only
    /// the start of a command's output (Postfix's pipe about 100
    /// characters, in its `status=sent (...)`): that start still says it.
    fn summary(&self, record: &Record, what: &str) {
        let outcome = record.outcome.map_or("pending", Outcome::as_str);
        let mut line = format!("{outcome} row {}: ", self.row);
        if let Some(request_type) = &record.request_type {
            line.push_str(request_type);
            line.push_str(": ");
        }
        line.push_str(what);
        if let Some(sender) = &self.mail.sender {
            line.push_str(&format!("; from {sender}"));
        }
        if let Some(id) = &self.mail.message_id {
            line.push_str(&format!("; message-id <{id}>"));
        }
        if let Some(log) = &record.run_log {
            line.push_str(&format!("; log {log}"));
        }
        let line = self.secrets.scrub(&line);
        match record.outcome {
            Some(Outcome::Done | Outcome::Ignored | Outcome::Duplicate) => {
                tracing::info!(target: SUMMARY, "{line}")
            }
            _ => tracing::warn!(target: SUMMARY, "{line}"),
        }
    }
}

/// The log target of the summary lines, which `commands::logging` lets
/// through at the default verbosity: one line per delivery.
pub(crate) const SUMMARY: &str = "helpdesk::summary";

fn over_limit(limit: u32) -> String {
    format!(
        "refused: the sender already started {limit} runs in the past hour (limits.runs_per_sender_per_hour)"
    )
}

/// How a run went, for the summary line.
fn ran(run: &ansible::Run) -> String {
    format!(
        "playbook {} in {:.1}s",
        ansible::describe(&run.outcome),
        run.duration.as_secs_f64()
    )
}

/// Scrubs the run's log of secrets and writes how it went in `record`
/// (the summary line says it).
fn note_run(run: &ansible::Run, secrets: &Secrets, record: &mut Record, id: &str) {
    // A playbook may print a secret it was given; what it printed stays in
    // the state folder and `show` prints it.
    for file in [run.log.clone(), run.log.with_extension("json")] {
        if let Err(e) = ansible::scrub_secrets(secrets, &file) {
            tracing::warn!("{id}: cannot redact secrets in {}: {e}", file.display());
        }
    }
    record.exit_code = match run.outcome {
        ansible::Outcome::Succeeded => Some(0),
        ansible::Outcome::Failed { code, .. } => code,
        ansible::Outcome::TimedOut { .. } => None,
        ansible::Outcome::NothingRan { code, ref why } => {
            // The journal's reason, which `show` prints: why it is not done.
            record.reason = Some(secrets.scrub(why));
            code
        }
    };
    record.duration_ms = Some(u64::try_from(run.duration.as_millis()).unwrap_or(u64::MAX));
    record.run_log = Some(run.log.display().to_string());
}

/// What happened, for the summary line: how the run went, or why
/// nothing runs.
fn what_answer(decision: &Decision, answer: &Answer) -> String {
    match answer {
        Answer::Result(run) => ran(run),
        Answer::Limited(limit) => over_limit(*limit),
        Answer::Unclassified => format!(
            "nothing to run: {}",
            decision.reason.as_deref().unwrap_or("unclassified")
        ),
        Answer::Refused(why) => format!("refused: {why}"),
        Answer::Invalid(invalid) => {
            let fields: Vec<String> = invalid
                .iter()
                .map(|i| format!("{} {}", i.var, i.why))
                .collect();
            format!("refused: {}", fields.join("; "))
        }
        Answer::TooLarge => format!(
            "refused: {}",
            decision.reason.as_deref().unwrap_or("too large")
        ),
        Answer::Missing(missing) => {
            let names: Vec<&str> = missing.iter().map(|m| m.var.as_str()).collect();
            format!("nothing run, missing {}", names.join(", "))
        }
        Answer::HelpTopic { .. } | Answer::HelpIndex { .. } => "help request".to_owned(),
        Answer::Pending => String::new(),
    }
}

fn dispatch(
    config: &Config,
    playbook: Option<&crate::desk::Playbook>,
    vars: &serde_json::Map<String, serde_json::Value>,
    (row, guard): (i64, Option<&Path>),
    request_type: &str,
) -> anyhow::Result<ansible::Run> {
    let (Some(playbook), Some(workdir)) =
        (playbook.and_then(|p| p.path.as_ref()), config.desk.root())
    else {
        return Err(anyhow!(
            "{request_type}: the built-in playbooks cannot run; set helpdesk_dir in config.yaml"
        ));
    };
    // An unreadable playbook is a failure to start, not a failed run:
    // the message waits until it is fixed.
    std::fs::File::open(playbook)
        .map_err(|e| anyhow!("{}: cannot read the playbook: {e}", playbook.display()))?;
    let run = ansible::run(
        &config.ansible,
        ansible::Job {
            playbook,
            workdir,
            vars,
            state_dir: &config.state_dir,
            row,
            label: request_type,
            guard,
        },
    )?;
    Ok(run)
}

/// One of `max_parallel_runs` playbook slots, waited for.
fn take_slot(config: &Config) -> anyhow::Result<slots::Slot> {
    let slot = slots::acquire(&config.state_dir, config.max_parallel_runs).map_err(|e| {
        anyhow!(
            "{}: cannot take a playbook slot: {e}",
            config.state_dir.display()
        )
    })?;
    tracing::debug!("running in slot {}", slot.number);
    Ok(slot)
}

/// Tells the sender of a request whose playbook started, but whose
/// outcome helpdesk lost, that it may or may not have completed (the
/// `unknown` reply), as any reply goes (loops, the reply limit); returns
/// what happened, for the journal.
pub(crate) fn tell_unknown(config: &Config, mail: &Mail, decided: &Decided, label: &str) -> String {
    if let Some(reason) = loops::silence(mail, config.helpdesk_address.as_deref()) {
        tracing::info!("{label}: no reply: {reason}");
        return format!("none: {reason}");
    }
    if !decided.authenticated() {
        return "none: the sender is not authenticated".into();
    }
    send(config, label, Some(mail), || {
        reply::unknown(config, mail, &decided.decision, &decided.secrets)
    })
}

/// Runs `request_type`'s playbook once more with `vars` as they were
/// journaled (`helpdesk retry --rerun`, an operator's decision about a
/// row whose outcome is unknown): the run's part of the record.
pub(crate) fn rerun(
    config: &Config,
    row: i64,
    request_type: &str,
    vars: &serde_json::Map<String, serde_json::Value>,
    guard: Option<&Path>,
    label: &str,
) -> anyhow::Result<Record> {
    let job = (row, guard, label);
    run_frozen(config, request_type, vars, job, "run again").map(|(record, _)| record)
}

/// Runs `request_type`'s playbook with `vars` fixed before (journaled,
/// or frozen while it waited for approval) as row `row`, said to be `how`
/// in the summary line: the run's part of the record, and the run.
pub(crate) fn run_frozen(
    config: &Config,
    request_type: &str,
    vars: &serde_json::Map<String, serde_json::Value>,
    job: (i64, Option<&Path>, &str),
    how: &str,
) -> anyhow::Result<(Record, ansible::Run)> {
    let playbook = config.desk.playbook(request_type)?;
    run_playbook(config, &playbook, request_type, vars, job, how)
}

/// Runs `playbook` (named `what` in the run log and the summary line) with
/// `vars` as row `row`: the run's part of the record, and the run.
pub(crate) fn run_playbook(
    config: &Config,
    playbook: &crate::desk::Playbook,
    what: &str,
    vars: &serde_json::Map<String, serde_json::Value>,
    (row, guard, label): (i64, Option<&Path>, &str),
    how: &str,
) -> anyhow::Result<(Record, ansible::Run)> {
    let slot = take_slot(config)?;
    let run = dispatch(config, Some(playbook), vars, (row, guard), what)?;
    drop(slot);
    let mut record = Record::default();
    note_run(&run, &Secrets::new(vars, &[]), &mut record, label);
    let outcome = Outcome::of_run(&run.outcome);
    record.outcome = Some(outcome);
    let line = format!(
        "{outcome} {label}: {what}: {how}, {}; log {}",
        ran(&run),
        run.log.display()
    );
    match outcome {
        Outcome::Done => tracing::info!(target: SUMMARY, "{line}"),
        _ => tracing::warn!(target: SUMMARY, "{line}"),
    }
    Ok((record, run))
}

/// Sends the result reply of `run` to `to` (the requester, or an
/// approver), threaded under `mail`, as every reply goes; what happened,
/// for the journal.
pub(crate) fn tell_result(
    config: &Config,
    mail: &Mail,
    decision: &Decision,
    run: ansible::Run,
    to: &str,
    label: &str,
) -> String {
    let secrets = Secrets::new(&decision.vars, &decision.secret_names);
    let answer = Answer::Result(run);
    send(config, label, None, || {
        let keywords = config.desk.keywords()?;
        let mut reply = reply::compose(config, &keywords, mail, decision, &answer, &secrets)?;
        to.clone_into(&mut reply.to);
        Ok(reply)
    })
}

/// Sends the reply, or logs why not; returns what happened for the
/// journal. A reply that cannot be sent never undoes or repeats the request.
#[allow(clippy::too_many_arguments)]
fn send_reply(
    config: &Config,
    keywords: &Keywords,
    mail: &Mail,
    decision: &Decision,
    answer: &Answer,
    silence: Option<&Silence>,
    secrets: &Secrets,
    id: &str,
) -> String {
    if let Some(reason) = silence {
        tracing::info!("{id}: no reply: {reason}");
        return format!("none: {reason}");
    }
    send(config, id, Some(mail), || {
        reply::compose(config, keywords, mail, decision, answer, secrets)
    })
}

/// Sends the reply `build` composes, within `mail.reply_limit_per_hour`,
/// or logs why not; returns what happened, for the journal. `label` starts
/// the log lines (a Message-ID, `row 12`). Once it is sent, the thread of
/// `thread` (the mail answered) keeps the reply's digests. Every reply,
/// `delivery`'s to a quarantined mail too, goes out this one way.
pub(crate) fn send(
    config: &Config,
    label: &str,
    thread: Option<&Mail>,
    build: impl FnOnce() -> Result<Reply, ReplyError>,
) -> String {
    let (Some(settings), Some(from)) = (&config.mail, &config.helpdesk_address) else {
        tracing::warn!("{label}: no reply sent: config.yaml has no mail: section");
        return "none: config.yaml has no mail: section".into();
    };
    let result = build().and_then(|reply| Ok((reply::to_message(&reply, from)?, reply)));
    let (message, reply) = match result {
        Ok(built) => built,
        Err(e) => {
            tracing::warn!("{label}: reply not sent: {e}");
            return format!("not sent: {e}");
        }
    };
    match ratelimit::allow(&config.state_dir, &reply.to, settings.reply_limit_per_hour) {
        Ok(true) => {}
        Ok(false) => {
            let why = format!(
                "{} already got {} replies in the past hour (mail.reply_limit_per_hour)",
                reply.to, settings.reply_limit_per_hour
            );
            tracing::warn!("{label}: no reply: {why}");
            return format!("none: {why}");
        }
        Err(e) => {
            let why = format!(
                "cannot count replies in {}: {e}",
                config.state_dir.display()
            );
            tracing::warn!("{label}: reply not sent: {why}");
            return format!("not sent: {why}");
        }
    }
    let (template, to) = (&reply.template, &reply.to);
    match transport::send(&settings.transport, &message) {
        Ok(where_to) => {
            if let (Some(message_id), Some(body)) =
                (thread.and_then(|m| m.message_id.as_ref()), &reply.body)
                && let Err(e) = crate::mail::thread::remember(&config.state_dir, message_id, body)
            {
                tracing::warn!("{label}: cannot keep the reply's digests in the state folder: {e}");
            }
            tracing::info!("{label}: {template} reply to {to}: {where_to}");
            format!("sent: {template} reply to {to}: {where_to}")
        }
        Err(e) => {
            tracing::warn!("{label}: {template} reply to {to} not sent: {e}");
            format!("not sent: {template} reply to {to}: {e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(subject: &str, body: &str) -> Mail {
        let raw = format!(
            "From: alice@example.com\r\nSubject: {subject}\r\nMessage-ID: <1@example.com>\r\n\r\n{body}\r\n"
        );
        crate::mail::read(raw.as_bytes(), "From")
    }

    /// A secret given in the subject is redacted in the subject the
    /// journal, the reply and the playbook get; the playbook still gets it
    /// in its own variable; a mail without one keeps its subject.
    #[test]
    fn decide_redacts_the_subject() {
        let config = Config::builtin();
        for (subject, body, shown, secret) in [
            (
                "reset password: Hunter2x",
                "username: alice",
                "reset password: [redacted]",
                Some("Hunter2x"),
            ),
            (
                "Re: reset password: Hunter2x",
                "username: alice",
                "Re: reset password: [redacted]",
                Some("Hunter2x"),
            ),
            (
                "reset password",
                "username: alice\npassword: Hunter2x",
                "reset password",
                Some("Hunter2x"),
            ),
            (
                "reset my password Hunter2x",
                "password: Hunter2x",
                "reset my password [redacted]",
                Some("Hunter2x"),
            ),
            ("quota", "increase my storage quota by 2 GB", "quota", None),
        ] {
            let mut mail = mail(subject, body);
            let decided = decide(&config, &mut mail, b"").unwrap();
            assert_eq!(mail.subject, shown, "{subject}");
            assert_eq!(decided.decision.subject(), shown, "{subject}");
            assert_eq!(decided.decision.vars["subject"], shown, "{subject}");
            assert_eq!(decided.has_secrets(), secret.is_some(), "{subject}");
            if let Some(secret) = secret {
                assert_eq!(decided.decision.vars["password"], secret, "{subject}");
            }
            let answer = reply::answer(&config.desk, &decided.keywords, &decided.decision)
                .unwrap()
                .unwrap();
            let reply = reply::compose(
                &config,
                &decided.keywords,
                &mail,
                &decided.decision,
                &answer,
                &decided.secrets,
            )
            .unwrap();
            assert_eq!(reply.subject, reply::reply_subject(shown), "{subject}");
        }
    }
}
