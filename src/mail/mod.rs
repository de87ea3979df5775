//! **Stage 1, mail: bytes → `Mail`.** Owns reading a raw message: MIME
//! (the only code that knows mail-parser), HTML to text, quoted history and
//! signatures (`quotes`), lines already seen in a thread (`thread`), mbox
//! files. May not look at requests, grants or the helpdesk folder: what a
//! mail *says* is decided here, what it *asks for* is `decide`'s.
//!
//! Reading one raw RFC 822 message (and splitting an mbox into them): the
//! only module that knows mail-parser.
//!
//! It yields what the rest of the pipeline needs and nothing more: the
//! sender, the decoded subject (and the subject without `Re:`-style
//! prefixes), the Message-ID, and the body as plain text with quoted reply
//! text and the signature removed, so that an old message quoted in a reply
//! can never trigger an action.

pub(crate) mod calendar;
pub(crate) mod html;
pub(crate) mod quotes;
pub(crate) mod thread;

use mail_parser::{Message, MessageParser, PartType};

use crate::mail::quotes::Cut;

/// The parts of a message the helpdesk reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Mail {
    /// Address from the configured sender header (From by default);
    /// `None` when there is none or it is ambiguous (`sender_problem`).
    pub sender: Option<String>,
    /// Why `sender` is `None`, when the mail says more than "no sender".
    pub sender_problem: Option<SenderProblem>,
    /// The subject, RFC 2047 words decoded.
    pub subject: String,
    /// The subject without reply and forward prefixes, for classification.
    pub topic: String,
    pub message_id: Option<String>,
    /// Plain text of the body, quotes and signature removed.
    pub body: String,
    /// What was cut from the body's text to leave `body`, in order.
    pub cuts: Vec<Cut>,
    /// Where the body text came from.
    pub body_source: BodySource,
    /// Message-IDs of the thread (References), for threading a reply.
    pub references: Vec<String>,
    /// The message this one answers (In-Reply-To).
    pub in_reply_to: Option<String>,
    /// Headers that say whether the message may be answered automatically.
    pub markers: Markers,
    /// Received and Authentication-Results headers, top (newest) first.
    pub trace: Vec<Trace>,
    /// Only the start of a larger message was read (limits.message_size).
    pub truncated: bool,
    /// The To and Cc addresses, lower-cased (at most `MAX_RECIPIENTS`):
    /// whether it was sent to the control address.
    pub recipients: Vec<String>,
}

/// The most recipients read from one mail.
const MAX_RECIPIENTS: usize = 100;

/// Why a mail has no one sender. Each makes it unauthenticated: with two
/// candidates, the MX may have checked one and helpdesk would read the
/// other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SenderProblem {
    /// The header is not there (`Sender` is never taken instead of From).
    Missing { header: String },
    /// The header appears more than once.
    Repeated { header: String, count: usize },
    /// The header holds a list of addresses or a group.
    SeveralAddresses { header: String, count: usize },
    /// A group (`Team: a@example.com;`), even of one: RFC 5322 From is a
    /// list of mailboxes.
    Group { header: String },
    /// The header holds no address with a local part and a domain.
    Unusable { header: String },
}

impl std::fmt::Display for SenderProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing { header } => write!(f, "the mail has no {header} header"),
            Self::Repeated { header, count } => write!(
                f,
                "the mail has {count} {header} headers: the sender is ambiguous"
            ),
            Self::SeveralAddresses { header, count } => write!(
                f,
                "the {header} header holds {count} addresses: the sender is ambiguous"
            ),
            Self::Group { header } => write!(
                f,
                "the {header} header is a group (name: addresses;), not one mailbox"
            ),
            Self::Unusable { header } => {
                write!(f, "the {header} header holds no usable address")
            }
        }
    }
}

/// A header that records the message's path or its authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trace {
    /// A Received header and the host named in its `by` clause.
    Received { by: Option<String> },
    /// An Authentication-Results header's raw value.
    AuthResults(String),
}

