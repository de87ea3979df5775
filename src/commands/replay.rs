//! `helpdesk replay`: a whole mailbox through exactly what `parse` does
//! (nothing runs, nothing is sent), on every core. The question it answers:
//! what would this helpdesk folder (or my edit of it) do with the mail we
//! already got?
//!
//! Files are listed first and read by the workers, so reading, deciding
//! and writing each message's JSON line all happen in parallel, and only
//! the messages at work are held in memory (an mbox is split up front: it
//! is one file).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::commands::terminal;
use crate::decide::loops;
use crate::decide::{Decider, Decision};
use crate::desk::config::Config;
use crate::desk::phrasebook::{Invalid, Missing};
use crate::mail;
use crate::outcome::Verdict;

/// One message of the mailbox.
#[derive(Debug)]
pub(crate) struct Source {
    /// `file.eml`, `Maildir/cur/…`, or `mbox#12`.
    pub name: String,
    body: Body,
}

#[derive(Debug)]
enum Body {
    /// A file of its own (Maildir, folder of `.eml`): read by a worker.
    File(PathBuf),
    /// Split out of an mbox.
    Bytes(Vec<u8>),
}

impl Source {
    fn file(path: PathBuf) -> Self {
        Self {
            name: path.display().to_string(),
            body: Body::File(path),
        }
    }

    fn bytes(&self) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
        match &self.body {
            Body::File(path) => std::fs::read(path).map(Into::into),
            Body::Bytes(bytes) => Ok(bytes.as_slice().into()),
        }
    }
}

/// Lists an mbox file, a Maildir (`cur/` and `new/`), or a folder of
/// `.eml` files, in name order.
pub(crate) fn read_sources(path: &Path) -> anyhow::Result<Vec<Source>> {
    let shown = path.display().to_string();
    if path.is_file() {
        let file = std::fs::File::open(path).with_context(|| shown.clone())?;
        let mut sources = Vec::new();
        for (n, message) in mail::mbox(BufReader::new(file)).enumerate() {
            let message = message.with_context(|| format!("{shown}: message {}", n + 1))?;
            sources.push(Source {
                name: format!("{shown}#{}", n + 1),
                body: Body::Bytes(message),
            });
        }
        return Ok(sources);
    }
    let maildir = path.join("cur").is_dir() || path.join("new").is_dir();
    let folders = if maildir {
        vec![path.join("cur"), path.join("new")]
    } else {
        vec![path.to_path_buf()]
    };
    let mut files = Vec::new();
    for folder in folders {
        let entries = match std::fs::read_dir(&folder) {
            Err(e) if maildir && e.kind() == std::io::ErrorKind::NotFound => continue,
            entries => entries.with_context(|| {
                format!("{shown}: not an mbox file, a Maildir or a folder of .eml files")
            })?,
        };
        for entry in entries {
            let entry = entry.with_context(|| folder.display().to_string())?;
            let name = entry.file_name();
            let wanted = if maildir {
                // Maildir: every file but dot files (`.` dirs, editors' leftovers).
                !name.as_encoded_bytes().starts_with(b".")
            } else {
                Path::new(&name).extension().is_some_and(|x| x == "eml")
            };
            if wanted
                && entry
                    .file_type()
                    .is_ok_and(|t| t.is_file() || (t.is_symlink() && entry.path().is_file()))
            {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files.into_iter().map(Source::file).collect())
}

/// What would happen to a message, in one word or two: the words of
/// `Verdict` (the order `run` answers in), after the loop check `run` makes
/// first.
pub(crate) fn verdict(config: &Config, mail: &mail::Mail, decision: &Decision) -> String {
    if let Some(silence) =
        loops::silence(mail, config.helpdesk_address.as_deref()).filter(|s| s.drops_request())
    {
        return format!("ignored: {}", short_silence(&silence));
    }
    Verdict::of(decision).to_string()
}

fn short_silence(silence: &loops::Silence) -> &'static str {
    match silence {
        loops::Silence::OwnLoop => "mail loop",
        _ => "automatic mail",
    }
}

/// What one helpdesk folder decided about one message: its verdict, its
/// variables (for `--diff`) and, when asked for, its JSON line.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub verdict: String,
    /// Kept for `--diff` only.
    pub vars: Map<String, Value>,
    /// Empty unless `--jsonl`.
    pub line: String,
}

