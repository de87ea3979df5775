//! What helpdesk has seen and sent in a thread, so that a reply's copy of
//! it is never read as new text.
//!
//! A client that quotes without any marker helpdesk knows (no `>`, no
//! attribution, no header block) still repeats the earlier message's
//! lines. For every message from an authenticated sender, helpdesk keeps
//! digests of its body lines and of the reply it sent, under
//! `state_dir/threads/`, named by a digest of the message's Message-ID.
//! A later mail whose In-Reply-To or References names that message has
//! every line cut that repeats one of them.
//!
//! Only digests are kept (SHA-256, truncated), never text, and nothing of a
//! mail that gave a secret value. Files older than `archive.keep` are
//! pruned with the archive.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write as _};
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::delivery::state;
use crate::mail::Mail;
use crate::mail::quotes::Cut;

/// Lines shorter than this (after normalising) are never cut for
/// repeating: "Thanks," or "Hi Bob" repeat in every thread.
const MIN_LINE: usize = 12;

/// At most this many digests are kept per message, and this many earlier
/// messages of a thread are looked at.
const MAX_LINES: usize = 2000;
const MAX_MESSAGES: usize = 20;

const DIGEST: usize = 8;

/// A line as it is compared: without quote marks, white space collapsed,
/// lower case; `None` when it is too short to say anything.
fn normalise(line: &str) -> Option<String> {
    let line = line.trim_start_matches(|c: char| c == '>' || c.is_whitespace());
    let mut out = String::with_capacity(line.len());
    for word in line.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    (out.chars().count() >= MIN_LINE).then_some(out)
}

fn digest(line: &str) -> Option<[u8; DIGEST]> {
    let line = normalise(line)?;
    let full = Sha256::digest(line.as_bytes());
    let mut out = [0; DIGEST];
    out.copy_from_slice(&full[..DIGEST]);
    Some(out)
}

/// Adds the digests of `text`'s lines to what is kept for `message_id`.
/// Best effort: the request does not depend on it, so an error is only
/// logged by the caller.
pub(crate) fn remember(state_dir: &Path, message_id: &str, text: &str) -> io::Result<()> {
    let mut new: Vec<u8> = Vec::new();
    for line in text.lines().take(MAX_LINES) {
        if let Some(d) = digest(line) {
            new.extend_from_slice(&d);
        }
    }
    if new.is_empty() {
        return Ok(());
    }
    state::create_folder(&state::threads(state_dir))?;
    let path = state::thread(state_dir, message_id);
    // Appends of one write each: two handlers of a thread may add at once.
    let mut file = state::options().create(true).append(true).open(&path)?;
    let len = file.metadata()?.len();
    if len >= (MAX_LINES * DIGEST) as u64 {
        return Ok(());
    }
    file.write_all(&new)
}

/// The digests kept for the messages `mail` answers (In-Reply-To, then
/// References from the newest), up to MAX_MESSAGES of them.
fn known(state_dir: &Path, mail: &Mail) -> HashSet<[u8; DIGEST]> {
    let mut known = HashSet::new();
    let ids = mail
        .in_reply_to
        .iter()
        .chain(mail.references.iter().rev())
        .take(MAX_MESSAGES);
    for id in ids {
        let Ok(bytes) = fs::read(state::thread(state_dir, id)) else {
            continue;
        };
        for chunk in bytes.chunks_exact(DIGEST).take(MAX_LINES) {
            let mut d = [0; DIGEST];
            d.copy_from_slice(chunk);
            known.insert(d);
        }
    }
    known
}

/// Cuts the body lines that repeat what helpdesk has seen or sent earlier
/// in the thread, each run of them as one cut. Line numbers of the cuts are
/// those of the body as it was before this (after the other cuts).
pub(crate) fn cut_repeats(state_dir: &Path, mail: &mut Mail) {
    if mail.in_reply_to.is_none() && mail.references.is_empty() {
        return;
    }
    let known = known(state_dir, mail);
    if known.is_empty() {
        return;
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut cuts: Vec<Cut> = Vec::new();
    for (i, line) in mail.body.lines().enumerate() {
        if digest(line).is_some_and(|d| known.contains(&d)) {
            match cuts.last_mut() {
                Some(cut) if cut.line + cut.lines == i + 1 => cut.lines += 1,
                _ => cuts.push(Cut {
                    line: i + 1,
                    lines: 1,
                    reason: "repeats an earlier message of this thread".into(),
                }),
            }
        } else {
            kept.push(line);
        }
    }
    if cuts.is_empty() {
        return;
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    mail.body = kept.join("\n");
    for cut in &mut cuts {
        cut.reason = format!("{} (after the cuts above)", cut.reason);
    }
    mail.cuts.extend(cuts);
}

/// Removes what is kept for threads not added to within `keep`.
pub(crate) fn prune(state_dir: &Path, keep: Duration) -> io::Result<usize> {
    let entries = match fs::read_dir(state::threads(state_dir)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > keep);
        if old && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: &str, in_reply_to: &str) -> Mail {
        Mail {
            body: body.to_owned(),
            in_reply_to: Some(in_reply_to.to_owned()),
            ..Mail::default()
        }
    }

    #[test]
    fn a_reply_loses_the_lines_it_repeats_and_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        remember(
            dir.path(),
            "a@x",
            "Please increase the quota of user: bob by 20 GB\nThanks",
        )
        .unwrap();
        remember(
            dir.path(),
            "a@x",
            "Done: the quota of bob was increased.\n0 changes made",
        )
        .unwrap();
        let mut mail = reply(
            "show me my current quota please\n\nPlease  increase the quota of USER: bob by 20 GB\n> Done: the quota of bob was increased.\nThanks",
            "a@x",
        );
        cut_repeats(dir.path(), &mut mail);
        assert_eq!(mail.body, "show me my current quota please\n\nThanks");
        assert_eq!(mail.cuts.len(), 1);
        assert_eq!((mail.cuts[0].line, mail.cuts[0].lines), (3, 2));

        // Not in the thread: nothing cut.
        let mut other = reply("Please increase the quota of user: bob by 20 GB", "b@x");
        cut_repeats(dir.path(), &mut other);
        assert_eq!(
            other.body,
            "Please increase the quota of user: bob by 20 GB"
        );
        // Named by References instead of In-Reply-To.
        let mut by_refs = Mail {
            body: "Please increase the quota of user: bob by 20 GB\nnew: yes".into(),
            references: vec!["z@x".into(), "a@x".into()],
            ..Mail::default()
        };
        cut_repeats(dir.path(), &mut by_refs);
        assert_eq!(by_refs.body, "new: yes");
    }

    #[test]
    fn files_hold_digests_only_and_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        remember(dir.path(), "<a@x>", "username: verysecretname\nok").unwrap();
        let path = state::thread(dir.path(), "<a@x>");
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), DIGEST, "one line long enough, one digest");
        assert!(!String::from_utf8_lossy(&bytes).contains("verysecret"));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(prune(dir.path(), Duration::from_secs(3600)).unwrap(), 0);
        assert_eq!(prune(dir.path(), Duration::ZERO).unwrap(), 1);
    }
}
