//! # eventflow-store
//!
//! Where eventflow's durable runs live: the [`Store`] trait, the types of its protocol, and its
//! backends — [`MemoryStore`] (one process, the semantic reference), `SqliteStore` (a file, the
//! embedded default; feature `sqlite`) and `PostgresStore` (a cluster of processes; feature
//! `postgres`). The engine (`eventflow`, which re-exports this crate as `eventflow::store`)
//! drives runs over any `Arc<dyn Store>`; a third-party backend implements the trait and proves
//! it with the conformance suite of the `testkit` module (feature `testkit`), which
//! this crate's backends pass too. The crate is meant to change rarely, so that backends can be
//! built on it.
//!
//! The store knows nothing of reducers or of event types: journal entries and snapshots are JSON
//! values it keeps in order, published events are [`EventJson`] (a name and fields), and the
//! inbox holds [`Mail`] (an event, maybe for one step, or a cancel request). What it guarantees
//! is *who may write*: every run has an owner and an epoch that grows on every claim and
//! release, and a [`Store::commit`] under a stale [`Lease`] fails with [`StoreError::Fenced`] and
//! changes nothing. Time (heartbeat age, wake-up times) is judged by the store's clock — the
//! database's, for SQL backends — never a worker's.
//!
//! ```
//! use eventflow_store::{
//!     Commit, CommitEnd, Created, MemoryStore, NewRun, RunStatus, Store, StoreError, WorkflowKey,
//! };
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), StoreError> {
//! let store = MemoryStore::new();
//! // A run created with an owner comes with its lease (epoch 1).
//! let created = store
//!     .create_run(NewRun {
//!         run_id: "run-1".into(),
//!         workflow: WorkflowKey { name: "greeter".into(), fingerprint: "v1".into() },
//!         idempotency_key: None,
//!         start: json!({"type": "start"}),
//!         owner: Some("worker-a".into()),
//!     })
//!     .await?;
//! let Created::New(Some(lease)) = created else { unreachable!("a new run with an owner") };
//!
//! // Under its lease, the owner appends to the journal and finishes the run in one commit.
//! let commit = Commit {
//!     journal: vec![(2, json!({"tick": "done"}))],
//!     end: Some(CommitEnd::Finish {
//!         status: RunStatus::Completed,
//!         result: Some(json!({"type": "StopEvent", "value": "hello"})),
//!         error: None,
//!     }),
//!     ..Commit::default()
//! };
//! store.commit(&lease, commit.clone()).await?;
//! assert_eq!(store.get_run("run-1").await?.unwrap().status, RunStatus::Completed);
//!
//! // Finishing ended the lease: a second commit under it is fenced and writes nothing.
//! assert!(matches!(store.commit(&lease, commit).await, Err(StoreError::Fenced { .. })));
//! # Ok(())
//! # }
//! ```
//!
//! Every backend keeps the same logical schema:
//!
//! | table | holds |
//! |---|---|
//! | `runs` | one row per run: workflow, fingerprint, status, owner and ownership epoch, recoveries, wake-up time, result, error, idempotency key, last journal and event sequence |
//! | `journal` | the ticks of each run, by per-run sequence (opaque JSON to the store) |
//! | `snapshots` | the latest snapshot of each run and the journal sequence it covers |
//! | `inbox` | events sent to a run from outside, unique by message id, consumed once |
//! | `run_events` | what a run published, by per-run sequence: what readers stream |
//! | `workers` | live workers, their heartbeats and the workflows they serve |

// After axum-core's: a crate others build on documents everything, hides nothing it exports
// by accident, and keeps to the idioms.
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms,
    future_incompatible,
    nonstandard_style,
    clippy::all,
    clippy::dbg_macro,
    clippy::todo,
    clippy::await_holding_lock,
    clippy::needless_borrow,
    clippy::inefficient_to_string,
    clippy::unnested_or_patterns,
    clippy::option_option,
    clippy::unused_self
)]

