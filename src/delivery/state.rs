//! The state folder (`state_dir`): the one place that knows its layout and
//! how what goes in it is created. It holds senders, subjects, raw mail and
//! run logs, so everything in it is private whatever the umask: folders
//! 0700 ([`create_folder`]), files 0600 ([`create_file`], [`options`]), and
//! `check` holds it to that ([`wanted_mode`]).
//!
//! ```text
//! state_dir/
//!   journal.sqlite, -wal, -shm    the journal (delivery::journal)
//!   spool/<stamp>-<pid>-<n>.eml   messages being handled (delivery::spool)
//!   archive/<YYYY-MM-DD>/         handled messages, by the day they left the spool
//!   quarantine/                   messages that went over the decision budget
//!   threads/<digest>              line digests of a thread's messages (mail::thread)
//!   replies/<digest>              times of recent replies to an address (reply::ratelimit)
//!   slots/<n>                     one lock file per playbook slot (run::slots)
//!   slots/queue/<ticket>          deliveries waiting for a slot, in arrival order
//!   slots/queue.lock              held while a waiter takes its ticket
//!   runs/<stamp>-<row>-<label>-<random>.log, .json, vars-<row>-*.yaml
//!                                 run logs, Ansible's reports, extra-vars files (run::ansible)
//!   plugins/callback/             the callback plugin that writes the reports
//!   sources/<name>.lock           held by the one `fetch` reading that source (fetch)
//!   metrics.prom                  by default: the one file for others (delivery::metrics)
//! ```
//!
//! These names are what an existing state folder holds: they do not
//! change (a run log's name gained its journal row and a random part in
//! issue 14; the journal keeps each log's path, so older ones are found). This module imports nothing from the crate, so every stage may
//! use it without an import cycle.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// Every folder in the state folder, the state folder included.
pub(crate) const FOLDER_MODE: u32 = 0o700;
/// Every file in it but the metrics file.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Where a message is written before it gets its spool name.
pub(crate) const INCOMING_PREFIX: &str = ".incoming-";
const VARS_PREFIX: &str = "vars-";
const VARS_SUFFIX: &str = ".yaml";

/// `state_dir/journal.sqlite`.
pub(crate) fn journal(state_dir: &Path) -> PathBuf {
    state_dir.join("journal.sqlite")
}

/// The journal and the `-wal` and `-shm` files SQLite keeps next to it.
pub(crate) fn journal_files(state_dir: &Path) -> [PathBuf; 3] {
    let path = journal(state_dir);
    let companion = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [companion(""), companion("-wal"), companion("-shm")]
}

/// `state_dir/spool/`.
pub(crate) fn spool(state_dir: &Path) -> PathBuf {
    state_dir.join("spool")
}

/// A new spool file name, `<time>-<pid>-<n><suffix>`: in the order the
/// messages came, and unique with the process id and a little randomness.
pub(crate) fn spool_name(suffix: &str) -> String {
    let now = SystemTime::now();
    let stamp = humantime::format_rfc3339_micros(now)
        .to_string()
        .replace([':', '-', '.'], "");
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = nanos ^ std::process::id().rotate_left(16);
    format!("{stamp}-{}-{n:08x}{suffix}", std::process::id())
}

/// `state_dir/archive/`.
pub(crate) fn archive(state_dir: &Path) -> PathBuf {
    state_dir.join("archive")
}

/// `state_dir/archive/<YYYY-MM-DD>/` for a message archived at `time`.
pub(crate) fn archive_day(state_dir: &Path, time: SystemTime) -> PathBuf {
    archive(state_dir).join(day(time).as_deref().unwrap_or("unknown"))
}

/// The name of `time`'s archive folder: `YYYY-MM-DD`, so that day folders
/// compare as text.
pub(crate) fn day(time: SystemTime) -> Option<String> {
    let text = humantime::format_rfc3339_seconds(time).to_string();
    text.get(..10).map(str::to_owned)
}

/// `state_dir/quarantine/`.
pub(crate) fn quarantine(state_dir: &Path) -> PathBuf {
    state_dir.join("quarantine")
}

