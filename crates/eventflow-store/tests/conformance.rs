//! The conformance suite of the durable-run store: every check runs against every backend
//! (`memory::…`, `sqlite::…`, `postgres::…`), so all three keep the promises of the [`Store`]
//! trait's documentation.
//!
//! SQLite checks use a fresh file in a temporary directory; Postgres checks a fresh schema of the
//! database named by `DATABASE_URL`; they are ignored unless asked for with `--ignored` (as
//! `bash .ci/run` does), and fail without `DATABASE_URL`. Timing checks use short leases (a few
//! hundred milliseconds) and sleep well past them, and never assert an upper bound tighter than
//! seconds, so that a loaded machine does not make them flaky.

use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use eventflow_store::EventJson;
use eventflow_store::{
    Claim, ClaimOptions, Commit, CommitEnd, Created, InboxMessage, Lease, LoadedRun, Mail,
    MemoryStore, NewRun, PostgresStore, Reopened, RunFilter, RunRecord, RunStatus, Sent,
    SqliteStore, Store, StoreError, WorkflowKey,
};
use serde_json::{Value, json};
use tokio::sync::broadcast;

type DynStore = Arc<dyn Store>;

/// A whole check may not take longer than this (a deadlocked backend fails instead of hanging).
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// A lease TTL no check outlives: owners that heartbeat once stay alive under it.
const LONG_TTL: Duration = Duration::from_secs(120);
/// A lease TTL short enough to expire within a check.
const SHORT_TTL: Duration = Duration::from_millis(200);
/// How long to sleep for a `SHORT_TTL` to surely expire.
const PAST_SHORT_TTL: Duration = Duration::from_millis(700);
/// How long a wake-up signal may take (Postgres goes through `LISTEN/NOTIFY`).
const WAKEUP_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// The backends.

#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Sqlite,
    Postgres,
}

/// A store under test, and how to open it again on the same data.
#[derive(Clone)]
struct Setup {
    store: DynStore,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Memory,
    Sqlite { dir: Arc<tempfile::TempDir> },
    Postgres { url: String, schema: String },
}

impl Setup {
    /// A fresh, empty store.
    async fn new(kind: Kind) -> Result<Setup> {
        Ok(match kind {
            Kind::Memory => Setup {
                store: Arc::new(MemoryStore::new()),
                backend: Backend::Memory,
            },
            Kind::Sqlite => {
                let dir = Arc::new(tempfile::tempdir()?);
                let store = SqliteStore::open(dir.path().join("store.db"))
                    .await
                    .context("opening the SQLite store")?;
                Setup {
                    store: Arc::new(store),
                    backend: Backend::Sqlite { dir },
                }
            }
            Kind::Postgres => {
                let url = std::env::var("DATABASE_URL")
                    .context("the Postgres tests need DATABASE_URL (see the README)")?;
                let schema = format!("ef_conf_{}", uuid::Uuid::new_v4().simple());
                let store = PostgresStore::connect_schema(&url, &schema)
                    .await
                    .context("connecting the Postgres store")?;
                Setup {
                    store: Arc::new(store),
                    backend: Backend::Postgres { url, schema },
                }
            }
        })
    }

    /// Another store on the same data: a second process's view (the same store for memory).
    async fn open_again(&self) -> Result<DynStore> {
        Ok(match &self.backend {
            Backend::Memory => self.store.clone(),
            Backend::Sqlite { dir } => Arc::new(
                SqliteStore::open(dir.path().join("store.db"))
                    .await
                    .context("opening the SQLite store again")?,
            ),
            Backend::Postgres { url, schema } => Arc::new(
                PostgresStore::connect_schema(url, schema)
                    .await
                    .context("connecting the Postgres store again")?,
            ),
        })
    }

    /// A store at a second, new location (file or schema) next to this one: opening it runs
    /// the migrations (the same memory store for memory).
    async fn open_second_location(&self) -> Result<DynStore> {
        Ok(match &self.backend {
            Backend::Memory => self.store.clone(),
            Backend::Sqlite { dir } => Arc::new(
                SqliteStore::open(dir.path().join("second.db"))
                    .await
                    .context("opening a second SQLite file")?,
            ),
            Backend::Postgres { url, schema } => Arc::new(
                PostgresStore::connect_schema(url, &format!("{schema}_2"))
                    .await
                    .context("connecting a second Postgres schema")?,
            ),
        })
    }

    /// Whether wake-ups reach the stores [`Setup::open_again`] returns (the same store for
    /// memory; other processes through `LISTEN/NOTIFY` for Postgres; SQLite's are in-process).
    fn wakeups_cross_instances(&self) -> bool {
        !matches!(self.backend, Backend::Sqlite { .. })
    }

    /// Drops the Postgres schema (best effort); the SQLite directory goes with the last `Arc`.
    async fn clean_up(self) {
        let Setup { store, backend } = self;
        drop(store);
        if let Backend::Postgres { url, schema } = backend {
            let drop_schema = async {
                use sqlx::Connection as _;
                let mut connection = sqlx::PgConnection::connect(&url).await?;
                for schema in [schema.clone(), format!("{schema}_2")] {
                    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .execute(&mut connection)
                        .await?;
                }
                connection.close().await
            };
            if let Ok(Err(error)) = tokio::time::timeout(Duration::from_secs(10), drop_schema).await
            {
                eprintln!("could not drop schema {schema}: {error}");
            }
        }
    }
}

/// Runs one check on a fresh store of `kind`, with a timeout, then cleans up (even when the
/// check panics).
async fn run<F, Fut>(kind: Kind, check: F) -> Result<()>
where
    F: FnOnce(Setup) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let setup = Setup::new(kind).await?;
    let outcome = tokio::spawn(tokio::time::timeout(CHECK_TIMEOUT, check(setup.clone()))).await;
    setup.clean_up().await;
    match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => bail!("the check did not finish within {CHECK_TIMEOUT:?}"),
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => Err(error.into()),
        },
    }
}

/// Instantiates every check for every backend: `memory::name`, `sqlite::name`, `postgres::name`.
/// Checks under `store` take the store; checks under `setup` may also open it again.
macro_rules! conformance {
    (store: [$($check:ident),* $(,)?], setup: [$($setup_check:ident),* $(,)?] $(,)?) => {
        conformance!(@backend memory, Memory, [$($check),*], [$($setup_check),*],
            doc = "On the memory store.");
        conformance!(@backend sqlite, Sqlite, [$($check),*], [$($setup_check),*],
            doc = "On a SQLite file.");
        conformance!(@backend postgres, Postgres, [$($check),*], [$($setup_check),*],
            ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)");
    };
    // `$attr` marks every test of the backend: a doc line, or `ignore` for Postgres.
    (@backend $module:ident, $kind:ident, [$($check:ident),*], [$($setup_check:ident),*],
        $attr:meta) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[$attr]
                async fn $check() -> anyhow::Result<()> {
                    super::run(super::Kind::$kind, |setup| super::$check(setup.store)).await
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[$attr]
                async fn $setup_check() -> anyhow::Result<()> {
                    super::run(super::Kind::$kind, super::$setup_check).await
                }
            )*
        }
    };
}

conformance! {
    store: [
        create_returns_lease_and_record,
        idempotent_create,
        duplicate_run_id,
        load_after_create,
        commit_appends_journal_and_events,
        commit_out_of_sequence_is_corrupt,
        commit_with_gaps_is_corrupt,
        events_after_pages_exactly,
        snapshot_replaces_and_trims_journal,
        stale_lease_is_fenced,
        released_lease_is_fenced,
        recovered_lease_is_fenced,
        claim_only_served_workflows,
        claim_skips_live_owner_and_recovers_expired,
        claim_recovers_owner_without_heartbeat,
        claim_respects_limit,
        concurrent_claims_never_overlap,
        claim_run_claims_one_run,
        parking_after_max_recoveries,
        cancel_message_resumes_parked_run,
        release_idle_waits_for_events,
        release_idle_with_unread_inbox_stays_running,
        release_not_idle_is_claimable_at_once,
        release_idle_wakes_after,
        inbox_send_and_dedup,
        inbox_consumed_by_commit,
        send_errors,
        events_sent_before_owned_are_kept,
        finish_records_outcome,
        list_runs_filters_oldest_first,
        purge_removes_everything,
        wakeups_signal_work,
        errors_are_sane,
        concurrent_sends_deduplicate,
        commit_races_claim,
        send_races_idle_release,
        json_values_round_trip,
        json_nul_characters_round_trip,
        large_commit,
        extreme_arguments,
        reopen_continues_a_finished_run,
        reopen_keeps_the_snapshot,
        reopen_without_owner_is_claimable,
        reopen_refused_unless_finished,
        reopen_keeps_message_dedup,
        reopen_wakes_workers,
    ],
    setup: [
        durable_across_reopen,
        concurrent_claims_across_instances,
        concurrent_idempotent_create,
        wakeups_across_instances,
        concurrent_first_open,
        reopen_across_instances,
    ],
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn key(name: &str, fingerprint: &str) -> WorkflowKey {
    WorkflowKey {
        name: name.to_owned(),
        fingerprint: fingerprint.to_owned(),
    }
}

/// The workflow most checks use.
fn flow() -> WorkflowKey {
    key("conformance", "fp-1")
}

fn start_of(run_id: &str) -> Value {
    json!({"type": "start", "run": run_id})
}

fn spec(run_id: &str, workflow: &WorkflowKey) -> NewRun {
    NewRun {
        run_id: run_id.to_owned(),
        workflow: workflow.clone(),
        idempotency_key: None,
        start: start_of(run_id),
        owner: None,
    }
}

/// Creates an unowned run.
async fn create(store: &dyn Store, run_id: &str, workflow: &WorkflowKey) -> Result<()> {
    let created = store
        .create_run(spec(run_id, workflow))
        .await
        .with_context(|| format!("creating {run_id}"))?;
    assert_eq!(created, Created::New(None), "creating {run_id}");
    Ok(())
}

/// Creates a run owned by `owner` and returns its lease.
async fn create_owned(
    store: &dyn Store,
    run_id: &str,
    workflow: &WorkflowKey,
    owner: &str,
) -> Result<Lease> {
    let created = store
        .create_run(NewRun {
            owner: Some(owner.to_owned()),
            ..spec(run_id, workflow)
        })
        .await
        .with_context(|| format!("creating {run_id}"))?;
    let expected = Lease {
        run_id: run_id.to_owned(),
        owner: owner.to_owned(),
        epoch: 1,
    };
    assert_eq!(
        created,
        Created::New(Some(expected.clone())),
        "creating {run_id}"
    );
    Ok(expected)
}

/// Claim options for `workflows` with a long TTL and room for many recoveries.
fn options(workflows: &[WorkflowKey]) -> ClaimOptions {
    ClaimOptions {
        workflows: workflows.to_vec(),
        limit: 100,
        lease_ttl: LONG_TTL,
        max_recoveries: 10,
    }
}

async fn record(store: &dyn Store, run_id: &str) -> Result<RunRecord> {
    store
        .get_run(run_id)
        .await
        .with_context(|| format!("get_run {run_id}"))?
        .with_context(|| format!("run {run_id} should exist"))
}

async fn status(store: &dyn Store, run_id: &str) -> Result<RunStatus> {
    Ok(record(store, run_id).await?.status)
}

/// Claims the given run, which must be claimable.
async fn claim_run(
    store: &dyn Store,
    worker: &str,
    run_id: &str,
    options: &ClaimOptions,
) -> Result<Claim> {
    let claim = store
        .claim_run(worker, run_id, options)
        .await
        .with_context(|| format!("claim_run {run_id}"))?
        .with_context(|| format!("{run_id} should be claimable by {worker}"))?;
    assert_eq!(claim.lease.run_id, run_id);
    assert_eq!(claim.lease.owner, worker);
    Ok(claim)
}

/// The ids `worker` claims with `options`.
async fn claim_ids(store: &dyn Store, worker: &str, options: &ClaimOptions) -> Result<Vec<String>> {
    let claims = store.claim(worker, options).await.context("claim")?;
    for claim in &claims {
        assert_eq!(claim.lease.owner, worker);
    }
    Ok(claims.into_iter().map(|claim| claim.lease.run_id).collect())
}

/// Asserts that `run_id` is claimable neither by `claim` nor by `claim_run`.
async fn assert_not_claimable(
    store: &dyn Store,
    run_id: &str,
    options: &ClaimOptions,
) -> Result<()> {
    let claimed = claim_ids(store, "bystander", options).await?;
    ensure!(
        !claimed.iter().any(|id| id == run_id),
        "{run_id} should not be claimable, but claim returned it"
    );
    let claim = store.claim_run("bystander", run_id, options).await?;
    ensure!(
        claim.is_none(),
        "{run_id} should not be claimable, but claim_run returned {claim:?}"
    );
    Ok(())
}

async fn commit(store: &dyn Store, lease: &Lease, commit: Commit) -> Result<()> {
    store
        .commit(lease, commit)
        .await
        .with_context(|| format!("commit under {lease:?}"))
}

fn release(idle: bool, wake_after: Option<Duration>) -> Commit {
    Commit {
        end: Some(CommitEnd::Release { idle, wake_after }),
        ..Commit::default()
    }
}

fn finish(status: RunStatus, result: Option<Value>, error: Option<&str>) -> Commit {
    Commit {
        end: Some(CommitEnd::Finish {
            status,
            result,
            error: error.map(str::to_owned),
        }),
        ..Commit::default()
    }
}

/// Journal entries with sequences `seqs`.
fn ticks(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, Value)> {
    seqs.into_iter()
        .map(|seq| (seq, json!({"tick": seq})))
        .collect()
}

/// Published events with sequences `seqs`.
fn published(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, EventJson)> {
    seqs.into_iter()
        .map(|seq| (seq, named("progress", json!({"n": seq}))))
        .collect()
}

/// An event named `name` with fields `value`.
fn named(name: &str, value: Value) -> EventJson {
    EventJson {
        name: name.to_owned(),
        value,
    }
}

/// An event message for the inbox.
fn event(text: &str) -> Mail {
    Mail::event(named("message", json!({"text": text})))
}

async fn send(store: &dyn Store, run_id: &str, msg_id: &str, mail: Mail) -> Result<Sent> {
    store
        .send(run_id, msg_id, mail)
        .await
        .with_context(|| format!("send {msg_id} to {run_id}"))
}

async fn all_events(store: &dyn Store, run_id: &str) -> Result<Vec<(u64, EventJson)>> {
    store
        .events_after(run_id, 0, 10_000)
        .await
        .with_context(|| format!("events_after {run_id}"))
}

fn msg_ids(inbox: &[InboxMessage]) -> Vec<&str> {
    inbox
        .iter()
        .map(|message| message.msg_id.as_str())
        .collect()
}

fn assert_fenced<T: Debug>(result: Result<T, StoreError>, lease: &Lease, what: &str) -> Result<()> {
    match result {
        Err(StoreError::Fenced { run_id, epoch }) => {
            ensure!(
                run_id == lease.run_id && epoch == lease.epoch,
                "{what}: Fenced names run {run_id} epoch {epoch}, expected {lease:?}"
            );
            Ok(())
        }
        other => bail!("{what} under {lease:?}: expected Fenced, got {other:?}"),
    }
}

fn assert_corrupt<T: Debug>(result: Result<T, StoreError>, what: &str) -> Result<()> {
    match result {
        Err(StoreError::Corrupt(_)) => Ok(()),
        other => bail!("{what}: expected Corrupt, got {other:?}"),
    }
}

/// Everything observable about a run, through its current lease.
#[derive(Debug, PartialEq)]
struct Observed {
    record: RunRecord,
    loaded: LoadedRun,
    inbox: Vec<InboxMessage>,
    events: Vec<(u64, EventJson)>,
}

async fn observe(store: &dyn Store, lease: &Lease) -> Result<Observed> {
    Ok(Observed {
        record: record(store, &lease.run_id).await?,
        loaded: store.load(lease).await.context("load")?,
        inbox: store.inbox(lease).await.context("inbox")?,
        events: all_events(store, &lease.run_id).await?,
    })
}

/// A commit that writes everything it can: journal and events at the given sequences, every
/// inbox row in `consumed`, a snapshot and a finish.
fn everything(journal_seq: u64, event_seq: u64, consumed: Vec<i64>) -> Commit {
    Commit {
        journal: ticks([journal_seq]),
        consumed,
        events: published([event_seq]),
        snapshot: Some((journal_seq, json!({"snapshot": journal_seq}))),
        end: Some(CommitEnd::Finish {
            status: RunStatus::Completed,
            result: Some(json!({"type": "stop", "value": 1})),
            error: None,
        }),
    }
}

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds fit in i64")
}

