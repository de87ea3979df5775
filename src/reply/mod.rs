//! **Stage 6, reply: compose and send.** Owns the reply templates, the
//! mail that carries them, how it leaves (`transport`) and how often one
//! address may be answered (`ratelimit`). Takes a `Decision` and what came
//! of it; may not decide anything or touch the spool and journal.
//!
//! Replies: what the sender is told, and how the mail looks.
//!
//! The texts are templates (`reply_templates/<name>.txt`, MiniJinja) in the
//! helpdesk folder that an administrator can edit; a missing one falls
//! back to the default compiled into the binary. Values from the mail are
//! passed to templates as data, never evaluated as template source, and
//! secret values are scrubbed from the finished text.

pub(crate) mod approval;
pub(crate) mod forward;
pub(crate) mod ratelimit;
pub(crate) mod report;
pub(crate) mod transport;

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use minijinja::Environment;
use serde::Serialize;

use crate::decide::Decision;
use crate::decide::redact::Secrets;
use crate::desk::config::Config;
use crate::desk::help::{self, Capability};
use crate::desk::keywords::Keywords;
use crate::desk::phrasebook::{Invalid, Missing};
use crate::desk::{Desk, DeskError};
use crate::mail::Mail;
use crate::outcome::{self, Verdict};
use crate::run::ansible::{Outcome, Report, Run};

/// What the helpdesk has to say about a mail.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// `help with: <topic>` for a known request type.
    HelpTopic {
        topic: String,
        text: String,
    },
    /// `help` with no topic, or one that names nothing (`asked`).
    HelpIndex {
        asked: Option<String>,
    },
    Unclassified,
    /// The sender may not ask for this (access grants).
    Refused(String),
    /// Captured values that break a pattern or limit.
    Invalid(Vec<Invalid>),
    TooLarge,
    Missing(Vec<Missing>),
    /// The sender already started limits.runs_per_sender_per_hour runs in
    /// the past hour (this many): nothing ran.
    Limited(u32),
    /// After a playbook ran.
    Result(Run),
    /// Before a playbook runs (the dry run): the result reply comes later.
    Pending,
}

/// A reply ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Reply {
    pub to: String,
    pub subject: String,
    /// The template it was made from.
    pub template: String,
    /// `None` for a result reply that can only be written after the run.
    pub body: Option<String>,
    #[serde(skip)]
    pub in_reply_to: Option<String>,
    #[serde(skip)]
    pub references: Vec<String>,
    /// Set when the reply's Message-ID must be known (an approval
    /// request's carries its token); otherwise one is made up.
    #[serde(skip)]
    pub message_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReplyError {
    #[error(transparent)]
    Desk(#[from] DeskError),
    #[error("{file}:{line}: {message}: fix the template or delete it to use the default")]
    Template {
        file: String,
        line: usize,
        message: String,
    },
    #[error("cannot build the reply mail: {0}")]
    Build(String),
}

impl Answer {
    /// What became of the message once this is its answer (the journal's
    /// outcome); `None` while `Pending`: the playbook's run decides it.
    pub(crate) fn outcome(&self) -> Option<outcome::Outcome> {
        Some(match self {
            Self::HelpTopic { .. } | Self::HelpIndex { .. } => outcome::Outcome::Done,
            Self::Unclassified => outcome::Outcome::Ignored,
            Self::Refused(_) => outcome::Outcome::Unauthorized,
            Self::Invalid(_) | Self::TooLarge | Self::Missing(_) => outcome::Outcome::Refused,
            Self::Limited(_) => outcome::Outcome::Limited,
            Self::Result(run) => outcome::Outcome::of_run(&run.outcome),
            Self::Pending => return None,
        })
    }

    /// The template of its reply.
    fn template(&self) -> &'static str {
        match self {
            Self::HelpTopic { .. } => "help_topic",
            Self::HelpIndex { .. } => "help_index",
            Self::Unclassified => "unclassified",
            Self::Refused(_) => "refused",
            Self::Invalid(_) => "invalid",
            Self::TooLarge => "too_large",
            Self::Missing(_) => "missing",
            Self::Limited(_) => "limited",
            Self::Result(run) => match run.outcome {
                Outcome::Succeeded => "success",
                Outcome::Failed { .. } => "failure",
                Outcome::TimedOut { .. } => "timeout",
                Outcome::NothingRan { .. } => "nothing_ran",
            },
            Self::Pending => "success",
        }
    }
}

