//! Quoted history, forwarded messages and signatures: what is cut from a
//! body's text before the phrasebook reads it, and why. An old message
//! quoted in a reply must never trigger an action.
//!
//! The rules read the text once, line by line, with a lookahead of a few
//! lines (an attribution wraps over at most three, an Outlook header block
//! shows its second header within five), so the cost is linear in the size
//! of the text whatever it holds. When in doubt they cut: a request that is
//! cut gets a "missing information" reply, a quote that is kept runs someone
//! else's old request.
//!
//! - `>` lines are cut wherever they are; text between quote blocks (an
//!   interleaved reply) is kept.
//! - An attribution ("On … wrote:", "Am … schrieb …:", "2017-11-24 16:32
//!   GMT+01:00 Name <addr>:" …) followed by `>` lines is cut with them;
//!   followed by an unquoted body it cuts everything from there on. Text
//!   written before it on the same line is kept.
//! - Everything from an Outlook header block (From:/Sent:/To:/Subject: in
//!   many languages), a separator ("-----Original Message-----",
//!   "Begin forwarded message:" …), a signature separator (`-- `) or a
//!   mobile client's signature ("Sent from my iPhone") on is cut.

use std::borrow::Cow;
use std::collections::VecDeque;

/// One cut: where in the body text it starts, how many lines it took, and
/// which rule made it (as `parse --explain` prints it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Cut {
    /// First line cut, counted from 1 in the body text before any cut.
    pub line: usize,
    /// How many lines were cut.
    pub lines: usize,
    /// What was cut and why, e.g. "Outlook header block (Von:/Gesendet:)".
    pub reason: String,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lines == 0 {
            // Text that was never read, so its lines are not known.
            return write!(f, "cut from line {}: {}", self.line, self.reason);
        }
        let s = if self.lines == 1 { "" } else { "s" };
        write!(
            f,
            "cut {} line{s} at line {}: {}",
            self.lines, self.line, self.reason
        )
    }
}

/// A body's text after the cuts, and the cuts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stripped {
    pub text: String,
    pub cuts: Vec<Cut>,
}

/// Cuts quoted lines, attributions, signatures and forwarded content.
pub(crate) fn strip(text: &str) -> Stripped {
    let mut stripper = Stripper {
        lines: Lines {
            rest: text.lines(),
            ahead: VecDeque::new(),
            next_number: 1,
        },
        text: String::with_capacity(text.len()),
        any_line: false,
        held: 0,
        blanks: 0,
        open_quote: None,
        headers: [(0, None); 8],
        cuts: Vec::new(),
    };
    stripper.run();
    Stripped {
        text: stripper.text,
        cuts: stripper.cuts,
    }
}

/// The input's lines without their `\r`, numbered from 1, with a lookahead.
struct Lines<'a> {
    rest: std::str::Lines<'a>,
    ahead: VecDeque<&'a str>,
    /// The number of the line `next` returns.
    next_number: usize,
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Option<(usize, &'a str)> {
        let line = self
            .ahead
            .pop_front()
            .or_else(|| self.rest.next().map(|l| l.trim_end_matches('\r')))?;
        let number = self.next_number;
        self.next_number += 1;
        Some((number, line))
    }

    /// The line `n` places after the one `next` returns next (0 = that one).
    fn peek(&mut self, n: usize) -> Option<&'a str> {
        while self.ahead.len() <= n {
            let line = self.rest.next()?.trim_end_matches('\r');
            self.ahead.push_back(line);
        }
        self.ahead.get(n).copied()
    }

    /// Gives a line back, so that the next `next` returns it again.
    fn push_back(&mut self, line: &'a str) {
        self.ahead.push_front(line);
        self.next_number -= 1;
    }

    /// Consumes the rest and says how many lines it held.
    fn count_rest(&mut self) -> usize {
        let n = self.ahead.len() + self.rest.by_ref().count();
        self.ahead.clear();
        self.next_number += n;
        n
    }
}

