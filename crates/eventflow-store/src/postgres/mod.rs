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
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, Row};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::{
    Claim, ClaimOptions, Commit, CommitEnd, Created, InboxMessage, Lease, LoadedRun, Mail, NewRun,
    Reopened, RunFilter, RunRecord, RunStatus, Sent, Store, StoreError, StoreFuture, WorkflowKey,
    contiguous, event_to_stored, stored_events,
};
use crate::EventJson;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The prefix of notification channels, which end with the schema's name.
const CHANNEL: &str = "eventflow_wakeup";
/// Postgres rejects longer channel names (`NAMEDATALEN - 1`).
const MAX_IDENTIFIER: usize = 63;
/// Postgres rejects longer notification payloads (8000 bytes); longer run ids are not signalled.
const MAX_PAYLOAD: usize = 7999;

/// The database clock in milliseconds since the Unix epoch.
macro_rules! now_ms {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}

/// The columns [`run_record`] reads.
macro_rules! run_columns {
    () => {
        "run_id, workflow, fingerprint, status, owner, epoch, recoveries, idempotency_key, \
         result, error, last_event_seq, created_at_ms, updated_at_ms"
    };
}

/// Claims (or parks) up to `$3` claimable runs matching `$filter`, oldest first, locking them
/// with `$lock`. Parameters: `$1` worker, `$2` lease TTL (ms), `$3` limit, `$4` max recoveries,
/// `$5` parking error, then the filter's.
///
/// The owner's liveness is a subquery, not an outer join: when a candidate was claimed by a
/// concurrent transaction that committed meanwhile, Postgres re-checks the conditions on the new
/// row version before locking it, and re-runs subqueries with the new owner, whereas it would
/// reuse the old null-extended `workers` row of a join and claim the run a second time.
macro_rules! claim_sql {
    ($filter:literal, $lock:literal) => {
        concat!(
            "WITH clock AS MATERIALIZED (SELECT ",
            now_ms!(),
            " AS now),
            candidates AS (
                SELECT r.run_id, (r.status = 'running' AND r.owner IS NOT NULL) AS recovered
                FROM runs r
                CROSS JOIN clock
                WHERE ",
            $filter,
            "   AND ((r.status = 'running'
                      AND (r.owner IS NULL
                           OR NOT EXISTS (SELECT 1 FROM workers w
                               WHERE w.worker_id = r.owner
                                 AND clock.now - w.heartbeat_at_ms <= $2)))
                     OR (r.status = 'waiting' AND r.wake_at_ms <= clock.now))
                ORDER BY r.created_order
                LIMIT $3
                FOR UPDATE OF r ",
            $lock,
            "
            )
            UPDATE runs r SET
                epoch = r.epoch + 1,
                updated_at_ms = clock.now,
                recoveries = r.recoveries + c.recovered::int,
                status = CASE WHEN c.recovered AND r.recoveries >= $4
                    THEN 'parked' ELSE 'running' END,
                owner = CASE WHEN c.recovered AND r.recoveries >= $4
                    THEN NULL ELSE $1::text END,
                error = CASE WHEN c.recovered AND r.recoveries >= $4
                    THEN $5::text ELSE r.error END,
                wake_at_ms = CASE WHEN c.recovered AND r.recoveries >= $4
                    THEN r.wake_at_ms ELSE NULL END
            FROM candidates c, clock
            WHERE r.run_id = c.run_id
            RETURNING r.run_id, r.status, r.epoch, c.recovered, r.created_order"
        )
    };
}

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
            return Err(StoreError::Database(Box::new(sqlx::Error::Configuration(
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
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))?;
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

    /// Notifies other stores, once `conn`'s transaction commits, that `run_id` has work.
    async fn notify(&self, conn: &mut PgConnection, run_id: &str) -> Result<(), StoreError> {
        let payload = format!("{}:{run_id}", self.instance);
        if payload.len() > MAX_PAYLOAD {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(payload)
            .execute(conn)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn create(&self, run: NewRun) -> Result<Created, StoreError> {
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

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
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

    async fn claim_runs(
        &self,
        worker: &str,
        options: &ClaimOptions,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut claims = Vec::new();
        if options.workflows.is_empty() {
            return Ok(claims);
        }
        let names: Vec<&str> = options.workflows.iter().map(|w| w.name.as_str()).collect();
        let fingerprints: Vec<&str> = options
            .workflows
            .iter()
            .map(|w| w.fingerprint.as_str())
            .collect();
        // Parked runs do not count towards the limit: claim again until it is reached or no
        // claimable run is left. Each round starts after the runs judged before, as the memory
        // store judges each run once: a run just claimed by a worker without a heartbeat yet
        // would look orphaned.
        let mut after = i64::MIN;
        while claims.len() < options.limit {
            let want = options.limit - claims.len();
            let rows = claim_query(
                claim_sql!(
                    "EXISTS (SELECT 1 FROM unnest($6::text[], $7::text[]) AS k(name, fingerprint)
                        WHERE k.name = r.workflow AND k.fingerprint = r.fingerprint)
                    AND r.created_order > $8",
                    "SKIP LOCKED"
                ),
                worker,
                options,
                want,
            )
            .bind(&names)
            .bind(&fingerprints)
            .bind(after)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            let found = rows.len();
            let (taken, last) = claimed(worker, rows)?;
            let all_taken = taken.len() == found;
            claims.extend(taken);
            after = last.unwrap_or(after);
            if found < want || all_taken {
                break;
            }
        }
        Ok(claims)
    }

    async fn claim_one(
        &self,
        worker: &str,
        run_id: &str,
        options: &ClaimOptions,
    ) -> Result<Option<Claim>, StoreError> {
        // Waits for a transaction holding the run (its owner committing, a send) rather than
        // skipping it: the run asked for may well be claimable once it ends.
        let rows = claim_query(claim_sql!("r.run_id = $6", ""), worker, options, 1)
            .bind(run_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(claimed(worker, rows)?.0.into_iter().next())
    }

    async fn load_run(&self, lease: &Lease) -> Result<LoadedRun, StoreError> {
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
        .ok_or_else(|| fenced(lease))?;
        let last_journal = seq(&row, "last_journal_seq")?;
        let last_event = seq(&row, "last_event_seq")?;
        let snapshot = sqlx::query("SELECT seq, data FROM snapshots WHERE run_id = $1")
            .bind(&lease.run_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .map(|row| Ok::<_, StoreError>((seq(&row, "seq")?, json(&row, "data")?)))
            .transpose()?;
        let after = snapshot.as_ref().map_or(0, |(seq, _)| *seq);
        let journal = sequenced(
            sqlx::query(
                "SELECT seq, entry AS value FROM journal WHERE run_id = $1 AND seq > $2
                ORDER BY seq",
            )
            .bind(&lease.run_id)
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
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

    async fn unread(&self, lease: &Lease) -> Result<Vec<InboxMessage>, StoreError> {
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
            .ok_or_else(|| fenced(lease))?;
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
                    id: row.try_get("id").map_err(db)?,
                    msg_id: row.try_get("msg_id").map_err(db)?,
                    mail: Mail::from_stored(json(row, "event")?)?,
                })
            })
            .collect()
    }

    async fn write(&self, lease: &Lease, commit: Commit) -> Result<(), StoreError> {
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
        .ok_or_else(|| fenced(lease))?;
        let last_journal = seq(&row, "last_journal_seq")?;
        let last_event = seq(&row, "last_event_seq")?;
        let now: i64 = row.try_get("updated_at_ms").map_err(db)?;
        if !contiguous(&commit.journal, last_journal + 1)
            || !contiguous(&commit.events, last_event + 1)
        {
            return Err(StoreError::Corrupt(format!(
                "run `{run_id}`: a commit does not continue the journal at {} or the events at {}",
                last_journal + 1,
                last_event + 1
            )));
        }
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

    async fn queue(&self, run_id: &str, msg_id: &str, mail: Mail) -> Result<Sent, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Locks the run: a concurrent release waits and then sees this message.
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM runs WHERE run_id = $1 FOR UPDATE")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        let Some(status) = status else {
            return Err(StoreError::UnknownRun {
                run_id: run_id.to_owned(),
            });
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

    async fn events_since(
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
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
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
                return Err(StoreError::UnknownRun {
                    run_id: run_id.to_owned(),
                });
            }
        }
        stored_events(sequenced(rows)?)
    }

    /// Starts a finished run again: appends `entry` to its journal and makes it `Running` under
    /// a new epoch, owned by `owner` when given. Everything recorded for it stays.
    async fn restart(
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
            return Err(StoreError::UnknownRun {
                run_id: run_id.to_owned(),
            });
        };
        let status: String = row.try_get("status").map_err(db)?;
        let status = parse_status(&status)?;
        if !status.is_terminal() {
            return Err(StoreError::RunActive {
                run_id: run_id.to_owned(),
                status,
            });
        }
        let journal_seq = seq(&row, "last_journal_seq")?.saturating_add(1);
        let last_event_seq = seq(&row, "last_event_seq")?;
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
            let workflows = serde_json::to_value(workflows)
                .map_err(|e| StoreError::Corrupt(format!("unserializable workflows: {e}")))?;
            sqlx::query(concat!(
                "INSERT INTO workers (worker_id, workflows, heartbeat_at_ms) VALUES ($1, $2::json, ",
                now_ms!(),
                ") ON CONFLICT (worker_id) DO UPDATE
                SET workflows = excluded.workflows, heartbeat_at_ms = excluded.heartbeat_at_ms"
            ))
            .bind(worker)
            .bind(workflows.to_string())
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

/// The notification channel of `schema`: its name when short enough, else a hash of it.
fn schema_channel(schema: &str) -> String {
    let channel = format!("{CHANNEL}_{schema}");
    if channel.len() <= MAX_IDENTIFIER {
        return channel;
    }
    // FNV-1a: stable across processes and versions, unlike `std`'s hasher.
    let hash = schema
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{CHANNEL}_{hash:016x}")
}

async fn new_listener(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Forwards the run ids notified by other stores to `wakeups`, until aborted. `PgListener`
/// reconnects by itself after most connection losses; on any other error the listener is
/// replaced, retrying with a growing pause while the database is unreachable.
async fn listen(
    mut listener: PgListener,
    pool: PgPool,
    channel: String,
    instance: String,
    wakeups: broadcast::Sender<String>,
) {
    loop {
        match listener.recv().await {
            Ok(notification) => {
                if let Some(run_id) = foreign_run_id(notification.payload(), &instance) {
                    let _ = wakeups.send(run_id.to_owned());
                }
            }
            Err(error) => {
                tracing::warn!(%error, channel = %channel, "eventflow: the Postgres wake-up listener failed; reconnecting");
                let mut pause = Duration::from_millis(250);
                loop {
                    tokio::time::sleep(pause).await;
                    match new_listener(&pool, &channel).await {
                        Ok(fresh) => {
                            listener = fresh;
                            break;
                        }
                        Err(error) => {
                            tracing::warn!(%error, channel = %channel, "eventflow: cannot listen for Postgres wake-ups; retrying");
                            pause = (pause * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
        }
    }
}

/// The run id of a notification `{instance}:{run_id}`, unless it came from this store (which
/// signalled it already). A payload without an instance tag is a bare run id.
fn foreign_run_id<'a>(payload: &'a str, instance: &str) -> Option<&'a str> {
    match payload.split_once(':') {
        Some((from, run_id)) if from.len() == 32 && from.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (from != instance).then_some(run_id)
        }
        _ => Some(payload),
    }
}

/// Binds the parameters common to both claim queries.
fn claim_query<'q>(
    sql: &'q str,
    worker: &'q str,
    options: &ClaimOptions,
    limit: usize,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(worker)
        .bind(millis(options.lease_ttl))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(i64::from(options.max_recoveries))
        .bind(format!(
            "parked after {} recoveries from crashed workers",
            options.max_recoveries
        ))
}

/// The claims among rows returned by a claim query (the others were parked), oldest first, and
/// the creation order of the newest row.
fn claimed(worker: &str, rows: Vec<PgRow>) -> Result<(Vec<Claim>, Option<i64>), StoreError> {
    let mut claims = Vec::with_capacity(rows.len());
    let mut last = None;
    for row in rows {
        let order: i64 = row.try_get("created_order").map_err(db)?;
        last = last.max(Some(order));
        let status: String = row.try_get("status").map_err(db)?;
        if parse_status(&status)? != RunStatus::Running {
            continue;
        }
        let claim = Claim {
            lease: Lease {
                run_id: row.try_get("run_id").map_err(db)?,
                owner: worker.to_owned(),
                epoch: seq(&row, "epoch")?,
            },
            recovered: row.try_get("recovered").map_err(db)?,
        };
        claims.push((order, claim));
    }
    claims.sort_by_key(|(order, _)| *order);
    Ok((claims.into_iter().map(|(_, claim)| claim).collect(), last))
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

/// Reads a [`RunRecord`] from a row of [`run_columns!`].
fn run_record(row: &PgRow) -> Result<RunRecord, StoreError> {
    let status: String = row.try_get("status").map_err(db)?;
    let recoveries: i64 = row.try_get("recoveries").map_err(db)?;
    Ok(RunRecord {
        run_id: row.try_get("run_id").map_err(db)?,
        workflow: WorkflowKey {
            name: row.try_get("workflow").map_err(db)?,
            fingerprint: row.try_get("fingerprint").map_err(db)?,
        },
        status: parse_status(&status)?,
        owner: row.try_get("owner").map_err(db)?,
        epoch: seq(row, "epoch")?,
        recoveries: u32::try_from(recoveries)
            .map_err(|_| StoreError::Corrupt(format!("recoveries {recoveries} out of range")))?,
        idempotency_key: row.try_get("idempotency_key").map_err(db)?,
        result: row.try_get("result").map_err(db)?,
        error: row.try_get("error").map_err(db)?,
        last_event_seq: seq(row, "last_event_seq")?,
        created_at_ms: row.try_get("created_at_ms").map_err(db)?,
        updated_at_ms: row.try_get("updated_at_ms").map_err(db)?,
    })
}

/// Reads `(seq, value)` rows.
fn sequenced(rows: Vec<PgRow>) -> Result<Vec<(u64, Value)>, StoreError> {
    rows.iter()
        .map(|row| Ok((seq(row, "seq")?, json(row, "value")?)))
        .collect()
}

fn json(row: &PgRow, column: &str) -> Result<Value, StoreError> {
    row.try_get(column).map_err(db)
}

/// Reads a non-negative bigint column.
fn seq(row: &PgRow, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column).map_err(db)?;
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {column}: {value}")))
}

fn seq_param(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("sequence {seq} out of range")))
}

/// The lease's epoch as stored; one that cannot be stored cannot be current.
fn epoch_param(lease: &Lease) -> Result<i64, StoreError> {
    i64::try_from(lease.epoch).map_err(|_| fenced(lease))
}

fn parse_status(text: &str) -> Result<RunStatus, StoreError> {
    RunStatus::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown run status `{text}`")))
}

fn fenced(lease: &Lease) -> StoreError {
    StoreError::Fenced {
        run_id: lease.run_id.clone(),
        epoch: lease.epoch,
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Undecodable data is corrupt, and so is data the database refuses (SQLSTATE class 22, "data
/// exception", such as U+0000 in a text column): retrying cannot help. Anything else is the
/// database failing (transient).
fn db(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(refused) = &error
        && refused.code().is_some_and(|code| code.starts_with("22"))
    {
        return StoreError::Corrupt(format!("the database refused the data: {refused}"));
    }
    match error {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(error.to_string()),
        error => StoreError::Database(Box::new(error)),
    }
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;

    /// The database of the Postgres tests; they are `#[ignore]`d, so they run only when asked
    /// for (`--ignored`), and then without a database they fail.
    /// An event message, as any test sends.
    fn mail() -> Mail {
        Mail::event(EventJson {
            name: "e".into(),
            value: json!({}),
        })
    }

    fn database_url() -> String {
        std::env::var("DATABASE_URL")
            .expect("the Postgres tests need DATABASE_URL (see the README)")
    }

    /// A store in a fresh schema of the database of `DATABASE_URL`.
    async fn fresh(name: &str) -> (PostgresStore, String, String) {
        let url = database_url();
        let schema = format!("ef_pg_{name}_{:08x}", fastrand::u32(..));
        let store = PostgresStore::connect_schema(&url, &schema).await.unwrap();
        (store, url, schema)
    }

    async fn drop_schema(url: &str, schema: &str) {
        let mut conn = PgConnection::connect(url).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(&mut conn)
            .await
            .unwrap();
    }

    fn key() -> WorkflowKey {
        WorkflowKey {
            name: "flow".into(),
            fingerprint: "f1".into(),
        }
    }

    fn new_run(run_id: &str, owner: Option<&str>) -> NewRun {
        NewRun {
            run_id: run_id.into(),
            workflow: key(),
            idempotency_key: None,
            start: json!({"start": run_id}),
            owner: owner.map(Into::into),
        }
    }

    /// The backend pids of the store's pooled connections and of its schema's listeners.
    async fn backends(store: &PostgresStore) -> Vec<i32> {
        let mut conns = Vec::new();
        while let Some(conn) = store.pool.try_acquire() {
            conns.push(conn);
        }
        let mut pids = Vec::new();
        for conn in &mut conns {
            pids.push(
                sqlx::query_scalar("SELECT pg_backend_pid()")
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap(),
            );
        }
        // The listeners of every store of the schema.
        let listeners: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN \"' || $1 || '\"'",
        )
        .bind(&store.channel)
        .fetch_all(&mut *conns[0])
        .await
        .unwrap();
        assert!(!listeners.is_empty(), "no listener");
        pids.extend(listeners);
        pids
    }

    async fn next_wakeup(wakeups: &mut broadcast::Receiver<String>) -> String {
        tokio::time::timeout(Duration::from_secs(10), wakeups.recv())
            .await
            .expect("a wake-up within 10 s")
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
    async fn wakeups_cross_stores_and_survive_lost_connections() {
        let (first, url, schema) = fresh("notify").await;
        let second = PostgresStore::connect_schema(&url, &schema).await.unwrap();
        let mut own = first.wakeups();
        let mut other = second.wakeups();
        first.create_run(new_run("r", Some("w"))).await.unwrap();
        // The writer signals itself at once, and its listener does not repeat it.
        assert_eq!(own.try_recv().unwrap(), "r");
        assert_eq!(next_wakeup(&mut other).await, "r");
        second.send("r", "m", mail()).await.unwrap();
        assert_eq!(next_wakeup(&mut own).await, "r");
        assert_eq!(other.try_recv().unwrap(), "r");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(own.try_recv().is_err() && other.try_recv().is_err());

        // Kill every connection of the second store, its listener's included: it recovers.
        let pids = backends(&second).await;
        let mut admin = PgConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid")
            .bind(&pids)
            .execute(&mut admin)
            .await
            .unwrap();
        assert!(second.get_run("r").await.unwrap().is_some());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        loop {
            n += 1;
            first.send("r", &format!("again{n}"), mail()).await.unwrap();
            if let Ok(Ok(run_id)) =
                tokio::time::timeout(Duration::from_millis(500), other.recv()).await
            {
                assert_eq!(run_id, "r");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no wake-up after reconnecting"
            );
        }
        // Dropped stores stop listening.
        let channel = first.channel.clone();
        drop((first, second));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let listening: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN \"' || $1 || '\"'",
            )
            .bind(&channel)
            .fetch_one(&mut admin)
            .await
            .unwrap();
            if listening == 0 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "still listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop_schema(&url, &schema).await;
    }

    #[tokio::test]
    #[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
    async fn bad_data_is_corrupt() {
        let (store, url, schema) = fresh("corrupt").await;
        let Created::New(Some(lease)) = store.create_run(new_run("r", Some("w"))).await.unwrap()
        else {
            panic!("not created");
        };
        sqlx::query("DELETE FROM journal WHERE run_id = 'r'")
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(matches!(
            store.load(&lease).await,
            Err(StoreError::Corrupt(_))
        ));
        sqlx::query("ALTER TABLE runs DROP CONSTRAINT runs_status_check")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE runs SET status = 'bogus'")
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(matches!(
            store.get_run("r").await,
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.send("r", "m", mail()).await,
            Err(StoreError::Corrupt(_))
        ));
        drop(store);
        drop_schema(&url, &schema).await;
    }

    /// A TCP proxy to the database that can cut every connection and refuse new ones.
    struct Proxy {
        url: String,
        down: tokio::sync::watch::Sender<bool>,
        task: JoinHandle<()>,
    }

    impl Proxy {
        async fn start(url: &str) -> Proxy {
            use sqlx::ConnectOptions;
            use tokio::net::{TcpListener, TcpStream};

            let options = PgConnectOptions::from_str(url).unwrap();
            let upstream = format!("{}:{}", options.get_host(), options.get_port());
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut proxied = options.to_url_lossy();
            proxied.set_host(Some("127.0.0.1")).unwrap();
            proxied
                .set_port(Some(listener.local_addr().unwrap().port()))
                .unwrap();
            let (down, watch) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    let mut watch = watch.clone();
                    if *watch.borrow() {
                        continue;
                    }
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&upstream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = watch.wait_for(|down| *down) => {}
                        }
                    });
                }
            });
            Proxy {
                url: proxied.to_string(),
                down,
                task,
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
    async fn recovers_from_a_lost_database() {
        let (direct, url, schema) = fresh("outage").await;
        let proxy = Proxy::start(&url).await;
        let store = PostgresStore::connect_schema(&proxy.url, &schema)
            .await
            .unwrap();
        let mut wakeups = store.wakeups();
        store.create_run(new_run("r", None)).await.unwrap();
        assert_eq!(wakeups.recv().await.unwrap(), "r");

        proxy.down.send_replace(true);
        let failed = store.get_run("r").await.unwrap_err();
        assert!(failed.is_transient(), "{failed:?}");
        let failed = store.send("r", "m0", mail()).await.unwrap_err();
        assert!(failed.is_transient(), "{failed:?}");

        proxy.down.send_replace(false);
        assert!(store.get_run("r").await.unwrap().is_some());
        assert_eq!(store.send("r", "m1", mail()).await.unwrap(), Sent::Accepted);
        assert_eq!(wakeups.recv().await.unwrap(), "r");
        // The listener is back too: another store's notifications arrive again.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        for n in 0.. {
            direct
                .send("r", &format!("again{n}"), mail())
                .await
                .unwrap();
            if let Ok(Ok(run_id)) =
                tokio::time::timeout(Duration::from_millis(500), wakeups.recv()).await
            {
                assert_eq!(run_id, "r");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the listener is not back"
            );
        }
        drop((store, direct));
        proxy.task.abort();
        drop_schema(&url, &schema).await;
    }

    #[tokio::test]
    #[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
    async fn connect_uses_the_default_schema() {
        let url = database_url();
        // The URL picks the default schema, so that the test leaves `public` alone.
        let schema = format!("ef_pg_default_{:08x}", fastrand::u32(..));
        let mut admin = PgConnection::connect(&url).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&mut admin)
            .await
            .unwrap();
        let separator = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
        let store = PostgresStore::connect(&scoped).await.unwrap();
        assert_eq!(store.channel, schema_channel(&schema));
        store.create_run(new_run("r", None)).await.unwrap();
        let runs: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".runs"))
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(runs, 1);
        // Connecting again finds the migrations applied.
        drop(store);
        let store = PostgresStore::connect(&scoped).await.unwrap();
        assert!(store.get_run("r").await.unwrap().is_some());
        drop(store);
        drop_schema(&url, &schema).await;
    }

    #[tokio::test]
    async fn bad_schema_names_are_refused() {
        for schema in ["", "a-b", "a\"b", "x y", &"s".repeat(64)] {
            let refused = PostgresStore::connect_schema("postgres://nowhere", schema).await;
            assert!(refused.is_err(), "{schema:?}");
        }
        assert!(schema_channel(&"s".repeat(63)).len() <= MAX_IDENTIFIER);
        assert_eq!(schema_channel("abc"), "eventflow_wakeup_abc");
    }

    #[test]
    fn payloads() {
        let me = "0123456789abcdef0123456789abcdef";
        let other = "fedcba9876543210fedcba9876543210";
        assert_eq!(foreign_run_id(&format!("{me}:r"), me), None);
        assert_eq!(foreign_run_id(&format!("{other}:a:b"), me), Some("a:b"));
        assert_eq!(foreign_run_id("plain:run", me), Some("plain:run"));
    }
}
