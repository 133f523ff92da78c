//! What the checks share: imports, time limits, and helpers that create runs, claim, commit
//! and assert with context.

pub(super) use std::collections::HashSet;
pub(super) use std::fmt::Debug;
pub(super) use std::sync::Arc;
pub(super) use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(super) use anyhow::{Context as _, Result, bail, ensure};
pub(super) use serde_json::{Value, json};
pub(super) use tokio::sync::broadcast;

pub(super) use super::Fixture;
pub(super) use crate::{
    Claim, ClaimOptions, Commit, CommitEnd, Created, EventJson, InboxMessage, Lease, LoadedRun,
    Mail, NewRun, Reopened, RunFilter, RunRecord, RunStatus, Sent, Store, StoreError, WorkflowKey,
};

/// The store a check runs against.
pub(super) type DynStore = Arc<dyn Store>;
/// The fixture a check that opens the store again runs against.
pub(super) type Setup = Arc<dyn Fixture>;

/// A lease TTL no check outlives: owners that heartbeat once stay alive under it.
pub(super) const LONG_TTL: Duration = Duration::from_secs(120);
/// A lease TTL short enough to expire within a check.
pub(super) const SHORT_TTL: Duration = Duration::from_millis(200);
/// How long to sleep for a `SHORT_TTL` to surely expire.
pub(super) const PAST_SHORT_TTL: Duration = Duration::from_millis(700);
/// How long a wake-up signal may take (Postgres goes through `LISTEN/NOTIFY`).
pub(super) const WAKEUP_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn key(name: &str, fingerprint: &str) -> WorkflowKey {
    WorkflowKey {
        name: name.to_owned(),
        fingerprint: fingerprint.to_owned(),
    }
}

/// The workflow most checks use.
pub(super) fn flow() -> WorkflowKey {
    key("conformance", "fp-1")
}

pub(super) fn start_of(run_id: &str) -> Value {
    json!({"type": "start", "run": run_id})
}

pub(super) fn spec(run_id: &str, workflow: &WorkflowKey) -> NewRun {
    NewRun {
        run_id: run_id.to_owned(),
        workflow: workflow.clone(),
        idempotency_key: None,
        start: start_of(run_id),
        owner: None,
    }
}

/// Creates an unowned run.
pub(super) async fn create(store: &dyn Store, run_id: &str, workflow: &WorkflowKey) -> Result<()> {
    let created = store
        .create_run(spec(run_id, workflow))
        .await
        .with_context(|| format!("creating {run_id}"))?;
    assert_eq!(created, Created::New(None), "creating {run_id}");
    Ok(())
}

