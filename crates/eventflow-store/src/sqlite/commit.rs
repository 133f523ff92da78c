//! An owner's commit to its run, as one write of a batch: fenced by its lease, then the journal,
//! the consumed inbox rows, the published events, the snapshot and the run's end.
//!
//! The commit is turned into SQL values ([`Prepared`]) on the caller's thread, before it is
//! queued: the writer thread is the store's one serial resource, so it only runs statements —
//! encoding JSON and freeing the commit's values there cost a quarter of its time.

use rusqlite::{Connection, params};
use serde_json::Value;

use super::query::{exec, one};
use crate::mail::event_to_stored;
use crate::sql::{non_negative, saturating_i64};
use crate::{Commit, CommitEnd, Lease, RunStatus, StoreError, continues, millis};

/// The end of the fencing update of [`commit`]: `?1`–`?3` the lease, `?4` the commit's last
/// journal sequence and `?5` the one before its first (both NULL without journal entries), `?6`
/// and `?7` the same for its events.
macro_rules! fenced {
    () => {
        " WHERE run_id = ?1 AND owner = ?2 AND epoch = ?3 \
            AND (?4 IS NULL OR last_journal_seq = ?5) AND (?6 IS NULL OR last_event_seq = ?7) \
          RETURNING updated_at_ms"
    };
}

/// A [`Commit`] and its lease, its JSON encoded as the columns store it.
pub(super) struct Prepared {
    lease: Lease,
    journal: Vec<(u64, String)>,
    consumed: Option<String>,
    events: Vec<(u64, String)>,
    snapshot: Option<(u64, String)>,
    end: Option<End>,
}

/// A [`CommitEnd`], encoded.
enum End {
    Finish {
        status: RunStatus,
        result: Option<String>,
        error: Option<String>,
    },
    Release {
        idle: bool,
        wake_after_ms: Option<i64>,
    },
}

impl Prepared {
    /// Encodes `commit` under `lease`.
    pub(super) fn new(lease: Lease, commit: Commit) -> Prepared {
        let encode = |entries: Vec<(u64, Value)>| {
            entries
                .into_iter()
                .map(|(seq, value)| (seq, value.to_string()))
                .collect()
        };
        Prepared {
            lease,
            journal: encode(commit.journal),
            consumed: (!commit.consumed.is_empty())
                .then(|| Value::from(commit.consumed).to_string()),
            events: commit
                .events
                .iter()
                .map(|(seq, event)| (*seq, event_to_stored(event).to_string()))
                .collect(),
            snapshot: commit.snapshot.map(|(seq, data)| (seq, data.to_string())),
            end: commit.end.map(|end| match end {
                CommitEnd::Finish {
                    status,
                    result,
                    error,
                } => End::Finish {
                    status,
                    result: result.map(|result| result.to_string()),
                    error,
                },
                CommitEnd::Release { idle, wake_after } => End::Release {
                    idle,
                    wake_after_ms: wake_after.map(millis),
                },
            }),
        }
    }
}

