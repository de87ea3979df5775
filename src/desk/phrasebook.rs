//! Phrasebooks: pull a request's variables out of its subject and body.
//!
//! `phrasebooks/<type>_phrases.txt` uses the `*section*` syntax with these
//! meanings, compatible with it-helpdesk:
//! - `*targets*` lists labels (`username:`). In listed order, the first label
//!   found fills `targets`; every other label found fills a variable named
//!   after it. A label captures the next token, or a whole double-quoted value.
//! - `*fields*` (an extension) lists more labels that only ever fill their
//!   own variable, never `targets`: a password must not become the target
//!   when the mail forgot `username:`.
//! - `*selftargets*` words (`my me`) set `selftargets`, and make `targets` the
//!   sender's local part when no label filled it.
//! - `*modifiers*` with `*unit*` read `by 5 gb` into `modifiers`, `amount`,
//!   `unit`.
//! - `*required*` (an extension) names the variables a request cannot do
//!   without; when one is missing nothing runs and the reply asks for it.
//! - `*secret*` (an extension) names variables, beyond those called
//!   `*password*`, `*secret*` or `*token*`, whose values never appear in
//!   replies or logs.
//! - `*patterns*` (an extension): lines `name: regex`; a value captured
//!   for that label or variable must match the whole regex, or the request
//!   is refused. `targets` always has a default pattern (no leading `-`,
//!   no white space or control characters, at most 128 characters).
//! - `*self*` (an extension) names what a sender under a `scope: self`
//!   grant may set for their own account: label variables, flags,
//!   `modifiers`, `amount`, `unit`. Without the section the request type is
//!   not self-service at all (see `trust::access`).
//! - Every other section is a flag, true when one of its phrases appears.

use regex::Regex;
use serde_json::{Map, Number, Value};

use crate::desk::phrases::{Folded, PhraseSet, fold_phrase, is_word_char};
use crate::desk::sections::{self, Section, SyntaxError, SyntaxErrorKind};

const TARGETS: &str = "targets";
const FIELDS: &str = "fields";
const REQUIRED: &str = "required";
const SECRET: &str = "secret";
const PATTERNS: &str = "patterns";
const SELF: &str = "self";
/// What `targets` must look like unless `*patterns*` says otherwise: it is
/// usually an account or host name that playbooks hand to modules.
const DEFAULT_TARGETS_RULE: &str = "no leading '-', no white space, at most 128 characters";

/// The default rule for `targets`, as code: it is checked for every mail,
/// and a regex this size costs more to build than to run.
fn default_targets_ok(value: &str) -> bool {
    !value.starts_with('-')
        && !value.is_empty()
        && value.chars().count() <= 128
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}
/// Sections with a meaning of their own; every other one is a flag.
const SPECIAL: &[&str] = &[
    PATTERNS,
    TARGETS,
    FIELDS,
    SELFTARGETS,
    MODIFIERS,
    UNIT,
    REQUIRED,
    SECRET,
    SELF,
];
const SELFTARGETS: &str = "selftargets";
const MODIFIERS: &str = "modifiers";
const UNIT: &str = "unit";

/// Variables that are not fields a request sets: helpdesk's own, and the
/// account it is about (which `scope: self` checks on its own). Every other
/// variable is a field (see `fields_set`).
const NOT_FIELDS: &[&str] = &[
    "request_type",
    "from",
    "subject",
    "message_id",
    TARGETS,
    SELFTARGETS,
];

/// Variables the helpdesk sets itself: these and [`NOT_FIELDS`]. A label
/// or flag of the same name would let a mail overwrite them
/// (`from: boss@example.com`).
const QUANTITY_VARS: &[&str] = &[MODIFIERS, "amount", UNIT];

fn built_in(name: &str) -> bool {
    NOT_FIELDS.contains(&name) || QUANTITY_VARS.contains(&name)
}

/// The fields a request's variables set (in the map's order): every variable
/// but helpdesk's own, `targets` and `selftargets`, unless it is null or
/// `false` (a label that was not found, a flag whose words are absent, no
/// quantity). An empty string or a zero counts as set: the allow-list
/// decides, not what a playbook might make of the value.
pub(crate) fn fields_set(vars: &Map<String, Value>) -> Vec<String> {
    vars.iter()
        .filter(|(var, value)| {
            !NOT_FIELDS.contains(&var.as_str())
                && !matches!(value, Value::Null | Value::Bool(false))
        })
        .map(|(var, _)| var.clone())
        .collect()
}

/// Names Ansible gives meaning to: as extra-vars (the highest precedence)
/// they would let a mail steer connections, privilege escalation or facts.
const ANSIBLE_RESERVED: &[&str] = &[
    "hostvars",
    "groups",
    "group_names",
    "inventory_hostname",
    "inventory_hostname_short",
    "inventory_dir",
    "inventory_file",
    "omit",
    "play_hosts",
    "playbook_dir",
    "role_path",
    "environment",
    "vars",
    "item",
];

/// A parsed phrasebook, ready to extract.
#[derive(Debug)]
pub(crate) struct Phrasebook {
    file: String,
    labels: Vec<Label>,
    has_selftargets: bool,
    selftargets_line: usize,
    flags: Vec<Flag>,
    quantity: Option<Quantity>,
    /// Flag and selftarget phrases, all searched in one pass.
    set: PhraseSet,
    /// The labels, by their index in `labels`.
    label_set: PhraseSet,
    /// Phrase texts by (group, number), for explaining hits.
    phrase_texts: Vec<Vec<(String, usize)>>,
    required: Vec<String>,
    secret: Vec<String>,
    /// `*self*`: what a user may set for their own account; `None` when
    /// the section is absent.
    self_service: Option<Vec<String>>,
    /// Per variable (label variable or `targets`): the compiled whole-value
    /// pattern and its text.
    patterns: Vec<(String, Regex, String)>,
}

