//! The mails of `approvals:`: the approval request to each approver (its
//! Message-ID carries the token a reply must name), the note to the
//! requester that the request waits, and the short notes about answers,
//! denials and expiry. Secrets are redacted as in every other reply.

use serde::Serialize;

use super::{
    Answer, Reply, ReplyError, TemplateData, about_request, references, render, reply_subject,
};
use crate::decide::Decision;
use crate::decide::redact::Secrets;
use crate::desk::config::Config;
use crate::mail::Mail;

/// What the approval templates see besides the usual values.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Context {
    /// The waiting request's journal row.
    pub row: Option<i64>,
    pub requester: Option<String>,
    /// How the requester was authenticated.
    pub authentication: Option<String>,
    pub approvers: Vec<String>,
    pub required: Option<u32>,
    /// When it expires (RFC 3339).
    pub expires: Option<String>,
    /// `approval_note`'s paragraph.
    pub note: Option<String>,
    /// `control`'s transcript.
    pub transcript: Option<String>,
}

/// The prefix of an approval request's Message-ID; the token follows.
pub(crate) const MESSAGE_ID_PREFIX: &str = "helpdesk-approval.";

/// The Message-ID of the approval request mail with `token`.
pub(crate) fn message_id(config: &Config, token: &str) -> String {
    let domain = config
        .helpdesk_address
        .as_deref()
        .and_then(|a| a.rsplit_once('@'))
        .map_or("helpdesk.invalid", |(_, d)| d.trim_end_matches('>'));
    format!("{MESSAGE_ID_PREFIX}{token}@{domain}")
}

/// The token of the first approval request `mail` answers (In-Reply-To,
/// then References, newest first), if it names one.
pub(crate) fn token_in(mail: &Mail) -> Option<String> {
    let ids = mail.in_reply_to.iter().chain(mail.references.iter().rev());
    ids.filter_map(|id| {
        let local = id.split('@').next()?;
        let token = local.strip_prefix(MESSAGE_ID_PREFIX)?;
        let valid = token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| token.to_ascii_lowercase())
    })
    .next()
}

/// The approval request mail to `to`.
pub(crate) fn request(
    config: &Config,
    mail: &Mail,
    decision: &Decision,
    secrets: &Secrets,
    context: &Context,
    (to, token): (&str, &str),
) -> Result<Reply, ReplyError> {
    let data = data(config, mail, decision, secrets, context);
    let template = "approval_request";
    let text = render(&config.desk, template, &data)?;
    let row = context.row.unwrap_or_default();
    let subject = format!(
        "Approval needed: request {row} from {}",
        mail.sender.as_deref().unwrap_or("?")
    );
    Ok(Reply {
        to: to.to_owned(),
        subject: secrets.scrub(&subject),
        template: template.to_owned(),
        body: Some(secrets.scrub(&text)),
        in_reply_to: None,
        references: Vec::new(),
        message_id: Some(message_id(config, token)),
    })
}

/// The reply to the requester: the request waits, for whom.
pub(crate) fn waiting(
    config: &Config,
    mail: &Mail,
    decision: &Decision,
    secrets: &Secrets,
    context: &Context,
) -> Result<Reply, ReplyError> {
    let data = data(config, mail, decision, secrets, context);
    about_request(config, mail, decision, secrets, ("pending", &data))
}

/// A short note to `mail`'s sender (an approver's answer, or a request
/// mail rebuilt from its journal row), threaded under it.
pub(crate) fn note(config: &Config, mail: &Mail, note: &str) -> Result<Reply, ReplyError> {
    let context = Context {
        note: Some(note.to_owned()),
        ..Context::default()
    };
    to_sender(config, mail, "approval_note", context)
}

/// `template` with `context` (and nothing of a decision), as a reply to
/// `mail`'s sender threaded under it.
fn to_sender(
    config: &Config,
    mail: &Mail,
    template: &str,
    context: Context,
) -> Result<Reply, ReplyError> {
    let data = TemplateData {
        approval: context,
        ..TemplateData::blank(config, mail)
    };
    Ok(Reply {
        to: mail.sender.clone().unwrap_or_default(),
        subject: reply_subject(&mail.subject),
        template: template.to_owned(),
        body: Some(render(&config.desk, template, &data)?),
        in_reply_to: mail.message_id.clone(),
        references: references(mail),
        message_id: None,
    })
}

fn data(
    config: &Config,
    mail: &Mail,
    decision: &Decision,
    secrets: &Secrets,
    context: &Context,
) -> TemplateData {
    let mut data = TemplateData::new(
        config,
        mail,
        decision,
        &Answer::Pending,
        Vec::new(),
        secrets,
    );
    data.approval = context.clone();
    data
}

/// The transcript reply to a mail to the control address.
pub(crate) fn transcript(
    config: &Config,
    mail: &Mail,
    transcript: &str,
) -> Result<Reply, ReplyError> {
    let context = Context {
        transcript: Some(transcript.to_owned()),
        ..Context::default()
    };
    to_sender(config, mail, "control", context)
}