/// A message's JSON line, written straight from borrowed values.
#[derive(serde::Serialize)]
struct Line<'a> {
    source: &'a str,
    message_id: Option<&'a str>,
    verdict: &'a str,
    request_type: Option<&'a str>,
    vars: &'a Map<String, Value>,
    reason: Option<&'a str>,
    missing: &'a [Missing],
    invalid: &'a [Invalid],
}

/// One message with one helpdesk folder.
fn replay_one(
    config: &Config,
    decider: &Decider<'_>,
    source: &Source,
    raw: &std::io::Result<std::borrow::Cow<'_, [u8]>>,
    jsonl: bool,
    keep_vars: bool,
) -> Replayed {
    let failed = |reason: String| Replayed {
        line: if jsonl {
            json!({"source": source.name, "verdict": "error", "reason": reason}).to_string()
        } else {
            String::new()
        },
        verdict: "error".into(),
        vars: Map::new(),
    };
    let raw = match raw {
        Ok(raw) => raw,
        Err(e) => return failed(format!("cannot read it: {e}")),
    };
    let mut mail = mail::read(raw, &config.sender_header);
    mail.truncated = raw.len() as u64 > config.limits.message_size;
    let decision = match decider.decide(&mail) {
        Ok(decision) => decision,
        Err(e) => return failed(e.to_string()),
    };
    let verdict = verdict(config, &mail, &decision);
    let line = if jsonl {
        serde_json::to_string(&Line {
            source: &source.name,
            message_id: mail.message_id.as_deref(),
            verdict: &verdict,
            request_type: decision.request_type.as_deref(),
            vars: &decision.vars,
            reason: decision.reason.as_deref(),
            missing: &decision.missing,
            invalid: &decision.invalid,
        })
        .unwrap_or_default()
    } else {
        String::new()
    };
    Replayed {
        verdict,
        vars: if keep_vars { decision.vars } else { Map::new() },
        line,
    }
}

/// Decides every source with each of `configs` (the second one is
/// `--diff`'s), in parallel: each message is read once. Returns, per
/// config, the outcomes in source order.
pub(crate) fn decide_all(
    configs: &[&Config],
    sources: &[Source],
    jsonl: bool,
    progress: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<Vec<Vec<Replayed>>> {
    let keywords = configs
        .iter()
        .map(|config| {
            let keywords = config.desk.keywords()?;
            // Thousands of subjects: index every phrase once.
            keywords.prepare();
            Ok(keywords)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let deciders: Vec<Decider<'_>> = configs
        .iter()
        .zip(&keywords)
        .map(|(config, keywords)| Decider::new(config, keywords))
        .collect();
    let keep_vars = configs.len() > 1;
    // An indexed parallel iterator collects in source order.
    let per_source: Vec<Vec<Replayed>> = sources
        .par_iter()
        .map(|source| {
            let raw = source.bytes();
            let replayed = configs
                .iter()
                .zip(&deciders)
                .map(|(config, decider)| {
                    replay_one(config, decider, source, &raw, jsonl, keep_vars)
                })
                .collect();
            if let Some(bar) = progress {
                bar.inc(1);
            }
            replayed
        })
        .collect();
    let mut per_config: Vec<Vec<Replayed>> = configs
        .iter()
        .map(|_| Vec::with_capacity(sources.len()))
        .collect();
    for replayed in per_source {
        for (list, one) in per_config.iter_mut().zip(replayed) {
            list.push(one);
        }
    }
    Ok(per_config)
}

/// The summary table: how many messages got each verdict.
pub(crate) fn summary(outcomes: &[Replayed]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for outcome in outcomes {
        *counts.entry(&outcome.verdict).or_default() += 1;
    }
    let mut out = String::new();
    let _ = writeln!(out, "{:>8}  verdict", "messages");
    for (verdict, count) in &counts {
        let _ = writeln!(out, "{count:>8}  {verdict}");
    }
    let _ = writeln!(out, "{:>8}  in all", outcomes.len());
    out
}

/// A message decided differently by two helpdesk folders (`--diff`).
#[derive(Debug, Serialize)]
pub(crate) struct Change<'a> {
    pub(crate) source: &'a str,
    pub(crate) before: &'a str,
    pub(crate) after: &'a str,
    /// The variables whose values differ, in name order.
    pub(crate) changed_vars: BTreeSet<&'a str>,
}

/// The messages whose decision differs between two helpdesk folders.
pub(crate) fn differences<'a>(
    sources: &'a [Source],
    before: &'a [Replayed],
    after: &'a [Replayed],
) -> Vec<Change<'a>> {
    sources
        .iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (a, b))| a.verdict != b.verdict || a.vars != b.vars)
        .map(|(source, (a, b))| Change {
            source: &source.name,
            before: &a.verdict,
            after: &b.verdict,
            changed_vars: a
                .vars
                .keys()
                .chain(b.vars.keys())
                .filter(|k| a.vars.get(k.as_str()) != b.vars.get(k.as_str()))
                .map(String::as_str)
                .collect(),
        })
        .collect()
}