/// Waits for `run_id` on a wake-up receiver, skipping other ids.
async fn expect_wakeup(
    rx: &mut broadcast::Receiver<String>,
    run_id: &str,
    why: &str,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAKEUP_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => bail!("no wakeup for {run_id} ({why}) within {WAKEUP_TIMEOUT:?}"),
            Ok(Ok(id)) if id == run_id => return Ok(()),
            Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => bail!("the wakeup channel closed"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Creating runs.

/// `create_run` returns the lease of an owned run (epoch 1) and records every field.
async fn create_returns_lease_and_record(store: DynStore) -> Result<()> {
    let before = now_ms();
    create(&*store, "unowned", &flow()).await?;
    let lease = create_owned(&*store, "owned", &key("other", "fp-9"), "worker-a").await?;
    let keyed = store
        .create_run(NewRun {
            idempotency_key: Some("key-1".to_owned()),
            ..spec("keyed", &flow())
        })
        .await?;
    assert_eq!(keyed, Created::New(None));
    let after = now_ms();

    let unowned = record(&*store, "unowned").await?;
    assert_eq!(unowned.run_id, "unowned");
    assert_eq!(unowned.workflow, flow());
    assert_eq!(unowned.status, RunStatus::Running);
    assert_eq!(unowned.owner, None);
    assert_eq!(unowned.epoch, 1);
    assert_eq!(unowned.recoveries, 0);
    assert_eq!(unowned.idempotency_key, None);
    assert_eq!(unowned.result, None);
    assert_eq!(unowned.error, None);
    assert_eq!(unowned.last_event_seq, 0);
    // The store's clock may differ a little from this process's; a minute is generous.
    ensure!(
        unowned.created_at_ms > before - 60_000 && unowned.created_at_ms < after + 60_000,
        "created_at_ms {} is not around now ({before}..{after})",
        unowned.created_at_ms
    );
    ensure!(unowned.updated_at_ms >= unowned.created_at_ms);

    let owned = record(&*store, "owned").await?;
    assert_eq!(owned.workflow, key("other", "fp-9"));
    assert_eq!(owned.status, RunStatus::Running);
    assert_eq!(owned.owner.as_deref(), Some("worker-a"));
    assert_eq!(owned.epoch, lease.epoch);
    assert_eq!(owned.recoveries, 0);

    let keyed = record(&*store, "keyed").await?;
    assert_eq!(keyed.idempotency_key.as_deref(), Some("key-1"));
    assert_eq!(keyed.owner, None);

    assert_eq!(store.get_run("nobody").await?, None);
    assert_eq!(store.list_runs(&RunFilter::default()).await?.len(), 3);
    Ok(())
}

/// A second create with a used idempotency key returns the first run and changes nothing.
async fn idempotent_create(store: DynStore) -> Result<()> {
    let first = store
        .create_run(NewRun {
            idempotency_key: Some("order-42".to_owned()),
            owner: Some("worker-a".to_owned()),
            ..spec("first", &flow())
        })
        .await?;
    let Created::New(Some(lease)) = first else {
        bail!("expected a new owned run, got {first:?}");
    };
    let original = record(&*store, "first").await?;

    // Another id, another workflow, another owner, another start: still the first run.
    let again = store
        .create_run(NewRun {
            run_id: "second".to_owned(),
            workflow: key("elsewhere", "fp-2"),
            idempotency_key: Some("order-42".to_owned()),
            start: json!({"type": "start", "other": true}),
            owner: Some("worker-b".to_owned()),
        })
        .await?;
    assert_eq!(again, Created::Existing("first".to_owned()));
    // The same id and key: the same answer.
    let same = store
        .create_run(NewRun {
            idempotency_key: Some("order-42".to_owned()),
            ..spec("first", &flow())
        })
        .await?;
    assert_eq!(same, Created::Existing("first".to_owned()));

    assert_eq!(store.get_run("second").await?, None);
    assert_eq!(record(&*store, "first").await?, original);
    let runs = store.list_runs(&RunFilter::default()).await?;
    assert_eq!(runs.len(), 1);
    // The first run's lease and journal are untouched.
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.journal, vec![(1, start_of("first"))]);

    // Another key is another run.
    let other = store
        .create_run(NewRun {
            idempotency_key: Some("order-43".to_owned()),
            ..spec("third", &flow())
        })
        .await?;
    assert_eq!(other, Created::New(None));
    assert_eq!(store.list_runs(&RunFilter::default()).await?.len(), 2);
    Ok(())
}

/// An existing run id without the same idempotency key is `DuplicateRun`, and nothing changes.
async fn duplicate_run_id(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "dup", &flow(), "worker-a").await?;
    let original = record(&*store, "dup").await?;

    for (attempt, idempotency_key) in [("no key", None), ("another key", Some("fresh-key"))] {
        let result = store
            .create_run(NewRun {
                idempotency_key: idempotency_key.map(str::to_owned),
                start: json!({"type": "start", "replaced": true}),
                owner: Some("worker-b".to_owned()),
                ..spec("dup", &key("elsewhere", "fp-2"))
            })
            .await;
        match result {
            Err(StoreError::DuplicateRun { run_id }) => assert_eq!(run_id, "dup"),
            other => bail!("{attempt}: expected DuplicateRun, got {other:?}"),
        }
    }
    assert_eq!(record(&*store, "dup").await?, original);
    assert_eq!(
        store.load(&lease).await?.journal,
        vec![(1, start_of("dup"))]
    );
    assert_eq!(store.list_runs(&RunFilter::default()).await?.len(), 1);

    // The failed create did not take its key.
    let keyed = store
        .create_run(NewRun {
            idempotency_key: Some("fresh-key".to_owned()),
            ..spec("other", &flow())
        })
        .await?;
    assert_eq!(keyed, Created::New(None));
    Ok(())
}

/// A new run loads with its start as journal entry 1, no snapshot and no events.
async fn load_after_create(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "owned", &flow(), "worker-a").await?;
    let loaded = store.load(&lease).await?;
    assert_eq!(
        loaded,
        LoadedRun {
            snapshot: None,
            journal: vec![(1, start_of("owned"))],
            events: Vec::new(),
        }
    );
    assert_eq!(store.inbox(&lease).await?, Vec::new());
    assert_eq!(all_events(&*store, "owned").await?, Vec::new());

    create(&*store, "unowned", &flow()).await?;
    let claim = claim_run(&*store, "worker-b", "unowned", &options(&[flow()])).await?;
    let loaded = store.load(&claim.lease).await?;
    assert_eq!(loaded.snapshot, None);
    assert_eq!(loaded.journal, vec![(1, start_of("unowned"))]);
    assert_eq!(loaded.events, Vec::new());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Committing.

/// Commits append journal entries and events; `last_event_seq` follows.
async fn commit_appends_journal_and_events(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=3),
            events: published(1..=2),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(record(&*store, "run").await?.last_event_seq, 2);
    // Journal only, then events only.
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([4]),
            ..Commit::default()
        },
    )
    .await?;
    commit(
        &*store,
        &lease,
        Commit {
            events: published(3..=5),
            ..Commit::default()
        },
    )
    .await?;

    let loaded = store.load(&lease).await?;
    let mut journal = vec![(1, start_of("run"))];
    journal.extend(ticks(2..=4));
    assert_eq!(loaded.journal, journal);
    assert_eq!(loaded.snapshot, None);
    assert_eq!(loaded.events, published(1..=5));
    assert_eq!(all_events(&*store, "run").await?, published(1..=5));
    let run = record(&*store, "run").await?;
    assert_eq!(run.last_event_seq, 5);
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner.as_deref(), Some("worker-a"));
    assert_eq!(
        run.epoch, lease.epoch,
        "a commit without an end keeps the epoch"
    );
    Ok(())
}

/// A commit that does not continue the journal or the events is `Corrupt` and writes nothing.
async fn commit_out_of_sequence_is_corrupt(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=3),
            events: published(1..=2),
            ..Commit::default()
        },
    )
    .await?;
    send(&*store, "run", "m1", event("m1")).await?;
    let inbox = store.inbox(&lease).await?;
    let consumed: Vec<i64> = inbox.iter().map(|message| message.id).collect();
    let before = observe(&*store, &lease).await?;

    // Last journal sequence 3, last event sequence 2.
    let cases = [
        ("journal skips a sequence", 5, 3),
        ("journal repeats the last sequence", 3, 3),
        ("journal restarts at 1", 1, 3),
        ("events skip a sequence", 4, 4),
        ("events repeat the last sequence", 4, 2),
        ("events restart at 1", 4, 1),
        ("both wrong", 7, 7),
    ];
    for (case, journal_seq, event_seq) in cases {
        let result = store
            .commit(&lease, everything(journal_seq, event_seq, consumed.clone()))
            .await;
        assert_corrupt(result, case)?;
        assert_eq!(
            observe(&*store, &lease).await?,
            before,
            "{case}: nothing is written"
        );
    }
    // Only events, or only journal, out of sequence.
    let result = store
        .commit(
            &lease,
            Commit {
                events: published([1]),
                ..Commit::default()
            },
        )
        .await;
    assert_corrupt(result, "events alone restart at 1")?;
    let result = store
        .commit(
            &lease,
            Commit {
                journal: ticks([2]),
                end: Some(CommitEnd::Release {
                    idle: false,
                    wake_after: None,
                }),
                ..Commit::default()
            },
        )
        .await;
    assert_corrupt(result, "journal alone repeats 2, with a release")?;
    assert_eq!(
        observe(&*store, &lease).await?,
        before,
        "nothing is written"
    );

    // The lease is still good: the right sequences go in.
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([4]),
            consumed,
            events: published([3]),
            ..Commit::default()
        },
    )
    .await?;
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.journal.last(), Some(&(4, json!({"tick": 4}))));
    assert_eq!(loaded.events, published(1..=3));
    assert_eq!(store.inbox(&lease).await?, Vec::new());
    assert_eq!(record(&*store, "run").await?.last_event_seq, 3);
    Ok(())
}

/// Journal entries and events within one commit are contiguous too ("contiguous, after the
/// last"): a gap or a repeat inside a commit is `Corrupt` and writes nothing.
async fn commit_with_gaps_is_corrupt(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2]),
            events: published([1]),
            ..Commit::default()
        },
    )
    .await?;
    let before = observe(&*store, &lease).await?;
    let cases = [
        ("journal gap", ticks([3, 5]), published([2])),
        ("journal repeat", ticks([3, 3]), published([2])),
        ("journal backwards", ticks([3, 4, 2]), published([2])),
        ("event gap", ticks([3]), published([2, 4])),
        ("event repeat", ticks([3]), published([2, 2])),
    ];
    for (case, journal, events) in cases {
        let result = store
            .commit(
                &lease,
                Commit {
                    journal,
                    events,
                    ..Commit::default()
                },
            )
            .await;
        assert_corrupt(result, case)?;
        assert_eq!(
            observe(&*store, &lease).await?,
            before,
            "{case}: nothing is written"
        );
    }
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(3..=5),
            events: published(2..=4),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(all_events(&*store, "run").await?, published(1..=4));
    Ok(())
}

/// `events_after` pages through the events exactly: no gaps, no duplicates, at most `limit`.
async fn events_after_pages_exactly(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    let mut next = 1;
    for (journal_seq, size) in (2..).zip([1, 5, 0, 7, 10]) {
        commit(
            &*store,
            &lease,
            Commit {
                journal: ticks([journal_seq]),
                events: published(next..next + size),
                ..Commit::default()
            },
        )
        .await?;
        next += size;
    }
    let total = next - 1;
    assert_eq!(total, 23);
    let all = published(1..=total);
    assert_eq!(record(&*store, "run").await?.last_event_seq, total);

    for limit in [1usize, 4, 7, 23, 100] {
        let mut after = 0;
        let mut seen = Vec::new();
        loop {
            let page = store.events_after("run", after, limit).await?;
            let remaining = usize::try_from(total - after)?;
            assert_eq!(
                page.len(),
                remaining.min(limit),
                "limit {limit} after {after}"
            );
            let Some((last, _)) = page.last() else { break };
            assert_eq!(page[0].0, after + 1, "limit {limit}: no gap after {after}");
            after = *last;
            seen.extend(page);
        }
        assert_eq!(seen, all, "limit {limit}");
    }
    assert_eq!(store.events_after("run", 10, 3).await?, published(11..=13));
    assert_eq!(store.events_after("run", 22, 5).await?, published([23]));
    assert_eq!(store.events_after("run", 23, 5).await?, Vec::new());
    assert_eq!(store.events_after("run", 1_000, 5).await?, Vec::new());
    assert_eq!(store.events_after("run", 0, 0).await?, Vec::new());

    // Readers need no lease: after the run finishes, its events are still there.
    commit(
        &*store,
        &lease,
        finish(
            RunStatus::Completed,
            Some(json!({"type": "stop", "value": 0})),
            None,
        ),
    )
    .await?;
    assert_eq!(all_events(&*store, "run").await?, all);

    // A run without events, and an unknown run.
    create(&*store, "quiet", &flow()).await?;
    assert_eq!(store.events_after("quiet", 0, 10).await?, Vec::new());
    match store.events_after("nobody", 0, 10).await {
        Err(StoreError::UnknownRun { run_id }) => assert_eq!(run_id, "nobody"),
        other => bail!("events_after of an unknown run: expected UnknownRun, got {other:?}"),
    }
    Ok(())
}

