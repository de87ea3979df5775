//! The journal's side of `maintenance:`: one row per maintenance, keyed
//! by the configured provider and the provider's maintenance id, holding
//! the newest notice's view of it and whether its `started` and `ended`
//! playbooks ran; and every notice ever recorded (`maintenance_notices`),
//! with what it changed. Times are RFC 3339 UTC text (`format_time`), so
//! SQL compares them as text.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Journal, JournalError, now};
use crate::maintenance::{Circuit, Maintenance, Status, format_time};

/// What a notice changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// The first notice of this maintenance.
    New,
    /// A newer notice: its view replaced the earlier one.
    Updated,
    /// A newer (or first) notice that cancels it.
    Cancelled,
    /// An older or equal notice: recorded, nothing changed.
    Unchanged,
}

impl Change {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Updated => "updated",
            Change::Cancelled => "cancelled",
            Change::Unchanged => "unchanged",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        [Self::New, Self::Updated, Self::Cancelled, Self::Unchanged]
            .into_iter()
            .find(|c| c.as_str() == word)
    }
}

/// The two playbooks `worker` runs at a maintenance's times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Started,
    Ended,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Started => "started",
            Phase::Ended => "ended",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Phase::Started => "started",
            Phase::Ended => "ended",
        }
    }
}

/// A maintenance as the journal has it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Stored {
    #[serde(flatten)]
    pub maintenance: Maintenance,
    /// The journal row of the notice that set it.
    pub row: i64,
    pub started_at: Option<String>,
    pub started_outcome: Option<String>,
    pub ended_at: Option<String>,
    pub ended_outcome: Option<String>,
}

const COLUMNS: &str = "provider, maintenance_id, status, sequence, stamp, start, end, account, summary, organizer, circuits, row, started_at, started_outcome, ended_at, ended_outcome";

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    let bad = |i: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, what.into())
    };
    let time = |i: usize, text: String| -> rusqlite::Result<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| bad(i, format!("{text:?}: {e}")))
    };
    let status: String = r.get(2)?;
    let circuits: String = r.get(10)?;
    let stamp: Option<String> = r.get(4)?;
    Ok(Stored {
        maintenance: Maintenance {
            provider: r.get(0)?,
            maintenance_id: r.get(1)?,
            status: Status::parse(&status)
                .ok_or_else(|| bad(2, format!("unknown status {status:?}")))?,
            sequence: r.get(3)?,
            stamp: stamp.map(|s| time(4, s)).transpose()?,
            start: time(5, r.get(5)?)?,
            end: time(6, r.get(6)?)?,
            account: r.get(7)?,
            summary: r.get(8)?,
            organizer: r.get(9)?,
            circuits: serde_json::from_str::<Vec<(String, String)>>(&circuits)
                .map_err(|e| bad(10, e.to_string()))?
                .into_iter()
                .map(|(id, impact)| Circuit { id, impact })
                .collect(),
        },
        row: r.get(11)?,
        started_at: r.get(12)?,
        started_outcome: r.get(13)?,
        ended_at: r.get(14)?,
        ended_outcome: r.get(15)?,
    })
}

/// Whether `new` is a later notice than `old`: by SEQUENCE when both
/// have one, else by their stamps; when neither tells, it is not.
fn is_newer(new: &Maintenance, old: &Maintenance) -> bool {
    match (new.sequence, old.sequence) {
        (Some(n), Some(o)) => n > o,
        _ => matches!((new.stamp, old.stamp), (Some(n), Some(o)) if n > o),
    }
}

fn write(tx: &Transaction<'_>, m: &Maintenance, row: i64) -> rusqlite::Result<()> {
    let circuits: Vec<(&str, &str)> = m
        .circuits
        .iter()
        .map(|c| (c.id.as_str(), c.impact.as_str()))
        .collect();
    let circuits = serde_json::to_string(&circuits).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO maintenances (provider, maintenance_id, status, sequence, stamp, start, end, account, summary, organizer, circuits, row, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (provider, maintenance_id) DO UPDATE SET
           status = excluded.status, sequence = excluded.sequence, stamp = excluded.stamp,
           start = excluded.start, end = excluded.end, account = excluded.account,
           summary = excluded.summary, organizer = excluded.organizer,
           circuits = excluded.circuits, row = excluded.row, updated_at = excluded.updated_at",
        params![
            m.provider,
            m.maintenance_id,
            m.status.as_str(),
            m.sequence,
            m.stamp.as_ref().map(format_time),
            format_time(&m.start),
            format_time(&m.end),
            m.account,
            m.summary,
            m.organizer,
            circuits,
            row,
            now(),
        ],
    )?;
    Ok(())
}

