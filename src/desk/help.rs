//! Help: a request type's help template, and the index of every capability
//! generated from keywords.txt and help_templates/ (nothing hand-kept).

use serde::Serialize;

use crate::desk::keywords::Keywords;
use crate::desk::{Desk, DeskError};

/// One capability in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Capability {
    pub name: String,
    /// The subject keywords that select it.
    pub keywords: Vec<String>,
    /// The first paragraph of its help template, on one line.
    pub summary: String,
}

/// Every request type, in keywords.txt order.
pub(crate) fn index(desk: &Desk, keywords: &Keywords) -> Result<Vec<Capability>, DeskError> {
    keywords
        .request_types()
        .map(|name| {
            Ok(Capability {
                name: name.to_owned(),
                keywords: keywords
                    .phrases_of(name)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                summary: template(desk, name)?
                    .map(|text| first_paragraph(&text))
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The help text for `topic`, when it names a request type. The topic is
/// only ever compared against request type names, so `../../etc/passwd`
/// reads nothing.
pub(crate) fn topic(
    desk: &Desk,
    keywords: &Keywords,
    topic: &str,
) -> Result<Option<(String, String)>, DeskError> {
    let wanted = normalize_topic(topic);
    let Some(name) = keywords
        .request_types()
        .find(|name| name.eq_ignore_ascii_case(&wanted))
    else {
        return Ok(None);
    };
    Ok(template(desk, name)?.map(|text| (name.to_owned(), text)))
}

/// `Manage-Users` and `manage users` mean `manage_users`.
fn normalize_topic(topic: &str) -> String {
    topic
        .trim()
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

fn template(desk: &Desk, name: &str) -> Result<Option<String>, DeskError> {
    Ok(desk
        .read(&format!("help_templates/{name}_help.txt"))?
        .map(|text| text.into_owned()))
}

fn first_paragraph(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_index_lists_every_type_with_summary_and_keywords() {
        let desk = Desk::Builtin;
        let keywords = desk.keywords().unwrap();
        let index = index(&desk, &keywords).unwrap();
        let names: Vec<&str> = index.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, keywords.request_types().collect::<Vec<_>>());
        let storage = index.iter().find(|c| c.name == "storage").unwrap();
        assert!(storage.keywords.contains(&"quota".to_owned()));
        assert!(!storage.summary.is_empty() && !storage.summary.contains('\n'));
    }

    #[test]
    fn topics_are_request_type_names_only() {
        let desk = Desk::Builtin;
        let keywords = desk.keywords().unwrap();
        assert_eq!(
            topic(&desk, &keywords, "Storage")
                .unwrap()
                .map(|t| t.0)
                .as_deref(),
            Some("storage")
        );
        assert_eq!(
            topic(&desk, &keywords, "manage users")
                .unwrap()
                .map(|t| t.0)
                .as_deref(),
            Some("manage_users")
        );
        for hostile in [
            "../../etc/passwd",
            "/etc/passwd",
            "storage/../../x",
            "",
            "storage\0",
        ] {
            assert_eq!(
                topic(&desk, &keywords, hostile).unwrap(),
                None,
                "{hostile:?}"
            );
        }
    }
}
