//! At most `max_parallel_runs` playbooks at once across every delivery,
//! served first come, first served. Each run holds an exclusive `flock` on
//! one of N slot files under `state_dir/slots/`, which keeps the number
//! exact; who may try for a slot is decided by a ticket queue next to them:
//!
//! - A delivery takes the next ticket under `slots/queue.lock`: the number
//!   after the highest in `slots/queue/`, a file it creates, locks and only
//!   then renames to that number, so a ticket is never seen unlocked.
//! - It waits on a blocking `flock` of the ticket just ahead of its own;
//!   getting that lock means its waiter left (it took a slot, or it died:
//!   the kernel lets a dead process's locks go, so a killed waiter never
//!   blocks the queue and nothing is guessed from a timeout). It removes
//!   a dead waiter's file and waits on the next one ahead, if any.
//! - With no ticket ahead it is first: it polls the slot files (10 ms),
//!   takes one, and leaves the queue, which wakes the next in line.
//!
//! A ticket's file holds its waiter's process id, for `helpdesk log`
//! ([`waiting`]).

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::delivery::state;

/// How often the first in line looks for a free slot.
const POLL: Duration = Duration::from_millis(10);
/// How often a long wait is logged.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// A held slot; released when dropped (the lock goes with the file).
#[derive(Debug)]
pub(crate) struct Slot {
    _file: File,
    pub number: usize,
}

/// A place in the queue: the ticket's file, locked while its waiter waits.
/// Dropped, it is removed before its lock goes (the file closes after
/// `drop`), so a waiter woken by it finds it gone.
#[derive(Debug)]
struct Ticket {
    _file: File,
    path: PathBuf,
    number: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A delivery waiting for a slot, as `helpdesk log` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Waiting {
    /// The process that waits (the one whose token claims its journal row).
    pub pid: u32,
    /// 1 for the next to get a slot.
    pub position: usize,
}

/// Waits for a slot in arrival order, and takes it.
pub(crate) fn acquire(state_dir: &Path, slots: usize) -> io::Result<Slot> {
    state::create_folder(&state::queue(state_dir))?;
    let mut files = (0..slots.max(1))
        .map(|n| {
            state::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(state::slot(state_dir, n))
        })
        .collect::<io::Result<Vec<File>>>()?;
    let ticket = take_ticket(state_dir)?;
    wait_for_turn(state_dir, &ticket)?;
    let started = Instant::now();
    let mut reported = Duration::ZERO;
    loop {
        let mut free = None;
        for (number, file) in files.iter().enumerate() {
            if state::try_lock(file)? {
                free = Some(number);
                break;
            }
        }
        if let Some(number) = free {
            // Out of the queue only now: the next in line wakes to find
            // this slot taken, not free for a newcomer.
            drop(ticket);
            return Ok(Slot {
                _file: files.swap_remove(number),
                number,
            });
        }
        if started.elapsed() >= reported + REPORT_EVERY {
            reported = started.elapsed();
            tracing::info!("first in line for one of {} playbook slots", files.len());
        }
        std::thread::sleep(POLL);
    }
}

/// Takes the next ticket: the one after the highest in the queue.
fn take_ticket(state_dir: &Path) -> io::Result<Ticket> {
    let lock = state::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state::queue_lock(state_dir))?;
    lock.lock()?;
    let number = tickets(state_dir)?.last().map_or(0, |n| n + 1);
    let new = state::queue(state_dir).join(state::NEW_TICKET);
    // Left by a waiter that died writing it: nobody else touches it.
    match fs::remove_file(&new) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = state::create_file(&new)?;
    file.lock()?;
    writeln!(file, "{}", std::process::id())?;
    let path = state::ticket(state_dir, number);
    fs::rename(&new, &path)?;
    drop(lock);
    Ok(Ticket {
        _file: file,
        path,
        number,
    })
}

/// The tickets in the queue, in order (of waiters alive or dead).
fn tickets(state_dir: &Path) -> io::Result<Vec<u64>> {
    let mut numbers: Vec<u64> = fs::read_dir(state::queue(state_dir))?
        .filter_map(Result::ok)
        .filter_map(|e| state::ticket_number(&e.file_name().to_string_lossy()))
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// Returns once no ticket is ahead of `ticket`: each one ahead is waited
/// for on its lock, the nearest first. Tickets are only ever added behind
/// a live one, so none can appear ahead of it meanwhile.
fn wait_for_turn(state_dir: &Path, ticket: &Ticket) -> io::Result<()> {
    let mut told = false;
    loop {
        let ahead: Vec<u64> = tickets(state_dir)?
            .into_iter()
            .filter(|&n| n < ticket.number)
            .collect();
        let Some(&nearest) = ahead.last() else {
            return Ok(());
        };
        if !told {
            tracing::info!("waiting for a playbook slot: {} ahead", ahead.len());
            told = true;
        }
        let path = state::ticket(state_dir, nearest);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        file.lock()?;
        // Its waiter is gone; one that died left its file behind.
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
}

/// The deliveries waiting for a slot, first in line first; tickets of dead
/// waiters are left out (and left for a waiter to remove: this only
/// reads). Nothing when no delivery ever waited.
pub(crate) fn waiting(state_dir: &Path) -> io::Result<Vec<Waiting>> {
    let numbers = match tickets(state_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    };
    let mut waiting = Vec::new();
    for number in numbers {
        let Ok(file) = File::open(state::ticket(state_dir, number)) else {
            continue;
        };
        if state::try_lock(&file)? {
            continue;
        }
        let pid = io::read_to_string(&file)?.trim().parse().unwrap_or(0);
        waiting.push(Waiting {
            pid,
            position: waiting.len() + 1,
        });
    }
    Ok(waiting)
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
        assert_eq!(waiting(dir.path()).unwrap(), []);
        assert_eq!(tickets(dir.path()).unwrap(), Vec::<u64>::new());
    }

    /// Waiters are served in the order they came, and a ticket whose
    /// waiter is gone (its lock released, its file left) blocks no one.
    #[test]
    fn first_come_first_served() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().to_owned();
        state::create_folder(&state::queue(&state_dir)).unwrap();
        let held = acquire(&state_dir, 1).unwrap();
        let dead = take_ticket(&state_dir).unwrap();
        // A waiter that died: its file stays, its lock is gone.
        let dead_path = dead.path.clone();
        drop(dead);
        fs::write(&dead_path, "1\n").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut threads = Vec::new();
        for n in 0..3 {
            let (dir, tx) = (state_dir.clone(), tx.clone());
            threads.push(std::thread::spawn(move || {
                let slot = acquire(&dir, 1).unwrap();
                tx.send(n).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                drop(slot);
            }));
            // Each one queued before the next comes.
            while waiting(&state_dir).unwrap().len() < n + 1 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert_eq!(waiting(&state_dir).unwrap().last().unwrap().position, 3);
        drop(held);
        for thread in threads {
            thread.join().unwrap();
        }
        let order: Vec<usize> = rx.try_iter().collect();
        assert_eq!(order, [0, 1, 2]);
        assert!(!dead_path.exists());
    }
}
