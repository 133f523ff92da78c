//! The Postgres store: a cluster of worker processes sharing one database.
//!
//! Every write of an owner is one transaction that first updates its run under
//! `WHERE run_id = $1 AND owner = $2 AND epoch = $3`: when no row matches, the lease is stale and
//! the transaction is rolled back ([`StoreError::Fenced`]). Claims lock their candidates with
//! `FOR UPDATE SKIP LOCKED` (`claim_run`, after one given run, waits for its lock instead), so
//! concurrent claimers never get the same run. Time is the database's (`clock_timestamp()`),
//! never a worker's.
//!
//! Wake-ups cross processes with `LISTEN/NOTIFY`: the transactions that make a run claimable
//! notify a channel named after the schema, and a background task listening on it forwards the
//! run ids to [`Store::wakeups`]. A store signals its own writes directly, and ignores its own
//! notifications.

use std::str::FromStr;
use std::time::Duration;

use futures::FutureExt;
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::sql::{self, workflows_json};
use crate::{
    Claim, ClaimOptions, Commit, Created, EventJson, InboxMessage, Lease, LoadedRun, Mail, NewRun,
    Reopened, RunFilter, RunRecord, Sent, Store, StoreError, StoreFuture, WorkflowKey,
};
use notify::{listen, new_listener, schema_channel};
use rows::run_record;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The prefix of notification channels, which end with the schema's name.
const CHANNEL: &str = "eventflow_wakeup";
/// Postgres rejects longer channel names (`NAMEDATALEN - 1`).
const MAX_IDENTIFIER: usize = 63;

/// The database clock in milliseconds since the Unix epoch.
macro_rules! now_ms {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}

// After the macros they use.
mod claim;
mod commit;
mod notify;
mod rows;
#[cfg(test)]
mod tests;