/// A snapshot replaces the previous one, and `load` returns only the journal after it.
async fn snapshot_replaces_and_trims_journal(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=5),
            events: published(1..=2),
            snapshot: Some((4, json!({"state": "at 4"}))),
            ..Commit::default()
        },
    )
    .await?;
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.snapshot, Some((4, json!({"state": "at 4"}))));
    assert_eq!(loaded.journal, ticks([5]));
    assert_eq!(
        loaded.events,
        published(1..=2),
        "a snapshot keeps every event"
    );

    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(6..=7),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(store.load(&lease).await?.journal, ticks(5..=7));

    // A snapshot alone, covering the journal so far.
    commit(
        &*store,
        &lease,
        Commit {
            snapshot: Some((7, json!({"state": "at 7"}))),
            ..Commit::default()
        },
    )
    .await?;
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.snapshot, Some((7, json!({"state": "at 7"}))));
    assert_eq!(loaded.journal, Vec::new());

    // The journal continues after the snapshot, and a later snapshot replaces it.
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(8..=10),
            events: published([3]),
            snapshot: Some((9, json!({"state": "at 9"}))),
            ..Commit::default()
        },
    )
    .await?;
    let expected = LoadedRun {
        snapshot: Some((9, json!({"state": "at 9"}))),
        journal: ticks([10]),
        events: published(1..=3),
    };
    assert_eq!(store.load(&lease).await?, expected);

    // A new owner loads the same.
    commit(&*store, &lease, release(false, None)).await?;
    let claim = claim_run(&*store, "worker-b", "run", &options(&[flow()])).await?;
    assert_eq!(store.load(&claim.lease).await?, expected);
    commit(
        &*store,
        &claim.lease,
        Commit {
            journal: ticks([11]),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(store.load(&claim.lease).await?.journal, ticks(10..=11));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Fencing.

/// A lease with the wrong epoch or owner is fenced on every call, and writes nothing.
async fn stale_lease_is_fenced(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2]),
            events: published([1]),
            ..Commit::default()
        },
    )
    .await?;
    send(&*store, "run", "m1", event("m1")).await?;
    let consumed: Vec<i64> = store.inbox(&lease).await?.iter().map(|m| m.id).collect();
    let before = observe(&*store, &lease).await?;

    let stale = [
        Lease {
            epoch: lease.epoch + 1,
            ..lease.clone()
        },
        Lease {
            epoch: 0,
            ..lease.clone()
        },
        Lease {
            owner: "worker-b".to_owned(),
            ..lease.clone()
        },
        Lease {
            owner: "worker-b".to_owned(),
            epoch: lease.epoch + 1,
            ..lease.clone()
        },
    ];
    for stale in &stale {
        assert_fenced(store.load(stale).await, stale, "load")?;
        assert_fenced(store.inbox(stale).await, stale, "inbox")?;
        let result = store
            .commit(stale, everything(3, 2, consumed.clone()))
            .await;
        assert_fenced(result, stale, "commit")?;
        let result = store.commit(stale, release(false, None)).await;
        assert_fenced(result, stale, "release")?;
        let result = store.commit(stale, Commit::default()).await;
        assert_fenced(result, stale, "an empty commit")?;
        assert_eq!(
            observe(&*store, &lease).await?,
            before,
            "{stale:?} wrote nothing"
        );
    }
    // A lease of a run that does not exist.
    let nobody = Lease {
        run_id: "nobody".to_owned(),
        ..lease.clone()
    };
    assert_fenced(store.load(&nobody).await, &nobody, "load of an unknown run")?;
    let result = store.commit(&nobody, everything(2, 1, Vec::new())).await;
    assert_fenced(result, &nobody, "commit to an unknown run")?;
    assert_eq!(store.get_run("nobody").await?, None);

    // The real lease still writes.
    commit(&*store, &lease, everything(3, 2, consumed)).await?;
    assert_eq!(status(&*store, "run").await?, RunStatus::Completed);
    Ok(())
}

/// After a release, the old lease is fenced and its writes change nothing.
async fn released_lease_is_fenced(store: DynStore) -> Result<()> {
    for (run_id, idle) in [("busy", false), ("idle", true)] {
        let lease = create_owned(&*store, run_id, &flow(), "worker-a").await?;
        commit(
            &*store,
            &lease,
            Commit {
                journal: ticks([2]),
                events: published([1]),
                end: Some(CommitEnd::Release {
                    idle,
                    wake_after: None,
                }),
                ..Commit::default()
            },
        )
        .await?;
        let released = record(&*store, run_id).await?;
        assert_eq!(released.owner, None, "{run_id}");
        ensure!(
            released.epoch > lease.epoch,
            "{run_id}: a release increases the epoch"
        );

        assert_fenced(store.load(&lease).await, &lease, "load after release")?;
        assert_fenced(store.inbox(&lease).await, &lease, "inbox after release")?;
        let result = store.commit(&lease, everything(3, 2, Vec::new())).await;
        assert_fenced(result, &lease, "commit after release")?;
        let result = store.commit(&lease, release(false, None)).await;
        assert_fenced(result, &lease, "a second release")?;
        assert_eq!(
            record(&*store, run_id).await?,
            released,
            "{run_id}: nothing written"
        );
        assert_eq!(all_events(&*store, run_id).await?, published([1]));

        // The next owner sees exactly what the first committed.
        if idle {
            send(&*store, run_id, "wake", event("wake")).await?;
        }
        let claim = claim_run(&*store, "worker-b", run_id, &options(&[flow()])).await?;
        ensure!(
            claim.lease.epoch > released.epoch,
            "a claim increases the epoch"
        );
        let loaded = store.load(&claim.lease).await?;
        assert_eq!(
            loaded.journal,
            vec![(1, start_of(run_id)), (2, json!({"tick": 2}))]
        );
        assert_eq!(loaded.events, published([1]));
        // The first worker, coming back with its lease, is still fenced.
        let result = store.commit(&lease, everything(3, 2, Vec::new())).await;
        assert_fenced(result, &lease, "commit after another's claim")?;
        assert_eq!(store.load(&claim.lease).await?, loaded);
    }
    Ok(())
}

/// After another worker recovers a run from an expired owner, the old lease is fenced.
async fn recovered_lease_is_fenced(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2]),
            events: published([1]),
            ..Commit::default()
        },
    )
    .await?;
    tokio::time::sleep(PAST_SHORT_TTL).await;
    store.heartbeat("worker-b", &[flow()]).await?;
    let claims = store
        .claim(
            "worker-b",
            &ClaimOptions {
                lease_ttl: SHORT_TTL,
                ..options(&[flow()])
            },
        )
        .await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    let claim = &claims[0];
    assert!(claim.recovered);
    assert_eq!(claim.lease.epoch, lease.epoch + 1);

    // The old owner wakes up, heartbeats and tries to go on: fenced, nothing written.
    store.heartbeat("worker-a", &[flow()]).await?;
    let before = observe(&*store, &claim.lease).await?;
    assert_fenced(store.load(&lease).await, &lease, "load by the old owner")?;
    assert_fenced(store.inbox(&lease).await, &lease, "inbox of the old owner")?;
    let result = store.commit(&lease, everything(3, 2, Vec::new())).await;
    assert_fenced(result, &lease, "commit by the old owner")?;
    let result = store.commit(&lease, release(true, None)).await;
    assert_fenced(result, &lease, "release by the old owner")?;
    assert_eq!(observe(&*store, &claim.lease).await?, before);
    assert_eq!(before.record.owner.as_deref(), Some("worker-b"));
    assert_eq!(before.record.status, RunStatus::Running);

    // The new owner writes.
    commit(&*store, &claim.lease, everything(3, 2, Vec::new())).await?;
    assert_eq!(status(&*store, "run").await?, RunStatus::Completed);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Claiming.

/// `claim` returns only runs of served workflows: both name and fingerprint must match.
async fn claim_only_served_workflows(store: DynStore) -> Result<()> {
    create(&*store, "served", &key("alpha", "fp-1")).await?;
    create(&*store, "other-fingerprint", &key("alpha", "fp-2")).await?;
    create(&*store, "other-name", &key("beta", "fp-1")).await?;
    create(&*store, "also-served", &key("gamma", "fp-3")).await?;
    store.heartbeat("worker-a", &[key("alpha", "fp-1")]).await?;
    store.heartbeat("worker-b", &[key("alpha", "fp-2")]).await?;

    let mut claimed = claim_ids(&*store, "worker-a", &options(&[key("alpha", "fp-1")])).await?;
    assert_eq!(claimed, vec!["served"]);
    assert_eq!(
        claim_ids(&*store, "worker-a", &options(&[])).await?,
        Vec::<String>::new()
    );
    claimed = claim_ids(
        &*store,
        "worker-a",
        &options(&[
            key("alpha", "fp-1"),
            key("gamma", "fp-3"),
            key("delta", "fp-2"),
        ]),
    )
    .await?;
    assert_eq!(claimed, vec!["also-served"]);
    for run_id in ["other-fingerprint", "other-name"] {
        let run = record(&*store, run_id).await?;
        assert_eq!(
            (run.owner, run.epoch),
            (None, 1),
            "{run_id} stays unclaimed"
        );
    }
    // A worker serving the other shapes gets them.
    let mut claimed = claim_ids(
        &*store,
        "worker-b",
        &options(&[key("alpha", "fp-2"), key("beta", "fp-1")]),
    )
    .await?;
    claimed.sort();
    assert_eq!(claimed, vec!["other-fingerprint", "other-name"]);
    Ok(())
}

/// A run whose owner heartbeats is not claimed; once the heartbeat is older than the TTL, it is
/// recovered: `recovered`, one more recovery, one more epoch.
async fn claim_skips_live_owner_and_recovers_expired(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    let long = options(&[flow()]);
    assert_not_claimable(&*store, "run", &long).await?;

    tokio::time::sleep(PAST_SHORT_TTL).await;
    // The heartbeat is older than SHORT_TTL but not than LONG_TTL: TTL is the claimer's option.
    assert_not_claimable(&*store, "run", &long).await?;
    // A fresh heartbeat keeps the owner alive under a TTL shorter than the sleep.
    store.heartbeat("worker-a", &[flow()]).await?;
    let medium = ClaimOptions {
        lease_ttl: Duration::from_millis(600),
        ..options(&[flow()])
    };
    assert_not_claimable(&*store, "run", &medium).await?;
    let run = record(&*store, "run").await?;
    assert_eq!(
        (run.owner.as_deref(), run.epoch, run.recoveries),
        (Some("worker-a"), 1, 0)
    );

    tokio::time::sleep(Duration::from_millis(900)).await;
    let claims = store.claim("worker-b", &medium).await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert_eq!(
        claims[0],
        Claim {
            lease: Lease {
                run_id: "run".to_owned(),
                owner: "worker-b".to_owned(),
                epoch: lease.epoch + 1,
            },
            recovered: true,
        }
    );
    let run = record(&*store, "run").await?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner.as_deref(), Some("worker-b"));
    assert_eq!(run.epoch, lease.epoch + 1);
    assert_eq!(run.recoveries, 1);

    // worker-b never heartbeated: it is dead at once, and worker-c recovers again.
    let claim = claim_run(&*store, "worker-c", "run", &long).await?;
    assert!(claim.recovered);
    assert_eq!(claim.lease.epoch, lease.epoch + 2);
    assert_eq!(record(&*store, "run").await?.recoveries, 2);
    Ok(())
}

/// An owner that never heartbeated is dead: its runs are recovered at once. Unowned runs are
/// claimed without a recovery.
async fn claim_recovers_owner_without_heartbeat(store: DynStore) -> Result<()> {
    let ghost = create_owned(&*store, "orphan", &flow(), "ghost").await?;
    create(&*store, "unowned", &flow()).await?;
    store.heartbeat("worker-a", &[flow()]).await?;
    let mut claims = store.claim("worker-a", &options(&[flow()])).await?;
    claims.sort_by(|a, b| a.lease.run_id.cmp(&b.lease.run_id));
    assert_eq!(
        claims,
        vec![
            Claim {
                lease: Lease {
                    run_id: "orphan".to_owned(),
                    owner: "worker-a".to_owned(),
                    epoch: ghost.epoch + 1,
                },
                recovered: true,
            },
            Claim {
                lease: Lease {
                    run_id: "unowned".to_owned(),
                    owner: "worker-a".to_owned(),
                    epoch: 2,
                },
                recovered: false,
            },
        ]
    );
    assert_eq!(record(&*store, "orphan").await?.recoveries, 1);
    assert_eq!(record(&*store, "unowned").await?.recoveries, 0);
    for claim in &claims {
        let run = record(&*store, &claim.lease.run_id).await?;
        assert_eq!(run.owner.as_deref(), Some("worker-a"));
        assert_eq!(run.epoch, claim.lease.epoch);
        assert_eq!(run.status, RunStatus::Running);
    }
    assert_fenced(store.load(&ghost).await, &ghost, "the ghost's load")?;
    // worker-a is alive: nothing more to claim.
    assert_eq!(
        claim_ids(&*store, "worker-b", &options(&[flow()])).await?,
        Vec::<String>::new()
    );
    Ok(())
}

/// `claim` returns at most `limit` runs, and every run once.
async fn claim_respects_limit(store: DynStore) -> Result<()> {
    for i in 0..5 {
        create(&*store, &format!("run-{i}"), &flow()).await?;
    }
    store.heartbeat("worker-a", &[flow()]).await?;
    let limited = |limit| ClaimOptions {
        limit,
        ..options(&[flow()])
    };
    assert_eq!(store.claim("worker-a", &limited(0)).await?, Vec::new());
    let mut seen = HashSet::new();
    for expected in [2, 2, 1, 0] {
        let claims = store.claim("worker-a", &limited(2)).await?;
        assert_eq!(claims.len(), expected, "{claims:?}");
        for claim in claims {
            assert!(!claim.recovered);
            assert_eq!(claim.lease.epoch, 2);
            ensure!(
                seen.insert(claim.lease.run_id.clone()),
                "{claim:?} claimed twice"
            );
        }
    }
    assert_eq!(seen.len(), 5);
    Ok(())
}

/// Claims every claimable run for `worker`, a few at a time, until none is left.
async fn claim_all(store: DynStore, worker: String, options: ClaimOptions) -> Result<Vec<String>> {
    store.heartbeat(&worker, &options.workflows).await?;
    let mut claimed = Vec::new();
    loop {
        let claims = store.claim(&worker, &options).await?;
        if claims.is_empty() {
            return Ok(claimed);
        }
        for claim in claims {
            ensure!(
                !claim.recovered,
                "{worker} recovered {claim:?} from a live worker"
            );
            ensure!(claim.lease.owner == worker);
            claimed.push(claim.lease.run_id);
        }
        tokio::task::yield_now().await;
    }
}

/// Checks that the claimers' runs are `expected` exactly once each, owned by their claimer.
async fn check_disjoint(
    store: &dyn Store,
    expected: &[String],
    claimed: &[(String, Vec<String>)],
) -> Result<()> {
    let mut seen = HashSet::new();
    for (worker, runs) in claimed {
        for run_id in runs {
            ensure!(seen.insert(run_id.clone()), "{run_id} was claimed twice");
            let run = record(store, run_id).await?;
            assert_eq!(run.owner.as_deref(), Some(worker.as_str()), "{run_id}");
            assert_eq!(run.epoch, 2, "{run_id} was claimed once");
        }
    }
    let expected: HashSet<String> = expected.iter().cloned().collect();
    assert_eq!(seen, expected, "every run is claimed");
    Ok(())
}

