//! **Delivery: who owns a message at every moment.** Owns the spool
//! (`spool`), the journal (`journal`), the state folder's layout and modes
//! (`state`), the metrics file (`metrics`), the decision budget and
//! quarantine, `retry` and `worker`. The only code that moves a message
//! between owners; it hands each mail to `pipeline` and records what came
//! of it before letting the spool copy go.
//!
//! The delivery contract with the MTA: spool first, journal always, run
//! once, and no mail costs more than a budget.
//!
//! Every error out of here means "could not take the message safely now":
//! `run` turns it into exit status 75, so the MTA keeps the message.
//!
//! `run` writes the raw message into the spool (fsync'd) before deciding
//! anything, decides it (so that the journal gets its subject redacted),
//! claims it in the journal (see `claim_key`: one claim per authenticated
//! sender and Message-ID, or per SHA-256 of the bytes; later deliveries
//! are recorded as duplicates), handles it, journals the outcome, and only
//! then moves it out of the spool. Whatever stops that before the claim
//! exits 75 so the MTA keeps the message; a crash after it leaves the
//! message in the spool for `retry`, as the state machine below says.
//!
//! **The state machine.** One owner at every moment, and at most one
//! playbook start per request. A message is in one of these states, and
//! this is what `retry` does when it finds it after a crash at any point
//! (it only ever touches a spool file whose `flock` it can take, so its
//! handler is gone, and the guard took that handler's playbook with it):
//!
//! ```text
//!  spooled ──claim──▶ claimed ──start_run──▶ running ──outcome──▶ finished ──▶ archived
//!     │                  ▲  │                   │                  (durable)   (spool copy gone)
//!     │                  └──┘ failure to start  └─ handler gone ─▶ finished, outcome unknown
//!     └─ over the decision budget ─▶ finished, outcome quarantined (state_dir/quarantine/)
//! ```
//!
//! - *spooled* (a file in `spool/`, no row): decided and claimed afresh.
//! - *claimed* (a row, nothing started; by a dead handler, by `queued`, or
//!   by nobody after a failure to start, its reason journaled): taken over
//!   (`attempts` counts) and handled. The playbook slot is taken before
//!   the row is marked running, so a handler that died waiting for one
//!   left its row claimed. A row put back after a failure to start backs
//!   off (`retry_after`: 1 minute, doubling with each attempt up to an
//!   hour); `retry` and `worker` leave it alone until then, `retry --now`
//!   (an operator who fixed the cause) does not.
//! - *running* (`started_at` set: the playbook may have started): never
//!   started again by itself. The row is finished as `unknown`, the sender
//!   told that it may or may not have completed (`unknown.txt`), and the
//!   copy archived; `helpdesk retry --rerun ID` is an operator's decision
//!   to run it once more with the vars journaled for it. A rerun that dies
//!   while its playbook runs leaves a running row with no spool copy:
//!   `retry` ends it as `unknown` again once its process is gone.
//! - *finished* but still in the spool (the outcome is durable, the reply
//!   or the archiving was cut short): the copy is archived, nothing runs.
//!
//! A message leaves the spool only after its outcome is durable, and the
//! outcome is journaled before the reply tells the sender of it. A failure
//! to start (`ansible-playbook` missing, an unreadable playbook, a full
//! disk, a busy journal) runs nothing: in queue mode and in `retry` the
//! claim goes back (claimed by nobody, with the reason, for `log` and
//! `show`) and the spooled copy, the only one, stays; inline `run` gives
//! both up and exits 75, so the MTA keeps the message. When the outcome
//! cannot be written after the playbook ran, the row stays running (and
//! `run` exits 75: a redelivery is a duplicate) for `retry` to mark
//! unknown. `retry` goes on with the next message after one it cannot
//! handle now.
//!
//! **The decision budget.** Deciding reads untrusted bytes (MIME, HTML,
//! quotes, phrasebooks) before anything is authenticated, so it runs in a
//! child process of its own (`helpdesk deliver-spooled`, see
//! `deliver_spooled`), under `limits.decision_cpu` (RLIMIT_CPU, and the
//! supervisor's watch for finer budgets), `limits.decision_memory`
//! (RLIMIT_AS) and `limits.decision_wall`. The child gets the locked spool
//! file as its standard input, so the supervisor and the child share one
//! lock; it says `decided` on its standard output once it has decided,
//! lifts its limits again (the playbook it starts is not limited) and goes
//! on as `run` or `retry` always did. A child that dies or runs out of time
//! before saying so is a mail that went over a budget (or crashed on it):
//! the supervisor quarantines it (`quarantine`): it is journaled as
//! `quarantined` with the reason, moved to `state_dir/quarantine/` (never
//! picked up again), answered if its header proves the sender, and the
//! MTA gets 0. After `decided`, a child's death is a crash like any other:
//! its claim waits in the journal for `retry`.

pub(crate) mod approval;
pub(crate) mod control;
pub(crate) mod journal;
pub(crate) mod maintenance;
pub(crate) mod metrics;
pub(crate) mod spool;
pub(crate) mod state;

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

use rustix::process::{Resource, Rlimit, Signal};
use sha2::{Digest, Sha256};

use crate::decide::{loops, trust};
use crate::delivery::journal::{Arrival, Claim, Journal, Outcome, Record, Start};
use crate::delivery::state::hex;
use crate::desk::config::{Config, Delivery, Limits};
use crate::exit::Status;
use crate::mail::{self, Mail};
use crate::{pipeline, reply};

/// Claims made by a `run` in queue mode: no process holds them, so the
/// next `retry` takes them over at once.
const QUEUED: &str = "queued";

/// Spool suffix of a message cut at limits.message_size.
const TRUNCATED: &str = "-truncated.eml";

/// The hidden subcommand that decides under the budget (`cli::Command`).
pub(crate) const DELIVER_SPOOLED: &str = "deliver-spooled";

/// What the deciding child writes on its standard output once it decided.
const DECIDED: &[u8] = b"decided\n";

/// How much of a quarantined message's header the supervisor reads to
/// find out whether it may answer: the decision that went over the budget
/// is not tried again, not even on the header alone beyond this.
const QUARANTINE_HEADER: usize = 256 * 1024;

/// How to start this program again: for the deciding child, the guard
/// and the detached `retry`.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    pub path: PathBuf,
    /// The global options given (`-v`, `--log-format`, `--log-file`), so
    /// that the child logs as its supervisor does.
    pub options: Vec<OsString>,
}

