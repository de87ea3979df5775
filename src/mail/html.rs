//! HTML to text for the phrasebook: block structure as lines, table rows as
//! one line each, quoted blocks as `> ` lines, and where a mail client's
//! quote container starts.
//!
//! One streaming pass over the markup, with a small tokenizer of its own
//! (HTML5 tokenization rules for tags, attributes, comments, raw text and
//! character references; the named-entity table is web_atoms', the one
//! html5ever uses). No tree is built: nesting is a handful of counters, so
//! the cost is linear in the input whatever it holds. html5ever's tokenizer
//! was tried first and dropped: it checks each attribute of a tag against
//! all the tag's earlier ones, and one 1 MB tag of distinct attributes took
//! a minute. Output is bounded too: lines are broken at [`MAX_LINE`] and
//! conversion stops at [`MAX_TEXT`].

use std::borrow::Cow;

/// The most text one HTML part yields; the rest of the part is not read
/// (and [`Converted::truncated`] says so). Far more than any request.
pub(crate) const MAX_TEXT: usize = 256 * 1024;

/// A line is ended at the first space after this many bytes.
pub(crate) const MAX_LINE: usize = 4096;

/// A word that runs on past this many bytes in one line is cut here.
const HARD_LINE: usize = MAX_LINE + 1024;

/// Quote prefixes printed at most (deeper blockquotes still count).
const MAX_QUOTE_PREFIX: usize = 8;

/// The separator a `<hr>` becomes (Outlook's own text version uses it).
const RULE: &str = "________________________________";

/// An HTML part as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Converted {
    pub text: String,
    /// The line (counted from 1 in `text`) where quoted history starts,
    /// and which marker said so (e.g. `HTML quote container
    /// (div.gmail_quote)`). Conversion goes on after it, so the lines from
    /// there to the end of `text` are the history.
    pub quote: Option<(usize, String)>,
    /// The text reached [`MAX_TEXT`] and the rest of the part was not read.
    pub truncated: bool,
}

/// Converts one HTML part.
pub(crate) fn to_text(html: &str) -> Converted {
    let mut out = Writer::default();
    tokenize(html, &mut out);
    out.finish()
}

// ---------------------------------------------------------------------------
// Tokenizer: finds text, tags and their few attributes that matter, and
// skips comments and the content of raw-text elements. Every loop moves
// forward through the input; nothing is stored per tag or per attribute.

/// The attributes the converter reads; the first of each name counts, as
/// in HTML.
#[derive(Debug, Default)]
struct Attrs<'a> {
    class: Option<&'a str>,
    id: Option<&'a str>,
    kind: Option<&'a str>,
    alt: Option<&'a str>,
}

#[derive(Debug)]
struct Tag<'a> {
    end: bool,
    name: Name,
    attrs: Attrs<'a>,
}

fn tokenize(src: &str, out: &mut Writer) {
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() && !out.stopped {
        let Some(off) = src[i..].find('<') else {
            out.text(&src[i..]);
            break;
        };
        let lt = i + off;
        if lt > i {
            out.text(&src[i..lt]);
        }
        i = lt;
        match b.get(i + 1) {
            Some(b'!') if b[i + 2..].starts_with(b"--") => i = skip_comment(b, i + 4),
            Some(b'!' | b'?') => i = skip_past(b, i + 2, b'>'),
            Some(b'/') => match b.get(i + 2) {
                Some(c) if c.is_ascii_alphabetic() => {
                    let (tag, next) = parse_tag(src, i + 2, true);
                    if let Some(tag) = tag {
                        out.tag(&tag);
                    }
                    i = next;
                }
                Some(b'>') => i += 3,
                None => {
                    out.text("</");
                    i = b.len();
                }
                Some(_) => i = skip_past(b, i + 2, b'>'),
            },
            Some(c) if c.is_ascii_alphabetic() => {
                let (tag, next) = parse_tag(src, i + 1, false);
                i = next;
                let Some(tag) = tag else { continue };
                out.tag(&tag);
                if let Some(raw) = tag.name.raw_text() {
                    let end = raw_text_end(b, i, raw);
                    if tag.name == Name::Textarea {
                        out.text(&src[i..end]);
                    }
                    i = end;
                }
            }
            _ => {
                out.text("<");
                i += 1;
            }
        }
    }
}

/// The position after the next `byte` at or after `from`, or the end.
fn skip_past(b: &[u8], from: usize, byte: u8) -> usize {
    match b
        .get(from..)
        .and_then(|rest| rest.iter().position(|&c| c == byte))
    {
        Some(p) => from + p + 1,
        None => b.len(),
    }
}

/// The position after a comment whose text starts at `from` (after
/// `<!--`): it ends at `-->` or `--!>`, and `<!-->` and `<!--->` are
/// empty comments. One forward scan, whatever the comment holds.
fn skip_comment(b: &[u8], from: usize) -> usize {
    let rest = b.get(from..).unwrap_or_default();
    if rest.starts_with(b">") {
        return from + 1;
    }
    if rest.starts_with(b"->") {
        return from + 2;
    }
    let mut j = from;
    while j + 1 < b.len() {
        if b[j] == b'-' && b[j + 1] == b'-' {
            match b.get(j + 2) {
                Some(b'>') => return j + 3,
                Some(b'!') if b.get(j + 3) == Some(&b'>') => return j + 4,
                _ => {}
            }
        }
        j += 1;
    }
    b.len()
}

/// Where the content of a raw-text element (`<script>` …) starting at
/// `from` ends: at `</name` followed by white space, `/` or `>`, or at the
/// end of the input.
fn raw_text_end(b: &[u8], from: usize, name: &str) -> usize {
    let n = name.len();
    let mut j = from;
    while let Some(p) = b
        .get(j..)
        .and_then(|rest| rest.windows(2).position(|w| w == b"</"))
    {
        let at = j + p;
        let after = at + 2;
        let named = b
            .get(after..after + n)
            .is_some_and(|s| s.eq_ignore_ascii_case(name.as_bytes()));
        if named
            && matches!(
                b.get(after + n),
                None | Some(b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' | b'/' | b'>')
            )
        {
            return at;
        }
        j = at + 2;
    }
    b.len()
}

/// U+00A0 in UTF-8 (0xC2 only ever starts a character, so this never
/// matches inside one).
fn is_nbsp(b: &[u8], i: usize) -> bool {
    b[i] == 0xC2 && b.get(i + 1) == Some(&0xA0)
}

fn is_space(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

/// Reads a tag whose name starts at `from`; returns it (None when the
/// input ends inside it, which drops it, as in HTML) and the position
/// after its `>`.
fn parse_tag(src: &str, from: usize, end: bool) -> (Option<Tag<'_>>, usize) {
    let b = src.as_bytes();
    let mut i = from;
    while i < b.len() && !is_space(b[i]) && b[i] != b'/' && b[i] != b'>' {
        i += 1;
    }
    let name = Name::of(&b[from..i]);
    let mut attrs = Attrs::default();
    loop {
        while i < b.len() && (is_space(b[i]) || b[i] == b'/') {
            i += 1;
        }
        match b.get(i) {
            None => return (None, b.len()),
            Some(b'>') => {
                return (Some(Tag { end, name, attrs }), i + 1);
            }
            Some(_) => {}
        }
        // An attribute name: its first character may be `=`.
        let name_start = i;
        i += 1;
        while i < b.len() && !is_space(b[i]) && !matches!(b[i], b'/' | b'>' | b'=') {
            i += 1;
        }
        let attr = &b[name_start..i];
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let mut value = "";
        if b.get(i) == Some(&b'=') {
            i += 1;
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            match b.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    let start = i + 1;
                    let Some(len) = b[start..].iter().position(|&c| c == q) else {
                        return (None, b.len());
                    };
                    value = &src[start..start + len];
                    i = start + len + 1;
                }
                Some(_) => {
                    let start = i;
                    while i < b.len() && !is_space(b[i]) && b[i] != b'>' {
                        i += 1;
                    }
                    value = &src[start..i];
                }
                None => return (None, b.len()),
            }
        }
        let slot = if attr.eq_ignore_ascii_case(b"class") {
            &mut attrs.class
        } else if attr.eq_ignore_ascii_case(b"id") {
            &mut attrs.id
        } else if attr.eq_ignore_ascii_case(b"type") {
            &mut attrs.kind
        } else if attr.eq_ignore_ascii_case(b"alt") {
            &mut attrs.alt
        } else {
            continue;
        };
        if slot.is_none() {
            *slot = Some(value);
        }
    }
}

