//! The writes of a run's rows besides claims: creating a run, an owner's commit, a send to its
//! inbox and reopening it. Each is one `BEGIN IMMEDIATE` transaction.

use serde_json::Value;

use super::{SqliteStore, exec, exists};
use crate::mail::event_to_stored;
use crate::sql::{column, db, non_negative, parse_status, saturating_i64, unsigned};
use crate::{
    Commit, CommitEnd, Created, Lease, Mail, NewRun, Reopened, RunStatus, Sent, StoreError, millis,
};

impl SqliteStore {
    pub(super) async fn create(&self, run: NewRun) -> Result<Created, StoreError> {
        let mut w = self.write().await?;
        if let Some(key) = &run.idempotency_key {
            let existing = sqlx::query_scalar("SELECT run_id FROM runs WHERE idempotency_key = ?1")
                .bind(key)
                .fetch_optional(&mut *w.tx)
                .await
                .map_err(db)?;
            if let Some(existing) = existing {
                return Ok(Created::Existing(existing));
            }
        }
        if exists(&mut w.tx, &run.run_id).await? {
            return Err(StoreError::DuplicateRun { run_id: run.run_id });
        }
        let insert = sqlx::query(concat!(
            "INSERT INTO runs (run_id, workflow, fingerprint, status, owner, epoch, recoveries, \
                               idempotency_key, last_journal_seq, last_event_seq, \
                               created_at_ms, updated_at_ms) \
             VALUES (?1, ?2, ?3, 'running', ?4, 1, 0, ?5, 1, 0, ",
            now_ms!(),
            ", ",
            now_ms!(),
            ")"
        ))
        .bind(&run.run_id)
        .bind(&run.workflow.name)
        .bind(&run.workflow.fingerprint)
        .bind(&run.owner)
        .bind(&run.idempotency_key);
        exec(&mut w.tx, insert).await?;
        exec(
            &mut w.tx,
            sqlx::query("INSERT INTO journal (run_id, seq, entry) VALUES (?1, 1, ?2)")
                .bind(&run.run_id)
                .bind(run.start.to_string()),
        )
        .await?;
        w.tx.commit().await.map_err(db)?;
        self.wake(&run.run_id);
        Ok(Created::New(run.owner.map(|owner| Lease {
            run_id: run.run_id,
            owner,
            epoch: 1,
        })))
    }