/// A captured value that breaks a rule; the request is refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Invalid {
    pub var: String,
    /// The label it was written after, when there was one.
    pub label: Option<String>,
    pub why: String,
}

/// A variable a request needs but the mail did not give, and how to give it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Missing {
    pub var: String,
    /// What to write in the mail, e.g. `username: <value>`.
    pub form: String,
}

#[derive(Debug)]
struct Label {
    text: String,
    var: String,
    /// Listed under `*targets*`, so it may fill `targets`.
    may_target: bool,
    line: usize,
    /// A bare label (no colon) needs white space before its value.
    colon: bool,
}

#[derive(Debug)]
struct Flag {
    name: String,
}

#[derive(Debug)]
struct Quantity {
    /// Lower case, longest first.
    modifiers: Vec<String>,
    units: Vec<String>,
    /// How to write one, from the first listed words: `by <number> gb`.
    example: String,
    has_modifiers: bool,
    has_unit: bool,
    line: usize,
}

/// Where a variable's value came from, for `parse --explain`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Evidence {
    pub var: String,
    pub value: Value,
    /// Section and phrase that matched, with the phrasebook line.
    pub section: String,
    pub phrase: String,
    pub file: String,
    pub line: usize,
    /// Byte range in the searched text (`subject\nbody`), when it came from there.
    pub span: Option<(usize, usize)>,
    pub note: Option<String>,
}

/// What a phrasebook found.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Extraction {
    /// Variables in a stable order (flags, then labels, then quantity).
    pub vars: Map<String, Value>,
    pub evidence: Vec<Evidence>,
    /// Captured values that break a pattern or a limit.
    pub invalid: Vec<Invalid>,
}

/// The parts of a mail a phrasebook reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Input<'a> {
    /// Searched text: the subject, a newline, then the cleaned body.
    pub text: &'a str,
    /// Sender address, for self targets.
    pub sender: Option<&'a str>,
    /// Longest captured value accepted, in characters.
    pub max_value_length: usize,
}

impl Phrasebook {
    pub(crate) fn parse(file: &str, text: &str) -> Result<Self, SyntaxError> {
        let parsed = sections::parse(file, text)?;
        let error = |line, kind| SyntaxError::at_line(file, line, kind);
        let find = |name: &str| parsed.iter().find(|s| s.name == name);
        let labels = labels(find(TARGETS), find(FIELDS), &error)?;
        let flags_sections: Vec<&Section> = parsed
            .iter()
            .filter(|s| !SPECIAL.contains(&s.name.as_str()))
            .collect();
        let flags = flags(&flags_sections, &labels, &error)?;
        let selftargets = find(SELFTARGETS);
        let mut groups: Vec<&Section> = flags_sections;
        groups.extend(selftargets);
        let quantity = quantity(find(MODIFIERS), find(UNIT)).map_err(|line| {
            error(
                line,
                SyntaxErrorKind::BadVariable(MODIFIERS.into(), "cannot be matched".into()),
            )
        })?;
        let label_set = PhraseSet::new(
            labels
                .iter()
                .enumerate()
                .map(|(n, label)| (n, n, label.text.as_str())),
        );
        let mut book = Self {
            file: file.to_owned(),
            labels,
            has_selftargets: selftargets.is_some(),
            selftargets_line: selftargets.map_or(0, |s| s.line),
            flags,
            quantity,
            set: PhraseSet::new(groups.iter().enumerate().flat_map(|(group, section)| {
                section
                    .phrases
                    .iter()
                    .enumerate()
                    .map(move |(number, p)| (group, number, p.text.as_str()))
            })),
            phrase_texts: groups.iter().map(|s| names(Some(s))).collect(),
            label_set,
            required: Vec::new(),
            secret: names(find(SECRET))
                .into_iter()
                .map(|(var, _)| var)
                .collect(),
            self_service: None,
            patterns: patterns(find(PATTERNS), &error)?,
        };
        book.required = book.settable(find(REQUIRED), &error, |book, var| {
            book.form(var).map(|_| ()).ok_or_else(|| {
                "is required but nothing in this phrasebook sets it: name a label's variable, targets, a flag, modifiers, amount or unit".into()
            })
        })?;
        if let Some(section) = find(SELF) {
            book.self_service =
                Some(book.settable(Some(section), &error, Self::check_self_name)?);
        }
        Ok(book)
    }

    /// The names a section lists, each checked by `check` (which says why
    /// a name cannot be listed).
    fn settable(
        &self,
        section: Option<&Section>,
        error: Locate<'_>,
        check: impl Fn(&Self, &str) -> Result<(), String>,
    ) -> Result<Vec<String>, SyntaxError> {
        names(section)
            .into_iter()
            .map(|(var, line)| match check(self, &var) {
                Ok(()) => Ok(var),
                Err(why) => Err(error(line, SyntaxErrorKind::BadVariable(var, why))),
            })
            .collect()
    }