/// A [`Store`] in a Postgres database, shared by every worker process of a deployment.
///
/// Dropping it stops its wake-up listener.
pub struct PostgresStore {
    pool: PgPool,
    /// The notification channel of this store's schema.
    channel: String,
    /// Tags this store's notifications, so that its listener skips them.
    instance: String,
    wakeups: broadcast::Sender<String>,
    listener: JoinHandle<()>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/database`), creating or
    /// upgrading the store's tables in the connection's default schema (the first of its
    /// `search_path`), and starts listening for wake-ups of that schema.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        Self::open(url, None).await
    }

    /// Like [`PostgresStore::connect`], but keeps everything (the migrations' bookkeeping
    /// included) in `schema`, created if missing, and listens only to that schema's wake-ups:
    /// several stores can share a database without seeing each other. The name may hold ASCII
    /// letters, digits and underscores (at most 63).
    pub async fn connect_schema(url: &str, schema: &str) -> Result<PostgresStore, StoreError> {
        let valid = !schema.is_empty()
            && schema.len() <= MAX_IDENTIFIER
            && schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(StoreError::Refused(Box::new(sqlx::Error::Configuration(
                format!(
                    "invalid schema name `{schema}`: use ASCII letters, digits and underscores"
                )
                .into(),
            ))));
        }
        Self::open(url, Some(schema)).await
    }

    async fn open(url: &str, schema: Option<&str>) -> Result<PostgresStore, StoreError> {
        let mut options = PgConnectOptions::from_str(url).map_err(db)?;
        if let Some(schema) = schema {
            create_schema(&options, schema).await?;
            options = options.options([("search_path", format!("\"{schema}\""))]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(true)
            .connect_with(options)
            .await
            .map_err(db)?;
        MIGRATOR.run(&pool).await.map_err(sql::migrate_error)?;
        // The schema the migrations just used (the first of the search path).
        let current: Option<String> = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await
            .map_err(db)?;
        let channel = current
            .as_deref()
            .map_or(CHANNEL.to_owned(), schema_channel);
        let listener = new_listener(&pool, &channel).await.map_err(db)?;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let wakeups = broadcast::channel(1024).0;
        let listener = tokio::spawn(listen(
            listener,
            pool.clone(),
            channel.clone(),
            instance.clone(),
            wakeups.clone(),
        ));
        Ok(PostgresStore {
            pool,
            channel,
            instance,
            wakeups,
            listener,
        })
    }

    fn wake(&self, run_id: &str) {
        let _ = self.wakeups.send(run_id.to_owned());
    }

    async fn resume(&self, run_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let unparked = sqlx::query(concat!(
            "UPDATE runs SET status = 'running', recoveries = 0, error = NULL, updated_at_ms = ",
            now_ms!(),
            " WHERE run_id = $1 AND status = 'parked'"
        ))
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected()
            > 0;
        if unparked {
            self.notify(&mut tx, run_id).await?;
        }
        tx.commit().await.map_err(db)?;
        if unparked {
            self.wake(run_id);
        }
        Ok(unparked)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl Store for PostgresStore {
    fn create_run(&self, run: NewRun) -> StoreFuture<'_, Created> {
        self.create(run).boxed()
    }

    fn get_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<RunRecord>> {
        async move {
            sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE run_id = $1"
            ))
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(run_record)
            .transpose()
        }
        .boxed()
    }

    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> StoreFuture<'a, Vec<RunRecord>> {
        self.list(filter).boxed()
    }

    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        workflows: &'a [WorkflowKey],
    ) -> StoreFuture<'a, ()> {
        async move {
            let workflows = workflows_json(workflows);
            sqlx::query(concat!(
                "INSERT INTO workers (worker_id, workflows, heartbeat_at_ms) VALUES ($1, $2::json, ",
                now_ms!(),
                ") ON CONFLICT (worker_id) DO UPDATE
                SET workflows = excluded.workflows, heartbeat_at_ms = excluded.heartbeat_at_ms"
            ))
            .bind(worker)
            .bind(workflows)
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        }
        .boxed()
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        options: &'a ClaimOptions,
    ) -> StoreFuture<'a, Vec<Claim>> {
        self.claim_runs(worker, options).boxed()
    }

    fn claim_run<'a>(
        &'a self,
        worker: &'a str,
        run_id: &'a str,
        options: &'a ClaimOptions,
    ) -> StoreFuture<'a, Option<Claim>> {
        self.claim_one(worker, run_id, options).boxed()
    }

    fn load<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, LoadedRun> {
        self.load_run(lease).boxed()
    }

    fn inbox<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, Vec<InboxMessage>> {
        self.unread(lease).boxed()
    }

    fn commit<'a>(&'a self, lease: &'a Lease, commit: Commit) -> StoreFuture<'a, ()> {
        self.write(lease, commit).boxed()
    }

    fn send<'a>(&'a self, run_id: &'a str, msg_id: &'a str, mail: Mail) -> StoreFuture<'a, Sent> {
        self.queue(run_id, msg_id, mail).boxed()
    }

    fn events_after<'a>(
        &'a self,
        run_id: &'a str,
        after: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(u64, EventJson)>> {
        self.events_since(run_id, after, limit).boxed()
    }

    fn unpark<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool> {
        self.resume(run_id).boxed()
    }

    fn purge<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool> {
        async move {
            // Journal, snapshot, inbox and events go with the run (`ON DELETE CASCADE`).
            let deleted = sqlx::query("DELETE FROM runs WHERE run_id = $1")
                .bind(run_id)
                .execute(&self.pool)
                .await
                .map_err(db)?;
            Ok(deleted.rows_affected() > 0)
        }
        .boxed()
    }

    fn reopen<'a>(
        &'a self,
        run_id: &'a str,
        entry: Value,
        owner: Option<&'a str>,
    ) -> StoreFuture<'a, Reopened> {
        self.restart(run_id, entry, owner).boxed()
    }

    fn wakeups(&self) -> broadcast::Receiver<String> {
        self.wakeups.subscribe()
    }
}

/// Creates `schema` if missing, on a connection of its own.
async fn create_schema(options: &PgConnectOptions, schema: &str) -> Result<(), StoreError> {
    let mut conn = PgConnection::connect_with(options).await.map_err(db)?;
    let created = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .execute(&mut conn)
        .await;
    if let Err(error) = created {
        // Two processes creating it at once: the loser fails, but the schema is there.
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&mut conn)
                .await
                .map_err(db)?;
        if !exists {
            return Err(db(error));
        }
    }
    conn.close().await.map_err(db)
}

/// A sequence to bind; one that cannot be stored is refused.
fn seq_param(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("sequence {seq} out of range")))
}

/// The lease's epoch as stored; one that cannot be stored cannot be current.
fn epoch_param(lease: &Lease) -> Result<i64, StoreError> {
    i64::try_from(lease.epoch).map_err(|_| StoreError::fenced(lease))
}

/// Data the database refuses (SQLSTATE class 22, "data exception", such as U+0000 in a text
/// column) is corrupt, as is undecodable data: retrying cannot help. Anything else is the
/// database failing (transient).
fn db(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(refused) = &error
        && refused.code().is_some_and(|code| code.starts_with("22"))
    {
        return StoreError::Corrupt(format!("the database refused the data: {refused}"));
    }
    sql::db(error)
}
