//! The spool: every raw message is written and fsync'd under
//! `state_dir/spool/` before anything is decided, and leaves it only once
//! its outcome is journaled (to `state_dir/archive/<date>/`, within a size
//! cap, kept for a number of days; a message that gave a secret value is
//! discarded instead). Every file here is 0600 and every folder 0700,
//! whatever the umask. A crash leaves the message there for
//! `helpdesk retry` or the next `helpdesk run`.
//!
//! Whoever handles a spooled message holds an exclusive `flock` on it, so
//! `retry` never touches a message that is being handled, and a handler
//! that dies (kill -9, OOM) lets go of it by dying. The supervisor of a
//! decision (`delivery`) shares its lock with the child process that
//! decides: the child gets the locked file as its standard input.
//!
//! A message whose decision went over a budget is moved to
//! `state_dir/quarantine/` instead, where nothing picks it up again.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::delivery::state;

/// A spooled message, locked for as long as this value lives.
#[derive(Debug)]
pub(crate) struct Spooled {
    pub path: PathBuf,
    _lock: File,
}

/// Writes `raw` into the spool durably, named `<time>-<pid>-<n><suffix>`,
/// and returns it locked.
pub(crate) fn store(state_dir: &Path, raw: &[u8], suffix: &str) -> io::Result<Spooled> {
    let dir = state::spool(state_dir);
    state::create_folder(&dir)?;
    let mut file = tempfile::Builder::new()
        .prefix(state::INCOMING_PREFIX)
        .tempfile_in(&dir)?;
    file.as_file().lock()?;
    file.write_all(raw)?;
    file.as_file().sync_all()?;
    let path = dir.join(state::spool_name(suffix));
    let lock = file.persist_noclobber(&path).map_err(|e| e.error)?;
    File::open(&dir)?.sync_all()?;
    Ok(Spooled { path, _lock: lock })
}

/// Locks a spooled message for handling; `None` when someone else holds it.
pub(crate) fn lock(path: &Path) -> io::Result<Option<Spooled>> {
    take(path, File::open(path)?)
}

/// Locks `file`, open on `path`, for handling; `None` when someone else
/// holds it.
fn take(path: &Path, file: File) -> io::Result<Option<Spooled>> {
    Ok(state::try_lock(&file)?.then(|| Spooled {
        path: path.to_path_buf(),
        _lock: file,
    }))
}

/// Takes over the lock on `path` that `file` holds (an open file
/// description shared with the supervisor, see `delivery`), or takes the
/// lock with it. `None`: `file` is not `path` (the spool file was
/// replaced), or someone else holds the lock.
pub(crate) fn adopt(path: &Path, file: File) -> io::Result<Option<Spooled>> {
    use std::os::unix::fs::MetadataExt;
    let (held, named) = (file.metadata()?, fs::metadata(path)?);
    if (held.dev(), held.ino()) != (named.dev(), named.ino()) {
        return Ok(None);
    }
    // On the description that already holds the lock this changes nothing.
    take(path, file)
}

impl Spooled {
    /// The locked file itself, to hand the lock to a child process.
    pub(crate) fn share(&self) -> io::Result<File> {
        self._lock.try_clone()
    }

    /// Lets go of the message for someone else to take: unlike dropping
    /// it, this also frees a lock shared with a supervisor.
    pub(crate) fn unlock(self) -> io::Result<()> {
        self._lock.unlock()
    }
}

/// Moves a message out of the spool into `state_dir/quarantine/`, under
/// its spool name, durably. Returns where it went.
pub(crate) fn quarantine(state_dir: &Path, spooled: Spooled) -> io::Result<PathBuf> {
    let dir = state::quarantine(state_dir);
    state::create_folder(&dir)?;
    let target = dir.join(spooled.path.file_name().unwrap_or_default());
    fs::rename(&spooled.path, &target)?;
    File::open(&dir)?.sync_all()?;
    Ok(target)
}