/// `helpdesk run`: takes one message from the MTA. Returns the status to
/// exit with; the deciding child has said on stderr why, when it is 75.
/// `intake`: where `fetch` took it from (`sources:`), journaled with it;
/// `None` for mail from the MTA.
pub(crate) fn deliver(
    config: &Config,
    raw: &[u8],
    truncated: bool,
    program: &Program,
    intake: Option<&str>,
) -> anyhow::Result<Status> {
    let suffix = if truncated { TRUNCATED } else { ".eml" };
    let stored = spool::store(&config.state_dir, raw, suffix).with_context(|| {
        format!(
            "{}: cannot spool the message",
            state::spool(&config.state_dir).display()
        )
    })?;
    let shown = stored.path.display().to_string();
    match supervise(config, program, &stored, false, intake)? {
        Verdict::Decided(status) | Verdict::Undecided(status) => match status.code() {
            Some(0) => Ok(Status::Ok),
            Some(code) => {
                if code != Status::TempFail as i32 {
                    tracing::warn!("{shown}: its handler ended with status {code}");
                }
                Ok(Status::TempFail)
            }
            // Only after deciding: before, a death is a quarantine.
            None => Err(anyhow!(
                "{shown}: its handler died ({status}) after deciding; the message waits in the spool for helpdesk retry"
            )),
        },
        Verdict::Over(reason) => {
            quarantine(config, stored, &Aside::OverBudget(&reason), intake)?;
            if stale_leftovers(config).unwrap_or(false) {
                spawn_retry(config, &program.path);
            }
            Ok(Status::Ok)
        }
    }
}

/// What one `retry` did.
#[derive(Debug, Default)]
pub(crate) struct Swept {
    /// Messages handled (or quarantined).
    pub handled: usize,
    /// Messages left alone because they back off after a failure to
    /// start, with the earliest time one may be tried again.
    pub backing_off: usize,
    pub next: Option<String>,
}

/// `helpdesk retry`: handles what is left in the spool: messages whose
/// handler died (crash, kill -9, OOM), queued ones, and ones spooled but
/// never claimed, each decided in a child under the budget; one that goes
/// over it is quarantined, and the next one is taken. A message whose
/// playbook failed to start is left alone until its backoff is over
/// (`journal::backoff`), unless `now` (an operator's `retry --now`), and
/// quarantined once it arrived longer than `limits.queue_lifetime` ago
/// (but not by `retry --now`, which an operator runs after a fix).
pub(crate) fn retry(config: &Config, program: &Program, now: bool) -> anyhow::Result<Swept> {
    let mut swept = Swept::default();
    // Only to look up backoffs: a journal that cannot be opened now is the
    // children's to report.
    let journal = (!now).then(|| open(config).ok()).flatten();
    for path in spool::leftovers(&config.state_dir).context("cannot list the spool")? {
        // Held: its handler is at work (or it was just delivered).
        let Ok(Some(spooled)) = spool::lock(&path) else {
            continue;
        };
        let row = journal
            .as_ref()
            .and_then(|j| j.by_spool_path(&path).ok().flatten());
        // Past the queue's lifetime, backing off or not: set aside now.
        let lifetime = config.limits.queue_lifetime;
        if let Some(reason) = row.as_ref().and_then(|row| outlived(row, lifetime)) {
            let aside = Aside::NotStarted(&reason, lifetime);
            swept.handled += usize::from(set_aside(config, spooled, &aside));
            continue;
        }
        let backs_off = row
            .as_ref()
            .and_then(|row| row.backing_off().map(str::to_owned));
        if let Some(after) = backs_off {
            tracing::debug!("{}: backs off until {after}", path.display());
            swept.backing_off += 1;
            if swept.next.as_ref().is_none_or(|next| after < *next) {
                swept.next = Some(after);
            }
            continue;
        }
        let handled = sweep_one(config, program, spooled);
        if handled {
            swept.handled += 1;
        }
    }
    if let Err(e) = end_dead_reruns(config) {
        tracing::warn!("cannot look for reruns that died: {e:#}");
    }
    if let Err(e) = approval::expire(config) {
        tracing::warn!("cannot end the requests whose approval expired: {e:#}");
    }
    if let Err(e) = spool::prune_archive(&config.state_dir, config.archive.keep) {
        tracing::warn!("cannot prune the archive: {e}");
    }
    if let Err(e) = crate::mail::thread::prune(&config.state_dir, config.archive.keep) {
        tracing::warn!("cannot prune the thread digests: {e}");
    }
    Ok(swept)
}

/// Ends as `unknown` the rows a `helpdesk retry --rerun` left running when
/// it died: they have no spool copy for the sweep to find. Nobody is told
/// but the log: the rerun was an operator's, who may run it once more.
fn end_dead_reruns(config: &Config) -> anyhow::Result<()> {
    let mut journal = open(config)?;
    let spool_dir = state::spool(&config.state_dir);
    for row in journal.running()? {
        let in_spool = row
            .spool_path
            .as_deref()
            .is_some_and(|p| Path::new(p).starts_with(&spool_dir) && Path::new(p).exists());
        let holder = row.claimed_by.as_deref();
        if in_spool || holder.is_some_and(spool::holder_alive) {
            continue;
        }
        let reason = format!(
            "helpdesk retry --rerun {} stopped while its playbook ran (process {} is gone): it may or may not have completed; helpdesk retry --rerun {} runs it again",
            row.id,
            holder.unwrap_or("?"),
            row.id
        );
        if journal.mark_unknown(row.id, holder, &spool::process_token(), &reason)? {
            tracing::warn!("row {}: outcome unknown: {reason}", row.id);
            write_metrics(config, &journal);
        }
    }
    Ok(())
}

/// Why the message of `row` is set aside instead of tried again, if its
/// playbook kept failing to start for longer than `lifetime`.
fn outlived(row: &journal::Row, lifetime: Duration) -> Option<String> {
    row.outlived(lifetime).then(|| {
        format!(
            "its playbook could not start for longer than limits.queue_lifetime ({}), {} attempt(s); the last: {}",
            humantime::format_duration(lifetime),
            row.attempts,
            row.record.reason.as_deref().unwrap_or("-")
        )
    })
}

/// Why a message is set aside (quarantined), for the journal and, in
/// other words, for its sender.
enum Aside<'a> {
    /// Deciding it went over a budget: the reason names it.
    OverBudget(&'a str),
    /// Its playbook could not start for longer than `limits.queue_lifetime`:
    /// the journal's reason, and the lifetime the sender is told of.
    NotStarted(&'a str, Duration),
}

impl Aside<'_> {
    fn reason(&self) -> &str {
        match self {
            Aside::OverBudget(reason) | Aside::NotStarted(reason, _) => reason,
        }
    }

    /// The reply template and what it says of the reason.
    fn told(&self) -> (&'static str, String) {
        match self {
            Aside::OverBudget(reason) => ("quarantined", (*reason).to_owned()),
            Aside::NotStarted(_, lifetime) => (
                "not_started",
                humantime::format_duration(*lifetime).to_string(),
            ),
        }
    }
}

