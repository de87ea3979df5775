//! The journal: one SQLite row per message delivery, saying what came in and
//! what became of it. It is also the exactly-once claim: a message's key
//! (its Message-ID, or the SHA-256 of its bytes when it has none) may be
//! claimed by one delivery only; later deliveries of it are recorded as
//! `duplicate` rows and run nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

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
    updated_at     TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS claim ON messages(key) WHERE duplicate_of IS NULL;
CREATE INDEX IF NOT EXISTS by_time ON messages(received_at);
";

/// Where a row is in its life.
pub const CLAIMED: &str = "claimed";
pub const RUNNING: &str = "running";
pub const FINISHED: &str = "finished";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: journal: {cause}")]
    Sqlite {
        path: String,
        cause: rusqlite::Error,
    },
}

#[derive(Debug)]
pub struct Journal {
    connection: Connection,
    path: PathBuf,
}

/// The result of trying to claim a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This delivery owns the message: row id.
    Claimed(i64),
    /// Another delivery claimed it first (its row id); ours is recorded as
    /// a duplicate row.
    Duplicate { original: i64, row: i64 },
}

/// What a claim records up front.
#[derive(Debug, Clone)]
pub struct Arrival<'a> {
    pub key: &'a str,
    pub message_id: Option<&'a str>,
    pub sender: Option<&'a str>,
    pub subject: &'a str,
    pub spool_path: &'a Path,
    pub claimed_by: &'a str,
}

/// What happened, filled in as the message goes through the pipeline.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Record {
    pub request_type: Option<String>,
    /// Redacted.
    pub vars: Option<String>,
    pub authentication: Option<String>,
    pub access: Option<String>,
    pub outcome: Option<String>,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<u64>,
    pub run_log: Option<String>,
    pub reply: Option<String>,
}

/// One row, for `log` and `show`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: i64,
    pub key: String,
    pub message_id: Option<String>,
    pub received_at: String,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub duplicate_of: Option<i64>,
    pub spool_path: Option<String>,
    pub claimed_by: Option<String>,
    #[serde(flatten)]
    pub record: Record,
}

/// What the metrics are made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// (request type, outcome, count)
    pub counts: Vec<(String, String, u64)>,
    /// Milliseconds of every playbook run.
    pub durations: Vec<u64>,
}