struct Stripper<'a> {
    lines: Lines<'a>,
    text: String,
    /// Whether `text` holds a line yet (the first may be empty).
    any_line: bool,
    /// Blank lines read before the current cut: kept if text follows it.
    held: usize,
    /// Blank lines read but not yet kept: they are kept only when text
    /// follows, or join the cut they sit in.
    blanks: usize,
    /// The cut the current run of `>` lines goes to.
    open_quote: Option<usize>,
    /// Headers read ahead, by line number modulo 8 (the lookahead is less).
    headers: [(usize, Option<(Family, &'a str)>); 8],
    cuts: Vec<Cut>,
}

/// An attribution found on one to three lines.
struct Attribution<'a> {
    /// Text written before it on its first line, kept in any case.
    before: &'a str,
    /// Its lines as written (the first `count`), kept if it turns out not
    /// to be one.
    lines: [&'a str; 3],
    count: usize,
    /// Whether it stands on its own, or is one only above `>` lines.
    strong: bool,
    /// How it reads, e.g. `"Am … schrieb …:"`.
    form: &'static str,
}

impl<'a> Stripper<'a> {
    fn run(&mut self) {
        while let Some((number, line)) = self.lines.next() {
            if is_blank(line) {
                self.blanks += 1;
                continue;
            }
            if is_quote(line) {
                self.quote_line(number, "quoted lines (\">\")");
                continue;
            }
            self.close_quote();
            if let Some(reason) = self.rest_starts_here(line) {
                self.cut_rest(number, reason);
                return;
            }
            if let Some((before, name)) = separator(line) {
                self.keep(before);
                self.cut_rest(number, format!("separator {name} and what follows"));
                return;
            }
            if let Some(attribution) = self.attribution(line) {
                if self.resolve(number, attribution) {
                    return;
                }
                continue;
            }
            self.keep(line);
        }
    }

    /// The rules that cut everything from `line` on, with their reason.
    fn rest_starts_here(&mut self, line: &str) -> Option<String> {
        if line == "-- " || line == "--" {
            return Some("signature (\"-- \")".to_owned());
        }
        if is_mobile_signature(line) {
            return Some(format!(
                "mobile signature ({}) and what follows",
                shown(line.trim())
            ));
        }
        if is_rule(line) {
            // Outlook's rule above the quoted headers: one header suffices.
            let (at, next) = (0..3)
                .filter_map(|n| self.lines.peek(n).map(|l| (n, l)))
                .find(|(_, l)| !is_blank(l))?;
            let header =
                header(next).filter(|h| matches!(h.family, Family::From | Family::Sent))?;
            let block = self.header_block(&header, at + 1);
            let rule: String = line.trim().chars().take(3).collect();
            return Some(match block {
                Some(other) => format!(
                    "Outlook header block ({}:/{}:) under a \"{rule}\" rule",
                    header.key, other
                ),
                None => format!("Outlook header \"{}:\" under a \"{rule}\" rule", header.key),
            });
        }
        let header = header(line)?;
        if let Some(other) = self.header_block(&header, 0) {
            return Some(format!("Outlook header block ({}:/{}:)", header.key, other));
        }
        // A lone "From: someone@example.com" is a quoted message too.
        (header.family == Family::From && header.value.contains('@'))
            .then(|| format!("header line \"{}:\" with an address", header.key))
    }

    /// Whether a header of another family follows `first` (which is
    /// `skip` lines ahead) within five lines, one of the two saying who sent
    /// it or when (To: and Subject: alone are words of a request;
    /// Thunderbird's forward starts with Subject: above Date: and From:).
    /// The key of the first found.
    fn header_block(&mut self, first: &Header<'_>, skip: usize) -> Option<&'a str> {
        let sender = |f: Family| matches!(f, Family::From | Family::Sent);
        for n in skip..skip + 5 {
            if let Some((family, key)) = self.header_ahead(n)
                && family != first.family
                && (sender(first.family) || sender(family))
            {
                return Some(key);
            }
        }
        None
    }

    /// The header on the line `n` places ahead, read once however many
    /// header lines look ahead at it.
    fn header_ahead(&mut self, n: usize) -> Option<(Family, &'a str)> {
        let number = self.lines.next_number + n;
        let slot = number % self.headers.len();
        if let Some(&(at, found)) = self.headers.get(slot)
            && at == number
        {
            return found;
        }
        let found = self
            .lines
            .peek(n)
            .and_then(header)
            .map(|h| (h.family, h.key));
        if let Some(entry) = self.headers.get_mut(slot) {
            *entry = (number, found);
        }
        found
    }

    /// An attribution starting on `line` and ending on it or one of the
    /// next two lines.
    fn attribution(&mut self, line: &'a str) -> Option<Attribution<'a>> {
        let mut lines = [line; 3];
        let mut weak = None;
        for count in 1..=3 {
            if count > 1 {
                let Some(next) = self.lines.peek(count - 2) else {
                    break;
                };
                if is_blank(next) || is_quote(next) {
                    break;
                }
                lines[count - 1] = next;
            }
            if let Some((before, strong, form)) = read_attribution(&lines[..count]) {
                let found = Attribution {
                    before,
                    lines,
                    count,
                    strong,
                    form,
                };
                // A weak reading may be the first line of a strong one
                // ("1 Jan 2024 Bob <bob@example.com>" above "написал:").
                if strong {
                    return Some(found);
                }
                weak = weak.or(Some(found));
            }
        }
        weak
    }

    /// Decides what an attribution is by what follows it: `>` lines are cut
    /// with it, an unquoted body is cut with a strong one. Returns whether
    /// the rest of the text was cut.
    fn resolve(&mut self, number: usize, attribution: Attribution<'a>) -> bool {
        for _ in 1..attribution.count {
            self.lines.next();
        }
        let kept = if attribution.before.trim().is_empty() {
            ""
        } else {
            " (the text before it on its line is kept)"
        };
        // The blank lines after it: cut with it, or kept if it is none.
        let mut after = 0;
        loop {
            match self.lines.next() {
                Some((_, line)) if is_blank(line) => after += 1,
                Some((_, line)) if is_quote(line) => {
                    self.keep(attribution.before);
                    self.held += std::mem::take(&mut self.blanks);
                    self.open_quote = Some(self.cuts.len());
                    self.cuts.push(Cut {
                        line: number,
                        lines: attribution.count + after + 1,
                        reason: format!("attribution {}{kept} and quoted lines", attribution.form),
                    });
                    return false;
                }
                next => {
                    if attribution.strong {
                        self.keep(attribution.before);
                        let rest = next.map_or(0, |(_, line)| {
                            self.lines.push_back(line);
                            self.lines.count_rest()
                        });
                        self.cuts.push(Cut {
                            line: number,
                            lines: attribution.count + after + rest,
                            reason: format!(
                                "attribution {}{kept} and what follows",
                                attribution.form
                            ),
                        });
                        return true;
                    }
                    // Not an attribution after all: keep it as it was.
                    for line in &attribution.lines[..attribution.count] {
                        self.keep(line);
                    }
                    self.blanks = after;
                    if let Some((_, line)) = next {
                        self.lines.push_back(line);
                    }
                    return false;
                }
            }
        }
    }

    /// A `>` line: joins the open quote cut (with the blank lines before
    /// it) or opens one.
    fn quote_line(&mut self, number: usize, reason: &str) {
        let blanks = std::mem::take(&mut self.blanks);
        if let Some(cut) = self.open_quote.and_then(|i| self.cuts.get_mut(i)) {
            cut.lines += blanks + 1;
            return;
        }
        self.held += blanks;
        self.open_quote = Some(self.cuts.len());
        self.cuts.push(Cut {
            line: number,
            lines: 1,
            reason: reason.to_owned(),
        });
    }

    /// Ends a run of `>` lines: the blank lines after it are cut with it.
    fn close_quote(&mut self) {
        if let Some(cut) = self.open_quote.take().and_then(|i| self.cuts.get_mut(i)) {
            cut.lines += std::mem::take(&mut self.blanks);
        }
    }

    /// Cuts from line `number` (already read) to the end.
    fn cut_rest(&mut self, number: usize, reason: String) {
        let rest = self.lines.count_rest();
        self.cuts.push(Cut {
            line: number,
            lines: 1 + rest,
            reason,
        });
    }

    fn flush_blanks(&mut self) {
        let n = std::mem::take(&mut self.held) + std::mem::take(&mut self.blanks);
        for _ in 0..n {
            self.push_line("");
        }
    }

    /// Keeps a line of text (nothing if it is empty).
    fn keep(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        self.flush_blanks();
        self.push_line(line);
    }

    fn push_line(&mut self, line: &str) {
        if self.any_line {
            self.text.push('\n');
        }
        self.any_line = true;
        self.text.push_str(line);
    }
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

fn is_quote(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// A line as a reason shows it: quoted, at most 60 characters.
fn shown(line: &str) -> String {
    let mut out: String = line.chars().take(60).collect();
    if out.len() < line.len() {
        out.push('…');
    }
    format!("\"{out}\"")
}

/// Whether `line` ends with `suffix`, ignoring case; returns the byte
/// offset where the suffix starts.
fn ends_with_ignore_case(line: &str, suffix: &str) -> Option<usize> {
    let n = suffix.chars().count();
    let start = if n == 0 {
        line.len()
    } else {
        line.char_indices().rev().nth(n - 1)?.0
    };
    let tail = line.get(start..)?;
    (tail.to_lowercase() == suffix).then_some(start)
}

// ---------------------------------------------------------------------------
// Separators

/// Names of the lines that start quoted or forwarded content, in lower
/// case: "-----Original Message-----", "---------- Forwarded message ---",
/// "Begin forwarded message:" and their translations.
const SEPARATORS: &[&str] = &[
    "original message",
    "reply message",
    "forwarded message",
    "begin forwarded message",
    "ursprüngliche nachricht",
    "original-nachricht",
    "originalnachricht",
    "antwort nachricht",
    "weitergeleitete nachricht",
    "oprindelig meddelelse",
    "videresendt meddelelse",
    "message d'origine",
    "message d’origine",
    "message transféré",
    "début du message réexpédié",
    "mensaje original",
    "mensaje reenviado",
    "messaggio originale",
    "messaggio inoltrato",
    "oorspronkelijk bericht",
    "origineel bericht",
    "doorgestuurd bericht",
    "mensagem original",
    "mensagem encaminhada",
    "ursprungligt meddelande",
    "vidarebefordrat meddelande",
    "opprinnelig melding",
    "videresendt melding",
    "alkuperäinen viesti",
    "välitetty viesti",
    "wiadomość oryginalna",
    "wiadomość przekazana",
    "исходное сообщение",
    "пересылаемое сообщение",
    "původní zpráva",
    "přeposlaná zpráva",
    "orijinal mesaj",
    "iletilen mesaj",
    "元のメッセージ",
    "転送メッセージ",
    "原始邮件",
    "转发邮件",
    "原始郵件",
    "anfang der weitergeleiteten nachricht",
    "weitergeleitete mail",
    "ursprüngliche mail",
    "mail original",
    "mail transféré",
    "début du message transféré",
    "inicio del mensaje reenviado",
    "inizio messaggio inoltrato",
    "início da mensagem reencaminhada",
    "mensagem reencaminhada",
    "begin doorgestuurd bericht",
    "oryginalna wiadomość",
    "przekazana wiadomość",
    "начало пересылаемого сообщения",
    "пересланное сообщение",
    "forwarded email",
    "forwarded mail",
];

/// The last letters of `SEPARATORS` (a test checks them).
const SEPARATOR_ENDINGS: &[char] = &[
    'a', 'e', 'g', 'i', 'j', 'l', 'o', 't', 'é', 'е', 'ジ', '件', 'ć', 'я',
];

const DECORATION: &[char] = &['-', '_', ' ', '\t', '*', '=', '—', '–'];

/// A separator line: the text before it on the line, and the separator as
/// a reason shows it. The name must stand alone on its line or be set off
/// by dashes or underscores, so "see the original message" is no separator.
fn separator(line: &str) -> Option<(&str, String)> {
    let trimmed = line.trim_end();
    if trimmed.ends_with("--")
        && let Some(found) = dashed_with_sender(trimmed)
    {
        return Some(found);
    }
    let end = trimmed.trim_end_matches(DECORATION);
    let end = end.strip_suffix([':', '：']).unwrap_or(end);
    let end = end.trim_end_matches(DECORATION);
    // Cheap tests first: a name stands alone on a short line or is set off
    // by dashes, and ends like one of the names.
    if end.len() > 80 && !line.contains("--") && !line.contains("__") {
        return None;
    }
    let last = lower_char(end.chars().next_back()?);
    if !SEPARATOR_ENDINGS.contains(&last) {
        return None;
    }
    // The longest name has 37 characters: lower case only the end.
    let tail_start = end.char_indices().rev().nth(41).map_or(0, |(i, _)| i);
    let tail = end[tail_start..].to_lowercase();
    for name in SEPARATORS {
        if !tail.ends_with(name) {
            continue;
        }
        let Some(start) = ends_with_ignore_case(end, name) else {
            continue;
        };
        let before = &end[..start];
        let text = before.trim_end_matches(DECORATION);
        let decoration = &before[text.len()..];
        let dashed = decoration
            .chars()
            .filter(|c| matches!(c, '-' | '_' | '—' | '–'))
            .count()
            >= 2;
        let boundary = text
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric())
            || !decoration.is_empty();
        if boundary && (text.trim().is_empty() || dashed) {
            let shown_from = trimmed.len() - trimmed[text.len()..].trim_start().len();
            return Some((text, shown(&trimmed[shown_from..])));
        }
    }
    None
}

/// mutt's "----- Forwarded message from Bob <bob@example.com> -----": a
/// separator name and its sender between dashes on both sides.
fn dashed_with_sender(trimmed: &str) -> Option<(&str, String)> {
    let t = trimmed.trim_start();
    if !(t.starts_with("--") && t.ends_with("--")) || t.len() > 300 {
        return None;
    }
    let inner = t.trim_matches(DECORATION).to_lowercase();
    const FROM: &[&str] = &[
        " from ", " von ", " de ", " da ", " van ", " fra ", " från ", " od ", " от ",
    ];
    SEPARATORS
        .iter()
        .filter_map(|name| inner.strip_prefix(name))
        .any(|rest| FROM.iter().any(|f| rest.starts_with(f)))
        .then(|| ("", shown(t)))
}

/// A line of 10 or more underscores, dashes or equal signs: Outlook puts
/// one above the quoted headers (and `<hr>` becomes one).
fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.starts_with(['_', '-', '—', '='])
        && t.chars().count() >= 10
        && (t.chars().all(|c| c == '_')
            || t.chars().all(|c| c == '-')
            || t.chars().all(|c| c == '—')
            || t.chars().all(|c| c == '='))
}

// ---------------------------------------------------------------------------
// Mobile signatures

/// How mobile and desktop clients sign a message they send, in lower case.
/// What follows the signature is the old message.
const MOBILE: &[&str] = &[
    "sent from my ",
    "sent from mail for windows",
    "sent from outlook",
    "sent from yahoo mail",
    "sent from the all new aol app",
    "sent from aol",
    "sent from samsung",
    "sent from gmail",
    "sent from proton",
    "sent via ",
    "sent wirelessly from my ",
    "sent using ",
    "sent with ",
    "get outlook for ",
    "gesendet von meinem ",
    "gesendet von outlook",
    "gesendet von mail für windows",
    "gesendet mit ",
    "von meinem iphone gesendet",
    "von meinem ipad gesendet",
    "von meinem samsung",
    "von meinem smartphone gesendet",
    "holen sie sich outlook",
    "envoyé de mon ",
    "envoyé depuis mon ",
    "envoyé à partir de ",
    "envoyé de outlook",
    "obtenir outlook pour",
    "enviado desde mi ",
    "enviado desde outlook",
    "enviado desde correo para windows",
    "obtener outlook para",
    "enviado do meu ",
    "enviado do outlook",
    "obter o outlook para",
    "inviato da ",
    "inviato dal ",
    "scarica outlook per",
    "télécharger outlook pour",
    "outlook voor ios downloaden",
    "outlook voor android downloaden",
    "outlook für ios herunterladen",
    "outlook für android herunterladen",
    "von yahoo mail auf ",
    "von yahoo mail für ",
    "ottieni outlook per",
    "verzonden vanaf mijn ",
    "verstuurd vanaf mijn ",
    "verzonden vanuit outlook",
    "verzonden met ",
    "skickat från min ",
    "skickat från outlook",
    "skickat från e-post för windows",
    "sendt fra min ",
    "sendt fra outlook",
    "sendt fra mail for windows",
    "lähetetty iphonesta",
    "lähetetty ipadista",
    "lähetetty androidista",
    "lähetetty outlookista",
    "lähetetty puhelimesta",
    "hanki outlook for ",
    "wysłane z ",
    "wysłano z ",
    "wysłane przy użyciu ",
    "отправлено с ",
    "отправлено из ",
    "iphone'umdan gönderildi",
    "iphone'dan gönderildi",
    "odesláno z ",
    "iphoneから送信",
    "发自我的",
    "从我的iphone发送",
    "sent from ",
];

/// The first letters of `MOBILE` (a test checks them).
const MOBILE_INITIALS: &[char] = &[
    'e', 'g', 'h', 'i', 'l', 'o', 's', 't', 'v', 'w', 'о', '从', '发',
];

/// Words that make a signature with a comma still a signature
/// ("Sent from my Verizon, Samsung Galaxy smartphone").
const DEVICES: &[&str] = &[
    "iphone",
    "ipad",
    "android",
    "samsung",
    "galaxy",
    "blackberry",
    "smartphone",
    "phone",
    "mobile",
    "tablet",
    "device",
    "outlook",
];

/// "Sent from my iPhone" and its kin: a short line that starts like one.
/// "Sent from my desk, which is easier than my phone." is a sentence.
fn is_mobile_signature(line: &str) -> bool {
    let trimmed = line.trim();
    let Some(first) = trimmed.chars().next().map(lower_char) else {
        return false;
    };
    // Cheap test first: the first letters of the signatures.
    if !MOBILE_INITIALS.contains(&first) {
        return false;
    }
    let mut utf8 = [0; 4];
    let first_byte = first.encode_utf8(&mut utf8).as_bytes().first().copied();
    let Some((prefix, rest)) = MOBILE
        .iter()
        // A byte, not a char: starts_with(char) calls memcmp, on every line.
        .filter(|p| p.as_bytes().first().copied() == first_byte)
        .find_map(|p| strip_prefix_ignore_case(trimmed, p).map(|rest| (p, rest)))
    else {
        return false;
    };
    let words = rest.split_whitespace().count();
    let limit = if *prefix == "sent from " { 3 } else { 6 };
    if words > limit || trimmed.chars().count() > 100 {
        return false;
    }
    let rest = rest.to_lowercase();
    !rest.contains(',') || DEVICES.iter().any(|d| rest.contains(d))
}

/// `line` without `prefix` (in lower case) if it starts with it in any
/// case; no allocation, as it runs on every line.
fn strip_prefix_ignore_case<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let mut chars = line.chars();
    for p in prefix.chars() {
        if chars.next().map(lower_char) != Some(p) {
            return None;
        }
    }
    Some(chars.as_str())
}

/// A character in lower case, when that is one character (else itself).
fn lower_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

// ---------------------------------------------------------------------------
// Outlook header blocks

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    From,
    Sent,
    To,
    Cc,
    Subject,
    ReplyTo,
}

/// The header names Outlook and other clients write above a quoted
/// message, in lower case, by what they mean. A `match` compiles to a few
/// comparisons; it runs on every line with a colon near its start.
fn family_of(lower: &str) -> Option<Family> {
    Some(match lower {
        "from" | "von" | "de" | "da" | "van" | "fra" | "från" | "frá" | "lähettäjä" | "od"
        | "от" | "差出人" | "发件人" | "寄件者" | "寄件人" | "kimden" | "feladó" | "afzender"
        | "absender" => Family::From,
        "sent"
        | "date"
        | "sent at"
        | "gesendet"
        | "datum"
        | "envoyé"
        | "envoyé le"
        | "inviato"
        | "data"
        | "verzonden"
        | "verstuurd"
        | "enviado"
        | "enviada"
        | "enviado el"
        | "enviada em"
        | "enviado em"
        | "skickat"
        | "sendt"
        | "lähetetty"
        | "päivämäärä"
        | "wysłano"
        | "wysłane"
        | "отправлено"
        | "дата"
        | "送信日時"
        | "日付"
        | "发送时间"
        | "時間"
        | "日期"
        | "gönderildi"
        | "tarih"
        | "odesláno"
        | "fecha" => Family::Sent,
        "to" | "an" | "à" | "a" | "aan" | "para" | "till" | "til" | "vastaanottaja" | "do"
        | "кому" | "宛先" | "收件人" | "kime" | "komu" | "címzett" | "pour" | "empfänger" => {
            Family::To
        }
        "cc" | "kopie" | "copie" | "kopia" | "копия" | "抄送" | "副本" | "bilgi" | "cc/bcc"
        | "bcc" => Family::Cc,
        "subject" | "betreff" | "objet" | "oggetto" | "onderwerp" | "assunto" | "asunto"
        | "ämne" | "emne" | "aihe" | "temat" | "тема" | "件名" | "主题" | "主旨" | "konu"
        | "předmět" | "tárgy" | "sujet" => Family::Subject,
        "reply-to" | "antwort an" | "répondre à" | "responder a" => Family::ReplyTo,
        _ => return None,
    })
}

#[derive(Debug)]
struct Header<'a> {
    family: Family,
    /// The name as written, without `*` and spaces ("Von", "De").
    key: &'a str,
    value: &'a str,
}

/// A line like `From: Bob <bob@example.com>`, `*Sent:* Monday` or
/// `De : Brendan`.
fn header(line: &str) -> Option<Header<'_>> {
    let t = line.trim_start().trim_start_matches('*');
    // The colon, ASCII or full width (EF BC 9A), within the first bytes.
    let bytes = t.as_bytes();
    let (colon, width) =
        bytes[..bytes.len().min(48)]
            .iter()
            .enumerate()
            .find_map(|(i, &b)| match b {
                b':' => Some((i, 1)),
                0xEF if bytes.get(i + 1..i + 3) == Some(&[0xBC, 0x9A]) => Some((i, 3)),
                _ => None,
            })?;
    let key = t[..colon].trim().trim_end_matches('*').trim_end();
    if key.is_empty() || key.len() > 24 || key.split_whitespace().count() > 3 {
        return None;
    }
    // Most keys are ASCII: lower case those without allocating.
    let mut buf = [0u8; 24];
    let owned;
    let lower = if key.is_ascii() {
        let buf = buf.get_mut(..key.len())?;
        for (b, k) in buf.iter_mut().zip(key.bytes()) {
            *b = k.to_ascii_lowercase();
        }
        std::str::from_utf8(buf).ok()?
    } else {
        owned = key.to_lowercase();
        owned.as_str()
    };
    let family = family_of(lower)?;
    let value = t[colon + width..].trim_start_matches('*').trim();
    Some(Header { family, key, value })
}

