//! Quoted history, forwarded messages and signatures: what is cut from a
//! body's text before the phrasebook reads it, and why. An old message
//! quoted in a reply must never trigger an action.

/// One cut: where in the body text it starts, how many lines it took, and
/// which rule made it (as `parse --explain` prints it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cut {
    /// First line cut, counted from 1 in the body text before any cut.
    pub line: usize,
    /// How many lines were cut.
    pub lines: usize,
    /// What was cut and why, e.g. "Outlook header block (Von:/Gesendet:)".
    pub reason: String,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
pub struct Stripped {
    pub text: String,
    pub cuts: Vec<Cut>,
}

/// Cuts quoted lines, attributions, signatures and forwarded content.
pub fn strip(text: &str) -> Stripped {
    let kept = strip_quotes_and_signature(text);
    let cuts = if kept == text.trim_end() {
        Vec::new()
    } else {
        // Placeholder until each rule records its own cut.
        vec![Cut {
            line: 1,
            lines: 0,
            reason: "quoted text or signature".to_owned(),
        }]
    };
    Stripped { text: kept, cuts }
}

/// "On <date>, <name> wrote:" and its translations, as the line above a
/// quoted block.
fn is_attribution(line: &str) -> bool {
    const VERBS: &[&str] = &[
        "wrote",
        "writes",
        "schrieb",
        "a écrit",
        "escribió",
        "ha scritto",
        "schreef",
        "skrev",
        "kirjoitti",
        "napisał",
        "escreveu",
        "написал",
        "написала",
        "yazdı",
        "napsal",
    ];
    let Some(before) = line.trim_end().strip_suffix(':') else {
        return false;
    };
    let before = before.trim_end().to_lowercase();
    VERBS.iter().any(|verb| before.ends_with(verb))
}

/// Separators that start quoted or forwarded content: Outlook's
/// "-----Original Message-----", Gmail's "---------- Forwarded message".
fn is_forward_separator(line: &str) -> bool {
    const NAMES: &[&str] = &[
        "original message",
        "forwarded message",
        "ursprüngliche nachricht",
        "message d'origine",
        "mensaje original",
        "messaggio originale",
        "oorspronkelijk bericht",
        "doorgestuurd bericht",
        "weitergeleitete nachricht",
    ];
    let line = line.trim();
    let Some(inner) = line.strip_prefix("--") else {
        return false;
    };
    let inner = inner.trim_matches('-').trim().to_lowercase();
    NAMES.contains(&inner.as_str())
}

/// Drops quoted lines (`>`), the attribution line above them, everything
/// after a signature separator (`-- `), and everything after a forwarded or
/// original-message separator.
fn strip_quotes_and_signature(text: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut tail = Tail::default();
    let mut lines = text.lines().peekable();
    while let Some(raw) = lines.next() {
        let line = raw.trim_end_matches('\r');
        if line == "-- " || line == "--" || is_forward_separator(line) {
            break;
        }
        // Outlook puts a rule of underscores above the quoted headers.
        if line.len() >= 10
            && line.trim().chars().all(|c| c == '_')
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("From:"))
        {
            break;
        }
        if line.trim_start().starts_with('>') {
            drop_attribution(&mut kept, &mut tail);
            continue;
        }
        if !line.trim().is_empty() {
            tail.last_text = Some(kept.len());
        }
        kept.push(line);
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    kept.join("\n")
}

/// What `drop_attribution` knows about the kept lines, so that each quote
/// line costs the same however many blank lines or how long a line came
/// before it (rescanning them for every `>` line was quadratic).
#[derive(Debug, Default)]
struct Tail {
    /// The last kept line that is not blank.
    last_text: Option<usize>,
    /// A line already found not to be an attribution.
    not_attribution: Option<usize>,
}

/// Removes the "On … wrote:" line (possibly wrapped over two lines) that
/// sits above a quoted block, skipping blank lines between them.
fn drop_attribution(kept: &mut Vec<&str>, tail: &mut Tail) {
    let Some(last) = tail.last_text else {
        return;
    };
    if tail.not_attribution == Some(last) {
        return;
    }
    let Some(line) = kept.get(last) else { return };
    if !is_attribution(line) {
        tail.not_attribution = Some(last);
        return;
    }
    let wrapped_start = last
        .checked_sub(1)
        .and_then(|i| kept.get(i).map(|prev| (i, prev)))
        .filter(|(_, prev)| starts_attribution(prev) && !starts_attribution(line));
    let cut = wrapped_start.map_or(last, |(i, _)| i);
    kept.truncate(cut);
    // The blank lines this passes over are cut by the next truncation, if
    // there is one, so each is passed over once.
    tail.last_text = kept.iter().rposition(|l| !l.trim().is_empty());
    tail.not_attribution = None;
}

