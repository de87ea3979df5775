//! The delivery contract with the MTA: spool first, journal always, run
//! once.
//!
//! Every error out of here means "could not take the message safely now":
//! `run` turns it into exit status 75, so the MTA keeps the message.
//!
//! `run` writes the raw message into the spool (fsync'd) before deciding
//! anything, decides it (so that the journal gets its subject redacted),
//! claims it in the journal (one claim per Message-ID, or per
//! SHA-256 of the bytes when there is none; later deliveries are recorded
//! as duplicates), handles it, journals the outcome, and only then moves it
//! out of the spool. Whatever stops that before the claim exits 75 so the
//! MTA keeps the message; a crash after it leaves the message in the spool
//! for `retry`.

use std::path::Path;

use anyhow::Context;

use sha2::{Digest, Sha256};

use crate::config::{Config, Delivery};
use crate::journal::{self, Arrival, Claim, Journal, Record};
use crate::mail::{self, Mail};
use crate::{metrics, pipeline, spool};

/// Claims made by a `run` in queue mode: no process holds them, so the
/// next `retry` takes them over at once.
const QUEUED: &str = "queued";

/// Spool suffix of a message cut at limits.message_size.
const TRUNCATED: &str = "-truncated.eml";

/// `helpdesk run`: takes one message from the MTA.
pub fn deliver(config: &Config, raw: &[u8], truncated: bool, binary: &Path) -> anyhow::Result<()> {
    let suffix = if truncated { TRUNCATED } else { ".eml" };
    let stored = spool::store(&config.state_dir, raw, suffix).with_context(|| {
        format!(
            "{}: cannot spool the message",
            config.state_dir.join("spool").display()
        )
    })?;
    let mut journal = open(config)?;
    let mut mail = mail::read(raw, &config.sender_header);
    mail.truncated = truncated;
    // Before the claim, so the journal only ever gets the redacted subject.
    let decided = match pipeline::decide(config, &mut mail) {
        Ok(decided) => decided,
        Err(e) => {
            let _ = std::fs::remove_file(&stored.path);
            return Err(e);
        }
    };
    let claimer = match config.delivery {
        Delivery::Inline => spool::process_token(),
        Delivery::Queue => QUEUED.to_owned(),
    };
    match claim(&mut journal, &mail, raw, &stored.path, &claimer) {
        Ok(Claim::Claimed(id)) => match config.delivery {
            Delivery::Inline => process(config, &mut journal, id, stored, &mail, &decided, binary)?,
            Delivery::Queue => {
                tracing::info!("row {id}: queued for a worker");
                drop(stored);
                spawn_retry(config, binary);
                return Ok(());
            }
        },
        Ok(Claim::Duplicate { original, row }) => {
            tracing::info!("row {row}: duplicate of row {original}, nothing run");
            let _ = std::fs::remove_file(&stored.path);
            write_metrics(config, &journal);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&stored.path);
            return Err(e.into());
        }
    }
    if stale_leftovers(config).unwrap_or(false) {
        spawn_retry(config, binary);
    }
    Ok(())
}