/// Spooled messages, oldest first.
pub(crate) fn leftovers(state_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = state::spool(state_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Moves a handled message out of the spool: into the archive when it is
/// within `max_size`, else it is deleted. Returns where it went.
pub(crate) fn release(
    state_dir: &Path,
    spooled: Spooled,
    max_size: u64,
) -> io::Result<Option<PathBuf>> {
    let path = spooled.path.as_path();
    let size = fs::metadata(path)?.len();
    if size > max_size {
        fs::remove_file(path)?;
        return Ok(None);
    }
    let dir = state::archive_day(state_dir, SystemTime::now());
    state::create_folder(&dir)?;
    let target = dir.join(path.file_name().unwrap_or_default());
    fs::rename(path, &target)?;
    Ok(Some(target))
}

/// Deletes a handled message instead of archiving it.
pub(crate) fn discard(spooled: Spooled) -> io::Result<()> {
    fs::remove_file(&spooled.path)
}

/// Deletes archive days older than `keep`.
pub(crate) fn prune_archive(state_dir: &Path, keep: Duration) -> io::Result<usize> {
    let Ok(entries) = fs::read_dir(state::archive(state_dir)) else {
        return Ok(0);
    };
    let cutoff = SystemTime::now()
        .checked_sub(keep)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let cutoff = state::day(cutoff).unwrap_or_default();
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Day folders are named YYYY-MM-DD, so they compare as text.
        if name.len() == 10 && name < cutoff {
            fs::remove_dir_all(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Who holds a claim: this process's id and start time, so that a reused
/// process id is not mistaken for the original claimer.
pub(crate) fn process_token() -> String {
    token_of(std::process::id()).unwrap_or_else(|| format!("{}:0", std::process::id()))
}

/// Whether the process a `process_token` names is still there (the same
/// process: a pid used again has another start time).
pub(crate) fn holder_alive(token: &str) -> bool {
    token
        .split_once(':')
        .and_then(|(pid, _)| pid.parse().ok())
        .and_then(token_of)
        .is_some_and(|now| now == token)
}

fn token_of(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime) counts from after the command name, which is
    // in parentheses and may itself hold spaces.
    let after = stat.rsplit_once(')')?.1;
    let start = after.split_whitespace().nth(19)?;
    Some(format!("{pid}:{start}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lock`, given a moment: a flock belongs to the open file, and a
    /// child that another test thread is starting holds a copy of every
    /// descriptor until its exec closes them, so "free" may come a few
    /// milliseconds after the drop.
    fn lock_soon(path: &Path) -> Option<Spooled> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match lock(path).unwrap() {
                Some(spooled) => return Some(spooled),
                None if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                None => return None,
            }
        }
    }

    #[test]
    fn store_list_lock_release() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), b"one", ".eml").unwrap();
        let b = store(dir.path(), b"two", ".eml").unwrap();
        assert_ne!(a.path, b.path);
        assert_eq!(leftovers(dir.path()).unwrap().len(), 2);
        assert!(lock(&a.path).unwrap().is_none(), "held by its handler");
        let archived = release(dir.path(), a, 10).unwrap().unwrap();
        assert_eq!(fs::read(archived).unwrap(), b"one");
        let path = b.path.clone();
        drop(b);
        let b = lock_soon(&path).expect("free once its handler is gone");
        assert_eq!(
            release(dir.path(), b, 2).unwrap(),
            None,
            "over the cap: not kept"
        );
        assert!(leftovers(dir.path()).unwrap().is_empty());
        assert_eq!(
            prune_archive(dir.path(), Duration::from_secs(86400)).unwrap(),
            0
        );
    }

    #[test]
    fn adopt_and_quarantine() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), b"one", ".eml").unwrap();
        // The supervisor's own description: adopted although it is locked.
        let child = adopt(&a.path, a.share().unwrap()).unwrap().unwrap();
        // A description of its own is not: the lock is held.
        assert!(
            adopt(&a.path, File::open(&a.path).unwrap())
                .unwrap()
                .is_none()
        );
        // Another file under this name is not either.
        let b = store(dir.path(), b"two", ".eml").unwrap();
        assert!(adopt(&a.path, b.share().unwrap()).unwrap().is_none());
        drop(child);
        // Unlocked through a shared description: free for everyone.
        let c = store(dir.path(), b"three", ".eml").unwrap();
        let path_c = c.path.clone();
        adopt(&path_c, c.share().unwrap())
            .unwrap()
            .unwrap()
            .unlock()
            .unwrap();
        assert!(lock(&path_c).unwrap().is_some(), "{c:?} let go");
        fs::remove_file(&path_c).unwrap();
        let path = quarantine(dir.path(), a).unwrap();
        assert_eq!(path.parent().unwrap(), dir.path().join("quarantine"));
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(leftovers(dir.path()).unwrap(), vec![b.path.clone()]);
    }

    #[test]
    fn tokens() {
        let me = process_token();
        assert!(me.starts_with(&format!("{}:", std::process::id())), "{me}");
        assert_ne!(me, format!("{}:0", std::process::id()));
    }
}
