//! The writes of a run's rows besides claims: creating a run, an owner's commit, a send to its
//! inbox and reopening it, each one transaction that notifies other stores when it makes work.

use serde_json::Value;
use sqlx::PgConnection;

use super::{PostgresStore, db, epoch_param, seq_param};
use crate::mail::event_to_stored;
use crate::sql::{column, parse_status, unsigned};
use crate::{
    Commit, CommitEnd, Created, Lease, Mail, NewRun, Reopened, RunStatus, Sent, StoreError, millis,
};

impl PostgresStore {
    pub(super) async fn create(&self, run: NewRun) -> Result<Created, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let inserted = sqlx::query(concat!(
            "INSERT INTO runs (run_id, workflow, fingerprint, status, owner, epoch, recoveries,
                idempotency_key, last_journal_seq, last_event_seq, created_at_ms, updated_at_ms)
            SELECT $1, $2, $3, 'running', $4, 1, 0, $5, 1, 0, now, now
            FROM (SELECT ",
            now_ms!(),
            " AS now) AS clock
            ON CONFLICT DO NOTHING
            RETURNING run_id"
        ))
        .bind(&run.run_id)
        .bind(&run.workflow.name)
        .bind(&run.workflow.fingerprint)
        .bind(&run.owner)
        .bind(&run.idempotency_key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if inserted.is_none() {
            // The id or the idempotency key is taken; the key wins, as in the memory store.
            drop(tx);
            if let Some(key) = &run.idempotency_key {
                let existing: Option<String> =
                    sqlx::query_scalar("SELECT run_id FROM runs WHERE idempotency_key = $1")
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db)?;
                if let Some(existing) = existing {
                    return Ok(Created::Existing(existing));
                }
            }
            return Err(StoreError::DuplicateRun { run_id: run.run_id });
        }
        sqlx::query("INSERT INTO journal (run_id, seq, entry) VALUES ($1, 1, $2::json)")
            .bind(&run.run_id)
            .bind(run.start.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        self.notify(&mut tx, &run.run_id).await?;
        tx.commit().await.map_err(db)?;
        self.wake(&run.run_id);
        Ok(Created::New(run.owner.map(|owner| Lease {
            run_id: run.run_id,
            owner,
            epoch: 1,
        })))
    }