/// Filters for `helpdesk log`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub sender: Option<String>,
    pub request_type: Option<String>,
    pub outcome: Option<String>,
    /// RFC 3339 time; rows received at or after it.
    pub since: Option<String>,
    pub limit: usize,
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl Journal {
    /// Opens (creating) `state_dir/journal.sqlite`, in WAL mode, waiting up
    /// to `busy` for a lock held by another delivery.
    pub fn open(state_dir: &Path, busy: Duration) -> Result<Self, JournalError> {
        let path = state_dir.join("journal.sqlite");
        let error = |cause| JournalError::Sqlite {
            path: path.display().to_string(),
            cause,
        };
        let connection = Connection::open(&path).map_err(error)?;
        connection.busy_timeout(busy).map_err(error)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(error)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(error)?;
        connection.execute_batch(SCHEMA).map_err(error)?;
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
    pub fn claim(&mut self, arrival: &Arrival<'_>) -> Result<Claim, JournalError> {
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
            "INSERT INTO messages (key, message_id, received_at, sender, subject, state, spool_path, claimed_by, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?3)",
            params![arrival.key, arrival.message_id, stamp, arrival.sender, arrival.subject, CLAIMED, spool, arrival.claimed_by],
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
                    "INSERT INTO messages (key, message_id, received_at, sender, subject, state, outcome, duplicate_of, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'duplicate', ?7, ?3)",
                    params![arrival.key, arrival.message_id, stamp, arrival.sender, arrival.subject, FINISHED, original],
                )
                .map_err(error)?;
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
    pub fn take_over(
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
    pub fn abandon(&self, id: i64) -> Result<(), JournalError> {
        self.connection
            .execute(
                "DELETE FROM messages WHERE id = ?1 AND state != ?2",
                params![id, FINISHED],
            )
            .map_err(self.error())?;
        Ok(())
    }

    pub fn set_state(&self, id: i64, state: &str) -> Result<(), JournalError> {
        self.connection
            .execute(
                "UPDATE messages SET state = ?1, updated_at = ?2 WHERE id = ?3",
                params![state, now(), id],
            )
            .map_err(self.error())?;
        Ok(())
    }

    /// Writes what is known so far (and, with `finished`, ends the row).
    pub fn record(&self, id: i64, record: &Record, finished: bool) -> Result<(), JournalError> {
        self.connection
            .execute(
                "UPDATE messages SET request_type = ?1, vars = ?2, authentication = ?3, access = ?4,
                   outcome = ?5, exit_code = ?6, duration_ms = ?7, run_log = ?8, reply = ?9,
                   state = CASE WHEN ?10 THEN 'finished' ELSE state END, updated_at = ?11
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
                    finished,
                    now(),
                    id
                ],
            )
            .map_err(self.error())?;
        Ok(())
    }

    pub fn set_spool_path(&self, id: i64, path: Option<&Path>) -> Result<(), JournalError> {
        self.connection
            .execute(
                "UPDATE messages SET spool_path = ?1, updated_at = ?2 WHERE id = ?3",
                params![path.map(|p| p.display().to_string()), now(), id],
            )
            .map_err(self.error())?;
        Ok(())
    }

    /// The row that holds `spool_path`, if any.
    pub fn by_spool_path(&self, path: &Path) -> Result<Option<Row>, JournalError> {
        self.rows(
            "WHERE spool_path = ?1 AND duplicate_of IS NULL",
            &[&path.display().to_string()],
            1,
        )
        .map(|mut rows| rows.pop())
    }

    pub fn get(&self, id: i64) -> Result<Option<Row>, JournalError> {
        self.rows("WHERE id = ?1", &[&id], 1)
            .map(|mut rows| rows.pop())
    }

    /// Newest first.
    pub fn list(&self, filter: &Filter) -> Result<Vec<Row>, JournalError> {
        let mut clauses = Vec::new();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::new();
        let wanted = [
            ("sender = ?", filter.sender.as_ref()),
            ("request_type = ?", filter.request_type.as_ref()),
            ("outcome = ?", filter.outcome.as_ref()),
            ("received_at >= ?", filter.since.as_ref()),
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
                    request_type, vars, authentication, access, outcome, exit_code, duration_ms, run_log, reply
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
                    },
                })
            })
            .map_err(self.error())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.error())
    }

    /// Counts by request type and outcome, and every run's duration, for
    /// the metrics file.
    pub fn totals(&self) -> Result<Totals, JournalError> {
        let mut counts = self
            .connection
            .prepare(
                "SELECT COALESCE(request_type, ''), outcome, COUNT(*) FROM messages
                 WHERE outcome IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .map_err(self.error())?;
        let counts = counts
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, i64>(2)?.max(0).unsigned_abs(),
                ))
            })
            .map_err(self.error())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error())?;
        let mut durations = self
            .connection
            .prepare("SELECT duration_ms FROM messages WHERE duration_ms IS NOT NULL")
            .map_err(self.error())?;
        let durations = durations
            .query_map([], |r| Ok(r.get::<_, i64>(0)?.max(0).unsigned_abs()))
            .map_err(self.error())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error())?;
        Ok(Totals { counts, durations })
    }

    /// Whether a row with this id exists and is still open.
    pub fn is_open(&self, id: i64) -> Result<bool, JournalError> {
        let state: Option<String> = self
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
            outcome: Some("done".into()),
            request_type: Some("storage".into()),
            duration_ms: Some(1500),
            ..Record::default()
        };
        journal.record(id, &record, true).unwrap();
        assert!(!journal.is_open(id).unwrap());
        let rows = journal
            .list(&Filter {
                outcome: Some("duplicate".into()),
                limit: 10,
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].duplicate_of, Some(id));
        let Totals { counts, durations } = journal.totals().unwrap();
        assert_eq!(
            counts,
            vec![
                ("".into(), "duplicate".into(), 1),
                ("storage".into(), "done".into(), 1)
            ]
        );
        assert_eq!(durations, vec![1500]);
    }
}
