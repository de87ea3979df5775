//! Text from a mail, made safe to print on an operator's terminal.
//!
//! A subject, an address, a body or a value may carry escape sequences
//! (`ESC [ 2J` clears the screen, OSC 52 writes the clipboard, the C1 byte
//! CSI does what `ESC [` does on many terminals), carriage returns and
//! backspaces that overwrite what was printed before them, and Unicode
//! format controls that reorder or hide text (the bidi overrides and
//! isolates, zero-width characters). `log`, `show` and `parse` print all
//! such text through `escape` (or `escape_lines`, `escape_json`).
//!
//! An allow-list: a character is printed as it is only if it is a letter,
//! a mark, a number, punctuation, a symbol or a space separator (Unicode
//! general categories L, M, N, P, S, Zs). Everything else — C0 controls,
//! DEL, C1 controls, format characters (Cf), line and paragraph separators,
//! private-use and unassigned code points — is shown as a visible escape:
//! `\t`, `\n`, `\r`, or `\u{1b}`. A backslash in the text passes as it is:
//! the escapes are for people to see, not to be decoded.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::LazyLock;

use regex::Regex;

/// One character outside the allow-list. `None` only if the pattern failed
/// to compile, which the tests rule out; then only printable ASCII passes.
static NOT_SHOWN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"[^\p{L}\p{M}\p{N}\p{P}\p{S}\p{Zs}]").ok());

fn shown(c: char) -> bool {
    match NOT_SHOWN.as_ref() {
        Some(pattern) => !pattern.is_match(c.encode_utf8(&mut [0; 4])),
        None => c == ' ' || c.is_ascii_graphic(),
    }
}

/// Replaces every character `keep` does not accept with what `write`
/// writes for it; borrows when there is none.
fn replace(
    text: &str,
    keep: impl Fn(char) -> bool,
    write: impl Fn(&mut String, char),
) -> Cow<'_, str> {
    let Some(first) = text.find(|c: char| !keep(c)) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(text.get(..first).unwrap_or_default());
    for c in text.get(first..).unwrap_or_default().chars() {
        if keep(c) {
            out.push(c);
        } else {
            write(&mut out, c);
        }
    }
    Cow::Owned(out)
}

/// `text` with everything outside the allow-list (line breaks included)
/// shown as an escape: for one value on one line.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    replace(text, shown, |out, c| match c {
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        c => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    })
}

/// `escape` for each line of a block of text (a run log, a reply body):
/// the line breaks stay, everything else is escaped.
pub(crate) fn escape_lines(text: &str) -> String {
    text.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

/// JSON text as serde_json writes it, with every character outside the
/// allow-list written as a JSON `\uXXXX` escape: the same JSON value, safe
/// on a terminal. serde_json escapes only what JSON requires (below U+0020,
/// `"` and `\`); DEL, C1 controls such as U+009B (CSI) and the bidi
/// controls it writes as they are. Outside its strings it writes only
/// printable ASCII and JSON white space, which pass.
pub(crate) fn escape_json(json: &str) -> Cow<'_, str> {
    replace(
        json,
        |c| shown(c) || matches!(c, ' ' | '\n' | '\t' | '\r'),
        |out, c| {
            let mut units = [0; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character a terminal acts on, or that hides or reorders
    /// text: C0, DEL, C1, the Unicode format controls and separators.
    fn controls() -> Vec<char> {
        let mut all: Vec<char> = (0u32..0x20)
            .chain(0x7f..0xa0)
            .filter_map(char::from_u32)
            .collect();
        all.extend([
            '\u{ad}',
            '\u{61c}',
            '\u{180e}',
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{200e}',
            '\u{200f}',
            '\u{2028}',
            '\u{2029}',
            '\u{202a}',
            '\u{202b}',
            '\u{202c}',
            '\u{202d}',
            '\u{202e}',
            '\u{2060}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{206f}',
            '\u{feff}',
            '\u{fff9}',
            '\u{e000}',
            '\u{e0001}',
            '\u{e0041}',
            '\u{10ffff}',
        ]);
        all
    }

    #[test]
    fn the_pattern_compiles() {
        assert!(NOT_SHOWN.is_some());
    }

    #[test]
    fn every_control_is_shown_as_an_escape() {
        for c in controls() {
            for text in [format!("{c}"), format!("a{c}b"), format!("ä{c}{c}ö")] {
                let shown = escape(&text);
                assert!(!shown.contains(c), "{:?} passed: {shown:?}", c);
                assert!(
                    shown
                        .chars()
                        .all(|s| s == ' ' || !s.is_control() && !controls().contains(&s)),
                    "{shown:?}"
                );
                assert!(shown.contains('\\'), "{shown:?}");
                let lines = escape_lines(&text);
                assert!(
                    lines.chars().all(|s| s == '\n' || !controls().contains(&s)),
                    "{lines:?}"
                );
            }
        }
        assert_eq!(escape("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(escape("a\r\nb\tc\u{8}"), "a\\r\\nb\\tc\\u{8}");
        assert_eq!(escape("\u{9b}31m\u{202e}"), "\\u{9b}31m\\u{202e}");
        assert_eq!(escape_lines("one\u{7}\ntwo\r"), "one\\u{7}\ntwo\\r");
    }

    #[test]
    fn printable_text_passes_untouched() {
        for text in [
            "Increase Storage Quota by 9.3 GB",
            "Grüße, Jürgen — «ça va?» 日本語 עברית العربية 🙂",
            "C:\\path\\u{1b} is only a backslash",
            "e\u{301} (a combining mark) and\u{a0}a no-break space and\u{3000}wide",
            "",
        ] {
            assert!(matches!(escape(text), Cow::Borrowed(_)), "{text:?}");
            assert_eq!(escape_lines(text), text);
            assert!(matches!(escape_json(text), Cow::Borrowed(_)), "{text:?}");
        }
    }

    #[test]
    fn json_keeps_its_value_and_loses_its_controls() {
        let strings: Vec<String> = controls()
            .into_iter()
            .map(|c| format!("x{c}y ü"))
            .chain(["plain".to_owned(), "\u{1f642}\u{200d}".to_owned()])
            .collect();
        let value = serde_json::json!({ "subject": strings, "n": 1, "nested": {"k\u{9b}": null} });
        for json in [
            value.to_string(),
            serde_json::to_string_pretty(&value).unwrap_or_default(),
        ] {
            let safe = escape_json(&json);
            assert!(
                safe.chars()
                    .all(|c| matches!(c, '\n' | ' ') || !controls().contains(&c)),
                "{safe}"
            );
            let back: serde_json::Value = serde_json::from_str(&safe).unwrap_or_default();
            assert_eq!(back, value);
        }
        assert_eq!(
            escape_json("\"\u{9b}\u{e0001}\""),
            "\"\\u009b\\udb40\\udc01\""
        );
    }
}