// ---------------------------------------------------------------------------
// Attributions

/// The verbs of "On <date>, <name> wrote:" in many languages, in lower
/// case, and how a reason shows the form.
const VERBS: &[(&str, &str)] = &[
    ("wrote", "\"On … wrote:\""),
    ("writes", "\"On … writes:\""),
    ("sent", "\"On … sent:\""),
    ("schrieb", "\"Am … schrieb …:\""),
    ("a écrit", "\"Le … a écrit :\""),
    ("escribió", "\"El … escribió:\""),
    ("escribio", "\"El … escribió:\""),
    ("ha scritto", "\"Il … ha scritto:\""),
    ("schreef", "\"Op … schreef …:\""),
    ("geschreven", "\"Op … het volgende geschreven:\""),
    ("escreveu", "\"Em … escreveu:\""),
    ("skrev", "\"Den … skrev …:\""),
    ("kirjoitti", "\"… kirjoitti …:\""),
    ("napisał", "\"W dniu … napisał(a):\""),
    ("napisała", "\"W dniu … napisał(a):\""),
    ("pisze", "\"W dniu … pisze:\""),
    ("ezt írta", "\"… ezt írta (…):\""),
    ("написал", "\"… написал(а):\""),
    ("написала", "\"… написал(а):\""),
    ("пишет", "\"… пишет:\""),
    ("geschrieben", "\"Am … hat … Folgendes geschrieben:\""),
    ("scrisse", "\"Il … scrisse:\""),
    ("yazdı", "\"… yazdı:\""),
    ("napsal", "\"Dne … napsal(a):\""),
    ("napsala", "\"Dne … napsal(a):\""),
    ("đã viết", "\"Vào … đã viết:\""),
    ("写道", "\"…写道：\""),
    ("寫道", "\"…寫道：\""),
    ("のメッセージ", "\"…のメッセージ:\""),
    ("님이 작성", "\"…님이 작성:\""),
];

