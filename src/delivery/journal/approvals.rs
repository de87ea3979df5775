//! The journal's side of `approvals:`. A request that must be signed off
//! waits as a `pending` row: its vars frozen (JSON, with their SHA-256) in
//! `pending`, the random tokens of the approval request mails in
//! `approval_tokens`, and every approver's answer in `approvals`. Each
//! change is one IMMEDIATE transaction conditional on the row still being
//! pending, so of two approvals delivered at once exactly one starts the
//! playbook, and a deny, an expiry or a cancel can never race a run.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    FINISHED, Journal, JournalError, Outcome, PENDING, RUNNING, Record, Row, count_outcome_of, now,
};
use crate::delivery::state::hex;

/// An approver's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Approve,
    Deny,
}

impl Verdict {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Deny => "deny",
        }
    }
}

/// What `Journal::pend` freezes for a request that waits.
#[derive(Debug, Clone)]
pub(crate) struct Pending<'a> {
    /// The rule's number in `approvals:` (from 1).
    pub rule: usize,
    /// The vars the playbook will get, as JSON.
    pub vars: &'a str,
    pub approvers: &'a [String],
    pub required: u32,
    /// RFC 3339, as `now` writes it.
    pub expires_at: &'a str,
    /// (token, address mailed) of each approval request mail.
    pub tokens: &'a [(String, String)],
}

/// One answer, as it is journaled.
#[derive(Debug, Clone)]
pub(crate) struct Vote<'a> {
    pub approver: &'a str,
    pub verdict: Verdict,
    /// How the approver was proven: the mail's authentication, or the
    /// local user at the terminal.
    pub authentication: &'a str,
    pub reason: Option<&'a str>,
    /// The journal row of the answering mail, when it came by mail.
    pub answer_row: Option<i64>,
    /// Who runs the playbook if this vote completes the approval.
    pub claimer: &'a str,
}

/// What a vote did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Voted {
    /// The request no longer waits (its outcome, if it has one yet).
    NotWaiting(Option<Outcome>),
    /// It waited past its expiry: `expire_due` ends it.
    Expired,
    /// This approver answered before; the first answer stands.
    Again,
    /// Counted; `have` of `need` approvals so far.
    Counted { have: u32, need: u32 },
    /// Denied: the row is finished, outcome `denied`.
    Denied,
    /// The last approval needed: the row is now `running`, claimed by the
    /// voter, and these are its frozen vars.
    Run(serde_json::Map<String, serde_json::Value>),
}

/// One approver's answer, for `show`, `log` and the result mails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Approval {
    pub approver: String,
    pub verdict: String,
    pub authentication: String,
    pub reason: Option<String>,
    pub at: String,
    pub answer_row: Option<i64>,
}

/// A waiting (or once waiting) request with what its rule asks.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PendingRow {
    pub row: Row,
    pub rule: i64,
    pub approvers: Vec<String>,
    pub required: u32,
    pub expires_at: String,
    pub approvals: Vec<Approval>,
}

/// The SHA-256 of frozen vars, as the journal keeps it.
pub(crate) fn vars_digest(vars: &str) -> String {
    hex(&Sha256::digest(vars.as_bytes()))
}