/// The elements the converter treats in their own way; every other name
/// is `Other` (its text is kept, the tag itself is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    /// Ends lines before and after: div, li, tr's containers, sections….
    Block,
    /// A block with a blank line before and after: p, h1–h6.
    Para,
    Blockquote,
    Pre,
    Br,
    Hr,
    Tr,
    Cell,
    Img,
    Head,
    Body,
    /// Elements that may stand in `<head>` without ending it.
    HeadContent,
    Template,
    /// Raw text whose content is dropped.
    Script,
    Style,
    Title,
    Iframe,
    Noembed,
    Noframes,
    /// Raw text whose content is kept.
    Textarea,
    Div,
    Other,
}

impl Name {
    fn of(raw: &[u8]) -> Name {
        let mut buf = [0u8; 12];
        if raw.len() > buf.len() {
            return Name::Other;
        }
        let lower = &mut buf[..raw.len()];
        lower.copy_from_slice(raw);
        lower.make_ascii_lowercase();
        match &*lower {
            b"div" => Name::Div,
            b"p" | b"h1" | b"h2" | b"h3" | b"h4" | b"h5" | b"h6" => Name::Para,
            b"address" | b"article" | b"aside" | b"caption" | b"center" | b"dd" | b"details"
            | b"dialog" | b"dir" | b"dl" | b"dt" | b"fieldset" | b"figcaption" | b"figure"
            | b"footer" | b"form" | b"header" | b"hgroup" | b"html" | b"legend" | b"li"
            | b"listing" | b"main" | b"menu" | b"nav" | b"ol" | b"section" | b"summary"
            | b"table" | b"tbody" | b"tfoot" | b"thead" | b"ul" | b"xmp" => Name::Block,
            b"blockquote" => Name::Blockquote,
            b"pre" => Name::Pre,
            b"br" => Name::Br,
            b"hr" => Name::Hr,
            b"tr" => Name::Tr,
            b"td" | b"th" => Name::Cell,
            b"img" => Name::Img,
            b"head" => Name::Head,
            b"body" => Name::Body,
            b"meta" | b"link" | b"base" | b"basefont" | b"bgsound" | b"noscript" => {
                Name::HeadContent
            }
            b"template" => Name::Template,
            b"script" => Name::Script,
            b"style" => Name::Style,
            b"title" => Name::Title,
            b"iframe" => Name::Iframe,
            b"noembed" => Name::Noembed,
            b"noframes" => Name::Noframes,
            b"textarea" => Name::Textarea,
            _ => Name::Other,
        }
    }

    /// For elements whose content is raw text, the name that ends it.
    fn raw_text(self) -> Option<&'static str> {
        Some(match self {
            Name::Script => "script",
            Name::Style => "style",
            Name::Title => "title",
            Name::Iframe => "iframe",
            Name::Noembed => "noembed",
            Name::Noframes => "noframes",
            Name::Textarea => "textarea",
            _ => return None,
        })
    }

    /// Whether the start of this element ends `<head>` (as in HTML, any
    /// element that does not belong there).
    fn ends_head(self) -> bool {
        !matches!(
            self,
            Name::Head
                | Name::HeadContent
                | Name::Template
                | Name::Script
                | Name::Style
                | Name::Title
                | Name::Noframes
        )
    }
}

// ---------------------------------------------------------------------------
// Character references.

/// Up to two characters a reference stands for.
#[derive(Debug)]
struct Decoded {
    buf: [u8; 8],
    len: usize,
}