/// The verbs of `VERBS` written as two words, split.
const VERB_PAIRS: &[(&str, &str, &str)] = &[
    ("a", "écrit", "a écrit"),
    ("ha", "scritto", "ha scritto"),
    ("đã", "viết", "đã viết"),
    ("ezt", "írta", "ezt írta"),
    ("님이", "작성", "님이 작성"),
];

/// Verbs whose languages put the name first ("Bob kirjoitti 1.2.2019:"),
/// so the attribution needs no opening word.
const NAME_FIRST: &[&str] = &[
    "kirjoitti",
    "ezt írta",
    "написал",
    "написала",
    "пишет",
    "yazdı",
    "写道",
    "寫道",
    "のメッセージ",
    "님이 작성",
];

/// The words an attribution opens with ("On", "Am", "Le", "W dniu" …), as
/// clients write them.
const OPENERS: &[&str] = &[
    "On", "Am", "Le", "El", "Il", "Op", "Em", "Den", "På", "W dniu", "Dne", "Dňa", "Vào", "В",
];

/// English names of days and months: with a digit or an address, what
/// makes "On Mon, Bob wrote:" an attribution and "Here is what I wrote:"
/// none.
fn is_date_word(word: &str) -> bool {
    matches!(
        word,
        "mon"
            | "tue"
            | "wed"
            | "thu"
            | "fri"
            | "sat"
            | "sun"
            | "monday"
            | "tuesday"
            | "tues"
            | "wednesday"
            | "thursday"
            | "thur"
            | "thurs"
            | "friday"
            | "saturday"
            | "sunday"
            | "jan"
            | "feb"
            | "mar"
            | "apr"
            | "may"
            | "jun"
            | "jul"
            | "aug"
            | "sep"
            | "sept"
            | "oct"
            | "nov"
            | "dec"
            | "january"
            | "february"
            | "march"
            | "april"
            | "june"
            | "july"
            | "august"
            | "september"
            | "october"
            | "november"
            | "december"
    )
}

/// English day names, for "Thu, 26 Jun 2014 …".
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The longest attribution looked at, in bytes: a longer line is text.
const MAX_ATTRIBUTION: usize = 600;

/// Whether `lines` (one to three) end with an attribution: the text before
/// it on the first line, whether it is strong (an attribution whatever
/// follows) or weak (one only above `>` lines), and its form.
fn read_attribution<'a>(lines: &[&'a str]) -> Option<(&'a str, bool, &'static str)> {
    let Window {
        first,
        from,
        tail,
        joined,
    } = window(lines)?;
    let Ending {
        body,
        dashed,
        colon,
        inner,
    } = ending(&joined);
    let lower: Cow<'_, str> = if inner.bytes().any(|b| b.is_ascii_uppercase() || b >= 0x80) {
        Cow::Owned(inner.to_lowercase())
    } else {
        Cow::Borrowed(inner)
    };
    let Some((verb_at, verb, form)) = last_verb(&lower) else {
        // Google's and others' date-only form: "2017-11-24 16:32 GMT+01:00
        // Bob <bob@example.com>:" (the colon may be missing above a quote).
        return ((date_only(inner) || mutt_form(inner)) && opens(lines, tail, usize::MAX))
            .then_some((&first[..from], colon, "\"<date> <name> <address>:\""));
    };
    if !(colon || dashed) {
        return None;
    }
    // Offsets in `lower` are used in `inner` only if lower case kept them.
    let same_offsets = lower.len() == inner.len();
    let before_verb = lower.get(..verb_at).unwrap_or_default();
    let dated_until = last_date_token(before_verb);
    if let Some(at) = opener(inner, same_offsets, verb_at, dated_until) {
        // The attribution must open on the first line: one opening on a
        // later line is read when that line's turn comes.
        if at >= tail.len() {
            return None;
        }
        let before = first[..from + at].trim_end_matches(DECORATION);
        return Some((before, true, form));
    }
    let whole = &first[..from];
    let leading = body.trim_start_matches(['-', ' ', '*']);
    if dashed && leading.len() < body.len() {
        // Android: "---- Bob wrote ----".
        return opens(lines, tail, verb_at).then_some((whole, true, english(verb, form)));
    }
    let starts_with_date = leading.starts_with(|c: char| c.is_ascii_digit());
    // An address right before the verb is a name-first form in any
    // language: Gmail's "Bob <bob@example.com> schrieb am So., 23. Juni
    // 2024, 21:08:".
    let name_first = NAME_FIRST.contains(&verb) || before_verb.trim_end().ends_with(['>', ')']);
    let addressed = before_verb.contains('@') || lower[verb_at..].contains('@');
    let dated = dated_until.is_some() || addressed;
    // A date and an address with a verb of writing is one whatever its
    // order ("man. 1. jan. 2024 kl. 10:00 skrev Bob <bob@example.com>:").
    if ((starts_with_date || name_first) && dated) || (dated_until.is_some() && addressed) {
        return opens(lines, tail, verb_at).then_some((whole, true, english(verb, form)));
    }
    // "Bob wrote:" above a quote is an attribution; above text it is text.
    (colon && lines.len() == 1).then_some((whole, false, english(verb, form)))
}

/// Where an attribution is looked for: the end of the first line (`tail`,
/// from byte `from` of `first`) with the wrapped lines after it joined on.
struct Window<'a> {
    first: &'a str,
    from: usize,
    tail: &'a str,
    joined: Cow<'a, str>,
}

/// The window of `lines`, or `None` when they cannot end with an
/// attribution at all.
fn window<'a>(lines: &[&'a str]) -> Option<Window<'a>> {
    let last = lines.last()?.trim_end();
    // Cheap test first: an attribution ends with a colon, a dash (Android's
    // "---- Bob wrote ----") or an address (Google's date-only form).
    if !last.ends_with([':', '：', '-', '>']) {
        return None;
    }
    let first = *lines.first()?;
    let rest_len: usize = lines[1..].iter().map(|l| l.len() + 1).sum();
    if rest_len > MAX_ATTRIBUTION {
        return None;
    }
    // Only the end of a long first line can hold an attribution.
    let mut from = first.len().saturating_sub(MAX_ATTRIBUTION);
    while !first.is_char_boundary(from) {
        from += 1;
    }
    let tail = first[from..].trim_start();
    let from = first.len() - tail.len();
    // One line is read in place; only wrapped ones are joined.
    let joined: Cow<'_, str> = if lines.len() == 1 {
        Cow::Borrowed(tail)
    } else {
        let mut joined = String::with_capacity(tail.len() + rest_len);
        joined.push_str(tail);
        for line in &lines[1..] {
            joined.push(' ');
            joined.push_str(line.trim());
        }
        Cow::Owned(joined)
    };
    Some(Window {
        first,
        from,
        tail,
        joined,
    })
}