impl Journal {
    /// Makes row `id` wait for approval: `record` (decided, nothing run)
    /// and the frozen vars, in one durable commit with the tokens of the
    /// approval request mails, before any of them is sent.
    pub(crate) fn pend(
        &mut self,
        id: i64,
        record: &Record,
        pending: &Pending<'_>,
    ) -> Result<(), JournalError> {
        self.immediate(|tx| {
            tx.execute(
                "UPDATE messages SET request_type = ?1, vars = ?2, authentication = ?3, access = ?4,
                   outcome = NULL, state = ?5, updated_at = ?6, reason = ?7
                 WHERE id = ?8",
                params![
                    record.request_type,
                    record.vars,
                    record.authentication,
                    record.access,
                    PENDING,
                    now(),
                    record.reason,
                    id
                ],
            )?;
            let approvers = serde_json::to_string(pending.approvers).unwrap_or_default();
            tx.execute(
                "INSERT INTO pending (row, rule, vars, vars_sha256, approvers, required, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id,
                    i64::try_from(pending.rule).unwrap_or(i64::MAX),
                    pending.vars,
                    vars_digest(pending.vars),
                    approvers,
                    pending.required,
                    pending.expires_at
                ],
            )?;
            for (token, sent_to) in pending.tokens {
                tx.execute(
                    "INSERT INTO approval_tokens (token, row, sent_to) VALUES (?1, ?2, ?3)",
                    params![token, id, sent_to],
                )?;
            }
            Ok(())
        })
    }

    /// The row an approval request mail's token belongs to.
    pub(crate) fn token_row(&self, token: &str) -> Result<Option<i64>, JournalError> {
        self.connection
            .query_row(
                "SELECT row FROM approval_tokens WHERE token = ?1",
                [token],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.error())
    }

    /// Row `id` with its approval rule and answers, if it ever waited.
    pub(crate) fn pending_row(&self, id: i64) -> Result<Option<PendingRow>, JournalError> {
        let Some(row) = self.get(id)? else {
            return Ok(None);
        };
        let found = self
            .connection
            .query_row(
                "SELECT rule, approvers, required, expires_at FROM pending WHERE row = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(self.error())?;
        let Some((rule, approvers, required, expires_at)) = found else {
            return Ok(None);
        };
        Ok(Some(PendingRow {
            row,
            rule,
            approvers: serde_json::from_str(&approvers).unwrap_or_default(),
            required,
            expires_at,
            approvals: self.approvals_of(id)?,
        }))
    }

    /// Every row that waits for approval now, oldest first.
    pub(crate) fn waiting(&self) -> Result<Vec<PendingRow>, JournalError> {
        let mut rows = self.rows("WHERE state = ?1", &[&PENDING], 10_000)?;
        rows.reverse();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(pending) = self.pending_row(row.id)? {
                out.push(pending);
            }
        }
        Ok(out)
    }

    /// The answers given to row `id`, in order.
    pub(crate) fn approvals_of(&self, id: i64) -> Result<Vec<Approval>, JournalError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT approver, verdict, authentication, reason, at, answer_row
                 FROM approvals WHERE row = ?1 ORDER BY id",
            )
            .map_err(self.error())?;
        let approvals = statement
            .query_map([id], |r| {
                Ok(Approval {
                    approver: r.get(0)?,
                    verdict: r.get(1)?,
                    authentication: r.get(2)?,
                    reason: r.get(3)?,
                    at: r.get(4)?,
                    answer_row: r.get(5)?,
                })
            })
            .map_err(self.error())?;
        approvals
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error())
    }

    /// Journals `vote` on row `id`, and what follows from it, in one
    /// IMMEDIATE transaction: a deny ends the row; the approval that
    /// makes `required` distinct approvers marks it `running` for
    /// `vote.claimer` (with one `UPDATE ... WHERE state = 'pending'`),
    /// so that it starts once whatever arrives at the same moment.
    pub(crate) fn vote(&mut self, id: i64, vote: &Vote<'_>) -> Result<Voted, JournalError> {
        self.immediate(|tx| {
            let found: Option<(super::State, Option<Outcome>, String, u32, String)> = tx
                .query_row(
                    "SELECT m.state, m.outcome, p.expires_at, p.required, p.vars
                     FROM messages m JOIN pending p ON p.row = m.id WHERE m.id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?;
            let Some((state, outcome, expires_at, required, vars)) = found else {
                return Ok(Voted::NotWaiting(None));
            };
            if state != PENDING {
                return Ok(Voted::NotWaiting(outcome));
            }
            let stamp = now();
            if expires_at <= stamp {
                return Ok(Voted::Expired);
            }
            let inserted = tx.execute(
                "INSERT INTO approvals (row, approver, verdict, authentication, reason, at, answer_row)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                params![
                    id,
                    vote.approver,
                    vote.verdict.as_str(),
                    vote.authentication,
                    vote.reason,
                    stamp,
                    vote.answer_row
                ],
            )?;
            if inserted == 0 {
                return Ok(Voted::Again);
            }
            match vote.verdict {
                Verdict::Deny => {
                    let reason = format!(
                        "denied by {}{}",
                        vote.approver,
                        vote.reason.map(|r| format!(": {r}")).unwrap_or_default()
                    );
                    end(tx, id, Outcome::Denied, &reason, &stamp)?;
                    Ok(Voted::Denied)
                }
                Verdict::Approve => approve(tx, id, required, &vars, vote.claimer, &stamp),
            }
        })
    }

    /// Ends every pending row whose time is up as `expired`; the rows
    /// this call ended (of several at once, each row is ended by one).
    pub(crate) fn expire_due(&mut self) -> Result<Vec<i64>, JournalError> {
        self.immediate(|tx| {
            let stamp = now();
            let due: Vec<i64> = {
                let mut statement = tx.prepare(
                    "SELECT m.id FROM messages m JOIN pending p ON p.row = m.id
                     WHERE m.state = ?1 AND p.expires_at <= ?2",
                )?;
                let ids = statement.query_map(params![PENDING, stamp], |r| r.get(0))?;
                ids.collect::<Result<_, _>>()?
            };
            let mut ended = Vec::new();
            for id in due {
                if end(
                    tx,
                    id,
                    Outcome::Expired,
                    "nobody approved it in time",
                    &stamp,
                )? {
                    ended.push(id);
                }
            }
            Ok(ended)
        })
    }
}