mod mail;
mod memory;
// Declared before the backends, whose modules use its macros.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[macro_use]
mod sql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use mail::{EventJson, Mail};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqliteStore};

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Opens the store a URL names: `memory`, `sqlite:PATH` (or `sqlite://PATH`; the file is
/// created if missing), or `postgres://...` / `postgresql://...`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url == "memory" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    #[cfg(feature = "sqlite")]
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        return Ok(Arc::new(SqliteStore::open(path).await?));
    }
    #[cfg(feature = "postgres")]
    if is_postgres_url(url) {
        return Ok(Arc::new(PostgresStore::connect(url).await?));
    }
    Err(StoreError::Unsupported(format!(
        "`{url}` names no store this build supports (memory, sqlite:PATH{}{})",
        if cfg!(feature = "sqlite") {
            ""
        } else {
            " needs feature `sqlite`"
        },
        if cfg!(feature = "postgres") {
            ", postgres://..."
        } else {
            "; postgres://... needs feature `postgres`"
        }
    )))
}

/// Whether `url` names a Postgres database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Whether the sequences of `items` run `first`, `first + 1`, … without a gap.
pub(crate) fn contiguous<T>(items: &[(u64, T)], first: u64) -> bool {
    items
        .iter()
        .zip(first..)
        .all(|((seq, _), want)| *seq == want)
}

/// Checks that `journal` continues a run's journal after `last_journal` and `events` its events
/// after `last_event` (see [`Commit::check_continues`]), whatever form their values take.
pub(crate) fn continues<J, E>(
    run_id: &str,
    journal: &[(u64, J)],
    events: &[(u64, E)],
    last_journal: u64,
    last_event: u64,
) -> Result<(), StoreError> {
    let (journal_at, event_at) = (last_journal + 1, last_event + 1);
    if contiguous(journal, journal_at) && contiguous(events, event_at) {
        return Ok(());
    }
    Err(StoreError::Corrupt(format!(
        "run `{run_id}`: a commit does not continue the journal at {journal_at} or the events at {event_at}"
    )))
}

/// A duration in whole milliseconds, as backends add it to their clock; one too long for an
/// `i64` saturates (it is forever anyway).
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The future returned by [`Store`] methods.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// A store operation failed.
///
/// New kinds of failure may come (the enum is `#[non_exhaustive]`); [`CommitEnd`] and
/// [`RunStatus`] are exhaustive instead, since every backend must implement each of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The lease is no longer valid: another worker claimed the run, or it was released. Nothing
    /// was written.
    #[error("run `{run_id}` is no longer owned by this worker under epoch {epoch}")]
    Fenced {
        /// The run.
        run_id: String,
        /// The epoch the write was attempted under.
        epoch: u64,
    },
    /// No run has this id.
    #[error("no run with id `{run_id}`")]
    UnknownRun {
        /// The id asked for.
        run_id: String,
    },
    /// The run has finished; it accepts no more events.
    #[error("run `{run_id}` has finished ({status})")]
    RunFinished {
        /// The run.
        run_id: String,
        /// How it finished.
        status: RunStatus,
    },
    /// A run with this id already exists (and was not started with the same idempotency key).
    #[error("a run with id `{run_id}` already exists")]
    DuplicateRun {
        /// The id.
        run_id: String,
    },
    /// The run has not finished, so it cannot be started again (see [`Store::reopen`]).
    #[error("run `{run_id}` is still {status}")]
    RunActive {
        /// The run.
        run_id: String,
        /// Its status.
        status: RunStatus,
    },
    /// The store URL names no backend this build has.
    #[error("unsupported store: {0}")]
    Unsupported(String),
    /// The stored data is not what this version of eventflow wrote.
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// The database failed or could not be reached; the operation may be retried.
    #[error("database error")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database refused the operation for a reason retrying cannot change (a value beyond
    /// one of its limits, a bad configuration, a failed migration).
    #[error("the database refused the operation")]
    Refused(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The folder of a SQLite file does not exist (the store creates the file, not its folder).
    #[error("the folder {} does not exist", .folder.display())]
    MissingFolder {
        /// The folder.
        folder: std::path::PathBuf,
    },
}

/// `error` and its causes joined with ": ", as anyhow's `{:#}` prints them, each cause once:
/// errors here do not embed their source's text in their own, but some of the drivers' do (an
/// `sqlx::Error::Database` ends with its source's text), so a cause whose text the line already
/// ends with is left out. What the CLI prints and the server logs.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let part = next.to_string();
        if !part.is_empty() && !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = next.source();
    }
    text
}