    /// Writes the commit; true when the run was released claimable (worth a wake-up).
    pub(super) async fn write_commit(
        &self,
        lease: &Lease,
        commit: Commit,
    ) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        let run_id = lease.run_id.as_str();
        // The fencing check and the first write are one statement under the write lock; a stale
        // lease matches no row, and dropping the transaction rolls back to nothing written.
        let fenced = sqlx::query(concat!(
            "UPDATE runs SET updated_at_ms = ",
            now_ms!(),
            " WHERE run_id = ?1 AND owner = ?2 AND epoch = ?3 \
             RETURNING last_journal_seq, last_event_seq, updated_at_ms"
        ))
        .bind(run_id)
        .bind(&lease.owner)
        .bind(saturating_i64(lease.epoch))
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(db)?;
        let Some(row) = fenced else {
            return Err(StoreError::fenced(lease));
        };
        let last_journal = unsigned(&row, "last_journal_seq")?;
        let last_event = unsigned(&row, "last_event_seq")?;
        let now: i64 = column(&row, "updated_at_ms")?;
        commit.check_continues(run_id, last_journal, last_event)?;
        for (seq, entry) in &commit.journal {
            exec(
                &mut w.tx,
                sqlx::query("INSERT INTO journal (run_id, seq, entry) VALUES (?1, ?2, ?3)")
                    .bind(run_id)
                    .bind(saturating_i64(*seq))
                    .bind(entry.to_string()),
            )
            .await?;
        }
        if !commit.consumed.is_empty() {
            exec(
                &mut w.tx,
                sqlx::query(
                    "UPDATE inbox SET consumed = 1 \
                     WHERE run_id = ?1 AND id IN (SELECT value FROM json_each(?2))",
                )
                .bind(run_id)
                .bind(Value::from(commit.consumed.clone()).to_string()),
            )
            .await?;
        }
        for (seq, event) in &commit.events {
            exec(
                &mut w.tx,
                sqlx::query("INSERT INTO run_events (run_id, seq, event) VALUES (?1, ?2, ?3)")
                    .bind(run_id)
                    .bind(saturating_i64(*seq))
                    .bind(event_to_stored(event).to_string()),
            )
            .await?;
        }
        if let Some((seq, data)) = &commit.snapshot {
            exec(
                &mut w.tx,
                sqlx::query(
                    "INSERT INTO snapshots (run_id, seq, data) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, data = excluded.data",
                )
                .bind(run_id)
                .bind(saturating_i64(*seq))
                .bind(data.to_string()),
            )
            .await?;
            exec(
                &mut w.tx,
                sqlx::query("DELETE FROM journal WHERE run_id = ?1 AND seq <= ?2")
                    .bind(run_id)
                    .bind(saturating_i64(*seq)),
            )
            .await?;
        }
        let last_journal = commit.journal.last().map_or(last_journal, |(seq, _)| *seq);
        let last_event = commit.events.last().map_or(last_event, |(seq, _)| *seq);
        exec(
            &mut w.tx,
            sqlx::query(
                "UPDATE runs SET last_journal_seq = ?2, last_event_seq = ?3 WHERE run_id = ?1",
            )
            .bind(run_id)
            .bind(saturating_i64(last_journal))
            .bind(saturating_i64(last_event)),
        )
        .await?;
        let mut wake = false;
        match commit.end {
            None => {}
            Some(CommitEnd::Finish {
                status,
                result,
                error,
            }) => {
                // Consumed rows stay, so that a late duplicate of a message is still recognised.
                exec(
                    &mut w.tx,
                    sqlx::query("DELETE FROM inbox WHERE run_id = ?1 AND consumed = 0")
                        .bind(run_id),
                )
                .await?;
                exec(
                    &mut w.tx,
                    sqlx::query(
                        "UPDATE runs SET status = ?2, result = ?3, error = ?4, owner = NULL, \
                                         epoch = epoch + 1, wake_at_ms = NULL \
                         WHERE run_id = ?1",
                    )
                    .bind(run_id)
                    .bind(status.as_str())
                    .bind(result.map(|result| result.to_string()))
                    .bind(error),
                )
                .await?;
            }
            Some(CommitEnd::Release { idle, wake_after }) => {
                let unread: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM inbox WHERE run_id = ?1 AND consumed = 0)",
                )
                .bind(run_id)
                .fetch_one(&mut *w.tx)
                .await
                .map_err(db)?;
                let (status, wake_at) = if idle && !unread {
                    let wake_at = wake_after.map(|after| now.saturating_add(millis(after)));
                    (RunStatus::Waiting, wake_at)
                } else {
                    wake = true;
                    (RunStatus::Running, None)
                };
                let release = sqlx::query(
                    "UPDATE runs SET status = ?2, wake_at_ms = ?3, owner = NULL, \
                                     epoch = epoch + 1 \
                     WHERE run_id = ?1",
                );
                let release = release.bind(run_id).bind(status.as_str()).bind(wake_at);
                exec(&mut w.tx, release).await?;
            }
        }
        w.tx.commit().await.map_err(db)?;
        Ok(wake)
    }

    pub(super) async fn queue(
        &self,
        run_id: &str,
        msg_id: &str,
        mail: Mail,
    ) -> Result<Sent, StoreError> {
        let mut w = self.write().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM runs WHERE run_id = ?1")
                .bind(run_id)
                .fetch_optional(&mut *w.tx)
                .await
                .map_err(db)?;
        let Some(status) = status else {
            return Err(StoreError::unknown_run(run_id));
        };
        let status = parse_status(&status)?;
        let duplicate: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM inbox WHERE run_id = ?1 AND msg_id = ?2)",
        )
        .bind(run_id)
        .bind(msg_id)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(db)?;
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
        let cancel_parked = status == RunStatus::Parked && mail == Mail::Cancel;
        exec(
            &mut w.tx,
            sqlx::query("INSERT INTO inbox (run_id, msg_id, event) VALUES (?1, ?2, ?3)")
                .bind(run_id)
                .bind(msg_id)
                .bind(mail.to_stored().to_string()),
        )
        .await?;
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
        exec(&mut w.tx, sqlx::query(sql).bind(run_id)).await?;
        w.tx.commit().await.map_err(db)?;
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
        let mut w = self.write().await?;
        let row = sqlx::query(
            "SELECT status, last_journal_seq, last_event_seq FROM runs WHERE run_id = ?1",
        )
        .bind(run_id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            return Err(StoreError::unknown_run(run_id));
        };
        let status = parse_status(&column::<String, _>(&row, "status")?)?;
        if !status.is_terminal() {
            return Err(StoreError::RunActive {
                run_id: run_id.to_owned(),
                status,
            });
        }
        let journal_seq = unsigned(&row, "last_journal_seq")?.saturating_add(1);
        let last_event_seq = unsigned(&row, "last_event_seq")?;
        exec(
            &mut w.tx,
            sqlx::query("INSERT INTO journal (run_id, seq, entry) VALUES (?1, ?2, ?3)")
                .bind(run_id)
                .bind(saturating_i64(journal_seq))
                .bind(entry.to_string()),
        )
        .await?;
        // The unconsumed inbox rows went at the finish; the consumed ones stay, so that a message
        // the run took before is still recognised as a duplicate.
        let epoch: i64 = sqlx::query_scalar(concat!(
            "UPDATE runs SET status = 'running', result = NULL, error = NULL, wake_at_ms = NULL, \
                             recoveries = 0, epoch = epoch + 1, owner = ?2, \
                             last_journal_seq = ?3, updated_at_ms = ",
            now_ms!(),
            " WHERE run_id = ?1 RETURNING epoch"
        ))
        .bind(run_id)
        .bind(owner)
        .bind(saturating_i64(journal_seq))
        .fetch_one(&mut *w.tx)
        .await
        .map_err(db)?;
        w.tx.commit().await.map_err(db)?;
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
}