/// Quarantines a message; whether that was done.
fn set_aside(config: &Config, spooled: spool::Spooled, aside: &Aside<'_>) -> bool {
    let shown = spooled.path.display().to_string();
    match quarantine(config, spooled, aside, None) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("{shown}: cannot quarantine it: {e:#}");
            false
        }
    }
}

/// Until when the message spooled at `path` backs off, if it does.
fn backing_off(journal: &Journal, path: &Path) -> Option<String> {
    let row = journal.by_spool_path(path).ok().flatten()?;
    row.backing_off().map(str::to_owned)
}

/// Decides and handles one locked leftover; whether it was handled.
fn sweep_one(config: &Config, program: &Program, spooled: spool::Spooled) -> bool {
    let shown = spooled.path.display().to_string();
    let verdict = match supervise(config, program, &spooled, true, None) {
        Ok(verdict) => verdict,
        Err(e) => {
            tracing::warn!("{shown}: not handled now ({e:#}); it stays in the spool");
            return false;
        }
    };
    match verdict {
        Verdict::Decided(status) | Verdict::Undecided(status) if status.success() => true,
        Verdict::Decided(status) | Verdict::Undecided(status) => {
            tracing::warn!("{shown}: not handled now ({status}); it stays in the spool");
            false
        }
        Verdict::Over(reason) => set_aside(config, spooled, &Aside::OverBudget(&reason)),
    }
}

/// `helpdesk deliver-spooled`: the child's half of `run` (or, with
/// `retry`, of `retry`) for one spooled message, `lock` being the
/// supervisor's lock on it (the child's standard input). It decides under
/// the budget, says `decided`, and handles the message as `run` and
/// `retry` do.
pub(crate) fn deliver_spooled(
    config: &Config,
    path: &Path,
    lock: std::fs::File,
    retry: bool,
    intake: Option<&str>,
    program: &Program,
) -> anyhow::Result<()> {
    let budget = Budget::enter(&config.limits).context("cannot set the decision budget")?;
    let Some(spooled) = spool::adopt(path, lock)
        .with_context(|| format!("{}: cannot lock the spooled message", path.display()))?
    else {
        // A leftover someone else took meanwhile is theirs; a new message
        // must not be dropped: the MTA keeps it.
        if retry {
            tracing::info!("{}: held by another handler", path.display());
            return Ok(());
        }
        return Err(anyhow!(
            "{}: not the file its supervisor spooled, or held by another process",
            path.display()
        ));
    };
    let raw = match std::fs::read(path) {
        Ok(raw) => raw,
        Err(e) if retry && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::OutOfMemory => {
            // The budget was reached by the message alone (std reports a
            // failed reservation instead of aborting). Exiting with an
            // error would make it "not now", and the MTA would bring it
            // back again and again: end the way any other allocation over
            // the budget ends, so the supervisor quarantines it.
            eprintln!(
                "memory allocation of {} bytes failed (reading {})",
                std::fs::metadata(path).map_or(0, |m| m.len()),
                path.display()
            );
            std::process::abort();
        }
        Err(e) => return Err(anyhow!("{}: cannot read the message: {e}", path.display())),
    };
    let mut mail = mail::read(&raw, &config.sender_header);
    mail.truncated = path.to_string_lossy().ends_with(TRUNCATED);
    // Before the claim, so the journal only ever gets the redacted subject.
    let decided = match pipeline::decide(config, &mut mail, &raw) {
        Ok(decided) => decided,
        Err(e) => {
            if !retry {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    budget.leave()?;
    // What the budget is measured against, for whoever tunes it (-vv).
    tracing::debug!(
        "{}: decided in {} of CPU, with at most {} of address space",
        path.display(),
        cpu_time(std::process::id()).map_or_else(|| "?".into(), human_duration),
        peak_address_space().map_or_else(|| "?".into(), reply::human_size)
    );
    let ready = Ready {
        config,
        spooled,
        raw: &raw,
        mail: &mail,
        decided: &decided,
        program,
        intake,
    };
    if retry {
        retry_one(ready)
    } else {
        deliver_one(ready)
    }
}

/// A spooled message its process has read and decided: what `run`
/// (`deliver_one`) and `retry` (`retry_one`) go on with.
struct Ready<'a> {
    config: &'a Config,
    spooled: spool::Spooled,
    raw: &'a [u8],
    mail: &'a Mail,
    decided: &'a pipeline::Decided,
    program: &'a Program,
    /// Where `fetch` took it from, for a new delivery.
    intake: Option<&'a str>,
}

impl Ready<'_> {
    /// Handles it as journal row `id` (see `process` for `keep`).
    fn process(self, journal: &mut Journal, id: i64, keep: bool) -> anyhow::Result<()> {
        process(
            self.config,
            journal,
            id,
            self.spooled,
            (self.mail, self.raw),
            self.decided,
            &self.program.path,
            keep,
        )
    }
}

/// The rest of `run` once the message is decided.
fn deliver_one(ready: Ready<'_>) -> anyhow::Result<()> {
    let (config, program) = (ready.config, ready.program);
    // Only now: the decision waits on nothing but the CPU.
    let mut journal = open(ready.config)?;
    let claimer = match ready.config.delivery {
        Delivery::Inline => spool::process_token(),
        Delivery::Queue => QUEUED.to_owned(),
    };
    match claim(
        ready.decided.authenticated(),
        &mut journal,
        ready.mail,
        ready.raw,
        &ready.spooled.path,
        &claimer,
        ready.intake,
    ) {
        Ok(Claim::Claimed(id)) => match ready.config.delivery {
            Delivery::Inline => ready.process(&mut journal, id, false)?,
            Delivery::Queue => {
                tracing::info!("row {id}: queued for a worker");
                // Also the supervisor's lock, which it holds until it exits.
                ready.spooled.unlock()?;
                spawn_retry(ready.config, &ready.program.path);
                return Ok(());
            }
        },
        Ok(Claim::Duplicate { original, row }) => {
            tracing::info!(
                target: pipeline::SUMMARY,
                "duplicate row {row}: another delivery of row {original}, nothing run"
            );
            let _ = std::fs::remove_file(&ready.spooled.path);
            write_metrics(ready.config, &journal);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&ready.spooled.path);
            return Err(e.into());
        }
    }
    if stale_leftovers(config).unwrap_or(false) {
        spawn_retry(config, &program.path);
    }
    Ok(())
}

