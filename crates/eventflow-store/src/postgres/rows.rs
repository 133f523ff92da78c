//! Reading a run's rows (runs, the owner's load and inbox, anyone's events) and decoding them:
//! JSON columns decode to values directly.

use serde_json::Value;
use sqlx::postgres::PgRow;

use super::{PostgresStore, db, epoch_param};
use crate::mail::stored_events;
use crate::sql::{self, column, saturating_i64, unsigned};
use crate::{
    EventJson, InboxMessage, Lease, LoadedRun, Mail, RunFilter, RunRecord, StoreError, contiguous,
};

impl PostgresStore {
    pub(super) async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let statuses: Vec<&str> = filter.status.iter().map(|s| s.as_str()).collect();
        let rows = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs
            WHERE (cardinality($1::text[]) = 0 OR status = ANY($1))
              AND (cardinality($2::text[]) = 0 OR workflow = ANY($2))
            ORDER BY created_order"
        ))
        .bind(statuses)
        .bind(&filter.workflow)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(run_record).collect()
    }

    pub(super) async fn load_run(&self, lease: &Lease) -> Result<LoadedRun, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db)?;
        let row = sqlx::query(
            "SELECT last_journal_seq, last_event_seq FROM runs
            WHERE run_id = $1 AND owner = $2 AND epoch = $3",
        )
        .bind(&lease.run_id)
        .bind(&lease.owner)
        .bind(epoch_param(lease)?)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::fenced(lease))?;
        let last_journal = unsigned(&row, "last_journal_seq")?;
        let last_event = unsigned(&row, "last_event_seq")?;
        let snapshot = sqlx::query("SELECT seq, data FROM snapshots WHERE run_id = $1")
            .bind(&lease.run_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .map(|row| Ok::<_, StoreError>((unsigned(&row, "seq")?, column(&row, "data")?)))
            .transpose()?;
        let after = snapshot.as_ref().map_or(0, |(seq, _)| *seq);
        let journal = sequenced(
            sqlx::query(
                "SELECT seq, entry AS value FROM journal WHERE run_id = $1 AND seq > $2
                ORDER BY seq",
            )
            .bind(&lease.run_id)
            .bind(saturating_i64(after))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?,
        )?;
        let events = stored_events(sequenced(
            sqlx::query(
                "SELECT seq, event AS value FROM run_events WHERE run_id = $1 ORDER BY seq",
            )
            .bind(&lease.run_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?,
        )?)?;
        tx.commit().await.map_err(db)?;
        let journal_end = journal.last().map_or(after, |(seq, _)| *seq);
        if !contiguous(&journal, after + 1) || journal_end != after.max(last_journal) {
            return Err(StoreError::Corrupt(format!(
                "run `{}`: the journal after {after} does not run up to {last_journal}",
                lease.run_id
            )));
        }
        if !contiguous(&events, 1) || events.len() as u64 != last_event {
            return Err(StoreError::Corrupt(format!(
                "run `{}`: its events do not run from 1 to {last_event}",
                lease.run_id
            )));
        }
        Ok(LoadedRun {
            snapshot,
            journal,
            events,
        })
    }

    pub(super) async fn unread(&self, lease: &Lease) -> Result<Vec<InboxMessage>, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db)?;
        sqlx::query("SELECT 1 FROM runs WHERE run_id = $1 AND owner = $2 AND epoch = $3")
            .bind(&lease.run_id)
            .bind(&lease.owner)
            .bind(epoch_param(lease)?)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::fenced(lease))?;
        let rows = sqlx::query(
            "SELECT id, msg_id, event FROM inbox WHERE run_id = $1 AND NOT consumed ORDER BY id",
        )
        .bind(&lease.run_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(InboxMessage {
                    id: column(row, "id")?,
                    msg_id: column(row, "msg_id")?,
                    mail: Mail::from_stored(column(row, "event")?)?,
                })
            })
            .collect()
    }

    pub(super) async fn events_since(
        &self,
        run_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, EventJson)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, event AS value FROM run_events WHERE run_id = $1 AND seq > $2
            ORDER BY seq LIMIT $3",
        )
        .bind(run_id)
        .bind(saturating_i64(after))
        .bind(saturating_i64(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        if rows.is_empty() {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = $1)")
                    .bind(run_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db)?;
            if !exists {
                return Err(StoreError::unknown_run(run_id));
            }
        }
        stored_events(sequenced(rows)?)
    }
}

/// A run record; its result is a JSON column.
pub(super) fn run_record(row: &PgRow) -> Result<RunRecord, StoreError> {
    sql::run_record(row, column(row, "result")?)
}

/// Reads `(seq, value)` rows.
fn sequenced(rows: Vec<PgRow>) -> Result<Vec<(u64, Value)>, StoreError> {
    sql::sequenced(&rows, |row| column(row, "value"))
}
