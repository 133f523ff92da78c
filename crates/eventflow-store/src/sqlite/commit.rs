//! An owner's commit to its run, as one write of a batch: fenced by its lease, then the journal,
//! the consumed inbox rows, the published events, the snapshot and the run's end.

use rusqlite::{Connection, params};
use serde_json::Value;

use super::query::{exec, one};
use crate::mail::event_to_stored;
use crate::sql::{non_negative, saturating_i64};
use crate::{Commit, CommitEnd, Lease, RunStatus, StoreError, millis};

/// Writes `commit` under `lease`; true when the run was released claimable (worth a wake-up).
/// Runs in the writer's savepoint: on an error, whatever it wrote is rolled back.
pub(super) fn commit(
    conn: &Connection,
    lease: &Lease,
    commit: &Commit,
) -> Result<bool, StoreError> {
    let run_id = lease.run_id.as_str();
    // The fencing check and the first write are one statement under the write lock; a stale
    // lease matches no row, and nothing is written.
    let fenced = one(
        conn,
        concat!(
            "UPDATE runs SET updated_at_ms = ",
            now_ms!(),
            " WHERE run_id = ?1 AND owner = ?2 AND epoch = ?3 \
             RETURNING last_journal_seq, last_event_seq, updated_at_ms"
        ),
        params![run_id, lease.owner, saturating_i64(lease.epoch)],
        |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        },
    )?;
    let Some((last_journal, last_event, now)) = fenced else {
        return Err(StoreError::fenced(lease));
    };
    let last_journal = non_negative(last_journal, "last_journal_seq")?;
    let last_event = non_negative(last_event, "last_event_seq")?;
    commit.check_continues(run_id, last_journal, last_event)?;
    for (seq, entry) in &commit.journal {
        exec(
            conn,
            "INSERT INTO journal (run_id, seq, entry) VALUES (?1, ?2, ?3)",
            params![run_id, saturating_i64(*seq), entry.to_string()],
        )?;
    }
    if !commit.consumed.is_empty() {
        exec(
            conn,
            "UPDATE inbox SET consumed = 1 \
             WHERE run_id = ?1 AND id IN (SELECT value FROM json_each(?2))",
            params![run_id, Value::from(commit.consumed.clone()).to_string()],
        )?;
    }
    for (seq, event) in &commit.events {
        exec(
            conn,
            "INSERT INTO run_events (run_id, seq, event) VALUES (?1, ?2, ?3)",
            params![
                run_id,
                saturating_i64(*seq),
                event_to_stored(event).to_string()
            ],
        )?;
    }
    if let Some((seq, data)) = &commit.snapshot {
        exec(
            conn,
            "INSERT INTO snapshots (run_id, seq, data) VALUES (?1, ?2, ?3) \
             ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, data = excluded.data",
            params![run_id, saturating_i64(*seq), data.to_string()],
        )?;
        exec(
            conn,
            "DELETE FROM journal WHERE run_id = ?1 AND seq <= ?2",
            params![run_id, saturating_i64(*seq)],
        )?;
    }
    let last_journal = commit.journal.last().map_or(last_journal, |(seq, _)| *seq);
    let last_event = commit.events.last().map_or(last_event, |(seq, _)| *seq);
    exec(
        conn,
        "UPDATE runs SET last_journal_seq = ?2, last_event_seq = ?3 WHERE run_id = ?1",
        params![
            run_id,
            saturating_i64(last_journal),
            saturating_i64(last_event)
        ],
    )?;
    let mut wake = false;
    match &commit.end {
        None => {}
        Some(CommitEnd::Finish {
            status,
            result,
            error,
        }) => {
            // Consumed rows stay, so that a late duplicate of a message is still recognised.
            exec(
                conn,
                "DELETE FROM inbox WHERE run_id = ?1 AND consumed = 0",
                [run_id],
            )?;
            exec(
                conn,
                "UPDATE runs SET status = ?2, result = ?3, error = ?4, owner = NULL, \
                                 epoch = epoch + 1, wake_at_ms = NULL \
                 WHERE run_id = ?1",
                params![
                    run_id,
                    status.as_str(),
                    result.as_ref().map(Value::to_string),
                    error
                ],
            )?;
        }
        Some(CommitEnd::Release { idle, wake_after }) => {
            let unread = one(
                conn,
                "SELECT EXISTS (SELECT 1 FROM inbox WHERE run_id = ?1 AND consumed = 0)",
                [run_id],
                |row| row.get::<_, bool>(0),
            )?
            .unwrap_or(false);
            let (status, wake_at) = if *idle && !unread {
                let wake_at = wake_after.map(|after| now.saturating_add(millis(after)));
                (RunStatus::Waiting, wake_at)
            } else {
                wake = true;
                (RunStatus::Running, None)
            };
            exec(
                conn,
                "UPDATE runs SET status = ?2, wake_at_ms = ?3, owner = NULL, epoch = epoch + 1 \
                 WHERE run_id = ?1",
                params![run_id, status.as_str(), wake_at],
            )?;
        }
    }
    Ok(wake)
}
