//! **Provider maintenance notices: a mail → a `Maintenance`.** A mail from
//! a provider's authenticated sender (`desk::maintenance`) is no request:
//! it announces planned work. `ical` reads the BCOP iCalendar format
//! (`X-MAINTNOTE-*` in a `VEVENT`), `command` runs a provider's own parser
//! (mail on stdin, JSON out). Both give the same plain value, or the reason
//! nothing could be read: a notice that cannot be read goes to a person,
//! never nowhere. No side effects here beyond the command parser's process.

pub(crate) mod command;
pub(crate) mod ical;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The BCOP `X-MAINTNOTE-STATUS` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Status {
    #[serde(rename = "TENTATIVE")]
    Tentative,
    #[serde(rename = "CONFIRMED")]
    Confirmed,
    #[serde(rename = "CANCELLED")]
    Cancelled,
    #[serde(rename = "IN-PROCESS")]
    InProcess,
    #[serde(rename = "COMPLETED")]
    Completed,
    #[serde(rename = "RE-SCHEDULED")]
    ReScheduled,
}

impl Status {
    pub(crate) const ALL: [Status; 6] = [
        Status::Tentative,
        Status::Confirmed,
        Status::Cancelled,
        Status::InProcess,
        Status::Completed,
        Status::ReScheduled,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Tentative => "TENTATIVE",
            Status::Confirmed => "CONFIRMED",
            Status::Cancelled => "CANCELLED",
            Status::InProcess => "IN-PROCESS",
            Status::Completed => "COMPLETED",
            Status::ReScheduled => "RE-SCHEDULED",
        }
    }

    /// The status a text names (case-insensitively, as BCOP spells it).
    pub(crate) fn parse(text: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// One circuit (or other object) a maintenance affects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Circuit {
    pub id: String,
    /// BCOP `X-MAINTNOTE-OBJECT-IMPACT` (NO-IMPACT, REDUCED-REDUNDANCY,
    /// DEGRADED, OUTAGE), or the notice's `X-MAINTNOTE-IMPACT` when the
    /// object gives none.
    pub impact: String,
}

/// A maintenance as one notice describes it. Every text is bounded and
/// free of control characters (see `clean`); the times are UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Maintenance {
    /// The configured provider's name (the key with `maintenance_id`).
    pub provider: String,
    pub maintenance_id: String,
    pub account: Option<String>,
    pub status: Status,
    /// `SEQUENCE`; `None` when the notice has none.
    pub sequence: Option<i64>,
    /// `DTSTAMP`, or the mail's `Date:` without one: orders notices that
    /// have no `SEQUENCE`.
    #[serde(serialize_with = "rfc3339_opt")]
    pub stamp: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339")]
    pub start: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub end: DateTime<Utc>,
    pub summary: String,
    pub organizer: Option<String>,
    pub circuits: Vec<Circuit>,
}

/// What reading a provider's mail gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    Read(Maintenance),
    /// No parser could read it: why, in one line, for the person it is
    /// forwarded to.
    Unreadable(String),
}

/// An id (maintenance, account, circuit) longer than this makes a notice
/// unreadable: cutting it would key the wrong maintenance.
pub(crate) const MAX_ID: usize = 200;
/// Objects one notice may name.
pub(crate) const MAX_CIRCUITS: usize = 500;
/// A longer summary is cut, with `…`.
pub(crate) const MAX_SUMMARY: usize = 1000;

/// Whether `c` may stay in a text from a notice: an allow-list of
/// printable characters. Control characters, and the format characters
/// that reorder or hide text (bidi overrides and isolates, zero-width
/// characters, the byte-order mark), are none.
fn printable(c: char) -> bool {
    !c.is_control()
        && !matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}')
        && !matches!(c, '\u{2028}' | '\u{2029}')
}

/// `text` with white space (tabs, line breaks) as single spaces and every
/// character that is not `printable` dropped, trimmed, at most `max`
/// characters (cut with `…`).
pub(crate) fn clean_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(4)));
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if !printable(c) {
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    if out.chars().count() > max {
        let mut cut: String = out.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        return cut;
    }
    out
}

/// An id from a notice, cleaned: `None` when nothing is left, an error
/// naming `what` when it is longer than `MAX_ID`.
pub(crate) fn clean_id(what: &str, text: &str) -> Result<Option<String>, String> {
    let id = clean_text(text, usize::MAX);
    if id.chars().count() > MAX_ID {
        return Err(format!("its {what} is longer than {MAX_ID} characters"));
    }
    Ok((!id.is_empty()).then_some(id))
}

/// `2026-12-10T02:00:00Z`.
pub(crate) fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn rfc3339<S: serde::Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(time))
}

fn rfc3339_opt<S: serde::Serializer>(
    time: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => rfc3339(time, s),
        None => s.serialize_none(),
    }
}

/// Reads a mail from `provider`'s sender with the provider's parser.
/// `date` is the mail's `Date:`, for notices without `DTSTAMP`.
pub(crate) fn read(
    provider: &crate::desk::maintenance::Provider,
    raw: &[u8],
    date: Option<DateTime<Utc>>,
) -> Notice {
    match &provider.parser {
        crate::desk::maintenance::Parser::Ical => ical::read(provider, raw, date),
        crate::desk::maintenance::Parser::Command(argv) => command::read(provider, argv, raw, date),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_printable_characters_stay_in_a_notices_text() {
        let hidden: Vec<char> = (0u32..0x20)
            .chain(0x7f..0xa0)
            .chain(0x200b..0x2010)
            .chain(0x202a..0x202f)
            .chain(0x2060..0x206a)
            .chain([0xfeff, 0x2028, 0x2029, 0xe0001])
            .filter_map(char::from_u32)
            .filter(|c| !c.is_whitespace())
            .collect();
        for c in hidden {
            assert_eq!(
                clean_text(&format!("a{c}b"), 100),
                "ab",
                "U+{:04X} stayed",
                c as u32
            );
        }
        assert_eq!(clean_text("  Zürich\t–\r\n東京  ", 100), "Zürich – 東京");
        assert_eq!(clean_text("abcdef", 4), "abc…");
        assert_eq!(clean_id("id", "\u{202E}\u{200B}"), Ok(None));
        assert!(clean_id("id", &"x".repeat(MAX_ID + 1)).is_err());
    }
}