/// The rest of `retry` for one spooled message once it is decided.
fn retry_one(ready: Ready<'_>) -> anyhow::Result<()> {
    let mut journal = open(ready.config)?;
    let me = spool::process_token();
    let path = ready.spooled.path.clone();
    let id = match journal.by_spool_path(&path)? {
        None => match claim(
            ready.decided.authenticated(),
            &mut journal,
            ready.mail,
            ready.raw,
            &path,
            &me,
            None,
        )? {
            Claim::Claimed(id) => id,
            Claim::Duplicate { .. } => {
                let _ = std::fs::remove_file(&path);
                return Ok(());
            }
        },
        // Journaled but not yet moved out when its handler died; a
        // pending row waits in the journal, not in the spool.
        Some(row) if row.state == journal::FINISHED || row.state == journal::PENDING => {
            let archived = release(ready.config, ready.spooled, ready.decided)
                .context("cannot move a handled message out of the spool")?;
            journal.set_spool_path(row.id, archived.as_deref())?;
            return Ok(());
        }
        // Its playbook started: never again by itself.
        Some(row) if row.state == journal::RUNNING => {
            return end_unknown(ready, &mut journal, &row);
        }
        Some(row) => {
            let holder = row.claimed_by.as_deref();
            if !journal.take_over(row.id, holder, &me)? {
                return Ok(());
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
    ready.process(&mut journal, id, true)
}

/// How a deciding child ended.
#[derive(Debug)]
enum Verdict {
    /// It decided within the budget, and then ended so.
    Decided(ExitStatus),
    /// It ended before deciding, but not over a budget: nothing to do
    /// (status 0) or not now (75, said on stderr).
    Undecided(ExitStatus),
    /// It went over a budget, or crashed, before deciding: why.
    Over(String),
}

/// Starts `helpdesk deliver-spooled` for `spooled`, its standard input the
/// locked spool file (so that the child shares the supervisor's lock).
fn start_decider(
    config: &Config,
    program: &Program,
    spooled: &spool::Spooled,
    retry: bool,
    intake: Option<&str>,
) -> anyhow::Result<std::process::Child> {
    let config_file = config
        .file
        .as_ref()
        .ok_or_else(|| anyhow!("deciding a spooled message needs a config file"))?;
    let lock = spooled
        .share()
        .with_context(|| format!("{}: cannot share its lock", spooled.path.display()))?;
    let mut command = std::process::Command::new(&program.path);
    command
        .args(&program.options)
        .arg("--config")
        .arg(config_file)
        .arg(DELIVER_SPOOLED)
        .arg(&spooled.path)
        .arg("--supervisor")
        .arg(std::process::id().to_string());
    if retry {
        command.arg("--retry");
    }
    if let Some(intake) = intake {
        command.arg("--intake").arg(intake);
    }
    command
        .stdin(Stdio::from(lock))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "{}: cannot start the process that decides a message",
                program.path.display()
            )
        })
}

/// Runs the deciding child for `spooled` and watches it until it has
/// decided: its CPU time, its wall-clock time, and how it ends. The
/// journal is not open meanwhile (the child opens its own connection).
fn supervise(
    config: &Config,
    program: &Program,
    spooled: &spool::Spooled,
    retry: bool,
    intake: Option<&str>,
) -> anyhow::Result<Verdict> {
    let mut child = start_decider(config, program, spooled, retry, intake)?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("the deciding process has no standard output"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow!("the deciding process has no standard error"))?;
    let (said, hear) = mpsc::channel();
    std::thread::spawn(move || listen(stdout, &said));
    let (relayed, heard) = mpsc::channel();
    std::thread::spawn(move || relay(stderr, &relayed));
    // Until it has all been passed on (the child and its children are
    // gone), with a bound in case something it started keeps stderr open.
    let last_words = || {
        heard
            .recv_timeout(Duration::from_secs(2))
            .unwrap_or_default()
    };
    let limits = &config.limits;
    let started = Instant::now();
    // Often enough for a budget below RLIMIT_CPU's whole seconds, rarely
    // enough to cost nothing next to a decision.
    let tick =
        (limits.decision_cpu / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
    let over = loop {
        match hear.recv_timeout(tick) {
            Ok(()) => {
                let status = child.wait()?;
                last_words();
                return Ok(Verdict::Decided(status));
            }
            // Its standard output closed: it has ended.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait()?;
                return Ok(ended_undecided(status, last_words(), limits));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if started.elapsed() > limits.decision_wall {
            break format!(
                "the decision took longer than {}",
                human_duration(limits.decision_wall)
            );
        }
        if cpu_time(child.id()).is_some_and(|used| used > limits.decision_cpu) {
            break cpu_reason(limits);
        }
    };
    let _ = child.kill();
    let status = child.wait()?;
    last_words();
    // It may have decided just before it was stopped: then it is no
    // quarantine but a handler that died (its claim waits for `retry`).
    if hear.try_recv().is_ok() {
        return Ok(Verdict::Decided(status));
    }
    tracing::debug!("{}: stopped ({status})", spooled.path.display());
    Ok(Verdict::Over(over))
}

/// Reads the child's standard output, saying once when it decided, until
/// it closes (then the channel closes too).
fn listen(mut stdout: std::process::ChildStdout, said: &mpsc::Sender<()>) {
    let mut seen = Vec::with_capacity(DECIDED.len());
    let mut buffer = [0u8; 256];
    let mut told = false;
    while let Ok(n) = stdout.read(&mut buffer) {
        if n == 0 {
            return;
        }
        for &byte in buffer.get(..n).unwrap_or_default() {
            if told {
                continue;
            }
            seen.push(byte);
            if !DECIDED.starts_with(&seen) {
                seen.clear();
            } else if seen == DECIDED {
                told = true;
                let _ = said.send(());
            }
        }
    }
}

/// What the Rust runtime of a deciding child said on its way out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct LastWords {
    /// "memory allocation of N bytes failed": RLIMIT_AS was reached.
    out_of_memory: bool,
    /// "thread 'main' has overflowed its stack".
    stack_overflow: bool,
}

impl LastWords {
    fn note(&mut self, text: &[u8]) {
        let has = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
        self.out_of_memory |= has(b"memory allocation of ");
        self.stack_overflow |= has(b"has overflowed its stack");
    }
}

/// Passes the child's standard error on to ours, as it comes, noting
/// what the Rust runtime says when it aborts; sends that once it closes.
fn relay(mut stderr: std::process::ChildStderr, done: &mpsc::Sender<LastWords>) {
    let mut words = LastWords::default();
    let mut tail: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut buffer) {
        if n == 0 {
            break;
        }
        let chunk = buffer.get(..n).unwrap_or_default();
        let _ = std::io::stderr().write_all(chunk);
        // A few bytes of the chunk before, for words split between reads.
        tail.extend_from_slice(chunk);
        words.note(&tail);
        let keep = tail.len().saturating_sub(32);
        tail.drain(..keep);
    }
    let _ = done.send(words);
}

