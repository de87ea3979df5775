//! What a playbook hands back to the sender: each host's `helpdesk_report`
//! fact (a string, a list of lines or a mapping), made into lines of plain
//! text for the success reply.
//!
//! A playbook's output is as untrusted as a mail: it may echo a secret,
//! carry terminal escapes or bidirectional overrides, or be huge. So every
//! line has the request's secret values replaced (before it is cut, so
//! that no half of one survives a cut), every control or invisible
//! formatting character replaced by U+FFFD, and is cut at
//! [`MAX_LINE_CHARS`]; and all hosts' reports together stop at
//! [`MAX_LINES`] lines or [`MAX_BYTES`] bytes, with a line saying so.

use serde::Serialize;
use serde_json::Value;

use crate::decide::redact::Secrets;

/// At most this many lines of reports in one reply, all hosts together.
pub(crate) const MAX_LINES: usize = 200;
/// At most this many bytes of reports in one reply (16 KiB).
pub(crate) const MAX_BYTES: usize = 16 * 1024;
/// A longer line is cut, ending in [`LINE_CUT`].
pub(crate) const MAX_LINE_CHARS: usize = 500;
/// Ends a line that was cut.
pub(crate) const LINE_CUT: &str = " [line cut]";

/// One host's report, ready for a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct HostReport {
    pub host: String,
    pub lines: Vec<String>,
}

/// The line that ends the reports when they were cut.
fn cut_marker(not_shown: usize) -> String {
    format!(
        "[report cut here: helpdesk sends at most {MAX_LINES} lines or {} KiB of it; {not_shown} more line(s) not shown]",
        MAX_BYTES / 1024
    )
}

/// The reports of `reports` (host → fact), in host order, within the
/// budget. A host whose report has no line is left out.
pub(crate) fn render(
    reports: &std::collections::BTreeMap<String, Value>,
    secrets: &Secrets,
) -> Vec<HostReport> {
    let mut out: Vec<HostReport> = Vec::new();
    let (mut lines_left, mut bytes_left) = (MAX_LINES, MAX_BYTES);
    let mut not_shown = 0;
    for (host, value) in reports {
        let lines: Vec<String> = lines_of(value)
            .iter()
            .map(|line| plain(&secrets.scrub(line)))
            .collect();
        if lines.is_empty() {
            continue;
        }
        if lines_left == 0 {
            not_shown += lines.len();
            continue;
        }
        let mut kept = Vec::new();
        for line in lines {
            let cost = line.len() + 1;
            if lines_left == 0 || cost > bytes_left {
                lines_left = 0;
                not_shown += 1;
                continue;
            }
            lines_left -= 1;
            bytes_left -= cost;
            kept.push(line);
        }
        out.push(HostReport {
            host: plain(host),
            lines: kept,
        });
    }
    if not_shown > 0
        && let Some(last) = out.last_mut()
    {
        last.lines.push(cut_marker(not_shown));
    }
    out
}

/// A report value as lines: a string's own lines; a list's items, one
/// (or a string item's lines) each; a mapping's `key: value`, a value of
/// several lines indented below its key. Other values as JSON.
fn lines_of(value: &Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::String(text) => text_lines(text),
        Value::Array(items) => items.iter().flat_map(lines_of).collect(),
        Value::Object(fields) => fields
            .iter()
            .flat_map(|(key, value)| field_lines(key, value))
            .collect(),
        other => vec![other.to_string()],
    }
}

fn field_lines(key: &str, value: &Value) -> Vec<String> {
    let text = match value {
        Value::Null => "(none)".to_owned(),
        Value::String(text) => text.clone(),
        Value::Array(items) if items.iter().all(|v| !v.is_array() && !v.is_object()) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    let mut lines = text_lines(&text).into_iter();
    let first = lines.next().unwrap_or_default();
    std::iter::once(format!("{key}: {first}"))
        .chain(lines.map(|line| format!("  {line}")))
        .collect()
}

/// A text's lines (LF or CRLF), without the trailing empty one.
fn text_lines(text: &str) -> Vec<String> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return Vec::new();
    }
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line).to_owned())
        .collect()
}

