//! The `*section*` text format shared by `keywords.txt` and the phrasebooks.
//!
//! A file is a list of sections. A header line `*name*` opens a section; the
//! lines after it hold its phrases, separated by white space, where a phrase
//! in single (or double) quotes may hold several words: `'new user'`. Lines
//! starting with `#` are comments. This module only knows the syntax; what a
//! section means is up to `keywords` and `phrasebook`.

use std::fmt;

use crate::desk::located::Located;

/// One `*name*` section with its phrases, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub name: String,
    /// 1-based line of the `*name*` header.
    pub line: usize,
    pub phrases: Vec<Phrase>,
}

/// A phrase as written (quotes removed), with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Phrase {
    pub text: String,
    pub line: usize,
}

/// A syntax error, located as `file:line`.
pub(crate) type SyntaxError = Located<SyntaxErrorKind>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SyntaxErrorKind {
    UnterminatedQuote(char),
    EmptyPhrase,
    PhraseOutsideSection,
    BadSectionName(String),
    DuplicateSection {
        name: String,
        first_line: usize,
    },
    /// A label or flag whose variable name cannot be used; the reason.
    BadVariable(String, String),
}

impl fmt::Display for SyntaxErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnterminatedQuote(q) => write!(
                f,
                "unterminated quote: close the phrase with {q} on the same line"
            ),
            Self::EmptyPhrase => write!(f, "empty quoted phrase: remove it or put words inside"),
            Self::PhraseOutsideSection => write!(
                f,
                "phrases before the first section: start the file with a header such as *storage*"
            ),
            Self::BadSectionName(name) => write!(
                f,
                "invalid section name *{name}*: use only letters, digits, '_' and '-'"
            ),
            Self::DuplicateSection { name, first_line } => write!(
                f,
                "section *{name}* appears twice (first on line {first_line}): merge the two"
            ),
            Self::BadVariable(name, why) => write!(f, "'{name}' {why}"),
        }
    }
}