/// Why a child that ended before deciding ended, or `Undecided`.
fn ended_undecided(status: ExitStatus, words: LastWords, limits: &Limits) -> Verdict {
    use std::os::unix::process::ExitStatusExt as _;
    let signal = status.signal();
    if words.stack_overflow && signal.is_some() {
        return Verdict::Over(format!(
            "the decision overflowed its stack (signal {})",
            signal.unwrap_or_default()
        ));
    }
    match (status.code(), signal) {
        // A panic (main turns one into 70): a bug the mail brings out.
        (Some(code), _) if code == Status::Software as i32 => Verdict::Over(format!(
            "the decision crashed (exit status {code}: a bug, please report it)"
        )),
        (Some(_), _) => Verdict::Undecided(status),
        (None, Some(signal)) if signal == Signal::XCPU.as_raw() => {
            Verdict::Over(cpu_reason(limits))
        }
        // What Rust does when an allocation fails.
        (None, Some(signal)) if signal == Signal::ABORT.as_raw() && words.out_of_memory => {
            Verdict::Over(format!(
                "the decision used more than {} of memory",
                reply::human_size(limits.decision_memory)
            ))
        }
        (None, Some(signal)) => Verdict::Over(format!("the decision crashed (signal {signal})")),
        (None, None) => Verdict::Over(format!("the decision ended strangely ({status})")),
    }
}

fn cpu_reason(limits: &Limits) -> String {
    format!(
        "the decision used more than {} of CPU",
        human_duration(limits.decision_cpu)
    )
}

/// `5 s`, `1.5 s`, `10 ms`.
fn human_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// CPU time process `pid` used (user and system, from /proc/PID/stat, in
/// USER_HZ ticks, which Linux fixes at 100 a second).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // utime and stime are fields 14 and 15; the command name (field 2) is
    // in parentheses and may itself hold spaces.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system).saturating_mul(10)))
}

/// This process's peak address space so far (VmPeak), what RLIMIT_AS
/// bounds.
fn peak_address_space() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmPeak:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// The budget, in force in the deciding child from `enter` until `leave`:
/// soft limits only, so that the child can lift them again for the
/// playbook it starts (`ansible-playbook` inherits them).
#[derive(Debug)]
struct Budget {
    saved: Vec<(Resource, Rlimit)>,
}

impl Budget {
    fn enter(limits: &Limits) -> std::io::Result<Self> {
        // RLIMIT_CPU counts whole seconds; the supervisor watches finer
        // budgets itself.
        let cpu = limits.decision_cpu.as_secs() + u64::from(limits.decision_cpu.subsec_nanos() > 0);
        let mut saved = Vec::new();
        for (resource, soft) in [
            (Resource::Cpu, cpu),
            (Resource::As, limits.decision_memory),
            // No core file of a mail, wherever the working folder is.
            (Resource::Core, 0),
        ] {
            let old = rustix::process::getrlimit(resource);
            // Never above the hard limit, nor above a lower limit already set.
            let current = [Some(soft), old.current, old.maximum]
                .into_iter()
                .flatten()
                .min();
            rustix::process::setrlimit(
                resource,
                Rlimit {
                    current,
                    maximum: old.maximum,
                },
            )?;
            saved.push((resource, old));
        }
        Ok(Self { saved })
    }

    /// Lifts the limits again and tells the supervisor.
    fn leave(self) -> anyhow::Result<()> {
        for (resource, old) in self.saved {
            rustix::process::setrlimit(resource, old)
                .with_context(|| format!("cannot lift the decision budget ({resource:?})"))?;
        }
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(DECIDED)
            .and_then(|()| stdout.flush())
            .context("cannot tell the supervisor that the message is decided")
    }
}

/// In the deciding child: dies with its supervisor (as `run` killed by
/// the MTA always took its playbook with it), and refuses to start when
/// the supervisor is already gone.
pub(crate) fn watch_supervisor(supervisor: u32) -> anyhow::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .context("cannot follow the supervisor")?;
    let parent = rustix::process::Pid::as_raw(rustix::process::getppid());
    if u32::try_from(parent).ok() != Some(supervisor) {
        return Err(anyhow!(
            "{DELIVER_SPOOLED} is internal: it runs only as a child of the helpdesk run or retry it names (process {supervisor}), and that is not its parent"
        ));
    }
    Ok(())
}

/// Sets aside a message whose decision went over the budget: journals it
/// as `quarantined` with `reason`, moves it to `state_dir/quarantine/`
/// and answers its sender when its header proves it. Only the header
/// (at most `QUARANTINE_HEADER` bytes of it) is read, and its subject is
/// not journaled: only the decision could have redacted a secret in it.
/// The claim key is the one of unauthenticated mail (the SHA-256 of the
/// bytes), so that a redelivery of the same bytes is a duplicate.
fn quarantine(
    config: &Config,
    spooled: spool::Spooled,
    aside: &Aside<'_>,
    intake: Option<&str>,
) -> anyhow::Result<()> {
    let reason = aside.reason();
    let shown = spooled.path.display().to_string();
    tracing::warn!("quarantined: {reason}; spool file {shown}");
    let (header, digest) = read_header(&spooled.path)
        .with_context(|| format!("{shown}: cannot read the message to quarantine it"))?;
    let mail = mail::read(&header, &config.sender_header);
    let authentication = trust::authenticate(config.authentication.as_ref(), &mail);
    let mut journal = open(config)?;
    let id = match journal.by_spool_path(&spooled.path)? {
        Some(row) if row.state == journal::FINISHED => {
            // Handled, only not yet moved out of the spool when its
            // handler died; archived or deleted by its decision, which
            // cannot be made: deleted, in case it gave a secret.
            spool::discard(spooled).with_context(|| format!("{shown}: cannot delete it"))?;
            journal.set_spool_path(row.id, None)?;
            return Ok(());
        }
        // Claimed before (queued, or its handler died): this ends it.
        Some(row) => row.id,
        None => {
            let key = format!("unauthenticated sha256:{}", hex(&digest));
            let arrival = Arrival {
                key: &key,
                message_id: mail.message_id.as_deref(),
                sender: mail.sender.as_deref(),
                subject: "",
                spool_path: &spooled.path,
                claimed_by: &spool::process_token(),
                intake,
            };
            match journal.claim(&arrival)? {
                Claim::Claimed(id) => id,
                Claim::Duplicate { original, row } => {
                    tracing::info!(
                        target: pipeline::SUMMARY,
                        "duplicate row {row}: another delivery of row {original}, not quarantined again"
                    );
                    spool::discard(spooled)
                        .with_context(|| format!("{shown}: cannot delete it"))?;
                    write_metrics(config, &journal);
                    return Ok(());
                }
            }
        }
    };
    let moved = spool::quarantine(&config.state_dir, spooled)
        .with_context(|| format!("{shown}: cannot move it to the quarantine"))?;
    journal.set_spool_path(id, Some(&moved))?;
    let record = Record {
        authentication: Some(authentication.to_string()),
        outcome: Some(journal::Outcome::Quarantined),
        reason: Some(reason.to_owned()),
        reply: Some(answer_quarantined(
            config,
            &mail,
            &authentication,
            aside,
            id,
        )),
        ..Record::default()
    };
    journal.record(id, &record, journal::FINISHED)?;
    write_metrics(config, &journal);
    Ok(())
}

