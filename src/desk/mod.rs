//! **The helpdesk folder, read-only.** Owns `config.yaml` (`config`), the
//! `*section*` file format (`sections`), `keywords.txt` (`keywords`), the
//! phrasebooks (`phrasebook`, `phrases`), help texts (`help`) and the
//! defaults compiled into the binary. Every stage reads it; it reads no
//! mail and writes nothing.
//!
//! The helpdesk folder: `keywords.txt`, `phrasebooks/`, `playbooks/`,
//! `help_templates/`, `reply_templates/` and `inventory`, either on disk or the defaults
//! compiled into the binary.
//!
//! A capability is a naming convention, not code: request type `name` is
//! the `*name*` section of keywords.txt, `phrasebooks/<name>_phrases.txt`,
//! `playbooks/<name>.yaml` and `help_templates/<name>_help.txt`. Only what
//! the chosen request type needs is loaded.

pub(crate) mod config;
pub(crate) mod help;
pub(crate) mod keywords;
mod located;
pub(crate) mod maintenance;
pub(crate) mod phrasebook;
pub(crate) mod phrases;
pub(crate) mod sections;
pub(crate) mod sources;

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

use crate::desk::keywords::Keywords;
use crate::desk::phrasebook::Phrasebook;
use crate::desk::sections::{SyntaxError, SyntaxErrorKind};

static PHRASEBOOKS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/phrasebooks");
static PLAYBOOKS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/playbooks");
static HELP_TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/help_templates");
static REPLY_TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/reply_templates");
static EXAMPLES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/examples");
static KEYWORDS: &str = include_str!("../../keywords.txt");
static INVENTORY: &str = include_str!("../../inventory");

/// The request type the helpdesk answers itself, without a playbook.
pub(crate) const HELP: &str = "help";

const BUILTIN_LABEL: &str = "(built-in)";

/// Where the helpdesk's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Desk {
    /// A folder on disk (absolute path).
    Folder(PathBuf),
    /// The defaults compiled into the binary.
    Builtin,
}

pub(crate) use located::Located;

/// A playbook to run: a real file, or one of the built-in defaults (which
/// can be shown but not run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Playbook {
    pub path: Option<PathBuf>,
    pub display: String,
}

/// A helpdesk file that is missing, unreadable or wrong.
pub(crate) type DeskError = Located<DeskErrorKind>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DeskErrorKind {
    #[error(
        "no {what} for request type '{request_type}': create it, or remove *{request_type}* from keywords.txt"
    )]
    MissingForType {
        what: &'static str,
        request_type: String,
    },
    #[error(
        "missing: every helpdesk folder needs one; start from the keywords.txt shipped with helpdesk"
    )]
    MissingKeywords,
    #[error("cannot read: {0}")]
    Io(io::Error),
    #[error("{0}")]
    Syntax(SyntaxErrorKind),
}

impl From<SyntaxError> for DeskError {
    fn from(error: SyntaxError) -> Self {
        Self {
            file: error.file,
            line: error.line,
            column: error.column,
            kind: DeskErrorKind::Syntax(error.kind),
        }
    }
}

impl Desk {
    /// Shows a path inside the desk the way errors and output name it.
    pub(crate) fn display(&self, relative: &str) -> String {
        match self {
            Self::Folder(root) => root.join(relative).display().to_string(),
            Self::Builtin => format!("{BUILTIN_LABEL}/{relative}"),
        }
    }

    pub(crate) fn root(&self) -> Option<&Path> {
        match self {
            Self::Folder(root) => Some(root),
            Self::Builtin => None,
        }
    }

    /// A file's text, `None` when it does not exist.
    pub(crate) fn read(&self, relative: &str) -> Result<Option<Cow<'static, str>>, DeskError> {
        match self {
            Self::Builtin => Ok(builtin_file(relative).map(Cow::Borrowed)),
            Self::Folder(root) => match std::fs::read_to_string(root.join(relative)) {
                Ok(text) => Ok(Some(Cow::Owned(text))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(cause) => Err(DeskError::in_file(
                    self.display(relative),
                    DeskErrorKind::Io(cause),
                )),
            },
        }
    }

