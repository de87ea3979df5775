//! At most `max_parallel_runs` playbooks at once across every delivery:
//! each run holds an exclusive `flock` on one of N slot files under
//! `state_dir/slots/`; the rest wait their turn (they do not fail).

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::delivery::state;

/// A held slot; released when dropped (the lock goes with the file).
#[derive(Debug)]
pub(crate) struct Slot {
    _file: File,
    pub number: usize,
}

pub(crate) fn acquire(state_dir: &Path, slots: usize) -> io::Result<Slot> {
    state::create_folder(&state::slots(state_dir))?;
    let files = (0..slots.max(1))
        .map(|n| {
            state::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(state::slot(state_dir, n))
        })
        .collect::<io::Result<Vec<File>>>()?;
    let mut waited = Duration::ZERO;
    loop {
        for (number, file) in files.iter().enumerate() {
            if state::try_lock(file)? {
                let file = file.try_clone()?;
                return Ok(Slot {
                    _file: file,
                    number,
                });
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
