//! Reading a run's rows (its record, the owner's load and inbox, anyone's events) on a reader
//! connection, and decoding them: JSON is TEXT in SQLite, parsed here.

use rusqlite::{Connection, Row, params};
use serde_json::Value;

use super::query::{all, one};
use super::writes::exists;
use crate::mail::stored_events;
use crate::sql::{non_negative, parse_status, saturating_i64};
use crate::{
    EventJson, InboxMessage, Lease, LoadedRun, Mail, RunFilter, RunRecord, StoreError, WorkflowKey,
};

/// The run's record.
pub(super) fn run(conn: &Connection, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
    one(
        conn,
        concat!("SELECT ", run_columns!(), " FROM runs WHERE run_id = ?1"),
        [run_id],
        RunRow::read,
    )?
    .map(RunRow::decode)
    .transpose()
}

/// The runs matching `filter`, oldest first.
pub(super) fn runs(conn: &Connection, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
    let statuses = Value::from_iter(filter.status.iter().map(|s| s.as_str())).to_string();
    let workflows = Value::from_iter(filter.workflow.iter().cloned()).to_string();
    all(
        conn,
        concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs \
             WHERE (json_array_length(?1) = 0 OR status IN (SELECT value FROM json_each(?1))) \
               AND (json_array_length(?2) = 0 \
                    OR workflow IN (SELECT value FROM json_each(?2))) \
             ORDER BY created_at_ms, rowid"
        ),
        [statuses, workflows],
        RunRow::read,
    )?
    .into_iter()
    .map(RunRow::decode)
    .collect()
}

/// Fails with `Fenced` unless `lease` is the run's current lease.
fn check_lease(conn: &Connection, lease: &Lease) -> Result<(), StoreError> {
    let owned = one(
        conn,
        "SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = ?1 AND owner = ?2 AND epoch = ?3)",
        params![lease.run_id, lease.owner, saturating_i64(lease.epoch)],
        |row| row.get::<_, bool>(0),
    )?;
    if owned == Some(true) {
        Ok(())
    } else {
        Err(StoreError::fenced(lease))
    }
}

/// The owner's load; in a read transaction, so the snapshot, journal and events are of the
/// same moment.
pub(super) fn load(conn: &Connection, lease: &Lease) -> Result<LoadedRun, StoreError> {
    check_lease(conn, lease)?;
    let snapshot = one(
        conn,
        "SELECT seq, data FROM snapshots WHERE run_id = ?1",
        [&lease.run_id],
        sequenced_text,
    )?
    .map(|(seq, data)| decode_sequenced(seq, &data, "data"))
    .transpose()?;
    let after = snapshot.as_ref().map_or(0, |(seq, _)| *seq);
    let journal = all(
        conn,
        "SELECT seq, entry FROM journal WHERE run_id = ?1 AND seq > ?2 ORDER BY seq",
        params![lease.run_id, saturating_i64(after)],
        sequenced_text,
    )?;
    let events = all(
        conn,
        "SELECT seq, event FROM run_events WHERE run_id = ?1 ORDER BY seq",
        [&lease.run_id],
        sequenced_text,
    )?;
    Ok(LoadedRun {
        snapshot,
        journal: decode_all(journal, "entry")?,
        events: stored_events(decode_all(events, "event")?)?,
    })
}

/// The owner's unconsumed inbox messages, oldest first.
pub(super) fn unread(conn: &Connection, lease: &Lease) -> Result<Vec<InboxMessage>, StoreError> {
    check_lease(conn, lease)?;
    let rows = all(
        conn,
        "SELECT id, msg_id, event FROM inbox WHERE run_id = ?1 AND consumed = 0 ORDER BY id",
        [&lease.run_id],
        |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        },
    )?;
    rows.into_iter()
        .map(|(id, msg_id, event)| {
            Ok(InboxMessage {
                id,
                msg_id,
                mail: Mail::from_stored(parse_json(&event, "event")?)?,
            })
        })
        .collect()
}

/// The run's events after `after`, at most `limit`.
pub(super) fn events(
    conn: &Connection,
    run_id: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, EventJson)>, StoreError> {
    if !exists(conn, run_id)? {
        return Err(StoreError::unknown_run(run_id));
    }
    let rows = all(
        conn,
        "SELECT seq, event FROM run_events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        params![run_id, saturating_i64(after), saturating_i64(limit)],
        sequenced_text,
    )?;
    stored_events(decode_all(rows, "event")?)
}

/// A row of [`run_columns!`], as stored.
struct RunRow {
    run_id: String,
    workflow: String,
    fingerprint: String,
    status: String,
    owner: Option<String>,
    epoch: i64,
    recoveries: i64,
    idempotency_key: Option<String>,
    result: Option<String>,
    error: Option<String>,
    last_event_seq: i64,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl RunRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            run_id: row.get("run_id")?,
            workflow: row.get("workflow")?,
            fingerprint: row.get("fingerprint")?,
            status: row.get("status")?,
            owner: row.get("owner")?,
            epoch: row.get("epoch")?,
            recoveries: row.get("recoveries")?,
            idempotency_key: row.get("idempotency_key")?,
            result: row.get("result")?,
            error: row.get("error")?,
            last_event_seq: row.get("last_event_seq")?,
            created_at_ms: row.get("created_at_ms")?,
            updated_at_ms: row.get("updated_at_ms")?,
        })
    }

    /// The record; numbers, statuses and JSON this version did not write are `Corrupt`.
    fn decode(self) -> Result<RunRecord, StoreError> {
        let recoveries = self.recoveries;
        Ok(RunRecord {
            run_id: self.run_id,
            workflow: WorkflowKey {
                name: self.workflow,
                fingerprint: self.fingerprint,
            },
            status: parse_status(&self.status)?,
            owner: self.owner,
            epoch: non_negative(self.epoch, "epoch")?,
            recoveries: u32::try_from(recoveries).map_err(|_| {
                StoreError::Corrupt(format!("`recoveries` out of range: {recoveries}"))
            })?,
            idempotency_key: self.idempotency_key,
            result: self
                .result
                .map(|text| parse_json(&text, "result"))
                .transpose()?,
            error: self.error,
            last_event_seq: non_negative(self.last_event_seq, "last_event_seq")?,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

/// A `(seq, JSON text)` row.
fn sequenced_text(row: &Row<'_>) -> rusqlite::Result<(i64, String)> {
    Ok((row.get(0)?, row.get(1)?))
}

fn decode_sequenced(seq: i64, text: &str, what: &str) -> Result<(u64, Value), StoreError> {
    Ok((non_negative(seq, "seq")?, parse_json(text, what)?))
}

fn decode_all(rows: Vec<(i64, String)>, what: &str) -> Result<Vec<(u64, Value)>, StoreError> {
    rows.iter()
        .map(|(seq, text)| decode_sequenced(*seq, text, what))
        .collect()
}

/// Parses JSON kept as text.
fn parse_json(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("`{what}` is not valid JSON: {error}")))
}
