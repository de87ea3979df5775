//! `helpdesk replay`: a whole mailbox through exactly what `parse` does
//! (nothing runs, nothing is sent), on every core. The question it answers:
//! what would this helpdesk folder (or my edit of it) do with the mail we
//! already got?

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, anyhow};
use serde_json::{Value, json};

use crate::config::Config;
use crate::desk::HELP;
use crate::loops;
use crate::mail;
use crate::request::{Decider, Decision};
use crate::trust::Access;

/// One message of the mailbox.
#[derive(Debug)]
pub struct Source {
    /// `file.eml`, `Maildir/cur/…`, or `mbox#12`.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Reads an mbox file, a Maildir, or a folder of `.eml` files.
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
                bytes: message.unwrap_contents(),
            });
        }
        return Ok(sources);
    }
    if path.join("cur").is_dir() || path.join("new").is_dir() {
        let mut sources = Vec::new();
        for message in mail_parser::mailbox::maildir::MessageIterator::new(path)
            .with_context(|| shown.clone())?
        {
            let message = message.with_context(|| shown.clone())?;
            sources.push(Source {
                name: message.path().display().to_string(),
                bytes: message.unwrap_contents(),
            });
        }
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        return Ok(sources);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("{shown}: not an mbox file, a Maildir or a folder of .eml files"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            Ok(Source {
                bytes: std::fs::read(&p).with_context(|| p.display().to_string())?,
                name: p.display().to_string(),
            })
        })
        .collect()
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

/// One message's line.
fn line(config: &Config, decider: &Decider<'_>, source: &Source, limit: u64) -> Value {
    let mut mail = mail::read(&source.bytes, &config.sender_header);
    mail.truncated = source.bytes.len() as u64 > limit;
    match decider.decide(&mail) {
        Ok(decision) => json!({
            "source": source.name,
            "message_id": mail.message_id,
            "verdict": verdict(config, &mail, &decision),
            "request_type": decision.request_type,
            "vars": decision.vars,
            "reason": decision.reason,
            "missing": decision.missing,
            "invalid": decision.invalid,
        }),
        Err(e) => json!({"source": source.name, "verdict": "error", "reason": e.to_string()}),
    }
}

/// Decides every source with `config`, in parallel; lines in source order.
pub fn decide_all(
    config: &Config,
    sources: &[Source],
    progress: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<Vec<Value>> {
    let keywords = config.desk.keywords()?;
    // Thousands of subjects: index every phrase once.
    keywords.prepare();
    let decider = Decider::new(config, &keywords);
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(sources.len().max(1));
    let mut results: Vec<Option<Value>> = vec![None; sources.len()];
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(source) = sources.get(i) else { break };
                        done.push((
                            i,
                            line(config, &decider, source, config.limits.message_size),
                        ));
                        if let Some(bar) = progress {
                            bar.inc(1);
                        }
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            for (i, value) in worker.join().unwrap_or_default() {
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(value);
                }
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| anyhow!("a replay worker failed")))
        .collect()
}

/// The summary table: how many messages got each verdict.
pub fn summary(lines: &[Value]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in lines {
        *counts
            .entry(line["verdict"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    let mut out = String::new();
    let _ = writeln!(out, "{:>8}  verdict", "messages");
    for (verdict, count) in &counts {
        let _ = writeln!(out, "{count:>8}  {verdict}");
    }
    let _ = writeln!(out, "{:>8}  in all", lines.len());
    out
}

/// The messages whose decision differs between two runs.
pub fn differences(before: &[Value], after: &[Value]) -> Vec<Value> {
    before
        .iter()
        .zip(after)
        .filter(|(a, b)| a["verdict"] != b["verdict"] || a["vars"] != b["vars"])
        .map(|(a, b)| {
            let changed_vars: Vec<String> = a["vars"]
                .as_object()
                .into_iter()
                .flatten()
                .chain(b["vars"].as_object().into_iter().flatten())
                .filter(|(k, _)| a["vars"].get(k.as_str()) != b["vars"].get(k.as_str()))
                .map(|(k, _)| k.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            json!({
                "source": a["source"],
                "before": a["verdict"],
                "after": b["verdict"],
                "changed_vars": changed_vars,
            })
        })
        .collect()
}