/// Concurrent claimers never get the same run: two claims joined on one task, and four workers
/// on their own tasks.
async fn concurrent_claims_never_overlap(store: DynStore) -> Result<()> {
    let workflow = flow();
    let few = ClaimOptions {
        limit: 3,
        ..options(std::slice::from_ref(&workflow))
    };

    let joined: Vec<String> = (0..40).map(|i| format!("joined-{i:02}")).collect();
    for run_id in &joined {
        create(&*store, run_id, &workflow).await?;
    }
    store.heartbeat("worker-a", &[flow()]).await?;
    store.heartbeat("worker-b", &[flow()]).await?;
    // Single claims, racing.
    let (a, b) = tokio::join!(store.claim("worker-a", &few), store.claim("worker-b", &few));
    let (a, b) = (a?, b?);
    assert_eq!(a.len() + b.len(), 6, "{a:?} {b:?}");
    let first: Vec<(String, Vec<String>)> = vec![
        (
            "worker-a".to_owned(),
            a.into_iter().map(|c| c.lease.run_id).collect(),
        ),
        (
            "worker-b".to_owned(),
            b.into_iter().map(|c| c.lease.run_id).collect(),
        ),
    ];
    // Then two loops, racing until all are claimed.
    let (a, b) = tokio::join!(
        claim_all(store.clone(), "worker-a".to_owned(), few.clone()),
        claim_all(store.clone(), "worker-b".to_owned(), few.clone()),
    );
    let mut claimed = first;
    claimed[0].1.extend(a?);
    claimed[1].1.extend(b?);
    check_disjoint(&*store, &joined, &claimed).await?;

    let spawned: Vec<String> = (0..60).map(|i| format!("spawned-{i:02}")).collect();
    for run_id in &spawned {
        create(&*store, run_id, &workflow).await?;
    }
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let worker = format!("worker-{i}");
            let task = tokio::spawn(claim_all(store.clone(), worker.clone(), few.clone()));
            (worker, task)
        })
        .collect();
    let mut claimed = Vec::new();
    for (worker, task) in tasks {
        claimed.push((worker, task.await??));
    }
    check_disjoint(&*store, &spawned, &claimed).await?;
    Ok(())
}

/// Two store instances on the same data (two processes) never claim the same run.
async fn concurrent_claims_across_instances(setup: Setup) -> Result<()> {
    let store = setup.store.clone();
    let other = setup.open_again().await?;
    let runs: Vec<String> = (0..40).map(|i| format!("run-{i:02}")).collect();
    for run_id in &runs {
        create(&*store, run_id, &flow()).await?;
    }
    let few = ClaimOptions {
        limit: 3,
        ..options(&[flow()])
    };
    // Both workers heartbeat first, so that neither takes the other's runs as a recovery.
    store.heartbeat("worker-a", &[flow()]).await?;
    other.heartbeat("worker-b", &[flow()]).await?;
    let a = tokio::spawn(claim_all(store.clone(), "worker-a".to_owned(), few.clone()));
    let b = tokio::spawn(claim_all(other.clone(), "worker-b".to_owned(), few.clone()));
    let claimed = vec![
        ("worker-a".to_owned(), a.await??),
        ("worker-b".to_owned(), b.await??),
    ];
    check_disjoint(&*store, &runs, &claimed).await?;
    check_disjoint(&*other, &runs, &claimed).await?;
    Ok(())
}

/// `claim_run` claims one given run when it is claimable (whatever its workflow), else `None`.
async fn claim_run_claims_one_run(store: DynStore) -> Result<()> {
    create(&*store, "target", &key("unserved", "fp-x")).await?;
    create(&*store, "bystander-run", &key("unserved", "fp-x")).await?;
    let nothing_served = options(&[]);
    let claim = claim_run(&*store, "worker-a", "target", &nothing_served).await?;
    assert_eq!(
        claim,
        Claim {
            lease: Lease {
                run_id: "target".to_owned(),
                owner: "worker-a".to_owned(),
                epoch: 2,
            },
            recovered: false,
        }
    );
    let run = record(&*store, "bystander-run").await?;
    assert_eq!(
        (run.owner, run.epoch),
        (None, 1),
        "claim_run claims only its run"
    );

    // Not claimable: owned by a live worker, waiting, finished, unknown.
    store.heartbeat("worker-a", &[]).await?;
    assert_eq!(
        store
            .claim_run("worker-b", "target", &nothing_served)
            .await?,
        None
    );
    let waiting = create_owned(&*store, "waiting", &flow(), "worker-a").await?;
    commit(&*store, &waiting, release(true, None)).await?;
    assert_eq!(
        store
            .claim_run("worker-b", "waiting", &nothing_served)
            .await?,
        None
    );
    let finished = create_owned(&*store, "finished", &flow(), "worker-a").await?;
    commit(
        &*store,
        &finished,
        finish(RunStatus::Failed, None, Some("boom")),
    )
    .await?;
    assert_eq!(
        store
            .claim_run("worker-b", "finished", &nothing_served)
            .await?,
        None
    );
    assert_eq!(
        store
            .claim_run("worker-b", "nobody", &nothing_served)
            .await?,
        None
    );

    // An orphan of a dead owner is recovered.
    let orphan = create_owned(&*store, "orphan", &flow(), "ghost").await?;
    let claim = claim_run(&*store, "worker-b", "orphan", &nothing_served).await?;
    assert!(claim.recovered);
    assert_eq!(claim.lease.epoch, orphan.epoch + 1);
    assert_eq!(record(&*store, "orphan").await?.recoveries, 1);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parking.

/// With `max_recoveries = N`, recoveries 1..=N claim, the (N+1)-th parks; `unpark` resumes.
async fn parking_after_max_recoveries(store: DynStore) -> Result<()> {
    let limit = 2;
    let parking = ClaimOptions {
        max_recoveries: limit,
        ..options(&[flow()])
    };
    // Owners that never heartbeat are dead at once: each claim is a recovery.
    let mut lease = create_owned(&*store, "crashy", &flow(), "ghost-0").await?;
    for n in 1..=limit {
        let claims = store.claim(&format!("ghost-{n}"), &parking).await?;
        assert_eq!(claims.len(), 1, "recovery {n}: {claims:?}");
        assert!(claims[0].recovered);
        assert_eq!(claims[0].lease.epoch, lease.epoch + 1);
        lease = claims[0].lease.clone();
        assert_eq!(record(&*store, "crashy").await?.recoveries, n);
    }
    let claims = store.claim("ghost-last", &parking).await?;
    assert_eq!(claims, Vec::new(), "the recovery past the limit parks");
    let parked = record(&*store, "crashy").await?;
    assert_eq!(parked.status, RunStatus::Parked);
    assert_eq!(parked.owner, None);
    ensure!(parked.error.is_some(), "a parked run says why");
    assert_fenced(
        store.load(&lease).await,
        &lease,
        "the last owner after parking",
    )?;
    let result = store.commit(&lease, everything(2, 1, Vec::new())).await;
    assert_fenced(result, &lease, "the last owner's commit after parking")?;
    assert_eq!(status(&*store, "crashy").await?, RunStatus::Parked);
    assert_not_claimable(&*store, "crashy", &parking).await?;
    assert_not_claimable(&*store, "crashy", &options(&[flow()])).await?;
    assert_eq!(
        store
            .list_runs(&RunFilter {
                status: vec![RunStatus::Parked],
                ..RunFilter::default()
            })
            .await?
            .len(),
        1
    );

    // unpark: Running, recoveries reset, claimable without a recovery.
    assert!(store.unpark("crashy").await?);
    assert!(
        !store.unpark("crashy").await?,
        "a second unpark finds nothing parked"
    );
    let run = record(&*store, "crashy").await?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.recoveries, 0);
    assert_eq!(run.owner, None);
    let claims = store.claim("worker-a", &parking).await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert!(!claims[0].recovered);
    assert_eq!(record(&*store, "crashy").await?.recoveries, 0);
    let loaded = store.load(&claims[0].lease).await?;
    assert_eq!(loaded.journal, vec![(1, start_of("crashy"))]);

    // With no recovery allowed, claim_run parks at the first.
    create_owned(&*store, "fragile", &flow(), "ghost").await?;
    let strict = ClaimOptions {
        max_recoveries: 0,
        ..options(&[flow()])
    };
    assert_eq!(store.claim_run("worker-a", "fragile", &strict).await?, None);
    assert_eq!(status(&*store, "fragile").await?, RunStatus::Parked);

    // unpark of runs that are not parked.
    assert!(!store.unpark("nobody").await?);
    create(&*store, "healthy", &flow()).await?;
    assert!(!store.unpark("healthy").await?);
    assert_eq!(status(&*store, "healthy").await?, RunStatus::Running);
    Ok(())
}

/// A parked run keeps messages sent to it; the cancel message makes it `Running` and claimable.
async fn cancel_message_resumes_parked_run(store: DynStore) -> Result<()> {
    create_owned(&*store, "parked", &flow(), "ghost").await?;
    let strict = ClaimOptions {
        max_recoveries: 0,
        ..options(&[flow()])
    };
    assert_eq!(store.claim("worker-a", &strict).await?, Vec::new());
    assert_eq!(status(&*store, "parked").await?, RunStatus::Parked);

    assert_eq!(
        send(&*store, "parked", "hello", event("hello")).await?,
        Sent::Accepted
    );
    assert_eq!(
        status(&*store, "parked").await?,
        RunStatus::Parked,
        "an ordinary event"
    );
    assert_not_claimable(&*store, "parked", &strict).await?;

    assert_eq!(
        send(&*store, "parked", "stop", Mail::Cancel).await?,
        Sent::Accepted
    );
    assert_eq!(status(&*store, "parked").await?, RunStatus::Running);
    let claims = store.claim("worker-a", &strict).await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert!(!claims[0].recovered);
    let inbox = store.inbox(&claims[0].lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["hello", "stop"]);
    assert_eq!(inbox[1].mail, Mail::Cancel);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Releasing.

/// `Release { idle: true }` makes the run `Waiting` and unowned; an event makes it claimable.
async fn release_idle_waits_for_events(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(&*store, &lease, release(true, None)).await?;
    let run = record(&*store, "run").await?;
    assert_eq!(run.status, RunStatus::Waiting);
    assert_eq!(run.owner, None);
    assert_eq!(run.epoch, lease.epoch + 1);
    assert_not_claimable(&*store, "run", &options(&[flow()])).await?;

    assert_eq!(
        send(&*store, "run", "m1", event("m1")).await?,
        Sent::Accepted
    );
    let run = record(&*store, "run").await?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner, None);
    let claims = store.claim("worker-b", &options(&[flow()])).await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert!(!claims[0].recovered);
    assert_eq!(claims[0].lease.epoch, lease.epoch + 2);
    let inbox = store.inbox(&claims[0].lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["m1"]);
    assert_eq!(inbox[0].mail, event("m1"));

    // Waiting again, with a far wake-up time: an event still wakes it at once.
    commit(
        &*store,
        &claims[0].lease,
        Commit {
            consumed: vec![inbox[0].id],
            ..release(true, Some(Duration::from_secs(3600)))
        },
    )
    .await?;
    assert_eq!(status(&*store, "run").await?, RunStatus::Waiting);
    assert_not_claimable(&*store, "run", &options(&[flow()])).await?;
    send(&*store, "run", "m2", event("m2")).await?;
    let claim = claim_run(&*store, "worker-c", "run", &options(&[flow()])).await?;
    assert_eq!(msg_ids(&store.inbox(&claim.lease).await?), vec!["m2"]);
    Ok(())
}

/// An idle release with an unconsumed inbox message keeps the run `Running` and claimable; one
/// that consumes the last message in the same commit waits.
async fn release_idle_with_unread_inbox_stays_running(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    send(&*store, "run", "early", event("early")).await?;
    commit(&*store, &lease, release(true, None)).await?;
    let run = record(&*store, "run").await?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner, None);
    let claims = store.claim("worker-b", &options(&[flow()])).await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert!(!claims[0].recovered);
    let inbox = store.inbox(&claims[0].lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["early"]);

    // Consuming it in the releasing commit leaves nothing unread: the run waits.
    commit(
        &*store,
        &claims[0].lease,
        Commit {
            journal: ticks([2]),
            consumed: vec![inbox[0].id],
            ..release(true, None)
        },
    )
    .await?;
    assert_eq!(status(&*store, "run").await?, RunStatus::Waiting);
    assert_not_claimable(&*store, "run", &options(&[flow()])).await?;
    Ok(())
}

/// `Release { idle: false }` (a graceful shutdown) leaves the run `Running`, unowned and
/// claimable at once by another worker, without a recovery.
async fn release_not_idle_is_claimable_at_once(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    let created = record(&*store, "run").await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2]),
            ..release(false, None)
        },
    )
    .await?;
    let run = record(&*store, "run").await?;
    ensure!(
        run.updated_at_ms > created.updated_at_ms,
        "a release changes the run: updated_at_ms {} -> {}",
        created.updated_at_ms,
        run.updated_at_ms
    );
    assert_eq!(run.created_at_ms, created.created_at_ms);
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner, None);
    assert_eq!(run.epoch, lease.epoch + 1);
    // worker-a is still alive: that does not matter, it let go.
    store.heartbeat("worker-a", &[flow()]).await?;
    let claims = store.claim("worker-b", &options(&[flow()])).await?;
    assert_eq!(
        claims,
        vec![Claim {
            lease: Lease {
                run_id: "run".to_owned(),
                owner: "worker-b".to_owned(),
                epoch: lease.epoch + 2,
            },
            recovered: false,
        }]
    );
    assert_eq!(record(&*store, "run").await?.recoveries, 0);
    assert_eq!(store.load(&claims[0].lease).await?.journal.len(), 2);
    Ok(())
}