    pub(crate) fn keywords(&self) -> Result<Keywords, DeskError> {
        let relative = "keywords.txt";
        let text = self.read(relative)?.ok_or_else(|| {
            DeskError::in_file(self.display(relative), DeskErrorKind::MissingKeywords)
        })?;
        Ok(Keywords::parse(&self.display(relative), &text)?)
    }

    pub(crate) fn phrasebook(&self, request_type: &str) -> Result<Phrasebook, DeskError> {
        let relative = format!("phrasebooks/{request_type}_phrases.txt");
        let text = self
            .read(&relative)?
            .ok_or_else(|| missing(&self.display(&relative), "phrasebook", request_type))?;
        Ok(Phrasebook::parse(&self.display(&relative), &text)?)
    }

    /// `playbooks/<type>.yaml` (or `.yml`).
    pub(crate) fn playbook(&self, request_type: &str) -> Result<Playbook, DeskError> {
        let candidates = [
            format!("playbooks/{request_type}.yaml"),
            format!("playbooks/{request_type}.yml"),
        ];
        for relative in &candidates {
            let found = match self {
                Self::Builtin => builtin_file(relative).map(|_| None),
                Self::Folder(root) => {
                    let path = root.join(relative);
                    path.is_file().then_some(Some(path))
                }
            };
            if let Some(path) = found {
                return Ok(Playbook {
                    path,
                    display: self.display(relative),
                });
            }
        }
        Err(missing(
            &self.display(&candidates[0]),
            "playbook",
            request_type,
        ))
    }
}

fn missing(path: &str, what: &'static str, request_type: &str) -> DeskError {
    DeskError::in_file(
        path,
        DeskErrorKind::MissingForType {
            what,
            request_type: request_type.to_owned(),
        },
    )
}

/// Every file of the built-in helpdesk folder, as `(relative path, text)`:
/// what `helpdesk setup` writes into a new folder.
pub(crate) fn builtin_files() -> Vec<(String, &'static str)> {
    let mut files = vec![
        ("keywords.txt".to_owned(), KEYWORDS),
        ("inventory".to_owned(), INVENTORY),
    ];
    for (folder, dir) in [
        ("phrasebooks", &PHRASEBOOKS),
        ("playbooks", &PLAYBOOKS),
        ("help_templates", &HELP_TEMPLATES),
        ("reply_templates", &REPLY_TEMPLATES),
        ("examples", &EXAMPLES),
    ] {
        for file in dir.files() {
            if let (Some(name), Some(text)) = (file.path().to_str(), file.contents_utf8()) {
                files.push((format!("{folder}/{name}"), text));
            }
        }
    }
    files.sort();
    files
}

fn builtin_file(relative: &str) -> Option<&'static str> {
    let (dir, name) = match relative.split_once('/') {
        Some(("phrasebooks", name)) => (&PHRASEBOOKS, name),
        Some(("playbooks", name)) => (&PLAYBOOKS, name),
        Some(("help_templates", name)) => (&HELP_TEMPLATES, name),
        Some(("reply_templates", name)) => (&REPLY_TEMPLATES, name),
        Some(_) => return None,
        None => {
            return match relative {
                "keywords.txt" => Some(KEYWORDS),
                "inventory" => Some(INVENTORY),
                _ => None,
            };
        }
    };
    dir.get_file(name)?.contents_utf8()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_desk_has_every_capability_of_its_keywords() {
        let desk = Desk::Builtin;
        let keywords = desk.keywords().unwrap_or_else(|e| panic!("{e}"));
        for request_type in keywords.request_types() {
            desk.phrasebook(request_type)
                .unwrap_or_else(|e| panic!("{e}"));
            if request_type != HELP {
                let playbook = desk
                    .playbook(request_type)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(playbook.path.is_none());
            }
            assert!(
                desk.read(&format!("help_templates/{request_type}_help.txt"))
                    .ok()
                    .flatten()
                    .is_some(),
                "{request_type} has no help template"
            );
        }
    }

    #[test]
    fn builtin_desk_cannot_be_walked_out_of() {
        assert!(builtin_file("../Cargo.toml").is_none());
        assert!(builtin_file("src/main.rs").is_none());
    }
}
