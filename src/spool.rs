//! The spool: every raw message is written and fsync'd under
//! `state_dir/spool/` before anything is decided, and leaves it only once
//! its outcome is journaled (to `state_dir/archive/<date>/`, within a size
//! cap, kept for a number of days). A crash leaves the message there for
//! `helpdesk retry` or the next `helpdesk run`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Writes `raw` into the spool durably and returns its path.
pub fn store(state_dir: &Path, raw: &[u8]) -> io::Result<PathBuf> {
    let dir = state_dir.join("spool");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let mut file = tempfile::Builder::new()
        .prefix(".incoming-")
        .tempfile_in(&dir)?;
    file.write_all(raw)?;
    file.as_file().sync_all()?;
    let stamp = humantime::format_rfc3339_micros(SystemTime::now())
        .to_string()
        .replace([':', '-', '.'], "");
    let name = format!("{stamp}-{}-{:08x}.eml", std::process::id(), fastrand_u32());
    let path = dir.join(name);
    file.persist_noclobber(&path).map_err(|e| e.error)?;
    File::open(&dir)?.sync_all()?;
    Ok(path)
}

/// A little randomness for spool names without another dependency.
fn fastrand_u32() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

/// Spooled messages, oldest first.
pub fn leftovers(state_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = state_dir.join("spool");
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
pub fn release(state_dir: &Path, path: &Path, max_size: u64) -> io::Result<Option<PathBuf>> {
    let size = fs::metadata(path)?.len();
    if size > max_size {
        fs::remove_file(path)?;
        return Ok(None);
    }
    let day = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let dir = state_dir
        .join("archive")
        .join(day.get(..10).unwrap_or("unknown"));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let target = dir.join(path.file_name().unwrap_or_default());
    fs::rename(path, &target)?;
    Ok(Some(target))
}

/// Deletes archive days older than `keep`.
pub fn prune_archive(state_dir: &Path, keep: Duration) -> io::Result<usize> {
    let dir = state_dir.join("archive");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(0);
    };
    let cutoff = SystemTime::now()
        .checked_sub(keep)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let cutoff = humantime::format_rfc3339_seconds(cutoff).to_string();
    let cutoff = cutoff.get(..10).unwrap_or_default();
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Day folders are named YYYY-MM-DD, so they compare as text.
        if name.len() == 10 && name.as_str() < cutoff {
            fs::remove_dir_all(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Who holds a claim: this process's id and start time, so that a reused
/// process id is not mistaken for the original claimer.
pub fn process_token() -> String {
    token_of(std::process::id()).unwrap_or_else(|| format!("{}:0", std::process::id()))
}

fn token_of(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime) counts from after the command name, which is
    // in parentheses and may itself hold spaces.
    let after = stat.rsplit_once(')')?.1;
    let start = after.split_whitespace().nth(19)?;
    Some(format!("{pid}:{start}"))
}

/// Whether the process that wrote `token` still runs.
pub fn is_alive(token: &str) -> bool {
    let Some(pid) = token.split(':').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    token_of(pid).is_some_and(|now| now == token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_list_release() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), b"one").unwrap();
        let b = store(dir.path(), b"two").unwrap();
        assert_ne!(a, b);
        assert_eq!(leftovers(dir.path()).unwrap().len(), 2);
        let archived = release(dir.path(), &a, 10).unwrap().unwrap();
        assert_eq!(fs::read(archived).unwrap(), b"one");
        assert_eq!(
            release(dir.path(), &b, 2).unwrap(),
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
    fn tokens() {
        let me = process_token();
        assert!(is_alive(&me));
        assert!(!is_alive("999999999:1"));
        assert!(
            !is_alive(&format!("{}:1", std::process::id())),
            "same pid, other start time"
        );
        assert!(!is_alive("garbage"));
    }
}
