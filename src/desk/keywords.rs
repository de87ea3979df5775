//! `keywords.txt`: picks the request type from the subject.
//!
//! Each section names a request type and lists the subject phrases that
//! select it. The first section, in file order, with a phrase in the subject
//! wins; matching is whole-word and case-insensitive (see `phrases`).

use crate::desk::phrases::{Folded, PhraseSet};
use std::sync::OnceLock;

use crate::desk::sections::{self, Item, Section, SyntaxError};

/// A checked keywords file, ready to classify subjects.
///
/// One mail (`parse`, `run`) is classified by streaming through the text
/// once, comparing each phrase's first token with the subject's few tokens;
/// the full index (every phrase tokenized, by first token) is only built
/// when something needs it again and again (`replay`, `check`, the help
/// index).
#[derive(Debug)]
pub(crate) struct Keywords {
    file: String,
    text: String,
    index: OnceLock<Index>,
}

#[derive(Debug)]
struct Index {
    sections: Vec<Section>,
    set: PhraseSet,
}

/// Why a subject was given its request type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Classification {
    pub request_type: String,
    /// The phrase as written in keywords.txt, and its line.
    pub phrase: String,
    pub file: String,
    pub line: usize,
    /// Byte range of the match in the subject.
    pub start: usize,
    pub end: usize,
}

impl Keywords {
    pub(crate) fn parse(file: &str, text: &str) -> Result<Self, SyntaxError> {
        sections::scan(file, text, &mut |_| {})?;
        Ok(Self {
            file: file.to_owned(),
            text: text.to_owned(),
            index: OnceLock::new(),
        })
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            // Checked in `parse`: this cannot fail.
            let sections = sections::parse(&self.file, &self.text).unwrap_or_default();
            let set = PhraseSet::new(sections.iter().enumerate().flat_map(|(group, section)| {
                section
                    .phrases
                    .iter()
                    .enumerate()
                    .map(move |(number, phrase)| (group, number, phrase.text.as_str()))
            }));
            Index { sections, set }
        })
    }

    /// Builds the index now, for classifying many subjects.
    pub(crate) fn prepare(&self) {
        let _ = self.index();
    }

    /// The sections as parsed, for `helpdesk check`.
    pub(crate) fn sections(&self) -> &[Section] {
        &self.index().sections
    }

    /// The file name used in messages.
    pub(crate) fn file(&self) -> &str {
        &self.file
    }

    /// Request type names in file order.
    pub(crate) fn request_types(&self) -> impl Iterator<Item = &str> {
        self.sections().iter().map(|s| s.name.as_str())
    }

    /// The keyword phrases of one request type, as written.
    pub(crate) fn phrases_of(&self, request_type: &str) -> Vec<&str> {
        self.sections()
            .iter()
            .find(|s| s.name == request_type)
            .map(|s| s.phrases.iter().map(|p| p.text.as_str()).collect())
            .unwrap_or_default()
    }

    /// The first section (in file order) with a phrase in `subject`, and in
    /// it the phrase that starts first.
    pub(crate) fn classify(&self, subject: &str) -> Option<Classification> {
        let folded = Folded::new(subject);
        let Some(index) = self.index.get() else {
            return self.classify_streaming(&folded);
        };
        let hit = index
            .set
            .hits(&folded)
            .min_by_key(|hit| (hit.group, hit.start))?;
        let section = index.sections.get(hit.group)?;
        let phrase = section.phrases.get(hit.phrase)?;
        Some(Classification {
            request_type: section.name.clone(),
            phrase: phrase.text.clone(),
            file: self.file.clone(),
            line: phrase.line,
            start: hit.start,
            end: hit.end,
        })
    }

    fn classify_streaming(&self, folded: &Folded<'_>) -> Option<Classification> {
        if folded.is_empty() {
            return None;
        }
        let mut section: Option<&str> = None;
        let mut best: Option<Classification> = None;
        let mut done = false;
        let _ = sections::scan(&self.file, &self.text, &mut |item| {
            if done {
                return;
            }
            match item {
                Item::Header(name, _) => {
                    done = best.is_some();
                    section = Some(name);
                }
                Item::Phrase(phrase, line) => {
                    let Some((start, end)) = folded.find(phrase) else {
                        return;
                    };
                    if best.as_ref().is_some_and(|b| b.start <= start) {
                        return;
                    }
                    best = Some(Classification {
                        request_type: section.unwrap_or_default().to_owned(),
                        phrase: phrase.split_whitespace().collect::<Vec<_>>().join(" "),
                        file: self.file.clone(),
                        line,
                        start,
                        end,
                    });
                }
            }
        });
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = "*help*\ndocumentation help\n*storage*\nstorage space quota\n*manage_account*\nusername permissions password 'change username'\n*query_account*\n'query account'\n*manage_users*\nnew 'new user' 'new employee' onboarding delete 'delete user' remove 'add user'\n";

    fn classify(subject: &str) -> Option<String> {
        let keywords = Keywords::parse("keywords.txt", ORIGINAL).ok()?;
        keywords.classify(subject).map(|c| c.request_type)
    }

    #[test]
    fn original_keywords_classify_as_documented() {
        assert_eq!(
            classify("Increase Storage Quota").as_deref(),
            Some("storage")
        );
        assert_eq!(classify("New User").as_deref(), Some("manage_users"));
        assert_eq!(classify("Renewal of contract"), None);
        assert_eq!(classify("Help"), Some("help".into()));
        assert_eq!(classify(""), None);
    }

    #[test]
    fn streaming_and_indexed_classification_agree() {
        let subjects = [
            "Increase Storage Quota",
            "New password please",
            "please: add   USER bob",
            "Renewal",
            "",
            "help with my quota",
            "QUERY  account now",
            "new user: new",
        ];
        let streaming = Keywords::parse("keywords.txt", ORIGINAL).unwrap();
        let indexed = Keywords::parse("keywords.txt", ORIGINAL).unwrap();
        indexed.prepare();
        for subject in subjects {
            assert_eq!(
                streaming.classify(subject),
                indexed.classify(subject),
                "{subject:?}"
            );
        }
    }

    #[test]
    fn first_section_in_file_order_wins() {
        // "password" (manage_account) comes before "new" (manage_users).
        assert_eq!(
            classify("New password please").as_deref(),
            Some("manage_account")
        );
        assert_eq!(classify("help with my quota").as_deref(), Some("help"));
    }

    #[test]
    fn classification_records_the_phrase_and_its_line() {
        let keywords = Keywords::parse("keywords.txt", ORIGINAL).unwrap_or_else(|e| panic!("{e}"));
        let c = keywords
            .classify("please: add   USER bob")
            .unwrap_or_else(|| panic!("no match"));
        assert_eq!(c.request_type, "manage_users");
        assert_eq!(c.phrase, "add user");
        assert_eq!(c.line, 10);
        assert_eq!(&"please: add   USER bob"[c.start..c.end], "add   USER");
    }
}