/// What RFC 3834 and common practice look at before an automatic reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Markers {
    pub auto_submitted: Option<String>,
    pub precedence: Option<String>,
    /// The first `List-*` header's name, when there is one.
    pub list_header: Option<String>,
    pub auto_response_suppress: Option<String>,
    /// Every `X-Loop` value.
    pub x_loop: Vec<String>,
    /// The raw Return-Path, trimmed (`<>` for bounces).
    pub return_path: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum BodySource {
    #[default]
    None,
    Plain,
    Html,
}

impl BodySource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Plain => "text/plain",
            Self::Html => "text/html converted to text",
        }
    }
}

/// Reads a message. Never fails: bytes that are not a message give an
/// empty `Mail`, which classifies as nothing.
pub(crate) fn read(raw: &[u8], sender_header: &str) -> Mail {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Mail::default();
    };
    let subject = header_text(message.subject().unwrap_or_default());
    let (text, body_source, html_cut) = body_text(&message);
    let (text, mut cuts) = match html_cut {
        Some(cut) => {
            let head: Vec<&str> = text.lines().take(cut.line - 1).collect();
            (head.join("\n"), vec![cut])
        }
        None => (text, Vec::new()),
    };
    let stripped = quotes::strip(&text);
    cuts.splice(0..0, stripped.cuts);
    let (sender, sender_problem) = match sender(&message, sender_header) {
        Ok(address) => (Some(address), None),
        Err(problem) => (None, Some(problem)),
    };
    Mail {
        sender,
        sender_problem,
        topic: strip_subject_prefixes(&subject).to_owned(),
        subject,
        message_id: message.message_id().and_then(message_id),
        body: stripped.text,
        cuts,
        body_source,
        references: references(&message),
        in_reply_to: message
            .in_reply_to()
            .as_text_list()
            .and_then(|ids| ids.last().map(|id| id.to_string()))
            .or_else(|| message.in_reply_to().as_text().map(str::to_owned))
            .and_then(|id| message_id(&id)),
        markers: markers(&message),
        trace: trace(&message),
        truncated: false,
        recipients: recipients(&message),
    }
}

/// The messages of an mbox file (`From ` lines split them), each as its
/// raw bytes, in file order (an error where one cannot be read).
pub(crate) fn mbox<R: std::io::BufRead>(
    reader: R,
) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
    mail_parser::mailbox::mbox::MessageIterator::new(reader)
        .map(|message| message.map(mail_parser::mailbox::mbox::Message::unwrap_contents))
}

/// A header's decoded text as the rest of the program sees it: control
/// characters (C0, DEL, C1; an encoded word can carry any of them) are
/// gone, tabs and line breaks become one space, and the ends are trimmed.
/// Nothing downstream ever sees a line break from a header.
pub(crate) fn header_text(decoded: &str) -> String {
    let mut out = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

/// The longest Message-ID kept (RFC 5322's line length); a longer one is
/// treated as none, so it can neither fill the journal nor be cut into a
/// collision.
const MAX_MESSAGE_ID: usize = 998;

/// A Message-ID as helpdesk keeps it: folding white space and control
/// characters removed (an identifier has none), `None` when nothing or too
/// much is left.
fn message_id(decoded: &str) -> Option<String> {
    let id: String = decoded
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    (!id.is_empty() && id.len() <= MAX_MESSAGE_ID).then_some(id)
}

fn trace(message: &Message<'_>) -> Vec<Trace> {
    message
        .headers()
        .iter()
        .filter_map(|h| {
            let name = h.name();
            if name.eq_ignore_ascii_case("Received") {
                let by = h
                    .value()
                    .as_received()
                    .and_then(|r| r.by())
                    .map(|host| match host {
                        mail_parser::Host::Name(name) => name.to_ascii_lowercase(),
                        mail_parser::Host::IpAddr(ip) => ip.to_string(),
                    });
                Some(Trace::Received { by })
            } else if name.eq_ignore_ascii_case("Authentication-Results") {
                let start = usize::try_from(h.offset_start()).ok()?;
                let end = usize::try_from(h.offset_end()).ok()?;
                let value = message.raw_message().get(start..end)?;
                Some(Trace::AuthResults(
                    String::from_utf8_lossy(value).into_owned(),
                ))
            } else {
                None
            }
        })
        .collect()
}

fn references(message: &Message<'_>) -> Vec<String> {
    let value = message.references();
    value
        .as_text_list()
        .map(|list| list.iter().map(|id| id.to_string()).collect())
        .or_else(|| value.as_text().map(|id| vec![id.to_owned()]))
        .unwrap_or_default()
}

fn recipients(message: &Message<'_>) -> Vec<String> {
    [message.to(), message.cc()]
        .into_iter()
        .flatten()
        .flat_map(|address| address.iter())
        .filter_map(|addr| addr.address())
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty())
        .take(MAX_RECIPIENTS)
        .collect()
}