impl Journal {
    /// Records the notice of journal row `row`, in one transaction: what
    /// it changed. A row recorded before (a retried delivery) gets the
    /// answer it got then, and changes nothing.
    pub(crate) fn note_maintenance(
        &mut self,
        m: &Maintenance,
        row: i64,
    ) -> Result<Change, JournalError> {
        self.immediate(|tx| {
            let before: Option<String> = tx
                .query_row(
                    "SELECT change FROM maintenance_notices WHERE row = ?1 AND provider = ?2 AND maintenance_id = ?3",
                    params![row, m.provider, m.maintenance_id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(change) = before.as_deref().and_then(Change::parse) {
                return Ok(change);
            }
            let current = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM maintenances WHERE provider = ?1 AND maintenance_id = ?2"),
                    params![m.provider, m.maintenance_id],
                    stored,
                )
                .optional()?;
            let cancels = m.status == Status::Cancelled;
            let change = match &current {
                None if cancels => Change::Cancelled,
                None => Change::New,
                Some(old) if !is_newer(m, &old.maintenance) => Change::Unchanged,
                Some(_) if cancels => Change::Cancelled,
                Some(_) => Change::Updated,
            };
            if change != Change::Unchanged {
                write(tx, m, row)?;
            }
            tx.execute(
                "INSERT INTO maintenance_notices (row, provider, maintenance_id, sequence, stamp, change, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    row,
                    m.provider,
                    m.maintenance_id,
                    m.sequence,
                    m.stamp.as_ref().map(format_time),
                    change.as_str(),
                    now()
                ],
            )?;
            Ok(change)
        })
    }