impl Decoded {
    fn new(first: char, second: Option<char>) -> Decoded {
        let mut d = Decoded {
            buf: [0; 8],
            len: 0,
        };
        for c in std::iter::once(first).chain(second) {
            d.len += c.encode_utf8(&mut d.buf[d.len..]).len();
        }
        d
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// The longest entity name (`CounterClockwiseContourIntegral;`) and then
/// some.
const MAX_ENTITY: usize = 40;

/// The longest name that stands without `;` (`frac34`, `middot`…).
const MAX_LEGACY_ENTITY: usize = 6;

/// Decodes the character reference after a `&` (HTML's rules: numeric
/// references with the Windows-1252 fix-ups, the longest named match, the
/// legacy names without `;`, and in attribute values no legacy match
/// before `=` or an alphanumeric). Returns the text and the bytes used.
fn decode_reference(after: &[u8], in_attribute: bool) -> Option<(Decoded, usize)> {
    if after.first() == Some(&b'#') {
        return decode_numeric(after);
    }
    // The candidate name: ASCII letters and digits, maybe a `;`.
    let mut run = after
        .iter()
        .take(MAX_ENTITY)
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    if after.get(run) == Some(&b';') {
        run += 1;
    }
    let name = std::str::from_utf8(&after[..run]).unwrap_or_default();
    // Mostly the whole name is one (`&amp;`): one look-up. Otherwise the
    // longest prefix that is a name standing without `;` (those are at
    // most six letters long) counts.
    let whole = match web_atoms::NAMED_ENTITIES.get(name) {
        Some(&(first, second)) if first != 0 => Some((name.len(), first, second)),
        _ => None,
    };
    let best = whole.or_else(|| {
        (1..=name.len().min(MAX_LEGACY_ENTITY))
            .rev()
            .find_map(|k| match web_atoms::NAMED_ENTITIES.get(&name[..k]) {
                Some(&(first, second)) if first != 0 => Some((k, first, second)),
                _ => None,
            })
    });
    let (k, first, second) = best?;
    if in_attribute
        && after[k - 1] != b';'
        && after
            .get(k)
            .is_some_and(|&c| c == b'=' || c.is_ascii_alphanumeric())
    {
        return None;
    }
    let second = (second != 0).then(|| char::from_u32(second)).flatten();
    let first = char::from_u32(first).unwrap_or('\u{FFFD}');
    Some((Decoded::new(first, second), k))
}

fn decode_numeric(after: &[u8]) -> Option<(Decoded, usize)> {
    let (radix, start) = match after.get(1) {
        Some(b'x' | b'X') => (16, 2),
        _ => (10, 1),
    };
    let mut i = start;
    let mut value: u32 = 0;
    while let Some(d) = after.get(i).and_then(|&c| (c as char).to_digit(radix)) {
        // Saturates above the last code point: still "out of range".
        value = value.saturating_mul(radix).saturating_add(d).min(0x11_0000);
        i += 1;
    }
    if i == start {
        return None;
    }
    if after.get(i) == Some(&b';') {
        i += 1;
    }
    let c = match value {
        0 | 0xD800..=0xDFFF | 0x11_0000.. => '\u{FFFD}',
        0x80..=0x9F => windows_1252(value),
        _ => char::from_u32(value).unwrap_or('\u{FFFD}'),
    };
    Some((Decoded::new(c, None), i))
}

/// HTML's reading of `&#128;`–`&#159;` as Windows-1252.
fn windows_1252(value: u32) -> char {
    const TABLE: [u32; 32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013,
        0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
    ];
    let cp = TABLE
        .get((value - 0x80) as usize)
        .copied()
        .unwrap_or(0xFFFD);
    char::from_u32(cp).unwrap_or('\u{FFFD}')
}

/// An attribute value with its character references decoded.
fn attribute_value(raw: &str) -> Cow<'_, str> {
    if !raw.contains('&') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(a) = rest.find('&') {
        out.push_str(&rest[..a]);
        match decode_reference(&rest.as_bytes()[a + 1..], true) {
            Some((d, used)) => {
                out.push_str(d.as_str());
                rest = &rest[a + 1 + used..];
            }
            None => {
                out.push('&');
                rest = &rest[a + 1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

// ---------------------------------------------------------------------------
// Quote containers.

/// A mail client's marker for where quoted history starts.
#[derive(Debug)]
struct Marker {
    reason: String,
    /// Outlook puts a `<hr>` right before its header block: the cut starts
    /// at that rule when nothing stands between them.
    with_rule_before: bool,
}

/// Class names that open a quote container (matched as whole tokens of
/// the class list, ASCII case-insensitively). Yahoo prefixes its class
/// with a generated id (`ydp1f2e3d4cyahoo_quoted`), so it matches as a
/// suffix.
const QUOTE_CLASSES: &[&str] = &[
    "gmail_quote",
    "gmail_quote_container",
    "moz-cite-prefix",
    "moz-forward-container",
    "OutlookMessageHeader",
    "protonmail_quote",
];

/// Ids of quote containers (compared whole, ASCII case-insensitively).
const QUOTE_IDS: &[&str] = &[
    "divRplyFwdMsg",
    "appendonsend",
    "mail-editor-reference-message-container",
];

fn marker(tag: &Tag<'_>) -> Option<Marker> {
    let element = match tag.name {
        Name::Div => "div",
        Name::Blockquote => "blockquote",
        Name::Hr => "hr",
        _ => return None,
    };
    if tag.name == Name::Hr {
        let id = attribute_value(tag.attrs.id?);
        return id.trim().eq_ignore_ascii_case("zwchr").then(|| Marker {
            reason: "HTML quote container (hr#zwchr)".to_owned(),
            with_rule_before: false,
        });
    }
    if let Some(class) = tag.attrs.class {
        let class = attribute_value(class);
        for token in class.split_ascii_whitespace() {
            let known = QUOTE_CLASSES
                .iter()
                .find(|known| token.eq_ignore_ascii_case(known))
                .copied()
                .or_else(|| {
                    let n = "yahoo_quoted".len();
                    let tail = token.len().checked_sub(n).and_then(|at| token.get(at..));
                    tail.is_some_and(|t| t.eq_ignore_ascii_case("yahoo_quoted"))
                        .then_some("yahoo_quoted")
                });
            if let Some(known) = known {
                return Some(Marker {
                    reason: format!("HTML quote container ({element}.{known})"),
                    with_rule_before: false,
                });
            }
        }
    }
    if tag.name == Name::Div
        && let Some(id) = tag.attrs.id
    {
        let id = attribute_value(id);
        let id = id.trim();
        if let Some(known) = QUOTE_IDS
            .iter()
            .find(|known| id.eq_ignore_ascii_case(known))
        {
            return Some(Marker {
                reason: format!("HTML quote container (div#{known})"),
                with_rule_before: *known == "divRplyFwdMsg",
            });
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Writer: turns the token stream into lines. Line breaks are kept pending
// until text follows, so that leading, trailing and repeated breaks
// collapse (at most one blank line in a row) at no cost.

#[derive(Debug, Default)]
struct Writer {
    out: String,
    /// Line number of the line being written (counted from 1).
    line_no: usize,
    /// Bytes of text on the current line (the quote prefix not counted).
    line_len: usize,
    /// The current line has text (it is not just started).
    line_text: bool,
    /// Any text written at all: breaks before the first text are dropped.
    any: bool,
    /// Line breaks owed before the next text: 1 ends the line, 2 also
    /// leaves a blank line.
    breaks: u8,
    /// Collapsible white space seen since the last text.
    space: bool,
    /// `&nbsp;`s (and white space in `<pre>`) owed before the next text on
    /// the same line.
    hard_spaces: usize,
    /// Open `<blockquote>`s, and those of the current line.
    depth: usize,
    line_depth: usize,
    /// The fewest open blockquotes since the current line: the blank line
    /// between two quotes is quoted only if they are one.
    gap_depth: usize,
    /// Open `<pre>`s; `pre_start` drops the newline right after `<pre>`.
    pre: usize,
    pre_start: bool,
    /// Inside `<head>` or `<template>`: no text.
    head: bool,
    template: usize,
    /// A table cell has started and has no text yet: block boundaries at
    /// its start do not end the row's line.
    cell_fresh: bool,
    /// The line of the last `<hr>` when nothing came after it.
    last_rule: Option<usize>,
    /// A quote marker was seen; the quote starts at the next text.
    quote_pending: Option<String>,
    quote: Option<(usize, String)>,
    stopped: bool,
}

impl Writer {
    fn finish(mut self) -> Converted {
        self.trim_line_end();
        Converted {
            text: self.out,
            quote: self.quote,
            truncated: self.stopped,
        }
    }

    fn tag(&mut self, tag: &Tag<'_>) {
        let name = tag.name;
        if self.template > 0 && name != Name::Template {
            return;
        }
        if tag.end {
            self.end_tag(name);
            return;
        }
        if self.head && name.ends_head() {
            self.head = false;
        }
        if self.quote.is_none()
            && self.quote_pending.is_none()
            && let Some(marker) = marker(tag)
        {
            self.quote_starts(marker);
        }
        match name {
            Name::Block | Name::Div => self.soft_break(),
            Name::Para | Name::Pre => {
                self.soft_break();
                self.blank_line();
                if name == Name::Pre {
                    self.pre += 1;
                    self.pre_start = true;
                }
            }
            Name::Blockquote => {
                self.soft_break();
                self.blank_line();
                self.depth += 1;
            }
            Name::Br => self.hard_break(),
            Name::Hr => self.rule(),
            Name::Tr => {
                self.cell_fresh = false;
                self.soft_break();
            }
            Name::Cell => {
                if self.line_text && self.breaks == 0 {
                    self.space = true;
                }
                self.cell_fresh = true;
            }
            Name::Img => {
                if let Some(alt) = tag.attrs.alt
                    && !self.head
                    && self.template == 0
                {
                    let alt = attribute_value(alt);
                    self.chars(&alt);
                }
            }
            Name::Head => self.head = true,
            Name::Body => self.head = false,
            Name::Template => self.template += 1,
            Name::Textarea => self.soft_break(),
            _ => {}
        }
    }

    fn end_tag(&mut self, name: Name) {
        match name {
            Name::Block | Name::Div | Name::Textarea => {
                if name == Name::Block {
                    // A table's end also ends a cell left open in it.
                    self.cell_fresh = false;
                }
                self.soft_break();
            }
            Name::Para | Name::Pre => {
                self.soft_break();
                self.blank_line();
                if name == Name::Pre {
                    self.pre = self.pre.saturating_sub(1);
                }
            }
            Name::Blockquote => {
                self.soft_break();
                self.blank_line();
                self.depth = self.depth.saturating_sub(1);
                self.gap_depth = self.gap_depth.min(self.depth);
            }
            // `</br>` is a `<br>` in HTML.
            Name::Br => self.hard_break(),
            Name::Tr => {
                self.cell_fresh = false;
                self.soft_break();
            }
            Name::Cell => {
                if !self.cell_fresh {
                    // Breaks at the end of a cell's text do not end the
                    // row's line; the next cell follows after a space.
                    self.breaks = 0;
                }
                self.cell_fresh = false;
            }
            Name::Head => self.head = false,
            Name::Template => self.template = self.template.saturating_sub(1),
            _ => {}
        }
    }

    fn quote_starts(&mut self, marker: Marker) {
        if marker.with_rule_before
            && let Some(line) = self.last_rule
        {
            self.quote = Some((line, marker.reason));
            return;
        }
        // Never let the reply's text and the quote share a line.
        self.cell_fresh = false;
        self.soft_break();
        self.quote_pending = Some(marker.reason);
    }

    /// A block boundary: the current line ends, if it has text.
    fn soft_break(&mut self) {
        if self.cell_fresh {
            return;
        }
        if self.line_text && self.breaks == 0 {
            self.breaks = 1;
        }
        self.space = false;
        self.hard_spaces = 0;
    }

    /// A paragraph's margin: a blank line, unless at the very start.
    fn blank_line(&mut self) {
        if self.cell_fresh || !self.any {
            return;
        }
        self.breaks = 2;
    }

    /// `<br>` (or a newline in `<pre>`): ends the line, or leaves an empty
    /// one when the line is empty.
    fn hard_break(&mut self) {
        if self.cell_fresh || !self.any {
            return;
        }
        if self.line_text && self.breaks == 0 {
            self.breaks = 1;
        } else {
            self.breaks = 2;
        }
        self.space = false;
        self.hard_spaces = 0;
    }

    fn rule(&mut self) {
        self.cell_fresh = false;
        self.soft_break();
        self.word(RULE);
        if !self.stopped {
            self.last_rule = Some(self.line_no);
        }
        self.soft_break();
    }

    /// Text as it stands in the markup: character references decoded.
    fn text(&mut self, s: &str) {
        if self.head || self.template > 0 || self.stopped {
            return;
        }
        let mut rest = s;
        while let Some(a) = rest.find('&') {
            self.chars(&rest[..a]);
            match decode_reference(&rest.as_bytes()[a + 1..], false) {
                Some((d, used)) => {
                    self.chars(d.as_str());
                    rest = &rest[a + 1 + used..];
                }
                None => {
                    self.chars("&");
                    rest = &rest[a + 1..];
                }
            }
        }
        self.chars(rest);
    }

    /// Decoded text: white space collapses (kept in `<pre>`), a no-break
    /// space is a space that does not collapse, and control characters
    /// are dropped.
    fn chars(&mut self, s: &str) {
        if self.pre > 0 && self.pre_start && !s.is_empty() {
            self.pre_start = false;
            let s = s
                .strip_prefix("\r\n")
                .or_else(|| s.strip_prefix('\n'))
                .unwrap_or(s);
            return self.chars(s);
        }
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() && !self.stopped {
            let c = b[i];
            if is_space(c) {
                if self.pre == 0 {
                    self.space = true;
                } else if c == b'\n' {
                    self.hard_break();
                } else if c != b'\r' {
                    self.hard_spaces += 1;
                }
                i += 1;
                continue;
            }
            if c < 0x20 || c == 0x7F {
                i += 1;
                continue;
            }
            if is_nbsp(b, i) {
                self.hard_spaces += 1;
                i += 2;
                continue;
            }
            let start = i;
            while i < b.len() && !is_space(b[i]) && b[i] >= 0x20 && b[i] != 0x7F && !is_nbsp(b, i) {
                i += 1;
            }
            self.word(&s[start..i]);
        }
    }

    /// Appends `s` to `out` up to [`MAX_TEXT`]; past it, stops the
    /// conversion.
    fn put(&mut self, s: &str) {
        let room = MAX_TEXT.saturating_sub(self.out.len());
        if s.len() <= room {
            self.out.push_str(s);
        } else {
            self.out.push_str(&s[..s.floor_char_boundary(room)]);
            self.stopped = true;
        }
    }

    fn trim_line_end(&mut self) {
        let kept = self.out.trim_end_matches(' ').len();
        self.out.truncate(kept);
    }

    fn end_line(&mut self) {
        self.trim_line_end();
        self.put("\n");
        self.line_no += 1;
        self.line_len = 0;
        self.line_text = false;
    }

    fn prefix(&mut self, levels: usize) {
        for _ in 0..levels.min(MAX_QUOTE_PREFIX) {
            self.put("> ");
        }
    }

    /// Starts a line of text: owed breaks, the quote prefix, and the start
    /// of the quote if one is pending.
    fn start_line(&mut self) {
        if self.any {
            self.end_line();
            if self.breaks >= 2 {
                self.prefix(self.gap_depth.min(self.depth));
                self.end_line();
            }
        } else {
            self.line_no = 1;
        }
        self.breaks = 0;
        self.space = false;
        if self.pre == 0 {
            self.hard_spaces = 0;
        }
        if let Some(reason) = self.quote_pending.take() {
            self.quote = Some((self.line_no, reason));
        }
        self.prefix(self.depth);
        self.line_depth = self.depth;
        self.gap_depth = self.depth;
        self.line_text = true;
        self.any = true;
    }

    /// Breaks an over-long line, keeping its quote prefix.
    fn wrap(&mut self) {
        self.end_line();
        self.prefix(self.line_depth);
        self.line_text = true;
    }

    /// Writes a run of text without white space.
    fn word(&mut self, mut w: &str) {
        if w.is_empty() || self.stopped {
            return;
        }
        self.cell_fresh = false;
        self.last_rule = None;
        if self.quote_pending.is_some() && self.line_text && self.breaks == 0 {
            self.breaks = 1;
        }
        if !self.line_text || self.breaks > 0 {
            self.start_line();
        } else if self.space {
            if self.line_len >= MAX_LINE {
                self.wrap();
            } else {
                self.put(" ");
                self.line_len += 1;
            }
        }
        self.space = false;
        if self.hard_spaces > 0 {
            if self.line_len >= MAX_LINE {
                self.wrap();
            } else {
                let n = self.hard_spaces.min(MAX_LINE - self.line_len);
                for _ in 0..n {
                    self.put(" ");
                }
                self.line_len += n;
            }
            self.hard_spaces = 0;
        }
        while self.line_len + w.len() > HARD_LINE && !self.stopped {
            let cut = w.floor_char_boundary(HARD_LINE - self.line_len);
            let cut = if cut == 0 && self.line_len == 0 {
                w.chars().next().map_or(w.len(), char::len_utf8)
            } else {
                cut
            };
            self.put(&w[..cut]);
            w = &w[cut..];
            self.wrap();
        }
        self.put(w);
        self.line_len += w.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(html: &str) -> String {
        to_text(html).text
    }

    /// The text before the quote and the quote's first line.
    fn split(html: &str) -> (String, String, String) {
        let converted = to_text(html);
        let (line, reason) = converted.quote.expect("a quote marker");
        let lines: Vec<&str> = converted.text.lines().collect();
        (
            lines[..line - 1].join("\n"),
            lines[line - 1].to_owned(),
            reason,
        )
    }

    #[test]
    fn block_elements_end_lines() {
        for block in [
            "div", "li", "tr", "table", "ul", "ol", "section", "article", "header", "footer",
            "address", "dd", "dt", "dl", "nav", "aside", "main", "figure", "center", "form",
        ] {
            let html = format!("<{block}>one</{block}><{block}>two</{block}>three");
            assert_eq!(text(&html), "one\ntwo\nthree", "{block}");
        }
        for para in ["p", "h1", "h2", "h3", "h4", "h5", "h6", "pre"] {
            let html = format!("<{para}>one</{para}><{para}>two</{para}>three");
            assert_eq!(text(&html), "one\n\ntwo\n\nthree", "{para}");
        }
        assert_eq!(
            text("one<br>two<br/>three</br>four"),
            "one\ntwo\nthree\nfour"
        );
        assert_eq!(text("<ul><li>one<li>two</ul>three"), "one\ntwo\nthree");
    }

    #[test]
    fn white_space_collapses_like_a_browser() {
        assert_eq!(text("  one \n\t two  \r\n three "), "one two three");
        assert_eq!(text("<b>one</b> <i>two</i>"), "one two");
        assert_eq!(text("one<span>two</span>"), "onetwo");
        assert_eq!(text("<div>  one  </div>  <div>  two  </div>"), "one\ntwo");
        // A no-break space is a space that does not collapse, and none
        // start or end a line.
        assert_eq!(text("one&nbsp;&nbsp;two"), "one  two");
        assert_eq!(
            text("<p>&nbsp;one&nbsp;</p><p>&nbsp;</p><p>two</p>"),
            "one\n\ntwo"
        );
        assert_eq!(text("one\u{a0}two"), "one two");
        // Control characters are not text.
        assert_eq!(text("one\u{0}\u{7}two"), "onetwo");
    }

    #[test]
    fn pre_keeps_white_space() {
        assert_eq!(
            text("<pre>\n  one  two\n    three\n\n\n\nfour  </pre>after"),
            "  one  two\n    three\n\nfour\n\nafter"
        );
        assert_eq!(text("<pre>a\tb</pre>"), "a b");
    }

    #[test]
    fn no_blank_line_floods() {
        assert_eq!(
            text("<br><br><p></p><div></div>one<br><br><br><br>two<p></p><p></p><br><br><br>"),
            "one\n\ntwo"
        );
        // Gmail's empty line and a trailing <br> in a block.
        assert_eq!(
            text("<div>one</div><div><br></div><div>two<br></div><div>three</div>"),
            "one\n\ntwo\nthree"
        );
        let converted = text(&"<p>x</p><br>\n<div></div>".repeat(1000));
        assert!(!converted.contains("\n\n\n"));
        assert!(!converted.starts_with('\n') && !converted.ends_with('\n'));
    }

    #[test]
    fn table_rows_are_lines_of_cells() {
        assert_eq!(
            text(
                "<table><tr><td>username:</td><td>bob</td></tr><tr><th>quota:</th><td>20 GB</td></tr></table>"
            ),
            "username: bob\nquota: 20 GB"
        );
        // Blocks at a cell's start and end do not end the row's line.
        assert_eq!(
            text(
                "<table><tr><td><p class=MsoNormal>username:<o:p></o:p></p></td><td><div><p>bob</p></div></td></tr></table>"
            ),
            "username: bob"
        );
        // End tags left out, as HTML allows.
        assert_eq!(
            text("<table><tr><td>a<td>b<tr><td>c<td>d</table>e"),
            "a b\nc d\ne"
        );
        // Empty cells add nothing; a layout table keeps its lines.
        assert_eq!(
            text("<table><tr><td></td><td>one<br>two</td><td></td></tr></table>"),
            "one\ntwo"
        );
        assert_eq!(
            text("before<table><tr><td>a</td></tr></table>after"),
            "before\na\nafter"
        );
    }

    #[test]
    fn blockquotes_are_prefixed_per_level() {
        assert_eq!(
            text(
                "<p>reply</p><blockquote><p>old</p><blockquote>older<br>still</blockquote></blockquote><p>after</p>"
            ),
            "reply\n\n> old\n>\n> > older\n> > still\n\nafter"
        );
        let deep = format!("{}deep", "<blockquote>".repeat(20));
        assert_eq!(
            text(&deep),
            format!("{}deep", "> ".repeat(MAX_QUOTE_PREFIX))
        );
        // Unbalanced end tags do not go below zero.
        assert_eq!(
            text("</blockquote></blockquote><blockquote>q</blockquote>"),
            "> q"
        );
    }

    #[test]
    fn rules_links_and_images() {
        assert_eq!(text("one<hr>two"), format!("one\n{RULE}\ntwo"));
        assert_eq!(RULE.len(), 32);
        assert!(RULE.chars().all(|c| c == '_'));
        assert_eq!(
            text(
                r#"see <a href="https://example.com/x">the page</a>, <img src="a.png" alt="a &amp; b"> <img src="b.png"> <IMG SRC=c ALT=c>"#
            ),
            "see the page, a & b c"
        );
    }

    #[test]
    fn character_references_are_decoded() {
        for (html, expected) in [
            ("&amp; &lt;b&gt; &quot;q&quot; &apos;", "& <b> \"q\" '"),
            ("&#39;&#x41;&#X42;&#67", "'ABC"),
            ("caf&eacute; &Eacute;T&Eacute;", "café ÉTÉ"),
            ("&copy 2026 &notit; &amp", "© 2026 ¬it; &"),
            ("&unknown; & &; &#; &#x;", "&unknown; & &; &#; &#x;"),
            (
                "&#128;&#0;&#xD800;&#x110000;&#99999999999;",
                "€\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}",
            ),
            ("&acE;", "\u{223E}\u{333}"),
            (
                "&CounterClockwiseContourIntegral;&frac34x",
                "\u{2233}\u{be}x",
            ),
            ("a&#32;&#10;&Tab;b", "a b"),
        ] {
            assert_eq!(text(html), expected, "{html}");
        }
        // In attributes a legacy name before `=` or a letter stays as is.
        assert_eq!(
            text(r#"<img alt="&copy=1 &copyx &copy; &copy">"#),
            "&copy=1 &copyx © ©"
        );
    }

    #[test]
    fn comments_head_scripts_styles_and_titles_are_dropped() {
        let html = r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>The title</title>
            <style type="text/css"><!-- p { margin: 0 } </style> --></style>
            <script>if (a < b && c > d) { x("</div>") }</script></head>
            <body><!-- a comment --><!--[if gte mso 9]><xml><o:shapedefaults/></xml><![endif]-->
            <p>kept</p><script type="text/javascript">document.write("no")</script>
            <?php echo "no" ?><!---->two<!-->three<!--->four<template><p>hidden</p></template>
            <style>.x{}</STYLE >five</body></html>"#;
        assert_eq!(text(html), "kept\n\ntwothreefour five");
        // Text in <head> is dropped until an element of the body starts.
        assert_eq!(
            text("<head>junk<link rel=x></head><body>body</body>"),
            "body"
        );
        assert_eq!(
            text("<head><title>t</title><div>no body tag</div>"),
            "no body tag"
        );
        // Raw text that never ends runs to the end.
        assert_eq!(text("before<script>x</scriptx>never"), "before");
        assert_eq!(text("before<!-- never closed <p>x</p>"), "before");
        // A textarea's text is kept, markup in it is text.
        assert_eq!(text("<textarea>a <b> &amp;</textarea>"), "a <b> &");
    }

    #[test]
    fn unknown_tags_keep_their_text() {
        assert_eq!(
            text("<custom-el>one</custom-el> <o:p>two</o:p> <x y=\"z\">three"),
            "one two three"
        );
        // What is not a tag is text.
        assert_eq!(text("a < b, c <3, d</ e> f</>g"), "a < b, c <3, d fg");
        // A tag cut off by the end of the input is dropped.
        assert_eq!(text("one <div class=\"x"), "one");
        // Quoted attribute values may hold `>`.
        assert_eq!(text(r#"<div title="a > b">one</div>"#), "one");
    }

    #[test]
    fn long_lines_are_broken() {
        let words = "word ".repeat(3000);
        let converted = text(&words);
        assert!(converted.lines().count() > 1);
        for line in converted.lines() {
            assert!(line.len() <= MAX_LINE + "word".len() + 1, "{}", line.len());
            assert!(line.starts_with("word") && line.ends_with("word"));
        }
        assert_eq!(converted.split_whitespace().count(), 3000);
        let one_word = "é".repeat(10_000);
        let converted = text(&format!("<blockquote>{one_word}</blockquote>"));
        for line in converted.lines() {
            assert!(line.len() <= HARD_LINE + 2 && line.starts_with("> "));
        }
        assert_eq!(converted.replace("> ", "").replace('\n', ""), one_word);
    }

    #[test]
    fn output_stops_at_max_text() {
        let converted = to_text(&"<p>twelve bytes</p>".repeat(MAX_TEXT / 10));
        assert!(converted.truncated);
        assert!(converted.text.len() <= MAX_TEXT);
        assert!(converted.text.len() > MAX_TEXT - 20);
        let small = to_text("<p>twelve bytes</p>");
        assert!(!small.truncated);
    }

    #[test]
    fn gmail_reply() {
        let html = r#"<div dir="ltr">Please reset my password.<div><br></div><div>Thanks,</div><div>Ann</div></div><br><div class="gmail_quote gmail_quote_container"><div dir="ltr" class="gmail_attr">On Mon, 5 Oct 2026 at 18:42, Bob &lt;<a href="mailto:bob@example.com">bob@example.com</a>&gt; wrote:<br></div><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex"><div dir="ltr">delete user: bob</div></blockquote></div>"#;
        let (before, first, reason) = split(html);
        assert_eq!(before, "Please reset my password.\n\nThanks,\nAnn\n");
        assert_eq!(
            first,
            "On Mon, 5 Oct 2026 at 18:42, Bob <bob@example.com> wrote:"
        );
        assert_eq!(reason, "HTML quote container (div.gmail_quote)");
        assert!(to_text(html).text.ends_with("\n> delete user: bob"));
        // The older wrapper, and the container class alone.
        let (before, _, reason) = split(
            r#"<div dir="ltr">ok</div><div class="gmail_extra"><br><div class="gmail_quote">On Mon, Bob wrote:<br><blockquote class="gmail_quote">x</blockquote></div></div>"#,
        );
        assert_eq!(
            (before.trim(), reason.as_str()),
            ("ok", "HTML quote container (div.gmail_quote)")
        );
        let (_, _, reason) = split(r#"ok<div class="gmail_quote_container">x</div>"#);
        assert_eq!(reason, "HTML quote container (div.gmail_quote_container)");
    }

    #[test]
    fn gmail_forward_without_a_blockquote() {
        let html = r#"<div dir="ltr">please handle this<br><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">---------- Forwarded message ---------<br>From: <strong class="gmail_sendername" dir="auto">Eve</strong> <span dir="auto">&lt;<a href="mailto:eve@example.net">eve@example.net</a>&gt;</span><br>Date: Mon, 5 Oct 2026 at 10:00<br>Subject: quota<br>To: &lt;<a href="mailto:helpdesk@example.com">helpdesk@example.com</a>&gt;<br></div><br><br><div dir="ltr">increase the quota of user: eve by 20 GB</div></div></div>"#;
        let (before, first, reason) = split(html);
        assert_eq!(before, "please handle this\n");
        assert_eq!(first, "---------- Forwarded message ---------");
        assert_eq!(reason, "HTML quote container (div.gmail_quote)");
    }

    #[test]
    fn thunderbird_reply_and_forward() {
        let html = r#"<html><head><meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head><body><p>Yes, please go ahead.</p><div class="moz-cite-prefix">On 05.10.26 18:42, Bob wrote:<br></div><blockquote type="cite" cite="mid:abc@example.com"><p>delete user: bob</p></blockquote><br></body></html>"#;
        let (before, first, reason) = split(html);
        assert_eq!(before, "Yes, please go ahead.\n");
        assert_eq!(first, "On 05.10.26 18:42, Bob wrote:");
        assert_eq!(reason, "HTML quote container (div.moz-cite-prefix)");
        let forward = r#"<p>FYI</p><div class="moz-forward-container"><br><br>-------- Forwarded Message --------<table class="moz-email-headers-table" border="0" cellspacing="0" cellpadding="0"><tbody><tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">Subject: </th><td>quota</td></tr></tbody></table><br><p>increase the quota of user: eve</p></div>"#;
        let (before, first, reason) = split(forward);
        assert_eq!(
            (before.as_str(), first.as_str()),
            ("FYI\n", "-------- Forwarded Message --------")
        );
        assert_eq!(reason, "HTML quote container (div.moz-forward-container)");
        assert!(to_text(forward).text.contains("\nSubject: quota\n"));
    }

    #[test]
    fn outlook_web_and_new_outlook() {
        let html = r##"<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"><style type="text/css" style="display:none;"> P {margin-top:0;margin-bottom:0;} </style></head><body dir="ltr"><div class="elementToProof" style="font-family: Aptos, Aptos_EmbeddedFont, Calibri, Helvetica, sans-serif; font-size: 12pt; color: rgb(0, 0, 0);">please just show me my current quota</div><div id="appendonsend"></div><hr style="display:inline-block;width:98%" tabindex="-1"><div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif" style="font-size:11pt" color="#000000"><b>From:</b> Bob &lt;bob@example.com&gt;<br><b>Sent:</b> Monday, October 5, 2026 6:42 PM<br><b>To:</b> Helpdesk &lt;helpdesk@example.com&gt;<br><b>Subject:</b> quota</font><div>&nbsp;</div></div><div><div dir="ltr">increase the quota of user: bob by 20 GB</div></div></body></html>"##;
        let (before, first, reason) = split(html);
        assert_eq!(before, "please just show me my current quota");
        assert_eq!(first, RULE);
        assert_eq!(reason, "HTML quote container (div#appendonsend)");
        // Without appendonsend (older Outlook on the web): the rule right
        // before the header block goes with it.
        let html = html.replace(r#"<div id="appendonsend"></div>"#, "");
        let (before, first, reason) = split(&html);
        assert_eq!(
            (before.as_str(), first.as_str()),
            ("please just show me my current quota", RULE)
        );
        assert_eq!(reason, "HTML quote container (div#divRplyFwdMsg)");
        // A rule with text after it is the reply's own.
        let (before, first, _) = split(r#"a<hr>b<div id="divRplyFwdMsg"><b>From:</b> x</div>"#);
        assert_eq!(
            (before.as_str(), first.as_str()),
            (format!("a\n{RULE}\nb").as_str(), "From: x")
        );
        // Outlook for iOS and Mac wrap the rule and the header block.
        let (before, first, reason) = split(
            r#"<div dir="ltr">Antworttext</div><div id="ms-outlook-mobile-signature" dir="ltr"></div><div id="mail-editor-reference-message-container"><hr tabindex="-1" style="display:inline-block; width:98%"><div id="divRplyFwdMsg" dir="ltr"><b>Von:</b> Vorname Nachname<br><b>Gesendet:</b> Freitag, 14. August 2026</div><div>zitierter Text</div></div>"#,
        );
        assert_eq!((before.as_str(), first.as_str()), ("Antworttext", RULE));
        assert_eq!(
            reason,
            "HTML quote container (div#mail-editor-reference-message-container)"
        );
    }

    #[test]
    fn outlook_desktop_message_header() {
        let html = r#"<div><font face="Arial" size="2">Done, thanks.</font></div><br><div class="OutlookMessageHeader" lang="en-us" dir="ltr" align="left"><hr tabindex="-1"><font face="Tahoma" size="2"><b>From:</b> Bob [mailto:bob@example.com] <br><b>Sent:</b> Monday, October 05, 2026 6:42 PM<br><b>To:</b> Helpdesk<br><b>Subject:</b> quota<br></font><br></div><div></div><p>increase the quota of user: bob</p>"#;
        let (before, first, reason) = split(html);
        assert_eq!((before.as_str(), first.as_str()), ("Done, thanks.\n", RULE));
        assert_eq!(reason, "HTML quote container (div.OutlookMessageHeader)");
    }

    #[test]
    fn yahoo_reply() {
        let html = r#"<html><head></head><body><div class="ydp6a1b2c3dyahoo-style-wrap" style="font-family:Helvetica Neue, Helvetica, Arial, sans-serif;font-size:13px;"><div dir="ltr" data-setdir="false">Not this one, thanks.</div></div><div id="ydp4f2e9a1cyahoo_quoted_1234567890" class="ydp4f2e9a1cyahoo_quoted"><div style="font-family:'Helvetica Neue', Helvetica, Arial, sans-serif;font-size:13px;color:#26282a;"><div>On Monday, October 5, 2026, 06:42:00 PM GMT+2, Bob &lt;bob@example.com&gt; wrote:</div><div><br></div><div><br></div><div><div dir="ltr">delete user: bob</div></div></div></div></body></html>"#;
        let (before, first, reason) = split(html);
        assert_eq!(before, "Not this one, thanks.");
        assert!(first.starts_with("On Monday, October 5, 2026"));
        assert_eq!(reason, "HTML quote container (div.yahoo_quoted)");
    }

    #[test]
    fn protonmail_reply() {
        let html = r#"<div style="font-family: Arial, sans-serif; font-size: 14px;">Sure.</div><div class="protonmail_signature_block" style="font-family: Arial, sans-serif; font-size: 14px;"><div class="protonmail_signature_block-user protonmail_signature_block-empty"></div><div class="protonmail_signature_block-proton">Sent with <a href="https://proton.me/" target="_blank">Proton Mail</a> secure email.</div></div><div class="protonmail_quote">On Monday, October 5th, 2026 at 18:42, Bob &lt;bob@example.com&gt; wrote:<br><blockquote class="protonmail_quote" type="cite"><div>delete user: bob</div></blockquote><br></div>"#;
        let (before, first, reason) = split(html);
        assert_eq!(before, "Sure.\nSent with Proton Mail secure email.");
        assert!(first.starts_with("On Monday, October 5th"));
        assert_eq!(reason, "HTML quote container (div.protonmail_quote)");
    }

    #[test]
    fn zimbra_reply() {
        let html = r#"<html><body><div style="font-family: arial, helvetica, sans-serif; font-size: 12pt; color: #000000"><div>Done.</div><div><br></div><hr id="zwchr" data-marker="__DIVIDER__"><div data-marker="__HEADERS__"><b>From: </b>"Bob" &lt;bob@example.com&gt;<br><b>To: </b>"helpdesk" &lt;helpdesk@example.com&gt;<br><b>Sent: </b>Monday, October 5, 2026 6:42:00 PM<br><b>Subject: </b>quota<br></div><br><div data-marker="__QUOTED_TEXT__"><div>delete user: bob</div></div></div></body></html>"#;
        let (before, first, reason) = split(html);
        assert_eq!((before.as_str(), first.as_str()), ("Done.\n", RULE));
        assert_eq!(reason, "HTML quote container (hr#zwchr)");
    }

    #[test]
    fn apple_mail_cite_is_quoted_not_cut() {
        // iOS: the attribution in its own cite blockquote, then the quote.
        let ios = r#"<html><head><meta http-equiv="content-type" content="text/html; charset=utf-8"></head><body dir="auto">Please do it.<br id="lineBreakAtBeginningOfSignature"><div dir="ltr">Sent from my iPhone</div><div dir="ltr"><br><blockquote type="cite">On 5. Oct 2026, at 18:42, Bob &lt;bob@example.com&gt; wrote:<br><br></blockquote></div><blockquote type="cite"><div dir="ltr">delete user: bob</div></blockquote></body></html>"#;
        let converted = to_text(ios);
        assert_eq!(converted.quote, None);
        assert_eq!(
            converted.text,
            "Please do it.\nSent from my iPhone\n\n> On 5. Oct 2026, at 18:42, Bob <bob@example.com> wrote:\n\n> delete user: bob"
        );
        // macOS, bottom-posted: the text after the quote stays.
        let mac = r#"<html><body style="overflow-wrap: break-word;"><div>Above.</div><div><br><blockquote type="cite"><div>On 5 Oct 2026, at 18:42, Bob &lt;bob@example.com&gt; wrote:</div><br class="Apple-interchange-newline"><div><div>delete user: bob</div></div></blockquote></div><br><div>And below.</div></body></html>"#;
        assert_eq!(
            text(mac),
            "Above.\n\n> On 5 Oct 2026, at 18:42, Bob <bob@example.com> wrote:\n>\n> delete user: bob\n\nAnd below."
        );
    }

    #[test]
    fn markers_match_whole_class_tokens_and_ids() {
        for html in [
            r#"a<div class="not_gmail_quote">b</div>"#,
            r#"a<div class="gmail_quote_x">b</div>"#,
            r#"a<div class="gmail_quotes">b</div>"#,
            r#"a<div class="xgmail_quote">b</div>"#,
            r#"a<div id="divRplyFwdMsgX">b</div>"#,
            r#"a<div id="x-appendonsend">b</div>"#,
            r#"a<div class="yahoo_quoted_x">b</div>"#,
            r#"a<div class="ydp1yahoo-style-wrap">b</div>"#,
            r#"a<div title="gmail_quote" data-class="gmail_quote">b</div>"#,
            r#"a<span class="gmail_quote">b</span>"#,
            r#"a<hr id="zwchr2">b"#,
            r#"a<div>class="gmail_quote"</div>"#,
            r#"a<!-- <div class="gmail_quote"> -->b"#,
            r#"a<div class=moz-cite-prefixes>b</div>"#,
        ] {
            assert_eq!(to_text(html).quote, None, "{html}");
        }
        for (html, reason) in [
            (
                r#"a<div class="x GMAIL_QUOTE y">b</div>"#,
                "div.gmail_quote",
            ),
            (
                "a<div class=\"x\tgmail_quote\n\">b</div>",
                "div.gmail_quote",
            ),
            (r#"a<DIV CLASS=gmail_quote>b</DIV>"#, "div.gmail_quote"),
            // (A blockquote's margin is a blank line: line 3.)
            (
                r#"a<blockquote class="gmail_quote">b</blockquote>"#,
                "blockquote.gmail_quote",
            ),
            (r#"a<div id="DIVRPLYFWDMSG">b</div>"#, "div#divRplyFwdMsg"),
            (r#"a<div class="yahoo_quoted">b</div>"#, "div.yahoo_quoted"),
            (
                r#"a<div class="ydpAbC12yahoo_quoted">b</div>"#,
                "div.yahoo_quoted",
            ),
            (
                r#"a<div class="gmail_quote" class="other">b</div>"#,
                "div.gmail_quote",
            ),
            (
                r#"a<div class="g&#109;ail_quote">b</div>"#,
                "div.gmail_quote",
            ),
        ] {
            let line = if html.contains("<blockquote") { 3 } else { 2 };
            let quote = to_text(html).quote;
            assert_eq!(
                quote,
                Some((line, format!("HTML quote container ({reason})"))),
                "{html}"
            );
        }
        // The first marker counts.
        let (_, _, reason) =
            split(r#"a<div class="moz-cite-prefix">x</div><div class="gmail_quote">y</div>"#);
        assert_eq!(reason, "HTML quote container (div.moz-cite-prefix)");
        // The first of an attribute's copies counts, as in HTML.
        assert_eq!(
            to_text(r#"a<div class="x" class="gmail_quote">b</div>"#).quote,
            None
        );
    }

    #[test]
    fn the_quote_never_shares_a_line_with_the_reply() {
        for html in [
            r#"reply<div class="gmail_quote">old</div>"#,
            r#"reply <span><div class="gmail_quote"><span>old</span></div></span>"#,
            r#"<table><tr><td>reply</td><td><div class="gmail_quote">old</div></td></tr></table>"#,
            r#"<table><tr><td>reply<div class="gmail_quote"></div></td><td>old</td></tr></table>"#,
            r#"<p>reply</p><div id="appendonsend"></div>old"#,
            r#"<pre>reply<div class="gmail_quote">old</div></pre>"#,
            r#"<blockquote>reply<div class="gmail_quote">old</div></blockquote>"#,
        ] {
            let (before, first, _) = split(html);
            assert!(before.trim_end().ends_with("reply"), "{html}: {before:?}");
            assert!(first.ends_with("old"), "{html}: {first:?}");
        }
        // An empty container at the end is no quote.
        assert_eq!(
            to_text(r#"reply<div class="gmail_quote"></div>"#).quote,
            None
        );
        // A container at the very start is line 1.
        assert_eq!(
            to_text(r#"<div class="gmail_quote">old</div>"#).quote,
            Some((1, "HTML quote container (div.gmail_quote)".to_owned()))
        );
    }

    // Poison classes: each converts, in one pass, to text of the right
    // shape (the time is measured by hand, see the issue).

    #[test]
    fn poison_wide_table_row() {
        let html = format!("<table><tr>{}</tr></table>", "<td>x</td>".repeat(100_000));
        assert!(html.len() > 1_000_000);
        let converted = to_text(&html);
        assert!(!converted.truncated);
        let lines: Vec<&str> = converted.text.lines().collect();
        // Each line is broken at the first space after MAX_LINE bytes.
        assert_eq!(lines.len(), 100_000usize.div_ceil(MAX_LINE / 2 + 1));
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE + 1));
        assert_eq!(converted.text.split_whitespace().count(), 100_000);
    }

    #[test]
    fn poison_deep_divs() {
        let n = 400_000;
        let html = format!("{}deep{}after", "<div>".repeat(n), "</div>".repeat(n));
        assert_eq!(text(&html), "deep\nafter");
        // Never closed.
        assert_eq!(
            text(&format!("{}deep", "<div><span><table><td>".repeat(n / 4))),
            "deep"
        );
    }

    #[test]
    fn poison_deep_blockquotes() {
        let n = 400_000;
        let cap = "> ".repeat(MAX_QUOTE_PREFIX);
        let html = format!(
            "top{}deep{}bottom",
            "<blockquote>".repeat(n),
            "</blockquote>".repeat(n)
        );
        assert_eq!(text(&html), format!("top\n\n{cap}deep\n\nbottom"));
        // Text at every level: more lines than MAX_TEXT holds, each with
        // the prefix capped.
        let converted = to_text(&"<blockquote>one".repeat(n));
        assert!(converted.truncated);
        let lines: Vec<&str> = converted.text.lines().collect();
        assert_eq!(lines[..4], ["> one", ">", "> > one", "> >"]);
        let full = lines.iter().filter(|l| l.starts_with(&cap)).count();
        // Per level: `{cap}one` and a blank `> > …` line, newlines included.
        assert!(full > MAX_TEXT / (2 * cap.len() + 4) - 10);
        assert!(lines.iter().all(|l| l.len() <= cap.len() + "one".len()));
    }

    #[test]
    fn poison_text_without_spaces() {
        let html = format!("<p>{}</p>", "a".repeat(5 << 20));
        let converted = to_text(&html);
        assert!(converted.truncated);
        assert_eq!(converted.text.len(), MAX_TEXT);
        let lines: Vec<&str> = converted.text.lines().collect();
        assert!(
            lines
                .iter()
                .all(|l| l.len() == HARD_LINE || l.len() < HARD_LINE)
        );
        assert_eq!(lines.len(), MAX_TEXT / (HARD_LINE + 1) + 1);
    }

    #[test]
    fn poison_many_line_breaks() {
        let html = format!(
            "a{}b{}",
            "<br>".repeat(1_000_000),
            "<br>\n".repeat(1_000_000)
        );
        assert_eq!(text(&html), "a\n\nb");
        let html = format!("<pre>a{}b</pre>", "\n".repeat(1_000_000));
        assert_eq!(text(&html), "a\n\nb");
    }

    #[test]
    fn poison_tokenizer_classes() {
        // One tag with 200k distinct attributes (html5ever's tokenizer is
        // quadratic here).
        let attrs: String = (0..200_000).map(|i| format!(" a{i}=\"{i}\"")).collect();
        assert_eq!(text(&format!("<div{attrs}>after</div>")), "after");
        // A million comments, references and raw-text false ends.
        assert_eq!(text(&format!("x{}y", "<!---->".repeat(1_000_000))), "xy");
        assert_eq!(text(&format!("x{}y", "<!-- - -- -!>".repeat(200_000))), "x");
        let refs = text(&"&amp;&#x41;&notanentity".repeat(200_000));
        assert!(refs.len() <= MAX_TEXT && refs.len() > MAX_TEXT - 4);
        assert!(refs.starts_with("&A¬anentity&A"));
        assert_eq!(
            text(&format!("<script>{}</script>z", "</scrip".repeat(500_000))),
            "z"
        );
        assert_eq!(
            text(&"<".repeat(200_000)).replace('\n', ""),
            "<".repeat(200_000)
        );
        assert_eq!(text(&"</x".repeat(1_000_000)), "");
    }
}