impl StoreError {
    /// Whether retrying the same operation later may succeed (the database was unreachable,
    /// busy, or out of a resource); [`StoreError::Refused`] and the rest will fail again.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Database(_))
    }

    pub(crate) fn unknown_run(run_id: &str) -> Self {
        StoreError::UnknownRun {
            run_id: run_id.to_owned(),
        }
    }

    /// A write or read under `lease`, which is not the run's current lease.
    pub(crate) fn fenced(lease: &Lease) -> Self {
        StoreError::Fenced {
            run_id: lease.run_id.clone(),
            epoch: lease.epoch,
        }
    }
}

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The run has work to do: it is owned by a live worker, or waits for one to claim it.
    Running,
    /// The run waits only for events from outside (or a wake-up time); it has no owner and
    /// holds no memory. An event sent to it makes it `Running` again.
    Waiting,
    /// The run crashed its workers more often than allowed; an operator can resume it with
    /// [`Store::unpark`].
    Parked,
    /// The run finished with a stop event.
    Completed,
    /// The run failed (a step's last attempt failed, it stalled, or it timed out).
    Failed,
    /// The run was cancelled.
    Cancelled,
}

impl RunStatus {
    /// Whether the run has finished for good.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// The status as stored: `running`, `waiting`, `parked`, `completed`, `failed` or
    /// `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Parked => "parked",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Reads a status written by [`RunStatus::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "running" => RunStatus::Running,
            "waiting" => RunStatus::Waiting,
            "parked" => RunStatus::Parked,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workflow a worker serves: its name and the fingerprint of its steps and event types.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkflowKey {
    /// The workflow's name.
    pub name: String,
    /// `Workflow::fingerprint`: runs are claimed only by workers with the same shape.
    pub fingerprint: String,
}

/// The right to write a run: held by one worker under one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The run.
    pub run_id: String,
    /// The worker holding it.
    pub owner: String,
    /// The epoch it was granted under; every claim and release increases the run's epoch.
    pub epoch: u64,
}

/// A run to create with [`Store::create_run`].
#[derive(Clone, Debug)]
pub struct NewRun {
    /// The new run's id.
    pub run_id: String,
    /// The workflow it runs.
    pub workflow: WorkflowKey,
    /// When set, a second create with the same key returns the first run instead.
    pub idempotency_key: Option<String>,
    /// The first journal entry (sequence 1): the run's start.
    pub start: Value,
    /// When set, the run is created owned by this worker (epoch 1), saving a claim.
    pub owner: Option<String>,
}

/// What [`Store::create_run`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// The run was recorded; the lease is set when the run was created with an owner.
    New(Option<Lease>),
    /// A run with the same idempotency key existed: its id.
    Existing(String),
}

/// A run as the store records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: String,
    /// Its workflow.
    pub workflow: WorkflowKey,
    /// Its status.
    pub status: RunStatus,
    /// The worker owning it, if any.
    pub owner: Option<String>,
    /// The current ownership epoch.
    pub epoch: u64,
    /// How many times it was taken over from a worker that died holding it.
    pub recoveries: u32,
    /// The idempotency key it was created with.
    pub idempotency_key: Option<String>,
    /// The stop event's JSON (`{"type", "value"}`) once completed.
    pub result: Option<Value>,
    /// Why it failed, was cancelled or was parked.
    pub error: Option<String>,
    /// The sequence of the last event it published (0: none yet).
    pub last_event_seq: u64,
    /// When it was created, in milliseconds since the Unix epoch (store clock).
    pub created_at_ms: i64,
    /// When it last changed, in milliseconds since the Unix epoch (store clock).
    pub updated_at_ms: i64,
}

/// A claimed run: its lease, and whether it was taken over from a worker that died holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The new lease.
    pub lease: Lease,
    /// True when the run was owned by a worker whose heartbeat expired (a recovery).
    pub recovered: bool,
}

/// Options of [`Store::claim`].
#[derive(Clone, Debug)]
pub struct ClaimOptions {
    /// Claim only runs of these workflows (name and fingerprint).
    pub workflows: Vec<WorkflowKey>,
    /// At most this many runs.
    pub limit: usize,
    /// A worker whose last heartbeat is older than this is dead: its runs may be claimed.
    pub lease_ttl: Duration,
    /// A run taken over from dead workers more than this many times is parked instead.
    pub max_recoveries: u32,
}

impl ClaimOptions {
    /// The error recorded on a run parked for crashing its workers too often.
    pub(crate) fn parking_reason(&self) -> String {
        format!(
            "parked after {} recoveries from crashed workers",
            self.max_recoveries
        )
    }
}