/// An attribution's end: `body` without Android's closing dashes (`dashed`
/// when there were some), and `inner` without the colon (`colon` when
/// there was one) either.
struct Ending<'j> {
    body: &'j str,
    dashed: bool,
    colon: bool,
    inner: &'j str,
}

fn ending(joined: &str) -> Ending<'_> {
    let body = joined.trim_end();
    let undashed = body.trim_end_matches(['-', ' ']);
    let dashed = body.ends_with("--") && !undashed.is_empty();
    let body = if dashed { undashed } else { body };
    let colon = body.ends_with([':', '：']);
    let inner = body.trim_end_matches([':', '：', ' ']);
    Ending {
        body,
        dashed,
        colon,
        inner,
    }
}

/// Where the opening word ("On", "Am" …) stands in `inner`: the last one
/// before the verb (at `verb_at`) with a date after it, so "Do it On
/// Monday. On 1 Jan, Bob wrote:" keeps "Do it On Monday.".
fn opener(
    inner: &str,
    same_offsets: bool,
    verb_at: usize,
    dated_until: Option<usize>,
) -> Option<usize> {
    let mut previous = "";
    words(inner)
        .filter(|&(at, word)| {
            let two = std::mem::replace(&mut previous, word) == "W" && word == "dniu";
            let opens = two || (word != "W" && OPENERS.contains(&word));
            let end = at + word.len();
            opens
                && (same_offsets || at == 0 || two)
                && at < verb_at
                && dated_until.is_some_and(|t| t > at)
                // HTML gives "On&nbsp;Mon": any space.
                && inner[end..].starts_with(char::is_whitespace)
        })
        .map(|(at, word)| {
            if word == "dniu" {
                at.saturating_sub(2)
            } else {
                at
            }
        })
        .last()
}

/// English attributions without "On …" ("Bob <bob@example.com> wrote:").
fn english(verb: &str, form: &'static str) -> &'static str {
    match verb {
        "wrote" | "writes" | "sent" => "\"… wrote:\"",
        _ => form,
    }
}

/// Whether the first of several lines can open an attribution without an
/// opening word: a date, a name with its address, or a line broken at a
/// comma. "Hello" above "Bob <bob@example.com> wrote:" is text of its own.
fn opens(lines: &[&str], first: &str, verb_at: usize) -> bool {
    let first = first.trim_end();
    lines.len() == 1
        // The verb itself is on the first line.
        || verb_at < first.len()
        || (first.starts_with(|c: char| c.is_ascii_digit())
            || first.contains(['@', '<', '"', '(', '«'])
            || first.ends_with(',')
            || opens_with_day(first))
            && !first.ends_with(['.', '!', '?'])
}

/// "Thu, 26 Jun 2014 …", "lun. 1 janv.": a day's name and a comma or dot.
fn opens_with_day(line: &str) -> bool {
    line.split_once([',', '.']).is_some_and(|(day, _)| {
        let day = day.to_lowercase();
        day.len() <= 10
            && day.chars().all(char::is_alphabetic)
            && DAYS.iter().any(|d| day.starts_with(d))
    })
}

/// The words of `text` (runs of letters and digits) with their offsets.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let base = text.as_ptr() as usize;
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(move |w| (w.as_ptr() as usize - base, w))
}

/// The last verb of writing in `lower`: where it starts, the verb, and the
/// form a reason shows. One pass over the words (two-word verbs are looked
/// up as pairs); CJK verbs, written without spaces, are searched only in
/// text that has CJK characters.
fn last_verb(lower: &str) -> Option<(usize, &'static str, &'static str)> {
    let mut found = None;
    let mut previous: Option<(usize, &str)> = None;
    for (at, word) in words(lower) {
        if let Some(&(verb, form)) = VERBS.iter().find(|(verb, _)| *verb == word) {
            found = Some((at, verb, form));
        }
        if let Some((p_at, p)) = previous
            && let Some(&(_, _, verb)) = VERB_PAIRS
                .iter()
                .find(|(one, two, _)| *two == word && *one == p)
            && let Some(&(_, form)) = VERBS.iter().find(|(v, _)| *v == verb)
        {
            found = Some((p_at, verb, form));
        }
        previous = Some((at, word));
    }
    if lower.bytes().any(|b| (0xE3..=0xED).contains(&b)) {
        for &(verb, form) in VERBS.iter().filter(|(v, _)| v.chars().any(is_cjk)) {
            if let Some(at) = lower.rfind(verb)
                && found.is_none_or(|(f, _, _)| at > f)
            {
                found = Some((at, verb, form));
            }
        }
    }
    found
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{3040}'..='\u{30ff}' | '\u{3400}'..='\u{9fff}' | '\u{ac00}'..='\u{d7af}')
}

/// The end of the last date-like token in `lower`: a digit or an English
/// day or month name.
fn last_date_token(lower: &str) -> Option<usize> {
    let digit = lower
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_ascii_digit())
        .map(|(i, _)| i + 1);
    let word = words(lower)
        .filter(|(_, w)| is_date_word(w))
        .map(|(at, w)| at + w.len())
        .last();
    digit.max(word)
}

/// "2017-11-24 16:32 GMT+01:00 Bob <bob@example.com>", "Thu, 26 Jun 2014
/// 14:00:51 +0400 Bob <bob@example.com>", "2011/4/7 Bob <bob@example.com>":
/// a date, then an address, and nothing that reads as a sentence.
fn date_only(inner: &str) -> bool {
    let t = inner.trim_start_matches(['-', ' ', '*']);
    let Some(at) = t.find('@') else { return false };
    let opens_with_date = t.starts_with(|c: char| c.is_ascii_digit())
        || t.split_once(',')
            .is_some_and(|(day, _)| day.len() <= 10 && day.chars().all(char::is_alphabetic));
    let dated = t[..at].contains(|c: char| c.is_ascii_digit())
        && (t[..at].contains(':') || t[..at].contains(['/', '.', '-', '年']));
    opens_with_date && dated && t.ends_with('>')
}

/// mutt's default attribution: "* Bob <bob@example.com> [2025-03-03
/// 09:15]:" — a star, an address, a bracketed date.
fn mutt_form(inner: &str) -> bool {
    let Some(t) = inner.strip_prefix("* ") else {
        return false;
    };
    let Some((who, date)) = t.rsplit_once('[') else {
        return false;
    };
    who.contains('@')
        && date.ends_with(']')
        && date.contains(|c: char| c.is_ascii_digit())
        && date.contains([':', '-', '/', '.'])
}

#[cfg(test)]
mod tests {
    use super::*;

    const EOLS: [&str; 2] = ["\n", "\r\n"];
    /// The reply's own text.
    const NEW: &str = "please just show me my current quota";
    /// The old request in the history below it.
    const OLD: &str = "increase the quota of user: bob by 20 GB";

    /// Strips `lines` joined by `eol` and checks the kept text and that a
    /// cut starting at `line` took every line from there to the end.
    fn check_cut_to_end(lines: &[String], eol: &str, kept: &str, line: usize, reason: &str) {
        let text = lines.join(eol) + eol;
        let stripped = strip(&text);
        assert_eq!(stripped.text, kept, "{text:?}");
        let last = stripped
            .cuts
            .last()
            .unwrap_or_else(|| panic!("no cut: {text:?}"));
        assert_eq!(last.reason, reason, "{text:?}");
        assert_eq!(last.line, line, "{text:?}");
        assert_eq!(last.lines, lines.len() + 1 - line, "{text:?}");
    }

