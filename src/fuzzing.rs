//! Entry points for the fuzz targets in `fuzz/` and for the regression test
//! that replays what they found (`tests/fuzz_regressions.rs`): each feeds
//! arbitrary bytes to one parser the program owns and exercises its result;
//! and of the benchmarks (`benches/pipeline.rs`, through `Bench`). Only
//! built with the `fuzzing` feature: nothing here is in the shipped binary.

use crate::desk::keywords::Keywords;
use crate::desk::phrasebook::{Input, Phrasebook};

/// A raw message, read as `run` and `parse` read it.
pub fn mail_read(data: &[u8]) {
    for header in ["From", "X-Original-Sender"] {
        let mail = crate::mail::read(data, header);
        let _ = crate::decide::loops::silence(&mail, Some("helpdesk@example.com"));
        for position in [
            crate::desk::config::Position::Above,
            crate::desk::config::Position::Below,
        ] {
            let _ = crate::decide::trust::authenticate(
                Some(&crate::desk::config::Authentication {
                    authserv_id: vec!["mx.example.com".into()],
                    received_by: vec!["mx.example.com".into()],
                    require: crate::desk::config::Require::Dmarc,
                    position: Some(position),
                }),
                &mail,
            );
        }
    }
}

/// A keywords file, then a subject (the part after the first NUL byte).
pub fn keywords(data: &[u8]) {
    let (file, subject) = split(data);
    if let Ok(keywords) = Keywords::parse("keywords.txt", &file) {
        let _ = keywords.classify(&subject);
        for request_type in keywords.request_types() {
            let _ = keywords.phrases_of(request_type);
        }
    }
}

/// A phrasebook, then a mail text (the part after the first NUL byte).
pub fn phrasebook(data: &[u8]) {
    let (file, text) = split(data);
    if let Ok(book) = Phrasebook::parse("p_phrases.txt", &file) {
        let extraction = book.extract(Input {
            text: &text,
            sender: Some("alice@example.com"),
            max_value_length: 1024,
        });
        let _ = book.missing(&extraction.vars);
        let _ = crate::run::ansible::extra_vars_yaml(&extraction.vars);
    }
}

/// An Authentication-Results header value.
pub fn authres(data: &[u8]) {
    let _ = crate::decide::authres::parse(&String::from_utf8_lossy(data));
}

/// A provider's mail through the BCOP iCalendar reader (MIME, the
/// calendar parser, times and zones), with the promise its values keep:
/// bounded, and no character outside the allow-list.
pub fn maintenance_ical(data: &[u8]) {
    let provider = crate::desk::maintenance::Provider {
        name: "fuzz".into(),
        senders: vec!["*@fuzz.example".into()],
        parser: crate::desk::maintenance::Parser::Ical,
        timezone: Some(chrono_tz::Europe::Berlin),
        dir: None,
    };
    if let crate::maintenance::Notice::Read(m) = crate::maintenance::read(&provider, data, None) {
        assert!(m.maintenance_id.chars().count() <= crate::maintenance::MAX_ID);
        assert!(m.circuits.len() <= crate::maintenance::MAX_CIRCUITS);
        assert!(m.end >= m.start);
        for text in std::iter::once(&m.summary).chain(m.circuits.iter().map(|c| &c.id)) {
            assert!(!text.chars().any(char::is_control), "{text:?}");
        }
    }
}

/// An HTML part converted to text, and that text stripped of quotes, with
/// the invariants each promises: bounded output, a quote line inside the
/// text, cuts in order and inside the input.
pub fn html_and_quotes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let converted = crate::mail::html::to_text(&text);
    assert!(converted.text.len() <= crate::mail::html::MAX_TEXT + 8 * 1024);
    if let Some((line, _)) = &converted.quote {
        assert!(*line >= 1 && *line <= converted.text.lines().count() + 1);
    }
    for input in [&*text, converted.text.as_str()] {
        let stripped = crate::mail::quotes::strip(input);
        let lines = input.lines().count();
        let mut previous = 0;
        for cut in &stripped.cuts {
            assert!(cut.line > previous && cut.line <= lines + 1, "{cut:?}");
            previous = cut.line;
        }
        assert!(stripped.text.len() <= input.len());
    }
}

/// The extra-vars file `run` writes for `vars` (for the injection tests,
/// which feed it to the real `ansible-playbook`).
pub fn extra_vars_yaml(vars: &serde_json::Map<String, serde_json::Value>) -> String {
    crate::run::ansible::extra_vars_yaml(vars)
}

/// A helpdesk folder loaded once, for the benchmarks: what `parse` does to
/// a mail (read, classify, extract, trust), in process.
#[derive(Debug)]
pub struct Bench {
    config: crate::desk::config::Config,
    keywords: Keywords,
}