fn markers(message: &Message<'_>) -> Markers {
    let raw = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    Markers {
        auto_submitted: raw("Auto-Submitted"),
        precedence: raw("Precedence"),
        list_header: message
            .headers()
            .iter()
            .map(|h| h.name())
            .find(|name| {
                name.len() > 5
                    && name
                        .get(..5)
                        .is_some_and(|p| p.eq_ignore_ascii_case("list-"))
            })
            .map(str::to_owned),
        auto_response_suppress: raw("X-Auto-Response-Suppress"),
        x_loop: message
            .headers()
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case("X-Loop"))
            .filter_map(|h| {
                let start = usize::try_from(h.offset_start()).ok()?;
                let end = usize::try_from(h.offset_end()).ok()?;
                let value = message.raw_message().get(start..end)?;
                Some(String::from_utf8_lossy(value).trim().to_owned())
            })
            .collect(),
        return_path: raw("Return-Path"),
    }
}

/// The one address of the sender header, or why there is not one. The
/// From header must be unambiguous too when another header names the
/// sender: the MX's DMARC verdict is about From.
fn sender(message: &Message<'_>, header: &str) -> Result<String, SenderProblem> {
    let from = one_address(message, "From");
    if header.eq_ignore_ascii_case("from") {
        return from;
    }
    if let Err(
        problem @ (SenderProblem::Repeated { .. }
        | SenderProblem::SeveralAddresses { .. }
        | SenderProblem::Group { .. }),
    ) = from
    {
        return Err(problem);
    }
    one_address(message, header)
}

fn one_address(message: &Message<'_>, header: &str) -> Result<String, SenderProblem> {
    let name = || header.to_owned();
    let raws: Vec<&str> = message
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(header))
        .filter_map(|h| {
            let start = usize::try_from(h.offset_start()).ok()?;
            let end = usize::try_from(h.offset_end()).ok()?;
            std::str::from_utf8(message.raw_message().get(start..end)?).ok()
        })
        .collect();
    let count = message
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(header))
        .count();
    match count {
        0 => return Err(SenderProblem::Missing { header: name() }),
        1 => {}
        count => {
            return Err(SenderProblem::Repeated {
                header: name(),
                count,
            });
        }
    }
    // Parse the value as if it were a From header (for From itself too,
    // so both take one path): `"List" <a@b>`, comments and encoded words
    // are handled by the real address parser.
    let value = raws
        .first()
        .ok_or_else(|| SenderProblem::Unusable { header: name() })?;
    let synthetic = format!("From:{value}\r\n\r\n");
    let parsed = MessageParser::default()
        .parse(synthetic.as_bytes())
        .ok_or_else(|| SenderProblem::Unusable { header: name() })?;
    let address = parsed
        .from()
        .ok_or_else(|| SenderProblem::Unusable { header: name() })?;
    if address.as_group().is_some() {
        return Err(SenderProblem::Group { header: name() });
    }
    let count = address.iter().count();
    if count > 1 {
        return Err(SenderProblem::SeveralAddresses {
            header: name(),
            count,
        });
    }
    let address = address
        .first()
        .and_then(|a| a.address())
        .ok_or_else(|| SenderProblem::Unusable { header: name() })?;
    // A usable address has a local part and a domain; mail-parser reads a
    // quoted local part ("x"@example.com) as a display name and "@domain".
    let address = address.trim();
    let usable = address
        .rsplit_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !address.chars().any(|c| c.is_control() || c.is_whitespace());
    if usable {
        Ok(address.to_owned())
    } else {
        Err(SenderProblem::Unusable { header: name() })
    }
}

