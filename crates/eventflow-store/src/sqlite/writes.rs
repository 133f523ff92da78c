//! The writes besides commits and claims: creating a run, a send to its inbox, reopening,
//! unparking and purging it, and a worker's heartbeat. Each is one write of a batch (see
//! [`writer`](super::writer)): on an error, whatever it wrote is rolled back.

use rusqlite::{Connection, params};
use serde_json::Value;

use super::query::{exec, one};
use crate::sql::{non_negative, parse_status, saturating_i64};
use crate::{Created, Lease, Mail, NewRun, Reopened, RunStatus, Sent, StoreError};

/// Whether the run exists.
pub(super) fn exists(conn: &Connection, run_id: &str) -> Result<bool, StoreError> {
    Ok(one(
        conn,
        "SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = ?1)",
        [run_id],
        |row| row.get::<_, bool>(0),
    )?
    .unwrap_or(false))
}

/// Creates the run, its first journal entry `start` (encoded by the caller, off the writer).
pub(super) fn create(conn: &Connection, run: &NewRun, start: &str) -> Result<Created, StoreError> {
    if let Some(key) = &run.idempotency_key {
        let existing = one(
            conn,
            "SELECT run_id FROM runs WHERE idempotency_key = ?1",
            [key],
            |row| row.get::<_, String>(0),
        )?;
        if let Some(existing) = existing {
            return Ok(Created::Existing(existing));
        }
    }
    let inserted = exec(
        conn,
        concat!(
            "INSERT INTO runs (run_id, workflow, fingerprint, status, owner, epoch, recoveries, \
                               idempotency_key, last_journal_seq, last_event_seq, \
                               created_at_ms, updated_at_ms) \
             VALUES (?1, ?2, ?3, 'running', ?4, 1, 0, ?5, 1, 0, ",
            now_ms!(),
            ", ",
            now_ms!(),
            ")"
        ),
        params![
            run.run_id,
            run.workflow.name,
            run.workflow.fingerprint,
            run.owner,
            run.idempotency_key
        ],
    );
    // The run id is the primary key: a taken one fails the insert (no lookup before it).
    match inserted {
        Err(StoreError::Refused(error)) if is_primary_key_violation(&*error) => {
            return Err(StoreError::DuplicateRun {
                run_id: run.run_id.clone(),
            });
        }
        other => other?,
    };
    exec(
        conn,
        "INSERT INTO journal (run_id, seq, entry) VALUES (?1, 1, ?2)",
        params![run.run_id, start],
    )?;
    Ok(Created::New(run.owner.as_ref().map(|owner| Lease {
        run_id: run.run_id.clone(),
        owner: owner.clone(),
        epoch: 1,
    })))
}