impl Bench {
    /// The folder of `config.yaml` at `path`; an error says what is wrong.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let config = crate::desk::config::Config::load(path).map_err(|e| e.to_string())?;
        let keywords = config.desk.keywords().map_err(|e| e.to_string())?;
        Ok(Self { config, keywords })
    }

    /// Hands `f` a function that reads and decides one raw mail (with the
    /// keywords and phrasebooks loaded once, as `replay` does), returning
    /// whether a decision was reached.
    pub fn with_decider<R>(&self, f: impl FnOnce(&dyn Fn(&[u8]) -> bool) -> R) -> R {
        let decider = crate::decide::Decider::new(&self.config, &self.keywords);
        f(&|raw| decider.decide(&crate::mail::read(raw, "From")).is_ok())
    }

    /// Loads keywords.txt again, as every `run` does; whether it loaded.
    pub fn load_keywords(&self) -> bool {
        self.config.desk.keywords().is_ok()
    }
}

fn split(data: &[u8]) -> (String, String) {
    let at = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (head, tail) = data.split_at(at);
    (
        String::from_utf8_lossy(head).into_owned(),
        String::from_utf8_lossy(tail.get(1..).unwrap_or_default()).into_owned(),
    )
}

/// NUL-separated strings as extra-vars: the written file must read back
/// (as Ansible reads it) to exactly the same strings, each a string.
pub fn vars_round_trip(data: &[u8]) {
    let vars: serde_json::Map<String, serde_json::Value> = String::from_utf8_lossy(data)
        .split('\0')
        .enumerate()
        .map(|(i, s)| (format!("v{i}"), serde_json::Value::String(s.to_owned())))
        .collect();
    let yaml = crate::run::ansible::extra_vars_yaml(&vars);
    let read = yaml11::read_extra_vars(&yaml);
    assert_eq!(read.len(), vars.len(), "{yaml}");
    for ((name, value), (read_name, read_value)) in vars.iter().zip(&read) {
        assert_eq!(name, read_name);
        assert_eq!(
            read_value.as_deref(),
            value.as_str(),
            "{name} altered in {yaml}"
        );
    }
}

/// How Ansible (PyYAML's YAML 1.1 resolver, ansible-core 2.19's `!unsafe`
/// constructor) reads helpdesk's extra-vars file, for the round-trip checks.
pub mod yaml11 {
    use std::sync::LazyLock;

    use regex::Regex;

    /// PyYAML's implicit resolvers (`yaml.resolver.Resolver`), which
    /// ansible-core 2.19 applies to an `!unsafe` scalar as if it were plain.
    /// Python's `$` also matches before a final newline, hence `\n?\z`.
    static RESOLVERS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
        [
            ("bool", r"yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"),
            ("null", r"~|null|Null|NULL|"),
            ("float", r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"),
            ("int", r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+"),
            ("timestamp", r"[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?"),
            ("merge", r"<<"),
            ("value", r"="),
            ("yaml", r"!|&|\*"),
        ]
        .into_iter()
        .filter_map(|(tag, pattern)| {
            Regex::new(&format!(r"\A(?:{pattern})\n?\z"))
                .ok()
                .map(|r| (tag, r))
        })
        .collect()
    });

    /// The YAML 1.1 type a plain scalar would be read as, `None` for str.
    pub fn plain_type(text: &str) -> Option<&'static str> {
        RESOLVERS
            .iter()
            .find(|(_, r)| r.is_match(text))
            .map(|(tag, _)| *tag)
    }

    /// Reads the file `extra_vars_yaml` writes: `"name": [!unsafe ]"text"`
    /// lines. Each value is the string Ansible gets, or `None` when
    /// Ansible would get something else (a re-resolved `!unsafe` scalar,
    /// a number, a bool, null), or when the line is not of that form.
    /// Panics when an untagged string could be a template.
    pub fn read_extra_vars(yaml: &str) -> Vec<(String, Option<String>)> {
        yaml.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|line| {
                let (name, rest) = quoted(line).unwrap_or_default();
                let rest = rest.strip_prefix(": ").unwrap_or_default();
                let (tagged, rest) = match rest.strip_prefix("!unsafe ") {
                    Some(rest) => (true, rest),
                    None => (false, rest),
                };
                let value =
                    quoted(rest)
                        .filter(|(_, tail)| tail.is_empty())
                        .and_then(|(text, _)| {
                            if tagged {
                                plain_type(&text).is_none().then_some(text)
                            } else {
                                assert!(
                                    !text.contains(['{', '%', '#']),
                                    "untagged string that could be a template: {text:?}"
                                );
                                Some(text)
                            }
                        });
                (name, value)
            })
            .collect()
    }

    /// A YAML double-quoted scalar at the start of `text` (the escapes
    /// `extra_vars_yaml` writes), and what follows it.
    fn quoted(text: &str) -> Option<(String, &str)> {
        let mut chars = text.strip_prefix('"')?.char_indices();
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((out, text.get(i + 2..)?)),
                '\\' => {
                    let (_, e) = chars.next()?;
                    let digits = match e {
                        '"' | '\\' => {
                            out.push(e);
                            continue;
                        }
                        'u' => 4,
                        'U' => 8,
                        _ => return None,
                    };
                    let hex: String = chars.by_ref().take(digits).map(|(_, c)| c).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                c => out.push(c),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn vars_round_trip_seeds_hold() {
        super::vars_round_trip(include_bytes!(
            "../fuzz/seeds/vars_round_trip/yaml_specials"
        ));
        super::vars_round_trip(include_bytes!("../fuzz/seeds/vars_round_trip/templates"));
        let every_char: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        super::vars_round_trip(every_char.as_bytes());
    }
}
