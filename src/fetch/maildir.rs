//! A Maildir as a source: the messages in `new/` (a delivering agent
//! writes into `tmp/` and renames into `new/`, so whatever is there is
//! whole), read at most `limits.message_size` of each, and once handled
//! renamed into `cur/` with the info `:2,S` (seen), or `:2,FS` (flagged
//! too) when quarantined, as Maildir readers expect. Watched with inotify
//! on `new/`, and looked at again every minute in case an event was lost.

use std::fs::{self, File};
use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::fs::inotify;
use sha2::{Digest, Sha256};
use tokio::sync::watch::Receiver;

use super::watch::{Backoffs, RECONNECT_FIRST, RECONNECT_MAX, WAITING_RECHECK, tally};
use super::{Failure, Folder, Next, Pass, Shared, Taken, failed, look_up, reached, take};
use crate::delivery::journal::Problem;
use crate::delivery::state::hex;
use crate::desk::sources::Source;

/// How often a watched Maildir is looked at without an event.
const RESCAN: Duration = Duration::from_secs(60);

/// The longest unique name kept as it is in the journal; longer or
/// stranger ones are named by their digest.
const NAME_MAX: usize = 128;

/// The message's name in the journal: its unique part (before `:`) when
/// it is made of the characters Maildir names use, else a digest of it.
fn tag(unique: &str) -> String {
    if !unique.is_empty()
        && unique.len() <= NAME_MAX
        && unique
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._=,-".contains(&b))
    {
        unique.to_owned()
    } else {
        format!(
            "sha256-{}",
            hex(&Sha256::digest(unique.as_bytes()))
                .get(..32)
                .unwrap_or("")
        )
    }
}

fn not_a_maildir(dir: &Path, why: &str) -> Failure {
    Failure {
        problem: Problem::Mailbox,
        message: format!(
            "{}: {why}: a Maildir has new/, cur/ and tmp/ (mkdir -p {0}/new {0}/cur {0}/tmp), or fix maildir: in config.yaml",
            dir.display()
        ),
    }
}