/// `helpdesk retry`: handles what is left in the spool: messages whose
/// handler died (crash, kill -9, OOM), queued ones, and ones spooled but
/// never claimed. Returns how many were handled.
pub fn retry(config: &Config, binary: &Path) -> anyhow::Result<usize> {
    let mut journal = open(config)?;
    let me = spool::process_token();
    let mut handled = 0;
    for path in spool::leftovers(&config.state_dir).context("cannot list the spool")? {
        // Held: its handler is at work (or it was just delivered).
        let Ok(Some(spooled)) = spool::lock(&path) else {
            continue;
        };
        let Ok(raw) = std::fs::read(&path) else {
            continue;
        };
        let mut mail = mail::read(&raw, &config.sender_header);
        mail.truncated = path.to_string_lossy().ends_with(TRUNCATED);
        let decided = pipeline::decide(config, &mut mail)?;
        let id = match journal.by_spool_path(&path)? {
            None => match claim(&mut journal, &mail, &raw, &path, &me)? {
                Claim::Claimed(id) => id,
                Claim::Duplicate { .. } => {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
            },
            Some(row) if row.state == journal::FINISHED => {
                // Journaled but not yet moved out when its handler died.
                let archived = release(config, spooled, &decided)
                    .context("cannot move a handled message out of the spool")?;
                journal.set_spool_path(row.id, archived.as_deref())?;
                continue;
            }
            Some(row) => {
                let holder = row.claimed_by.as_deref();
                if !journal.take_over(row.id, holder, &me)? {
                    continue;
                }
                tracing::info!(
                    "row {}: taken over from {} (attempt {})",
                    row.id,
                    holder.unwrap_or("nobody"),
                    row.attempts + 1
                );
                row.id
            }
        };
        process(config, &mut journal, id, spooled, &mail, &decided, binary)?;
        handled += 1;
    }
    if let Err(e) = spool::prune_archive(&config.state_dir, config.archive.keep) {
        tracing::warn!("cannot prune the archive: {e}");
    }
    Ok(handled)
}

fn open(config: &Config) -> anyhow::Result<Journal> {
    // Not listable by others, whatever the umask (an existing folder is
    // left as it is; `check` reports one that is looser).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.state_dir)
        .with_context(|| {
            format!(
                "{}: cannot create the state folder",
                config.state_dir.display()
            )
        })?;
    Ok(Journal::open(&config.state_dir, config.journal_timeout)?)
}

fn claim(
    journal: &mut Journal,
    mail: &Mail,
    raw: &[u8],
    path: &Path,
    claimer: &str,
) -> Result<Claim, journal::JournalError> {
    let key = match &mail.message_id {
        Some(id) if !id.trim().is_empty() => format!("message-id:{}", id.trim()),
        _ => format!("sha256:{}", hex(&Sha256::digest(raw))),
    };
    journal.claim(&Arrival {
        key: &key,
        message_id: mail.message_id.as_deref(),
        sender: mail.sender.as_deref(),
        subject: &mail.subject,
        spool_path: path,
        claimed_by: claimer,
    })
}

/// Handles a claimed message and closes its row. On an error nothing has
/// run: the claim and the spooled copy are given up so that the MTA's
/// retry of the same message starts afresh.
fn process(
    config: &Config,
    journal: &mut Journal,
    id: i64,
    spooled: spool::Spooled,
    mail: &Mail,
    decided: &pipeline::Decided,
    binary: &Path,
) -> anyhow::Result<()> {
    let mut mark_running = |record: &Record| {
        if let Err(e) = journal.record(id, record, journal::RUNNING) {
            tracing::warn!("row {id}: {e}");
        }
    };
    let record = match pipeline::handle(config, mail, decided, Some(binary), &mut mark_running) {
        Ok(record) => record,
        Err(e) => {
            journal.abandon(id)?;
            let _ = std::fs::remove_file(&spooled.path);
            return Err(e);
        }
    };
    journal.record(id, &record, journal::FINISHED)?;
    let shown = spooled.path.display().to_string();
    match release(config, spooled, decided) {
        Ok(archived) => journal.set_spool_path(id, archived.as_deref())?,
        Err(e) => {
            tracing::warn!("row {id}: handled, but cannot move {shown} out of the spool: {e}")
        }
    }
    write_metrics(config, journal);
    Ok(())
}

/// Moves a handled message out of the spool: into the archive, unless it
/// gave a secret value (see `Decided::has_secrets`), which is deleted.
fn release(
    config: &Config,
    spooled: spool::Spooled,
    decided: &pipeline::Decided,
) -> std::io::Result<Option<std::path::PathBuf>> {
    if decided.has_secrets() {
        spool::discard(spooled)?;
        return Ok(None);
    }
    spool::release(&config.state_dir, spooled, config.archive.max_size)
}

fn write_metrics(config: &Config, journal: &Journal) {
    if let Err(e) = metrics::write(&config.metrics_file, journal) {
        tracing::warn!("cannot write {}: {e:#}", config.metrics_file.display());
    }
}

/// Whether the spool holds messages nobody is working on (nobody holds
/// their lock).
fn stale_leftovers(config: &Config) -> anyhow::Result<bool> {
    for path in spool::leftovers(&config.state_dir)? {
        if spool::lock(&path).ok().flatten().is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Starts `helpdesk retry` detached from the MTA: its own session, no
/// inherited pipes, so the MTA does not wait for it.
fn spawn_retry(config: &Config, binary: &Path) {
    let Some(config_file) = &config.file else {
        return;
    };
    let spawned = std::process::Command::new(binary)
        .arg("--config")
        .arg(config_file)
        .arg("retry")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
    if let Err(e) = spawned {
        tracing::warn!("cannot start helpdesk retry: {e}; run it by hand or from a timer");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::process::CommandExt as _;