    /// What `worker` runs now, oldest start first: `started` from the
    /// start (less `lead`) until the end, for a maintenance not
    /// cancelled; `ended` from the end, or at once when a maintenance
    /// whose `started` ran is cancelled (to undo it). One that ended, or
    /// was cancelled, before its `started` ran is closed here: neither runs.
    pub(crate) fn due_maintenances(
        &self,
        now_at: DateTime<Utc>,
        lead: std::time::Duration,
    ) -> Result<Vec<(Phase, Stored)>, JournalError> {
        let now_text = format_time(&now_at);
        let lead = chrono::Duration::from_std(lead).unwrap_or(chrono::Duration::zero());
        let soon = format_time(&(now_at + lead));
        let cancelled = Status::Cancelled.as_str();
        let c = &self.connection;
        c.execute(
            "UPDATE maintenances SET ended_at = ?1,
               ended_outcome = CASE WHEN status = ?2 THEN 'not run: cancelled before it started'
                                    ELSE 'not run: it ended before it started' END
             WHERE started_at IS NULL AND ended_at IS NULL AND (end <= ?1 OR status = ?2)",
            params![now_text, cancelled],
        )
        .map_err(self.error())?;
        let mut statement = c
            .prepare(&format!(
                "SELECT {COLUMNS}, CASE WHEN started_at IS NULL THEN 0 ELSE 1 END FROM maintenances
                 WHERE ended_at IS NULL AND (
                   (started_at IS NULL AND status != ?3 AND start <= ?2 AND end > ?1)
                   OR (started_at IS NOT NULL AND (end <= ?1 OR status = ?3)))
                 ORDER BY start, provider, maintenance_id"
            ))
            .map_err(self.error())?;
        let rows = statement
            .query_map(params![now_text, soon, cancelled], |r| {
                let phase = if r.get::<_, i64>(16)? == 0 {
                    Phase::Started
                } else {
                    Phase::Ended
                };
                Ok((phase, stored(r)?))
            })
            .map_err(self.error())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.error())
    }

    /// Takes `phase` of a maintenance, once: true only for the one caller
    /// that set its time (before its playbook starts).
    pub(crate) fn claim_phase(
        &self,
        provider: &str,
        maintenance_id: &str,
        phase: Phase,
    ) -> Result<bool, JournalError> {
        let column = phase.column();
        let also = match phase {
            Phase::Started => "",
            Phase::Ended => " AND started_at IS NOT NULL",
        };
        let changed = self
            .connection
            .execute(
                &format!(
                    "UPDATE maintenances SET {column}_at = ?1
                     WHERE provider = ?2 AND maintenance_id = ?3 AND {column}_at IS NULL{also}"
                ),
                params![now(), provider, maintenance_id],
            )
            .map_err(self.error())?;
        Ok(changed == 1)
    }

    /// How `phase`'s playbook ended.
    pub(crate) fn phase_outcome(
        &self,
        provider: &str,
        maintenance_id: &str,
        phase: Phase,
        outcome: &str,
    ) -> Result<(), JournalError> {
        let column = phase.column();
        self.connection
            .execute(
                &format!(
                    "UPDATE maintenances SET {column}_outcome = ?1 WHERE provider = ?2 AND maintenance_id = ?3"
                ),
                params![outcome, provider, maintenance_id],
            )
            .map_err(self.error())?;
        Ok(())
    }

    /// Upcoming and ongoing maintenances (not cancelled, not ended), or
    /// with `all` every one, by start.
    pub(crate) fn maintenances(
        &self,
        all: bool,
        now_at: DateTime<Utc>,
    ) -> Result<Vec<Stored>, JournalError> {
        let filter = if all {
            ""
        } else {
            "WHERE end > ?1 AND status != ?2"
        };
        let mut statement = self
            .connection
            .prepare(&format!(
                "SELECT {COLUMNS} FROM maintenances {filter} ORDER BY start, provider, maintenance_id"
            ))
            .map_err(self.error())?;
        let rows = if all {
            statement.query_map([], stored)
        } else {
            statement.query_map(
                params![format_time(&now_at), Status::Cancelled.as_str()],
                stored,
            )
        }
        .map_err(self.error())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.error())
    }

    /// Maintenances that have not ended, per status (every status).
    pub(crate) fn maintenance_counts(
        &self,
        now_at: DateTime<Utc>,
    ) -> Result<Vec<(Status, u64)>, JournalError> {
        let now_text = format_time(&now_at);
        Status::ALL
            .into_iter()
            .map(|status| {
                self.connection
                    .query_row(
                        "SELECT COUNT(*) FROM maintenances WHERE end > ?1 AND status = ?2",
                        params![now_text, status.as_str()],
                        |r| r.get::<_, i64>(0),
                    )
                    .map(|n| (status, u64::try_from(n).unwrap_or(0)))
                    .map_err(self.error())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 10, hour, 0, 0)
            .single()
            .unwrap()
    }

    fn notice(
        id: &str,
        sequence: Option<i64>,
        status: Status,
        start: u32,
        end: u32,
    ) -> Maintenance {
        Maintenance {
            provider: "zayo".into(),
            maintenance_id: id.into(),
            account: None,
            status,
            sequence,
            stamp: None,
            start: at(start),
            end: at(end),
            summary: "work".into(),
            organizer: None,
            circuits: vec![Circuit {
                id: "C1".into(),
                impact: "OUTAGE".into(),
            }],
        }
    }

    fn journal() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        (dir, journal)
    }

    #[test]
    fn newer_replaces_older_changes_nothing_cancel_cancels_and_a_retry_gets_its_answer() {
        let (_dir, mut j) = journal();
        let c = Status::Confirmed;
        assert_eq!(
            j.note_maintenance(&notice("M", Some(1), c, 2, 4), 1)
                .unwrap(),
            Change::New
        );
        assert_eq!(
            j.note_maintenance(&notice("M", Some(2), c, 3, 5), 2)
                .unwrap(),
            Change::Updated
        );
        assert_eq!(
            j.note_maintenance(&notice("M", Some(1), c, 6, 7), 3)
                .unwrap(),
            Change::Unchanged
        );
        assert_eq!(
            j.note_maintenance(&notice("M", Some(2), c, 6, 7), 4)
                .unwrap(),
            Change::Unchanged
        );
        let listed = j.maintenances(true, at(0)).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].maintenance.start, at(3));
        assert_eq!(listed[0].row, 2);
        // Row 2 delivered again (a retry): the same answer, nothing changed.
        assert_eq!(
            j.note_maintenance(&notice("M", Some(2), c, 3, 5), 2)
                .unwrap(),
            Change::Updated
        );
        let cancel = notice("M", Some(3), Status::Cancelled, 3, 5);
        assert_eq!(j.note_maintenance(&cancel, 5).unwrap(), Change::Cancelled);
        assert!(j.maintenances(false, at(0)).unwrap().is_empty());
        // A higher SEQUENCE after a cancellation schedules it again.
        assert_eq!(
            j.note_maintenance(&notice("M", Some(4), c, 3, 5), 6)
                .unwrap(),
            Change::Updated
        );
        let n: i64 = j
            .connection
            .query_row("SELECT COUNT(*) FROM maintenance_notices", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 6, "every notice but the retried one is recorded");
    }

    #[test]
    fn without_sequence_the_stamp_orders_and_without_either_nothing_is_newer() {
        let (_dir, mut j) = journal();
        let mut first = notice("S", None, Status::Confirmed, 2, 4);
        first.stamp = Some(at(1));
        assert_eq!(j.note_maintenance(&first, 1).unwrap(), Change::New);
        let mut later = notice("S", None, Status::Confirmed, 3, 4);
        later.stamp = Some(at(2));
        assert_eq!(j.note_maintenance(&later, 2).unwrap(), Change::Updated);
        assert_eq!(j.note_maintenance(&first, 3).unwrap(), Change::Unchanged);
        let unstamped = notice("S", None, Status::Confirmed, 5, 6);
        assert_eq!(
            j.note_maintenance(&unstamped, 4).unwrap(),
            Change::Unchanged
        );
        let first_cancelled = notice("X", Some(0), Status::Cancelled, 2, 4);
        assert_eq!(
            j.note_maintenance(&first_cancelled, 5).unwrap(),
            Change::Cancelled
        );
    }

    #[test]
    fn phases_come_due_at_their_times_and_are_taken_once() {
        let (dir, mut j) = journal();
        let c = Status::Confirmed;
        j.note_maintenance(&notice("A", Some(1), c, 2, 4), 1)
            .unwrap();
        j.note_maintenance(&notice("MISSED", Some(1), c, 0, 1), 2)
            .unwrap();
        j.note_maintenance(&notice("GONE", Some(1), Status::Cancelled, 2, 4), 3)
            .unwrap();
        let lead = Duration::from_secs(15 * 60);
        assert!(
            j.due_maintenances(at(1), lead).unwrap().is_empty(),
            "nothing before start - lead"
        );
        let due = j
            .due_maintenances(at(2) - chrono::Duration::minutes(10), lead)
            .unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].0, due[0].1.maintenance.maintenance_id.as_str()),
            (Phase::Started, "A")
        );
        let other = Journal::open(dir.path(), Duration::from_secs(5)).unwrap();
        assert!(j.claim_phase("zayo", "A", Phase::Started).unwrap());
        assert!(
            !other.claim_phase("zayo", "A", Phase::Started).unwrap(),
            "taken twice"
        );
        assert!(
            !other.claim_phase("zayo", "MISSED", Phase::Ended).unwrap(),
            "ended before started"
        );
        assert!(
            j.due_maintenances(at(3), lead).unwrap().is_empty(),
            "started is not due again"
        );
        let due = j.due_maintenances(at(4), lead).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, Phase::Ended);
        assert!(other.claim_phase("zayo", "A", Phase::Ended).unwrap());
        assert!(!j.claim_phase("zayo", "A", Phase::Ended).unwrap());
        j.phase_outcome("zayo", "A", Phase::Ended, "done").unwrap();
        let all = j.maintenances(true, at(5)).unwrap();
        let missed = all
            .iter()
            .find(|s| s.maintenance.maintenance_id == "MISSED")
            .unwrap();
        assert_eq!(
            missed.ended_outcome.as_deref(),
            Some("not run: it ended before it started")
        );
        let gone = all
            .iter()
            .find(|s| s.maintenance.maintenance_id == "GONE")
            .unwrap();
        assert_eq!(gone.started_at, None);
        assert!(gone.ended_outcome.as_deref().unwrap().contains("cancelled"));
        let a = all
            .iter()
            .find(|s| s.maintenance.maintenance_id == "A")
            .unwrap();
        assert_eq!(a.ended_outcome.as_deref(), Some("done"));
    }

    #[test]
    fn a_cancellation_after_started_ran_makes_ended_due_at_once() {
        let (_dir, mut j) = journal();
        j.note_maintenance(&notice("B", Some(1), Status::Confirmed, 2, 6), 1)
            .unwrap();
        assert!(j.claim_phase("zayo", "B", Phase::Started).unwrap());
        j.note_maintenance(&notice("B", Some(2), Status::Cancelled, 2, 6), 2)
            .unwrap();
        let due = j.due_maintenances(at(3), Duration::ZERO).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, Phase::Ended);
    }

    #[test]
    fn counts_cover_every_status_of_maintenances_not_ended() {
        let (_dir, mut j) = journal();
        j.note_maintenance(&notice("A", Some(1), Status::Confirmed, 2, 4), 1)
            .unwrap();
        j.note_maintenance(&notice("B", Some(1), Status::Tentative, 2, 4), 2)
            .unwrap();
        j.note_maintenance(&notice("C", Some(1), Status::Confirmed, 0, 1), 3)
            .unwrap();
        let counts = j.maintenance_counts(at(1)).unwrap();
        assert_eq!(counts.len(), Status::ALL.len());
        let of = |s: Status| counts.iter().find(|(x, _)| *x == s).unwrap().1;
        assert_eq!(of(Status::Confirmed), 1);
        assert_eq!(of(Status::Tentative), 1);
        assert_eq!(of(Status::Cancelled), 0);
    }
}