/// The names in `new/`, oldest first as far as names tell (they start
/// with the delivery time).
fn listed(dir: &Path) -> Result<Vec<String>, Failure> {
    for part in ["new", "cur", "tmp"] {
        if !dir.join(part).is_dir() {
            return Err(not_a_maildir(dir, &format!("no {part}/")));
        }
    }
    let entries = fs::read_dir(dir.join("new")).map_err(|e| not_a_maildir(dir, &e.to_string()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort_unstable();
    Ok(names)
}

/// At most `limit` bytes of `path`; `true` when there was more.
fn read_capped(path: &Path, limit: u64) -> std::io::Result<(Vec<u8>, bool)> {
    let mut raw = Vec::new();
    File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut raw)?;
    let cut = raw.len() as u64 > limit;
    raw.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok((raw, cut))
}

/// Renames `new/NAME` to `cur/UNIQUE:2,S` (or `:2,FS`), durably.
fn file(dir: &Path, name: &str, folder: Folder) -> Result<(), Failure> {
    let unique = name.split(':').next().unwrap_or(name);
    let flags = match folder {
        Folder::Done => "S",
        Folder::Failed => "FS",
    };
    let target = dir.join("cur").join(format!("{unique}:2,{flags}"));
    let moved = fs::rename(dir.join("new").join(name), &target)
        .and_then(|()| File::open(dir.join("cur"))?.sync_all());
    moved.map_err(|e| Failure {
        problem: Problem::Mailbox,
        message: format!("{}: cannot move {name} to cur/: {e}", dir.display()),
    })
}

/// One pass over the Maildir: each message in `new/` delivered, moved to
/// `cur/` or left.
pub(super) fn pass(
    shared: &Shared,
    source: &Source,
    dir: &Path,
    backoffs: &mut Backoffs,
) -> Result<Pass, Failure> {
    let limit = shared.config.limits.message_size;
    let mut pass = Pass::default();
    for name in listed(dir)? {
        let unique = name.split(':').next().unwrap_or(&name);
        let intake = format!("{}/maildir/{}", source.name, tag(unique));
        if backoffs.waiting(&intake) {
            pass.not_now += 1;
            continue;
        }
        let taken = match look_up(&shared.config, &intake) {
            Err(e) => Taken::NotNow(e),
            Ok(Next::Wait) => Taken::Wait,
            Ok(Next::File(folder)) => Taken::File(folder),
            Ok(Next::Deliver) => match read_capped(&dir.join("new").join(&name), limit) {
                // Taken away meanwhile (another reader): not ours.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => Taken::NotNow(format!("{name}: cannot read it: {e}")),
                Ok((raw, cut)) => {
                    let taken = take(shared, &raw, cut, &intake);
                    pass.delivered += u64::from(!matches!(taken, Taken::NotNow(_)));
                    taken
                }
            },
        };
        if let Some(folder) = tally(&mut pass, backoffs, source, &intake, taken) {
            file(dir, &name, folder)?;
        }
    }
    Ok(pass)
}

/// An inotify descriptor watching `dir/new` for arrivals.
fn watcher(dir: &Path) -> Option<OwnedFd> {
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
    let flags = inotify::WatchFlags::CREATE | inotify::WatchFlags::MOVED_TO;
    inotify::add_watch(&fd, dir.join("new"), flags).ok()?;
    Some(fd)
}

/// Waits up to `longest` for an event on `fd` (or just waits, without
/// one), returning early when `stop` is set; drains what arrived.
fn wait(fd: Option<&OwnedFd>, longest: Duration, stop: &Receiver<bool>) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let until = Instant::now() + longest;
    while !*stop.borrow() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let slice = left.min(Duration::from_millis(250));
        let Some(fd) = fd else {
            std::thread::sleep(slice);
            continue;
        };
        let timeout = Timespec::try_from(slice).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 250_000_000,
        });
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        if rustix::event::poll(&mut fds, Some(&timeout)).unwrap_or(0) > 0 {
            let mut buffer = [0u8; 4096];
            while rustix::io::read(fd, &mut buffer).is_ok_and(|n| n > 0) {}
            return;
        }
    }
}

/// `fetch` for one Maildir, on a thread of its own, until `stop`.
pub(super) fn watch(shared: &Arc<Shared>, source: &Source, dir: &Path, stop: &Receiver<bool>) {
    let Some(_lock) = super::watch::hold_or_wait(shared, source, stop) else {
        return;
    };
    let mut backoffs = Backoffs::default();
    let mut delay = RECONNECT_FIRST;
    let mut fd = None;
    while !*stop.borrow() {
        if fd.is_none() {
            fd = watcher(dir);
        }
        let longest = match pass(shared, source, dir, &mut backoffs) {
            Ok(pass) => {
                reached(&shared.config, source, &pass);
                delay = RECONNECT_FIRST;
                if pass.waiting + pass.not_now > 0 {
                    WAITING_RECHECK
                } else {
                    RESCAN
                }
            }
            Err(failure) => {
                failed(&shared.config, source, &failure);
                fd = None;
                let longest = delay;
                delay = (delay * 2).min(RECONNECT_MAX);
                longest
            }
        };
        wait(fd.as_ref(), longest, stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildir_names_are_kept_or_digested() {
        assert_eq!(tag("1733.M1P2Q3.host,S=120"), "1733.M1P2Q3.host,S=120");
        let odd = tag("a/b\n$(x)");
        assert!(odd.starts_with("sha256-") && odd.len() == 39, "{odd}");
        assert_eq!(tag(&"x".repeat(129)).len(), 39);
        assert_ne!(tag(""), "");
    }

    #[test]
    fn reading_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_capped(&path, 4).unwrap(), (b"0123".to_vec(), true));
        assert_eq!(
            read_capped(&path, 10).unwrap(),
            (b"0123456789".to_vec(), false)
        );
    }
}