/// Writes the commit; true when the run was released claimable (worth a wake-up). Its first
/// statement fences and checks continuity, so a refused commit writes nothing; one that fails
/// later is undone by the writer (see `writer.rs`).
pub(super) fn commit(conn: &Connection, commit: &Prepared) -> Result<bool, StoreError> {
    let lease = &commit.lease;
    let run_id = lease.run_id.as_str();
    // The sequences must follow each other within the commit (and after the run's last ones,
    // which the fencing update checks); if not, `refusal` says how, as the other backends do.
    let after =
        |entries: &[(u64, String)]| entries.first().map_or(0, |(seq, _)| seq.saturating_sub(1));
    let (after_journal, after_event) = (after(&commit.journal), after(&commit.events));
    if continues(
        run_id,
        &commit.journal,
        &commit.events,
        after_journal,
        after_event,
    )
    .is_err()
    {
        return Err(refusal(conn, commit));
    }
    let last_journal = commit.journal.last().map(|(seq, _)| saturating_i64(*seq));
    let last_event = commit.events.last().map(|(seq, _)| saturating_i64(*seq));
    let after_journal = last_journal.map(|_| saturating_i64(after_journal));
    let after_event = last_event.map(|_| saturating_i64(after_event));
    let epoch = saturating_i64(lease.epoch);
    // One statement fences the commit (a stale lease matches no row), checks that it continues
    // the journal and the events, advances them, and — for a finish — ends the run.
    let now = match &commit.end {
        Some(End::Finish {
            status,
            result,
            error,
        }) => one(
            conn,
            concat!(
                "UPDATE runs SET updated_at_ms = ",
                now_ms!(),
                ", last_journal_seq = coalesce(?4, last_journal_seq), \
                   last_event_seq = coalesce(?6, last_event_seq), \
                   status = ?8, result = ?9, error = ?10, owner = NULL, epoch = epoch + 1, \
                   wake_at_ms = NULL",
                fenced!()
            ),
            params![
                run_id,
                lease.owner,
                epoch,
                last_journal,
                after_journal,
                last_event,
                after_event,
                status.as_str(),
                result,
                error
            ],
            |row| row.get::<_, i64>(0),
        )?,
        _ => one(
            conn,
            concat!(
                "UPDATE runs SET updated_at_ms = ",
                now_ms!(),
                ", last_journal_seq = coalesce(?4, last_journal_seq), \
                   last_event_seq = coalesce(?6, last_event_seq)",
                fenced!()
            ),
            params![
                run_id,
                lease.owner,
                epoch,
                last_journal,
                after_journal,
                last_event,
                after_event
            ],
            |row| row.get::<_, i64>(0),
        )?,
    };
    let Some(now) = now else {
        return Err(refusal(conn, commit));
    };
    for (seq, entry) in &commit.journal {
        exec(
            conn,
            "INSERT INTO journal (run_id, seq, entry) VALUES (?1, ?2, ?3)",
            params![run_id, saturating_i64(*seq), entry],
        )?;
    }
    if let Some(consumed) = &commit.consumed {
        exec(
            conn,
            "UPDATE inbox SET consumed = 1 \
             WHERE run_id = ?1 AND id IN (SELECT value FROM json_each(?2))",
            params![run_id, consumed],
        )?;
    }
    for (seq, event) in &commit.events {
        exec(
            conn,
            "INSERT INTO run_events (run_id, seq, event) VALUES (?1, ?2, ?3)",
            params![run_id, saturating_i64(*seq), event],
        )?;
    }
    if let Some((seq, data)) = &commit.snapshot {
        exec(
            conn,
            "INSERT INTO snapshots (run_id, seq, data) VALUES (?1, ?2, ?3) \
             ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, data = excluded.data",
            params![run_id, saturating_i64(*seq), data],
        )?;
        exec(
            conn,
            "DELETE FROM journal WHERE run_id = ?1 AND seq <= ?2",
            params![run_id, saturating_i64(*seq)],
        )?;
    }
    match &commit.end {
        None => Ok(false),
        Some(End::Finish { .. }) => {
            // Consumed rows stay, so that a late duplicate of a message is still recognised.
            exec(
                conn,
                "DELETE FROM inbox WHERE run_id = ?1 AND consumed = 0",
                [run_id],
            )?;
            Ok(false)
        }
        Some(End::Release {
            idle,
            wake_after_ms,
        }) => {
            let unread = one(
                conn,
                "SELECT EXISTS (SELECT 1 FROM inbox WHERE run_id = ?1 AND consumed = 0)",
                [run_id],
                |row| row.get::<_, bool>(0),
            )?
            .unwrap_or(false);
            let (status, wake_at, wake) = if *idle && !unread {
                let wake_at = wake_after_ms.map(|after| now.saturating_add(after));
                (RunStatus::Waiting, wake_at, false)
            } else {
                (RunStatus::Running, None, true)
            };
            exec(
                conn,
                "UPDATE runs SET status = ?2, wake_at_ms = ?3, owner = NULL, epoch = epoch + 1 \
                 WHERE run_id = ?1",
                params![run_id, status.as_str(), wake_at],
            )?;
            Ok(wake)
        }
    }
}

/// Why the fencing update matched no row: the lease is stale (`Fenced`), or the commit does not
/// continue the run's journal or events (`Corrupt`).
fn refusal(conn: &Connection, commit: &Prepared) -> StoreError {
    let lease = &commit.lease;
    let last = one(
        conn,
        "SELECT last_journal_seq, last_event_seq FROM runs \
         WHERE run_id = ?1 AND owner = ?2 AND epoch = ?3",
        params![lease.run_id, lease.owner, saturating_i64(lease.epoch)],
        |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
    );
    let (last_journal, last_event) = match last {
        Ok(Some(last)) => last,
        Ok(None) => return StoreError::fenced(lease),
        Err(error) => return error,
    };
    let lasts = non_negative(last_journal, "last_journal_seq")
        .and_then(|journal| Ok((journal, non_negative(last_event, "last_event_seq")?)));
    match lasts.and_then(|(journal, event)| {
        continues(
            &lease.run_id,
            &commit.journal,
            &commit.events,
            journal,
            event,
        )
    }) {
        Err(error) => error,
        // The row changed between the two statements: impossible under the write lock.
        Ok(()) => StoreError::Database("the fencing update matched no row".into()),
    }
}