    pub(super) async fn write(&self, lease: &Lease, commit: Commit) -> Result<(), StoreError> {
        let epoch = epoch_param(lease)?;
        let run_id = lease.run_id.as_str();
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Locks the run: a concurrent `send` waits, so a release sees every message sent before.
        let row = sqlx::query(concat!(
            "UPDATE runs SET updated_at_ms = ",
            now_ms!(),
            " WHERE run_id = $1 AND owner = $2 AND epoch = $3
            RETURNING last_journal_seq, last_event_seq, updated_at_ms"
        ))
        .bind(run_id)
        .bind(&lease.owner)
        .bind(epoch)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::fenced(lease))?;
        let last_journal = unsigned(&row, "last_journal_seq")?;
        let last_event = unsigned(&row, "last_event_seq")?;
        let now: i64 = column(&row, "updated_at_ms")?;
        commit.check_continues(run_id, last_journal, last_event)?;
        let last_journal = commit.journal.last().map_or(last_journal, |(seq, _)| *seq);
        let last_event = commit.events.last().map_or(last_event, |(seq, _)| *seq);
        append(
            &mut tx,
            "INSERT INTO journal (run_id, seq, entry)
            SELECT $1, seq, value::json FROM unnest($2::bigint[], $3::text[]) AS t(seq, value)",
            run_id,
            commit.journal,
        )
        .await?;
        if !commit.consumed.is_empty() {
            sqlx::query("UPDATE inbox SET consumed = TRUE WHERE run_id = $1 AND id = ANY($2)")
                .bind(run_id)
                .bind(&commit.consumed)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        append(
            &mut tx,
            "INSERT INTO run_events (run_id, seq, event)
            SELECT $1, seq, value::json FROM unnest($2::bigint[], $3::text[]) AS t(seq, value)",
            run_id,
            commit
                .events
                .iter()
                .map(|(seq, event)| (*seq, event_to_stored(event)))
                .collect(),
        )
        .await?;
        if let Some((seq, data)) = commit.snapshot {
            let seq = seq_param(seq)?;
            sqlx::query(
                "INSERT INTO snapshots (run_id, seq, data) VALUES ($1, $2, $3::json)
                ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, data = excluded.data",
            )
            .bind(run_id)
            .bind(seq)
            .bind(data.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            sqlx::query("DELETE FROM journal WHERE run_id = $1 AND seq <= $2")
                .bind(run_id)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let last_journal = seq_param(last_journal)?;
        let last_event = seq_param(last_event)?;
        let mut wake = false;
        match commit.end {
            None => {
                sqlx::query(
                    "UPDATE runs SET last_journal_seq = $2, last_event_seq = $3 WHERE run_id = $1",
                )
                .bind(run_id)
                .bind(last_journal)
                .bind(last_event)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            Some(CommitEnd::Finish {
                status,
                result,
                error,
            }) => {
                sqlx::query(
                    "UPDATE runs SET last_journal_seq = $2, last_event_seq = $3, status = $4,
                        result = $5::json, error = $6, owner = NULL, epoch = epoch + 1,
                        wake_at_ms = NULL
                    WHERE run_id = $1",
                )
                .bind(run_id)
                .bind(last_journal)
                .bind(last_event)
                .bind(status.as_str())
                .bind(result.map(|result| result.to_string()))
                .bind(error)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                sqlx::query("DELETE FROM inbox WHERE run_id = $1 AND NOT consumed")
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            Some(CommitEnd::Release { idle, wake_after }) => {
                let wake_at = wake_after.map(|after| now.saturating_add(millis(after)));
                let status: String = sqlx::query_scalar(
                    "WITH unread AS (
                        SELECT EXISTS (SELECT 1 FROM inbox WHERE run_id = $1 AND NOT consumed)
                            AS any
                    )
                    UPDATE runs SET last_journal_seq = $2, last_event_seq = $3, owner = NULL,
                        epoch = epoch + 1,
                        status = CASE WHEN $4 AND NOT unread.any THEN 'waiting' ELSE 'running' END,
                        wake_at_ms = CASE WHEN $4 AND NOT unread.any THEN $5 ELSE NULL END
                    FROM unread
                    WHERE run_id = $1
                    RETURNING status",
                )
                .bind(run_id)
                .bind(last_journal)
                .bind(last_event)
                .bind(idle)
                .bind(wake_at)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
                wake = status == RunStatus::Running.as_str();
                if wake {
                    self.notify(&mut tx, run_id).await?;
                }
            }
        }
        tx.commit().await.map_err(db)?;
        if wake {
            self.wake(run_id);
        }
        Ok(())
    }

    pub(super) async fn queue(
        &self,
        run_id: &str,
        msg_id: &str,
        mail: Mail,
    ) -> Result<Sent, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Locks the run: a concurrent release waits and then sees this message.
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM runs WHERE run_id = $1 FOR UPDATE")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        let Some(status) = status else {
            return Err(StoreError::unknown_run(run_id));
        };
        let status = parse_status(&status)?;
        if status.is_terminal() {
            // A retry of a message the run took is a duplicate; anything else is too late.
            let duplicate: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM inbox WHERE run_id = $1 AND msg_id = $2)",
            )
            .bind(run_id)
            .bind(msg_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            return if duplicate {
                Ok(Sent::Duplicate)
            } else {
                Err(StoreError::RunFinished {
                    run_id: run_id.to_owned(),
                    status,
                })
            };
        }
        let cancel_parked = status == RunStatus::Parked && mail == Mail::Cancel;
        let inserted = sqlx::query(
            "INSERT INTO inbox (run_id, msg_id, event) VALUES ($1, $2, $3::json)
            ON CONFLICT (run_id, msg_id) DO NOTHING
            RETURNING id",
        )
        .bind(run_id)
        .bind(msg_id)
        .bind(mail.to_stored().to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if inserted.is_none() {
            return Ok(Sent::Duplicate);
        }
        let runnable = status == RunStatus::Waiting || cancel_parked;
        sqlx::query(concat!(
            "UPDATE runs SET updated_at_ms = ",
            now_ms!(),
            ",
                status = CASE WHEN $2 THEN 'running' ELSE status END,
                wake_at_ms = CASE WHEN $2 THEN NULL ELSE wake_at_ms END
            WHERE run_id = $1"
        ))
        .bind(run_id)
        .bind(runnable)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        self.notify(&mut tx, run_id).await?;
        tx.commit().await.map_err(db)?;
        self.wake(run_id);
        Ok(Sent::Accepted)
    }

    /// Starts a finished run again: appends `entry` to its journal and makes it `Running` under
    /// a new epoch, owned by `owner` when given. Everything recorded for it stays.
    pub(super) async fn restart(
        &self,
        run_id: &str,
        entry: Value,
        owner: Option<&str>,
    ) -> Result<Reopened, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Locks the run: a concurrent send or second reopen waits and then sees it running (claims
        // skip it until this commits).
        let row = sqlx::query(
            "SELECT status, last_journal_seq, last_event_seq FROM runs WHERE run_id = $1
            FOR UPDATE",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            return Err(StoreError::unknown_run(run_id));
        };
        let status: String = column(&row, "status")?;
        let status = parse_status(&status)?;
        if !status.is_terminal() {
            return Err(StoreError::RunActive {
                run_id: run_id.to_owned(),
                status,
            });
        }
        let journal_seq = unsigned(&row, "last_journal_seq")?.saturating_add(1);
        let last_event_seq = unsigned(&row, "last_event_seq")?;
        let journal_param = seq_param(journal_seq)?;
        sqlx::query("INSERT INTO journal (run_id, seq, entry) VALUES ($1, $2, $3::json)")
            .bind(run_id)
            .bind(journal_param)
            .bind(entry.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // The unconsumed inbox rows went at the finish; the consumed ones stay, so that a message
        // the run took before is still recognised as a duplicate.
        let epoch: i64 = sqlx::query_scalar(concat!(
            "UPDATE runs SET status = 'running', result = NULL, error = NULL, wake_at_ms = NULL,
                recoveries = 0, epoch = epoch + 1, owner = $2, last_journal_seq = $3,
                updated_at_ms = ",
            now_ms!(),
            " WHERE run_id = $1 RETURNING epoch"
        ))
        .bind(run_id)
        .bind(owner)
        .bind(journal_param)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let epoch = u64::try_from(epoch)
            .map_err(|_| StoreError::Corrupt(format!("negative epoch: {epoch}")))?;
        self.notify(&mut tx, run_id).await?;
        tx.commit().await.map_err(db)?;
        self.wake(run_id);
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
}

/// Appends sequenced values with `sql` (`$1` run id, `$2` sequences, `$3` values).
async fn append(
    conn: &mut PgConnection,
    sql: &'static str,
    run_id: &str,
    items: Vec<(u64, Value)>,
) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut seqs = Vec::with_capacity(items.len());
    let mut values = Vec::with_capacity(items.len());
    for (seq, value) in items {
        seqs.push(seq_param(seq)?);
        values.push(value.to_string());
    }
    sqlx::query(sql)
        .bind(run_id)
        .bind(seqs)
        .bind(values)
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}