/// `Release { idle: true, wake_after }`: not claimable before the time, claimable after it.
async fn release_idle_wakes_after(store: DynStore) -> Result<()> {
    let wake_after = Duration::from_secs(1);
    let lease = create_owned(&*store, "sleeper", &flow(), "worker-a").await?;
    let released = Instant::now();
    commit(&*store, &lease, release(true, Some(wake_after))).await?;
    assert_eq!(status(&*store, "sleeper").await?, RunStatus::Waiting);
    // The store released the run after `released`: by its clock, less time than
    // `released.elapsed()` has passed (give or take a millisecond of rounding).
    let too_early = |claimed: bool| {
        ensure!(
            !claimed || released.elapsed() + Duration::from_millis(50) >= wake_after,
            "claimable {:?} after an idle release with wake_after {wake_after:?}",
            released.elapsed()
        );
        Ok(claimed)
    };
    store.heartbeat("worker-b", &[flow()]).await?;
    let early = claim_ids(&*store, "worker-b", &options(&[flow()])).await?;
    if too_early(!early.is_empty())? {
        // The machine was slow enough for the time to pass: claimed, rightly.
        return Ok(());
    }
    let early = store
        .claim_run("worker-b", "sleeper", &options(&[flow()]))
        .await?;
    if too_early(early.is_some())? {
        return Ok(());
    }

    tokio::time::sleep(wake_after + Duration::from_millis(200)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let claim = loop {
        let claims = store.claim("worker-b", &options(&[flow()])).await?;
        if let Some(claim) = claims.into_iter().next() {
            break claim;
        }
        ensure!(
            Instant::now() < deadline,
            "not claimable {:?} after its wake-up time",
            released.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(
        released.elapsed() + Duration::from_millis(50) >= wake_after,
        "claimed before its wake-up time"
    );
    assert_eq!(claim.lease.run_id, "sleeper");
    assert!(!claim.recovered);
    assert_eq!(claim.lease.epoch, lease.epoch + 2);
    assert_eq!(status(&*store, "sleeper").await?, RunStatus::Running);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The inbox.

/// `send` queues once per message id and run; the inbox lists unconsumed messages in order.
async fn inbox_send_and_dedup(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    create(&*store, "other", &flow()).await?;
    assert_eq!(
        send(&*store, "run", "m1", event("first")).await?,
        Sent::Accepted
    );
    assert_eq!(
        send(&*store, "run", "m1", event("replaced?")).await?,
        Sent::Duplicate
    );
    assert_eq!(
        send(&*store, "other", "m1", event("first")).await?,
        Sent::Accepted
    );
    assert_eq!(
        send(&*store, "run", "m2", event("second")).await?,
        Sent::Accepted
    );
    assert_eq!(
        send(&*store, "run", "m0", event("third")).await?,
        Sent::Accepted
    );

    let inbox = store.inbox(&lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["m1", "m2", "m0"], "oldest first");
    assert_eq!(
        inbox[0].mail,
        event("first"),
        "a duplicate does not replace"
    );
    assert_eq!(inbox[1].mail, event("second"));
    assert_eq!(inbox[2].mail, event("third"));
    ensure!(
        inbox.windows(2).all(|pair| pair[0].id < pair[1].id),
        "inbox ids grow: {inbox:?}"
    );

    // Consumed messages are still remembered: a resend is a duplicate.
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2]),
            consumed: vec![inbox[0].id],
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(
        send(&*store, "run", "m1", event("again")).await?,
        Sent::Duplicate
    );
    assert_eq!(msg_ids(&store.inbox(&lease).await?), vec!["m2", "m0"]);
    Ok(())
}

/// Messages listed in `Commit::consumed` leave the inbox; other runs' messages cannot be
/// consumed.
async fn inbox_consumed_by_commit(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    let other = create_owned(&*store, "other", &flow(), "worker-a").await?;
    for i in 1..=4 {
        send(&*store, "run", &format!("m{i}"), event(&format!("m{i}"))).await?;
    }
    send(&*store, "other", "theirs", event("theirs")).await?;
    let inbox = store.inbox(&lease).await?;
    let theirs = store.inbox(&other).await?;
    assert_eq!(msg_ids(&theirs), vec!["theirs"]);

    // Another run's row is not this lease's to consume: the commit ignores it or fails as
    // corrupt, but it never consumes it.
    let result = store
        .commit(
            &lease,
            Commit {
                consumed: vec![theirs[0].id],
                ..Commit::default()
            },
        )
        .await;
    ensure!(
        matches!(result, Ok(()) | Err(StoreError::Corrupt(_))),
        "consuming another run's row: {result:?}"
    );
    assert_eq!(
        store.inbox(&other).await?,
        theirs,
        "a commit consumes only its run's rows"
    );
    assert_eq!(store.inbox(&lease).await?, inbox);

    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2]),
            consumed: vec![inbox[0].id, inbox[2].id],
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(msg_ids(&store.inbox(&lease).await?), vec!["m2", "m4"]);
    assert_eq!(store.inbox(&other).await?, theirs);

    // The next owner sees the same inbox.
    commit(&*store, &lease, release(false, None)).await?;
    let claim = claim_run(&*store, "worker-b", "run", &options(&[flow()])).await?;
    assert_eq!(msg_ids(&store.inbox(&claim.lease).await?), vec!["m2", "m4"]);
    commit(
        &*store,
        &claim.lease,
        Commit {
            consumed: vec![inbox[1].id, inbox[3].id],
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(store.inbox(&claim.lease).await?, Vec::new());
    Ok(())
}

/// `send` fails with `UnknownRun` for an unknown run and `RunFinished` for a finished one.
async fn send_errors(store: DynStore) -> Result<()> {
    match store.send("nobody", "m1", event("m1")).await {
        Err(StoreError::UnknownRun { run_id }) => assert_eq!(run_id, "nobody"),
        other => bail!("send to an unknown run: expected UnknownRun, got {other:?}"),
    }
    assert_eq!(store.get_run("nobody").await?, None, "send creates no run");

    let outcomes = [
        (
            RunStatus::Completed,
            Some(json!({"type": "stop", "value": 1})),
            None,
        ),
        (RunStatus::Failed, None, Some("boom")),
        (RunStatus::Cancelled, None, Some("cancelled by operator")),
    ];
    for (outcome, result, error) in outcomes {
        let run_id = format!("run-{outcome}");
        let lease = create_owned(&*store, &run_id, &flow(), "worker-a").await?;
        send(&*store, &run_id, "consumed", event("consumed")).await?;
        send(&*store, &run_id, "unread", event("unread")).await?;
        let inbox = store.inbox(&lease).await?;
        commit(
            &*store,
            &lease,
            Commit {
                consumed: vec![inbox[0].id],
                ..finish(outcome, result, error)
            },
        )
        .await?;
        // A new message is too late.
        match store.send(&run_id, "after", event("after")).await {
            Err(StoreError::RunFinished { run_id: id, status }) => {
                assert_eq!(id, run_id);
                assert_eq!(status, outcome);
            }
            other => bail!("send to a {outcome} run: expected RunFinished, got {other:?}"),
        }
        // A retry of a message the run consumed was delivered: a duplicate, not an error (the
        // three stores agree; the trait's documentation does not order the two rules).
        assert_eq!(
            send(&*store, &run_id, "consumed", event("consumed")).await?,
            Sent::Duplicate,
            "a retried send of a consumed message to a {outcome} run"
        );
        // A message still unread when the run finished was never delivered: either answer
        // queues nothing.
        let result = store.send(&run_id, "unread", event("unread")).await;
        ensure!(
            matches!(
                result,
                Ok(Sent::Duplicate) | Err(StoreError::RunFinished { .. })
            ),
            "a retried send of an unread message to a {outcome} run: {result:?}"
        );
        assert_eq!(status(&*store, &run_id).await?, outcome);
    }
    Ok(())
}

/// Events sent while nobody owns the run, while another worker owns it, or while it waits are
/// all kept for the next owner, in order.
async fn events_sent_before_owned_are_kept(store: DynStore) -> Result<()> {
    create(&*store, "run", &flow()).await?;
    send(&*store, "run", "a", event("a")).await?;
    send(&*store, "run", "b", event("b")).await?;
    let claim = claim_run(&*store, "worker-a", "run", &options(&[flow()])).await?;
    let inbox = store.inbox(&claim.lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["a", "b"]);
    assert_eq!(inbox[1].mail, event("b"));

    // While owned (by a worker that does not look at its inbox yet).
    send(&*store, "run", "c", event("c")).await?;
    commit(
        &*store,
        &claim.lease,
        Commit {
            journal: ticks([2]),
            consumed: vec![inbox[0].id],
            ..release(true, None)
        },
    )
    .await?;
    assert_eq!(
        status(&*store, "run").await?,
        RunStatus::Running,
        "b and c are unread"
    );
    let claim = claim_run(&*store, "worker-b", "run", &options(&[flow()])).await?;
    let inbox = store.inbox(&claim.lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["b", "c"]);
    commit(
        &*store,
        &claim.lease,
        Commit {
            journal: ticks([3]),
            consumed: inbox.iter().map(|message| message.id).collect(),
            ..release(true, None)
        },
    )
    .await?;
    assert_eq!(status(&*store, "run").await?, RunStatus::Waiting);

    // While waiting.
    send(&*store, "run", "d", event("d")).await?;
    send(&*store, "run", "e", event("e")).await?;
    let claim = claim_run(&*store, "worker-c", "run", &options(&[flow()])).await?;
    assert_eq!(msg_ids(&store.inbox(&claim.lease).await?), vec!["d", "e"]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Finishing, listing, purging.

/// A finishing commit records the outcome, clears the owner, fences the lease, and the run
/// accepts no more events.
async fn finish_records_outcome(store: DynStore) -> Result<()> {
    let stop = json!({"type": "stop", "value": {"answer": 42}});
    let outcomes = [
        (RunStatus::Completed, Some(stop.clone()), None),
        (
            RunStatus::Failed,
            None,
            Some("step `fetch` failed: timeout"),
        ),
        (RunStatus::Cancelled, None, Some("cancelled")),
    ];
    for (outcome, result, error) in outcomes {
        let run_id = format!("run-{outcome}");
        let lease = create_owned(&*store, &run_id, &flow(), "worker-a").await?;
        commit(
            &*store,
            &lease,
            Commit {
                journal: ticks(2..=3),
                events: published(1..=2),
                ..finish(outcome, result.clone(), error)
            },
        )
        .await?;
        let run = record(&*store, &run_id).await?;
        assert_eq!(run.status, outcome);
        assert_eq!(run.result, result);
        assert_eq!(run.error.as_deref(), error);
        assert_eq!(run.owner, None);
        ensure!(run.epoch > lease.epoch, "finishing increases the epoch");
        assert_eq!(run.last_event_seq, 2);
        assert_eq!(all_events(&*store, &run_id).await?, published(1..=2));

        assert_fenced(store.load(&lease).await, &lease, "load after finish")?;
        assert_fenced(store.inbox(&lease).await, &lease, "inbox after finish")?;
        let result = store
            .commit(
                &lease,
                Commit {
                    journal: ticks([4]),
                    events: published([3]),
                    ..release(false, None)
                },
            )
            .await;
        assert_fenced(result, &lease, "commit after finish")?;
        assert_eq!(
            record(&*store, &run_id).await?,
            run,
            "nothing written after finish"
        );
        match store.send(&run_id, "late", event("late")).await {
            Err(StoreError::RunFinished { status, .. }) => assert_eq!(status, outcome),
            other => bail!("send after finish: expected RunFinished, got {other:?}"),
        }
        assert_not_claimable(&*store, &run_id, &options(&[flow()])).await?;
        assert!(!store.unpark(&run_id).await?);
    }
    Ok(())
}

/// `list_runs` filters by status and workflow name, oldest first.
async fn list_runs_filters_oldest_first(store: DynStore) -> Result<()> {
    let alpha = key("alpha", "fp-1");
    let beta = key("beta", "fp-1");
    // Ids sort against creation order, so that sorting by id would show.
    let pause = Duration::from_millis(5);
    create(&*store, "run-z", &alpha).await?;
    tokio::time::sleep(pause).await;
    let waiting = create_owned(&*store, "run-y", &beta, "worker-a").await?;
    commit(&*store, &waiting, release(true, None)).await?;
    tokio::time::sleep(pause).await;
    let done = create_owned(&*store, "run-x", &alpha, "worker-a").await?;
    commit(&*store, &done, finish(RunStatus::Completed, None, None)).await?;
    tokio::time::sleep(pause).await;
    create(&*store, "run-w", &beta).await?;
    tokio::time::sleep(pause).await;
    create(&*store, "run-v", &key("alpha", "fp-2")).await?;

    let list = |status: Vec<RunStatus>, workflow: Vec<&str>| {
        let store = store.clone();
        let filter = RunFilter {
            status,
            workflow: workflow.into_iter().map(str::to_owned).collect(),
        };
        async move {
            let runs = store.list_runs(&filter).await?;
            anyhow::Ok(runs.into_iter().map(|run| run.run_id).collect::<Vec<_>>())
        }
    };
    use RunStatus::*;
    assert_eq!(
        list(vec![], vec![]).await?,
        ["run-z", "run-y", "run-x", "run-w", "run-v"]
    );
    assert_eq!(
        list(vec![Running], vec![]).await?,
        ["run-z", "run-w", "run-v"]
    );
    assert_eq!(list(vec![Waiting], vec![]).await?, ["run-y"]);
    assert_eq!(
        list(vec![Completed, Waiting], vec![]).await?,
        ["run-y", "run-x"]
    );
    assert_eq!(
        list(vec![Failed, Parked], vec![]).await?,
        Vec::<String>::new()
    );
    assert_eq!(
        list(vec![], vec!["alpha"]).await?,
        ["run-z", "run-x", "run-v"]
    );
    assert_eq!(
        list(vec![], vec!["beta", "gamma"]).await?,
        ["run-y", "run-w"]
    );
    assert_eq!(list(vec![Running], vec!["beta"]).await?, ["run-w"]);
    assert_eq!(
        list(vec![Running, Completed], vec!["alpha"]).await?,
        ["run-z", "run-x", "run-v"]
    );
    assert_eq!(list(vec![], vec!["gamma"]).await?, Vec::<String>::new());

    // Runs created within one millisecond are still listed in creation order.
    let burst: Vec<String> = (0..20).rev().map(|i| format!("burst-{i:02}")).collect();
    for run_id in &burst {
        create(&*store, run_id, &key("burst", "fp-1")).await?;
    }
    assert_eq!(list(vec![], vec!["burst"]).await?, burst);
    assert_eq!(list(vec![Running], vec![]).await?.len(), 23);

    // The records are whole.
    let runs = store.list_runs(&RunFilter::default()).await?;
    for run in &runs {
        assert_eq!(run, &record(&*store, &run.run_id).await?);
    }
    ensure!(
        runs.windows(2)
            .all(|pair| pair[0].created_at_ms <= pair[1].created_at_ms),
        "oldest first"
    );
    Ok(())
}

/// `purge` deletes a run and all it recorded; a second purge finds nothing.
async fn purge_removes_everything(store: DynStore) -> Result<()> {
    let lease = {
        let created = store
            .create_run(NewRun {
                idempotency_key: Some("key-1".to_owned()),
                owner: Some("worker-a".to_owned()),
                ..spec("doomed", &flow())
            })
            .await?;
        let Created::New(Some(lease)) = created else {
            bail!("expected a new owned run, got {created:?}");
        };
        lease
    };
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=3),
            events: published(1..=3),
            snapshot: Some((2, json!({"state": 2}))),
            ..Commit::default()
        },
    )
    .await?;
    send(&*store, "doomed", "m1", event("m1")).await?;
    create(&*store, "survivor", &flow()).await?;
    send(&*store, "survivor", "m1", event("m1")).await?;

    assert!(store.purge("doomed").await?);
    assert_eq!(store.get_run("doomed").await?, None);
    match store.events_after("doomed", 0, 10).await {
        Err(StoreError::UnknownRun { run_id }) => assert_eq!(run_id, "doomed"),
        other => bail!("events_after a purged run: expected UnknownRun, got {other:?}"),
    }
    match store.send("doomed", "m2", event("m2")).await {
        Err(StoreError::UnknownRun { .. }) => {}
        other => bail!("send to a purged run: expected UnknownRun, got {other:?}"),
    }
    // The owner's later calls are fenced.
    assert_fenced(store.load(&lease).await, &lease, "load after purge")?;
    assert_fenced(store.inbox(&lease).await, &lease, "inbox after purge")?;
    let result = store.commit(&lease, everything(4, 4, Vec::new())).await;
    assert_fenced(result, &lease, "commit after purge")?;
    assert_eq!(
        store.get_run("doomed").await?,
        None,
        "a fenced commit recreates nothing"
    );
    let ids: Vec<String> = store
        .list_runs(&RunFilter::default())
        .await?
        .into_iter()
        .map(|run| run.run_id)
        .collect();
    assert_eq!(ids, ["survivor"]);
    assert!(!store.purge("doomed").await?);
    assert!(!store.purge("nobody").await?);

    // Everything went: the id and the idempotency key are free, and nothing comes back.
    let again = store
        .create_run(NewRun {
            idempotency_key: Some("key-1".to_owned()),
            owner: Some("worker-b".to_owned()),
            ..spec("doomed", &flow())
        })
        .await?;
    let Created::New(Some(lease)) = again else {
        bail!("recreating a purged run: expected New, got {again:?}");
    };
    let loaded = store.load(&lease).await?;
    assert_eq!(
        loaded,
        LoadedRun {
            snapshot: None,
            journal: vec![(1, start_of("doomed"))],
            events: Vec::new(),
        }
    );
    assert_eq!(store.inbox(&lease).await?, Vec::new());
    assert_eq!(record(&*store, "doomed").await?.last_event_seq, 0);
    assert_eq!(
        send(&*store, "doomed", "m1", event("m1")).await?,
        Sent::Accepted
    );
    // The survivor kept its own.
    let claim = claim_run(&*store, "worker-c", "survivor", &options(&[flow()])).await?;
    assert_eq!(msg_ids(&store.inbox(&claim.lease).await?), vec!["m1"]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reopening.

/// The journal entry the `n`th reopening of a run appends.
fn reopening(n: u64) -> Value {
    json!({"type": "reopen", "n": n})
}

fn stop_event() -> Value {
    json!({"type": "stop", "value": {"answer": 42}})
}

async fn reopen(store: &dyn Store, run_id: &str, n: u64, owner: Option<&str>) -> Result<Reopened> {
    store
        .reopen(run_id, reopening(n), owner)
        .await
        .with_context(|| format!("reopen {run_id} (owner {owner:?})"))
}

/// Asserts that reopening `run_id` (with or without an owner) fails with `RunActive` naming its
/// `status`, and changes nothing.
async fn assert_run_active(store: &dyn Store, run_id: &str, status: RunStatus) -> Result<()> {
    let before = record(store, run_id).await?;
    assert_eq!(before.status, status, "{run_id} before the reopen");
    let events = all_events(store, run_id).await?;
    for owner in [None, Some("worker-z")] {
        match store.reopen(run_id, reopening(99), owner).await {
            Err(StoreError::RunActive {
                run_id: named,
                status: refused,
            }) => {
                assert_eq!(named, run_id, "RunActive names the run");
                assert_eq!(refused, status, "RunActive names the run's status");
            }
            other => bail!("reopen of {status} run {run_id}: expected RunActive, got {other:?}"),
        }
    }
    assert_eq!(
        record(store, run_id).await?,
        before,
        "a refused reopen of {run_id} changes nothing"
    );
    assert_eq!(all_events(store, run_id).await?, events);
    Ok(())
}

/// Reopening a finished run with an owner appends the entry after the last, makes the run
/// `Running` under a new epoch with its outcome cleared, and keeps its journal and events; the
/// journal and events go on after the last; a run finished again reopens again.
async fn reopen_continues_a_finished_run(store: DynStore) -> Result<()> {
    store.heartbeat("worker-b", &[flow()]).await?;
    let first = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &first,
        Commit {
            journal: ticks(2..=3),
            events: published(1..=2),
            ..finish(RunStatus::Completed, Some(stop_event()), None)
        },
    )
    .await?;
    let finished = record(&*store, "run").await?;

    let reopened = reopen(&*store, "run", 1, Some("worker-b")).await?;
    let lease = reopened
        .lease
        .clone()
        .context("a reopen with an owner returns a lease")?;
    assert_eq!(
        (lease.run_id.as_str(), lease.owner.as_str()),
        ("run", "worker-b")
    );
    ensure!(
        lease.epoch > finished.epoch,
        "the reopen raises the epoch: {} after {}",
        lease.epoch,
        finished.epoch
    );
    assert_eq!(reopened.journal_seq, 4, "the entry follows the last");
    assert_eq!(reopened.last_event_seq, 2);

    let run = record(&*store, "run").await?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner.as_deref(), Some("worker-b"));
    assert_eq!(run.epoch, lease.epoch);
    assert_eq!(
        (run.result, run.error),
        (None, None),
        "the outcome is cleared"
    );
    assert_eq!(run.recoveries, 0);
    assert_eq!(run.last_event_seq, 2);
    assert_eq!(run.workflow, flow());
    assert_eq!(run.created_at_ms, finished.created_at_ms);
    ensure!(
        run.updated_at_ms >= finished.updated_at_ms,
        "updated_at moves on"
    );

    let mut journal = vec![(1, start_of("run"))];
    journal.extend(ticks(2..=3));
    journal.push((4, reopening(1)));
    assert_eq!(
        store.load(&lease).await?,
        LoadedRun {
            snapshot: None,
            journal,
            events: published(1..=2),
        }
    );
    assert_eq!(store.inbox(&lease).await?, Vec::new());

    // Leases of before are fenced: the first owner's, and the new owner's under an older epoch.
    assert_fenced(
        store.load(&first).await,
        &first,
        "load under the first lease",
    )?;
    let result = store
        .commit(
            &first,
            Commit {
                journal: ticks([5]),
                events: published([3]),
                ..release(false, None)
            },
        )
        .await;
    assert_fenced(result, &first, "commit under the first lease")?;
    let older = Lease {
        epoch: finished.epoch,
        ..lease.clone()
    };
    assert_fenced(
        store.load(&older).await,
        &older,
        "load under an older epoch",
    )?;
    assert_eq!(record(&*store, "run").await?.epoch, lease.epoch);
    // Owned by a live worker: nobody else claims it.
    assert_not_claimable(&*store, "run", &options(&[flow()])).await?;

    // The journal and the events go on after the last.
    let over = Commit {
        journal: ticks([4]),
        ..Commit::default()
    };
    assert_corrupt(
        store.commit(&lease, over).await,
        "a commit over the reopening entry",
    )?;
    let replay = Commit {
        journal: ticks([5]),
        events: published([2]),
        ..Commit::default()
    };
    assert_corrupt(
        store.commit(&lease, replay).await,
        "events that do not continue after the last",
    )?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([5]),
            events: published(3..=4),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(all_events(&*store, "run").await?, published(1..=4));
    assert_eq!(store.events_after("run", 2, 10).await?, published(3..=4));
    assert_eq!(record(&*store, "run").await?.last_event_seq, 4);

    // Finished again, it reopens again, and again after that.
    commit(
        &*store,
        &lease,
        finish(RunStatus::Failed, None, Some("boom")),
    )
    .await?;
    let failed = record(&*store, "run").await?;
    assert_eq!(
        (failed.status, failed.error.as_deref()),
        (RunStatus::Failed, Some("boom"))
    );
    let second = reopen(&*store, "run", 2, Some("worker-b")).await?;
    assert_eq!((second.journal_seq, second.last_event_seq), (6, 4));
    let second = second.lease.context("a lease")?;
    ensure!(
        second.epoch > failed.epoch,
        "the second reopen raises the epoch"
    );
    assert_fenced(
        store.load(&lease).await,
        &lease,
        "the first reopening's lease",
    )?;
    let run = record(&*store, "run").await?;
    assert_eq!((run.status, run.error), (RunStatus::Running, None));
    commit(
        &*store,
        &second,
        Commit {
            journal: ticks([7]),
            events: published([5]),
            ..finish(RunStatus::Cancelled, None, Some("cancelled"))
        },
    )
    .await?;
    let third = reopen(&*store, "run", 3, Some("worker-b")).await?;
    assert_eq!((third.journal_seq, third.last_event_seq), (8, 5));
    let third = third.lease.context("a lease")?;
    let loaded = store.load(&third).await?;
    let seqs: Vec<u64> = loaded.journal.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    assert_eq!(loaded.journal[3], (4, reopening(1)));
    assert_eq!(loaded.journal[5], (6, reopening(2)));
    assert_eq!(loaded.journal[7], (8, reopening(3)));
    assert_eq!(loaded.events, published(1..=5));

    // Running again: a reopen in a row is refused.
    assert_run_active(&*store, "run", RunStatus::Running).await?;
    store
        .load(&third)
        .await
        .context("the lease survives a refused reopen")?;
    Ok(())
}

/// A reopened run keeps its snapshot: `load` returns it and the journal after it, the new entry
/// included, even when the snapshot covered the whole journal.
async fn reopen_keeps_the_snapshot(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "snap", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=5),
            events: published(1..=3),
            snapshot: Some((4, json!({"state": 4}))),
            ..finish(RunStatus::Completed, Some(stop_event()), None)
        },
    )
    .await?;
    let reopened = reopen(&*store, "snap", 1, Some("worker-a")).await?;
    assert_eq!((reopened.journal_seq, reopened.last_event_seq), (6, 3));
    let lease = reopened.lease.context("a lease")?;
    assert_eq!(
        store.load(&lease).await?,
        LoadedRun {
            snapshot: Some((4, json!({"state": 4}))),
            journal: vec![(5, json!({"tick": 5})), (6, reopening(1))],
            events: published(1..=3),
        }
    );
    // A snapshot after the reopening replaces the old one.
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([7]),
            snapshot: Some((6, json!({"state": 6}))),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(
        store.load(&lease).await?,
        LoadedRun {
            snapshot: Some((6, json!({"state": 6}))),
            journal: ticks([7]),
            events: published(1..=3),
        }
    );

    // The snapshot covered every entry: nothing of the journal is left but the count.
    let lease = create_owned(&*store, "covered", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=3),
            snapshot: Some((3, json!({"state": 3}))),
            ..finish(RunStatus::Failed, None, Some("boom"))
        },
    )
    .await?;
    let reopened = reopen(&*store, "covered", 1, Some("worker-a")).await?;
    assert_eq!((reopened.journal_seq, reopened.last_event_seq), (4, 0));
    let lease = reopened.lease.context("a lease")?;
    assert_eq!(
        store.load(&lease).await?,
        LoadedRun {
            snapshot: Some((3, json!({"state": 3}))),
            journal: vec![(4, reopening(1))],
            events: Vec::new(),
        }
    );
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([5]),
            events: published([1]),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(all_events(&*store, "covered").await?, published([1]));
    Ok(())
}