/// Everything a new owner needs to rebuild a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadedRun {
    /// The latest snapshot and the journal sequence it covers.
    pub snapshot: Option<(u64, Value)>,
    /// The journal entries after the snapshot, in order, with their sequences.
    pub journal: Vec<(u64, Value)>,
    /// Every event the run published, in order, with their sequences.
    pub events: Vec<(u64, EventJson)>,
}

/// A message sent to a run and not yet consumed.
#[derive(Clone, Debug, PartialEq)]
pub struct InboxMessage {
    /// The inbox row: consume it by listing it in [`Commit::consumed`].
    pub id: i64,
    /// The sender's message id (unique per run).
    pub msg_id: String,
    /// What was sent.
    pub mail: Mail,
}

/// What [`Store::reopen`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reopened {
    /// The new lease, when reopened with an owner.
    pub lease: Option<Lease>,
    /// The journal sequence of the appended entry.
    pub journal_seq: u64,
    /// The sequence of the run's last event before it was reopened: readers of the new run's
    /// events start after it.
    pub last_event_seq: u64,
}

/// What [`Store::send`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The message was queued for the run.
    Accepted,
    /// A message with the same id was sent to this run before; nothing was queued.
    Duplicate,
}

/// How a commit ends the owner's hold on a run.
#[derive(Clone, Debug, PartialEq)]
pub enum CommitEnd {
    /// The run finished: it loses its owner and records its outcome.
    Finish {
        /// `Completed`, `Failed` or `Cancelled`.
        status: RunStatus,
        /// The stop event, when completed.
        result: Option<Value>,
        /// Why it failed or was cancelled.
        error: Option<String>,
    },
    /// The worker lets go of the run. With `idle`, the run waits for outside events (or
    /// `wake_after`) and becomes `Waiting`, unless unconsumed inbox messages are already there;
    /// otherwise it stays `Running`, claimable at once by any worker (a graceful shutdown).
    Release {
        /// Whether the run has nothing to do but wait.
        idle: bool,
        /// Wake the run up after this long (store clock) even without an event.
        wake_after: Option<Duration>,
    },
}

/// One atomic write of an owner to its run; see [`Store::commit`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Commit {
    /// Journal entries to append, with their sequences (contiguous, after the last).
    pub journal: Vec<(u64, Value)>,
    /// Inbox rows consumed by this commit's journal entries.
    pub consumed: Vec<i64>,
    /// Published events to append, with their sequences (contiguous, after the last).
    pub events: Vec<(u64, EventJson)>,
    /// A new snapshot covering the journal up to its sequence; older journal entries may go.
    pub snapshot: Option<(u64, Value)>,
    /// Finish or release the run.
    pub end: Option<CommitEnd>,
}

impl Commit {
    /// Checks that the commit continues the journal of run `run_id` after `last_journal` and its
    /// events after `last_event`: how every backend refuses a commit with a gap or an overlap.
    pub(crate) fn check_continues(
        &self,
        run_id: &str,
        last_journal: u64,
        last_event: u64,
    ) -> Result<(), StoreError> {
        continues(
            run_id,
            &self.journal,
            &self.events,
            last_journal,
            last_event,
        )
    }

    /// Whether the commit writes nothing.
    pub fn is_empty(&self) -> bool {
        self.journal.is_empty()
            && self.consumed.is_empty()
            && self.events.is_empty()
            && self.snapshot.is_none()
            && self.end.is_none()
    }
}

/// A filter for [`Store::list_runs`]; empty lists match everything.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// Only runs with one of these statuses.
    pub status: Vec<RunStatus>,
    /// Only runs of one of these workflows (by name).
    pub workflow: Vec<String>,
}

/// A store value or a shared one: what takes a store (such as the engine's builder) accepts.
pub trait IntoStore {
    /// The store, shared.
    fn into_store(self) -> Arc<dyn Store>;
}

impl<S: Store> IntoStore for S {
    fn into_store(self) -> Arc<dyn Store> {
        Arc::new(self)
    }
}

impl IntoStore for Arc<dyn Store> {
    fn into_store(self) -> Arc<dyn Store> {
        self
    }
}

