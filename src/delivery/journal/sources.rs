//! The journal's side of `sources:`: what became of a message `fetch`
//! took from a mailbox (`messages.intake`), and each source's health (the
//! `sources` table), which `log`, `check` and the metrics show. A source
//! that cannot be reached is a row of its own, never a message's outcome:
//! "the mailbox is down" and "a message failed" stay apart.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Journal, JournalError, Row, now};

/// Why a source could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Problem {
    /// No connection, TLS failed, or the connection broke.
    Unreachable,
    /// The server refused the login.
    Login,
    /// The mailbox (or the Maildir) cannot be opened or changed.
    Mailbox,
}

impl Problem {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::Login => "login",
            Self::Mailbox => "mailbox",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        [Self::Unreachable, Self::Login, Self::Mailbox]
            .into_iter()
            .find(|p| p.as_str() == word)
    }
}

/// One source's health, as last recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Health {
    pub name: String,
    pub reachable: bool,
    /// Since when it has been reachable, or not.
    pub since: String,
    /// The last attempt.
    pub checked_at: String,
    pub problem: Option<Problem>,
    /// The last error (the server's words), while it is not reachable.
    pub error: Option<String>,
    /// Failed attempts in a row.
    pub failures: i64,
    /// Messages taken from it, ever.
    pub fetched: i64,
    /// Whether its being down was logged as an error already.
    #[serde(skip)]
    pub alerted: bool,
}

impl Journal {
    /// The newest row of the message `fetch` took as `intake`.
    pub(crate) fn by_intake(&self, intake: &str) -> Result<Option<Row>, JournalError> {
        self.rows("WHERE intake = ?1", &[&intake], 1)
            .map(|mut rows| rows.pop())
    }

    /// Records that `name` was read, with `fetched` more messages. Returns
    /// its health before, when it was not reachable then (to say it is
    /// back).
    pub(crate) fn source_reached(
        &self,
        name: &str,
        fetched: u64,
    ) -> Result<Option<Health>, JournalError> {
        let before = self.source(name)?;
        let stamp = now();
        let fetched = i64::try_from(fetched).unwrap_or(i64::MAX);
        let since = match &before {
            Some(health) if health.reachable => health.since.clone(),
            _ => stamp.clone(),
        };
        self.connection
            .execute(
                "INSERT INTO sources (name, reachable, since, checked_at, fetched)
                 VALUES (?1, 1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET reachable = 1, since = ?2, checked_at = ?3,
                     problem = NULL, error = NULL, failures = 0, alerted = 0,
                     fetched = fetched + ?4",
                params![name, since, stamp, fetched],
            )
            .map_err(self.error())?;
        Ok(before.filter(|health| !health.reachable))
    }

    /// Records a failed attempt to read `name`, and returns its health
    /// after it.
    pub(crate) fn source_failed(
        &self,
        name: &str,
        problem: Problem,
        error: &str,
    ) -> Result<Health, JournalError> {
        let stamp = now();
        self.connection
            .execute(
                "INSERT INTO sources (name, reachable, since, checked_at, problem, error, failures)
                 VALUES (?1, 0, ?2, ?2, ?3, ?4, 1)
                 ON CONFLICT(name) DO UPDATE SET
                     since = CASE WHEN reachable = 1 THEN ?2 ELSE since END,
                     reachable = 0, checked_at = ?2, problem = ?3, error = ?4,
                     failures = failures + 1",
                params![name, stamp, problem.as_str(), error],
            )
            .map_err(self.error())?;
        self.source(name)?.ok_or_else(|| JournalError::Sqlite {
            path: self.path.display().to_string(),
            cause: rusqlite::Error::QueryReturnedNoRows,
        })
    }

    /// Marks `name`'s being down as logged, once: whether this call did.
    pub(crate) fn source_alerted(&self, name: &str) -> Result<bool, JournalError> {
        let changed = self
            .connection
            .execute(
                "UPDATE sources SET alerted = 1 WHERE name = ?1 AND reachable = 0 AND alerted = 0",
                params![name],
            )
            .map_err(self.error())?;
        Ok(changed == 1)
    }

    fn source(&self, name: &str) -> Result<Option<Health>, JournalError> {
        self.connection
            .query_row(&format!("{HEALTH} WHERE name = ?1"), params![name], health)
            .optional()
            .map_err(self.error())
    }

    /// Every source's health, by name.
    pub(crate) fn sources(&self) -> Result<Vec<Health>, JournalError> {
        let mut statement = self
            .connection
            .prepare(&format!("{HEALTH} ORDER BY name"))
            .map_err(self.error())?;
        let rows = statement.query_map([], health).map_err(self.error())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.error())
    }
}

const HEALTH: &str = "SELECT name, reachable, since, checked_at, problem, error, failures, fetched, alerted FROM sources";

fn health(r: &rusqlite::Row<'_>) -> rusqlite::Result<Health> {
    Ok(Health {
        name: r.get(0)?,
        reachable: r.get::<_, i64>(1)? == 1,
        since: r.get(2)?,
        checked_at: r.get(3)?,
        problem: r
            .get::<_, Option<String>>(4)?
            .as_deref()
            .and_then(Problem::parse),
        error: r.get(5)?,
        failures: r.get(6)?,
        fetched: r.get(7)?,
        alerted: r.get::<_, i64>(8)? == 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), std::time::Duration::from_secs(5)).unwrap();
        (dir, journal)
    }

    #[test]
    fn a_source_goes_down_is_alerted_once_and_comes_back() {
        let (_dir, journal) = journal();
        assert_eq!(journal.source_reached("inbox", 2).unwrap(), None);
        let down = journal
            .source_failed("inbox", Problem::Login, "NO [AUTHENTICATIONFAILED]")
            .unwrap();
        assert!(!down.reachable);
        assert_eq!(down.failures, 1);
        assert_eq!(down.problem, Some(Problem::Login));
        let again = journal
            .source_failed("inbox", Problem::Unreachable, "connection refused")
            .unwrap();
        assert_eq!(again.failures, 2);
        assert_eq!(again.since, down.since, "down since the first failure");
        assert!(journal.source_alerted("inbox").unwrap());
        assert!(!journal.source_alerted("inbox").unwrap(), "only once");
        let back = journal.source_reached("inbox", 1).unwrap().unwrap();
        assert_eq!(back.failures, 2);
        let now = &journal.sources().unwrap()[0];
        assert!(now.reachable);
        assert_eq!(
            (now.fetched, now.failures, now.error.as_deref()),
            (3, 0, None)
        );
        // A fresh outage may be alerted again.
        journal
            .source_failed("inbox", Problem::Mailbox, "gone")
            .unwrap();
        assert!(journal.source_alerted("inbox").unwrap());
    }
}
