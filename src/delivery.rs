//! The delivery contract with the MTA: spool first, journal always, run
//! once.
//!
//! Every error out of here means "could not take the message safely now":
//! `run` turns it into exit status 75, so the MTA keeps the message.
//!
//! `run` writes the raw message into the spool (fsync'd) before deciding
//! anything, decides it (so that the journal gets its subject redacted),
//! claims it in the journal (see `claim_key`: one claim per authenticated
//! sender and Message-ID, or per SHA-256 of the bytes; later deliveries
//! are recorded as duplicates), handles it, journals the outcome, and only
//! then moves it out of the spool. Whatever stops that before the claim exits 75 so the
//! MTA keeps the message; a crash after it leaves the message in the spool
//! for `retry`.

use std::path::Path;

use anyhow::Context;

use sha2::{Digest, Sha256};

use crate::config::{Config, Delivery};
use crate::journal::{self, Arrival, Claim, Journal, Record, Start};
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
    match claim(
        decided.authenticated(),
        &mut journal,
        &mail,
        raw,
        &stored.path,
        &claimer,
    ) {
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
            None => match claim(
                decided.authenticated(),
                &mut journal,
                &mail,
                &raw,
                &path,
                &me,
            )? {
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
    if let Err(e) = crate::thread::prune(&config.state_dir, config.archive.keep) {
        tracing::warn!("cannot prune the thread digests: {e}");
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

/// The key a message is claimed by. Only authenticated mail claims its
/// Message-ID, and together with its (lower-cased) sender: an
/// unauthenticated mail, or another sender's, that reuses a Message-ID can
/// never pre-empt a request. Unauthenticated mail is keyed by its bytes in
/// a namespace of its own (it runs nothing, but it is journaled, and a
/// redelivery of it is a duplicate). `authenticated` is the verdict of the
/// decision made just before the claim (`pipeline::decide`), not a second one.
///
/// The sender has no white space (`mail::read` drops such addresses), so
/// `from:<sender> message-id:<id>` reads back one way only.
///
/// Journals written before these keys hold `message-id:<id>` and
/// `sha256:<hex>`: no key made here starts like either, so old rows never
/// collide with new ones. (A message delivered before the upgrade and again
/// after it is therefore not recognised as a duplicate.)
fn claim_key(authenticated: bool, mail: &Mail, raw: &[u8]) -> String {
    match (authenticated, mail.sender.as_deref()) {
        (true, Some(sender)) => {
            let sender = sender.to_lowercase();
            match mail.message_id.as_deref().map(str::trim) {
                Some(id) if !id.is_empty() => format!("from:{sender} message-id:{id}"),
                _ => format!("from:{sender} sha256:{}", hex(&Sha256::digest(raw))),
            }
        }
        _ => format!("unauthenticated sha256:{}", hex(&Sha256::digest(raw))),
    }
}

fn claim(
    authenticated: bool,
    journal: &mut Journal,
    mail: &Mail,
    raw: &[u8],
    path: &Path,
    claimer: &str,
) -> Result<Claim, journal::JournalError> {
    let key = claim_key(authenticated, mail, raw);
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
    // The run cap is checked and the run counted in one journal
    // transaction; when the journal cannot say, nothing runs and the MTA
    // retries (failing open would lift the cap whenever the journal is busy).
    let limit = config.limits.runs_per_sender_per_hour;
    let mut mark_running = |record: &Record| -> anyhow::Result<Start> {
        let sender = mail
            .sender
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("row {id}: no sender to count the run against"))?;
        Ok(journal.start_run(id, record, sender, limit)?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust;

    const MX: &str = "Authentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\nReceived: from out.example.com by mx.example.com; Sun, 22 Nov 2026 09:00:00 +0000\r\n";

    fn config() -> Config {
        Config::from_yaml(
            "authentication: {authserv_id: [mx.example.com], require: dmarc}\n",
            "config.yaml",
            &std::env::temp_dir(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn authenticated(mail: &Mail) -> bool {
        trust::authenticate(config().authentication.as_ref(), mail).is_yes()
    }

    fn key(raw: &str) -> String {
        let mail = mail::read(raw.as_bytes(), "From");
        claim_key(authenticated(&mail), &mail, raw.as_bytes())
    }

    fn message(authenticated: bool, from: &str, id: Option<&str>, body: &str) -> String {
        format!(
            "{}From: {from}\r\nSubject: quota\r\n{}\r\n{body}\r\n",
            if authenticated { MX } else { "" },
            id.map(|id| format!("Message-ID: <{id}>\r\n"))
                .unwrap_or_default()
        )
    }

    #[test]
    fn only_authenticated_mail_claims_a_message_id_and_with_its_sender() {
        let alice = key(&message(
            true,
            "Alice@Example.com",
            Some("x@example.com"),
            "a",
        ));
        assert_eq!(alice, "from:alice@example.com message-id:x@example.com");
        // The same request again (other bytes, a resend): the same key.
        assert_eq!(
            key(&message(
                true,
                "alice@example.com",
                Some("x@example.com"),
                "b"
            )),
            alice
        );
        // Bob reusing Alice's Message-ID claims a key of his own.
        let bob = key(&message(
            true,
            "bob@example.com",
            Some("x@example.com"),
            "a",
        ));
        assert_eq!(bob, "from:bob@example.com message-id:x@example.com");
        // Unauthenticated mail with that Message-ID and that From: neither.
        let forged = message(false, "alice@example.com", Some("x@example.com"), "a");
        let forged_key = key(&forged);
        assert_eq!(
            forged_key,
            format!(
                "unauthenticated sha256:{}",
                hex(&Sha256::digest(forged.as_bytes()))
            )
        );
        // A mail with the right Authentication-Results but no trusted MX
        // Received header below it is not authenticated either.
        let no_mx = format!(
            "Authentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\n{}",
            message(false, "alice@example.com", Some("x@example.com"), "a")
        );
        assert!(key(&no_mx).starts_with("unauthenticated sha256:"));
        // No Message-ID: the bytes, still under the sender.
        let anonymous = message(true, "alice@example.com", None, "a");
        assert_eq!(
            key(&anonymous),
            format!(
                "from:alice@example.com sha256:{}",
                hex(&Sha256::digest(anonymous.as_bytes()))
            )
        );
        // Blank Message-ID: the same as none.
        assert!(key(&message(true, "alice@example.com", Some(" "), "a")).contains(" sha256:"));
        // No new key looks like a key of an older journal.
        for k in [alice, bob, forged_key, key(&anonymous)] {
            assert!(
                !k.starts_with("message-id:") && !k.starts_with("sha256:"),
                "{k}"
            );
        }
    }

    /// Through the journal: the forged mail claims first, the real
    /// request still claims; Alice and Bob both claim; the same
    /// authenticated request twice is a duplicate.
    #[test]
    fn claims_by_the_new_keys() {
        let dir = tempfile::tempdir().unwrap();
        let config = config();
        let mut journal = Journal::open(dir.path(), std::time::Duration::from_secs(5)).unwrap();
        let mut outcome = |raw: &str| {
            let mail = mail::read(raw.as_bytes(), "From");
            match claim(
                trust::authenticate(config.authentication.as_ref(), &mail).is_yes(),
                &mut journal,
                &mail,
                raw.as_bytes(),
                Path::new("/s"),
                "1:1",
            ) {
                Ok(Claim::Claimed(_)) => "claimed",
                Ok(Claim::Duplicate { .. }) => "duplicate",
                Err(e) => panic!("{e}"),
            }
        };
        let id = Some("x@example.com");
        assert_eq!(
            outcome(&message(false, "alice@example.com", id, "a")),
            "claimed"
        );
        assert_eq!(
            outcome(&message(false, "alice@example.com", id, "a")),
            "duplicate"
        );
        assert_eq!(
            outcome(&message(true, "alice@example.com", id, "a")),
            "claimed"
        );
        assert_eq!(
            outcome(&message(true, "bob@example.com", id, "a")),
            "claimed"
        );
        assert_eq!(
            outcome(&message(true, "alice@example.com", id, "b")),
            "duplicate"
        );
    }
}