/// Decides what to answer for a decision, before anything runs, in the
/// order `Verdict::of` keeps (and `replay` shows). `None`: the sender is
/// not authenticated, and a reply could be backscatter to a forged address.
pub(crate) fn answer(
    desk: &Desk,
    keywords: &Keywords,
    decision: &Decision,
) -> Result<Option<Answer>, DeskError> {
    Ok(Some(match Verdict::of(decision) {
        Verdict::Unauthenticated => return Ok(None),
        Verdict::TooLarge => Answer::TooLarge,
        Verdict::Unclassified => Answer::Unclassified,
        Verdict::NotAllowed(why) => Answer::Refused(why.to_owned()),
        Verdict::Help => {
            let asked = decision.vars.get("targets").and_then(|v| v.as_str());
            let topic = asked
                .map(|t| help::topic(desk, keywords, t))
                .transpose()?
                .flatten();
            match topic {
                Some((topic, text)) => Answer::HelpTopic { topic, text },
                None => Answer::HelpIndex {
                    asked: asked.map(str::to_owned),
                },
            }
        }
        Verdict::Invalid => Answer::Invalid(decision.invalid.clone()),
        Verdict::Missing => Answer::Missing(decision.missing.clone()),
        Verdict::Runs(_) => Answer::Pending,
    }))
}

/// Renders the reply for `answer`.
pub(crate) fn compose(
    config: &Config,
    keywords: &Keywords,
    mail: &Mail,
    decision: &Decision,
    answer: &Answer,
    secrets: &Secrets,
) -> Result<Reply, ReplyError> {
    let desk = &config.desk;
    let template = answer.template();
    let body = match answer {
        Answer::Pending => None,
        _ => {
            let capabilities = help::index(desk, keywords)?;
            let text = render(
                desk,
                template,
                &TemplateData::new(config, mail, decision, answer, capabilities, secrets),
            )?;
            Some(secrets.scrub(&text))
        }
    };
    Ok(Reply {
        to: mail.sender.clone().unwrap_or_default(),
        // Redacted by `decide`, and scrubbed again: a reply's Subject is
        // the one line the body's scrubbing would not reach.
        subject: reply_subject(&secrets.scrub(decision.subject())),
        template: if matches!(answer, Answer::Pending) {
            "success, failure or timeout (after the playbook)".into()
        } else {
            template.to_owned()
        },
        body,
        in_reply_to: mail.message_id.clone(),
        references: references(mail),
        message_id: None,
    })
}

/// The values a template sees.
#[derive(Debug, Serialize)]
struct TemplateData {
    helpdesk_address: Option<String>,
    sender: Option<String>,
    subject: String,
    request_type: Option<String>,
    capabilities: Vec<Capability>,
    topic: Option<String>,
    help_text: Option<String>,
    asked_topic: Option<String>,
    missing: Vec<Missing>,
    invalid: Vec<Invalid>,
    refusal: Option<String>,
    /// limits.runs_per_sender_per_hour, for the `limited` reply.
    run_limit: Option<u32>,
    /// limits.message_size for people: `10 MiB`.
    message_size_limit: String,
    failures: Vec<crate::run::ansible::Failure>,
    stats: Vec<HostRecap>,
    running_task: Option<String>,
    timeout: Option<String>,
    duration: Option<String>,
    exit_code: Option<i32>,
    /// Why no host ran a task, for the `nothing_ran` reply.
    nothing_ran: Option<String>,
    /// What the playbook handed back (`helpdesk_report`), per host: plain
    /// lines, bounded, the request's secrets scrubbed (`report`).
    reports: Vec<report::HostReport>,
    vars: serde_json::Map<String, serde_json::Value>,
    /// Why the mail was quarantined, for the `quarantined` reply.
    quarantine_reason: Option<String>,
    /// What the approval mails say (`approval`).
    #[serde(flatten)]
    approval: approval::Context,
}

#[derive(Debug, Serialize)]
struct HostRecap {
    host: String,
    #[serde(flatten)]
    counts: crate::run::ansible::Recap,
}

impl TemplateData {
    /// What every reply knows: who it is from and to, and the limits.
    fn blank(config: &Config, mail: &Mail) -> Self {
        Self {
            helpdesk_address: config.helpdesk_address.clone(),
            sender: mail.sender.clone(),
            subject: String::new(),
            request_type: None,
            capabilities: Vec::new(),
            topic: None,
            help_text: None,
            asked_topic: None,
            missing: Vec::new(),
            invalid: Vec::new(),
            refusal: None,
            run_limit: None,
            message_size_limit: human_size(config.limits.message_size),
            failures: Vec::new(),
            stats: Vec::new(),
            running_task: None,
            timeout: None,
            duration: None,
            exit_code: None,
            nothing_ran: None,
            reports: Vec::new(),
            vars: serde_json::Map::new(),
            quarantine_reason: None,
            approval: approval::Context::default(),
        }
    }