    /// A `*self*` entry must be something this phrasebook sets; `targets`
    /// and `selftargets` are not listed, because `scope: self` checks the
    /// account on its own.
    fn check_self_name(&self, var: &str) -> Result<(), String> {
        if var == TARGETS || var == SELFTARGETS {
            return Err("need not be listed under *self*: under scope: self a request may always name the sender's own account, and only that; list only the labels' variables and flags a user may set".to_owned());
        }
        if self.form(var).is_some() {
            return Ok(());
        }
        let mut known: Vec<&str> = self.labels.iter().map(|l| l.var.as_str()).collect();
        known.extend(self.flags.iter().map(|f| f.name.as_str()));
        if let Some(q) = &self.quantity {
            known.extend(q.has_modifiers.then_some(MODIFIERS));
            known.push("amount");
            known.extend(q.has_unit.then_some(UNIT));
        }
        Err(format!(
            "is under *self* but nothing in this phrasebook sets it: name a label's variable (without the colon) or a flag of this phrasebook ({})",
            if known.is_empty() {
                "it has none".to_owned()
            } else {
                known.join(", ")
            }
        ))
    }

    /// What `*self*` lets a user set for their own account, or `None`
    /// when the phrasebook has no `*self*` section.
    pub(crate) fn self_service(&self) -> Option<&[String]> {
        self.self_service.as_deref()
    }

    /// Variables named in `*secret*`.
    pub(crate) fn secret_names(&self) -> &[String] {
        &self.secret
    }

    /// The required variables this extraction lacks (null, or a false flag).
    pub(crate) fn missing(&self, vars: &Map<String, Value>) -> Vec<Missing> {
        self.required
            .iter()
            .filter(|var| {
                vars.get(var.as_str())
                    .is_none_or(|v| v.is_null() || *v == Value::Bool(false))
            })
            .filter_map(|var| {
                Some(Missing {
                    var: var.clone(),
                    form: self.form(var)?,
                })
            })
            .collect()
    }

    /// How a mail gives `var`, or `None` when nothing here sets it.
    fn form(&self, var: &str) -> Option<String> {
        let value = "<value>";
        if var == TARGETS {
            return self
                .labels
                .iter()
                .find(|l| l.may_target)
                .map(|l| format!("{} {value}", l.text));
        }
        if let Some(label) = self.labels.iter().find(|l| l.var == var) {
            return Some(format!("{} {value}", label.text));
        }
        if let Some(group) = self.flags.iter().position(|f| f.name == var) {
            let words: Vec<&str> = self
                .phrase_texts
                .get(group)
                .map(|g| g.iter().map(|(p, _)| p.as_str()).collect())
                .unwrap_or_default();
            return Some(format!("one of the words: {}", words.join(", ")));
        }
        let quantity = self.quantity.as_ref()?;
        let known = match var {
            MODIFIERS => quantity.has_modifiers,
            UNIT => quantity.has_unit,
            "amount" => true,
            _ => false,
        };
        known.then(|| quantity.example.clone())
    }

    /// Reads the variables out of a mail.
    pub(crate) fn extract(&self, input: Input<'_>) -> Extraction {
        let mut out = Extraction::default();
        // One tokenization of the mail serves labels and flags alike.
        let folded = Folded::new(input.text);
        self.extract_labels(input, &folded, &mut out);
        self.extract_flags(input, &folded, &mut out);
        self.extract_quantity(input, &mut out);
        self.check_values(input, &mut out);
        out
    }

    /// Every captured value: no control characters, within the length
    /// limit, and matching its pattern (by label variable, and for the
    /// value that became `targets`, by `targets`).
    fn check_values(&self, input: Input<'_>, out: &mut Extraction) {
        for e in &out.evidence {
            let Value::String(value) = &e.value else {
                continue;
            };
            let label = self
                .labels
                .iter()
                .find(|l| l.text == e.phrase && e.section != SELFTARGETS);
            let mut rules: Vec<&str> = vec![e.var.as_str()];
            if let Some(label) = label {
                rules.push(label.var.as_str());
            }
            let why = if value.chars().any(char::is_control) {
                Some("contains control characters".to_owned())
            } else if value.chars().count() > input.max_value_length {
                Some(format!(
                    "is longer than {} characters",
                    input.max_value_length
                ))
            } else if let Some((var, _, text)) = self
                .patterns
                .iter()
                .filter(|(var, _, _)| rules.contains(&var.as_str()))
                .find(|(_, re, _)| !re.is_match(value))
            {
                Some(format!("does not match the pattern for {var}: {text}"))
            } else if e.var == TARGETS
                && !self.patterns.iter().any(|(var, _, _)| var == TARGETS)
                && !default_targets_ok(value)
            {
                Some(format!("does not fit targets: {DEFAULT_TARGETS_RULE}"))
            } else {
                None
            };
            if let Some(why) = why
                && !out.invalid.iter().any(|i| i.var == e.var)
            {
                out.invalid.push(Invalid {
                    var: e.var.clone(),
                    label: label.map(|l| l.text.clone()),
                    why,
                });
            }
        }
    }

