//! Whole-word, case-insensitive phrase matching.
//!
//! Both keywords and phrasebook flags ask the same question: which of these
//! phrases occur in this text as whole words? `new` must not match
//! `renewal`, and `'new user'` matches `New   User` across any white space.
//! The text is folded once (lower case, white space runs collapsed to one
//! space) and every phrase of every section is found in a single
//! Aho-Corasick pass, so the cost hardly grows with the number of phrases.

use aho_corasick::{AhoCorasick, MatchKind};

/// Text folded for matching, remembering where each byte came from.
#[derive(Debug)]
pub struct Folded {
    text: String,
    /// `origin[i]` is the byte offset in the original text of folded byte
    /// `i`; one extra entry maps the end.
    origin: Vec<usize>,
}

impl Folded {
    pub fn new(original: &str) -> Self {
        let mut text = String::with_capacity(original.len());
        let mut origin = Vec::with_capacity(original.len() + 1);
        let mut last_space = true;
        for (at, c) in original.char_indices() {
            if c.is_whitespace() {
                if !last_space {
                    text.push(' ');
                    origin.push(at);
                    last_space = true;
                }
                continue;
            }
            last_space = false;
            for lower in c.to_lowercase() {
                text.push(lower);
                origin.extend(std::iter::repeat_n(at, lower.len_utf8()));
            }
        }
        origin.push(original.len());
        Self { text, origin }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Maps a folded byte offset back to the original text.
    pub fn origin(&self, folded: usize) -> usize {
        self.origin.get(folded).copied().unwrap_or(usize::MAX)
    }
}

/// Folds a phrase the way `Folded` folds text.
pub fn fold_phrase(phrase: &str) -> String {
    Folded::new(phrase).text.trim_end().to_owned()
}

pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A phrase found in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Caller's number for the group (section) the phrase belongs to.
    pub group: usize,
    /// Caller's number for the phrase itself.
    pub phrase: usize,
    /// Byte range in the original (unfolded) text.
    pub start: usize,
    pub end: usize,
}

#[derive(Debug)]
struct Entry {
    group: usize,
    phrase: usize,
    word_start: bool,
    word_end: bool,
}

/// A set of phrases, each tagged with a group, searched in one pass.
#[derive(Debug)]
pub struct PhraseSet {
    automaton: Option<AhoCorasick>,
    entries: Vec<Entry>,
}

impl PhraseSet {
    /// `phrases` yields `(group, phrase number, text)`. Phrases that fold to
    /// nothing are dropped.
    pub fn new<'a>(phrases: impl IntoIterator<Item = (usize, usize, &'a str)>) -> Self {
        let mut patterns = Vec::new();
        let mut entries = Vec::new();
        for (group, phrase, text) in phrases {
            let folded = fold_phrase(text);
            let (Some(first), Some(last)) = (folded.chars().next(), folded.chars().last()) else {
                continue;
            };
            entries.push(Entry {
                group,
                phrase,
                word_start: is_word_char(first),
                word_end: is_word_char(last),
            });
            patterns.push(folded);
        }
        // Building only fails for absurd sizes; an unbuildable set matches
        // nothing rather than taking the program down.
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .ok();
        if automaton.is_none() && !patterns.is_empty() {
            tracing::warn!(
                "phrase set of {} phrases could not be built",
                patterns.len()
            );
        }
        Self { automaton, entries }
    }

    /// Every whole-word occurrence of every phrase, in text order.
    pub fn hits<'s>(&'s self, text: &'s Folded) -> impl Iterator<Item = Hit> + 's {
        let haystack = text.as_str();
        self.automaton
            .iter()
            .flat_map(move |ac| ac.find_overlapping_iter(haystack))
            .filter_map(move |m| {
                let entry = self.entries.get(m.pattern().as_usize())?;
                let before = haystack[..m.start()].chars().next_back();
                let after = haystack[m.end()..].chars().next();
                let bounded_start = !entry.word_start || !before.is_some_and(is_word_char);
                let bounded_end = !entry.word_end || !after.is_some_and(is_word_char);
                (bounded_start && bounded_end).then(|| Hit {
                    group: entry.group,
                    phrase: entry.phrase,
                    start: text.origin(m.start()),
                    end: text.origin(m.end()),
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(phrases: &[(usize, &str)], text: &str) -> Vec<usize> {
        let set = PhraseSet::new(phrases.iter().enumerate().map(|(i, (g, p))| (*g, i, *p)));
        let folded = Folded::new(text);
        set.hits(&folded).map(|h| h.group).collect()
    }

    #[test]
    fn whole_words_only() {
        assert_eq!(
            groups(&[(0, "new")], "Renewal of contract"),
            Vec::<usize>::new()
        );
        assert_eq!(groups(&[(0, "new")], "renew"), Vec::<usize>::new());
        assert_eq!(groups(&[(0, "new")], "New User"), vec![0]);
        assert_eq!(groups(&[(0, "new")], "(new)"), vec![0]);
        assert_eq!(groups(&[(0, "i")], "I'd like"), vec![0]);
        assert_eq!(groups(&[(0, "user")], "username"), Vec::<usize>::new());
    }

    #[test]
    fn multi_word_phrase_spans_any_white_space() {
        assert_eq!(groups(&[(3, "new user")], "a NEW\r\n\t user here"), vec![3]);
        assert_eq!(groups(&[(3, "new user")], "new users"), Vec::<usize>::new());
    }

    #[test]
    fn unicode_case_folding_maps_back_to_original_offsets() {
        let set = PhraseSet::new([(0, 0, "straße")]);
        let text = "Die STRASSE und die Straße";
        let folded = Folded::new(text);
        let hits: Vec<Hit> = set.hits(&folded).collect();
        assert_eq!(hits.len(), 1);
        assert_eq!(&text[hits[0].start..hits[0].end], "Straße");
    }

    #[test]
    fn overlapping_phrases_all_reported() {
        assert_eq!(
            groups(&[(0, "new"), (1, "new user")], "new user"),
            vec![0, 1]
        );
    }
}
