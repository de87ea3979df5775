//! At most N replies to one address per hour, so that two robots that slip
//! past the loop rules can never ping-pong for long.
//!
//! One small file per address (named by the SHA-256 of the lower-cased
//! address) under `state_dir/replies/` holds the times of recent replies;
//! an exclusive `flock` makes concurrent deliveries count correctly.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::delivery::state;

const WINDOW_SECS: u64 = 3600;

/// Records a reply to `address` and returns true when fewer than `limit`
/// were sent to it in the past hour; returns false (and records nothing)
/// otherwise.
pub(crate) fn allow(state_dir: &Path, address: &str, limit: u32) -> io::Result<bool> {
    state::create_folder(&state::replies(state_dir))?;
    let mut file = state::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(state::replies_to(state_dir, address))?;
    file.lock()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut recent: Vec<u64> = text
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .filter(|&t: &u64| now.saturating_sub(t) < WINDOW_SECS)
        .collect();
    let allowed = recent.len() < usize::try_from(limit).unwrap_or(usize::MAX);
    if allowed {
        recent.push(now);
    }
    let kept: Vec<String> = recent.iter().map(u64::to_string).collect();
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(kept.join("\n").as_bytes())?;
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_per_address() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..3 {
            assert!(allow(dir.path(), "a@example.com", 3).unwrap());
        }
        assert!(!allow(dir.path(), "A@Example.com", 3).unwrap());
        assert!(allow(dir.path(), "b@example.com", 3).unwrap());
        assert!(!allow(dir.path(), "c@example.com", 0).unwrap());
    }
}