/// The lock file of `fetch`'s source `name` (a name `sources:` allows:
/// lower-case letters, digits, `-` and `_`).
pub(crate) fn source_lock(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("sources").join(format!("{name}.lock"))
}

/// `state_dir/threads/`.
pub(crate) fn threads(state_dir: &Path) -> PathBuf {
    state_dir.join("threads")
}

/// What is kept for the message `message_id`, named by a digest of it.
pub(crate) fn thread(state_dir: &Path, message_id: &str) -> PathBuf {
    let digest = Sha256::digest(message_id.as_bytes());
    threads(state_dir).join(hex(digest.get(..16).unwrap_or_default()))
}

/// `state_dir/replies/`.
pub(crate) fn replies(state_dir: &Path) -> PathBuf {
    state_dir.join("replies")
}

/// The reply count of `address`, named by the SHA-256 of it trimmed and
/// lower-cased (one file whatever the spelling, and no address on disk).
pub(crate) fn replies_to(state_dir: &Path, address: &str) -> PathBuf {
    let digest = Sha256::digest(address.trim().to_lowercase().as_bytes());
    replies(state_dir).join(hex(&digest))
}

/// `state_dir/slots/`.
pub(crate) fn slots(state_dir: &Path) -> PathBuf {
    state_dir.join("slots")
}

/// The lock file of playbook slot `number`.
pub(crate) fn slot(state_dir: &Path, number: usize) -> PathBuf {
    slots(state_dir).join(number.to_string())
}

/// `state_dir/slots/queue/`: one file per delivery waiting for a slot,
/// named by its ticket, locked by its waiter while it waits (run::slots).
pub(crate) fn queue(state_dir: &Path) -> PathBuf {
    slots(state_dir).join("queue")
}

/// The lock a waiter holds while it takes the next ticket.
pub(crate) fn queue_lock(state_dir: &Path) -> PathBuf {
    slots(state_dir).join("queue.lock")
}

/// The file of ticket `number` (zero-padded, so names sort as numbers).
pub(crate) fn ticket(state_dir: &Path, number: u64) -> PathBuf {
    queue(state_dir).join(format!("{number:020}"))
}

/// The ticket of a file in [`queue`]; `None` for any other name (the one
/// being written, [`NEW_TICKET`]).
pub(crate) fn ticket_number(name: &str) -> Option<u64> {
    if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

/// Where a ticket is written and locked before it is renamed to its
/// number, under [`queue_lock`]: a ticket is never seen unlocked.
pub(crate) const NEW_TICKET: &str = ".new";

/// `state_dir/runs/`.
pub(crate) fn runs(state_dir: &Path) -> PathBuf {
    state_dir.join("runs")
}

/// Creates a new run log (0600) for journal row `row`,
/// `runs/<time>-<row>-<label>-<random>.log` (such as
/// `20261122T025251Z-42-storage-Xk3f9a.log`: sortable, readable, and unique
/// even for two runs of one row or one process within a second), `label`
/// made safe for a file name. Old logs keep their old names: `show` reads
/// the path from the journal.
pub(crate) fn run_log(state_dir: &Path, row: i64, label: &str) -> io::Result<(File, PathBuf)> {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(['-', ':'], "");
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    // tempfile picks the random part and creates the file exclusively,
    // trying another name should one exist; kept, it stays.
    tempfile::Builder::new()
        .prefix(&format!("{stamp}-{row}-{label}-"))
        .suffix(".log")
        .permissions(fs::Permissions::from_mode(FILE_MODE))
        .tempfile_in(runs(state_dir))?
        .keep()
        .map_err(|e| e.error)
}

/// Where Ansible's report of the run logged at `log` goes.
pub(crate) fn run_report(log: &Path) -> PathBuf {
    log.with_extension("json")
}

/// A new extra-vars file in `runs/` (which must exist) for journal row
/// `row`, `vars-<row>-<random>.yaml`, 0600, removed when dropped.
pub(crate) fn vars_file(state_dir: &Path, row: i64) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&format!("{VARS_PREFIX}{row}-"))
        .suffix(VARS_SUFFIX)
        .tempfile_in(runs(state_dir))
}

