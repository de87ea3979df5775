//! The journal: one SQLite row per message delivery, saying what came in and
//! what became of it. It is also the exactly-once claim: a message's key
//! (its Message-ID, or the SHA-256 of its bytes when it has none) may be
//! claimed by one delivery only; later deliveries of it are recorded as
//! `duplicate` rows and run nothing.
//!
//! It also counts playbook runs per sender for
//! `limits.runs_per_sender_per_hour`: a row's `started_at` is set, in the
//! same transaction that checks the count, when its playbook starts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, TransactionBehavior, params};
use serde::Serialize;

use crate::delivery::state;
pub(crate) use crate::outcome::{Outcome, State};

mod approvals;
pub(crate) mod maintenances;
mod sources;
pub(crate) use approvals::{Approval, Pending, PendingRow, Verdict, Vote, Voted};
pub(crate) use sources::{Health, Problem};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id             INTEGER PRIMARY KEY,
    key            TEXT NOT NULL,
    message_id     TEXT,
    received_at    TEXT NOT NULL,
    sender         TEXT,
    subject        TEXT,
    request_type   TEXT,
    vars           TEXT,
    authentication TEXT,
    access         TEXT,
    state          TEXT NOT NULL,
    outcome        TEXT,
    exit_code      INTEGER,
    duration_ms    INTEGER,
    run_log        TEXT,
    reply          TEXT,
    spool_path     TEXT,
    claimed_by     TEXT,
    attempts       INTEGER NOT NULL DEFAULT 1,
    duplicate_of   INTEGER,
    updated_at     TEXT NOT NULL,
    reason         TEXT,
    started_at     TEXT,
    retry_after    TEXT,
    intake         TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS claim ON messages(key) WHERE duplicate_of IS NULL;