impl Journal {
    /// Ends row `id` as `cancelled` by `by`, if nothing has started it:
    /// it waits for approval, or in the queue (claimed by `queued`, or by
    /// nobody after a failure to start). One conditional UPDATE, so a
    /// `retry` taking it over at the same moment and this never both win.
    pub(crate) fn cancel(&mut self, id: i64, by: &str) -> Result<bool, JournalError> {
        self.immediate(|tx| {
            let changed = tx.execute(
                "UPDATE messages SET state = ?1, outcome = ?2, reason = ?3, updated_at = ?4
                 WHERE id = ?5 AND duplicate_of IS NULL AND (state = ?6
                   OR (state = ?7 AND (claimed_by = ?8 OR claimed_by IS NULL)))",
                params![
                    FINISHED,
                    Outcome::Cancelled,
                    format!("cancelled by {by}"),
                    now(),
                    id,
                    PENDING,
                    super::CLAIMED,
                    QUEUED_CLAIMER
                ],
            )?;
            if changed == 1 {
                count_outcome_of(tx, id, Outcome::Cancelled)?;
            }
            Ok(changed == 1)
        })
    }
}

/// Who holds a row queued by `run` in queue mode (`delivery::QUEUED`).
const QUEUED_CLAIMER: &str = "queued";

/// Finishes pending row `id` with `outcome` (nothing ran); whether it
/// was still pending.
fn end(
    tx: &Transaction<'_>,
    id: i64,
    outcome: Outcome,
    reason: &str,
    stamp: &str,
) -> rusqlite::Result<bool> {
    let changed = tx.execute(
        "UPDATE messages SET state = ?1, outcome = ?2, reason = ?3, updated_at = ?4
         WHERE id = ?5 AND state = ?6",
        params![FINISHED, outcome, reason, stamp, id, PENDING],
    )?;
    if changed == 1 {
        count_outcome_of(tx, id, outcome)?;
    }
    Ok(changed == 1)
}

/// After an approval of row `id` was inserted: claims the run when it
/// makes `required`, checking the frozen vars against their digest.
fn approve(
    tx: &Transaction<'_>,
    id: i64,
    required: u32,
    vars: &str,
    claimer: &str,
    stamp: &str,
) -> rusqlite::Result<Voted> {
    let have: u32 = tx.query_row(
        "SELECT COUNT(DISTINCT lower(approver)) FROM approvals WHERE row = ?1 AND verdict = 'approve'",
        [id],
        |r| r.get(0),
    )?;
    if have < required {
        return Ok(Voted::Counted {
            have,
            need: required,
        });
    }
    let digest: String = tx.query_row(
        "SELECT vars_sha256 FROM pending WHERE row = ?1",
        [id],
        |r| r.get(0),
    )?;
    let frozen = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(vars);
    let Ok(frozen) = frozen.map_err(drop).and_then(|v| {
        if vars_digest(vars) == digest {
            Ok(v)
        } else {
            Err(())
        }
    }) else {
        // Changed behind helpdesk's back: never run what was not approved.
        end(
            tx,
            id,
            Outcome::Refused,
            "its frozen vars no longer match their SHA-256",
            stamp,
        )?;
        return Ok(Voted::NotWaiting(Some(Outcome::Refused)));
    };
    let claimed = tx.execute(
        "UPDATE messages SET state = ?1, claimed_by = ?2, started_at = ?3, updated_at = ?3
         WHERE id = ?4 AND state = ?5",
        params![RUNNING, claimer, stamp, id, PENDING],
    )?;
    Ok(if claimed == 1 {
        Voted::Run(frozen)
    } else {
        Voted::NotWaiting(None)
    })
}