/// Whether `path` is named as an extra-vars file is: the guard removes
/// nothing else.
pub(crate) fn is_vars_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(VARS_PREFIX))
}

/// `state_dir/plugins/callback/`.
pub(crate) fn plugins(state_dir: &Path) -> PathBuf {
    state_dir.join("plugins").join("callback")
}

/// Creates `path` and the folders above it that are missing, 0700. An
/// existing folder is left as it is (`check` reports one that is looser).
pub(crate) fn create_folder(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(FOLDER_MODE)
        .create(path)
}

/// Creates the file `path`, 0600, for writing; an error (AlreadyExists)
/// when there is one already.
pub(crate) fn create_file(path: &Path) -> io::Result<File> {
    options().write(true).create_new(true).open(path)
}

/// Options that create a file 0600, for files opened again and again
/// (counters, digests, slot locks); the caller says how to open it.
pub(crate) fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Takes the exclusive lock on `file` without waiting: false when someone
/// else holds it. It is flock(2), so it belongs to the open file
/// description: a child given the same file shares it, and it goes when the
/// last holder of that description closes it or dies.
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Lower-case hexadecimal, as digests are named and keyed.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The mode a path in the state folder must have (group and others get
/// nothing: see [`is_loose`]); `None` where no rule holds: the metrics
/// file, which is for others to read, and what is neither file nor folder
/// (a link is not followed).
pub(crate) fn wanted_mode(path: &Path, meta: &fs::Metadata, metrics_file: &Path) -> Option<u32> {
    if path == metrics_file {
        None
    } else if meta.is_dir() {
        Some(FOLDER_MODE)
    } else if meta.is_file() {
        Some(FILE_MODE)
    } else {
        None
    }
}

/// Whether `mode` gives group or others anything.
pub(crate) fn is_loose(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// 128 random bits from the kernel, as 32 hex digits: an approval
/// token, which nobody may guess.
pub(crate) fn random_token() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The names an existing state folder holds.
    #[test]
    fn layout_names() {
        let s = Path::new("/s");
        let names = [
            (journal(s), "/s/journal.sqlite"),
            (spool(s), "/s/spool"),
            (archive(s), "/s/archive"),
            (quarantine(s), "/s/quarantine"),
            (threads(s), "/s/threads"),
            (replies(s), "/s/replies"),
            (slots(s), "/s/slots"),
            (slot(s, 3), "/s/slots/3"),
            (queue(s), "/s/slots/queue"),
            (queue_lock(s), "/s/slots/queue.lock"),
            (ticket(s, 12), "/s/slots/queue/00000000000000000012"),
            (runs(s), "/s/runs"),
            (plugins(s), "/s/plugins/callback"),
            (run_report(Path::new("/s/runs/a.log")), "/s/runs/a.json"),
        ];
        for (path, name) in names {
            assert_eq!(path, Path::new(name));
        }
        let [db, wal, shm] = journal_files(s);
        assert_eq!(
            (db, wal),
            (journal(s), PathBuf::from("/s/journal.sqlite-wal"))
        );
        assert_eq!(shm, Path::new("/s/journal.sqlite-shm"));
        let day = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86400 * 365);
        assert_eq!(archive_day(s, day), Path::new("/s/archive/1971-01-01"));
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }

    /// Names built from a value: digests, time stamps, process ids.
    #[test]
    fn file_names() {
        let s = Path::new("/s");
        // Digests as `sha256sum` prints them (the thread's cut to 32).
        assert_eq!(
            thread(s, "<a@x>"),
            threads(s).join("79baa4529ab1d2f073d22e2a7cc87c9f")
        );
        assert_eq!(
            replies_to(s, " A@Example.com"),
            replies(s).join("08168cd80dfd534ab0f10af10f1303fe00af2d43ab5c1432360d137f8197e17a")
        );
        let pid = std::process::id();
        let spooled = spool_name(".eml");
        let (stamp, rest) = spooled.split_once('-').unwrap();
        assert!(
            stamp.ends_with('Z') && !stamp.contains([':', '.']),
            "{spooled}"
        );
        assert!(rest.starts_with(&format!("{pid}-")) && rest.ends_with(".eml"));
        let ticket = ticket(s, 7);
        let name = ticket.file_name().unwrap().to_string_lossy();
        assert_eq!(ticket_number(&name), Some(7));
        assert_eq!(ticket_number(NEW_TICKET), None);
        assert_eq!(ticket_number("7"), None);
        assert!(is_vars_file(Path::new("/s/runs/vars-x1.yaml")));
        assert!(!is_vars_file(Path::new("/s/runs/x.log")));
    }

    /// Issue 14: two run logs of one process, one request type and one
    /// second are two files, named by their row; so are their vars files.
    #[test]
    fn run_logs_and_vars_files_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path();
        create_folder(&runs(s)).unwrap();
        let (_, first) = run_log(s, 41, "quota for bob").unwrap();
        let (_, second) = run_log(s, 41, "quota for bob").unwrap();
        let (_, other) = run_log(s, 42, "quota for bob").unwrap();
        assert_ne!(first, second);
        for (log, row) in [(&first, 41), (&second, 41), (&other, 42)] {
            assert_eq!(log.parent(), Some(runs(s).as_path()));
            assert_eq!(mode(log), FILE_MODE);
            let name = log.file_name().unwrap().to_string_lossy().into_owned();
            let (stamp, rest) = name.split_once('-').unwrap();
            assert!(stamp.ends_with('Z') && !stamp.contains(':'), "{name}");
            assert!(rest.starts_with(&format!("{row}-quota-for-bob-")), "{name}");
            // One dot: the report's name replaces just the extension.
            assert!(
                name.ends_with(".log") && name.matches('.').count() == 1,
                "{name}"
            );
        }
        let vars = [vars_file(s, 41).unwrap(), vars_file(s, 41).unwrap()];
        assert_ne!(vars[0].path(), vars[1].path());
        for file in &vars {
            assert!(is_vars_file(file.path()));
            let name = file
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert!(
                name.starts_with("vars-41-") && name.ends_with(".yaml"),
                "{name}"
            );
        }
    }

    /// Folders 0700 and files 0600 under umask 000, the loosest an MTA
    /// could hand down; an exclusive create refuses a file that is there.
    #[test]
    fn creation_modes() {
        // The umask is process-wide: the files are made by this test run
        // again in a child under umask 000, so no other test runs under it.
        if let Some(state) = std::env::var_os("HELPDESK_TEST_UMASK_000") {
            return create_under_umask_000(Path::new(&state));
        }
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let made = std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 000 && exec \"$0\" \"$@\"")
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "delivery::state::tests::creation_modes"])
            .env("HELPDESK_TEST_UMASK_000", &state)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        for folder in [&state, &runs(&state), &slots(&state)] {
            assert_eq!(mode(folder), FOLDER_MODE, "{}", folder.display());
        }
        let log = runs(&state).join("a.log");
        for file in [&log, &slot(&state, 0)] {
            assert_eq!(mode(file), FILE_MODE, "{}", file.display());
        }
        fs::write(&log, "kept").unwrap();
        let again = create_file(&log).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&log).unwrap(), "kept");
    }

    /// The half of `creation_modes` that runs under umask 000.
    fn create_under_umask_000(state: &Path) {
        let probe = state.with_extension("probe");
        fs::write(&probe, "x").unwrap();
        assert_eq!(mode(&probe), 0o666, "the umask is not 000");
        create_folder(&runs(state)).unwrap();
        create_folder(&slots(state)).unwrap();
        drop(create_file(&runs(state).join("a.log")).unwrap());
        let mut slot_file = options();
        slot_file.write(true).create(true).truncate(false);
        drop(slot_file.open(slot(state, 0)).unwrap());
    }
}