/// Whether a character would do something in a reader's terminal or mail
/// program other than show itself: a control character (C0, DEL, C1, a
/// stray CR), or an invisible one that reorders or hides text (bidi
/// overrides and isolates, zero-width characters, line and paragraph
/// separators, the BOM).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}')
}

/// One line made plain: a tab as a space, every other hidden character as
/// U+FFFD, trailing blanks dropped, and cut at [`MAX_LINE_CHARS`].
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len().min(MAX_LINE_CHARS * 4));
    for (n, c) in line.chars().enumerate() {
        if n == MAX_LINE_CHARS {
            out.truncate(out.trim_end().len());
            out.push_str(LINE_CUT);
            return out;
        }
        out.push(match c {
            '\t' => ' ',
            c if is_hidden(c) => '\u{FFFD}',
            c => c,
        });
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reports(value: Value) -> std::collections::BTreeMap<String, Value> {
        value
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    #[test]
    fn strings_lists_and_mappings_become_lines() {
        let given = reports(json!({
            "b": "one\r\ntwo\n",
            "a": {"uid": 1001, "groups": ["staff", "users"], "note": "x\ny", "gone": null},
            "c": ["first", 2, {"k": "v"}, "third\nfourth"],
            "d": "",
        }));
        let shown = render(&given, &Secrets::default());
        let lines: Vec<(&str, Vec<&str>)> = shown
            .iter()
            .map(|r| {
                (
                    r.host.as_str(),
                    r.lines.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                (
                    "a",
                    vec![
                        "uid: 1001",
                        "groups: staff, users",
                        "note: x",
                        "  y",
                        "gone: (none)"
                    ]
                ),
                ("b", vec!["one", "two"]),
                ("c", vec!["first", "2", "k: v", "third", "fourth"]),
            ]
        );
    }

    #[test]
    fn hidden_characters_are_replaced_and_long_lines_cut() {
        let line = format!(
            "red \u{1b}[31mtext\u{7}\ttab \u{202E}evil\u{2066} zero\u{200B}width{}",
            "x".repeat(600)
        );
        let shown = plain(&line);
        assert!(
            shown.starts_with(
                "red \u{FFFD}[31mtext\u{FFFD} tab \u{FFFD}evil\u{FFFD} zero\u{FFFD}width"
            ),
            "{shown:?}"
        );
        assert!(shown.ends_with(LINE_CUT), "{shown:?}");
        assert_eq!(shown.chars().count(), MAX_LINE_CHARS + LINE_CUT.len());
        assert!(!shown.chars().any(|c| c.is_control()));
    }

    #[test]
    fn secrets_are_scrubbed_before_a_line_is_cut() {
        let vars = json!({"password": "Hunter2Hunter2"});
        let secrets = Secrets::new(vars.as_object().unwrap_or(&serde_json::Map::new()), &[]);
        // The secret straddles the cut: scrubbed first, nothing of it stays.
        let text = format!("{}Hunter2Hunter2", "y".repeat(MAX_LINE_CHARS - 6));
        let shown = render(&reports(json!({ "h": text })), &secrets);
        let line = &shown[0].lines[0];
        assert!(!line.contains("Hunter2"), "{line}");
        assert!(line.ends_with("[redac [line cut]"), "{line}");
    }

    #[test]
    fn the_budget_cuts_across_hosts_with_a_marker() {
        let many: Vec<String> = (0..150).map(|n| format!("line {n}")).collect();
        let given = reports(json!({ "a": many, "b": many, "c": many }));
        let shown = render(&given, &Secrets::default());
        assert_eq!(shown.len(), 2, "c is left out whole");
        assert_eq!(shown[0].lines.len(), 150);
        assert_eq!(shown[1].lines.len(), 51);
        assert_eq!(
            shown[1].lines[50],
            cut_marker(100 + 150),
            "the marker ends the last host shown"
        );
        let wide: Vec<String> = (0..100).map(|_| "z".repeat(400)).collect();
        let shown = render(&reports(json!({ "a": wide })), &Secrets::default());
        let bytes: usize = shown[0].lines.iter().map(|l| l.len() + 1).sum();
        assert!(bytes <= MAX_BYTES + 200, "{bytes}");
        assert_eq!(shown[0].lines.len(), 40 + 1);
    }
}
