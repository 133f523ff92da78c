//! The SQLite store: one file, the embedded default. Several processes may share the file;
//! SQLite's write lock makes every claim and commit atomic across them.
//!
//! Every write runs in a `BEGIN IMMEDIATE` transaction, which takes the write lock before it reads
//! anything: a claim or a fencing check can never act on a state another process changed between
//! its read and its write (a deferred transaction would, or would fail upgrading its lock).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{Mutex, MutexGuard, broadcast};

use crate::sql::{db, saturating_i64, workflows_json};
use crate::{
    Claim, ClaimOptions, Commit, Created, EventJson, InboxMessage, Lease, LoadedRun, Mail, NewRun,
    Reopened, RunFilter, RunRecord, Sent, Store, StoreError, StoreFuture, WorkflowKey,
};

/// The database's clock, in milliseconds since the Unix epoch: workers' clocks may disagree, the
/// file's is the one all of them share.
macro_rules! now_ms {
    () => {
        "CAST(round(unixepoch('subsec') * 1000) AS INTEGER)"
    };
}

// After the macros they use.
mod claim;
mod commit;
mod rows;
#[cfg(test)]
mod tests;

use rows::run_record;

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
    .bind(saturating_i64(lease.epoch))
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    if owned {
        Ok(())
    } else {
        Err(StoreError::fenced(lease))
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
            let workflows = workflows_json(workflows);
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
