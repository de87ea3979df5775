//! `helpdesk replay`: a whole mailbox through exactly what `parse` does
//! (nothing runs, nothing is sent), on every core. The question it answers:
//! what would this helpdesk folder (or my edit of it) do with the mail we
//! already got?
//!
//! Files are listed first and read by the workers, so reading, deciding
//! and writing each message's JSON line all happen in parallel, and only
//! the messages at work are held in memory (an mbox is split up front: it
//! is one file).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, anyhow};
use serde_json::{Map, Value, json};

use crate::decide::loops;
use crate::decide::trust::Access;
use crate::decide::{Decider, Decision};
use crate::desk::HELP;
use crate::desk::config::Config;
use crate::desk::phrasebook::{Invalid, Missing};
use crate::mail;

/// One message of the mailbox.
#[derive(Debug)]
pub struct Source {
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
pub fn read_sources(path: &Path) -> anyhow::Result<Vec<Source>> {
    let shown = path.display().to_string();
    if path.is_file() {
        let file = std::fs::File::open(path).with_context(|| shown.clone())?;
        let mut sources = Vec::new();
        for (n, message) in
            mail_parser::mailbox::mbox::MessageIterator::new(BufReader::new(file)).enumerate()
        {
            let message = message.with_context(|| format!("{shown}: message {}", n + 1))?;
            sources.push(Source {
                name: format!("{shown}#{}", n + 1),
                body: Body::Bytes(message.unwrap_contents()),
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

/// What would happen to a message, in one word or two.
pub fn verdict(config: &Config, mail: &mail::Mail, decision: &Decision) -> String {
    if let Some(silence) =
        loops::silence(mail, config.helpdesk_address.as_deref()).filter(|s| s.drops_request())
    {
        return format!("ignored: {}", short_silence(&silence));
    }
    if !decision.authentication.is_yes() {
        return "unauthenticated".into();
    }
    if decision.too_large {
        return "refused: too large".into();
    }
    let Some(request_type) = decision.request_type.as_deref() else {
        return "unclassified".into();
    };
    if matches!(decision.access, Some(Access::Denied(_))) {
        return "refused: not allowed".into();
    }
    if request_type == HELP {
        return "help".into();
    }
    if !decision.invalid.is_empty() {
        return "refused: invalid value".into();
    }
    if !decision.missing.is_empty() {
        return "missing information".into();
    }
    format!("runs {request_type}")
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
pub struct Outcome {
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
fn outcome(
    config: &Config,
    decider: &Decider<'_>,
    source: &Source,
    raw: &std::io::Result<std::borrow::Cow<'_, [u8]>>,
    jsonl: bool,
    keep_vars: bool,
) -> Outcome {
    let failed = |reason: String| Outcome {
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
    Outcome {
        verdict,
        vars: if keep_vars { decision.vars } else { Map::new() },
        line,
    }
}

/// Decides every source with each of `configs` (the second one is
/// `--diff`'s), in parallel: each message is read once. Returns, per
/// config, the outcomes in source order.
pub fn decide_all(
    configs: &[&Config],
    sources: &[Source],
    jsonl: bool,
    progress: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<Vec<Vec<Outcome>>> {
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
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(sources.len().max(1));
    let mut results: Vec<Option<Vec<Outcome>>> = Vec::new();
    results.resize_with(sources.len(), || None);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(source) = sources.get(i) else { break };
                        let raw = source.bytes();
                        let outcomes = configs
                            .iter()
                            .zip(&deciders)
                            .map(|(config, decider)| {
                                outcome(config, decider, source, &raw, jsonl, keep_vars)
                            })
                            .collect();
                        done.push((i, outcomes));
                        if let Some(bar) = progress {
                            bar.inc(1);
                        }
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            for (i, outcomes) in worker.join().unwrap_or_default() {
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(outcomes);
                }
            }
        }
    });
    let mut per_config: Vec<Vec<Outcome>> = configs
        .iter()
        .map(|_| Vec::with_capacity(sources.len()))
        .collect();
    for outcomes in results {
        let outcomes = outcomes.ok_or_else(|| anyhow!("a replay worker failed"))?;
        for (list, outcome) in per_config.iter_mut().zip(outcomes) {
            list.push(outcome);
        }
    }
    Ok(per_config)
}

/// The summary table: how many messages got each verdict.
pub fn summary(outcomes: &[Outcome]) -> String {
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

/// The messages whose decision differs between two helpdesk folders.
pub fn differences(sources: &[Source], before: &[Outcome], after: &[Outcome]) -> Vec<Value> {
    sources
        .iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (a, b))| a.verdict != b.verdict || a.vars != b.vars)
        .map(|(source, (a, b))| {
            let changed_vars: std::collections::BTreeSet<&String> = a
                .vars
                .keys()
                .chain(b.vars.keys())
                .filter(|k| a.vars.get(k.as_str()) != b.vars.get(k.as_str()))
                .collect();
            json!({
                "source": source.name,
                "before": a.verdict,
                "after": b.verdict,
                "changed_vars": changed_vars,
            })
        })
        .collect()
}
