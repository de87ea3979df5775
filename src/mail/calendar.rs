//! The calendars in a mail, for `maintenance::ical`: every `text/calendar`
//! or `application/ics` part and every attachment named `*.ics`, decoded
//! from any transfer encoding, at any depth (an attached, forwarded
//! notice too). Bounded: a few calendars of at most `MAX_CALENDAR` each.

use chrono::{DateTime, Utc};
use mail_parser::{Message, MessageParser, MimeHeaders as _, PartType};

/// Calendars read from one mail, at most.
const MAX_CALENDARS: usize = 8;
/// A larger calendar is skipped (and said so), never cut.
pub(crate) const MAX_CALENDAR: usize = 1024 * 1024;
/// How deep attached messages are followed.
const MAX_DEPTH: usize = 4;

/// The calendars found, and why others were skipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Calendars {
    pub texts: Vec<String>,
    pub skipped: Vec<String>,
}

/// The calendars in `raw`.
pub(crate) fn calendars(raw: &[u8]) -> Calendars {
    let mut found = Calendars::default();
    if let Some(message) = MessageParser::default().parse(raw) {
        collect(&message, 0, &mut found);
    }
    found
}

fn collect(message: &Message<'_>, depth: usize, found: &mut Calendars) {
    for part in &message.parts {
        if found.texts.len() >= MAX_CALENDARS {
            return;
        }
        let is_calendar = part.content_type().is_some_and(|t| {
            let (ctype, subtype) = (t.ctype(), t.subtype().unwrap_or(""));
            (ctype.eq_ignore_ascii_case("text") && subtype.eq_ignore_ascii_case("calendar"))
                || (ctype.eq_ignore_ascii_case("application")
                    && subtype.eq_ignore_ascii_case("ics"))
        }) || part
            .attachment_name()
            .is_some_and(|n| n.to_ascii_lowercase().trim_end().ends_with(".ics"));
        let bytes: Option<&[u8]> = match &part.body {
            PartType::Message(inner) if depth < MAX_DEPTH => {
                collect(inner, depth + 1, found);
                None
            }
            PartType::Text(text) | PartType::Html(text) => Some(text.as_bytes()),
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) => Some(bytes),
            _ => None,
        };
        let (true, Some(bytes)) = (is_calendar, bytes) else {
            continue;
        };
        if bytes.len() > MAX_CALENDAR {
            found.skipped.push(format!(
                "a calendar of {} bytes (more than {MAX_CALENDAR})",
                bytes.len()
            ));
            continue;
        }
        found
            .texts
            .push(String::from_utf8_lossy(bytes).into_owned());
    }
}

/// The mail's `Date:`, in UTC.
pub(crate) fn date(raw: &[u8]) -> Option<DateTime<Utc>> {
    let message = MessageParser::default().parse_headers(raw)?;
    DateTime::from_timestamp(message.date()?.to_timestamp(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ICS: &str = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn calendars_are_found_in_every_encoding_and_depth() {
        let b64 = "QkVHSU46VkNBTEVOREFSDQpCRUdJTjpWRVZFTlQNClVJRDoxDQpFTkQ6VkVWRU5UDQpFTkQ6VkNBTEVOREFSDQo=";
        let raw = format!(
            "From: a@b.c\r\nDate: Thu, 3 Dec 2026 06:00:00 +0000\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\nhello\r\n--X\r\nContent-Type: text/calendar; method=PUBLISH\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nBEGIN:VCALENDAR=0D=0ABEGIN:VEVENT=0D=0AUID:1=0D=0AEND:VEVENT=0D=0AEND:VCALENDAR=0D=0A\r\n--X\r\nContent-Type: application/octet-stream; name=notice.ics\r\nContent-Disposition: attachment; filename=notice.ics\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--X\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@d.e\r\nContent-Type: text/calendar\r\n\r\n{ICS}\r\n--X--\r\n"
        );
        let found = calendars(raw.as_bytes());
        assert_eq!(found.texts.len(), 3, "{found:?}");
        for text in &found.texts {
            assert!(text.contains("BEGIN:VEVENT\r\nUID:1"), "{text:?}");
        }
        assert_eq!(
            date(raw.as_bytes()).map(|d| d.to_rfc3339()),
            Some("2026-12-03T06:00:00+00:00".into())
        );
        assert!(
            calendars(b"From: a@b.c\r\n\r\nno calendar")
                .texts
                .is_empty()
        );
        assert!(calendars(&[0xff, 0x00, 0x80]).texts.is_empty());
    }
}