CREATE INDEX IF NOT EXISTS by_time ON messages(received_at);
CREATE TABLE IF NOT EXISTS outcome_totals (
    request_type TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (request_type, outcome)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS duration_totals (
    le_ms  INTEGER PRIMARY KEY,
    count  INTEGER NOT NULL,
    sum_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    row         INTEGER PRIMARY KEY,
    rule        INTEGER NOT NULL,
    vars        TEXT NOT NULL,
    vars_sha256 TEXT NOT NULL,
    approvers   TEXT NOT NULL,
    required    INTEGER NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_by_expiry ON pending(expires_at);
CREATE TABLE IF NOT EXISTS approval_tokens (
    token   TEXT PRIMARY KEY,
    row     INTEGER NOT NULL,
    sent_to TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY,
    row INTEGER NOT NULL,
    approver TEXT NOT NULL,
    verdict TEXT NOT NULL,
    authentication TEXT NOT NULL,
    reason TEXT,
    at TEXT NOT NULL,
    answer_row INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS one_verdict_each ON approvals(row, approver COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS sources (
    name       TEXT PRIMARY KEY,
    reachable  INTEGER NOT NULL,
    since      TEXT NOT NULL,
    checked_at TEXT NOT NULL,
    problem    TEXT,
    error      TEXT,
    failures   INTEGER NOT NULL DEFAULT 0,
    fetched    INTEGER NOT NULL DEFAULT 0,
    alerted    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS maintenances (
    provider        TEXT NOT NULL,
    maintenance_id  TEXT NOT NULL,
    status          TEXT NOT NULL,
    sequence        INTEGER,
    stamp           TEXT,
    start           TEXT NOT NULL,
    end             TEXT NOT NULL,
    account         TEXT,
    summary         TEXT NOT NULL,
    organizer       TEXT,
    circuits        TEXT NOT NULL,
    row             INTEGER NOT NULL,
    updated_at      TEXT NOT NULL,
    started_at      TEXT,
    started_outcome TEXT,
    ended_at        TEXT,
    ended_outcome   TEXT,
    PRIMARY KEY (provider, maintenance_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS maintenance_notices (
    id             INTEGER PRIMARY KEY,
    row            INTEGER NOT NULL,
    provider       TEXT NOT NULL,
    maintenance_id TEXT NOT NULL,
    sequence       INTEGER,
    stamp          TEXT,
    change         TEXT NOT NULL,
    recorded_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notices_by_row ON maintenance_notices(row);
";

/// The indexes `start_run` counts with. Separate from `SCHEMA` because a
/// journal from before version 3 gets `started_at` only after `SCHEMA` ran.
/// `'limited'` is `Outcome::Limited`'s word, written out because an index
/// on disk is defined by its text.
const RUN_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS runs_by_sender ON messages(sender COLLATE NOCASE, started_at)
    WHERE started_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS limited_by_sender ON messages(sender COLLATE NOCASE, updated_at)
    WHERE outcome = 'limited';
CREATE INDEX IF NOT EXISTS by_intake ON messages(intake) WHERE intake IS NOT NULL;
";

/// `PRAGMA user_version` of a journal with everything in `SCHEMA`. Version
/// 2 added the totals tables, which keep the metrics' counters as rows are
/// finished (counting every row for every message grew with the journal).
/// Version 3 added `started_at`, for the cap on runs per sender. Version 4
/// added `reason`, why a message was quarantined. Version 5 added
/// `retry_after`, the backoff after a failure to start. Version 6 added
/// the `pending`, `approval_tokens` and `approvals` tables (`approvals:`),
/// which `SCHEMA`'s `CREATE ... IF NOT EXISTS` adds to an older journal.
/// Version 7 added `intake` (where `fetch` took a message from: source,
/// UIDVALIDITY and UID, or a Maildir name) and the `sources` table (each
/// source's health), for `sources:`. Version 8 added the `maintenances`
/// and `maintenance_notices` tables (`maintenance:`).
const SCHEMA_VERSION: i64 = 8;

/// The backoff after a failure to start: the first wait, doubled with
/// each failed attempt up to `BACKOFF_MAX` (as Postfix's queue manager
/// backs off a deferred message, between its minimal and maximal backoff
/// times).
const BACKOFF_FIRST: Duration = Duration::from_secs(60);
const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// How long `retry` and `worker` leave a message alone after its
/// `attempts`-th attempt failed to start.
pub(crate) fn backoff(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX)
}

/// The window of `limits.runs_per_sender_per_hour`.
const RUN_WINDOW: Duration = Duration::from_secs(3600);

/// Upper bounds of the run-duration histogram's buckets, in milliseconds;
/// longer runs fall in the `+Inf` bucket.
pub(crate) const DURATION_BUCKETS_MS: &[u64] = &[
    1_000, 5_000, 15_000, 30_000, 60_000, 300_000, 900_000, 1_800_000, 3_600_000,
];

/// `le_ms` of the `+Inf` bucket.
const INF_BUCKET: i64 = i64::MAX;

fn bucket_of(ms: u64) -> i64 {
    DURATION_BUCKETS_MS
        .iter()
        .find(|bound| ms <= **bound)
        .map_or(INF_BUCKET, |bound| {
            i64::try_from(*bound).unwrap_or(INF_BUCKET)
        })
}

/// Counts `outcome`, with no run duration, for the request type of row
/// `id` (a row just ended without a run of its own to time).
fn count_outcome_of(connection: &Connection, id: i64, outcome: Outcome) -> rusqlite::Result<()> {
    let request_type: Option<String> = connection.query_row(
        "SELECT request_type FROM messages WHERE id = ?1",
        params![id],
        |r| r.get(0),
    )?;
    count_outcome(connection, request_type.as_deref(), outcome, None)
}

/// Counts one finished row in the totals.
fn count_outcome(
    connection: &Connection,
    request_type: Option<&str>,
    outcome: Outcome,
    duration_ms: Option<u64>,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO outcome_totals (request_type, outcome, count) VALUES (?1, ?2, 1)
         ON CONFLICT (request_type, outcome) DO UPDATE SET count = count + 1",
        params![request_type.unwrap_or(""), outcome],
    )?;
    if let Some(ms) = duration_ms {
        connection.execute(
            "INSERT INTO duration_totals (le_ms, count, sum_ms) VALUES (?1, 1, ?2)
             ON CONFLICT (le_ms) DO UPDATE SET count = count + 1, sum_ms = sum_ms + ?2",
            params![bucket_of(ms), i64::try_from(ms).unwrap_or(i64::MAX)],
        )?;
    }
    Ok(())
}

/// A count or a sum read back from the journal (never negative there).
fn non_negative(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<u64> {
    Ok(row.get::<_, i64>(column)?.max(0).unsigned_abs())
}

/// Fills the totals from the rows of a journal written before they existed.
fn backfill_totals(connection: &Connection) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO outcome_totals (request_type, outcome, count)
         SELECT COALESCE(request_type, ''), outcome, COUNT(*) FROM messages
         WHERE outcome IS NOT NULL GROUP BY 1, 2",
        [],
    )?;
    let mut durations =
        connection.prepare("SELECT duration_ms FROM messages WHERE duration_ms IS NOT NULL")?;
    let mut buckets: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
    for ms in durations.query_map([], |r| r.get::<_, i64>(0))? {
        let ms = ms?.max(0);
        let bucket = buckets.entry(bucket_of(ms.unsigned_abs())).or_default();
        bucket.0 += 1;
        bucket.1 = bucket.1.saturating_add(ms);
    }
    for (le_ms, (count, sum_ms)) in buckets {
        connection.execute(
            "INSERT INTO duration_totals (le_ms, count, sum_ms) VALUES (?1, ?2, ?3)",
            params![le_ms, count, sum_ms],
        )?;
    }
    Ok(())
}

fn has_column(connection: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut statement = connection.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = statement.query_map([], |r| r.get::<_, String>(1))?;
    for name in names {
        if name? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

/// How long a step of `Journal::open` pauses before trying again.
const PATIENCE_STEP: Duration = Duration::from_millis(20);

/// Runs `step` until it does not fail busy, or `deadline` passes; each
/// attempt may wait for a lock until the deadline. Trying again is needed
/// because SQLite does not always wait: where waiting could deadlock (two
/// first opens of a new journal switching it to WAL at once, each holding
/// a shared lock) it fails busy at once, whatever its busy timeout.
fn patiently<T>(
    connection: &mut Connection,
    deadline: Instant,
    mut step: impl FnMut(&mut Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        connection.busy_timeout(left)?;
        match step(connection) {
            Err(e) if is_busy(&e) && !left.is_zero() => {
                std::thread::sleep(PATIENCE_STEP.min(left));
            }
            done => return done,
        }
    }
}

/// A lock someone else holds, as opposed to a broken journal.
fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Creates the tables (or the ones a journal from an earlier version
/// lacks), once: a current journal is only asked its version.
fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let version = |connection: &Connection| {
        connection.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
    };
    if version(connection)? >= SCHEMA_VERSION {
        return Ok(());
    }
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another delivery may have migrated it while this one waited.
    let found = version(&tx)?;
    if found < SCHEMA_VERSION {
        tx.execute_batch(SCHEMA)?;
        // Only a journal without the totals tables (the CREATE above just
        // made them) is counted from its rows: filling them again would
        // count every row twice.
        if found < 2 {
            backfill_totals(&tx)?;
        }
        if !has_column(&tx, "messages", "started_at")? {
            // Older rows have no start time: they count as no runs.
            tx.execute("ALTER TABLE messages ADD COLUMN started_at TEXT", [])?;
        }
        for column in ["reason", "retry_after", "intake"] {
            if !has_column(&tx, "messages", column)? {
                tx.execute(
                    &format!("ALTER TABLE messages ADD COLUMN {column} TEXT"),
                    [],
                )?;
            }
        }
        tx.execute_batch(RUN_INDEXES)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()
}

/// Where a row is in its life (short names for `State`'s variants).
pub(crate) const CLAIMED: State = State::Claimed;
pub(crate) const RUNNING: State = State::Running;
pub(crate) const FINISHED: State = State::Finished;
pub(crate) const PENDING: State = State::Pending;

/// The journal stores the vocabularies' words, and reads them back.
macro_rules! sql_words {
    ($($name:ident),+) => {$(
        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    )+};
}

sql_words!(Outcome, State);

#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    #[error("{path}: journal: {cause}")]
    Sqlite {
        path: String,
        cause: rusqlite::Error,
    },
    #[error("{path}: cannot create the journal: {cause}")]
    Create { path: String, cause: std::io::Error },
}

/// The journal holds senders and subjects, so it and the `-wal` and `-shm`
/// files SQLite keeps next to it are 0600 whatever the umask. SQLite gives
/// those two the database's own mode (and would create the database 0644),
/// so the database is created here first, 0600; one an earlier version
/// made 0644 is tightened, with its companions. Tightening is best effort:
/// someone other than its owner (an operator running `log`) cannot, and
/// `check` reports it.
fn make_private(state_dir: &Path) -> Result<(), JournalError> {
    use std::os::unix::fs::PermissionsExt;
    let path = state::journal(state_dir);
    match state::create_file(&path) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(cause) => {
            return Err(JournalError::Create {
                path: path.display().to_string(),
                cause,
            });
        }
    }
    for file in state::journal_files(state_dir) {
        if let Ok(meta) = std::fs::metadata(&file)
            && state::is_loose(meta.permissions().mode())
        {
            let _ =
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(state::FILE_MODE));
        }
    }
    Ok(())
}

#[derive(Debug)]
pub(crate) struct Journal {
    connection: Connection,
    path: PathBuf,
}

/// The result of trying to claim a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This delivery owns the message: row id.
    Claimed(i64),
    /// Another delivery claimed it first (its row id); ours is recorded as
    /// a duplicate row.
    Duplicate { original: i64, row: i64 },
}

/// Whether a request's playbook may start (`Journal::start_run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// The row is marked running; the run counts against the sender.
    Run,
    /// The sender already started `limit` runs in the past hour: nothing
    /// runs. `reply`: this is the first request refused since the sender's
    /// latest run started, so it gets the one reply saying so; later ones
    /// are journaled without a reply.
    Limited { limit: u32, reply: bool },
}

/// What a claim records up front.
#[derive(Debug, Clone)]
pub(crate) struct Arrival<'a> {
    pub key: &'a str,
    pub message_id: Option<&'a str>,
    pub sender: Option<&'a str>,
    pub subject: &'a str,
    pub spool_path: &'a Path,
    pub claimed_by: &'a str,
    /// Where `fetch` took it from (`sources:`), for the source to find
    /// out what became of it; `None` for mail from the MTA.
    pub intake: Option<&'a str>,
}

/// What happened, filled in as the message goes through the pipeline.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Record {
    pub request_type: Option<String>,
    /// Redacted.
    pub vars: Option<String>,
    pub authentication: Option<String>,
    pub access: Option<String>,
    pub outcome: Option<Outcome>,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<u64>,
    pub run_log: Option<String>,
    pub reply: Option<String>,
    /// Why: the message was quarantined, its run did nothing (no host
    /// matched, all unreachable or skipped), or it could not start yet.
    pub reason: Option<String>,
}

/// One row, for `log` and `show`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub id: i64,
    pub key: String,
    pub message_id: Option<String>,
    pub received_at: String,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub state: State,
    pub attempts: i64,
    pub duplicate_of: Option<i64>,
    pub spool_path: Option<String>,
    pub claimed_by: Option<String>,
    /// When its playbook started (what `limits.runs_per_sender_per_hour`
    /// counts); `None` when none did.
    pub started_at: Option<String>,
    /// After a failure to start: `retry` and `worker` leave it alone until
    /// then (`retry --now` does not).
    pub retry_after: Option<String>,
    /// Where `fetch` took it from (`sources:`); `None` for mail from the MTA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intake: Option<String>,
    #[serde(flatten)]
    pub record: Record,
    /// The answers of its approvers, in order, when it waited for
    /// approval (`approvals:`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
}