/// Reopened without an owner, a run is `Running`, unowned and claimable by workers of its
/// workflow, not as a recovery; its recoveries are reset.
async fn reopen_without_owner_is_claimable(store: DynStore) -> Result<()> {
    let mut rx = store.wakeups();
    // Taken over from a dead owner once before it finished.
    create_owned(&*store, "run", &flow(), "ghost").await?;
    let claim = claim_run(&*store, "worker-a", "run", &options(&[flow()])).await?;
    assert!(claim.recovered);
    commit(
        &*store,
        &claim.lease,
        Commit {
            journal: ticks([2]),
            events: published([1]),
            ..finish(RunStatus::Cancelled, None, Some("cancelled"))
        },
    )
    .await?;
    let finished = record(&*store, "run").await?;
    assert_eq!(finished.recoveries, 1);

    let reopened = reopen(&*store, "run", 1, None).await?;
    assert_eq!(
        reopened,
        Reopened {
            lease: None,
            journal_seq: 3,
            last_event_seq: 1,
        }
    );
    expect_wakeup(&mut rx, "run", "reopened without an owner").await?;
    let run = record(&*store, "run").await?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner, None);
    assert_eq!(run.recoveries, 0, "a reopen resets the recoveries");
    assert_eq!((run.result, run.error), (None, None));
    ensure!(run.epoch > finished.epoch, "the reopen raises the epoch");
    assert_fenced(
        store.load(&claim.lease).await,
        &claim.lease,
        "the last owner's lease",
    )?;

    assert_eq!(
        claim_ids(&*store, "worker-x", &options(&[key("other", "fp-1")])).await?,
        Vec::<String>::new(),
        "only workers of its workflow claim it"
    );
    store.heartbeat("worker-b", &[flow()]).await?;
    let claims = store.claim("worker-b", &options(&[flow()])).await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert!(
        !claims[0].recovered,
        "claiming a reopened run is no recovery"
    );
    ensure!(claims[0].lease.epoch > run.epoch);
    assert_eq!(record(&*store, "run").await?.recoveries, 0);
    let loaded = store.load(&claims[0].lease).await?;
    assert_eq!(
        loaded.journal,
        vec![
            (1, start_of("run")),
            (2, json!({"tick": 2})),
            (3, reopening(1))
        ]
    );
    assert_eq!(loaded.events, published([1]));

    // `claim_run` takes one too.
    let lease = create_owned(&*store, "one", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        finish(RunStatus::Completed, Some(stop_event()), None),
    )
    .await?;
    reopen(&*store, "one", 1, None).await?;
    let claim = claim_run(&*store, "worker-c", "one", &options(&[flow()])).await?;
    assert!(!claim.recovered);
    assert_eq!(
        store.load(&claim.lease).await?.journal,
        vec![(1, start_of("one")), (2, reopening(1))]
    );
    Ok(())
}

/// Only a finished run reopens: a running (owned or not), waiting or parked one fails with
/// `RunActive` and is left as it was; an unknown or purged one with `UnknownRun`.
async fn reopen_refused_unless_finished(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let owned = create_owned(&*store, "owned", &flow(), "worker-a").await?;
    commit(
        &*store,
        &owned,
        Commit {
            journal: ticks([2]),
            events: published([1]),
            ..Commit::default()
        },
    )
    .await?;
    assert_run_active(&*store, "owned", RunStatus::Running).await?;
    assert_eq!(
        store.load(&owned).await?.journal,
        vec![(1, start_of("owned")), (2, json!({"tick": 2}))],
        "the owner's lease and journal are untouched"
    );
    commit(
        &*store,
        &owned,
        Commit {
            journal: ticks([3]),
            events: published([2]),
            ..Commit::default()
        },
    )
    .await?;

    create(&*store, "unowned", &flow()).await?;
    assert_run_active(&*store, "unowned", RunStatus::Running).await?;

    let waiting = create_owned(&*store, "waiting", &flow(), "worker-a").await?;
    commit(&*store, &waiting, release(true, None)).await?;
    assert_run_active(&*store, "waiting", RunStatus::Waiting).await?;
    assert_not_claimable(&*store, "waiting", &options(&[flow()])).await?;

    create_owned(&*store, "parked", &flow(), "ghost").await?;
    let strict = ClaimOptions {
        max_recoveries: 0,
        ..options(&[flow()])
    };
    assert_eq!(store.claim_run("worker-a", "parked", &strict).await?, None);
    assert_run_active(&*store, "parked", RunStatus::Parked).await?;
    assert!(
        store.unpark("parked").await?,
        "still parked after the refusal"
    );

    // Nothing was appended to the runs refused.
    let claim = claim_run(&*store, "worker-a", "unowned", &options(&[flow()])).await?;
    assert_eq!(
        store.load(&claim.lease).await?.journal,
        vec![(1, start_of("unowned"))]
    );
    send(&*store, "waiting", "m1", event("m1")).await?;
    let claim = claim_run(&*store, "worker-a", "waiting", &options(&[flow()])).await?;
    assert_eq!(
        store.load(&claim.lease).await?.journal,
        vec![(1, start_of("waiting"))]
    );

    let error = store
        .reopen("owned", reopening(1), None)
        .await
        .expect_err("reopening a running run fails");
    let text = error.to_string();
    ensure!(
        text.contains("owned") && text.contains("running"),
        "{error:?} displays as {text:?}"
    );
    ensure!(!error.is_transient(), "{error:?} is not transient");

    for owner in [None, Some("worker-a")] {
        match store.reopen("nobody", reopening(1), owner).await {
            Err(StoreError::UnknownRun { run_id }) => assert_eq!(run_id, "nobody"),
            other => bail!("reopen of an unknown run: expected UnknownRun, got {other:?}"),
        }
    }
    assert_eq!(
        store.get_run("nobody").await?,
        None,
        "a reopen creates nothing"
    );

    let done = create_owned(&*store, "purged", &flow(), "worker-a").await?;
    commit(
        &*store,
        &done,
        finish(RunStatus::Completed, Some(stop_event()), None),
    )
    .await?;
    assert!(store.purge("purged").await?);
    match store.reopen("purged", reopening(1), Some("worker-a")).await {
        Err(StoreError::UnknownRun { run_id }) => assert_eq!(run_id, "purged"),
        other => bail!("reopen of a purged run: expected UnknownRun, got {other:?}"),
    }
    assert_eq!(store.get_run("purged").await?, None);
    Ok(())
}

