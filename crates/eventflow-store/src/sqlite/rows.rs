//! Reading a run's rows (the owner's load and inbox, anyone's events) and decoding them: JSON is
//! TEXT in SQLite, parsed here.

use serde_json::Value;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, check_lease, exists};
use crate::mail::stored_events;
use crate::sql::{self, column, db, saturating_i64, unsigned};
use crate::{EventJson, InboxMessage, Lease, LoadedRun, Mail, RunRecord, StoreError};

impl SqliteStore {
    pub(super) async fn load_run(&self, lease: &Lease) -> Result<LoadedRun, StoreError> {
        // One read transaction, so the snapshot, journal and events are of the same moment.
        let mut tx = self.pool.begin().await.map_err(db)?;
        check_lease(&mut tx, lease).await?;
        let snapshot = sqlx::query("SELECT seq, data FROM snapshots WHERE run_id = ?1")
            .bind(&lease.run_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .map(|row| Ok::<_, StoreError>((unsigned(&row, "seq")?, json_column(&row, "data")?)))
            .transpose()?;
        let after = snapshot.as_ref().map_or(0, |(seq, _)| *seq);
        let journal = sqlx::query(
            "SELECT seq, entry FROM journal WHERE run_id = ?1 AND seq > ?2 ORDER BY seq",
        )
        .bind(&lease.run_id)
        .bind(saturating_i64(after))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let events =
            sqlx::query("SELECT seq, event FROM run_events WHERE run_id = ?1 ORDER BY seq")
                .bind(&lease.run_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(LoadedRun {
            snapshot,
            journal: sequenced(&journal, "entry")?,
            events: stored_events(sequenced(&events, "event")?)?,
        })
    }

    pub(super) async fn unread(&self, lease: &Lease) -> Result<Vec<InboxMessage>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        check_lease(&mut tx, lease).await?;
        let rows = sqlx::query(
            "SELECT id, msg_id, event FROM inbox WHERE run_id = ?1 AND consumed = 0 ORDER BY id",
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
                    mail: Mail::from_stored(json_column(row, "event")?)?,
                })
            })
            .collect()
    }

    pub(super) async fn events_from(
        &self,
        run_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, EventJson)>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        if !exists(&mut tx, run_id).await? {
            return Err(StoreError::unknown_run(run_id));
        }
        let rows = sqlx::query(
            "SELECT seq, event FROM run_events WHERE run_id = ?1 AND seq > ?2 \
             ORDER BY seq LIMIT ?3",
        )
        .bind(run_id)
        .bind(saturating_i64(after))
        .bind(saturating_i64(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        stored_events(sequenced(&rows, "event")?)
    }
}

/// A run record; its result is JSON text.
pub(super) fn run_record(row: &SqliteRow) -> Result<RunRecord, StoreError> {
    let result: Option<String> = column(row, "result")?;
    let result = result.map(|text| parse_json(&text, "result")).transpose()?;
    sql::run_record(row, result)
}

/// `(seq, json)` rows, the JSON text in column `value`.
fn sequenced(rows: &[SqliteRow], value: &str) -> Result<Vec<(u64, Value)>, StoreError> {
    sql::sequenced(rows, |row| json_column(row, value))
}

fn json_column(row: &SqliteRow, name: &str) -> Result<Value, StoreError> {
    parse_json(&column::<String, _>(row, name)?, name)
}

/// Parses JSON kept as text.
fn parse_json(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("`{what}` is not valid JSON: {error}")))
}