/// The header of a spooled message (up to its first blank line, at most
/// `QUARANTINE_HEADER` bytes, cut at a line end), and the SHA-256 of all
/// of it.
fn read_header(path: &Path) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut header = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        let chunk = buffer.get(..n).unwrap_or_default();
        hasher.update(chunk);
        if header.len() < QUARANTINE_HEADER {
            let room = QUARANTINE_HEADER - header.len();
            header.extend_from_slice(chunk.get(..room.min(n)).unwrap_or_default());
        }
    }
    let mut end = 0;
    for line in header.split_inclusive(|b| *b == b'\n') {
        if !line.ends_with(b"\n") {
            break;
        }
        if line == b"\n" || line == b"\r\n" {
            break;
        }
        end += line.len();
    }
    header.truncate(end);
    header.extend_from_slice(b"\r\n");
    Ok((header, hasher.finalize().to_vec()))
}

/// Sends the `quarantined` reply when the header proves the sender, as
/// `pipeline` sends the others (loops, the reply limit); returns what
/// happened for the journal.
fn answer_quarantined(
    config: &Config,
    mail: &Mail,
    authentication: &trust::Authenticated,
    aside: &Aside<'_>,
    id: i64,
) -> String {
    if let Some(silence) = loops::silence(mail, config.helpdesk_address.as_deref()) {
        tracing::info!("row {id}: no reply: {silence}");
        return format!("none: {silence}");
    }
    if !authentication.is_yes() {
        return "none: the sender is not authenticated".into();
    }
    let (template, told) = aside.told();
    pipeline::send(config, &format!("row {id}"), None, || {
        reply::quarantined(config, mail, &told, template)
    })
}

/// The journal, its state folder created first (0700).
pub(crate) fn open(config: &Config) -> anyhow::Result<Journal> {
    // Not listable by others, whatever the umask.
    state::create_folder(&config.state_dir).with_context(|| {
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
    intake: Option<&str>,
) -> Result<Claim, journal::JournalError> {
    let key = claim_key(authenticated, mail, raw);
    journal.claim(&Arrival {
        key: &key,
        message_id: mail.message_id.as_deref(),
        sender: mail.sender.as_deref(),
        subject: &mail.subject,
        spool_path: path,
        claimed_by: claimer,
        intake,
    })
}

/// What `pipeline::handle` tells the journal of row `id` on the way.
struct Steps<'a> {
    journal: &'a mut Journal,
    id: i64,
    sender: Option<&'a str>,
    limit: u32,
    /// Whether the outcome is durable already (written before the reply).
    finished: bool,
    /// Whether the row now waits for approval (never finished here).
    pended: bool,
}

impl pipeline::Journaling for Steps<'_> {
    // The run cap is checked and the run counted in one journal
    // transaction; when the journal cannot say, nothing runs (failing open
    // would lift the cap whenever the journal is busy).
    fn running(&mut self, record: &Record) -> anyhow::Result<Start> {
        let id = self.id;
        let sender = self
            .sender
            .ok_or_else(|| anyhow!("row {id}: no sender to count the run against"))?;
        Ok(self.journal.start_run(id, record, sender, self.limit)?)
    }

    fn over_limit(&mut self) -> bool {
        self.sender.is_some_and(|sender| {
            self.journal
                .over_run_limit(self.id, sender, self.limit)
                .unwrap_or(false)
        })
    }

    fn finished(&mut self, record: &Record) -> anyhow::Result<()> {
        self.journal.record(self.id, record, journal::FINISHED)?;
        self.finished = true;
        Ok(())
    }

    fn pend(&mut self, record: &Record, pending: &journal::Pending<'_>) -> anyhow::Result<()> {
        self.journal.pend(self.id, record, pending)?;
        self.pended = true;
        Ok(())
    }

    fn note_maintenance(
        &mut self,
        maintenance: &crate::maintenance::Maintenance,
    ) -> anyhow::Result<journal::maintenances::Change> {
        Ok(self.journal.note_maintenance(maintenance, self.id)?)
    }
}