/// A message id the run consumed before it finished is still a duplicate after a reopen; one
/// left unread at the finish went with it, and is new again; new ones are accepted.
async fn reopen_keeps_message_dedup(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    assert_eq!(
        send(&*store, "run", "m1", event("m1")).await?,
        Sent::Accepted
    );
    assert_eq!(
        send(&*store, "run", "m2", event("m2")).await?,
        Sent::Accepted
    );
    let inbox = store.inbox(&lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["m1", "m2"]);
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2]),
            consumed: vec![inbox[0].id],
            ..finish(RunStatus::Completed, Some(stop_event()), None)
        },
    )
    .await?;
    assert_eq!(
        send(&*store, "run", "m1", event("m1")).await?,
        Sent::Duplicate
    );

    let reopened = reopen(&*store, "run", 1, Some("worker-a")).await?;
    assert_eq!(reopened.journal_seq, 3);
    let lease = reopened.lease.context("a lease")?;
    assert_eq!(
        store.inbox(&lease).await?,
        Vec::new(),
        "the message unread at the finish went with it"
    );
    assert_eq!(
        send(&*store, "run", "m1", event("m1")).await?,
        Sent::Duplicate,
        "consumed before the finish"
    );
    assert_eq!(
        send(&*store, "run", "m3", event("m3")).await?,
        Sent::Accepted
    );
    assert_eq!(
        send(&*store, "run", "m3", event("m3")).await?,
        Sent::Duplicate
    );
    assert_eq!(
        send(&*store, "run", "m2", event("m2 again")).await?,
        Sent::Accepted,
        "dropped unread at the finish"
    );
    let inbox = store.inbox(&lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["m3", "m2"]);
    assert_eq!(inbox[1].mail, event("m2 again"));

    // Consumed after the reopening, they deduplicate after the next finish and reopen too.
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([4]),
            consumed: inbox.iter().map(|message| message.id).collect(),
            ..finish(RunStatus::Completed, Some(stop_event()), None)
        },
    )
    .await?;
    let reopened = reopen(&*store, "run", 2, None).await?;
    assert_eq!((reopened.lease, reopened.journal_seq), (None, 5));
    for msg_id in ["m1", "m2", "m3"] {
        assert_eq!(
            send(&*store, "run", msg_id, event(msg_id)).await?,
            Sent::Duplicate,
            "{msg_id} after the second reopen"
        );
    }
    assert_eq!(
        send(&*store, "run", "m4", event("m4")).await?,
        Sent::Accepted
    );
    let claim = claim_run(&*store, "worker-a", "run", &options(&[flow()])).await?;
    assert_eq!(msg_ids(&store.inbox(&claim.lease).await?), vec!["m4"]);
    Ok(())
}

/// A reopen signals the run to every receiver, with or without an owner.
async fn reopen_wakes_workers(store: DynStore) -> Result<()> {
    let mut rx = store.wakeups();
    let mut second = store.wakeups();
    for (run_id, owner) in [("unowned", None), ("owned", Some("worker-a"))] {
        let lease = create_owned(&*store, run_id, &flow(), "worker-a").await?;
        commit(
            &*store,
            &lease,
            finish(RunStatus::Completed, Some(stop_event()), None),
        )
        .await?;
        reopen(&*store, run_id, 1, owner).await?;
        expect_wakeup(&mut rx, run_id, "reopened").await?;
        expect_wakeup(&mut second, run_id, "reopened, second receiver").await?;
    }
    Ok(())
}

/// A run reopened by one store instance is seen (and signalled, where wake-ups cross instances)
/// by another; concurrent reopens from both reopen it once.
async fn reopen_across_instances(setup: Setup) -> Result<()> {
    let store = setup.store.clone();
    let other = setup.open_again().await?;
    let mut rx = other.wakeups();
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            events: published(1..=2),
            ..finish(RunStatus::Completed, Some(stop_event()), None)
        },
    )
    .await?;
    reopen(&*store, "run", 1, None).await?;
    if setup.wakeups_cross_instances() {
        expect_wakeup(&mut rx, "run", "reopened by another instance").await?;
    }
    other.heartbeat("worker-b", &[flow()]).await?;
    let claim = claim_run(&*other, "worker-b", "run", &options(&[flow()])).await?;
    assert!(!claim.recovered);
    assert_eq!(
        other.load(&claim.lease).await?,
        LoadedRun {
            snapshot: None,
            journal: vec![(1, start_of("run")), (2, reopening(1))],
            events: published(1..=2),
        }
    );

    // Rounds of two reopens racing from both instances: one wins, the other sees it running.
    let mut lease = claim.lease;
    let mut journal_seq = 2;
    for round in 0..5_u64 {
        commit(
            &*other,
            &lease,
            finish(RunStatus::Completed, Some(stop_event()), None),
        )
        .await?;
        let racers =
            [(store.clone(), "worker-a"), (other.clone(), "worker-b")].map(|(store, owner)| {
                tokio::spawn(
                    async move { store.reopen("run", reopening(round), Some(owner)).await },
                )
            });
        let mut won = Vec::new();
        for racer in racers {
            match racer.await? {
                Ok(reopened) => won.push(reopened),
                Err(StoreError::RunActive { status, .. }) => {
                    assert_eq!(status, RunStatus::Running)
                }
                Err(error) => bail!("round {round}: a racing reopen failed with {error:?}"),
            }
        }
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one reopen wins: {won:?}"
        );
        let winner = won.pop().context("a winner")?;
        journal_seq += 1;
        assert_eq!(winner.journal_seq, journal_seq, "round {round}");
        lease = winner.lease.context("a lease")?;
        let run = record(&*store, "run").await?;
        assert_eq!(
            (run.owner.as_deref(), run.epoch),
            (Some(lease.owner.as_str()), lease.epoch)
        );
        let loaded = other.load(&lease).await?;
        assert_eq!(
            loaded.journal.last(),
            Some(&(journal_seq, reopening(round)))
        );
        assert_eq!(loaded.journal.len(), usize::try_from(journal_seq)?);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Wake-ups, errors, durability.

/// A wake-up receiver taken beforehand hears of runs created, sent an event, and released
/// claimable.
async fn wakeups_signal_work(store: DynStore) -> Result<()> {
    let mut rx = store.wakeups();
    create(&*store, "created", &flow()).await?;
    expect_wakeup(&mut rx, "created", "created").await?;

    let lease = create_owned(&*store, "worked", &flow(), "worker-a").await?;
    expect_wakeup(&mut rx, "worked", "created owned").await?;
    commit(&*store, &lease, release(true, None)).await?;
    send(&*store, "worked", "m1", event("m1")).await?;
    expect_wakeup(&mut rx, "worked", "sent an event while waiting").await?;

    let claim = claim_run(&*store, "worker-a", "worked", &options(&[flow()])).await?;
    send(&*store, "worked", "m2", event("m2")).await?;
    expect_wakeup(&mut rx, "worked", "sent an event while owned").await?;

    commit(&*store, &claim.lease, release(false, None)).await?;
    expect_wakeup(&mut rx, "worked", "released claimable").await?;

    // A second receiver hears too.
    let mut second = store.wakeups();
    send(&*store, "created", "m1", event("m1")).await?;
    expect_wakeup(&mut rx, "created", "sent an event").await?;
    expect_wakeup(&mut second, "created", "sent an event, second receiver").await?;
    Ok(())
}

/// Errors say what happened, name the run, and only database failures are transient.
async fn errors_are_sane(store: DynStore) -> Result<()> {
    use RunStatus::*;
    let lease = create_owned(&*store, "run-e1", &flow(), "worker-a").await?;
    let mut errors = Vec::new();
    let stale = Lease {
        epoch: 7,
        ..lease.clone()
    };
    errors.push(
        store
            .commit(&stale, Commit::default())
            .await
            .expect_err("a stale commit fails"),
    );
    errors.push(
        store
            .commit(
                &lease,
                Commit {
                    journal: ticks([9]),
                    ..Commit::default()
                },
            )
            .await
            .expect_err("an out-of-sequence commit fails"),
    );
    errors.push(
        store
            .send("run-missing", "m1", event("m1"))
            .await
            .expect_err("a send to an unknown run fails"),
    );
    errors.push(
        store
            .create_run(spec("run-e1", &flow()))
            .await
            .expect_err("a duplicate create fails"),
    );
    commit(
        &*store,
        &lease,
        finish(RunStatus::Cancelled, None, Some("stop")),
    )
    .await?;
    errors.push(
        store
            .send("run-e1", "m1", event("m1"))
            .await
            .expect_err("a send to a finished run fails"),
    );

    let [fenced, corrupt, unknown, duplicate, finished] = errors.as_slice() else {
        bail!("five errors expected");
    };
    assert!(
        matches!(fenced, StoreError::Fenced { epoch: 7, .. }),
        "{fenced:?}"
    );
    assert!(matches!(corrupt, StoreError::Corrupt(_)), "{corrupt:?}");
    assert!(
        matches!(unknown, StoreError::UnknownRun { .. }),
        "{unknown:?}"
    );
    assert!(
        matches!(duplicate, StoreError::DuplicateRun { .. }),
        "{duplicate:?}"
    );
    assert!(
        matches!(
            finished,
            StoreError::RunFinished {
                status: RunStatus::Cancelled,
                ..
            }
        ),
        "{finished:?}"
    );
    for (error, must_name) in [
        (fenced, vec!["run-e1", "7"]),
        (corrupt, vec!["corrupt"]),
        (unknown, vec!["run-missing"]),
        (duplicate, vec!["run-e1", "already exists"]),
        (finished, vec!["run-e1", "cancelled"]),
    ] {
        let text = error.to_string();
        for word in must_name {
            ensure!(
                text.contains(word),
                "{error:?} displays as {text:?}, without {word:?}"
            );
        }
        ensure!(!error.is_transient(), "{error:?} is not transient");
    }

    // Statuses read back as written, and serialize as stored.
    for status in [Running, Waiting, Parked, Completed, Failed, Cancelled] {
        assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        assert_eq!(status.to_string(), status.as_str());
        assert_eq!(serde_json::to_value(status)?, json!(status.as_str()));
        assert_eq!(
            status.is_terminal(),
            matches!(status, Completed | Failed | Cancelled)
        );
    }
    assert_eq!(RunStatus::parse("Running"), None);

    let database = StoreError::Database(Box::new(std::io::Error::other("connection refused")));
    assert!(database.is_transient());
    let text = database.to_string();
    ensure!(text.contains("connection refused"), "{text}");
    let source = std::error::Error::source(&database).context("a database error has a source")?;
    assert_eq!(source.to_string(), "connection refused");
    Ok(())
}

/// Everything committed is there for another store opened on the same data (another process,
/// or this one after a restart).
async fn durable_across_reopen(setup: Setup) -> Result<()> {
    let store = setup.store.clone();
    let created = store
        .create_run(NewRun {
            idempotency_key: Some("key-1".to_owned()),
            owner: Some("worker-a".to_owned()),
            ..spec("kept", &flow())
        })
        .await?;
    let Created::New(Some(lease)) = created else {
        bail!("expected a new owned run, got {created:?}");
    };
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=4),
            events: published(1..=3),
            snapshot: Some((3, json!({"state": 3}))),
            ..Commit::default()
        },
    )
    .await?;
    send(&*store, "kept", "m1", event("m1")).await?;
    send(&*store, "kept", "m2", event("m2")).await?;
    let inbox = store.inbox(&lease).await?;
    commit(
        &*store,
        &lease,
        Commit {
            consumed: vec![inbox[0].id],
            ..release(false, None)
        },
    )
    .await?;
    let done = create_owned(&*store, "done", &flow(), "worker-a").await?;
    commit(
        &*store,
        &done,
        finish(
            RunStatus::Completed,
            Some(json!({"type": "stop", "value": 1})),
            None,
        ),
    )
    .await?;
    let waiting = create_owned(&*store, "waiting", &flow(), "worker-a").await?;
    commit(&*store, &waiting, release(true, None)).await?;
    let runs = store.list_runs(&RunFilter::default()).await?;

    let reopened = setup.open_again().await?;
    assert_eq!(reopened.list_runs(&RunFilter::default()).await?, runs);
    assert_eq!(all_events(&*reopened, "kept").await?, published(1..=3));
    let again = reopened
        .create_run(NewRun {
            idempotency_key: Some("key-1".to_owned()),
            ..spec("kept-2", &flow())
        })
        .await?;
    assert_eq!(again, Created::Existing("kept".to_owned()));
    reopened.heartbeat("worker-b", &[flow()]).await?;
    let claim = claim_run(&*reopened, "worker-b", "kept", &options(&[flow()])).await?;
    assert_eq!(
        reopened.load(&claim.lease).await?,
        LoadedRun {
            snapshot: Some((3, json!({"state": 3}))),
            journal: ticks([4]),
            events: published(1..=3),
        }
    );
    assert_eq!(msg_ids(&reopened.inbox(&claim.lease).await?), vec!["m2"]);
    assert_eq!(
        send(&*reopened, "kept", "m1", event("m1")).await?,
        Sent::Duplicate
    );
    match reopened.send("done", "late", event("late")).await {
        Err(StoreError::RunFinished { .. }) => {}
        other => bail!("send to a finished run after reopening: got {other:?}"),
    }
    assert_eq!(status(&*reopened, "waiting").await?, RunStatus::Waiting);
    assert_not_claimable(&*reopened, "waiting", &options(&[flow()])).await?;
    // The first store sees the second's claim.
    assert_fenced(
        store.load(&lease).await,
        &lease,
        "the first store's old lease",
    )?;
    assert_eq!(
        record(&*store, "kept").await?.owner.as_deref(),
        Some("worker-b")
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Races and edges.

/// Concurrent creates with one idempotency key (from two store instances) make one run; the
/// others get its id. Concurrent creates of one run id make one run; the others are duplicates.
async fn concurrent_idempotent_create(setup: Setup) -> Result<()> {
    let stores = [setup.store.clone(), setup.open_again().await?];
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                store
                    .create_run(NewRun {
                        idempotency_key: Some("same-key".to_owned()),
                        owner: Some(format!("worker-{i}")),
                        ..spec(&format!("keyed-{i}"), &flow())
                    })
                    .await
            })
        })
        .collect();
    let mut new = Vec::new();
    let mut existing = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await?.with_context(|| format!("create keyed-{i}"))? {
            Created::New(lease) => new.push((i, lease)),
            Created::Existing(run_id) => existing.push(run_id),
        }
    }
    assert_eq!(new.len(), 1, "one create wins: {new:?}");
    let (winner, lease) = &new[0];
    let winner_id = format!("keyed-{winner}");
    assert_eq!(
        lease.as_ref().map(|lease| lease.run_id.as_str()),
        Some(winner_id.as_str())
    );
    for run_id in &existing {
        assert_eq!(run_id, &winner_id, "the others get the winner's id");
    }
    let runs = stores[0].list_runs(&RunFilter::default()).await?;
    assert_eq!(runs.len(), 1);

    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move { store.create_run(spec("same-id", &flow())).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await? {
            Ok(Created::New(None)) => created += 1,
            Err(StoreError::DuplicateRun { run_id }) => assert_eq!(run_id, "same-id"),
            other => bail!("a racing create of one id: {other:?}"),
        }
    }
    assert_eq!(created, 1, "one create of `same-id` wins");
    assert_eq!(stores[1].list_runs(&RunFilter::default()).await?.len(), 2);
    Ok(())
}