/// Durable storage of runs, shared by every worker of a deployment.
///
/// Implemented by [`MemoryStore`] (one process, for tests), `SqliteStore` (a file, the embedded
/// default; feature `sqlite`) and `PostgresStore` (a cluster of processes; feature `postgres`).
/// All three pass the same conformance suite, which another implementation runs with the
/// `testkit` feature (see `testkit`).
pub trait Store: Send + Sync + 'static {
    /// Records a new run with its first journal entry; returns only once it is durable. With an
    /// idempotency key already used, returns the existing run and changes nothing.
    fn create_run(&self, run: NewRun) -> StoreFuture<'_, Created>;

    /// The run's record.
    fn get_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<RunRecord>>;

    /// The runs matching `filter`, oldest first.
    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> StoreFuture<'a, Vec<RunRecord>>;

    /// Records that `worker` is alive and serves `workflows` (store clock).
    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        workflows: &'a [WorkflowKey],
    ) -> StoreFuture<'a, ()>;

    /// Claims up to `options.limit` runs for `worker`: runs of a served workflow that are
    /// `Running` without a live owner (no owner, or an owner whose heartbeat is older than the
    /// TTL), or `Waiting` with a wake-up time that has passed. Each claim increases the run's
    /// epoch. A run taken from a dead owner counts a recovery; past `max_recoveries` it is
    /// parked instead of claimed. Concurrent claimers never get the same run.
    fn claim<'a>(
        &'a self,
        worker: &'a str,
        options: &'a ClaimOptions,
    ) -> StoreFuture<'a, Vec<Claim>>;

    /// Claims one given run for `worker` if it is claimable as in [`Store::claim`] (its workflow
    /// is not checked). `None` when it is not — or, on Postgres, while another transaction holds
    /// the run's row: the next poll claims it.
    fn claim_run<'a>(
        &'a self,
        worker: &'a str,
        run_id: &'a str,
        options: &'a ClaimOptions,
    ) -> StoreFuture<'a, Option<Claim>>;

    /// The latest snapshot, the journal after it and the published events, for the lease's
    /// holder. Fails with `Fenced` when the lease is stale.
    fn load<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, LoadedRun>;

    /// The run's unconsumed inbox messages, oldest first.
    fn inbox<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, Vec<InboxMessage>>;

    /// Writes `commit` atomically if `lease` is still the run's current lease; otherwise fails
    /// with [`StoreError::Fenced`] and writes nothing. Releasing or finishing clears the owner
    /// and increases the epoch.
    fn commit<'a>(&'a self, lease: &'a Lease, commit: Commit) -> StoreFuture<'a, ()>;

    /// Queues an event for a run, whoever owns it and whether or not it is in memory. A second
    /// message with the same `msg_id` for the same run is ignored (`Sent::Duplicate`). A
    /// `Waiting` run becomes `Running` (claimable). Fails with `RunFinished` for a finished run,
    /// except for a message id the run consumed before finishing, which stays `Duplicate` (a
    /// retried send is not an error). [`Mail::Cancel`] also makes a `Parked` run `Running`, so
    /// that it can end.
    fn send<'a>(&'a self, run_id: &'a str, msg_id: &'a str, mail: Mail) -> StoreFuture<'a, Sent>;

    /// The run's published events with a sequence greater than `after`, oldest first, at most
    /// `limit`.
    fn events_after<'a>(
        &'a self,
        run_id: &'a str,
        after: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(u64, EventJson)>>;

    /// Makes a parked run `Running` again with its recoveries reset. False when it was not parked.
    fn unpark<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool>;

    /// Deletes a run and everything recorded for it (an owner's later commits are fenced). False
    /// when it does not exist.
    fn purge<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool>;

    /// Starts a finished run again under the same id, keeping everything recorded for it: `entry`
    /// is appended to its journal (after the last entry), the run becomes `Running` with its
    /// result and error cleared and its recoveries reset, owned by `owner` when given (under a
    /// new epoch), unowned and claimable otherwise. Its events go on numbering after the last.
    /// Fails with `UnknownRun`, or `RunActive` when the run has not finished (`Parked` counts as
    /// not finished).
    fn reopen<'a>(
        &'a self,
        run_id: &'a str,
        entry: Value,
        owner: Option<&'a str>,
    ) -> StoreFuture<'a, Reopened>;

    /// Signals of work for workers: the id of a run that was created, sent an event or released
    /// claimable. In-process for memory and SQLite stores; across processes with Postgres
    /// `LISTEN/NOTIFY`. Workers also poll, so a missed signal only delays work.
    fn wakeups(&self) -> tokio::sync::broadcast::Receiver<String>;
}