    fn extract_labels(&self, input: Input<'_>, folded: &Folded<'_>, out: &mut Extraction) {
        out.vars.insert(TARGETS.into(), Value::Null);
        let mut targets_filled = false;
        let mut found: Vec<Option<(String, (usize, usize))>> = vec![None; self.labels.len()];
        for hit in self.label_set.hits(folded) {
            let (Some(label), Some(slot @ None)) =
                (self.labels.get(hit.group), found.get_mut(hit.group))
            else {
                continue;
            };
            *slot = label_value(input.text, hit.start, hit.end, label.colon);
        }
        for (label, found) in self.labels.iter().zip(found) {
            let Some((value, span)) = found else {
                continue;
            };
            let (var, value) = if targets_filled || !label.may_target {
                (label.var.clone(), value)
            } else {
                targets_filled = true;
                (TARGETS.to_owned(), local_part(&value).to_owned())
            };
            if out.vars.get(&var).is_some_and(|v| !v.is_null()) {
                continue;
            }
            out.vars.insert(var.clone(), Value::String(value.clone()));
            out.evidence.push(Evidence {
                var,
                value: Value::String(value),
                section: if label.may_target { TARGETS } else { FIELDS }.into(),
                phrase: label.text.clone(),
                file: self.file.clone(),
                line: label.line,
                span: Some(span),
                note: None,
            });
        }
    }

    fn extract_flags(&self, input: Input<'_>, folded: &Folded<'_>, out: &mut Extraction) {
        let self_group = self.flags.len();
        let mut first_hit = vec![None; self_group + 1];
        for hit in self.set.hits(folded) {
            if let Some(slot @ None) = first_hit.get_mut(hit.group) {
                *slot = Some(hit);
            }
        }
        let explain =
            |out: &mut Extraction, var: &str, section: &str, hit: crate::desk::phrases::Hit| {
                let (phrase, line) = self
                    .phrase_texts
                    .get(hit.group)
                    .and_then(|g| g.get(hit.phrase))
                    .cloned()
                    .unwrap_or_default();
                out.evidence.push(Evidence {
                    var: var.to_owned(),
                    value: Value::Bool(true),
                    section: section.to_owned(),
                    phrase,
                    file: self.file.clone(),
                    line,
                    span: Some((hit.start, hit.end)),
                    note: None,
                });
            };

        if self.has_selftargets {
            let hit = first_hit.get(self_group).copied().flatten();
            out.vars
                .insert(SELFTARGETS.into(), Value::Bool(hit.is_some()));
            if let Some(hit) = hit {
                explain(out, SELFTARGETS, SELFTARGETS, hit);
                let unfilled = out.vars.get(TARGETS).is_none_or(Value::is_null);
                if let (true, Some(sender)) = (unfilled, input.sender) {
                    let local = local_part(sender).to_owned();
                    out.vars
                        .insert(TARGETS.into(), Value::String(local.clone()));
                    out.evidence.push(Evidence {
                        var: TARGETS.into(),
                        value: Value::String(local),
                        section: SELFTARGETS.into(),
                        phrase: String::new(),
                        file: self.file.clone(),
                        line: self.selftargets_line,
                        span: None,
                        note: Some("no label filled targets, so the sender's local part".into()),
                    });
                }
            }
        } else {
            out.vars.insert(SELFTARGETS.into(), Value::Bool(false));
        }

        for (group, flag) in self.flags.iter().enumerate() {
            let hit = first_hit.get(group).copied().flatten();
            out.vars
                .insert(flag.name.clone(), Value::Bool(hit.is_some()));
            if let Some(hit) = hit {
                explain(out, &flag.name, &flag.name, hit);
            }
        }
    }

    fn extract_quantity(&self, input: Input<'_>, out: &mut Extraction) {
        let Some(quantity) = &self.quantity else {
            return;
        };
        let found = quantity.find(input.text);
        let (modifier, amount, unit) = match &found {
            Some((m, a, u, _)) => (
                m.clone().map(Value::String),
                Value::Number(a.clone()),
                u.clone().map(Value::String),
            ),
            None => (None, Value::Null, None),
        };
        if quantity.has_modifiers {
            out.vars
                .insert(MODIFIERS.into(), modifier.unwrap_or(Value::Null));
        }
        out.vars.insert("amount".into(), amount.clone());
        if quantity.has_unit {
            out.vars.insert(UNIT.into(), unit.unwrap_or(Value::Null));
        }
        if let Some((_, _, _, (start, end))) = found {
            out.evidence.push(Evidence {
                var: "amount".into(),
                value: amount,
                section: if quantity.has_modifiers {
                    MODIFIERS
                } else {
                    UNIT
                }
                .into(),
                phrase: input.text.get(start..end).unwrap_or_default().to_owned(),
                file: self.file.clone(),
                line: quantity.line,
                span: Some((start, end)),
                note: None,
            });
        }
    }
}

/// Makes the error at a line of the phrasebook.
type Locate<'a> = &'a dyn Fn(usize, SyntaxErrorKind) -> SyntaxError;

/// The phrases of a section, with their lines; none when it is absent.
fn names(section: Option<&Section>) -> Vec<(String, usize)> {
    section
        .map(|s| s.phrases.iter().map(|p| (p.text.clone(), p.line)).collect())
        .unwrap_or_default()
}

/// The `*targets*` labels, then the `*fields*` ones, in listed order.
fn labels(
    targets: Option<&Section>,
    fields: Option<&Section>,
    error: Locate<'_>,
) -> Result<Vec<Label>, SyntaxError> {
    let mut labels: Vec<Label> = Vec::new();
    for (section, may_target) in [(targets, true), (fields, false)] {
        for phrase in section.map(|s| s.phrases.as_slice()).unwrap_or_default() {
            let var = label_var(&phrase.text);
            check_var_name(&var, may_target && labels.is_empty()).map_err(|why| {
                error(
                    phrase.line,
                    SyntaxErrorKind::BadVariable(phrase.text.clone(), why),
                )
            })?;
            labels.push(Label {
                text: phrase.text.clone(),
                var,
                may_target,
                line: phrase.line,
                colon: phrase.text.trim_end().ends_with(':'),
            });
        }
    }
    Ok(labels)
}