/// Concurrent sends of one message id queue it once; of different ids, all of them.
async fn concurrent_sends_deduplicate(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    let same: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(
                async move { store.send("run", "once", event(&format!("copy {i}"))).await },
            )
        })
        .collect();
    let mut accepted = 0;
    for task in same {
        match task.await?.context("a racing send")? {
            Sent::Accepted => accepted += 1,
            Sent::Duplicate => {}
        }
    }
    assert_eq!(accepted, 1, "one of the racing sends is accepted");

    let different: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .send("run", &format!("m{i:02}"), event(&format!("m{i:02}")))
                    .await
            })
        })
        .collect();
    for task in different {
        assert_eq!(task.await?.context("a racing send")?, Sent::Accepted);
    }
    let inbox = store.inbox(&lease).await?;
    assert_eq!(inbox.len(), 17);
    let ids: HashSet<i64> = inbox.iter().map(|message| message.id).collect();
    assert_eq!(ids.len(), 17, "inbox rows have distinct ids");
    let mut names: Vec<&str> = msg_ids(&inbox);
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 17);
    for message in &inbox {
        if message.msg_id != "once" {
            assert_eq!(message.mail, event(&message.msg_id));
        }
    }
    Ok(())
}

/// A dead owner's commit racing another worker's claim either lands before the claim (and the
/// new owner loads it) or is fenced (and nothing of it is there): never after the claim.
async fn commit_races_claim(store: DynStore) -> Result<()> {
    let mut landed = 0;
    for i in 0..20 {
        let run_id = format!("race-{i:02}");
        // "ghost" never heartbeats: its run is claimable at once.
        let lease = create_owned(&*store, &run_id, &flow(), "ghost").await?;
        let writer = {
            let store = store.clone();
            let lease = lease.clone();
            tokio::spawn(async move {
                store
                    .commit(
                        &lease,
                        Commit {
                            journal: ticks([2]),
                            events: published([1]),
                            ..Commit::default()
                        },
                    )
                    .await
            })
        };
        let claimer = {
            let store = store.clone();
            let run_id = run_id.clone();
            tokio::spawn(async move {
                store
                    .claim_run("rescuer", &run_id, &options(&[flow()]))
                    .await
            })
        };
        let written = writer.await?;
        let mut claim = claimer.await?.context("claim_run")?;
        if claim.is_none() {
            // A store may skip a run another transaction holds (Postgres's `SKIP LOCKED`): the
            // claim then comes after the commit, which must have landed.
            ensure!(
                written.is_ok(),
                "claim_run found nothing and the commit failed: {written:?}"
            );
            claim = store
                .claim_run("rescuer", &run_id, &options(&[flow()]))
                .await?;
        }
        let claim = claim.context("the orphan is claimable")?;
        ensure!(claim.recovered, "{claim:?}");
        let loaded = store.load(&claim.lease).await?;
        match written {
            Ok(()) => {
                landed += 1;
                assert_eq!(
                    loaded.journal,
                    vec![(1, start_of(&run_id)), (2, json!({"tick": 2}))]
                );
                assert_eq!(loaded.events, published([1]));
                assert_eq!(record(&*store, &run_id).await?.last_event_seq, 1);
            }
            Err(StoreError::Fenced { .. }) => {
                assert_eq!(loaded.journal, vec![(1, start_of(&run_id))]);
                assert_eq!(loaded.events, Vec::new());
                assert_eq!(record(&*store, &run_id).await?.last_event_seq, 0);
            }
            Err(error) => bail!("the racing commit failed otherwise: {error:?}"),
        }
        // Either way, the old lease is fenced now.
        let result = store.commit(&lease, everything(3, 2, Vec::new())).await;
        assert_fenced(result, &lease, "the ghost after the claim")?;
    }
    println!("{landed} of 20 racing commits landed before the claim");
    Ok(())
}

/// A message racing an idle release is never lost: whatever the order, the run ends `Running`
/// with the message unread, and claimable.
async fn send_races_idle_release(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let mut run_ids = Vec::new();
    for i in 0..20 {
        let run_id = format!("race-{i:02}");
        let lease = create_owned(&*store, &run_id, &flow(), "worker-a").await?;
        let sender = {
            let store = store.clone();
            let run_id = run_id.clone();
            tokio::spawn(async move { store.send(&run_id, "ping", event("ping")).await })
        };
        let releaser = {
            let store = store.clone();
            tokio::spawn(async move { store.commit(&lease, release(true, None)).await })
        };
        assert_eq!(sender.await?.context("the racing send")?, Sent::Accepted);
        releaser.await?.context("the racing release")?;
        let run = record(&*store, &run_id).await?;
        assert_eq!(
            run.status,
            RunStatus::Running,
            "{run_id} has an unread message"
        );
        assert_eq!(run.owner, None);
        run_ids.push(run_id);
    }
    store.heartbeat("worker-b", &[flow()]).await?;
    let mut claimed = claim_ids(&*store, "worker-b", &options(&[flow()])).await?;
    claimed.sort();
    assert_eq!(claimed, run_ids, "every run is claimable");
    Ok(())
}

/// JSON comes back as it went in: start, journal, snapshot, events, inbox, result.
async fn json_values_round_trip(store: DynStore) -> Result<()> {
    let rich = json!({
        "text": "héllo wörld — 你好 🚀 \"quoted\" back\\slash\nnew line\ttab",
        "control": "bell \u{7} escape \u{1b} del \u{7f} line sep \u{2028}",
        "numbers": [0, -1, 42, i64::MIN, i64::MAX, u64::MAX, 0.5, -2.25, 1e-7, 6.02e23],
        "nested": {"a": [[], {}, [null, true, false]], "b": {"c": {"d": {"e": "deep"}}}},
        "empty": "",
        "null": null,
        "keys with spaces": {"ünïcode kéy": 1, "": "empty key"},
    });
    let values = [
        rich.clone(),
        json!(null),
        json!(7),
        json!("a bare string"),
        json!([1, "two", 3.5]),
        json!({}),
    ];
    let created = store
        .create_run(NewRun {
            start: rich.clone(),
            owner: Some("worker-a".to_owned()),
            ..spec("run", &flow())
        })
        .await?;
    let Created::New(Some(lease)) = created else {
        bail!("expected a new owned run, got {created:?}");
    };
    let journal: Vec<(u64, Value)> = (2..).zip(values.iter().cloned()).collect();
    let events: Vec<(u64, EventJson)> = (1..)
        .zip(values.iter().map(|value| named("rich", value.clone())))
        .collect();
    commit(
        &*store,
        &lease,
        Commit {
            journal: journal.clone(),
            events: events.clone(),
            ..Commit::default()
        },
    )
    .await?;
    for (i, value) in values.iter().enumerate() {
        let mail = Mail::event(named("rich", value.clone()));
        send(&*store, "run", &format!("m{i}"), mail).await?;
    }
    let mut expected_journal = vec![(1, rich.clone())];
    expected_journal.extend(journal);
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.journal, expected_journal);
    assert_eq!(loaded.events, events);
    assert_eq!(all_events(&*store, "run").await?, events);
    let inbox = store.inbox(&lease).await?;
    let sent: Vec<Mail> = inbox.iter().map(|message| message.mail.clone()).collect();
    let expected: Vec<Mail> = values
        .iter()
        .map(|value| Mail::event(named("rich", value.clone())))
        .collect();
    assert_eq!(sent, expected);

    commit(
        &*store,
        &lease,
        Commit {
            snapshot: Some((7, rich.clone())),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(store.load(&lease).await?.snapshot, Some((7, rich.clone())));
    commit(
        &*store,
        &lease,
        finish(
            RunStatus::Completed,
            Some(rich.clone()),
            Some("ünïcode error ✓"),
        ),
    )
    .await?;
    let run = record(&*store, "run").await?;
    assert_eq!(run.result, Some(rich));
    assert_eq!(run.error.as_deref(), Some("ünïcode error ✓"));
    Ok(())
}

/// A JSON string may hold U+0000 (`"\u0000"`): valid JSON, which a step's output (a tool's, a
/// model's) can contain. The store keeps it like any other character, everywhere it keeps JSON.
/// (A `Database` error here would also be `is_transient`, so a worker would retry it forever.)
async fn json_nul_characters_round_trip(store: DynStore) -> Result<()> {
    let nul = json!({"text": "before \u{0} after", "\u{0}key": ["\u{0}"]});
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    let result = store
        .commit(
            &lease,
            Commit {
                journal: ticks([2]).into_iter().chain([(3, nul.clone())]).collect(),
                events: vec![(1, named("nul", nul.clone()))],
                snapshot: Some((3, nul.clone())),
                ..Commit::default()
            },
        )
        .await;
    result.context("committing JSON with U+0000")?;
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.snapshot, Some((3, nul.clone())));
    assert_eq!(loaded.events, vec![(1, named("nul", nul.clone()))]);
    let mail = Mail::event(named("nul", nul.clone()));
    send(&*store, "run", "m1", mail.clone())
        .await
        .context("sending JSON with U+0000")?;
    assert_eq!(store.inbox(&lease).await?[0].mail, mail);
    commit(
        &*store,
        &lease,
        finish(RunStatus::Completed, Some(nul.clone()), None),
    )
    .await?;
    assert_eq!(record(&*store, "run").await?.result, Some(nul.clone()));
    let created = store
        .create_run(NewRun {
            start: nul.clone(),
            owner: Some("worker-a".to_owned()),
            ..spec("started", &flow())
        })
        .await
        .context("creating a run whose start holds U+0000")?;
    let Created::New(Some(lease)) = created else {
        bail!("expected a new owned run, got {created:?}");
    };
    assert_eq!(store.load(&lease).await?.journal, vec![(1, nul)]);
    Ok(())
}

/// One commit with thousands of journal entries and events and a large snapshot.
async fn large_commit(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "big", &flow(), "worker-a").await?;
    let journal = ticks(2..=2001);
    let events = published(1..=5000);
    let blob = "x".repeat(1 << 20);
    commit(
        &*store,
        &lease,
        Commit {
            journal,
            events: events.clone(),
            snapshot: Some((1500, json!({"blob": blob}))),
            ..Commit::default()
        },
    )
    .await?;
    for i in 0..300 {
        send(&*store, "big", &format!("m{i:03}"), event("m")).await?;
    }
    let inbox = store.inbox(&lease).await?;
    assert_eq!(inbox.len(), 300);
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2002]),
            consumed: inbox.iter().map(|message| message.id).collect(),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(store.inbox(&lease).await?, Vec::new());
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.snapshot, Some((1500, json!({"blob": blob}))));
    assert_eq!(loaded.journal, ticks(1501..=2002));
    assert_eq!(loaded.events, events);
    assert_eq!(record(&*store, "big").await?.last_event_seq, 5000);
    assert_eq!(
        store.events_after("big", 4990, 100).await?,
        published(4991..=5000)
    );
    Ok(())
}

/// Arguments at the ends of their types are answered, not failed on.
async fn extreme_arguments(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            events: published(1..=3),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(
        store.events_after("run", 0, usize::MAX).await?,
        published(1..=3)
    );
    assert_eq!(
        store.events_after("run", 1, usize::MAX).await?,
        published(2..=3)
    );
    assert_eq!(store.events_after("run", u64::MAX, 10).await?, Vec::new());
    assert_eq!(
        store.events_after("run", u64::MAX - 1, usize::MAX).await?,
        Vec::new()
    );
    assert_eq!(
        store
            .events_after("run", u64::try_from(i64::MAX)?, 10)
            .await?,
        Vec::new()
    );

    for epoch in [u64::MAX, u64::try_from(i64::MAX)? + 1] {
        let stale = Lease {
            epoch,
            ..lease.clone()
        };
        assert_fenced(store.load(&stale).await, &stale, "load with a huge epoch")?;
        let result = store.commit(&stale, everything(2, 4, Vec::new())).await;
        assert_fenced(result, &stale, "commit with a huge epoch")?;
    }

    // A TTL no heartbeat is older than, a wake-up that never comes, a limit of everything.
    store.heartbeat("worker-a", &[flow()]).await?;
    store.heartbeat("worker-b", &[flow()]).await?;
    let forever = ClaimOptions {
        limit: usize::MAX,
        lease_ttl: Duration::MAX,
        max_recoveries: u32::MAX,
        ..options(&[flow()])
    };
    assert_eq!(store.claim("worker-b", &forever).await?, Vec::new());
    commit(&*store, &lease, release(true, Some(Duration::MAX))).await?;
    assert_eq!(status(&*store, "run").await?, RunStatus::Waiting);
    assert_eq!(store.claim("worker-b", &forever).await?, Vec::new());
    for i in 0..3 {
        create(&*store, &format!("free-{i}"), &flow()).await?;
    }
    assert_eq!(store.claim("worker-b", &forever).await?.len(), 3);
    send(&*store, "run", "m1", event("m1")).await?;
    assert_eq!(claim_ids(&*store, "worker-b", &forever).await?, vec!["run"]);
    Ok(())
}

/// Wake-ups reach every store instance on the same data: across processes for Postgres.
async fn wakeups_across_instances(setup: Setup) -> Result<()> {
    if !setup.wakeups_cross_instances() {
        println!("skipped: this backend's wake-ups are in-process");
        return Ok(());
    }
    let other = setup.open_again().await?;
    let mut rx = other.wakeups();
    create(&*setup.store, "created", &flow()).await?;
    expect_wakeup(&mut rx, "created", "created by another instance").await?;
    let lease = create_owned(&*setup.store, "sent", &flow(), "worker-a").await?;
    // The creation's wake-up first: the next ones must come from the send and the release.
    expect_wakeup(&mut rx, "sent", "created owned by another instance").await?;
    commit(&*setup.store, &lease, release(true, None)).await?;
    send(&*setup.store, "sent", "m1", event("m1")).await?;
    expect_wakeup(&mut rx, "sent", "sent an event by another instance").await?;
    let claim = claim_run(&*setup.store, "worker-a", "sent", &options(&[flow()])).await?;
    commit(&*setup.store, &claim.lease, release(false, None)).await?;
    expect_wakeup(&mut rx, "sent", "released claimable by another instance").await?;
    Ok(())
}

/// Several stores opening one new location at once all succeed (each runs the migrations) and
/// share the data.
async fn concurrent_first_open(setup: Setup) -> Result<()> {
    let (a, b, c) = tokio::join!(
        setup.open_second_location(),
        setup.open_second_location(),
        setup.open_second_location(),
    );
    let stores = [a?, b?, c?];
    create(&*stores[0], "shared", &flow()).await?;
    for store in &stores {
        assert_eq!(record(&**store, "shared").await?.status, RunStatus::Running);
    }
    // A second opening of an existing location keeps its data.
    let again = setup.open_second_location().await?;
    assert_eq!(again.list_runs(&RunFilter::default()).await?.len(), 1);
    Ok(())
}
