//! The SQLite store: one file, the embedded default. Several processes may share the file;
//! SQLite's write lock makes every claim and commit atomic across them.
//!
//! Every write runs in a `BEGIN IMMEDIATE` transaction, which takes the write lock before it reads
//! anything: a claim or a fencing check can never act on a state another process changed between
//! its read and its write (a deferred transaction would, or would fail upgrading its lock).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::{Mutex, MutexGuard, broadcast};

use super::{
    Claim, ClaimOptions, Commit, CommitEnd, Created, InboxMessage, Lease, LoadedRun, Mail, NewRun,
    Reopened, RunFilter, RunRecord, RunStatus, Sent, Store, StoreError, StoreFuture, WorkflowKey,
    contiguous, event_to_stored, stored_events,
};
use crate::EventJson;

/// The database's clock, in milliseconds since the Unix epoch: workers' clocks may disagree, the
/// file's is the one all of them share.
macro_rules! now_ms {
    () => {
        "CAST(round(unixepoch('subsec') * 1000) AS INTEGER)"
    };
}

/// The columns [`run_record`] reads.
macro_rules! run_columns {
    () => {
        "run_id, workflow, fingerprint, status, owner, epoch, recoveries, idempotency_key, \
         result, error, last_event_seq, created_at_ms, updated_at_ms"
    };
}

/// Runs a worker may claim, as [`Candidate`] rows: `Running` without a live owner, or `Waiting`
/// past their wake-up time. `?1` is now, `?2` the lease TTL in milliseconds.
macro_rules! claimable {
    () => {
        "SELECT r.run_id, (r.status = 'running' AND r.owner IS NOT NULL) AS recovered, \
                r.recoveries, r.created_at_ms, r.rowid AS rid \
         FROM runs r LEFT JOIN workers w ON w.worker_id = r.owner \
         WHERE ((r.status = 'running' AND (r.owner IS NULL OR w.heartbeat_at_ms IS NULL \
                                           OR ?1 - w.heartbeat_at_ms > ?2)) \
             OR (r.status = 'waiting' AND r.wake_at_ms <= ?1))"
    };
}

/// How a [`SqliteStore`] opens its file.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Use `synchronous=NORMAL` instead of `FULL`: commits no longer wait for the disk, which is
    /// much faster, but a power loss or OS crash may lose the last commits (a crash of the process
    /// alone loses nothing). `create_run` then no longer guarantees durability when it returns.
    /// Off by default.
    pub synchronous_normal: bool,
    /// How long a write waits for another process holding the write lock before failing with a
    /// (transient) [`StoreError::Database`]. 10 seconds by default.
    pub busy_timeout: Duration,
    /// The most connections this process opens to the file. 8 by default.
    pub max_connections: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_normal: false,
            busy_timeout: Duration::from_secs(10),
            max_connections: 8,
        }
    }
}

/// A [`Store`] in a SQLite file (feature `sqlite`).
///
/// Processes sharing the file claim and commit safely; [`Store::wakeups`] only signals work
/// found in this process, so workers of other processes find it by polling.
pub struct SqliteStore {
    pool: SqlitePool,
    /// Writers of this process queue here rather than on SQLite's busy handler, which polls with
    /// sleeps; other processes still wait on the busy handler.
    writer: Mutex<()>,
    wakeups: broadcast::Sender<String>,
    path: PathBuf,
    options: SqliteOptions,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// How often [`SqliteStore::open_with`] tries: processes opening a new file at once race to
/// switch it to WAL (a lock the busy timeout does not wait for) and to migrate it.
const OPEN_ATTEMPTS: u32 = 8;

/// A write transaction with this process's writer turn.
struct WriteTx<'a> {
    tx: Transaction<'static, Sqlite>,
    _turn: MutexGuard<'a, ()>,
}