/// One flag per section without a meaning of its own, named after it.
fn flags(
    sections: &[&Section],
    labels: &[Label],
    error: Locate<'_>,
) -> Result<Vec<Flag>, SyntaxError> {
    sections
        .iter()
        .map(|section| {
            let bad = |why| {
                error(
                    section.line,
                    SyntaxErrorKind::BadVariable(section.name.clone(), why),
                )
            };
            check_var_name(&section.name, false).map_err(bad)?;
            if let Some(label) = labels.iter().find(|l| l.var == section.name) {
                return Err(bad(format!(
                    "is also the label {} on line {}",
                    label.text, label.line
                )));
            }
            Ok(Flag {
                name: section.name.clone(),
            })
        })
        .collect()
}

/// `*patterns*` lines: `name: regex` (the name a label, with or without
/// its colon, or `targets`). The regex must match the whole value.
fn patterns(
    section: Option<&Section>,
    error: Locate<'_>,
) -> Result<Vec<(String, Regex, String)>, SyntaxError> {
    let Some(section) = section else {
        return Ok(Vec::new());
    };
    let mut lines: Vec<(usize, Vec<&str>)> = Vec::new();
    for phrase in &section.phrases {
        match lines.last_mut() {
            Some((line, words)) if *line == phrase.line => words.push(&phrase.text),
            _ => lines.push((phrase.line, vec![phrase.text.as_str()])),
        }
    }
    lines
        .into_iter()
        .map(|(line, words)| {
            let bad = |why: String| error(line, SyntaxErrorKind::BadVariable(PATTERNS.into(), why));
            let (name, rest) = words
                .split_first()
                .ok_or_else(|| bad("empty line".into()))?;
            if !name.ends_with(':') || rest.is_empty() {
                return Err(bad(
                    "lines are `name: regex`, e.g. username: ^[a-z_][a-z0-9_-]{0,31}$".into(),
                ));
            }
            let text = rest.join(" ");
            let inner = text.strip_prefix('^').unwrap_or(&text);
            let inner = inner.strip_suffix('$').unwrap_or(inner);
            let re = regex::RegexBuilder::new(&format!("^(?:{inner})$"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    bad(format!(
                        "pattern for {name} is not a regex: {}",
                        e.to_string().lines().last().unwrap_or_default()
                    ))
                })?;
            Ok((label_var(name), re, text))
        })
        .collect()
}

/// `first name:` → `first_name`.
fn label_var(label: &str) -> String {
    label
        .trim_end_matches(':')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("_")
        .to_lowercase()
}

fn check_var_name(name: &str, becomes_targets: bool) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err("is not a usable variable name: use letters, digits and '_'".into());
    }
    // The first label becomes `targets` and never sets a variable of its own.
    if !becomes_targets && built_in(name) {
        return Err(format!(
            "would overwrite the built-in variable {name}: rename it"
        ));
    }
    if name.starts_with("ansible_") || ANSIBLE_RESERVED.contains(&name) {
        return Err(format!("is a name Ansible reserves ({name}): rename it"));
    }
    Ok(())
}

/// The value after a label found at `start..end`: on the same line, a
/// quoted value whole (`"John Smith"`, `“John Smith”`), else the next
/// white-space delimited token, trimmed. `None` when there is none.
fn label_value(
    text: &str,
    start: usize,
    end: usize,
    colon: bool,
) -> Option<(String, (usize, usize))> {
    let label = text.get(start..end)?;
    if label.contains('\n') {
        return None;
    }
    let rest = text.get(end..)?;
    let value_at = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    // `employee john`: a label without a colon needs space before its value.
    if !colon && value_at == 0 {
        return None;
    }
    let rest = rest.get(value_at..)?;
    let line = rest.split(['\r', '\n']).next().unwrap_or_default();
    let value = match line.chars().next()? {
        open @ ('"' | '“') => {
            let close = if open == '"' { '"' } else { '”' };
            let inner = line.get(open.len_utf8()..)?;
            match inner.find(close) {
                Some(at) => inner.get(..at)?.trim().to_owned(),
                None => trim_token(line.split_whitespace().next()?).to_owned(),
            }
        }
        _ => trim_token(line.split_whitespace().next()?).to_owned(),
    };
    let span_end = end + value_at + line.len().min(value.len() + 2);
    (!value.is_empty()).then_some((value, (start, span_end)))
}

/// Trailing punctuation and surrounding quotes or brackets are not part of
/// a value: `john.`, `'john'`, `<alice@example.com>`.
fn trim_token(token: &str) -> &str {
    token
        .trim_start_matches(['"', '\'', '<', '(', '[', '`', '“', '‘'])
        .trim_end_matches([
            '.', ',', ';', ':', '!', '?', ')', '"', '\'', '>', ']', '`', '”', '’',
        ])
}

/// An address keeps only its local part: `alice@example.com` → `alice`.
fn local_part(value: &str) -> &str {
    let value = value.strip_prefix("mailto:").unwrap_or(value);
    value.rsplit_once('@').map_or(value, |(local, _)| local)
}

fn number(text: &str) -> Option<Number> {
    if text.contains('.') {
        Number::from_f64(text.parse().ok()?)
    } else {
        text.parse::<u64>().ok().map(Number::from)
    }
}

