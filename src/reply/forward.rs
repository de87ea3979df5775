//! A provider's maintenance notice that no parser could read, forwarded to
//! the people in `maintenance.unreadable` with the reason and the notice
//! attached as it arrived: such a notice is never dropped silently.

use lettre::Message;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};

use crate::desk::config::Config;
use crate::mail::Mail;
use crate::reply::{ReplyError, raw_header, transport};

/// What an unreadable notice is, for the forward: who sent it, why it
/// could not be read, and its journal row.
#[derive(Debug)]
pub(crate) struct Unreadable<'a> {
    pub provider: &'a str,
    pub reason: &'a str,
    pub row: i64,
}

/// Forwards `raw` to `maintenance.unreadable`; what happened, for the
/// journal's reply column (`sent: ...`, `not sent: ...`, `none: ...`).
pub(crate) fn unreadable(
    config: &Config,
    mail: &Mail,
    raw: &[u8],
    what: &Unreadable<'_>,
) -> String {
    let to = &config.maintenance.unreadable;
    let (Some(settings), Some(from)) = (&config.mail, &config.helpdesk_address) else {
        tracing::warn!(
            "row {}: the unreadable notice is not forwarded: config.yaml has no mail: section",
            what.row
        );
        return "none: config.yaml has no mail: section".into();
    };
    if to.is_empty() {
        return "none: maintenance.unreadable names nobody".into();
    }
    let message = match message(from, to, mail, raw, what) {
        Ok(message) => message,
        Err(e) => {
            tracing::warn!(
                "row {}: the unreadable notice is not forwarded: {e}",
                what.row
            );
            return format!("not sent: {e}");
        }
    };
    let shown = to.join(", ");
    match transport::send(&settings.transport, &message) {
        Ok(where_to) => {
            tracing::info!(
                "row {}: unreadable notice forwarded to {shown}: {where_to}",
                what.row
            );
            format!("sent: unreadable notice forwarded to {shown}: {where_to}")
        }
        Err(e) => {
            tracing::warn!(
                "row {}: unreadable notice to {shown} not sent: {e}",
                what.row
            );
            format!("not sent: unreadable notice to {shown}: {e}")
        }
    }
}

/// The forward: a plain text saying what went wrong and what to do, and
/// the notice as `message/rfc822` (or, when its bytes cannot travel as
/// 8bit, as an `application/octet-stream` file `notice.eml`).
fn message(
    from: &str,
    to: &[String],
    mail: &Mail,
    raw: &[u8],
    what: &Unreadable<'_>,
) -> Result<Message, ReplyError> {
    let build = |e: &dyn std::fmt::Display| ReplyError::Build(e.to_string());
    let from_box: Mailbox = from.parse().map_err(|e| build(&e))?;
    let subject: String = mail
        .subject
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let mut builder = Message::builder()
        .from(from_box)
        .subject(format!(
            "Unreadable maintenance notice from {}: {subject}",
            what.provider
        ))
        .date_now()
        .raw_header(raw_header("Auto-Submitted", "auto-generated").map_err(|e| build(&e))?)
        .raw_header(raw_header("X-Loop", from).map_err(|e| build(&e))?)
        .raw_header(raw_header("Precedence", "bulk").map_err(|e| build(&e))?);
    for address in to {
        builder = builder.to(address.parse().map_err(|e| build(&e))?);
    }
    let text = text(mail, what);
    let notice = match Body::new_with_encoding(raw.to_vec(), ContentTransferEncoding::EightBit) {
        Ok(body) => SinglePart::builder()
            .header(ContentType::parse("message/rfc822").map_err(|e| build(&e))?)
            .body(body),
        Err(raw) => Attachment::new("notice.eml".into()).body(
            Body::new(raw),
            ContentType::parse("application/octet-stream").map_err(|e| build(&e))?,
        ),
    };
    builder
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(text))
                .singlepart(notice),
        )
        .map_err(|e| build(&e))
}

/// The forward's text.
fn text(mail: &Mail, what: &Unreadable<'_>) -> String {
    let clean = |text: &str| -> String {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let sender = mail.sender.as_deref().map_or_else(|| "-".into(), clean);
    let id = mail.message_id.as_deref().map_or_else(|| "-".into(), clean);
    format!(
        "helpdesk could not read a maintenance notice from provider {provider}.\n\n\
         Why:        {reason}\n\
         From:       {sender}\n\
         Message-ID: {id}\n\
         Journal:    row {row} (helpdesk show {row})\n\n\
         Nothing was scheduled from it: if it announces work that matters,\n\
         act on it by hand. The notice is attached as it arrived; to see what\n\
         helpdesk reads in it, save it and run\n\n\
         \x20   helpdesk --config config.yaml parse --format json < notice.eml\n\n\
         If the provider's format changed, its parser (maintenance.providers)\n\
         needs to follow; see docs/maintenance.md.\n",
        provider = what.provider,
        reason = clean(what.reason),
        row = what.row,
    )
}