/// Whether SQLite refused a write for a taken primary key.
fn is_primary_key_violation(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        error.downcast_ref::<rusqlite::Error>(),
        Some(rusqlite::Error::SqliteFailure(failure, _))
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

pub(super) fn queue(
    conn: &Connection,
    run_id: &str,
    msg_id: &str,
    mail: &Mail,
) -> Result<Sent, StoreError> {
    let status = one(
        conn,
        "SELECT status FROM runs WHERE run_id = ?1",
        [run_id],
        |row| row.get::<_, String>(0),
    )?;
    let Some(status) = status else {
        return Err(StoreError::unknown_run(run_id));
    };
    let status = parse_status(&status)?;
    let duplicate = one(
        conn,
        "SELECT EXISTS (SELECT 1 FROM inbox WHERE run_id = ?1 AND msg_id = ?2)",
        [run_id, msg_id],
        |row| row.get::<_, bool>(0),
    )?
    .unwrap_or(false);
    // A duplicate is recognised before the run's end, as in the memory store: a retried send
    // of a message the run consumed before finishing is not an error.
    if duplicate {
        return Ok(Sent::Duplicate);
    }
    if status.is_terminal() {
        return Err(StoreError::RunFinished {
            run_id: run_id.to_owned(),
            status,
        });
    }
    let cancel_parked = status == RunStatus::Parked && *mail == Mail::Cancel;
    exec(
        conn,
        "INSERT INTO inbox (run_id, msg_id, event) VALUES (?1, ?2, ?3)",
        params![run_id, msg_id, mail.to_stored().to_string()],
    )?;
    let sql = if status == RunStatus::Waiting || cancel_parked {
        concat!(
            "UPDATE runs SET status = 'running', wake_at_ms = NULL, updated_at_ms = ",
            now_ms!(),
            " WHERE run_id = ?1"
        )
    } else {
        concat!(
            "UPDATE runs SET updated_at_ms = ",
            now_ms!(),
            " WHERE run_id = ?1"
        )
    };
    exec(conn, sql, [run_id])?;
    Ok(Sent::Accepted)
}

/// Starts a finished run again: appends `entry` to its journal and makes it `Running` under
/// a new epoch, owned by `owner` when given. Everything recorded for it stays.
pub(super) fn restart(
    conn: &Connection,
    run_id: &str,
    entry: &Value,
    owner: Option<&str>,
) -> Result<Reopened, StoreError> {
    let row = one(
        conn,
        "SELECT status, last_journal_seq, last_event_seq FROM runs WHERE run_id = ?1",
        [run_id],
        |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        },
    )?;
    let Some((status, last_journal_seq, last_event_seq)) = row else {
        return Err(StoreError::unknown_run(run_id));
    };
    let status = parse_status(&status)?;
    if !status.is_terminal() {
        return Err(StoreError::RunActive {
            run_id: run_id.to_owned(),
            status,
        });
    }
    let journal_seq = non_negative(last_journal_seq, "last_journal_seq")?.saturating_add(1);
    let last_event_seq = non_negative(last_event_seq, "last_event_seq")?;
    exec(
        conn,
        "INSERT INTO journal (run_id, seq, entry) VALUES (?1, ?2, ?3)",
        params![run_id, saturating_i64(journal_seq), entry.to_string()],
    )?;
    // The unconsumed inbox rows went at the finish; the consumed ones stay, so that a message
    // the run took before is still recognised as a duplicate.
    let epoch = one(
        conn,
        concat!(
            "UPDATE runs SET status = 'running', result = NULL, error = NULL, wake_at_ms = NULL, \
                             recoveries = 0, epoch = epoch + 1, owner = ?2, \
                             last_journal_seq = ?3, updated_at_ms = ",
            now_ms!(),
            " WHERE run_id = ?1 RETURNING epoch"
        ),
        params![run_id, owner, saturating_i64(journal_seq)],
        |row| row.get::<_, i64>(0),
    )?
    .ok_or_else(|| StoreError::unknown_run(run_id))?;
    let epoch = non_negative(epoch, "epoch")?;
    Ok(Reopened {
        lease: owner.map(|owner| Lease {
            run_id: run_id.to_owned(),
            owner: owner.to_owned(),
            epoch,
        }),
        journal_seq,
        last_event_seq,
    })
}

/// Records the worker's heartbeat (store clock) and the workflows it serves, as JSON.
pub(super) fn heartbeat(
    conn: &Connection,
    worker: &str,
    workflows: &str,
) -> Result<(), StoreError> {
    exec(
        conn,
        concat!(
            "INSERT INTO workers (worker_id, workflows, heartbeat_at_ms) VALUES (?1, ?2, ",
            now_ms!(),
            ") ON CONFLICT (worker_id) DO UPDATE \
             SET workflows = excluded.workflows, heartbeat_at_ms = excluded.heartbeat_at_ms"
        ),
        [worker, workflows],
    )?;
    Ok(())
}

/// Makes a parked run `Running`; false when it was not parked.
pub(super) fn unpark(conn: &Connection, run_id: &str) -> Result<bool, StoreError> {
    let unparked = exec(
        conn,
        concat!(
            "UPDATE runs SET status = 'running', recoveries = 0, error = NULL, updated_at_ms = ",
            now_ms!(),
            " WHERE run_id = ?1 AND status = 'parked'"
        ),
        [run_id],
    )?;
    Ok(unparked > 0)
}

/// Deletes the run and everything recorded for it; false when it did not exist.
pub(super) fn purge(conn: &Connection, run_id: &str) -> Result<bool, StoreError> {
    // Explicit deletes rather than relying on `ON DELETE CASCADE` alone, which needs the
    // `foreign_keys` pragma on every connection that ever touches the file.
    for sql in [
        "DELETE FROM journal WHERE run_id = ?1",
        "DELETE FROM snapshots WHERE run_id = ?1",
        "DELETE FROM inbox WHERE run_id = ?1",
        "DELETE FROM run_events WHERE run_id = ?1",
    ] {
        exec(conn, sql, [run_id])?;
    }
    Ok(exec(conn, "DELETE FROM runs WHERE run_id = ?1", [run_id])? > 0)
}