/// Handles a claimed message and closes its row, the outcome durable
/// before the reply and before the spool copy goes. On an error before
/// the playbook started nothing ran: `keep` (queue mode, `retry`) puts the
/// claim back with the reason and keeps the spooled copy, the only one;
/// otherwise (inline `run`, whose MTA keeps the message on 75) the claim
/// and the copy are given up, so that the MTA's retry starts afresh. On an
/// error after the start the row stays `running` and the copy in the
/// spool, for `retry` to mark the outcome unknown.
#[allow(clippy::too_many_arguments)]
fn process(
    config: &Config,
    journal: &mut Journal,
    id: i64,
    spooled: spool::Spooled,
    (mail, raw): (&Mail, &[u8]),
    decided: &pipeline::Decided,
    binary: &Path,
    keep: bool,
) -> anyhow::Result<()> {
    let mut steps = Steps {
        journal,
        id,
        sender: mail.sender.as_deref(),
        limit: config.limits.runs_per_sender_per_hour,
        finished: false,
        pended: false,
    };
    // Commands to the control address and answers to an approval
    // request are no requests of their own.
    let handled = match crate::reply::approval::token_in(mail) {
        _ if decided.notice().is_some() => maintenance::handle(
            config,
            id,
            (mail, raw),
            decided.notice(),
            Some(binary),
            &mut steps,
        ),
        _ if control::addressed(config, mail) => {
            control::handle(config, steps.journal, id, mail, decided)
        }
        Some(token) => {
            approval::answered(config, steps.journal, id, mail, decided, (&token, binary))
        }
        None => pipeline::handle(config, id, mail, decided, Some(binary), &mut steps),
    };
    // Waiting for approval: its reply is what is left to journal.
    let finished = steps.finished || steps.pended;
    let record = match handled {
        Ok(record) => record,
        Err(e) if pipeline::playbook_started(&e) => {
            return Err(e.context(format!(
                "row {id}: its outcome is unknown; helpdesk retry will mark it so"
            )));
        }
        Err(e) => {
            not_started(journal, id, &spooled.path, keep, &e)?;
            return Err(e);
        }
    };
    let kept = if finished {
        journal.set_reply(id, record.reply.as_deref())
    } else {
        journal.record(id, &record, journal::FINISHED)
    };
    if let Err(e) = kept {
        if finished {
            tracing::warn!("row {id}: handled, but what became of its reply is not journaled: {e}");
        } else if record.run_log.is_some() {
            return Err(anyhow!(e).context(format!(
                "row {id}: the playbook ran, but its outcome cannot be journaled; helpdesk retry will mark it unknown"
            )));
        } else {
            not_started(journal, id, &spooled.path, keep, &anyhow!("{e}"))?;
            return Err(e.into());
        }
    }
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

/// After a failure to start (`error`; nothing ran): puts the claim back
/// with the reason and keeps the spooled copy (`keep`), or gives both up.
fn not_started(
    journal: &Journal,
    id: i64,
    path: &Path,
    keep: bool,
    error: &anyhow::Error,
) -> anyhow::Result<()> {
    if keep {
        let after = journal.put_back(id, &format!("not started: {error:#}"))?;
        tracing::warn!(
            "row {id}: not started, it stays in the spool (next attempt after {after}): {error:#}"
        );
    } else {
        journal.abandon(id)?;
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Ends row `row`, whose playbook started but whose handler died before
/// its outcome was journaled, as `unknown`: never started again by itself
/// (`helpdesk retry --rerun` is an operator's decision). The sender is told
/// that it may or may not have completed, and the spool copy goes.
fn end_unknown(ready: Ready<'_>, journal: &mut Journal, row: &journal::Row) -> anyhow::Result<()> {
    let me = spool::process_token();
    let reason = format!(
        "its playbook started (attempt {}) but its outcome was never journaled: it may or may not have completed; helpdesk retry --rerun {} runs it again",
        row.attempts, row.id
    );
    if !journal.mark_unknown(row.id, row.claimed_by.as_deref(), &me, &reason)? {
        return Ok(());
    }
    tracing::warn!(target: pipeline::SUMMARY, "unknown row {}: {reason}", row.id);
    let label = format!("row {}", row.id);
    let told = pipeline::tell_unknown(ready.config, ready.mail, ready.decided, &label);
    if let Err(e) = journal.set_reply(row.id, Some(&told)) {
        tracing::warn!("{label}: what became of its reply is not journaled: {e}");
    }
    let archived = release(ready.config, ready.spooled, ready.decided)
        .context("cannot move a handled message out of the spool")?;
    journal.set_spool_path(row.id, archived.as_deref())?;
    write_metrics(ready.config, journal);
    Ok(())
}

/// `helpdesk retry --rerun ID`: an operator's decision to run the
/// playbook of row `id`, whose outcome is unknown, once more, with the
/// vars journaled for it. Returns the new outcome.
pub(crate) fn rerun(config: &Config, program: &Program, id: i64) -> anyhow::Result<Outcome> {
    let mut journal = open(config)?;
    let row = journal
        .get(id)?
        .ok_or_else(|| anyhow!("no row {id} in the journal (see helpdesk log)"))?;
    if row.record.outcome != Some(Outcome::Unknown) {
        return Err(anyhow!(
            "row {id}: its outcome is {}, not unknown: only a row whose outcome is unknown is run again",
            row.record.outcome.map_or("not yet known", Outcome::as_str)
        ));
    }
    let request_type = row.record.request_type.clone().unwrap_or_default();
    let vars: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(row.record.vars.as_deref().unwrap_or("{}"))
            .with_context(|| format!("row {id}: its journaled vars cannot be read"))?;
    if vars
        .values()
        .any(|v| v.as_str() == Some(crate::decide::redact::REDACTED))
    {
        return Err(anyhow!(
            "row {id}: the request gave a secret value, which helpdesk never keeps: ask the sender to send it again"
        ));
    }
    if !journal.start_rerun(id, &spool::process_token())? {
        return Err(anyhow!("row {id}: taken by another helpdesk retry --rerun"));
    }
    let label = format!("row {id}");
    let run = pipeline::rerun(
        config,
        id,
        &request_type,
        &vars,
        Some(&program.path),
        &label,
    );
    let record = match run {
        Ok(run) => Record {
            outcome: run.outcome,
            exit_code: run.exit_code,
            duration_ms: run.duration_ms,
            run_log: run.run_log,
            reason: Some(format!("run again by helpdesk retry --rerun {id}")),
            ..row.record
        },
        Err(e) if pipeline::playbook_started(&e) => return Err(e),
        Err(e) => Record {
            reason: Some(format!("not run again: {e:#}")),
            ..row.record
        },
    };
    journal.record(id, &record, journal::FINISHED)?;
    write_metrics(config, &journal);
    Ok(record.outcome.unwrap_or(Outcome::Unknown))
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

pub(crate) fn write_metrics(config: &Config, journal: &Journal) {
    if let Err(e) = metrics::write(&config.metrics_file, journal) {
        tracing::warn!("cannot write {}: {e:#}", config.metrics_file.display());
    }
}

/// Whether the spool holds messages nobody is working on (nobody holds
/// their lock) that a retry may try now (not backing off).
fn stale_leftovers(config: &Config) -> anyhow::Result<bool> {
    // A message backing off after a failure to start is not for a retry
    // now: every delivery in the hour would start one that does nothing.
    let journal = open(config).ok();
    for path in spool::leftovers(&config.state_dir)? {
        if spool::lock(&path).ok().flatten().is_some()
            && journal
                .as_ref()
                .and_then(|j| backing_off(j, &path))
                .is_none()
        {
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

use std::os::unix::process::CommandExt as _;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::trust;

    const MX: &str = "Authentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\nReceived: from out.example.com by mx.example.com; Sun, 22 Nov 2026 09:00:00 +0000\r\n";

    fn config() -> Config {
        Config::from_yaml(
            "authentication: {authserv_id: [mx.example.com], require: dmarc}\n",
            "config.yaml",
            &std::env::temp_dir(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Issue 14: a delivery starts a retry for messages left in the spool,
    /// but not for one that backs off after a failure to start (the retry
    /// would leave it alone, for each delivery in the hour).
    #[test]
    fn a_backing_off_leftover_is_no_reason_to_start_a_retry() {
        use std::fs;
        let base = tempfile::tempdir().unwrap();
        let config = Config::from_yaml("state_dir: state\n", "config.yaml", base.path()).unwrap();
        let spool_dir = state::spool(&config.state_dir);
        fs::create_dir_all(&spool_dir).unwrap();
        let backing = spool_dir.join("1.eml");
        fs::write(&backing, "From: a@example.com\r\n\r\nquota\r\n").unwrap();
        let mut journal = open(&config).unwrap();
        let arrival = journal::Arrival {
            key: "k1",
            message_id: None,
            sender: Some("a@example.com"),
            subject: "quota",
            spool_path: &backing,
            claimed_by: "1:1",
            intake: None,
        };
        let journal::Claim::Claimed(id) = journal.claim(&arrival).unwrap() else {
            panic!("not claimed");
        };
        journal.put_back(id, "not started: no playbook").unwrap();
        assert!(!stale_leftovers(&config).unwrap());
        fs::write(
            spool_dir.join("2.eml"),
            "From: b@example.com\r\n\r\nquota\r\n",
        )
        .unwrap();
        assert!(stale_leftovers(&config).unwrap());
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

    /// How a child that ended before deciding is read: each budget by its
    /// signal, a panic (status 70) and any other signal as a crash, and a
    /// plain status (0, 75) as no quarantine.
    #[test]
    fn reasons_for_a_child_that_ended_before_deciding() {
        use std::os::unix::process::ExitStatusExt as _;
        let limits = Limits {
            decision_cpu: Duration::from_millis(1500),
            decision_memory: 40 * 1024 * 1024,
            ..Limits::default()
        };
        let oom = LastWords {
            out_of_memory: true,
            stack_overflow: false,
        };
        let said = |raw: i32, words: LastWords| match ended_undecided(
            ExitStatus::from_raw(raw),
            words,
            &limits,
        ) {
            Verdict::Over(reason) => reason,
            other => panic!("{raw}: {other:?}"),
        };
        let reason = |raw: i32| said(raw, oom);
        assert_eq!(
            reason(Signal::XCPU.as_raw()),
            "the decision used more than 1.5 s of CPU"
        );
        assert_eq!(
            reason(Signal::ABORT.as_raw()),
            "the decision used more than 40 MiB of memory"
        );
        assert_eq!(
            reason(Signal::SEGV.as_raw()),
            "the decision crashed (signal 11)"
        );
        // An abort without Rust's words about an allocation is no budget.
        assert_eq!(
            said(Signal::ABORT.as_raw(), LastWords::default()),
            "the decision crashed (signal 6)"
        );
        let mut overflow = LastWords::default();
        overflow.note(
            b"\nthread 'main' has overflowed its stack\nfatal runtime error: stack overflow\n",
        );
        assert_eq!(
            said(Signal::ABORT.as_raw(), overflow),
            "the decision overflowed its stack (signal 6)"
        );
        let mut words = LastWords::default();
        words.note(b"memory allocation of 83886080 bytes failed\n");
        assert_eq!(words, oom);
        assert_eq!(
            reason(Signal::KILL.as_raw()),
            "the decision crashed (signal 9)"
        );
        assert_eq!(
            reason(70 << 8),
            "the decision crashed (exit status 70: a bug, please report it)"
        );
        for code in [0, 75, 78] {
            assert!(
                matches!(
                    ended_undecided(ExitStatus::from_raw(code << 8), oom, &limits),
                    Verdict::Undecided(_)
                ),
                "{code}"
            );
        }
        assert_eq!(human_duration(Duration::from_secs(5)), "5 s");
        assert_eq!(human_duration(Duration::from_millis(10)), "10 ms");
        assert_eq!(human_duration(Duration::from_secs(60)), "60 s");
    }

    /// The quarantine reads the header up to its first blank line (LF or
    /// CRLF), at most QUARANTINE_HEADER bytes of it cut at a line end, and
    /// hashes all of the message, as `claim_key` does.
    #[test]
    fn the_quarantine_reads_only_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.eml");
        for (raw, header) in [
            (
                &b"From: a@example.com\r\nSubject: x\r\n\r\nFrom: b@example.com\r\n"[..],
                &b"From: a@example.com\r\nSubject: x\r\n\r\n"[..],
            ),
            (
                b"From: a@example.com\nSubject: x\n\nbody\n",
                b"From: a@example.com\nSubject: x\n\r\n",
            ),
            (b"From: a@example.com", b"\r\n"),
        ] {
            std::fs::write(&path, raw).unwrap();
            let (read, digest) = read_header(&path).unwrap();
            assert_eq!(read, header, "{}", String::from_utf8_lossy(raw));
            assert_eq!(digest, Sha256::digest(raw).to_vec());
        }
        let mut long = Vec::new();
        while long.len() < 3 * QUARANTINE_HEADER {
            long.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        long.extend_from_slice(b"\r\nbody\r\n");
        std::fs::write(&path, &long).unwrap();
        let (read, digest) = read_header(&path).unwrap();
        assert!(read.len() <= QUARANTINE_HEADER + 2, "{}", read.len());
        assert!(read.len() > QUARANTINE_HEADER - 100, "{}", read.len());
        assert!(read.ends_with(b"0123456789\r\n\r\n"));
        assert_eq!(digest, Sha256::digest(&long).to_vec());
    }

    #[test]
    fn cpu_time_of_this_process() {
        // Spinning shows up as CPU time in /proc, however busy the machine.
        let start = cpu_time(std::process::id()).unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        let mut used = Duration::ZERO;
        while used < Duration::from_millis(50) && Instant::now() < until {
            used = cpu_time(std::process::id()).unwrap() - start;
        }
        assert!(used >= Duration::from_millis(50), "{used:?}");
        assert_eq!(cpu_time(u32::MAX), None);
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
                None,
            ) {
                Ok(Claim::Claimed(_)) => "claimed",
                Ok(Claim::Duplicate { .. }) => "duplicate",
                Err(e) => panic!("{e}"),
            }
        };
        let id = Some("x@example.com");
        for (authenticated, from, body, expected) in [
            (false, "alice@example.com", "a", "claimed"),
            (false, "alice@example.com", "a", "duplicate"),
            (true, "alice@example.com", "a", "claimed"),
            (true, "bob@example.com", "a", "claimed"),
            (true, "alice@example.com", "b", "duplicate"),
        ] {
            let raw = message(authenticated, from, id, body);
            assert_eq!(outcome(&raw), expected, "{from} {body} {authenticated}");
        }
    }
}