    fn new(
        config: &Config,
        mail: &Mail,
        decision: &Decision,
        answer: &Answer,
        capabilities: Vec<Capability>,
        secrets: &Secrets,
    ) -> Self {
        let mut data = Self {
            subject: secrets.scrub(decision.subject()),
            request_type: decision.request_type.clone(),
            capabilities,
            vars: secrets.redact_vars(&decision.vars),
            ..Self::blank(config, mail)
        };
        match answer {
            Answer::HelpTopic { topic, text } => {
                data.topic = Some(topic.clone());
                data.help_text = Some(text.clone());
            }
            Answer::HelpIndex { asked } => data.asked_topic.clone_from(asked),
            Answer::Missing(missing) => data.missing.clone_from(missing),
            Answer::Invalid(invalid) => data.invalid.clone_from(invalid),
            Answer::Refused(why) => data.refusal = Some(why.clone()),
            Answer::Limited(limit) => data.run_limit = Some(*limit),
            Answer::Result(run) => {
                let report = run.report.clone().unwrap_or_default();
                let Report {
                    running_task,
                    failures,
                    stats,
                    reports,
                    ..
                } = report;
                data.reports = report::render(&reports, secrets);
                data.failures = failures;
                data.stats = stats
                    .into_iter()
                    .map(|(host, counts)| HostRecap { host, counts })
                    .collect();
                data.running_task = running_task;
                data.duration = Some(format!("{:.0}s", run.duration.as_secs_f64()));
                match run.outcome {
                    Outcome::TimedOut { after } => {
                        data.timeout = Some(humantime::format_duration(after).to_string())
                    }
                    Outcome::Failed { code, .. } => data.exit_code = code,
                    Outcome::NothingRan { code, ref why } => {
                        data.exit_code = code;
                        data.nothing_ran = Some(why.clone());
                    }
                    Outcome::Succeeded => {}
                }
            }
            Answer::Unclassified | Answer::Pending | Answer::TooLarge => {}
        }
        data
    }
}

/// The reply to a quarantined mail (see `delivery`) with `template`
/// (`quarantined`: deciding it went over a budget; `not_started`: its
/// playbook could not start for longer than the queue lifetime): nothing
/// of it was read but its header, and nothing of it is quoted, not even
/// its subject (only the decision could have redacted a secret in it).
/// `mail` is read from the header alone.
pub(crate) fn quarantined(
    config: &Config,
    mail: &Mail,
    reason: &str,
    template: &str,
) -> Result<Reply, ReplyError> {
    let data = TemplateData {
        quarantine_reason: Some(reason.to_owned()),
        ..TemplateData::blank(config, mail)
    };
    Ok(Reply {
        to: mail.sender.clone().unwrap_or_default(),
        subject: reply_subject(""),
        template: template.to_owned(),
        body: Some(render(&config.desk, template, &data)?),
        in_reply_to: mail.message_id.clone(),
        references: references(mail),
        message_id: None,
    })
}

/// The reply to a request whose playbook started but whose outcome
/// helpdesk lost (a crash, a journal that could not be written; see
/// `delivery`): it may or may not have completed, and is not started again
/// unless an operator decides so.
pub(crate) fn unknown(
    config: &Config,
    mail: &Mail,
    decision: &Decision,
    secrets: &Secrets,
) -> Result<Reply, ReplyError> {
    let data = TemplateData::new(
        config,
        mail,
        decision,
        &Answer::Pending,
        Vec::new(),
        secrets,
    );
    about_request(config, mail, decision, secrets, ("unknown", &data))
}

/// `template` rendered with `data` as the reply to `mail`'s sender about
/// their request (`decision`): its subject and body scrubbed of the
/// request's secrets, threaded under it.
fn about_request(
    config: &Config,
    mail: &Mail,
    decision: &Decision,
    secrets: &Secrets,
    (template, data): (&str, &TemplateData),
) -> Result<Reply, ReplyError> {
    let text = render(&config.desk, template, data)?;
    Ok(Reply {
        to: mail.sender.clone().unwrap_or_default(),
        subject: reply_subject(&secrets.scrub(decision.subject())),
        template: template.to_owned(),
        body: Some(secrets.scrub(&text)),
        in_reply_to: mail.message_id.clone(),
        references: references(mail),
        message_id: None,
    })
}

/// The References of a reply to `mail`: its own, and its Message-ID.
fn references(mail: &Mail) -> Vec<String> {
    let mut refs = mail.references.clone();
    refs.extend(mail.message_id.clone());
    refs
}

