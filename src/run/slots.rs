//! At most `max_parallel_runs` playbooks at once across every delivery:
//! each run holds an exclusive `flock` on one of N slot files under
//! `state_dir/slots/`; the rest wait their turn (they do not fail).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use rustix::fs::{FlockOperation, flock};

/// A held slot; released when dropped (the lock goes with the file).
#[derive(Debug)]
pub struct Slot {
    _file: File,
    pub number: usize,
}

pub fn acquire(state_dir: &Path, slots: usize) -> io::Result<Slot> {
    let dir = state_dir.join("slots");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let files = (0..slots.max(1))
        .map(|n| {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(dir.join(n.to_string()))
        })
        .collect::<io::Result<Vec<File>>>()?;
    let mut waited = Duration::ZERO;
    loop {
        for (number, file) in files.iter().enumerate() {
            match flock(file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {
                    let file = file.try_clone()?;
                    return Ok(Slot {
                        _file: file,
                        number,
                    });
                }
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {}
                Err(e) => return Err(e.into()),
            }
        }
        if waited.as_secs() > 0 && waited.as_millis() % 10_000 < 50 {
            tracing::info!("waiting for one of {} playbook slots", files.len());
        }
        std::thread::sleep(Duration::from_millis(50));
        waited += Duration::from_millis(50);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let a = acquire(dir.path(), 2).unwrap();
        let b = acquire(dir.path(), 2).unwrap();
        assert_ne!(a.number, b.number);
        drop(a);
        let c = acquire(dir.path(), 2).unwrap();
        assert_ne!(c.number, b.number);
    }
}
