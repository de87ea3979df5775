//! Whole-word, case-insensitive phrase matching.
//!
//! Both keywords and phrasebook flags ask the same question: which of these
//! phrases occur in this text as whole words? `new` must not match
//! `renewal`, and `'new user'` matches `New   User` across any white space.
//!
//! Text and phrases are cut into the same tokens (a run of word characters,
//! or one other non-space character), lower-cased. A phrase matches where
//! its tokens follow each other in the text, which is whole-word matching
//! by construction. Phrases are indexed by their first token, so one pass
//! over the text finds every phrase of every section, and building the
//! index for 10,000 phrases costs little more than reading them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use rustc_hash::FxHasher;

/// The phrase index is looked up once per token of every mail: a fast
/// non-cryptographic hash (the keys are the operator's own phrases).
type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// One token of a text: lower-cased (borrowed from the text when it
/// already is), with its byte range in the original.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token<'a> {
    text: Cow<'a, str>,
    start: usize,
    end: usize,
}

fn tokenize(original: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut chars = original.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        let mut end = start + c.len_utf8();
        if is_word_char(c) {
            while let Some(&(at, next)) = chars.peek() {
                if !is_word_char(next) {
                    break;
                }
                end = at + next.len_utf8();
                chars.next();
            }
        }
        let text = original.get(start..end).unwrap_or_default();
        let text = if text.is_ascii() {
            if text.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(text.to_ascii_lowercase())
            } else {
                Cow::Borrowed(text)
            }
        } else if text.chars().any(char::is_uppercase) {
            Cow::Owned(text.to_lowercase())
        } else {
            Cow::Borrowed(text)
        };
        tokens.push(Token { text, start, end });
    }
    tokens
}

/// A text cut into tokens, ready to be searched.
#[derive(Debug)]
pub(crate) struct Folded<'a> {
    tokens: Vec<Token<'a>>,
}

impl<'a> Folded<'a> {
    pub(crate) fn new(original: &'a str) -> Self {
        Self {
            tokens: tokenize(original),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Where `phrase` first occurs, without tokenizing the phrase unless its
    /// first token occurs at all (the common case for most phrases of a
    /// large keywords.txt is that it does not).
    pub(crate) fn find(&self, phrase: &str) -> Option<(usize, usize)> {
        let first = first_token(phrase)?;
        let mut rest: Option<Vec<String>> = None;
        for (at, token) in self.tokens.iter().enumerate() {
            if !same_token(first, &token.text) {
                continue;
            }
            let rest = rest.get_or_insert_with(|| {
                tokenize(phrase)
                    .into_iter()
                    .skip(1)
                    .map(|t| t.text.into_owned())
                    .collect()
            });
            let Some(following) = self.tokens.get(at + 1..at + 1 + rest.len()) else {
                continue;
            };
            if following.iter().zip(rest.iter()).all(|(t, p)| t.text == *p) {
                return Some((token.start, following.last().unwrap_or(token).end));
            }
        }
        None
    }
}

/// The first token of a phrase, as written.
fn first_token(phrase: &str) -> Option<&str> {
    let trimmed = phrase.trim_start();
    let first = trimmed.chars().next()?;
    let len = if is_word_char(first) {
        trimmed
            .find(|c: char| !is_word_char(c))
            .unwrap_or(trimmed.len())
    } else {
        first.len_utf8()
    };
    trimmed.get(..len)
}

/// `written` (any case) against a lower-cased token.
fn same_token(written: &str, lower: &str) -> bool {
    written
        .chars()
        .flat_map(char::to_lowercase)
        .eq(lower.chars())
}

/// A phrase normalised for comparison: lower case, single spaces.
pub(crate) fn fold_phrase(phrase: &str) -> String {
    phrase
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A phrase found in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    /// Caller's number for the group (section) the phrase belongs to.
    pub group: usize,
    /// Caller's number for the phrase itself.
    pub phrase: usize,
    /// Byte range in the original text.
    pub start: usize,
    pub end: usize,
}

#[derive(Debug)]
struct Entry {
    group: usize,
    phrase: usize,
    /// The tokens after the first.
    rest: Vec<String>,
}

/// A set of phrases, each tagged with a group, searched in one pass.
#[derive(Debug, Default)]
pub(crate) struct PhraseSet {
    by_first_token: FxHashMap<String, Vec<Entry>>,
}

impl PhraseSet {
    /// `phrases` yields `(group, phrase number, text)`. Phrases without a
    /// token are dropped.
    pub(crate) fn new<'a>(phrases: impl IntoIterator<Item = (usize, usize, &'a str)>) -> Self {
        let mut by_first_token: FxHashMap<String, Vec<Entry>> = FxHashMap::default();
        for (group, phrase, text) in phrases {
            let mut tokens = tokenize(text).into_iter().map(|t| t.text.into_owned());
            let Some(first) = tokens.next() else { continue };
            by_first_token.entry(first).or_default().push(Entry {
                group,
                phrase,
                rest: tokens.collect(),
            });
        }
        Self { by_first_token }
    }

    /// Every occurrence of every phrase, in text order.
    pub(crate) fn hits<'s>(&'s self, text: &'s Folded<'_>) -> impl Iterator<Item = Hit> + 's {
        let tokens = &text.tokens;
        tokens.iter().enumerate().flat_map(move |(at, token)| {
            self.by_first_token
                .get(token.text.as_ref())
                .into_iter()
                .flatten()
                .filter_map(move |entry| {
                    let following = tokens.get(at + 1..at + 1 + entry.rest.len())?;
                    let matches = following.iter().zip(&entry.rest).all(|(t, p)| t.text == *p);
                    let last = following.last().unwrap_or(token);
                    matches.then_some(Hit {
                        group: entry.group,
                        phrase: entry.phrase,
                        start: token.start,
                        end: last.end,
                    })
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
        assert_eq!(groups(&[(0, "gb")], "5gb"), Vec::<usize>::new());
        assert_eq!(groups(&[(0, "user:")], "username: x"), Vec::<usize>::new());
        assert_eq!(groups(&[(0, "user:")], "the user: x"), vec![0]);
    }

    #[test]
    fn multi_word_phrase_spans_any_white_space() {
        assert_eq!(groups(&[(3, "new user")], "a NEW\r\n\t user here"), vec![3]);
        assert_eq!(groups(&[(3, "new user")], "new users"), Vec::<usize>::new());
        assert_eq!(
            groups(&[(3, "'how much'")], "so, how much is left?"),
            Vec::<usize>::new()
        );
        assert_eq!(groups(&[(3, "how much")], "so, How much is left?"), vec![3]);
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