impl Row {
    /// Whether this row, put back after a failure to start, arrived more
    /// than `lifetime` ago: then it is not tried again but set aside.
    pub(crate) fn outlived(&self, lifetime: Duration) -> bool {
        let cutoff = std::time::SystemTime::now()
            .checked_sub(lifetime)
            .unwrap_or(std::time::UNIX_EPOCH);
        let cutoff = humantime::format_rfc3339_millis(cutoff).to_string();
        self.retry_after.is_some()
            && self.state == CLAIMED
            && self.claimed_by.is_none()
            && self.received_at < cutoff
    }

    /// When a row put back after a failure to start may be tried again,
    /// if that is still to come.
    pub(crate) fn backing_off(&self) -> Option<&str> {
        let after = self.retry_after.as_deref()?;
        // RFC 3339 in UTC with millis, as `now` writes: ordered as text.
        (self.state == CLAIMED && self.claimed_by.is_none() && after > now().as_str())
            .then_some(after)
    }
}

/// What the metrics are made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// (request type, outcome, count)
    pub counts: Vec<(String, Outcome, u64)>,
    /// Playbook runs per bucket of `DURATION_BUCKETS_MS` (not cumulative),
    /// the last one `+Inf`.
    pub buckets: Vec<u64>,
    /// Milliseconds of all playbook runs together.
    pub sum_ms: u64,
}

/// Filters for `helpdesk log`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub sender: Option<String>,
    pub request_type: Option<String>,
    pub outcome: Option<Outcome>,
    /// RFC 3339 time; rows received at or after it.
    pub since: Option<String>,
    pub limit: usize,
}