/// The `by 5 gb` pattern, from whichever of the two sections exist.
fn quantity(
    modifiers: Option<&Section>,
    unit: Option<&Section>,
) -> Result<Option<Quantity>, usize> {
    if modifiers.is_none() && unit.is_none() {
        return Ok(None);
    }
    let words = |section: Option<&Section>| {
        let mut words: Vec<String> = section
            .map(|s| s.phrases.iter().map(|p| fold_phrase(&p.text)).collect())
            .unwrap_or_default();
        // Longest first, so `gb` is not cut short by a listed `g`.
        words.sort_by_key(|w| std::cmp::Reverse(w.len()));
        words
    };
    let line = modifiers.or(unit).map_or(0, |s| s.line);
    let first = |s: Option<&Section>| s.and_then(|s| s.phrases.first()).map(|p| p.text.clone());
    let example = [first(modifiers), Some("<number>".to_owned()), first(unit)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Some(Quantity {
        modifiers: words(modifiers),
        units: words(unit),
        example,
        has_modifiers: modifiers.is_some(),
        has_unit: unit.is_some(),
        line,
    }))
}

impl Quantity {
    /// The first `<modifier> <number> <unit>` in `text` (the parts its
    /// sections ask for): `by 5gb`, `to 3.5 GB`. Returns the modifier and
    /// unit as listed (lower case), the amount, and the byte range.
    #[allow(clippy::type_complexity)]
    fn find(&self, text: &str) -> Option<(Option<String>, Number, Option<String>, (usize, usize))> {
        if (self.has_modifiers && self.modifiers.is_empty())
            || (self.has_unit && self.units.is_empty())
        {
            return None;
        }
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let digit = bytes.get(at).is_some_and(u8::is_ascii_digit);
            let after_word = text
                .get(..at)
                .and_then(|t| t.chars().next_back())
                .is_some_and(is_word_char);
            if !digit || after_word {
                at += 1;
                continue;
            }
            let start = at;
            let found = self.at_number(text, start);
            // Skip the rest of this run of digits.
            while bytes
                .get(at)
                .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
            {
                at += 1;
            }
            if found.is_some() {
                return found;
            }
        }
        None
    }

    #[allow(clippy::type_complexity)]
    fn at_number(
        &self,
        text: &str,
        start: usize,
    ) -> Option<(Option<String>, Number, Option<String>, (usize, usize))> {
        let rest = text.get(start..)?;
        let integer = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut end = start + integer;
        if integer > 15 {
            return None;
        }
        let after = text.get(end..)?;
        if let Some(fraction) = after.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if (1..=6).contains(&digits) {
                end += 1 + digits;
            }
        }
        let amount = number(text.get(start..end)?)?;
        let modifier = if self.has_modifiers {
            Some(self.modifier_before(text, start)?)
        } else {
            None
        };
        let begin = modifier.as_ref().map_or(start, |m| {
            text.get(..start)
                .map_or(start, |b| b.trim_end_matches([' ', '\t']).len() - m.len())
        });
        let (unit, end) = if self.has_unit {
            let (unit, end) = self.unit_after(text, end)?;
            (Some(unit), end)
        } else {
            if text
                .get(end..)
                .and_then(|t| t.chars().next())
                .is_some_and(is_word_char)
            {
                return None;
            }
            (None, end)
        };
        Some((modifier, amount, unit, (begin, end)))
    }

    /// The listed modifier (lower case) that ends, as a word, at the white
    /// space before the number at `start`.
    fn modifier_before(&self, text: &str, start: usize) -> Option<String> {
        let before = text.get(..start)?;
        let trimmed = before.trim_end_matches([' ', '\t']);
        if trimmed.len() == before.len() {
            return None;
        }
        // Only the end can hold a modifier: lower-casing everything
        // before every number made a mail of many numbers quadratic.
        let longest = self
            .modifiers
            .iter()
            .map(|m| m.chars().count())
            .max()
            .unwrap_or(0);
        let tail_start = trimmed
            .char_indices()
            .rev()
            .nth(longest)
            .map_or(0, |(i, _)| i);
        let lower = trimmed[tail_start..].to_lowercase();
        let at_start = tail_start == 0;
        let word = self.modifiers.iter().find(|m| {
            lower.ends_with(m.as_str())
                && (lower.len() > m.len() || at_start)
                && !lower[..lower.len() - m.len()]
                    .chars()
                    .next_back()
                    .is_some_and(is_word_char)
        })?;
        Some(word.clone())
    }

    /// The listed unit (lower case) that follows, as a word, the number
    /// ending at `end`, and where the unit ends.
    fn unit_after(&self, text: &str, end: usize) -> Option<(String, usize)> {
        let after = text.get(end..)?;
        let gap = after.len() - after.trim_start_matches([' ', '\t']).len();
        let rest = after.get(gap..)?;
        let unit = self.units.iter().find(|u| {
            rest.get(..u.len())
                .is_some_and(|head| head.to_lowercase() == **u)
                && !rest
                    .get(u.len()..)
                    .and_then(|t| t.chars().next())
                    .is_some_and(is_word_char)
        })?;
        Some((unit.clone(), end + gap + unit.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORAGE: &str = "*targets*\nemployee: user: username: account:\n*selftargets*\nmy me myself i\n*verbs_positive*\nadd more increase\n*verbs_negative*\nreduce decrease less\n*queries*\n'how much' left 'what is' 'have i' 'query'\n*modifiers*\nby to\n*unit*\ngb\n";
    const USERS: &str = "*targets*\nusername: user: password: first_name: last_name: 'first name:'\n*verbs_positive*\nnew add create\n*verbs_negative*\ndelete remove\n";

    fn extract(book: &str, text: &str, sender: &str) -> Map<String, Value> {
        let book = Phrasebook::parse("p.txt", book).unwrap_or_else(|e| panic!("{e}"));
        book.extract(Input {
            text,
            sender: Some(sender),
            max_value_length: 1024,
        })
        .vars
    }

    /// Every variable `want` names has its value in what `book` reads
    /// from `text` sent by `sender`.
    fn expect(book: &str, text: &str, sender: &str, want: &Value) {
        let vars = extract(book, text, sender);
        for (var, value) in want.as_object().into_iter().flatten() {
            assert_eq!(vars.get(var), Some(value), "{var} in {vars:?}");
        }
    }

    #[test]
    fn storage_self_request() {
        let mail = "Increase Storage Quota\nHello, I'd like to increase my storage quota by 9.3 GB please.";
        let want = serde_json::json!({
            "targets": "alice", "selftargets": true,
            "verbs_positive": true, "verbs_negative": false, "queries": false,
            "modifiers": "by", "amount": 9.3, "unit": "gb",
        });
        expect(STORAGE, mail, "alice@example.com", &want);
    }

    #[test]
    fn storage_for_a_named_user() {
        let mail = "storage\nIncrease the storage allocation for the user: alicesmith to 3.5gb";
        let want = serde_json::json!({
            "targets": "alicesmith", "modifiers": "to", "amount": 3.5, "unit": "gb",
            "selftargets": false,
        });
        expect(STORAGE, mail, "boss@example.com", &want);
    }

    #[test]
    fn explicit_label_wins_over_self_words() {
        let vars = extract(
            STORAGE,
            "quota\nplease give me more for username: bob",
            "alice@example.com",
        );
        assert_eq!(vars["targets"], "bob");
        assert_eq!(vars["selftargets"], true);
    }

    #[test]
    fn label_spellings_and_trimming() {
        for text in [
            "username:john",
            "Username : john",
            "username: john.",
            "username: 'john'",
            "USERNAME:\t\"john\"",
        ] {
            let vars = extract(USERS, text, "a@example.com");
            assert_eq!(vars["targets"], "john", "{text}");
        }
        let vars = extract(
            USERS,
            "user: <john@example.com>, first name: \"John Smith\"",
            "a@example.com",
        );
        assert_eq!(vars["targets"], "john");
        assert_eq!(vars["first_name"], "John Smith");
    }

    #[test]
    fn other_labels_fill_their_own_variables_as_strings() {
        let mail = "New User\nusername: john\npassword: 1234\nfirst_name: John\nlast_name: Smith";
        let want = serde_json::json!({
            "targets": "john", "password": "1234", "first_name": "John", "last_name": "Smith",
            "verbs_positive": true,
        });
        expect(USERS, mail, "a@example.com", &want);
        let vars = extract(USERS, mail, "a@example.com");
        assert!(!vars.contains_key("username"));
        assert!(!vars.contains_key("user"));
    }

    #[test]
    fn a_label_inside_a_longer_word_does_not_count() {
        let vars = extract(USERS, "superuser: x\nusername:", "a@example.com");
        assert_eq!(vars["targets"], Value::Null);
    }

    #[test]
    fn fields_never_fill_targets() {
        let book = "*targets*\nusername: user:\n*fields*\npassword: first_name:\n";
        let vars = extract(
            book,
            "New User\npassword: Secret42\nfirst_name: John",
            "a@example.com",
        );
        assert_eq!(vars["targets"], Value::Null);
        assert_eq!(vars["password"], "Secret42");
        let vars = extract(book, "password: Secret42\nuser: john", "a@example.com");
        assert_eq!(vars["targets"], "john");
        assert_eq!(vars["password"], "Secret42");
        // Without *fields*, it-helpdesk's rule holds: the first label found fills targets.
        let vars = extract(USERS, "password: Secret42", "a@example.com");
        assert_eq!(vars["targets"], "Secret42");
        // Two spellings of one field: the first listed that is found wins.
        let vars = extract(
            USERS,
            "user: x\nfirst name: A\nfirst_name: B",
            "a@example.com",
        );
        assert_eq!(vars["first_name"], "B");
    }

    #[test]
    fn required_variables_and_how_to_give_them() {
        let book = format!("{STORAGE}*required*\ntargets amount verbs_positive\n*secret*\npin\n");
        let book = Phrasebook::parse("p.txt", &book).unwrap();
        let vars = book
            .extract(Input {
                text: "quota\nplease",
                sender: None,
                max_value_length: 1024,
            })
            .vars;
        let missing: Vec<(String, String)> = book
            .missing(&vars)
            .into_iter()
            .map(|m| (m.var, m.form))
            .collect();
        assert_eq!(
            missing,
            vec![
                ("targets".into(), "employee: <value>".into()),
                ("amount".into(), "by <number> gb".into()),
                (
                    "verbs_positive".into(),
                    "one of the words: add, more, increase".into()
                ),
            ]
        );
        let vars = book
            .extract(Input {
                text: "quota\nadd to user: bob by 2 gb",
                sender: None,
                max_value_length: 1024,
            })
            .vars;
        assert!(book.missing(&vars).is_empty());
        assert_eq!(book.secret_names(), ["pin".to_owned()]);
        let err = Phrasebook::parse("p.txt", "*targets*\nuser:\n*required*\nnope\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("p.txt:4: 'nope' is required but nothing"),
            "{err}"
        );
    }

    fn invalid(book: &str, text: &str, sender: &str) -> Vec<(String, String)> {
        let book = Phrasebook::parse("p.txt", book).unwrap();
        book.extract(Input {
            text,
            sender: Some(sender),
            max_value_length: 20,
        })
        .invalid
        .into_iter()
        .map(|i| (i.var, i.why))
        .collect()
    }

    #[test]
    fn values_are_checked_against_patterns_and_limits() {
        let book = format!(
            "{USERS}*patterns*\nusername: ^[a-z_][a-z0-9_-]{{0,31}}$\nfirst_name: [A-Z][a-z]+\n"
        );
        assert!(invalid(&book, "username: john\nfirst_name: John", "a@example.com").is_empty());
        let got = invalid(
            &book,
            "username: John.Smith\nfirst_name: john",
            "a@example.com",
        );
        assert_eq!(
            got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
            ["targets", "first_name"]
        );
        assert!(got[0].1.contains("pattern for username"), "{got:?}");
        // The default targets pattern: no leading dash, no controls, bounded.
        for hostile in [
            "username: --become",
            "username: -e@/etc/shadow",
            "username: jo\u{0}hn",
            "username: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(
                invalid(USERS, hostile, "a@example.com").len(),
                1,
                "{hostile:?}"
            );
        }
        // A self target is checked too.
        assert_eq!(invalid(STORAGE, "give me more", "-rf@example.com").len(), 1);
        let err =
            Phrasebook::parse("p.txt", "*targets*\nuser:\n*patterns*\nuser: (\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("p.txt:4: 'patterns' pattern for user: is not a regex"),
            "{err}"
        );
    }

    #[test]
    fn integer_amounts_are_integers() {
        let vars = extract(STORAGE, "add by 10 GB", "a@example.com");
        assert_eq!(vars["amount"], serde_json::json!(10));
        assert_eq!(vars["unit"], "gb");
        let vars = extract(STORAGE, "add 10 GB", "a@example.com");
        assert_eq!(vars["amount"], Value::Null);
        assert_eq!(vars["modifiers"], Value::Null);
    }

    #[test]
    fn self_section_lists_labels_flags_and_quantity_parts() {
        let book = format!("{STORAGE}*fields*\npin:\n*self*\nqueries pin\namount\n");
        let book = Phrasebook::parse("p.txt", &book).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            book.self_service(),
            Some(["queries".to_owned(), "pin".to_owned(), "amount".to_owned()].as_slice())
        );
        // Absent section: None, which is not the same as an empty one.
        assert_eq!(
            Phrasebook::parse("p.txt", STORAGE).unwrap().self_service(),
            None
        );
        let empty = format!("{STORAGE}*self*\n");
        assert_eq!(
            Phrasebook::parse("p.txt", &empty).unwrap().self_service(),
            Some([].as_slice())
        );
        // Anything the book does not set is an error at file:line.
        for (entry, want) in [
            (
                "nope",
                "'nope' is under *self* but nothing in this phrasebook sets it",
            ),
            ("user:", "'user:' is under *self* but nothing"),
            ("targets", "'targets' need not be listed under *self*"),
            ("selftargets", "'selftargets' need not be listed"),
        ] {
            let text = format!("{STORAGE}*self*\nqueries\n{entry}\n");
            let line = text.lines().count();
            let err = Phrasebook::parse("p.txt", &text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("p.txt:{line}: {want}")),
                "{entry}: {err}"
            );
        }
        let err = Phrasebook::parse("p.txt", "*targets*\nuser:\n*self*\nunit\n").unwrap_err();
        assert!(err.to_string().contains("(user)"), "{err}");
    }

    #[test]
    fn what_counts_as_a_set_field() {
        let vars = extract(
            STORAGE,
            "quota\nhow much have i left, user: alice account: bob",
            "alice@example.com",
        );
        // targets, selftargets and false flags are not fields; a second label is.
        let mut got = fields_set(&vars);
        got.sort();
        assert_eq!(got, ["account", "queries"]);
        let vars = extract(STORAGE, "quota\nadd to me by 2 gb", "alice@example.com");
        let mut got = fields_set(&vars);
        got.sort();
        assert_eq!(got, ["amount", "modifiers", "unit", "verbs_positive"]);
        let mut vars = Map::new();
        for (var, value) in [
            ("from", Value::from("a@example.com")),
            ("subject", Value::from("x")),
            ("message_id", Value::from("x@y")),
            ("request_type", Value::from("storage")),
            ("targets", Value::from("a")),
            ("selftargets", Value::Bool(true)),
            ("off", Value::Bool(false)),
            ("absent", Value::Null),
            ("empty", Value::from("")),
            ("zero", Value::from(0)),
        ] {
            vars.insert(var.into(), value);
        }
        let mut got = fields_set(&vars);
        got.sort();
        assert_eq!(got, ["empty", "zero"]);
    }

    #[test]
    fn dangerous_variable_names_are_refused() {
        for book in [
            "*targets*\nusername: from:\n",
            "*targets*\nusername: ansible_host:\n",
            "*targets*\nusername: hostvars:\n",
            "*subject*\nx\n",
            "*targets*\nuser: 'bad-name:'\n",
        ] {
            let err = Phrasebook::parse("p.txt", book).unwrap_err();
            assert!(err.to_string().starts_with("p.txt:"), "{err}");
        }
    }
}