/// Creates a run owned by `owner` and returns its lease.
pub(super) async fn create_owned(
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
pub(super) fn options(workflows: &[WorkflowKey]) -> ClaimOptions {
    ClaimOptions {
        workflows: workflows.to_vec(),
        limit: 100,
        lease_ttl: LONG_TTL,
        max_recoveries: 10,
    }
}

pub(super) async fn record(store: &dyn Store, run_id: &str) -> Result<RunRecord> {
    store
        .get_run(run_id)
        .await
        .with_context(|| format!("get_run {run_id}"))?
        .with_context(|| format!("run {run_id} should exist"))
}

pub(super) async fn status(store: &dyn Store, run_id: &str) -> Result<RunStatus> {
    Ok(record(store, run_id).await?.status)
}

/// Claims the given run, which must be claimable.
pub(super) async fn claim_run(
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
pub(super) async fn claim_ids(
    store: &dyn Store,
    worker: &str,
    options: &ClaimOptions,
) -> Result<Vec<String>> {
    let claims = store.claim(worker, options).await.context("claim")?;
    for claim in &claims {
        assert_eq!(claim.lease.owner, worker);
    }
    Ok(claims.into_iter().map(|claim| claim.lease.run_id).collect())
}

/// Asserts that `run_id` is claimable neither by `claim` nor by `claim_run`.
pub(super) async fn assert_not_claimable(
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

pub(super) async fn commit(store: &dyn Store, lease: &Lease, commit: Commit) -> Result<()> {
    store
        .commit(lease, commit)
        .await
        .with_context(|| format!("commit under {lease:?}"))
}

pub(super) fn release(idle: bool, wake_after: Option<Duration>) -> Commit {
    Commit {
        end: Some(CommitEnd::Release { idle, wake_after }),
        ..Commit::default()
    }
}

pub(super) fn finish(status: RunStatus, result: Option<Value>, error: Option<&str>) -> Commit {
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
pub(super) fn ticks(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, Value)> {
    seqs.into_iter()
        .map(|seq| (seq, json!({"tick": seq})))
        .collect()
}

/// Published events with sequences `seqs`.
pub(super) fn published(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, EventJson)> {
    seqs.into_iter()
        .map(|seq| (seq, named("progress", json!({"n": seq}))))
        .collect()
}

/// An event named `name` with fields `value`.
pub(super) fn named(name: &str, value: Value) -> EventJson {
    EventJson {
        name: name.to_owned(),
        value,
    }
}

/// An event message for the inbox.
pub(super) fn event(text: &str) -> Mail {
    Mail::event(named("message", json!({"text": text})))
}

pub(super) async fn send(
    store: &dyn Store,
    run_id: &str,
    msg_id: &str,
    mail: Mail,
) -> Result<Sent> {
    store
        .send(run_id, msg_id, mail)
        .await
        .with_context(|| format!("send {msg_id} to {run_id}"))
}

pub(super) async fn all_events(store: &dyn Store, run_id: &str) -> Result<Vec<(u64, EventJson)>> {
    store
        .events_after(run_id, 0, 10_000)
        .await
        .with_context(|| format!("events_after {run_id}"))
}

pub(super) fn msg_ids(inbox: &[InboxMessage]) -> Vec<&str> {
    inbox
        .iter()
        .map(|message| message.msg_id.as_str())
        .collect()
}

pub(super) fn assert_fenced<T: Debug>(
    result: Result<T, StoreError>,
    lease: &Lease,
    what: &str,
) -> Result<()> {
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

pub(super) fn assert_corrupt<T: Debug>(result: Result<T, StoreError>, what: &str) -> Result<()> {
    match result {
        Err(StoreError::Corrupt(_)) => Ok(()),
        other => bail!("{what}: expected Corrupt, got {other:?}"),
    }
}

/// Everything observable about a run, through its current lease.
#[derive(Debug, PartialEq)]
pub(super) struct Observed {
    pub(super) record: RunRecord,
    loaded: LoadedRun,
    inbox: Vec<InboxMessage>,
    events: Vec<(u64, EventJson)>,
}

pub(super) async fn observe(store: &dyn Store, lease: &Lease) -> Result<Observed> {
    Ok(Observed {
        record: record(store, &lease.run_id).await?,
        loaded: store.load(lease).await.context("load")?,
        inbox: store.inbox(lease).await.context("inbox")?,
        events: all_events(store, &lease.run_id).await?,
    })
}

/// A commit that writes everything it can: journal and events at the given sequences, every
/// inbox row in `consumed`, a snapshot and a finish.
pub(super) fn everything(journal_seq: u64, event_seq: u64, consumed: Vec<i64>) -> Commit {
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

pub(super) fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds fit in i64")
}

/// Waits for `run_id` on a wake-up receiver, skipping other ids.
pub(super) async fn expect_wakeup(
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

/// The journal entry the `n`th reopening of a run appends.
pub(super) fn reopening(n: u64) -> Value {
    json!({"type": "reopen", "n": n})
}

pub(super) fn stop_event() -> Value {
    json!({"type": "stop", "value": {"answer": 42}})
}

pub(super) async fn reopen(
    store: &dyn Store,
    run_id: &str,
    n: u64,
    owner: Option<&str>,
) -> Result<Reopened> {
    store
        .reopen(run_id, reopening(n), owner)
        .await
        .with_context(|| format!("reopen {run_id} (owner {owner:?})"))
}

/// Asserts that reopening `run_id` (with or without an owner) fails with `RunActive` naming its
/// `status`, and changes nothing.
pub(super) async fn assert_run_active(
    store: &dyn Store,
    run_id: &str,
    status: RunStatus,
) -> Result<()> {
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