fn render(desk: &Desk, name: &str, data: &TemplateData) -> Result<String, ReplyError> {
    let (source, file) = template_source(desk, &format!("{name}.txt"))?;
    let error = |e: minijinja::Error| ReplyError::Template {
        // An error inside an included template (the signature) is that
        // file's, not the including one's.
        file: match e.name() {
            Some(included) if included != MAIN_TEMPLATE => template_source(desk, included)
                .map_or_else(|_| desk.display(&reply_template(included)), |(_, f)| f),
            _ => file.clone(),
        },
        line: e.line().unwrap_or(0),
        message: e.to_string().lines().next().unwrap_or_default().to_owned(),
    };
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(error)?,
    );
    // `{% include "signature.txt" %}` and the like: another file of
    // reply_templates/, from the helpdesk folder or else the default.
    let includes = desk.clone();
    env.set_loader(move |included| {
        if included.contains('/') || included.starts_with('.') {
            return Ok(None);
        }
        template_source(&includes, included)
            .map(|(source, _)| Some(source))
            .map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::TemplateNotFound, e.to_string())
            })
    });
    let template = env
        .template_from_named_str(MAIN_TEMPLATE, &source)
        .map_err(error)?;
    template
        .render(minijinja::value::Serde(data))
        .map_err(error)
}

/// The name MiniJinja knows the rendered template by (the others are the
/// file names it includes).
const MAIN_TEMPLATE: &str = "<string>";

fn reply_template(file_name: &str) -> String {
    format!("reply_templates/{file_name}")
}

/// A reply template's text and where it came from: the helpdesk folder's
/// `reply_templates/<file_name>`, or else the default.
fn template_source(desk: &Desk, file_name: &str) -> Result<(String, String), DeskError> {
    let relative = reply_template(file_name);
    Ok(match desk.read(&relative)? {
        Some(text) => (text.into_owned(), desk.display(&relative)),
        None => (
            Desk::Builtin
                .read(&relative)?
                .unwrap_or_default()
                .into_owned(),
            Desk::Builtin.display(&relative),
        ),
    })
}

pub(crate) fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = KIB * KIB;
    match bytes {
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= MIB => format!("{:.1} MiB", b as f64 / MIB as f64),
        b if b >= KIB => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

/// `Re: <original>`, without stacking `Re: Re:`.
pub(crate) fn reply_subject(original: &str) -> String {
    let original = original.trim();
    if original.is_empty() {
        return "Re: your mail to the helpdesk".into();
    }
    let already = original
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("re:"));
    if already {
        original.to_owned()
    } else {
        format!("Re: {original}")
    }
}

/// The reply as a mail: threaded, marked as automatic (RFC 3834), and
/// carrying our X-Loop so that it is never processed again.
pub(crate) fn to_message(reply: &Reply, from: &str) -> Result<Message, ReplyError> {
    let build = |e: &dyn std::fmt::Display| ReplyError::Build(e.to_string());
    let from_box: lettre::message::Mailbox = from.parse().map_err(|e| build(&e))?;
    let to_box: lettre::message::Mailbox = reply.to.parse().map_err(|e| build(&e))?;
    let mut builder = Message::builder()
        .from(from_box)
        .to(to_box)
        .subject(reply.subject.clone())
        .date_now()
        .raw_header(raw_header("Auto-Submitted", "auto-replied").map_err(|e| build(&e))?)
        .raw_header(raw_header("X-Loop", from).map_err(|e| build(&e))?)
        .raw_header(raw_header("Precedence", "bulk").map_err(|e| build(&e))?);
    if let Some(id) = &reply.message_id {
        builder = builder.message_id(Some(format!("<{id}>")));
    }
    if let Some(id) = &reply.in_reply_to {
        builder = builder.in_reply_to(format!("<{id}>"));
    }
    if !reply.references.is_empty() {
        let refs: Vec<String> = reply.references.iter().map(|r| format!("<{r}>")).collect();
        builder = builder.references(refs.join(" "));
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(reply.body.clone().unwrap_or_default())
        .map_err(|e| build(&e))
}

pub(crate) fn raw_header(name: &'static str, value: &str) -> Result<HeaderValue, String> {
    let name = HeaderName::new_from_ascii(name.to_owned()).map_err(|e| e.to_string())?;
    // Header values never carry line breaks from anywhere.
    let value: String = value.chars().filter(|c| !c.is_control()).collect();
    Ok(HeaderValue::new(name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert_eq!(reply_subject("New User"), "Re: New User");
        assert_eq!(reply_subject("RE: New User"), "RE: New User");
        assert_eq!(reply_subject("  "), "Re: your mail to the helpdesk");
    }
}