/// The most body text read, in bytes: requests are a few lines, and
/// everything after this (quoted history, pasted logs) costs time and
/// memory without ever being a request. Text beyond it is cut, and the
/// cut is shown by `parse --explain`. The HTML converter stops at the
/// same size.
pub(crate) const MAX_TEXT: usize = html::MAX_TEXT;

/// The body text being assembled from the text parts, with its line count
/// kept as it grows (counting again for every part was quadratic in the
/// number of parts).
#[derive(Debug, Default)]
struct BodyText {
    text: String,
    /// Line breaks in `text`.
    breaks: usize,
    /// Lines, as `str::lines` counts them.
    lines: usize,
    /// Where text beyond MAX_TEXT starts (a line of `text`, counted from
    /// 1) and how many lines of the part being added were left out.
    full_at: Option<(usize, usize)>,
}

impl BodyText {
    /// Appends a part, up to MAX_TEXT in all (cut at a line break when
    /// there is one in the last 4 KiB, else at a character boundary).
    fn push(&mut self, piece: &str) {
        if self.full_at.is_some() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push('\n');
            self.breaks += 1;
        }
        let room = MAX_TEXT.saturating_sub(self.text.len());
        let mut take = piece;
        if piece.len() > room {
            let mut end = room;
            while !piece.is_char_boundary(end) {
                end -= 1;
            }
            let window = end.saturating_sub(4096);
            if let Some(nl) = piece[window..end].rfind('\n') {
                end = window + nl;
            }
            take = &piece[..end];
        }
        self.text.push_str(take);
        self.breaks += take.bytes().filter(|&b| b == b'\n').count();
        self.lines = self.breaks + usize::from(!self.text.is_empty() && !self.text.ends_with('\n'));
        if take.len() < piece.len() {
            let rest = piece[take.len()..].trim_start_matches('\n');
            self.full_at = Some((self.lines + 1, rest.lines().count()));
        }
    }
}

/// The inline text parts, in order; HTML parts converted when there is no
/// plain alternative (mail-parser lists whichever the message prefers).
/// The cut is where the text stops being the sender's: an HTML part's
/// quoted history (a Gmail, Outlook or Thunderbird quote container), or
/// MAX_TEXT, as a line of the returned text.
fn body_text(message: &Message<'_>) -> (String, BodySource, Option<Cut>) {
    let mut body = BodyText::default();
    let mut source = BodySource::None;
    let mut cut = None;
    for id in &message.text_body {
        let Some(part) = message.parts.get(*id as usize) else {
            continue;
        };
        let lines_before = body.lines;
        match &part.body {
            PartType::Text(plain) => {
                body.push(plain);
                if source == BodySource::None {
                    source = BodySource::Plain;
                }
            }
            PartType::Html(markup) => {
                let converted = html::to_text(markup);
                body.push(&converted.text);
                if converted.truncated && body.full_at.is_none() {
                    // The converter stopped at html::MAX_TEXT: the rest of
                    // the part was not read, so it cannot be counted.
                    body.full_at = Some((body.lines + 1, 0));
                }
                if source == BodySource::None {
                    source = BodySource::Html;
                }
                if let Some((line, reason)) = converted.quote {
                    // Everything from the quote container on is history,
                    // the parts after it included.
                    let line = lines_before + line;
                    let lines = (body.lines + 1).saturating_sub(line);
                    cut = Some(Cut {
                        line,
                        lines,
                        reason,
                    });
                    break;
                }
            }
            _ => {}
        }
        if let Some((line, lines)) = body.full_at {
            let reason = format!(
                "the text after the first {} KiB is not read",
                MAX_TEXT / 1024
            );
            cut = Some(Cut {
                line,
                lines,
                reason,
            });
            break;
        }
    }
    (body.text, source, cut)
}