fn starts_attribution(line: &str) -> bool {
    let first = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_lowercase();
    ["on", "am", "le", "el", "il", "op", "den", "em", "dnia", "в"].contains(&first.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quote stripping as it was before it kept track of its tail:
    /// the linear version must decide every input the same way.
    fn strip_quotes_reference(text: &str) -> String {
        fn drop(kept: &mut Vec<&str>) {
            let Some(last) = kept.iter().rposition(|l| !l.trim().is_empty()) else {
                return;
            };
            let line = kept[last];
            if !is_attribution(line) {
                return;
            }
            let wrapped_start = last
                .checked_sub(1)
                .map(|i| (i, kept[i]))
                .filter(|(_, prev)| starts_attribution(prev) && !starts_attribution(line));
            kept.truncate(wrapped_start.map_or(last, |(i, _)| i));
        }
        let mut kept: Vec<&str> = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(raw) = lines.next() {
            let line = raw.trim_end_matches('\r');
            if line == "-- " || line == "--" || is_forward_separator(line) {
                break;
            }
            if line.len() >= 10
                && line.trim().chars().all(|c| c == '_')
                && lines
                    .peek()
                    .is_some_and(|n| n.trim_start().starts_with("From:"))
            {
                break;
            }
            if line.trim_start().starts_with('>') {
                drop(&mut kept);
                continue;
            }
            kept.push(line);
        }
        while kept.last().is_some_and(|l| l.trim().is_empty()) {
            kept.pop();
        }
        kept.join("\n")
    }

    #[test]
    fn quote_stripping_decides_like_before_on_every_mix_of_lines() {
        // Every sequence of up to five of these lines, as LF and CRLF.
        let pieces = [
            "new text",
            "",
            "> quoted",
            "On Mon, 1 Jan 2024 at 10:00, Bob <bob@example.com> wrote:",
            "On Mon, 1 Jan 2024 at 10:00, Bob",
            "<bob@example.com> wrote:",
            "Am 01.01.2024 schrieb Bob:",
            "Le lun. 1 janv. 2024, Bob a écrit :",
        ];
        let mut checked = 0;
        let mut stack = vec![Vec::<usize>::new()];
        while let Some(seq) = stack.pop() {
            let lines: Vec<&str> = seq.iter().map(|&i| pieces[i]).collect();
            for eol in ["\n", "\r\n"] {
                let text = lines.join(eol);
                assert_eq!(
                    strip_quotes_and_signature(&text),
                    strip_quotes_reference(&text),
                    "{text:?}"
                );
                checked += 1;
            }
            if seq.len() < 5 {
                for i in 0..pieces.len() {
                    let mut next = seq.clone();
                    next.push(i);
                    stack.push(next);
                }
            }
        }
        assert!(checked > 50_000, "{checked}");
    }

    #[test]
    fn quoted_reply_and_attribution_are_dropped() {
        let body = "Thanks!\n\nOn Mon, 1 Jan 2024 at 10:00, Bob <bob@example.com> wrote:\n> delete user: bob\n> bye\n";
        assert_eq!(strip_quotes_and_signature(body), "Thanks!");
    }

    #[test]
    fn wrapped_attribution_is_dropped() {
        let body = "Yes please\nOn Mon, 1 Jan 2024 at 10:00 Bob Example <\nbob@example.com> wrote:\n\n>  delete user: bob";
        assert_eq!(strip_quotes_and_signature(body), "Yes please");
    }

    #[test]
    fn a_line_that_only_mentions_writing_is_kept_without_quotes() {
        let body = "Here is what I wrote:\nusername: john";
        assert_eq!(strip_quotes_and_signature(body), body);
    }

    #[test]
    fn signature_and_forwarded_content_are_dropped() {
        assert_eq!(
            strip_quotes_and_signature("quota by 5 gb\n-- \nAlice\ndelete user: x"),
            "quota by 5 gb"
        );
        assert_eq!(
            strip_quotes_and_signature(
                "fyi\n---------- Forwarded message ---------\nFrom: x\ndelete user: bob"
            ),
            "fyi"
        );
        assert_eq!(
            strip_quotes_and_signature("ok\r\n-----Original Message-----\r\ndelete user: bob"),
            "ok"
        );
        assert_eq!(
            strip_quotes_and_signature(
                "ok\n________________________________\nFrom: Bob\ndelete user: bob"
            ),
            "ok"
        );
    }
}
