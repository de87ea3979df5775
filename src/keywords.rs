//! `keywords.txt`: picks the request type from the subject.
//!
//! Each section names a request type and lists the subject phrases that
//! select it. The first section, in file order, with a phrase in the subject
//! wins; matching is whole-word and case-insensitive (see `phrases`).

use crate::phrases::{Folded, PhraseSet};
use crate::sections::{self, Section, SyntaxError};

/// The parsed keywords file, ready to classify subjects.
#[derive(Debug)]
pub struct Keywords {
    file: String,
    sections: Vec<Section>,
    set: PhraseSet,
}

/// Why a subject was given its request type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
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
    pub fn parse(file: &str, text: &str) -> Result<Self, SyntaxError> {
        let sections = sections::parse(file, text)?;
        let set = PhraseSet::new(sections.iter().enumerate().flat_map(|(group, section)| {
            section
                .phrases
                .iter()
                .enumerate()
                .map(move |(number, phrase)| (group, number, phrase.text.as_str()))
        }));
        Ok(Self {
            file: file.to_owned(),
            sections,
            set,
        })
    }

    /// The sections as parsed, for `helpdesk check`.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The file name used in messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Request type names in file order.
    pub fn request_types(&self) -> impl Iterator<Item = &str> {
        self.sections.iter().map(|s| s.name.as_str())
    }

    /// The keyword phrases of one request type, as written.
    pub fn phrases_of(&self, request_type: &str) -> Vec<&str> {
        self.sections
            .iter()
            .find(|s| s.name == request_type)
            .map(|s| s.phrases.iter().map(|p| p.text.as_str()).collect())
            .unwrap_or_default()
    }

    /// The first section (in file order) with a phrase in `subject`.
    pub fn classify(&self, subject: &str) -> Option<Classification> {
        let folded = Folded::new(subject);
        let hit = self
            .set
            .hits(&folded)
            .min_by_key(|hit| (hit.group, hit.start))?;
        let section = self.sections.get(hit.group)?;
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