    fn owned(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| (*l).to_owned()).collect()
    }

    /// From, Sent, To and Subject as Outlook writes them in each language.
    const HEADER_LANGUAGES: &[[&str; 4]] = &[
        ["From", "Sent", "To", "Subject"],
        ["From", "Date", "To", "Subject"],
        ["Von", "Gesendet", "An", "Betreff"],
        ["De", "Envoyé", "À", "Objet"],
        ["Da", "Inviato", "A", "Oggetto"],
        ["Van", "Verzonden", "Aan", "Onderwerp"],
        ["De", "Enviado", "Para", "Asunto"],
        ["De", "Enviada em", "Para", "Assunto"],
        ["Från", "Skickat", "Till", "Ämne"],
        ["Fra", "Sendt", "Til", "Emne"],
        ["Lähettäjä", "Lähetetty", "Vastaanottaja", "Aihe"],
        ["Od", "Wysłano", "Do", "Temat"],
        ["От", "Отправлено", "Кому", "Тема"],
        ["差出人", "送信日時", "宛先", "件名"],
        ["发件人", "发送时间", "收件人", "主题"],
        ["Kimden", "Gönderildi", "Kime", "Konu"],
    ];

    /// How a header line is written: plain, French spacing, bold (HTML
    /// converted by some clients), indented.
    fn header_line(style: usize, key: &str, value: &str) -> String {
        match style {
            0 => format!("{key}: {value}"),
            1 => format!("{key} : {value}"),
            2 => format!("*{key}:* {value}"),
            _ => format!("  {key}: {value}"),
        }
    }

    #[test]
    fn outlook_header_blocks_cut_everything_below_in_every_language_and_style() {
        let mut checked = 0;
        for [from, sent, to, subject] in HEADER_LANGUAGES {
            for style in 0..4 {
                for rule in [false, true] {
                    for date_first in [false, true] {
                        for eol in EOLS {
                            let mut lines = owned(&[NEW, ""]);
                            if rule {
                                lines.push("_".repeat(32));
                            }
                            let from_line = header_line(style, from, "Bob <bob@example.com>");
                            let sent_line =
                                header_line(style, sent, "Monday, 1 January 2024 10:00");
                            let (first, second) = if date_first {
                                (sent_line, from_line)
                            } else {
                                (from_line, sent_line)
                            };
                            lines.extend([
                                first,
                                second,
                                header_line(style, to, "Helpdesk"),
                                header_line(style, subject, "quota"),
                                String::new(),
                                OLD.to_owned(),
                            ]);
                            let (k0, k1) = if date_first {
                                (sent, from)
                            } else {
                                (from, sent)
                            };
                            let reason = if rule {
                                format!("Outlook header block ({k0}:/{k1}:) under a \"___\" rule")
                            } else {
                                format!("Outlook header block ({k0}:/{k1}:)")
                            };
                            check_cut_to_end(&lines, eol, NEW, 3, &reason);
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, HEADER_LANGUAGES.len() * 4 * 2 * 2 * 2);
    }

    #[test]
    fn a_forward_header_block_may_start_with_its_subject() {
        for eol in EOLS {
            let lines = owned(&[
                NEW,
                "",
                &format!("Subject: {OLD}"),
                "Date: Mon, 1 Jan 2024 10:00:00 +0100",
                "From: Bob <bob@example.com>",
                "To: Helpdesk <helpdesk@example.com>",
                "",
                OLD,
            ]);
            check_cut_to_end(&lines, eol, NEW, 3, "Outlook header block (Subject:/Date:)");
        }
    }

    #[test]
    fn a_wrapped_header_value_still_makes_a_block() {
        for eol in EOLS {
            let lines = owned(&[
                NEW,
                "",
                "  *From:* bob@example.com [mailto:",
                "  bob@example.com]",
                "  *Sent:* Wednesday, June 27, 2012 3:05 PM",
                "  *To:* travis@example.com",
                OLD,
            ]);
            check_cut_to_end(&lines, eol, NEW, 3, "Outlook header block (From:/Sent:)");
        }
    }

    #[test]
    fn one_header_under_a_rule_or_a_from_with_an_address_is_enough() {
        for eol in EOLS {
            let lines = owned(&[
                NEW,
                "________________________________",
                "From: Bob",
                "",
                OLD,
            ]);
            check_cut_to_end(
                &lines,
                eol,
                NEW,
                2,
                "Outlook header \"From:\" under a \"___\" rule",
            );
            let lines = owned(&[NEW, "", "Von: bob@example.com", "", OLD]);
            check_cut_to_end(&lines, eol, NEW, 3, "header line \"Von:\" with an address");
        }
    }

    /// Attributions in three parts, as clients write them, and how a reason
    /// names them. Joined by spaces they are one line; clients wrap them
    /// between the parts.
    const ATTRIBUTIONS: &[([&str; 3], &str)] = &[
        (
            [
                "On Mon, 1 Jan 2024 at 10:00, Bob Example",
                "<bob@example.com>",
                "wrote:",
            ],
            "\"On … wrote:\"",
        ),
        (
            [
                "On 1 Jan 2024, at 10:00, Bob Example",
                "<bob@example.com>",
                "wrote:",
            ],
            "\"On … wrote:\"",
        ),
        (
            [
                "Am Mo., 1. Jan. 2024 um 10:00 Uhr schrieb",
                "Bob Example",
                "<bob@example.com>:",
            ],
            "\"Am … schrieb …:\"",
        ),
        (
            [
                "Le lun. 1 janv. 2024 à 10:00, Bob Example",
                "<bob@example.com>",
                "a écrit :",
            ],
            "\"Le … a écrit :\"",
        ),
        (
            [
                "El lun, 1 ene 2024 a las 10:00, Bob Example",
                "(<bob@example.com>)",
                "escribió:",
            ],
            "\"El … escribió:\"",
        ),
        (
            [
                "Il giorno lun 1 gen 2024 alle ore 10:00 Bob",
                "<bob@example.com>",
                "ha scritto:",
            ],
            "\"Il … ha scritto:\"",
        ),
        (
            [
                "Op ma 1 jan. 2024 om 10:00 schreef",
                "Bob Example",
                "<bob@example.com>:",
            ],
            "\"Op … schreef …:\"",
        ),
        (
            [
                "Em seg., 1 de jan. de 2024 às 10:00, Bob",
                "<bob@example.com>",
                "escreveu:",
            ],
            "\"Em … escreveu:\"",
        ),
        (
            [
                "Den 1 jan. 2024 kl. 10:00 skrev",
                "Bob Example",
                "<bob@example.com>:",
            ],
            "\"Den … skrev …:\"",
        ),
        (
            [
                "man. 1. jan. 2024 kl. 10.00 skrev",
                "Bob Example",
                "<bob@example.com>:",
            ],
            "\"Den … skrev …:\"",
        ),
        (
            [
                "Bob Example <bob@example.com> kirjoitti",
                "1.1.2024 kello",
                "10.00:",
            ],
            "\"… kirjoitti …:\"",
        ),
        (
            [
                "W dniu 1.01.2024 o 10:00, Bob Example",
                "<bob@example.com>",
                "napisał(a):",
            ],
            "\"W dniu … napisał(a):\"",
        ),
        (
            [
                "W dniu 1.01.2024 o 10:00, Bob Example",
                "<bob@example.com>",
                "pisze:",
            ],
            "\"W dniu … pisze:\"",
        ),
        (
            [
                "1 января 2024 г., в 10:00, Bob Example",
                "<bob@example.com>",
                "написал(а):",
            ],
            "\"… написал(а):\"",
        ),
        (
            [
                "1 Oca 2024 Pzt, 10:00 tarihinde Bob",
                "<bob@example.com>",
                "şunu yazdı:",
            ],
            "\"… yazdı:\"",
        ),
        (
            [
                "Dne 1. 1. 2024 10:00 Bob Example",
                "<bob@example.com>",
                "napsal(a):",
            ],
            "\"Dne … napsal(a):\"",
        ),
        (
            [
                "Vào 10:00 1 tháng 1, 2024, Bob Example",
                "<bob@example.com>",
                "đã viết:",
            ],
            "\"Vào … đã viết:\"",
        ),
        (
            [
                "2024年1月1日(月) 10:00 Bob Example",
                "<bob@example.com>",
                "のメッセージ:",
            ],
            "\"…のメッセージ:\"",
        ),
        (
            [
                "Bob Example <bob@example.com>",
                "于2024年1月1日周一",
                "10:00写道：",
            ],
            "\"…写道：\"",
        ),
        (
            [
                "2024-01-01 10:00 GMT+01:00",
                "Bob Example",
                "<bob@example.com>:",
            ],
            "\"<date> <name> <address>:\"",
        ),
        (
            [
                "Thu, 26 Jun 2014 14:00:51 +0400",
                "Bob Example",
                "<bob@example.com>:",
            ],
            "\"<date> <name> <address>:\"",
        ),
        (
            [
                "Bob Example <bob@example.com> ezt írta",
                "(időpont: 2024. jan. 1., H,",
                "10:00):",
            ],
            "\"… ezt írta (…):\"",
        ),
    ];

    /// The one-, two- and three-line renderings of an attribution.
    fn wraps(parts: &[&str; 3]) -> [Vec<String>; 4] {
        let [a, b, c] = parts;
        [
            vec![format!("{a} {b} {c}")],
            vec![format!("{a} {b}"), (*c).to_owned()],
            vec![(*a).to_owned(), format!("{b} {c}")],
            vec![(*a).to_owned(), (*b).to_owned(), (*c).to_owned()],
        ]
    }

    #[test]
    fn attributions_cut_the_quote_or_the_unquoted_body_below_in_every_language_and_wrap() {
        let mut checked = 0;
        for (parts, form) in ATTRIBUTIONS {
            for attribution in wraps(parts) {
                for quoted in [true, false] {
                    for blank in [true, false] {
                        for eol in EOLS {
                            let mut lines = owned(&[NEW, ""]);
                            lines.extend(attribution.iter().cloned());
                            if blank {
                                lines.push(String::new());
                            }
                            if quoted {
                                lines.extend(owned(&[&format!("> {OLD}"), ">", "> Bob"]));
                            } else {
                                lines.extend(owned(&[OLD, "", "Bob"]));
                            }
                            let follows = if quoted {
                                "quoted lines"
                            } else {
                                "what follows"
                            };
                            let reason = format!("attribution {form} and {follows}");
                            check_cut_to_end(&lines, eol, NEW, 3, &reason);
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, ATTRIBUTIONS.len() * 4 * 2 * 2 * 2);
    }

    #[test]
    fn text_before_an_attribution_on_its_line_is_kept() {
        let openers = ATTRIBUTIONS.iter().filter(|(parts, _)| {
            OPENERS
                .iter()
                .any(|o| parts[0].starts_with(&format!("{o} ")))
        });
        let mut checked = 0;
        for (parts, form) in openers {
            for before in ["Yes please do it.", "reply---", "Please do it On Monday."] {
                for eol in EOLS {
                    let [a, b, c] = parts;
                    let text = [format!("{before} {a} {b} {c}"), format!("> {OLD}")].join(eol);
                    let stripped = strip(&text);
                    let kept = before.trim_end_matches('-');
                    assert_eq!(stripped.text, kept, "{text:?}");
                    assert_eq!(
                        stripped.cuts,
                        [Cut {
                            line: 1,
                            lines: 2,
                            reason: format!(
                                "attribution {form} (the text before it on its line is kept) and quoted lines"
                            ),
                        }]
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 3 * 2 * 12, "{checked}");
    }

    #[test]
    fn a_name_with_wrote_is_an_attribution_only_above_a_quote() {
        for eol in EOLS {
            let text = ["Thanks", "", "Bob Example wrote:", "", &format!("> {OLD}")].join(eol);
            let stripped = strip(&text);
            assert_eq!(stripped.text, "Thanks");
            assert_eq!(
                stripped.cuts,
                [Cut {
                    line: 3,
                    lines: 3,
                    reason: "attribution \"… wrote:\" and quoted lines".to_owned(),
                }]
            );
            // Above unquoted text it is the request itself.
            for text in [
                "Here is what I wrote:\nusername: john",
                "Bob wrote:\n\nplease restart web1",
                "On your remote host you can run:\n\n     telnet 127.0.0.1 52698",
                "Delete the files I wrote on the share:\n/srv/a",
            ] {
                let text = text.replace('\n', eol);
                let stripped = strip(&text);
                assert_eq!(stripped.text, text.replace('\r', ""));
                assert_eq!(stripped.cuts, []);
            }
        }
    }

    #[test]
    fn an_attribution_wrapped_after_a_line_of_text_keeps_that_line() {
        for eol in EOLS {
            for attribution in [
                "Bob Example <bob@example.com> wrote:",
                "Bob Example <bob@example.com> kirjoitti 1.1.2024 kello 10.00:",
                "2024-01-01 10:00 GMT+01:00 Bob <bob@example.com>:",
                "On Mon, 1 Jan 2024 at 10:00, Bob <bob@example.com> wrote:",
            ] {
                let text = ["Hello", "please restart web1", attribution, OLD].join(eol);
                let stripped = strip(&text);
                assert_eq!(stripped.text, "Hello\nplease restart web1", "{attribution}");
                assert_eq!(stripped.cuts.len(), 1);
                assert_eq!(stripped.cuts[0].line, 3, "{attribution}");
                assert_eq!(stripped.cuts[0].lines, 2, "{attribution}");
            }
        }
    }

    /// Separator names as clients write them.
    const SEPARATOR_NAMES: &[&str] = &[
        "Original Message",
        "Reply Message",
        "Forwarded message",
        "Begin forwarded message",
        "Ursprüngliche Nachricht",
        "Original-Nachricht",
        "Antwort Nachricht",
        "Weitergeleitete Nachricht",
        "Oprindelig meddelelse",
        "Message d'origine",
        "Message transféré",
        "Mensaje original",
        "Messaggio originale",
        "Oorspronkelijk bericht",
        "Doorgestuurd bericht",
        "Mensagem original",
        "Ursprungligt meddelande",
        "Opprinnelig melding",
        "Alkuperäinen viesti",
        "Wiadomość oryginalna",
        "Исходное сообщение",
        "Пересылаемое сообщение",
        "Původní zpráva",
        "元のメッセージ",
        "原始邮件",
    ];

    #[test]
    fn separators_cut_everything_below_dashed_or_not() {
        let mut checked = 0;
        for name in SEPARATOR_NAMES {
            let upper = name.to_uppercase();
            let forms = [
                format!("-----{name}-----"),
                format!("---------- {name} ---------"),
                format!("-------- {upper} --------"),
                format!("____ {name} ____"),
                format!("{name}:"),
                format!("  {name}"),
            ];
            for form in forms {
                for before in ["", "delete it "] {
                    for eol in EOLS {
                        let line = format!("{before}{form}");
                        // Without dashes the name must stand alone.
                        let alone = form.starts_with(['-', '_']) || before.is_empty();
                        let lines = vec![
                            NEW.to_owned(),
                            String::new(),
                            line.clone(),
                            "From: Bob".to_owned(),
                            OLD.to_owned(),
                        ];
                        let text = lines.join(eol);
                        let stripped = strip(&text);
                        if !alone {
                            // "delete it Original Message:" is a sentence.
                            assert_eq!(stripped.text, text.replace('\r', ""), "{text:?}");
                            assert_eq!(stripped.cuts, [], "{text:?}");
                            continue;
                        }
                        let kept = if before.is_empty() {
                            NEW.to_owned()
                        } else {
                            format!("{NEW}\n\ndelete it")
                        };
                        let shown = line[before.len()..].trim();
                        check_cut_to_end(
                            &lines,
                            eol,
                            &kept,
                            3,
                            &format!("separator \"{shown}\" and what follows"),
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > SEPARATOR_NAMES.len() * 10, "{checked}");
    }

    #[test]
    fn mobile_signatures_cut_the_old_message_below() {
        let signatures = [
            "Sent from my iPhone",
            "Sent from my iPad",
            "Sent from my iPhone!",
            "Sent from Mail for Windows",
            "Sent from Mail for Windows 10",
            "Sent from Outlook for iOS",
            "Sent from Outlook for Android",
            "Get Outlook for iOS<https://aka.ms/o0ukef>",
            "Get Outlook for Android",
            "Sent from my Galaxy",
            "Sent from my Samsung Galaxy smartphone.",
            "Sent from my Verizon, Samsung Galaxy smartphone",
            "Sent from Samsung Mobile",
            "Sent via BlackBerry from T-Mobile",
            "Sent from Yahoo Mail on Android",
            "Sent from Mailbox for iPhone",
            "Gesendet von meinem iPhone",
            "Von meinem iPhone gesendet",
            "Gesendet von Outlook für Android",
            "Envoyé de mon iPhone",
            "Enviado desde mi iPhone",
            "Enviado do meu iPhone",
            "Inviato da iPhone",
            "Verzonden vanaf mijn iPhone",
            "Skickat från min iPhone",
            "Sendt fra min iPhone",
            "Lähetetty iPhonesta",
            "Wysłane z iPhone'a",
            "Отправлено с iPhone",
            "iPhone'umdan gönderildi",
            "iPhoneから送信",
        ];
        for signature in signatures {
            for eol in EOLS {
                let lines = owned(&[
                    NEW,
                    "",
                    signature,
                    "",
                    "On Mon, 1 Jan 2024 at 10:00, Bob",
                    OLD,
                ]);
                let reason = format!("mobile signature (\"{signature}\") and what follows");
                check_cut_to_end(&lines, eol, NEW, 3, &reason);
            }
        }
        // A sentence that starts like one is text.
        for text in [
            "Sent from my desk, which is much easier than my mobile phone.",
            "Sent from the backup server to the archive every night",
        ] {
            assert_eq!(strip(text).text, text);
        }
    }

    #[test]
    fn the_cheap_tests_know_every_signature_and_separator() {
        let mut initials: Vec<char> = MOBILE.iter().filter_map(|p| p.chars().next()).collect();
        initials.sort_unstable();
        initials.dedup();
        let mut listed = MOBILE_INITIALS.to_vec();
        listed.sort_unstable();
        assert_eq!(initials, listed);
        let mut endings: Vec<char> = SEPARATORS.iter().filter_map(|n| n.chars().last()).collect();
        endings.sort_unstable();
        endings.dedup();
        let mut listed = SEPARATOR_ENDINGS.to_vec();
        listed.sort_unstable();
        assert_eq!(endings, listed);
    }

    #[test]
    fn a_signature_separator_cuts_everything_below() {
        for sep in ["-- ", "--"] {
            for eol in EOLS {
                let lines = owned(&[NEW, sep, "Alice", OLD]);
                check_cut_to_end(&lines, eol, NEW, 2, "signature (\"-- \")");
            }
        }
    }

    #[test]
    fn quoted_lines_are_cut_anywhere_and_the_text_between_is_kept() {
        for eol in EOLS {
            let text = [
                "> q1", "> q1b", "", "answer 1", "", "> q2", "", "answer 2", "> q3",
            ]
            .join(eol);
            let stripped = strip(&text);
            assert_eq!(stripped.text, "answer 1\n\nanswer 2");
            let at: Vec<(usize, usize)> = stripped.cuts.iter().map(|c| (c.line, c.lines)).collect();
            assert_eq!(at, [(1, 3), (6, 2), (9, 1)]);
            assert!(
                stripped
                    .cuts
                    .iter()
                    .all(|c| c.reason == "quoted lines (\">\")")
            );
        }
    }

    #[test]
    fn text_below_a_quoted_attribution_is_kept() {
        let text = "Test reply\n\nOn 04/19/2011 07:10 AM, Roman wrote:\n\n>\n> Test\n>\n> Roman\n\nRegards, Roman";
        let stripped = strip(text);
        assert_eq!(stripped.text, "Test reply\n\nRegards, Roman");
        assert_eq!(
            stripped.cuts,
            [Cut {
                line: 3,
                lines: 7,
                reason: "attribution \"On … wrote:\" and quoted lines".to_owned(),
            }]
        );
    }

    #[test]
    fn lines_that_resemble_the_rules_are_kept() {
        for text in [
            "On the other hand, it could happen TWICE!\n\nStranger",
            "On Monday please restart web1",
            "Please see the original message below.",
            "------ Enter Feedback Below ------\nall good",
            "From: the old server\nplease migrate it",
            "To: everybody\nSubject: quota\nplease raise it",
            "Date: tomorrow\nplease",
            "Look at this:\n\n--> one\n--> two",
            "________________\nthe new text",
        ] {
            for eol in EOLS {
                let text = text.replace('\n', eol);
                let stripped = strip(&text);
                assert_eq!(stripped.text, text.replace('\r', ""), "{text:?}");
                assert_eq!(stripped.cuts, [], "{text:?}");
            }
        }
    }

    #[test]
    fn cuts_display_as_explain_prints_them() {
        let cut = Cut {
            line: 6,
            lines: 14,
            reason: "Outlook header block (Von:/Gesendet:)".to_owned(),
        };
        assert_eq!(
            cut.to_string(),
            "cut 14 lines at line 6: Outlook header block (Von:/Gesendet:)"
        );
        let one = Cut { lines: 1, ..cut };
        assert_eq!(
            one.to_string(),
            "cut 1 line at line 6: Outlook header block (Von:/Gesendet:)"
        );
    }

    /// Every mix of up to four of these lines: no panic, the cuts lie in
    /// the text, in order and apart, and every kept line is a line of the
    /// text or the start of one.
    #[test]
    fn every_mix_of_lines_keeps_the_cuts_in_order_and_the_kept_lines_from_the_text() {
        let pieces = [
            "new text",
            "",
            "> quoted",
            "On Mon, 1 Jan 2024 at 10:00, Bob",
            "<bob@example.com> wrote:",
            "Bob wrote:",
            "Yes. Am 01.01.2024 schrieb Bob:",
            "From: Bob <bob@example.com>",
            "Sent: Monday",
            "________________",
            "ok -----Original Message-----",
            "Sent from my iPhone",
            "-- ",
            "İİİ On 1 Jan 2024 İİİ wrote:",
            "2024-01-01 10:00 Bob <bob@example.com>",
        ];
        let mut checked = 0;
        let mut stack = vec![Vec::<usize>::new()];
        while let Some(seq) = stack.pop() {
            for eol in EOLS {
                let text = seq.iter().map(|&i| pieces[i]).collect::<Vec<_>>().join(eol);
                let stripped = strip(&text);
                let total = text.lines().count();
                let mut next_free = 1;
                for cut in &stripped.cuts {
                    assert!(
                        cut.line >= next_free - 1 && cut.lines >= 1,
                        "{text:?} {cut}"
                    );
                    assert!(cut.line + cut.lines - 1 <= total, "{text:?} {cut}");
                    next_free = cut.line + cut.lines;
                }
                let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
                for kept in stripped.text.lines().filter(|l| !l.is_empty()) {
                    assert!(
                        lines.iter().any(|l| l.starts_with(kept)),
                        "{text:?} {kept:?}"
                    );
                }
                checked += 1;
            }
            if seq.len() < 4 {
                for i in 0..pieces.len() {
                    let mut next = seq.clone();
                    next.push(i);
                    stack.push(next);
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }

    /// 200k lines of what made stripping slow before (blank lines before
    /// `>` lines, long lines, lines that look like attributions or headers):
    /// every kept line and every cut is where it belongs. Linear cost shows
    /// in the suite's time; no clock is read here.
    #[test]
    fn a_200k_line_adversarial_mix_is_stripped_correctly() {
        let long = "x".repeat(1_000);
        let long_wrote = format!("{long} wrote:");
        let mut input: Vec<String> = Vec::new();
        let mut kept: Vec<String> = Vec::new();
        let mut cuts: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        // Header-like lines stay more than five lines apart, as two within
        // five make a header block.
        while input.len() < 200_000 {
            let blanks = i % 50;
            let unit: Vec<(String, bool)> = match i % 8 {
                0 => vec![(format!("answer {i}"), true)],
                1 => vec![
                    ("To: somebody".into(), true),
                    (format!("Subject: nothing {i}"), true),
                ],
                2 => {
                    let mut u: Vec<(String, bool)> =
                        (0..blanks).map(|_| (String::new(), true)).collect();
                    u.push(("> quoted".into(), false));
                    u.push((">".into(), false));
                    u.push((String::new(), false));
                    u.push(("> more".into(), false));
                    u.push((String::new(), false));
                    u.push((format!("answer {i}"), true));
                    u
                }
                3 => vec![
                    (format!("From: the old server {i}"), true),
                    ("answer".into(), true),
                ],
                4 => vec![
                    ("Bob wrote:".into(), true),
                    (format!("not a quote {i}"), true),
                ],
                5 => vec![(long.clone(), true)],
                6 => vec![(format!("On Monday, please {i}"), true)],
                _ => vec![(long_wrote.clone(), true), (format!("after {i}"), true)],
            };
            let mut open: Option<(usize, usize)> = None;
            for (line, keep) in unit {
                input.push(line.clone());
                if keep {
                    if let Some(cut) = open.take() {
                        cuts.push(cut);
                    }
                    kept.push(line);
                } else {
                    let n = input.len();
                    open = Some(open.map_or((n, 1), |(start, len)| (start, len + 1)));
                }
            }
            i += 1;
        }
        for eol in EOLS {
            let text = input.join(eol);
            let stripped = strip(&text);
            let want = kept.join("\n");
            if stripped.text != want {
                let at = stripped
                    .text
                    .lines()
                    .zip(want.lines())
                    .position(|(a, b)| a != b);
                panic!("kept text differs at kept line {at:?}");
            }
            let got: Vec<(usize, usize)> =
                stripped.cuts.iter().map(|c| (c.line, c.lines)).collect();
            assert_eq!(got, cuts);
        }
    }

    #[test]
    fn mutt_attributions_and_forwards_cut_what_follows() {
        for eol in EOLS {
            for (line, reason) in [
                (
                    "* Carol Jones <carol@example.com> [2025-03-03 09:15 +0100]:",
                    "\"<date> <name> <address>:\"",
                ),
                (
                    "----- Forwarded message from Carol Jones <carol@example.com> -----",
                    "",
                ),
            ] {
                let text = [NEW, "", line, OLD].join(eol);
                let stripped = strip(&text);
                assert_eq!(stripped.text, NEW, "{text:?}");
                assert!(
                    stripped
                        .cuts
                        .last()
                        .is_some_and(|c| c.line == 3 && c.reason.contains(reason)),
                    "{:?}",
                    stripped.cuts
                );
            }
        }
        // A star line without a bracketed date, or a dashed line naming no
        // separator, is text.
        for kept in [
            "* Carol Jones <carol@example.com>:",
            "----- Notes from Carol Jones -----",
        ] {
            let text = [NEW, kept, OLD].join("\n");
            assert_eq!(strip(&text).text, text);
        }
    }

    #[test]
    fn an_address_right_before_the_verb_makes_an_attribution_in_any_language() {
        for eol in EOLS {
            for lines in [
                &["Bob Example <bob@example.com> schrieb am So., 23. Juni 2024, 21:08:"][..],
                &[
                    "Bob Example <bob@example.com> schrieb am So., 23.",
                    "Juni 2024, 21:08:",
                ],
                &["Bob <bob@example.com> a écrit :"],
            ] {
                let mut all = vec![NEW, ""];
                all.extend_from_slice(lines);
                all.extend(["", "> old"]);
                let text = all.join(eol);
                let stripped = strip(&text);
                assert_eq!(stripped.text, NEW, "{text:?}");
                assert_eq!(stripped.cuts.first().map(|c| c.line), Some(3), "{text:?}");
            }
        }
        // Without the address it is a sentence.
        let text = format!("{NEW}\nBob schrieb am Sonntag etwas anderes:\n{OLD}");
        assert_eq!(strip(&text).text, text);
    }
}