impl SqliteStore {
    /// Opens the store in the file at `path`, creating it if missing, with the default
    /// `SqliteOptions` (`synchronous=FULL`: a returned write survives a power loss).
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens the store in the file at `path` with `options`, creating the file if missing and
    /// bringing its schema up to date.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if options.synchronous_normal {
                SqliteSynchronous::Normal
            } else {
                SqliteSynchronous::Full
            })
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true);
        let mut attempt = 0;
        let pool = loop {
            attempt += 1;
            match Self::connect(connect.clone(), options.max_connections).await {
                Ok(pool) => break pool,
                Err(error) if attempt >= OPEN_ATTEMPTS => return Err(error),
                Err(_) => {
                    let jitter = fastrand::u64(0..50);
                    tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt) + jitter))
                        .await;
                }
            }
        };
        Ok(SqliteStore {
            pool,
            writer: Mutex::new(()),
            wakeups: broadcast::channel(1024).0,
            path,
            options,
        })
    }

    async fn connect(
        connect: SqliteConnectOptions,
        max_connections: u32,
    ) -> Result<SqlitePool, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(connect)
            .await
            .map_err(db)?;
        let migrated = sqlx::migrate!("./migrations/sqlite").run(&pool).await;
        if let Err(error) = migrated {
            pool.close().await;
            return Err(StoreError::Database(Box::new(error)));
        }
        Ok(pool)
    }

    async fn write(&self) -> Result<WriteTx<'_>, StoreError> {
        let turn = self.writer.lock().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        Ok(WriteTx { tx, _turn: turn })
    }

    fn wake(&self, run_id: &str) {
        let _ = self.wakeups.send(run_id.to_owned());
    }

    async fn create(&self, run: NewRun) -> Result<Created, StoreError> {
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

    async fn claim_many(
        &self,
        worker: &str,
        options: &ClaimOptions,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut claims = Vec::new();
        if options.limit == 0 || options.workflows.is_empty() {
            return Ok(claims);
        }
        let workflows = Value::from_iter(
            options
                .workflows
                .iter()
                .map(|key| json!({ "name": key.name, "fingerprint": key.fingerprint })),
        )
        .to_string();
        let mut w = self.write().await?;
        let now = now(&mut w.tx).await?;
        // Candidates come in pages after a cursor so that each is judged once, as the memory store
        // does, even when a run this worker just claimed still looks claimable (no heartbeat yet).
        let mut cursor = (i64::MIN, i64::MIN);
        while claims.len() < options.limit {
            let page = options.limit - claims.len();
            let rows = sqlx::query(concat!(
                claimable!(),
                // The status term repeats the index's condition, so `runs_claim` can be used.
                " AND r.status IN ('running', 'waiting') \
                  AND (r.workflow, r.fingerprint) IN \
                    (SELECT json_extract(value, '$.name'), json_extract(value, '$.fingerprint') \
                     FROM json_each(?3)) \
                  AND (r.created_at_ms, r.rowid) > (?4, ?5) \
                  ORDER BY r.created_at_ms, r.rowid LIMIT ?6"
            ))
            .bind(now)
            .bind(millis(options.lease_ttl))
            .bind(&workflows)
            .bind(cursor.0)
            .bind(cursor.1)
            .bind(i64::try_from(page).unwrap_or(i64::MAX))
            .fetch_all(&mut *w.tx)
            .await
            .map_err(db)?;
            for row in &rows {
                let candidate = Candidate::read(row)?;
                cursor = (candidate.created_at_ms, candidate.rowid);
                if let Some(claim) = take(&mut w.tx, candidate, worker, options, now).await? {
                    claims.push(claim);
                }
            }
            if rows.len() < page {
                break;
            }
        }
        w.tx.commit().await.map_err(db)?;
        Ok(claims)
    }

    async fn claim_one(
        &self,
        worker: &str,
        run_id: &str,
        options: &ClaimOptions,
    ) -> Result<Option<Claim>, StoreError> {
        let mut w = self.write().await?;
        let now = now(&mut w.tx).await?;
        let row = sqlx::query(concat!(claimable!(), " AND r.run_id = ?3"))
            .bind(now)
            .bind(millis(options.lease_ttl))
            .bind(run_id)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(db)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let claim = take(&mut w.tx, Candidate::read(&row)?, worker, options, now).await?;
        w.tx.commit().await.map_err(db)?;
        Ok(claim)
    }

    async fn load_run(&self, lease: &Lease) -> Result<LoadedRun, StoreError> {
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
        .bind(sql_int(after))
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

    async fn unread(&self, lease: &Lease) -> Result<Vec<InboxMessage>, StoreError> {
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

    /// Writes the commit; true when the run was released claimable (worth a wake-up).
    async fn write_commit(&self, lease: &Lease, commit: Commit) -> Result<bool, StoreError> {
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
        .bind(sql_int(lease.epoch))
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(db)?;
        let Some(row) = fenced else {
            return Err(StoreError::Fenced {
                run_id: lease.run_id.clone(),
                epoch: lease.epoch,
            });
        };
        let last_journal = unsigned(&row, "last_journal_seq")?;
        let last_event = unsigned(&row, "last_event_seq")?;
        let now: i64 = column(&row, "updated_at_ms")?;
        if !contiguous(&commit.journal, last_journal + 1)
            || !contiguous(&commit.events, last_event + 1)
        {
            return Err(StoreError::Corrupt(format!(
                "run `{run_id}`: a commit does not continue the journal at {} or the events at {}",
                last_journal + 1,
                last_event + 1
            )));
        }
        for (seq, entry) in &commit.journal {
            exec(
                &mut w.tx,
                sqlx::query("INSERT INTO journal (run_id, seq, entry) VALUES (?1, ?2, ?3)")
                    .bind(run_id)
                    .bind(sql_int(*seq))
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
                    .bind(sql_int(*seq))
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
                .bind(sql_int(*seq))
                .bind(data.to_string()),
            )
            .await?;
            exec(
                &mut w.tx,
                sqlx::query("DELETE FROM journal WHERE run_id = ?1 AND seq <= ?2")
                    .bind(run_id)
                    .bind(sql_int(*seq)),
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
            .bind(sql_int(last_journal))
            .bind(sql_int(last_event)),
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

    async fn queue(&self, run_id: &str, msg_id: &str, mail: Mail) -> Result<Sent, StoreError> {
        let mut w = self.write().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM runs WHERE run_id = ?1")
                .bind(run_id)
                .fetch_optional(&mut *w.tx)
                .await
                .map_err(db)?;
        let Some(status) = status else {
            return Err(unknown(run_id));
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

    async fn events_from(
        &self,
        run_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, EventJson)>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        if !exists(&mut tx, run_id).await? {
            return Err(unknown(run_id));
        }
        let rows = sqlx::query(
            "SELECT seq, event FROM run_events WHERE run_id = ?1 AND seq > ?2 \
             ORDER BY seq LIMIT ?3",
        )
        .bind(run_id)
        .bind(sql_int(after))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        stored_events(sequenced(&rows, "event")?)
    }

    /// Starts a finished run again: appends `entry` to its journal and makes it `Running` under
    /// a new epoch, owned by `owner` when given. Everything recorded for it stays.
    async fn restart(
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
            return Err(unknown(run_id));
        };
        let status = parse_status(&column::<String>(&row, "status")?)?;
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
                .bind(sql_int(journal_seq))
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
        .bind(sql_int(journal_seq))
        .fetch_one(&mut *w.tx)
        .await
        .map_err(db)?;
        w.tx.commit().await.map_err(db)?;
        let epoch = stored_u64(epoch, "epoch")?;
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

    async fn delete(&self, run_id: &str) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        // Explicit deletes rather than relying on `ON DELETE CASCADE` alone, which needs the
        // `foreign_keys` pragma on every connection that ever touches the file.
        for sql in [
            "DELETE FROM journal WHERE run_id = ?1",
            "DELETE FROM snapshots WHERE run_id = ?1",
            "DELETE FROM inbox WHERE run_id = ?1",
            "DELETE FROM run_events WHERE run_id = ?1",
        ] {
            exec(&mut w.tx, sqlx::query(sql).bind(run_id)).await?;
        }
        let deleted = exec(
            &mut w.tx,
            sqlx::query("DELETE FROM runs WHERE run_id = ?1").bind(run_id),
        )
        .await?;
        w.tx.commit().await.map_err(db)?;
        Ok(deleted > 0)
    }
}

type Query<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Runs a statement of a transaction; the number of rows it changed.
async fn exec(tx: &mut Transaction<'static, Sqlite>, query: Query<'_>) -> Result<u64, StoreError> {
    Ok(query.execute(&mut **tx).await.map_err(db)?.rows_affected())
}

/// A claimable run, as [`claimable!`] selects it.
struct Candidate {
    run_id: String,
    recovered: bool,
    recoveries: i64,
    created_at_ms: i64,
    rowid: i64,
}

impl Candidate {
    fn read(row: &SqliteRow) -> Result<Candidate, StoreError> {
        Ok(Candidate {
            run_id: column(row, "run_id")?,
            recovered: column::<i64>(row, "recovered")? != 0,
            recoveries: column(row, "recoveries")?,
            created_at_ms: column(row, "created_at_ms")?,
            rowid: column(row, "rid")?,
        })
    }
}

/// Claims a candidate for `worker`, or parks it when it has been recovered too often.
async fn take(
    tx: &mut Transaction<'static, Sqlite>,
    candidate: Candidate,
    worker: &str,
    options: &ClaimOptions,
    now: i64,
) -> Result<Option<Claim>, StoreError> {
    let recovered = candidate.recovered;
    if recovered && candidate.recoveries + 1 > i64::from(options.max_recoveries) {
        exec(
            tx,
            sqlx::query(
                "UPDATE runs SET status = 'parked', owner = NULL, epoch = epoch + 1, \
                                 recoveries = recoveries + 1, error = ?2, updated_at_ms = ?3 \
                 WHERE run_id = ?1",
            )
            .bind(&candidate.run_id)
            .bind(format!(
                "parked after {} recoveries from crashed workers",
                options.max_recoveries
            ))
            .bind(now),
        )
        .await?;
        return Ok(None);
    }
    let epoch: i64 = sqlx::query_scalar(
        "UPDATE runs SET status = 'running', owner = ?2, epoch = epoch + 1, \
                         recoveries = recoveries + ?3, wake_at_ms = NULL, updated_at_ms = ?4 \
         WHERE run_id = ?1 RETURNING epoch",
    )
    .bind(&candidate.run_id)
    .bind(worker)
    .bind(i64::from(recovered))
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    Ok(Some(Claim {
        lease: Lease {
            run_id: candidate.run_id,
            owner: worker.to_owned(),
            epoch: stored_u64(epoch, "epoch")?,
        },
        recovered,
    }))
}

async fn now(tx: &mut Transaction<'static, Sqlite>) -> Result<i64, StoreError> {
    sqlx::query_scalar(concat!("SELECT ", now_ms!()))
        .fetch_one(&mut **tx)
        .await
        .map_err(db)
}

async fn exists(tx: &mut Transaction<'static, Sqlite>, run_id: &str) -> Result<bool, StoreError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = ?1)")
        .bind(run_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)
}

/// Fails with `Fenced` unless `lease` is the run's current lease.
async fn check_lease(
    tx: &mut Transaction<'static, Sqlite>,
    lease: &Lease,
) -> Result<(), StoreError> {
    let owned: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = ?1 AND owner = ?2 AND epoch = ?3)",
    )
    .bind(&lease.run_id)
    .bind(&lease.owner)
    .bind(sql_int(lease.epoch))
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    if owned {
        Ok(())
    } else {
        Err(StoreError::Fenced {
            run_id: lease.run_id.clone(),
            epoch: lease.epoch,
        })
    }
}

fn run_record(row: &SqliteRow) -> Result<RunRecord, StoreError> {
    let result: Option<String> = column(row, "result")?;
    Ok(RunRecord {
        run_id: column(row, "run_id")?,
        workflow: WorkflowKey {
            name: column(row, "workflow")?,
            fingerprint: column(row, "fingerprint")?,
        },
        status: parse_status(&column::<String>(row, "status")?)?,
        owner: column(row, "owner")?,
        epoch: unsigned(row, "epoch")?,
        recoveries: {
            let n: i64 = column(row, "recoveries")?;
            u32::try_from(n)
                .map_err(|_| StoreError::Corrupt(format!("`recoveries` out of range: {n}")))?
        },
        idempotency_key: column(row, "idempotency_key")?,
        result: result.map(|text| parse_json(&text, "result")).transpose()?,
        error: column(row, "error")?,
        last_event_seq: unsigned(row, "last_event_seq")?,
        created_at_ms: column(row, "created_at_ms")?,
        updated_at_ms: column(row, "updated_at_ms")?,
    })
}

/// `(seq, json)` rows, the JSON in column `value`.
fn sequenced(rows: &[SqliteRow], value: &str) -> Result<Vec<(u64, Value)>, StoreError> {
    rows.iter()
        .map(|row| Ok((unsigned(row, "seq")?, json_column(row, value)?)))
        .collect()
}

fn column<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(name).map_err(db)
}

fn unsigned(row: &SqliteRow, name: &str) -> Result<u64, StoreError> {
    stored_u64(column(row, name)?, name)
}

fn stored_u64(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("`{what}` is negative: {n}")))
}

