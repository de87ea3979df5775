//! Where an error in a helpdesk file is, as data: `check` reports the
//! place and the message apart, and every error's text is built from them.

/// What is wrong at a place in a helpdesk file, as data: `check` reports
/// the place and the message apart, and the error's text is built from
/// them: `file:line:column: message`, with as much of the place as is known
/// (`file: message` for a file that is missing or unreadable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {kind}", place(*.line, *.column))]
pub(crate) struct Located<K> {
    pub file: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub kind: K,
}

impl<K> Located<K> {
    /// `kind` about `file` as a whole.
    pub(crate) fn in_file(file: impl Into<String>, kind: K) -> Self {
        Self {
            file: file.into(),
            line: None,
            column: None,
            kind,
        }
    }

    /// `kind` on 1-based `line` of `file`.
    pub(crate) fn at_line(file: impl Into<String>, line: usize, kind: K) -> Self {
        Self {
            line: u64::try_from(line).ok(),
            ..Self::in_file(file, kind)
        }
    }
}

fn place(line: Option<u64>, column: Option<u64>) -> String {
    [line, column]
        .into_iter()
        .map_while(|n| n.map(|n| format!(":{n}")))
        .collect()
}