/// The start of the `limits.runs_per_sender_per_hour` window (RFC 3339).
fn window_start() -> String {
    let start = std::time::SystemTime::now()
        .checked_sub(RUN_WINDOW)
        .unwrap_or(std::time::UNIX_EPOCH);
    humantime::format_rfc3339_millis(start).to_string()
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Marks row `id` `limited` at `stamp`; whether it is the first refusal
/// of `sender` since `since` (the latest run's start), which is told.
fn refuse(
    tx: &Connection,
    id: i64,
    sender: &str,
    since: &str,
    stamp: &str,
) -> rusqlite::Result<bool> {
    // Refused since the latest run started: then one was told.
    let told: i64 = tx.query_row(
        "SELECT COUNT(*) FROM messages
         WHERE sender = ?1 COLLATE NOCASE AND outcome = ?2 AND updated_at >= ?3 AND id != ?4",
        params![sender, Outcome::Limited, since, id],
        |r| r.get(0),
    )?;
    tx.execute(
        "UPDATE messages SET outcome = ?1, updated_at = ?2 WHERE id = ?3",
        params![Outcome::Limited, stamp, id],
    )?;
    Ok(told == 0)
}

impl Journal {
    /// Opens (creating) `state_dir/journal.sqlite`, in WAL mode, waiting up
    /// to `busy` for a lock held by another delivery: setting it up (WAL,
    /// the schema) waits within `busy` too, then each statement gets `busy`.
    pub(crate) fn open(state_dir: &Path, busy: Duration) -> Result<Self, JournalError> {
        let path = state::journal(state_dir);
        let error = |cause| JournalError::Sqlite {
            path: path.display().to_string(),
            cause,
        };
        let deadline = Instant::now() + busy;
        make_private(state_dir)?;
        let mut connection = Connection::open(&path).map_err(error)?;
        patiently(&mut connection, deadline, |c| {
            c.pragma_update(None, "journal_mode", "WAL")
        })
        .map_err(error)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(error)?;
        // Every `run` is a process of its own: keep the WAL file when the
        // last connection closes, or the next run creates it again (a new
        // file and an fsync of the state folder, for every message). With
        // a size limit set, that close empties it instead, so the next open
        // has nothing to read back.
        patiently(&mut connection, deadline, |c| {
            c.pragma_update(None, "journal_size_limit", 1 << 20)
        })
        .map_err(error)?;
        connection
            .file_control(
                Some(rusqlite::MAIN_DB),
                rusqlite::FileControl::PersistWal(&mut 1),
            )
            .map_err(error)?;
        patiently(&mut connection, deadline, migrate).map_err(error)?;
        connection.busy_timeout(busy).map_err(error)?;
        Ok(Self { connection, path })
    }

    fn error(&self) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
        |cause| JournalError::Sqlite {
            path: self.path.display().to_string(),
            cause,
        }
    }

    /// Claims `arrival.key` atomically: of any number of concurrent
    /// deliveries of one message, exactly one gets `Claimed`.
    pub(crate) fn claim(&mut self, arrival: &Arrival<'_>) -> Result<Claim, JournalError> {
        let error = |cause| JournalError::Sqlite {
            path: self.path.display().to_string(),
            cause,
        };
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(error)?;
        let stamp = now();
        let spool = arrival.spool_path.display().to_string();
        let inserted = tx.execute(
            "INSERT INTO messages (key, message_id, received_at, sender, subject, state, spool_path, claimed_by, updated_at, intake)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?3, ?9)",
            params![arrival.key, arrival.message_id, stamp, arrival.sender, arrival.subject, CLAIMED, spool, arrival.claimed_by, arrival.intake],
        );
        let claim = match inserted {
            Ok(_) => Claim::Claimed(tx.last_insert_rowid()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation =>
            {
                let original: i64 = tx
                    .query_row(
                        "SELECT id FROM messages WHERE key = ?1 AND duplicate_of IS NULL",
                        params![arrival.key],
                        |r| r.get(0),
                    )
                    .map_err(error)?;
                tx.execute(
                    "INSERT INTO messages (key, message_id, received_at, sender, subject, state, outcome, duplicate_of, updated_at, intake)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?8, ?7, ?3, ?9)",
                    params![arrival.key, arrival.message_id, stamp, arrival.sender, arrival.subject, FINISHED, original, Outcome::Duplicate, arrival.intake],
                )
                .map_err(error)?;
                count_outcome(&tx, None, Outcome::Duplicate, None).map_err(error)?;
                Claim::Duplicate {
                    original,
                    row: tx.last_insert_rowid(),
                }
            }
            Err(e) => return Err(error(e)),
        };
        tx.commit().map_err(error)?;
        Ok(claim)
    }

    /// Takes over a row whose claimer died (`from`), for a retry. Exactly
    /// one of several concurrent retries succeeds.
    pub(crate) fn take_over(
        &mut self,
        id: i64,
        from: Option<&str>,
        to: &str,
    ) -> Result<bool, JournalError> {
        let changed = self
            .connection
            .execute(
                "UPDATE messages SET claimed_by = ?1, attempts = attempts + 1, state = ?2, updated_at = ?3
                 WHERE id = ?4 AND state != ?5 AND claimed_by IS ?6",
                params![to, CLAIMED, now(), id, FINISHED, from],
            )
            .map_err(self.error())?;
        Ok(changed == 1)
    }

    /// Gives a claim up (nothing ran): the row goes, so that the MTA's next
    /// delivery of the message can claim it afresh.
    pub(crate) fn abandon(&self, id: i64) -> Result<(), JournalError> {
        self.connection
            .execute(
                "DELETE FROM messages WHERE id = ?1 AND state != ?2",
                params![id, FINISHED],
            )
            .map_err(self.error())?;
        Ok(())
    }

    /// Puts a claim back after a failure to start (nothing ran): the row
    /// is claimed by nobody, not running, says `reason`, and keeps its
    /// attempts, so that a `retry` takes it over once its backoff is over
    /// (`backoff`). Returns when that is (RFC 3339).
    pub(crate) fn put_back(&self, id: i64, reason: &str) -> Result<String, JournalError> {
        let attempts: i64 = self
            .connection
            .query_row("SELECT attempts FROM messages WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .map_err(self.error())?;
        let after =
            humantime::format_rfc3339_millis(std::time::SystemTime::now() + backoff(attempts))
                .to_string();
        self.connection
            .execute(
                "UPDATE messages SET state = ?1, claimed_by = NULL, started_at = NULL, outcome = NULL,
                   reason = ?2, updated_at = ?3, retry_after = ?4
                 WHERE id = ?5 AND state != ?6",
                params![CLAIMED, reason, now(), after, id, FINISHED],
            )
            .map_err(self.error())?;
        Ok(after)
    }

    /// Runs `write` in one IMMEDIATE transaction, committed durably.
    fn immediate<T>(
        &mut self,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, JournalError> {
        let path = &self.path;
        let error = |cause| JournalError::Sqlite {
            path: path.display().to_string(),
            cause,
        };
        let behaviour = TransactionBehavior::Immediate;
        let tx = rusqlite::Transaction::new(&mut self.connection, behaviour).map_err(error)?;
        let written = write(&tx).map_err(error)?;
        tx.commit().map(|()| written).map_err(error)
    }

    /// Ends a `running` row whose handler died (`from`) as `unknown`, for
    /// `to`, with `reason`, durably: its playbook started and is never
    /// started again by itself. Exactly one of several concurrent retries
    /// succeeds.
    pub(crate) fn mark_unknown(
        &mut self,
        id: i64,
        from: Option<&str>,
        to: &str,
        reason: &str,
    ) -> Result<bool, JournalError> {
        self.immediate(|tx| {
            let changed = tx.execute(
                "UPDATE messages SET claimed_by = ?1, attempts = attempts + 1, state = ?2,
                   outcome = ?3, reason = ?4, updated_at = ?5
                 WHERE id = ?6 AND state = ?7 AND claimed_by IS ?8",
                params![
                    to,
                    FINISHED,
                    Outcome::Unknown,
                    reason,
                    now(),
                    id,
                    RUNNING,
                    from
                ],
            )?;
            if changed == 1 {
                count_outcome_of(tx, id, Outcome::Unknown)?;
            }
            Ok(changed == 1)
        })
    }

    /// Rows whose playbook may be running now (or whose handler died while
    /// it did).
    pub(crate) fn running(&self) -> Result<Vec<Row>, JournalError> {
        self.rows("WHERE state = ?1", &[&RUNNING], 10_000)
    }

    /// Takes an `unknown` row for `helpdesk retry --rerun` (by `to`): it
    /// is `running` again, its outcome no longer counted as unknown.
    /// Exactly one of several concurrent reruns succeeds.
    pub(crate) fn start_rerun(&mut self, id: i64, to: &str) -> Result<bool, JournalError> {
        self.immediate(|tx| {
            let stamp = now();
            let changed = tx.execute(
                "UPDATE messages SET claimed_by = ?1, attempts = attempts + 1, state = ?2,
                   outcome = NULL, started_at = ?3, updated_at = ?3
                 WHERE id = ?4 AND state = ?5 AND outcome = ?6",
                params![to, RUNNING, stamp, id, FINISHED, Outcome::Unknown],
            )?;
            if changed == 1 {
                tx.execute(
                    "UPDATE outcome_totals SET count = MAX(count - 1, 0)
                     WHERE outcome = ?1 AND request_type =
                       (SELECT COALESCE(request_type, '') FROM messages WHERE id = ?2)",
                    params![Outcome::Unknown, id],
                )?;
            }
            Ok(changed == 1)
        })
    }

    /// What became of the reply of a row whose outcome is already durable
    /// (relaxed, see `relaxed`).
    pub(crate) fn set_reply(&self, id: i64, reply: Option<&str>) -> Result<(), JournalError> {
        self.relaxed(|connection| {
            connection.execute(
                "UPDATE messages SET reply = ?1, updated_at = ?2 WHERE id = ?3",
                params![reply, now(), id],
            )
        })
    }

    /// Commits `write` without an fsync of its own, for what only informs
    /// (the `RUNNING` mark, where a handled message was archived): the WAL
    /// is written in order, so the next full commit makes it durable too.
    /// A power cut before that loses only this commit, and `retry` treats a
    /// `claimed` row as it does a `running` one.
    fn relaxed(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<usize>,
    ) -> Result<(), JournalError> {
        self.connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(self.error())?;
        let written = write(&self.connection);
        self.connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(self.error())?;
        written.map(drop).map_err(self.error())
    }

    /// Writes what is known so far and the row's new state: `RUNNING`
    /// (relaxed), or `FINISHED` to end it (durable).
    pub(crate) fn record(
        &self,
        id: i64,
        record: &Record,
        state: State,
    ) -> Result<(), JournalError> {
        let write = |connection: &Connection| {
            connection.execute(
                "UPDATE messages SET request_type = ?1, vars = ?2, authentication = ?3, access = ?4,
                   outcome = ?5, exit_code = ?6, duration_ms = ?7, run_log = ?8, reply = ?9,
                   state = ?10, updated_at = ?11, reason = ?13
                 WHERE id = ?12",
                params![
                    record.request_type,
                    record.vars,
                    record.authentication,
                    record.access,
                    record.outcome,
                    record.exit_code,
                    record.duration_ms.map(|d| i64::try_from(d).unwrap_or(i64::MAX)),
                    record.run_log,
                    record.reply,
                    state,
                    now(),
                    id,
                    record.reason
                ],
            )
        };
        if state == RUNNING {
            return self.relaxed(write);
        }
        // Finished: the row and the totals in one commit.
        let tx = self
            .connection
            .unchecked_transaction()
            .map_err(self.error())?;
        write(&tx).map_err(self.error())?;
        if let Some(outcome) = record.outcome {
            count_outcome(
                &tx,
                record.request_type.as_deref(),
                outcome,
                record.duration_ms,
            )
            .map_err(self.error())?;
        }
        tx.commit().map_err(self.error())
    }

    /// Whether `sender` has already started `limit` runs in the past hour
    /// (not counting row `id`): a look without a lock, so that a request
    /// `start_run` will refuse does not wait for a playbook slot first.
    /// `start_run` stays the judge.
    pub(crate) fn over_run_limit(
        &self,
        id: i64,
        sender: &str,
        limit: u32,
    ) -> Result<bool, JournalError> {
        let since = window_start();
        let runs: i64 = self
            .connection
            .query_row(
                "SELECT COUNT(*) FROM messages
                 WHERE sender = ?1 COLLATE NOCASE AND started_at >= ?2 AND id != ?3",
                params![sender, since, id],
                |r| r.get(0),
            )
            .map_err(self.error())?;
        Ok(runs >= i64::from(limit))
    }

    /// Starts row `id`'s playbook run for `sender` (authenticated), unless
    /// the sender already started `limit` runs in the past hour, counted
    /// from the journal's `started_at` (so across processes; rows of every
    /// state count, a run whose handler died included). The count and the
    /// mark are one IMMEDIATE transaction, so of any number of concurrent
    /// deliveries at most `limit` start. `Run` writes `record` and the
    /// `RUNNING` state, as `record` does; `Limited` sets the row's outcome
    /// to `limited` right away, so that a concurrent refusal sees it and
    /// only one of them gets the reply. Committed relaxed, like the
    /// `RUNNING` mark (see `relaxed`).
    pub(crate) fn start_run(
        &mut self,
        id: i64,
        record: &Record,
        sender: &str,
        limit: u32,
    ) -> Result<Start, JournalError> {
        let error = |cause| JournalError::Sqlite {
            path: self.path.display().to_string(),
            cause,
        };
        self.connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(error)?;
        let started = (|| {
            let tx = self
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            // The clock is read once the write lock is held: a stamp taken
            // before waiting for it could be older than the runs committed
            // meanwhile, and the "already told" check below compares stamps.
            let stamp = now();
            let since = window_start();
            let (runs, latest): (i64, Option<String>) = tx.query_row(
                "SELECT COUNT(*), MAX(started_at) FROM messages
                 WHERE sender = ?1 COLLATE NOCASE AND started_at >= ?2 AND id != ?3",
                params![sender, since, id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let start = if runs < i64::from(limit) {
                tx.execute(
                    "UPDATE messages SET request_type = ?1, vars = ?2, authentication = ?3,
                       access = ?4, outcome = NULL, state = ?5, started_at = ?6, updated_at = ?6
                     WHERE id = ?7",
                    params![
                        record.request_type,
                        record.vars,
                        record.authentication,
                        record.access,
                        RUNNING,
                        stamp,
                        id
                    ],
                )?;
                Start::Run
            } else {
                let since = latest.clone().unwrap_or(since);
                // Never before the latest run (a clock stepped back), so
                // that the next refusal sees this one.
                let stamp = latest.filter(|l| *l > stamp).unwrap_or(stamp);
                Start::Limited {
                    limit,
                    reply: refuse(&tx, id, sender, &since, &stamp)?,
                }
            };
            tx.commit()?;
            Ok(start)
        })();
        self.connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(error)?;
        started.map_err(error)
    }

    /// Where a handled message went (relaxed: `retry` only looks for
    /// messages still in the spool).
    pub(crate) fn set_spool_path(&self, id: i64, path: Option<&Path>) -> Result<(), JournalError> {
        self.relaxed(|connection| {
            connection.execute(
                "UPDATE messages SET spool_path = ?1, updated_at = ?2 WHERE id = ?3",
                params![path.map(|p| p.display().to_string()), now(), id],
            )
        })
    }

    /// The row that holds `spool_path`, if any.
    pub(crate) fn by_spool_path(&self, path: &Path) -> Result<Option<Row>, JournalError> {
        self.rows(
            "WHERE spool_path = ?1 AND duplicate_of IS NULL",
            &[&path.display().to_string()],
            1,
        )
        .map(|mut rows| rows.pop())
    }

    pub(crate) fn get(&self, id: i64) -> Result<Option<Row>, JournalError> {
        self.rows("WHERE id = ?1", &[&id], 1)
            .map(|mut rows| rows.pop())
    }

    /// Newest first.
    pub(crate) fn list(&self, filter: &Filter) -> Result<Vec<Row>, JournalError> {
        let mut clauses = Vec::new();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::new();
        let wanted: [(&str, Option<&dyn rusqlite::ToSql>); 4] = [
            ("sender = ?", filter.sender.as_ref().map(|v| v as _)),
            (
                "request_type = ?",
                filter.request_type.as_ref().map(|v| v as _),
            ),
            ("outcome = ?", filter.outcome.as_ref().map(|v| v as _)),
            ("received_at >= ?", filter.since.as_ref().map(|v| v as _)),
        ];
        for (clause, value) in wanted {
            if let Some(value) = value {
                clauses.push(clause.replace('?', &format!("?{}", values.len() + 1)));
                values.push(value);
            }
        }
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        self.rows(&filter_sql, &values, filter.limit.max(1))
    }

    fn rows(
        &self,
        filter_sql: &str,
        values: &[&dyn rusqlite::ToSql],
        limit: usize,
    ) -> Result<Vec<Row>, JournalError> {
        let sql = format!(
            "SELECT id, key, message_id, received_at, sender, subject, state, attempts, duplicate_of, spool_path, claimed_by,
                    request_type, vars, authentication, access, outcome, exit_code, duration_ms, run_log, reply,
                    started_at, reason, retry_after, intake
             FROM messages {filter_sql} ORDER BY id DESC LIMIT {limit}"
        );
        let mut statement = self.connection.prepare(&sql).map_err(self.error())?;
        let rows = statement
            .query_map(values, |r| {
                Ok(Row {
                    id: r.get(0)?,
                    key: r.get(1)?,
                    message_id: r.get(2)?,
                    received_at: r.get(3)?,
                    sender: r.get(4)?,
                    subject: r.get(5)?,
                    state: r.get(6)?,
                    attempts: r.get(7)?,
                    duplicate_of: r.get(8)?,
                    spool_path: r.get(9)?,
                    claimed_by: r.get(10)?,
                    started_at: r.get(20)?,
                    retry_after: r.get(22)?,
                    intake: r.get(23)?,
                    record: Record {
                        request_type: r.get(11)?,
                        vars: r.get(12)?,
                        authentication: r.get(13)?,
                        access: r.get(14)?,
                        outcome: r.get(15)?,
                        exit_code: r.get(16)?,
                        duration_ms: r
                            .get::<_, Option<i64>>(17)?
                            .and_then(|d| u64::try_from(d).ok()),
                        run_log: r.get(18)?,
                        reply: r.get(19)?,
                        reason: r.get(21)?,
                    },
                    approvals: Vec::new(),
                })
            })
            .map_err(self.error())?;
        let mut rows = rows.collect::<Result<Vec<_>, _>>().map_err(self.error())?;
        for row in &mut rows {
            row.approvals = self.approvals_of(row.id)?;
        }
        Ok(rows)
    }

    /// The metrics file's counters: messages by request type and outcome,
    /// and playbook runs by duration.
    pub(crate) fn totals(&self) -> Result<Totals, JournalError> {
        let mut counts = self
            .connection
            .prepare(
                "SELECT request_type, outcome, count FROM outcome_totals
                 ORDER BY request_type, outcome",
            )
            .map_err(self.error())?;
        let counts = counts
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, non_negative(r, 2)?)))
            .map_err(self.error())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error())?;
        let mut buckets = vec![0; DURATION_BUCKETS_MS.len() + 1];
        let mut sum_ms = 0u64;
        let mut rows = self
            .connection
            .prepare("SELECT le_ms, count, sum_ms FROM duration_totals")
            .map_err(self.error())?;
        let rows = rows
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    non_negative(r, 1)?,
                    non_negative(r, 2)?,
                ))
            })
            .map_err(self.error())?;
        for row in rows {
            let (le_ms, count, sum) = row.map_err(self.error())?;
            let at = DURATION_BUCKETS_MS
                .iter()
                .position(|bound| i64::try_from(*bound).is_ok_and(|b| b == le_ms))
                .unwrap_or(DURATION_BUCKETS_MS.len());
            if let Some(slot) = buckets.get_mut(at) {
                *slot += count;
            }
            sum_ms = sum_ms.saturating_add(sum);
        }
        Ok(Totals {
            counts,
            buckets,
            sum_ms,
        })
    }

    /// Whether a row with this id exists and is still open.
    #[cfg(test)]
    fn is_open(&self, id: i64) -> Result<bool, JournalError> {
        use rusqlite::OptionalExtension as _;
        let state: Option<State> = self
            .connection
            .query_row(
                "SELECT state FROM messages WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.error())?;
        Ok(state.is_some_and(|s| s != FINISHED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_key_then_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        let arrival = Arrival {
            key: "<a@example.com>",
            message_id: Some("a@example.com"),
            sender: Some("alice@example.com"),
            subject: "quota",
            spool_path: Path::new("/spool/1.eml"),
            claimed_by: "1:1",
            intake: None,
        };
        let Claim::Claimed(id) = journal.claim(&arrival).unwrap() else {
            panic!("not claimed")
        };
        assert_eq!(
            journal.claim(&arrival).unwrap(),
            Claim::Duplicate {
                original: id,
                row: id + 1
            }
        );
        assert!(journal.is_open(id).unwrap());
        assert!(journal.take_over(id, Some("1:1"), "2:2").unwrap());
        assert!(
            !journal.take_over(id, Some("1:1"), "3:3").unwrap(),
            "only one retry may take over"
        );
        let record = Record {
            outcome: Some(Outcome::Done),
            request_type: Some("storage".into()),
            duration_ms: Some(1500),
            ..Record::default()
        };
        journal.record(id, &record, FINISHED).unwrap();
        assert!(!journal.is_open(id).unwrap());
        let rows = journal
            .list(&Filter {
                outcome: Some(Outcome::Duplicate),
                limit: 10,
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].duplicate_of, Some(id));
        let totals = journal.totals().unwrap();
        assert_eq!(
            totals.counts,
            vec![
                ("".into(), Outcome::Duplicate, 1),
                ("storage".into(), Outcome::Done, 1)
            ]
        );
        assert_eq!(totals.buckets, vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(totals.sum_ms, 1500);
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn journal_files(dir: &Path) -> Vec<PathBuf> {
        ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"]
            .iter()
            .map(|name| dir.join(name))
            .collect()
    }

    /// A new journal and the WAL and SHM files SQLite makes beside it are
    /// 0600 (SQLite alone would make them 0644); one an earlier version
    /// left 0644 is tightened, companions included.
    #[test]
    fn journal_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        let arrival = Arrival {
            key: "k",
            message_id: None,
            sender: None,
            subject: "quota",
            spool_path: Path::new("/spool/1.eml"),
            claimed_by: "1:1",
            intake: None,
        };
        journal.claim(&arrival).unwrap();
        for file in journal_files(dir.path()) {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        drop(journal);

        let old = tempfile::tempdir().unwrap();
        let connection = Connection::open(old.path().join("journal.sqlite")).unwrap();
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .unwrap();
        connection
            .file_control(
                Some(rusqlite::MAIN_DB),
                rusqlite::FileControl::PersistWal(&mut 1),
            )
            .unwrap();
        connection.execute_batch("CREATE TABLE t (x)").unwrap();
        drop(connection);
        use std::os::unix::fs::PermissionsExt;
        for file in journal_files(old.path()) {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        drop(Journal::open(old.path(), Duration::from_secs(5)).unwrap());
        for file in journal_files(old.path()) {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }

    /// A journal written before the totals tables (user_version 0) gets
    /// them filled from its rows, once; new rows then add to them.
    #[test]
    fn totals_are_backfilled_from_an_older_journal() {
        let dir = tempfile::tempdir().unwrap();
        let old = Connection::open(dir.path().join("journal.sqlite")).unwrap();
        let messages = SCHEMA
            .split("CREATE TABLE IF NOT EXISTS outcome_totals")
            .next()
            .unwrap();
        old.execute_batch(messages).unwrap();
        for (n, (request_type, outcome, ms)) in [
            (Some("storage"), "done", Some(700)),
            (Some("storage"), "done", Some(7_200_000)),
            (Some("storage"), "failed", Some(20_000)),
            (None, "duplicate", None),
        ]
        .into_iter()
        .enumerate()
        {
            old.execute(
                "INSERT INTO messages (key, received_at, request_type, state, outcome, duration_ms, updated_at)
                 VALUES (?1, 'now', ?2, 'finished', ?3, ?4, 'now')",
                params![format!("k{n}"), request_type, outcome, ms],
            )
            .unwrap();
        }
        drop(old);
        let journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        let before = journal.totals().unwrap();
        assert_eq!(
            before.counts,
            vec![
                ("".into(), Outcome::Duplicate, 1),
                ("storage".into(), Outcome::Done, 2),
                ("storage".into(), Outcome::Failed, 1)
            ]
        );
        assert_eq!(before.buckets, vec![1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
        assert_eq!(before.sum_ms, 700 + 7_200_000 + 20_000);

        // Opened again: not filled twice.
        drop(journal);
        let mut journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        assert_eq!(journal.totals().unwrap().counts, before.counts);
        let arrival = Arrival {
            key: "new",
            message_id: None,
            sender: None,
            subject: "quota",
            spool_path: Path::new("/spool/2.eml"),
            claimed_by: "1:1",
            intake: None,
        };
        let Claim::Claimed(id) = journal.claim(&arrival).unwrap() else {
            panic!("not claimed")
        };
        let running = Record {
            request_type: Some("storage".into()),
            ..Record::default()
        };
        journal.record(id, &running, RUNNING).unwrap();
        assert_eq!(
            journal.totals().unwrap().counts,
            before.counts,
            "running is not counted"
        );
        let done = Record {
            outcome: Some(Outcome::Done),
            duration_ms: Some(3_000),
            ..running
        };
        journal.record(id, &done, FINISHED).unwrap();
        let after = journal.totals().unwrap();
        assert_eq!(after.counts[1], ("storage".into(), Outcome::Done, 3));
        assert_eq!(after.buckets, vec![1, 1, 0, 1, 0, 0, 0, 0, 0, 1]);
    }

    fn arrive(journal: &mut Journal, n: usize, sender: &str) -> i64 {
        let key = format!("k{n}");
        let path = PathBuf::from(format!("/spool/{n}.eml"));
        let arrival = Arrival {
            key: &key,
            message_id: None,
            sender: Some(sender),
            subject: "quota",
            spool_path: &path,
            claimed_by: "1:1",
            intake: None,
        };
        match journal.claim(&arrival).unwrap() {
            Claim::Claimed(id) => id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failure_to_start_backs_off_doubling_up_to_an_hour() {
        let minutes = |attempts| backoff(attempts).as_secs() / 60;
        assert_eq!(
            [0, 1, 2, 3, 6, 7, 8, i64::MAX].map(minutes),
            [1, 1, 2, 4, 32, 60, 60, 60]
        );
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        let id = arrive(&mut journal, 1, "alice@example.com");
        let after = journal.put_back(id, "not started: no playbook").unwrap();
        let row = journal.get(id).unwrap().unwrap();
        assert_eq!(row.backing_off(), Some(after.as_str()));
        assert!(after > row.received_at);
        // Taken over (by `retry --now`): it is somebody's again, not
        // backing off.
        assert!(journal.take_over(id, None, "2:2").unwrap());
        assert_eq!(journal.get(id).unwrap().unwrap().backing_off(), None);
    }

    /// Claims message `n` from `sender` and asks to start its run, at most
    /// two an hour, as `sender_case` writes the address.
    fn start(journal: &mut Journal, n: usize, sender: &str, sender_case: &str) -> (i64, Start) {
        let id = arrive(journal, n, sender);
        let record = Record {
            request_type: Some("storage".into()),
            ..Record::default()
        };
        (id, journal.start_run(id, &record, sender_case, 2).unwrap())
    }

    const LIMITED_TOLD: Start = Start::Limited {
        limit: 2,
        reply: true,
    };
    const LIMITED_SILENT: Start = Start::Limited {
        limit: 2,
        reply: false,
    };

    /// Over the cap a request is refused; only the first refusal since
    /// the sender's latest run is told; help and refusals are no runs;
    /// another sender has a count of its own; a run an hour old no longer
    /// counts, and the next refusal after a new run is told again.
    #[test]
    fn runs_per_sender_are_capped_and_told_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        let mut starts = Vec::new();
        for n in 0..5 {
            let sender = ["alice@example.com", "ALICE@Example.com"][n % 2];
            let (id, started) = start(&mut journal, n, sender, "Alice@example.com");
            let outcome = match started {
                Start::Run => Outcome::Done,
                Start::Limited { .. } => Outcome::Limited,
            };
            let done = Record {
                request_type: Some("storage".into()),
                outcome: Some(outcome),
                ..Record::default()
            };
            journal.record(id, &done, FINISHED).unwrap();
            starts.push(started);
        }
        assert_eq!(
            starts,
            [
                Start::Run,
                Start::Run,
                LIMITED_TOLD,
                LIMITED_SILENT,
                LIMITED_SILENT
            ]
        );
        // A row that never asked to start (help, a refusal) is no run.
        let help = arrive(&mut journal, 5, "bob@example.com");
        let answered = Record {
            outcome: Some(Outcome::Done),
            ..Record::default()
        };
        journal.record(help, &answered, FINISHED).unwrap();
        let bob = "bob@example.com";
        for n in 6..8 {
            assert_eq!(start(&mut journal, n, bob, bob).1, Start::Run);
        }
        assert_eq!(start(&mut journal, 8, bob, bob).1, LIMITED_TOLD);
        a_new_stretch_is_told_again(&mut journal);
    }

    /// The end of `runs_per_sender_are_capped_and_told_once`, after
    /// Alice's first run has become more than an hour old.
    fn a_new_stretch_is_told_again(journal: &mut Journal) {
        let old = humantime::format_rfc3339_millis(
            std::time::SystemTime::now() - RUN_WINDOW - Duration::from_secs(60),
        )
        .to_string();
        journal
            .connection
            .execute(
                "UPDATE messages SET started_at = ?1 WHERE key = 'k0'",
                params![old],
            )
            .unwrap();
        let alice = "alice@example.com";
        let (id, started) = start(journal, 9, alice, alice);
        assert_eq!(started, Start::Run);
        let row = journal.get(id).unwrap().unwrap();
        assert_eq!(row.state, RUNNING);
        assert!(row.started_at.is_some());
        assert_eq!(row.record.request_type.as_deref(), Some("storage"));
        let (id, started) = start(journal, 10, alice, alice);
        assert_eq!(
            started, LIMITED_TOLD,
            "a new stretch over the limit is told again"
        );
        let row = journal.get(id).unwrap().unwrap();
        assert_eq!(row.record.outcome, Some(Outcome::Limited));
        assert_eq!(row.started_at, None);
        assert_eq!(row.state, CLAIMED);
    }

    /// Issue 14: many first opens of a new journal at once all wait for
    /// each other (the switch to WAL and the schema), none fails busy.
    #[test]
    fn first_opens_of_a_new_journal_at_once_all_succeed() {
        for _ in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let barrier = std::sync::Barrier::new(16);
            let opened: Vec<Result<(), String>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..16)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            Journal::open(dir.path(), Duration::from_secs(30))
                                .map(drop)
                                .map_err(|e| e.to_string())
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let failed: Vec<_> = opened.iter().filter_map(|r| r.as_ref().err()).collect();
            assert!(failed.is_empty(), "{failed:?}");
        }
    }

    /// Deliveries in processes of their own, at once: at most `limit` start.
    #[test]
    fn concurrent_starts_never_pass_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        let ids: Vec<i64> = (0..12)
            .map(|n| arrive(&mut journal, n, "carol@example.com"))
            .collect();
        let starts: Vec<Start> = std::thread::scope(|scope| {
            let handles: Vec<_> = ids
                .iter()
                .map(|&id| {
                    let path = dir.path();
                    scope.spawn(move || {
                        let mut journal = Journal::open(path, Duration::from_secs(30)).unwrap();
                        journal
                            .start_run(id, &Record::default(), "carol@example.com", 5)
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(starts.iter().filter(|s| **s == Start::Run).count(), 5);
        let told = starts
            .iter()
            .filter(|s| matches!(s, Start::Limited { reply: true, .. }))
            .count();
        assert_eq!(told, 1, "{starts:?}");
    }

    /// A journal as an older version made it: `SCHEMA` with `from` (a
    /// column it did not have yet) replaced by `to`, its rows still empty.
    fn older_journal(from: &str, to: &str) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let old = Connection::open(dir.path().join("journal.sqlite")).unwrap();
        let schema = SCHEMA.replace(from, to);
        assert_ne!(schema, SCHEMA);
        old.execute_batch(&schema).unwrap();
        (dir, old)
    }

    /// A word no vocabulary knows, in a row, is an error naming it, never
    /// a panic.
    #[test]
    fn an_unknown_outcome_in_a_row_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        let id = arrive(&mut journal, 1, "frank@example.com");
        journal
            .connection
            .execute(
                "UPDATE messages SET outcome = 'sent' WHERE id = ?1",
                params![id],
            )
            .unwrap();
        let error = journal.get(id).unwrap_err().to_string();
        assert!(error.contains(r#"unknown outcome "sent""#), "{error}");
    }

    /// Issue 17: a version-6 journal gets `intake` and the `sources`
    /// table; its rows are kept and a fetched message is found by name.
    #[test]
    fn a_version_6_journal_gets_intake_and_the_sources_table() {
        let schema_6 = SCHEMA
            .split_once("CREATE TABLE IF NOT EXISTS sources")
            .map(|(before, _)| before.replace(",\n    intake         TEXT\n", "\n"))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let old = Connection::open(dir.path().join("journal.sqlite")).unwrap();
        old.execute_batch(&schema_6).unwrap();
        old.execute_batch(&RUN_INDEXES.replace(
            "CREATE INDEX IF NOT EXISTS by_intake ON messages(intake) WHERE intake IS NOT NULL;\n",
            "",
        ))
        .unwrap();
        old.execute(
            "INSERT INTO messages (key, received_at, state, updated_at) VALUES ('k', 'now', 'finished', 'now')",
            [],
        )
        .unwrap();
        old.pragma_update(None, "user_version", 6).unwrap();
        drop(old);
        let mut journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        assert_eq!(
            journal
                .list(&Filter {
                    limit: 10,
                    ..Filter::default()
                })
                .unwrap()
                .len(),
            1
        );
        let arrival = Arrival {
            key: "k2",
            message_id: None,
            sender: None,
            subject: "",
            spool_path: Path::new("/s"),
            claimed_by: "1:1",
            intake: Some("inbox/7/42"),
        };
        let Claim::Claimed(id) = journal.claim(&arrival).unwrap() else {
            panic!("not claimed")
        };
        assert_eq!(journal.by_intake("inbox/7/42").unwrap().unwrap().id, id);
        assert!(journal.by_intake("inbox/8/42").unwrap().is_none());
        journal.source_reached("inbox", 1).unwrap();
        assert_eq!(journal.sources().unwrap().len(), 1);
    }

    /// Issue 16: a version-5 journal gets the approval tables; its rows
    /// are kept, and a request can wait, be voted on and run once.
    #[test]
    fn a_version_5_journal_gets_the_approval_tables() {
        let (dir, old) = older_journal(
            SCHEMA
                .split_once("CREATE TABLE IF NOT EXISTS pending")
                .map(|(_, rest)| rest)
                .map(|rest| format!("CREATE TABLE IF NOT EXISTS pending{rest}"))
                .unwrap()
                .as_str(),
            "",
        );
        old.execute_batch(RUN_INDEXES).unwrap();
        old.pragma_update(None, "user_version", 5).unwrap();
        drop(old);
        let mut journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        let id = arrive(&mut journal, 1, "alice@example.com");
        let vars = r#"{"amount":5}"#;
        let pending = Pending {
            rule: 1,
            vars,
            approvers: &["bob@example.com".into()],
            required: 1,
            expires_at: "9999-01-01T00:00:00.000Z",
            tokens: &[("t0k3n".into(), "bob@example.com".into())],
        };
        journal.pend(id, &Record::default(), &pending).unwrap();
        assert_eq!(journal.token_row("t0k3n").unwrap(), Some(id));
        assert_eq!(journal.get(id).unwrap().unwrap().state, PENDING);
        let vote = |approver| Vote {
            approver,
            verdict: Verdict::Approve,
            authentication: "authenticated: dmarc=pass",
            reason: None,
            answer_row: None,
            claimer: "1:1",
        };
        let Voted::Run(frozen) = journal.vote(id, &vote("bob@example.com")).unwrap() else {
            panic!("not run")
        };
        assert_eq!(serde_json::Value::Object(frozen).to_string(), vars);
        assert_eq!(journal.get(id).unwrap().unwrap().state, RUNNING);
        assert_eq!(
            journal.vote(id, &vote("carol@example.com")).unwrap(),
            Voted::NotWaiting(None)
        );
        assert_eq!(journal.approvals_of(id).unwrap().len(), 1);
        let version: i64 = journal
            .connection
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    /// A version-3 journal (no `reason`) gets the column; a quarantined
    /// row keeps its reason and counts in the totals.
    #[test]
    fn a_version_3_journal_gets_the_quarantine_reason() {
        let (dir, old) = older_journal("    reason         TEXT,\n", "");
        old.execute_batch(RUN_INDEXES).unwrap();
        old.pragma_update(None, "user_version", 3).unwrap();
        drop(old);
        let mut journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        let id = arrive(&mut journal, 1, "erin@example.com");
        let record = Record {
            outcome: Some(Outcome::Quarantined),
            reason: Some("the decision used more than 5 s of CPU".into()),
            ..Record::default()
        };
        journal.record(id, &record, FINISHED).unwrap();
        let row = journal.get(id).unwrap().unwrap();
        assert_eq!(row.record.reason, record.reason);
        assert_eq!(row.state, FINISHED);
        assert_eq!(
            journal.totals().unwrap().counts,
            vec![("".into(), Outcome::Quarantined, 1)]
        );
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["reason"], "the decision used more than 5 s of CPU");
    }

    /// A version-2 journal (no `started_at`) gets the column and the
    /// indexes; its totals are not counted again; its rows are no runs.
    #[test]
    fn a_version_2_journal_is_upgraded_without_counting_twice() {
        let (dir, old) = older_journal(
            ",\n    started_at     TEXT,\n    retry_after    TEXT,\n    intake         TEXT\n",
            "\n",
        );
        old.execute(
            "INSERT INTO messages (key, message_id, received_at, sender, request_type, state, outcome, updated_at)
             VALUES ('message-id:a@example.com', 'a@example.com', 'now', 'dave@example.com', 'storage', 'finished', 'done', 'now')",
            [],
        )
        .unwrap();
        old.execute(
            "INSERT INTO outcome_totals (request_type, outcome, count) VALUES ('storage', 'done', 1)",
            [],
        )
        .unwrap();
        old.pragma_update(None, "user_version", 2).unwrap();
        drop(old);
        let mut journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        assert_eq!(
            journal.totals().unwrap().counts,
            vec![("storage".into(), Outcome::Done, 1)]
        );
        let id = arrive(&mut journal, 1, "dave@example.com");
        assert_eq!(
            journal
                .start_run(id, &Record::default(), "dave@example.com", 1)
                .unwrap(),
            Start::Run
        );
        let indexes: i64 = journal
            .connection
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN ('runs_by_sender', 'limited_by_sender')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 2);
        drop(journal);
        let journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        assert_eq!(
            journal.get(1).unwrap().unwrap().key,
            "message-id:a@example.com"
        );
    }
}