/// One item of a file, borrowed from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Item<'t> {
    /// `*name*` on `line`.
    Header(&'t str, usize),
    /// A phrase (quotes removed, inner white space as written) on `line`.
    Phrase(&'t str, usize),
}

/// Parses a whole file. `file` is only used to name the file in errors.
pub(crate) fn parse(file: &str, text: &str) -> Result<Vec<Section>, SyntaxError> {
    let mut sections: Vec<Section> = Vec::new();
    scan(file, text, &mut |item| match item {
        Item::Header(name, line) => sections.push(Section {
            name: name.to_owned(),
            line,
            phrases: Vec::new(),
        }),
        Item::Phrase(phrase, line) => {
            if let Some(section) = sections.last_mut() {
                section.phrases.push(Phrase {
                    text: phrase.split_whitespace().collect::<Vec<_>>().join(" "),
                    line,
                });
            }
        }
    })?;
    Ok(sections)
}

/// Checks a whole file and hands each item to `visit`, in file order,
/// without allocating per phrase: a 10,000-phrase keywords.txt is read for
/// one mail in about the time it takes to read it.
pub(crate) fn scan<'t>(
    file: &str,
    text: &'t str,
    visit: &mut dyn FnMut(Item<'t>),
) -> Result<(), SyntaxError> {
    let error = |line: usize, kind| SyntaxError::at_line(file, line, kind);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut in_legacy_directory = false;
    let mut in_section = false;
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();

    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim();
        if in_legacy_directory {
            in_legacy_directory = !line.contains('}');
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // it-helpdesk kept a `requests_directory: {1: 'help', ...}` mapping
        // next to its keywords; request types are now the section names, so
        // an old file keeps working and the mapping is skipped.
        if line.starts_with("requests_directory:") {
            tracing::debug!("{file}:{line_no}: skipping it-helpdesk's requests_directory");
            in_legacy_directory = line.contains('{') && !line.contains('}');
            continue;
        }
        if let Some(name) = header_name(line) {
            if !valid_name(name) {
                return Err(error(
                    line_no,
                    SyntaxErrorKind::BadSectionName(name.to_owned()),
                ));
            }
            if let Some(&first_line) = seen.get(name) {
                return Err(error(
                    line_no,
                    SyntaxErrorKind::DuplicateSection {
                        name: name.to_owned(),
                        first_line,
                    },
                ));
            }
            seen.insert(name, line_no);
            in_section = true;
            visit(Item::Header(name, line_no));
            continue;
        }
        if !in_section {
            return Err(error(line_no, SyntaxErrorKind::PhraseOutsideSection));
        }
        split_phrases(line, &mut |phrase| visit(Item::Phrase(phrase, line_no)))
            .map_err(|kind| error(line_no, kind))?;
    }
    Ok(())
}

fn header_name(line: &str) -> Option<&str> {
    let inner = line.strip_prefix('*')?.strip_suffix('*')?;
    (!inner.contains('*')).then_some(inner.trim())
}

/// Section names become file names (`playbooks/<name>.yaml`) and variable
/// names, so they are kept to a safe alphabet.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Splits one line into phrases: white space separates, a token that starts
/// with a quote runs to the matching quote.
fn split_phrases<'t>(line: &'t str, visit: &mut dyn FnMut(&'t str)) -> Result<(), SyntaxErrorKind> {
    let mut rest = line.trim_start();
    while let Some(first) = rest.chars().next() {
        if first == '\'' || first == '"' {
            let body = &rest[1..];
            let Some(end) = body.find(first) else {
                return Err(SyntaxErrorKind::UnterminatedQuote(first));
            };
            let phrase = body[..end].trim();
            if phrase.is_empty() {
                return Err(SyntaxErrorKind::EmptyPhrase);
            }
            visit(phrase);
            rest = body[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            visit(&rest[..end]);
            rest = rest[end..].trim_start();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_and_phrases(text: &str) -> Vec<(String, Vec<String>)> {
        parse("t.txt", text)
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.name, s.phrases.into_iter().map(|p| p.text).collect()))
            .collect()
    }

    #[test]
    fn quoted_phrases_hold_several_words() {
        let got = names_and_phrases("*manage_users*\nnew 'new user'  'add   user' delete\n");
        assert_eq!(
            got,
            vec![(
                "manage_users".to_owned(),
                vec![
                    "new".into(),
                    "new user".into(),
                    "add user".into(),
                    "delete".into()
                ]
            )]
        );
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_ignored() {
        let got = names_and_phrases("# top\r\n\r\n*help*\r\n# note\r\nhelp documentation\r\n");
        assert_eq!(
            got,
            vec![(
                "help".to_owned(),
                vec!["help".into(), "documentation".into()]
            )]
        );
    }

    #[test]
    fn apostrophe_inside_a_word_is_not_a_quote() {
        let got = names_and_phrases("*q*\nwhat's 'have i'\n");
        assert_eq!(got[0].1, vec!["what's".to_owned(), "have i".to_owned()]);
    }

    #[test]
    fn legacy_requests_directory_is_skipped() {
        let text = "*help*\nhelp\n*storage*\nquota\nrequests_directory: {1: 'help',\n   2: 'storage',\n   }\n";
        let got = names_and_phrases(text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].1, vec!["quota".to_owned()]);
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = parse("kw.txt", "*a*\nx\n*b*\n'open quote\n").unwrap_err();
        assert_eq!(err.line, Some(4));
        assert!(err.to_string().starts_with("kw.txt:4: unterminated quote"));

        let err = parse("kw.txt", "loose words\n").unwrap_err();
        assert_eq!(err.kind, SyntaxErrorKind::PhraseOutsideSection);

        let err = parse("kw.txt", "*a*\nx\n*a*\ny\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "kw.txt:3: section *a* appears twice (first on line 1): merge the two"
        );

        let err = parse("kw.txt", "*../etc*\nx\n").unwrap_err();
        assert!(matches!(err.kind, SyntaxErrorKind::BadSectionName(_)));

        let err = parse("kw.txt", "*a*\n''\n").unwrap_err();
        assert_eq!(err.kind, SyntaxErrorKind::EmptyPhrase);
    }
}