/// What `replay` prints.
#[derive(Debug, Default)]
pub(crate) struct Printed {
    /// The JSON lines (`--jsonl`), or else the summary table.
    pub(crate) stdout: String,
    /// The summary table, after JSON lines.
    pub(crate) stderr: String,
}

/// `helpdesk replay`: every source decided with `configs` (the second is
/// `--diff`'s, read from `diff`), as it prints: the JSON lines and the
/// changes, the summary table and the changed messages.
pub(crate) fn replay(
    configs: &[&Config],
    sources: &[Source],
    jsonl: bool,
    diff: Option<&Path>,
) -> anyhow::Result<Printed> {
    use std::io::IsTerminal;
    // A progress bar on a terminal only: never in a pipe or a log.
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(sources.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} messages, {per_sec}, {eta} left",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let mut decided = decide_all(configs, sources, jsonl, bar.as_ref())?;
    let after = (decided.len() > 1).then(|| decided.remove(1));
    let lines = decided.remove(0);
    let changes = after
        .as_ref()
        .map(|after| differences(sources, &lines, after));
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let mut printed = Printed::default();
    if jsonl {
        for line in &lines {
            // Its vars and Message-ID come from the mails.
            printed.stdout.push_str(&terminal::escape_json(&line.line));
            printed.stdout.push('\n');
        }
        for change in changes.iter().flatten() {
            printed
                .stdout
                .push_str(&json!({ "changed": change }).to_string());
            printed.stdout.push('\n');
        }
    }
    let mut table = summary(&lines);
    if let Some(changes) = &changes {
        let diff = diff.map(|p| p.display().to_string()).unwrap_or_default();
        let _ = write!(
            table,
            "\n{} message(s) decided differently with {diff}:\n",
            changes.len()
        );
        for change in changes {
            let vars = Vec::from_iter(change.changed_vars.iter().copied());
            let vars = if vars.is_empty() {
                String::new()
            } else {
                format!(" (vars: {})", vars.join(", "))
            };
            let (source, before, after) = (change.source, change.before, change.after);
            let _ = writeln!(table, "  {source}: {before} -> {after}{vars}");
        }
    }
    if jsonl {
        printed.stderr = table;
    } else {
        printed.stdout.push_str(&table);
    }
    Ok(printed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replayed(verdict: &str, vars: Value) -> Replayed {
        Replayed {
            verdict: verdict.into(),
            vars: vars.as_object().cloned().unwrap_or_default(),
            line: String::new(),
        }
    }

    /// Only the messages decided differently are listed, with the
    /// variables that differ in name order, as JSON of the same shape as
    /// before the record was typed.
    #[test]
    fn differences_name_the_changed_vars() {
        let sources: Vec<Source> = ["a.eml", "b.eml", "c.eml"]
            .into_iter()
            .map(|name| Source::file(PathBuf::from(name)))
            .collect();
        let before = [
            replayed("runs storage", json!({"size": 1, "user": "al"})),
            replayed("help", json!({})),
            replayed("unclassified", json!({})),
        ];
        let after = [
            replayed("runs storage", json!({"user": "bo", "size": 2})),
            replayed("help", json!({})),
            replayed("runs storage", json!({})),
        ];
        let changes = differences(&sources, &before, &after);
        let json: Vec<String> = changes
            .iter()
            .map(|c| json!({ "changed": c }).to_string())
            .collect();
        assert_eq!(
            json,
            [
                r#"{"changed":{"source":"a.eml","before":"runs storage","after":"runs storage","changed_vars":["size","user"]}}"#,
                r#"{"changed":{"source":"c.eml","before":"unclassified","after":"runs storage","changed_vars":[]}}"#,
            ]
        );
    }
}