fn json_column(row: &SqliteRow, name: &str) -> Result<Value, StoreError> {
    parse_json(&column::<String>(row, name)?, name)
}

fn parse_json(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("`{what}` is not valid JSON: {error}")))
}

fn parse_status(text: &str) -> Result<RunStatus, StoreError> {
    RunStatus::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown run status `{text}`")))
}

/// Sequences and epochs beyond `i64::MAX` cannot be stored; saturating makes them fail the
/// fencing and contiguity checks instead of wrapping into valid-looking numbers.
fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn unknown(run_id: &str) -> StoreError {
    StoreError::UnknownRun {
        run_id: run_id.to_owned(),
    }
}

/// Values that do not decode are data this version did not write; anything else is the
/// database failing, which may pass.
fn db(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(error.to_string()),
        error => StoreError::Database(Box::new(error)),
    }
}

impl Store for SqliteStore {
    fn create_run(&self, run: NewRun) -> StoreFuture<'_, Created> {
        Box::pin(self.create(run))
    }

    fn get_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<RunRecord>> {
        Box::pin(async move {
            sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE run_id = ?1"
            ))
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(run_record)
            .transpose()
        })
    }

    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> StoreFuture<'a, Vec<RunRecord>> {
        Box::pin(async move {
            let statuses = Value::from_iter(filter.status.iter().map(|s| s.as_str())).to_string();
            let workflows = Value::from_iter(filter.workflow.iter().cloned()).to_string();
            let rows = sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs \
                 WHERE (json_array_length(?1) = 0 OR status IN (SELECT value FROM json_each(?1))) \
                   AND (json_array_length(?2) = 0 \
                        OR workflow IN (SELECT value FROM json_each(?2))) \
                 ORDER BY created_at_ms, rowid"
            ))
            .bind(statuses)
            .bind(workflows)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter().map(run_record).collect()
        })
    }

    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        workflows: &'a [WorkflowKey],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let workflows = Value::from_iter(
                workflows
                    .iter()
                    .map(|key| json!({ "name": key.name, "fingerprint": key.fingerprint })),
            )
            .to_string();
            let mut w = self.write().await?;
            exec(
                &mut w.tx,
                sqlx::query(concat!(
                    "INSERT INTO workers (worker_id, workflows, heartbeat_at_ms) VALUES (?1, ?2, ",
                    now_ms!(),
                    ") ON CONFLICT (worker_id) DO UPDATE \
                     SET workflows = excluded.workflows, heartbeat_at_ms = excluded.heartbeat_at_ms"
                ))
                .bind(worker)
                .bind(workflows),
            )
            .await?;
            w.tx.commit().await.map_err(db)
        })
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        options: &'a ClaimOptions,
    ) -> StoreFuture<'a, Vec<Claim>> {
        Box::pin(self.claim_many(worker, options))
    }

    fn claim_run<'a>(
        &'a self,
        worker: &'a str,
        run_id: &'a str,
        options: &'a ClaimOptions,
    ) -> StoreFuture<'a, Option<Claim>> {
        Box::pin(self.claim_one(worker, run_id, options))
    }

    fn load<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, LoadedRun> {
        Box::pin(self.load_run(lease))
    }

    fn inbox<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, Vec<InboxMessage>> {
        Box::pin(self.unread(lease))
    }

    fn commit<'a>(&'a self, lease: &'a Lease, commit: Commit) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if self.write_commit(lease, commit).await? {
                self.wake(&lease.run_id);
            }
            Ok(())
        })
    }

    fn send<'a>(&'a self, run_id: &'a str, msg_id: &'a str, mail: Mail) -> StoreFuture<'a, Sent> {
        Box::pin(self.queue(run_id, msg_id, mail))
    }

    fn events_after<'a>(
        &'a self,
        run_id: &'a str,
        after: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(u64, EventJson)>> {
        Box::pin(self.events_from(run_id, after, limit))
    }

    fn unpark<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut w = self.write().await?;
            let unpark = sqlx::query(concat!(
                "UPDATE runs SET status = 'running', recoveries = 0, error = NULL, \
                                 updated_at_ms = ",
                now_ms!(),
                " WHERE run_id = ?1 AND status = 'parked'"
            ));
            let unparked = exec(&mut w.tx, unpark.bind(run_id)).await? > 0;
            w.tx.commit().await.map_err(db)?;
            if unparked {
                self.wake(run_id);
            }
            Ok(unparked)
        })
    }

    fn purge<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.delete(run_id))
    }

    fn reopen<'a>(
        &'a self,
        run_id: &'a str,
        entry: Value,
        owner: Option<&'a str>,
    ) -> StoreFuture<'a, Reopened> {
        Box::pin(async move {
            let reopened = self.restart(run_id, entry, owner).await?;
            self.wake(run_id);
            Ok(reopened)
        })
    }

    fn wakeups(&self) -> broadcast::Receiver<String> {
        self.wakeups.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;

    fn key() -> WorkflowKey {
        WorkflowKey {
            name: "flow".into(),
            fingerprint: "f1".into(),
        }
    }

    fn options() -> ClaimOptions {
        ClaimOptions {
            workflows: vec![key()],
            limit: 10,
            lease_ttl: Duration::from_secs(30),
            max_recoveries: 2,
        }
    }

    fn new_run(run_id: &str) -> NewRun {
        NewRun {
            run_id: run_id.into(),
            workflow: key(),
            idempotency_key: None,
            start: json!({ "type": "start", "value": run_id }),
            owner: None,
        }
    }

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("runs.db")).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn corrupt_rows_are_errors_not_panics() {
        let (_dir, store) = store().await;
        store.create_run(new_run("r1")).await.unwrap();
        sqlx::query("UPDATE runs SET result = 'not json' WHERE run_id = 'r1'")
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(matches!(
            store.get_run("r1").await,
            Err(StoreError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        {
            let store = SqliteStore::open_with(
                &path,
                SqliteOptions {
                    synchronous_normal: true,
                    ..SqliteOptions::default()
                },
            )
            .await
            .unwrap();
            store.create_run(new_run("r1")).await.unwrap();
            store.pool.close().await;
        }
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.get_run("r1").await.unwrap().is_some());
        assert!(format!("{store:?}").contains("runs.db"));
    }

    /// Promise 1: by default a write returns only once it is on disk (`synchronous=FULL`, 2);
    /// `synchronous_normal` opts into `NORMAL` (1).
    #[tokio::test]
    async fn writes_wait_for_the_disk_unless_asked_not_to() {
        let (dir, store) = store().await;
        let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(level, 2, "FULL by default");
        let normal = SqliteStore::open_with(
            dir.path().join("normal.db"),
            SqliteOptions {
                synchronous_normal: true,
                ..SqliteOptions::default()
            },
        )
        .await
        .unwrap();
        let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&normal.pool)
            .await
            .unwrap();
        assert_eq!(level, 1, "NORMAL when asked for");
    }

    /// Processes starting together on a new file race to switch it to WAL and to migrate it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_opens_of_a_new_file_all_succeed() {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("runs.db");
            let opens = (0..4).map(|_| SqliteStore::open(&path));
            for store in futures::future::join_all(opens).await {
                store.unwrap();
            }
        }
    }

    /// Two stores on one file stand for two processes: their claims must never overlap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn stores_sharing_a_file_never_claim_the_same_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        let (a, b) = tokio::join!(SqliteStore::open(&path), SqliteStore::open(&path));
        let stores = [Arc::new(a.unwrap()), Arc::new(b.unwrap())];
        const RUNS: usize = 60;
        for n in 0..RUNS {
            stores[n % 2]
                .create_run(new_run(&format!("r{n}")))
                .await
                .unwrap();
        }
        let mut tasks = Vec::new();
        for (i, store) in stores.iter().enumerate() {
            for j in 0..3 {
                let store = Arc::clone(store);
                let worker = format!("w{i}{j}");
                tasks.push(tokio::spawn(async move {
                    store.heartbeat(&worker, &[key()]).await.unwrap();
                    let options = ClaimOptions {
                        limit: 3,
                        ..options()
                    };
                    let mut won = Vec::new();
                    loop {
                        let claims = store.claim(&worker, &options).await.unwrap();
                        if claims.is_empty() {
                            break won;
                        }
                        won.extend(claims.into_iter().map(|c| c.lease.run_id));
                    }
                }));
            }
        }
        let mut seen = HashSet::new();
        for task in tasks {
            for run_id in task.await.unwrap() {
                assert!(seen.insert(run_id.clone()), "{run_id} was claimed twice");
            }
        }
        assert_eq!(seen.len(), RUNS);
        for record in stores[0].list_runs(&RunFilter::default()).await.unwrap() {
            assert_eq!(record.epoch, 2, "{record:?}");
        }
    }

    /// Set in the child processes of `processes_sharing_a_file_never_claim_the_same_run`.
    const CHILD_ENV: &str = "EVENTFLOW_SQLITE_TEST_CHILD";

    /// Real processes this time (this test binary, run again as a claimer): SQLite's locks
    /// between processes are file locks, not the ones between connections of one process.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_sharing_a_file_never_claim_the_same_run() {
        if let Ok(path) = std::env::var(CHILD_ENV) {
            let store = SqliteStore::open(&path).await.unwrap();
            let worker = format!("p{}", std::process::id());
            store.heartbeat(&worker, &[key()]).await.unwrap();
            let options = ClaimOptions {
                limit: 2,
                ..options()
            };
            loop {
                let claims = store.claim(&worker, &options).await.unwrap();
                if claims.is_empty() {
                    return;
                }
                for claim in claims {
                    println!("CLAIMED {}", claim.lease.run_id);
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        let store = SqliteStore::open(&path).await.unwrap();
        const RUNS: usize = 150;
        for n in 0..RUNS {
            store.create_run(new_run(&format!("r{n}"))).await.unwrap();
        }
        let exe = std::env::current_exe().unwrap();
        let children = (0..3).map(|_| {
            tokio::process::Command::new(&exe)
                .args([
                    "--exact",
                    "sqlite::tests::processes_sharing_a_file_never_claim_the_same_run",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &path)
                .output()
        });
        let mut seen = HashSet::new();
        let mut per_child = Vec::new();
        for output in futures::future::join_all(children).await {
            let output = output.unwrap();
            assert!(output.status.success(), "{output:?}");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let claimed: Vec<_> = stdout
                .lines()
                // The harness's "test ... " may share the first line.
                .filter_map(|line| line.split_once("CLAIMED "))
                .map(|(_, run_id)| run_id.to_owned())
                .collect();
            per_child.push(claimed.len());
            for run_id in claimed {
                assert!(seen.insert(run_id.clone()), "{run_id} was claimed twice");
            }
        }
        assert_eq!(seen.len(), RUNS, "claims per process: {per_child:?}");
    }
}