/// Reply and forward markers in the languages mail clients ship: Re, Fwd,
/// Fw, AW (de), WG (de), SV (sv/da/no), VS (fi), Antw (nl), TR (fr), RV
/// (es), R/RIF/I (it), ENC (pt), ODP/PD (pl), RES (pt), VB (tr), YNT (tr),
/// VL (fi), ΑΠ/ΣΧΕΤ/ΠΡΘ (el), HA (hu), 答复/回复/转发 (zh), 返信/転送 (ja),
/// Ответ/Переслать/НА (ru).
/// (Plain code rather than a regex: this runs for every mail, and building
/// a Unicode regex costs more than the whole rest of a dry run.)
const SUBJECT_PREFIXES: &[&str] = &[
    "re",
    "fwd",
    "fw",
    "aw",
    "wg",
    "sv",
    "vs",
    "antw",
    "tr",
    "rv",
    "r",
    "rif",
    "enc",
    "odp",
    "res",
    "vb",
    "ynt",
    "réf",
    "ref",
    "i",
    "pd",
    "vl",
    "απ",
    "σχετ",
    "πρθ",
    "ha",
    "答复",
    "回复",
    "转发",
    "返信",
    "転送",
    "ответ",
    "переслать",
    "на",
];

/// `Re: Fwd: AW: New User` → `New User`; counters (`Re[2]:`) and
/// full-width colons included.
pub(crate) fn strip_subject_prefixes(subject: &str) -> &str {
    let mut rest = subject;
    loop {
        let trimmed = rest.trim_start();
        let Some(colon) = trimmed.find([':', '：']) else {
            return rest;
        };
        let head = trimmed[..colon].trim_end();
        let word = head
            .strip_suffix(']')
            .and_then(|h| h.rsplit_once('['))
            .or_else(|| head.strip_suffix(')').and_then(|h| h.rsplit_once('(')))
            .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .map_or(head, |(w, _)| w)
            .trim_end()
            .to_lowercase();
        if !SUBJECT_PREFIXES.contains(&word.as_str()) {
            return rest;
        }
        let colon_len = trimmed[colon..].chars().next().map_or(1, char::len_utf8);
        rest = trimmed[colon + colon_len..].trim_start();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_never_carry_control_characters_or_line_breaks() {
        // Every C0 and C1 control, DEL, and the Unicode line breaks, smuggled
        // in through RFC 2047 encoded words (base64 and Q) in the subject and
        // through folding in the Message-ID.
        let controls: Vec<char> = (0u32..0x20)
            .chain(0x7F..0xA0)
            .filter_map(char::from_u32)
            .chain(['\u{2028}', '\u{2029}', '\u{85}'])
            .collect();
        for c in controls {
            let text = format!("storage{c}#jinja2:x{c}{c}done");
            let b64 = base64(text.as_bytes());
            let raw = format!(
                "From: a@example.com\r\nSubject: =?utf-8?B?{b64}?=\r\nMessage-ID: <a{c}b\r\n\t{c}@x>\r\n\r\nhi\r\n"
            );
            let mail = read(raw.as_bytes(), "From");
            for value in [&mail.subject, &mail.topic] {
                assert!(
                    !value
                        .chars()
                        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'),
                    "{c:?}: {value:?}"
                );
                assert!(
                    value.starts_with("storage") && value.ends_with("done"),
                    "{value:?}"
                );
            }
            if let Some(id) = &mail.message_id {
                assert!(id.chars().all(|c| c.is_ascii_graphic()), "{c:?}: {id:?}");
            }
        }
        assert_eq!(header_text(" a\t\r\n b\u{1b}[2J\u{9b}c "), "a b[2Jc");
        assert_eq!(message_id("a\r\n b@x"), Some("ab@x".into()));
        assert_eq!(message_id(" \r\n"), None);
        assert_eq!(message_id(&"x".repeat(999)), None);
    }

    fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn subject_prefixes() {
        assert_eq!(strip_subject_prefixes("Re: New User"), "New User");
        assert_eq!(
            strip_subject_prefixes("RE: Fwd: AW:WG: New User"),
            "New User"
        );
        assert_eq!(strip_subject_prefixes("Re[2]: quota"), "quota");
        assert_eq!(strip_subject_prefixes("答复: 存储"), "存储");
        assert_eq!(strip_subject_prefixes("I: PD: VL: quota"), "quota");
        assert_eq!(
            strip_subject_prefixes("Renewal of contract"),
            "Renewal of contract"
        );
        assert_eq!(strip_subject_prefixes("Reset password"), "Reset password");
    }

    #[test]
    fn garbage_never_panics() {
        for raw in [
            &b""[..],
            b"\xff\xfe\x00",
            b"From:\r\n\r\n",
            b"Subject: =?utf-8?B?////?=\r\n\r\n\xc3",
        ] {
            let _ = read(raw, "From");
            let _ = read(raw, "X-Original-Sender");
        }
    }

    #[test]
    fn markers_and_references() {
        let raw = b"Return-Path: <>\r\nFrom: a@example.com\r\nX-Loop: one@example.com\r\nX-Loop: helpdesk@example.com\r\nAuto-Submitted: auto-replied\r\nList-Id: <x.example.com>\r\nPrecedence:  bulk\r\nX-Auto-Response-Suppress: OOF, AutoReply\r\nReferences: <a@x> <b@x>\r\nSubject: quota\r\n\r\nhi\r\n";
        let mail = read(raw, "From");
        let m = &mail.markers;
        assert_eq!(m.return_path.as_deref(), Some("<>"));
        assert_eq!(
            m.x_loop,
            vec![
                "one@example.com".to_owned(),
                "helpdesk@example.com".to_owned()
            ]
        );
        assert_eq!(m.auto_submitted.as_deref(), Some("auto-replied"));
        assert!(
            m.list_header
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case("List-Id"))
        );
        assert_eq!(m.precedence.as_deref(), Some("bulk"));
        assert_eq!(m.auto_response_suppress.as_deref(), Some("OOF, AutoReply"));
        assert_eq!(mail.references, vec!["a@x".to_owned(), "b@x".to_owned()]);
    }

    #[test]
    fn sender_from_another_header() {
        let raw = b"From: list@lists.example.com\r\nX-Original-Sender: \"Alice A.\" <alice@example.com>\r\nSubject: quota\r\n\r\nhi\r\n";
        assert_eq!(
            read(raw, "From").sender.as_deref(),
            Some("list@lists.example.com")
        );
        assert_eq!(
            read(raw, "X-Original-Sender").sender.as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(read(raw, "X-Missing").sender, None);
    }

    #[test]
    fn html_blockquotes_become_quotes() {
        let raw = b"From: a@example.com\r\nSubject: Re: New User\r\nContent-Type: text/html\r\n\r\n<div>Thanks!</div><div class=\"gmail_quote\"><div class=\"gmail_attr\">On Mon, Bob wrote:</div><blockquote>delete user: bob</blockquote></div>";
        let mail = read(raw, "From");
        assert_eq!(mail.body_source, BodySource::Html);
        assert_eq!(mail.body, "Thanks!");
    }
}
