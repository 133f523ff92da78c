//! Durable runs: journaled to a [`Store`], resumed after crashes, shared by a cluster of workers.
//!
//! An [`Engine`] is one worker. It serves a set of workflows: it starts runs (recorded in the
//! store before `start` returns), claims runs that need a worker (new ones, ones released while
//! they waited for an event that has now arrived, and ones whose worker died), and drives each
//! with the same reducer as in-memory runs — but every tick is journaled before its commands are
//! carried out. See `docs/DURABILITY.md` for the promise and the tests that prove it.
//!
//! ```no_run
//! use eventflow::prelude::*;
//! use eventflow::durable::Engine;
//!
//! # async fn demo(workflow: Workflow) -> anyhow::Result<()> {
//! // Or `postgres://...` for a cluster; `eventflow::store` has the backends themselves.
//! let store = eventflow::store::open("sqlite:eventflow.db").await?;
//! let engine = Engine::builder(store).workflow(workflow).start().await?;
//! let run_id = engine.start("greeter", json!({"name": "Ada"})).await?;
//! let record = engine.wait(&run_id, None).await?;
//! println!("{:?}", record.result);
//! engine.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod journal;
mod run_loop;
mod runner;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::stream::BoxStream;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::context::StateStore;
use crate::error::WorkflowError;
use crate::event::{AnyEvent, Event, EventJson};
use crate::run::{RunState, Tick, new_run, start_tick};
/// What [`Engine::builder`] accepts as a store: a store value or a shared one.
pub use crate::store::IntoStore;
use crate::store::{
    Claim, ClaimOptions, Created, Lease, Mail, NewRun, RunRecord, RunStatus, Sent, Store,
    StoreError, WorkflowKey,
};
use crate::workflow::{StartInput, Workflow};
use journal::Entry;
use runner::{DurableRun, DurableSettings, RunExit, failed_end, rebuild, retry_transient, seed_of};

/// A durable-engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No workflow of this name is registered with the engine.
    #[error("no workflow named `{name}` is served here")]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
    },
    /// No run has this id.
    #[error("no run with id `{run_id}`")]
    UnknownRun {
        /// The id asked for.
        run_id: String,
    },
    /// The start event is not the workflow's.
    #[error(transparent)]
    Start(WorkflowError),
    /// An event sent to a run is of a type its workflow does not know.
    #[error("workflow `{workflow}` has no event type `{name}` (it knows: {})", known.join(", "))]
    UnknownEventType {
        /// The run.
        run_id: String,
        /// The run's workflow.
        workflow: String,
        /// The type asked for.
        name: String,
        /// The types the workflow knows.
        known: Vec<&'static str>,
    },
    /// An event sent to a run does not decode as its type, or a step does not accept it.
    #[error("invalid event for run `{run_id}`: {reason}")]
    InvalidEvent {
        /// The run.
        run_id: String,
        /// What is wrong with the event.
        reason: String,
    },
    /// A run id given to continue belongs to a run of another workflow.
    #[error("run `{run_id}` is a run of workflow `{workflow}`")]
    OtherWorkflow {
        /// The run.
        run_id: String,
        /// Its workflow.
        workflow: String,
    },
    /// The run did not finish within the time given to [`Engine::wait`].
    #[error("run `{run_id}` did not finish within {waited:?}")]
    WaitTimedOut {
        /// The run.
        run_id: String,
        /// How long was waited.
        waited: Duration,
    },
}

/// Options of an [`Engine`]; set them through [`EngineBuilder`].
#[derive(Clone)]
struct EngineOptions {
    worker_id: String,
    lease_ttl: Duration,
    poll_interval: Duration,
    max_recoveries: u32,
    snapshot_every: u64,
    claim_batch: usize,
    on_commit: Option<Arc<CommitHook>>,
    drive_runs: bool,
}

/// A function called after each commit of a run reaches the store; see
/// [`EngineBuilder::on_commit`].
pub type CommitHook = dyn Fn(&CommitInfo) + Send + Sync;

/// What a commit held, for [`EngineBuilder::on_commit`].
#[derive(Clone, Debug)]
pub struct CommitInfo {
    /// The run.
    pub run_id: String,
    /// The run's workflow.
    pub workflow: String,
    /// The step completions the commit recorded, in journal order.
    pub completed: Vec<CompletedStep>,
    /// How the run finished, when the commit finished it.
    pub finished: Option<RunStatus>,
}

/// A step completion recorded by a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedStep {
    /// The step's name.
    pub step: String,
    /// The attempt that completed (1 for the first).
    pub attempt: u32,
    /// How long the attempt ran.
    pub duration: Duration,
    /// Whether the attempt failed (it may be retried).
    pub failed: bool,
}

/// Builds an [`Engine`]: a store, the workflows this worker serves, and its timings.
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    workflows: Vec<Workflow>,
    options: EngineOptions,
}

impl EngineBuilder {
    /// Serves `workflow`: this worker starts and claims its runs.
    pub fn workflow(mut self, workflow: Workflow) -> Self {
        self.workflows.push(workflow);
        self
    }

    /// The worker's id in the store (default: a random UUID). Two live workers must not share
    /// one.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.options.worker_id = id.into();
        self
    }

    /// How long a worker may go without a heartbeat before its runs are taken over (default
    /// 10 s). Heartbeats are sent every third of it.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.options.lease_ttl = ttl;
        self
    }

    /// How often to look for claimable runs and new inbox messages when no wake-up signal came
    /// (default 500 ms). Signals make it faster in one process and with Postgres.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.options.poll_interval = interval;
        self
    }

    /// How many times a run may be taken over from a crashed worker before it is parked
    /// (default 3).
    pub fn max_recoveries(mut self, recoveries: u32) -> Self {
        self.options.max_recoveries = recoveries;
        self
    }

    /// Snapshot a run every this many journal entries (default 1000); runs are also
    /// snapshotted when they go idle and after every recovery.
    pub fn snapshot_every(mut self, entries: u64) -> Self {
        self.options.snapshot_every = entries.max(1);
        self
    }

    /// Calls `hook` after each commit of a run reaches the store and before the commands the
    /// commit decided (starting the next steps) are carried out: for metrics, and for fault
    /// tests that stop a worker at that exact point.
    pub fn on_commit(mut self, hook: impl Fn(&CommitInfo) + Send + Sync + 'static) -> Self {
        self.options.on_commit = Some(Arc::new(hook));
        self
    }

    /// With `false`, the engine starts runs, sends them events and reads them, but never drives
    /// one: every run it starts is detached, for a worker serving its workflow to claim (an API
    /// node of a cluster, or a client). Default `true`.
    pub fn drive_runs(mut self, drive: bool) -> Self {
        self.options.drive_runs = drive;
        self
    }

    /// Registers the worker and starts claiming runs.
    pub async fn start(self) -> Result<Engine, EngineError> {
        let keys: Vec<WorkflowKey> = if self.options.drive_runs {
            self.workflows.iter().map(workflow_key).collect()
        } else {
            Vec::new()
        };
        self.store.heartbeat(&self.options.worker_id, &keys).await?;
        let (stop, stopping) = watch::channel(false);
        let inner = Arc::new(Inner {
            store: self.store,
            workflows: self
                .workflows
                .into_iter()
                .map(|w| (w.name().to_owned(), w))
                .collect(),
            keys,
            options: self.options,
            active: Mutex::new(HashMap::new()),
            watchers: Mutex::new(HashMap::new()),
            stop,
            stopping,
            background: Mutex::new(None),
        });
        let task = tokio::spawn(background(Arc::downgrade(&inner)));
        *lock(&inner.background) = Some(task);
        Ok(Engine { inner })
    }
}

/// One worker of durable runs; cheap to clone. See the [module docs](self).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    workflows: HashMap<String, Workflow>,
    keys: Vec<WorkflowKey>,
    options: EngineOptions,
    /// Runs this worker drives now: their epoch and the signal that their inbox has mail.
    active: Mutex<HashMap<String, (u64, Arc<Notify>)>>,
    /// Readers waiting on a run's events or result, woken by its commits here (other
    /// processes' commits are seen by polling).
    watchers: Mutex<HashMap<String, Arc<Watch>>>,
    stop: watch::Sender<bool>,
    stopping: watch::Receiver<bool>,
    background: Mutex<Option<JoinHandle<()>>>,
}

/// What readers of one run wait on.
#[derive(Default)]
struct Watch {
    /// Any commit: new events.
    committed: Notify,
    /// The run finished (or this worker stopped driving it).
    ended: Notify,
}

/// A reader's registration; unregisters when the last reader of the run drops it.
struct Watching {
    inner: Arc<Inner>,
    run_id: String,
    watch: Arc<Watch>,
}

impl Watching {
    fn new(inner: &Arc<Inner>, run_id: &str) -> Self {
        let watch = lock(&inner.watchers)
            .entry(run_id.to_owned())
            .or_default()
            .clone();
        Watching {
            inner: inner.clone(),
            run_id: run_id.to_owned(),
            watch,
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut watchers = lock(&self.inner.watchers);
        // Two references left: the map's and ours.
        if Arc::strong_count(&self.watch) <= 2 {
            watchers.remove(&self.run_id);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn workflow_key(workflow: &Workflow) -> WorkflowKey {
    WorkflowKey {
        name: workflow.name().to_owned(),
        fingerprint: workflow.fingerprint().to_owned(),
    }
}

/// The message id of every cancel request: a run is cancelled once, however often asked.
const CANCEL_MSG_ID: &str = "eventflow.cancel";

/// A published event of a durable run, with its per-run sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct SequencedEvent {
    /// The event's sequence number in its run, from 1, without gaps.
    pub seq: u64,
    /// The event.
    pub event: EventJson,
}

/// Options of [`Engine::start_with`].
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// The run's id (default: a random UUID).
    pub run_id: Option<String>,
    /// Starting twice with the same key returns the first run.
    pub idempotency_key: Option<String>,
    /// Record the run without driving it here: a worker serving its workflow claims it. For
    /// nodes that accept requests for workflows other nodes run.
    pub detached: bool,
    /// When `run_id` names a finished run, start it again under the same id, with the context
    /// state it left (as LlamaIndex's server does for a reused handler id). Without it, such an
    /// id fails with `StoreError::DuplicateRun`.
    pub continue_finished: bool,
}

/// What [`Engine::start_with`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// The run's id.
    pub run_id: String,
    /// True when the idempotency key was used before: this is that run.
    pub existing: bool,
    /// The sequence of the run's last event before this start: its new events come after it
    /// (0 for a new run; more when a finished run was continued).
    pub after_seq: u64,
}

impl Engine {
    /// An engine over `store`: add workflows, then [`EngineBuilder::start`].
    pub fn builder(store: impl IntoStore) -> EngineBuilder {
        EngineBuilder {
            store: store.into_store(),
            workflows: Vec::new(),
            options: EngineOptions {
                worker_id: uuid::Uuid::new_v4().to_string(),
                lease_ttl: Duration::from_secs(10),
                poll_interval: Duration::from_millis(500),
                max_recoveries: 3,
                snapshot_every: 1000,
                claim_batch: 32,
                on_commit: None,
                drive_runs: true,
            },
        }
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &str {
        &self.inner.options.worker_id
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The workflow served under `name`.
    pub fn workflow(&self, name: &str) -> Option<&Workflow> {
        self.inner.workflows.get(name)
    }

    /// Starts a run of the workflow `name`; returns its id once the run is recorded in the
    /// store. The run executes on this worker.
    pub async fn start(&self, name: &str, start: impl StartInput) -> Result<String, EngineError> {
        Ok(self
            .start_with(name, start, StartOptions::default())
            .await?
            .run_id)
    }

    /// [`start`](Self::start) with a run id or an idempotency key.
    pub async fn start_with(
        &self,
        name: &str,
        start: impl StartInput,
        options: StartOptions,
    ) -> Result<Started, EngineError> {
        let inner = &self.inner;
        let workflow = inner
            .workflows
            .get(name)
            .ok_or_else(|| EngineError::UnknownWorkflow {
                name: name.to_owned(),
            })?;
        let tick = start_tick(workflow, start.into_start_event()).map_err(EngineError::Start)?;
        let entry = Entry::encode(&workflow.spec, &tick, Default::default())
            .and_then(serde_json::to_value)
            .map_err(|e| EngineError::InvalidEvent {
                run_id: String::new(),
                reason: e.to_string(),
            })?;
        let run_id = options
            .run_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let owner = (!options.detached && inner.options.drive_runs)
            .then(|| inner.options.worker_id.clone());
        let created = inner
            .store
            .create_run(NewRun {
                run_id: run_id.clone(),
                workflow: workflow_key(workflow),
                idempotency_key: options.idempotency_key,
                start: entry,
                owner: owner.clone(),
            })
            .await;
        let created = match created {
            Err(StoreError::DuplicateRun { run_id }) if options.continue_finished => {
                return self.continue_finished(workflow, run_id, tick, owner).await;
            }
            other => other?,
        };
        match created {
            Created::Existing(run_id) => Ok(Started {
                run_id,
                existing: true,
                after_seq: 0,
            }),
            Created::New(lease) => {
                if let Some(lease) = lease {
                    let signal = inner.activate(&lease);
                    let durable = DurableRun::fresh(
                        inner.store.clone(),
                        lease,
                        inner.settings(),
                        signal,
                        self.inner.clone(),
                        workflow.name(),
                    );
                    let shared = new_run(
                        workflow,
                        run_id.clone(),
                        StateStore::default().tracking_writes(),
                        Vec::new(),
                    );
                    let state = RunState::new(&workflow.spec, seed_of(&run_id));
                    run_loop::spawn(shared, state, durable, Some(tick));
                }
                Ok(Started {
                    run_id,
                    existing: false,
                    after_seq: 0,
                })
            }
        }
    }

    /// Starts a finished run again, rebuilt from the store like a claimed run.
    async fn continue_finished(
        &self,
        workflow: &Workflow,
        run_id: String,
        tick: Tick,
        owner: Option<String>,
    ) -> Result<Started, EngineError> {
        let record = self.record(&run_id).await?;
        // Checked here for a clear answer in this order; `reopen` checks the status again
        // atomically, so a race still fails with `RunActive`.
        if !record.status.is_terminal() {
            return Err(StoreError::RunActive {
                run_id,
                status: record.status,
            }
            .into());
        }
        if record.workflow.name != workflow.name() {
            return Err(EngineError::OtherWorkflow {
                run_id,
                workflow: record.workflow.name,
            });
        }
        let Tick::Start(event) = &tick else {
            unreachable!("runs start with a start tick")
        };
        let entry = serde_json::to_value(Entry::Restart {
            event: event
                .to_event_json()
                .map_err(|e| EngineError::InvalidEvent {
                    run_id: run_id.clone(),
                    reason: e.to_string(),
                })?,
        })
        .map_err(|e| EngineError::InvalidEvent {
            run_id: run_id.clone(),
            reason: e.to_string(),
        })?;
        let reopened = self
            .inner
            .store
            .reopen(&run_id, entry, owner.as_deref())
            .await?;
        if let Some(lease) = reopened.lease {
            let inner = self.inner.clone();
            inner
                .drive_claimed(Claim {
                    lease,
                    recovered: false,
                })
                .await;
        }
        Ok(Started {
            run_id,
            existing: false,
            after_seq: reopened.last_event_seq,
        })
    }

    /// Sends `event` to a run under the message id `msg_id`: delivered once however often it is
    /// sent, kept until the run takes it, whichever worker holds the run (or none).
    pub async fn send_event<E: Event>(
        &self,
        run_id: &str,
        msg_id: &str,
        event: E,
    ) -> Result<Sent, EngineError> {
        let json = AnyEvent::new(event)
            .to_event_json()
            .map_err(|e| EngineError::InvalidEvent {
                run_id: run_id.to_owned(),
                reason: e.to_string(),
            })?;
        self.send_json(run_id, msg_id, json, None).await
    }

    /// Sends an event given as JSON (`{"type", "value"}`), to one step with `step`. The event
    /// must be one of the run's workflow's event types and decode as it.
    pub async fn send_json(
        &self,
        run_id: &str,
        msg_id: &str,
        event: EventJson,
        step: Option<&str>,
    ) -> Result<Sent, EngineError> {
        let record = self.record(run_id).await?;
        let invalid = |reason: String| EngineError::InvalidEvent {
            run_id: run_id.to_owned(),
            reason,
        };
        if let Some(workflow) = self.inner.workflows.get(&record.workflow.name) {
            let spec = &workflow.spec;
            let ty =
                spec.event_by_name(&event.name)
                    .ok_or_else(|| EngineError::UnknownEventType {
                        run_id: run_id.to_owned(),
                        workflow: workflow.name().to_owned(),
                        name: event.name.clone(),
                        known: workflow
                            .known_event_types()
                            .iter()
                            .map(|ty| ty.name())
                            .collect(),
                    })?;
            ty.decode(event.value.clone())
                .map_err(|e| invalid(format!("{} does not decode: {e}", event.name)))?;
            if let Some(step) = step {
                let index = spec
                    .step_index(step)
                    .ok_or_else(|| invalid(format!("no step named `{step}`")))?;
                if !spec.steps[index].accepts.contains(&ty) {
                    return Err(invalid(format!(
                        "step `{step}` does not accept {}",
                        event.name
                    )));
                }
            }
        }
        let mail = Mail::Event {
            event,
            step: step.map(str::to_owned),
        };
        Ok(self.inner.store.send(run_id, msg_id, mail).await?)
    }

    /// Asks a run to cancel; returns its status. Cancelling a finished run changes nothing.
    pub async fn cancel(&self, run_id: &str) -> Result<RunStatus, EngineError> {
        match self
            .inner
            .store
            .send(run_id, CANCEL_MSG_ID, Mail::Cancel)
            .await
        {
            Ok(_) => Ok(self.record(run_id).await?.status),
            Err(StoreError::RunFinished { status, .. }) => Ok(status),
            Err(StoreError::UnknownRun { run_id }) => Err(EngineError::UnknownRun { run_id }),
            Err(error) => Err(error.into()),
        }
    }

    /// The run's record.
    pub async fn record(&self, run_id: &str) -> Result<RunRecord, EngineError> {
        self.inner
            .store
            .get_run(run_id)
            .await?
            .ok_or_else(|| EngineError::UnknownRun {
                run_id: run_id.to_owned(),
            })
    }

    /// Waits until the run has finished (for at most `timeout`) and returns its record.
    pub async fn wait(
        &self,
        run_id: &str,
        timeout: Option<Duration>,
    ) -> Result<RunRecord, EngineError> {
        let watching = Watching::new(&self.inner, run_id);
        let waiting = async {
            loop {
                let committed = watching.watch.ended.notified();
                tokio::pin!(committed);
                committed.as_mut().enable();
                let record = self.record(run_id).await?;
                if record.status.is_terminal() {
                    return Ok(record);
                }
                tokio::select! {
                    () = committed => {}
                    () = tokio::time::sleep(self.inner.options.poll_interval) => {}
                }
            }
        };
        match timeout {
            None => waiting.await,
            Some(limit) => tokio::time::timeout(limit, waiting)
                .await
                .unwrap_or_else(|_| {
                    Err(EngineError::WaitTimedOut {
                        run_id: run_id.to_owned(),
                        waited: limit,
                    })
                }),
        }
    }

    /// The run's published events after sequence `after`, following the run until it
    /// finishes: no gap, no duplicate, whichever worker runs it.
    pub fn events(
        &self,
        run_id: &str,
        after: u64,
    ) -> BoxStream<'static, Result<SequencedEvent, EngineError>> {
        let engine = self.clone();
        let run_id = run_id.to_owned();
        let watching = Watching::new(&self.inner, &run_id);
        let stream = futures::stream::try_unfold(
            (engine, watching, after, Vec::new().into_iter(), false),
            |(engine, watching, mut after, mut buffer, mut done)| async move {
                let run_id = watching.run_id.clone();
                loop {
                    if let Some((seq, event)) = buffer.next() {
                        after = seq;
                        let item = SequencedEvent { seq, event };
                        return Ok(Some((item, (engine, watching, after, buffer, done))));
                    }
                    if done {
                        return Ok(None);
                    }
                    let committed = watching.watch.committed.notified();
                    tokio::pin!(committed);
                    committed.as_mut().enable();
                    // Read the status first: events committed before a terminal status are
                    // all visible to the read that follows it.
                    let status = engine.record(&run_id).await?.status;
                    let events = engine
                        .inner
                        .store
                        .events_after(&run_id, after, 1000)
                        .await?;
                    if events.is_empty() {
                        if status.is_terminal() {
                            done = true;
                            continue;
                        }
                        tokio::select! {
                            () = committed => {}
                            () = tokio::time::sleep(engine.inner.options.poll_interval) => {}
                        }
                    }
                    buffer = events.into_iter();
                }
            },
        );
        Box::pin(stream)
    }

    /// Stops claiming, hands every run this worker holds back to the store (their running steps
    /// will run again on a worker that claims them) and waits for that to be written.
    pub async fn shutdown(self) {
        let _ = self.inner.stop.send(true);
        let task = lock(&self.inner.background).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !lock(&self.inner.active).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The ids of the runs this worker drives now.
    pub fn active_runs(&self) -> Vec<String> {
        lock(&self.inner.active).keys().cloned().collect()
    }
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("worker_id", &self.worker_id)
            .field("lease_ttl", &self.lease_ttl)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("worker_id", &self.inner.options.worker_id)
            .field(
                "workflows",
                &self.inner.workflows.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn settings(&self) -> DurableSettings {
        DurableSettings {
            snapshot_every: self.options.snapshot_every,
            inbox_poll: self.options.poll_interval,
            stopping: self.stopping.clone(),
            on_commit: self.options.on_commit.clone(),
        }
    }

    fn claim_options(&self) -> ClaimOptions {
        ClaimOptions {
            workflows: self.keys.clone(),
            limit: self.options.claim_batch,
            lease_ttl: self.options.lease_ttl,
            max_recoveries: self.options.max_recoveries,
        }
    }

    /// Registers a run as driven here; returns its inbox signal.
    fn activate(&self, lease: &Lease) -> Arc<Notify> {
        let signal = Arc::new(Notify::new());
        lock(&self.active).insert(lease.run_id.clone(), (lease.epoch, signal.clone()));
        signal
    }

    /// Loads a claimed run and starts its driver.
    async fn drive_claimed(self: &Arc<Self>, claim: Claim) {
        let lease = claim.lease;
        if claim.recovered {
            tracing::info!(run_id = %lease.run_id, epoch = lease.epoch, "recovering a run whose worker died");
        }
        let record = match retry_transient(|| self.store.get_run(&lease.run_id)).await {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, run_id = %lease.run_id, "cannot read a claimed run");
                return;
            }
        };
        let Some(workflow) = self.workflows.get(&record.workflow.name) else {
            return;
        };
        let loaded = match retry_transient(|| self.store.load(&lease)).await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(%error, run_id = %lease.run_id, "cannot load a claimed run");
                return;
            }
        };
        let signal = self.activate(&lease);
        let durable = DurableRun::fresh(
            self.store.clone(),
            lease.clone(),
            self.settings(),
            signal,
            self.clone(),
            workflow.name(),
        );
        match rebuild(workflow, loaded, durable) {
            Ok(rebuilt) => {
                let shared = new_run(
                    workflow,
                    lease.run_id.clone(),
                    rebuilt.live,
                    rebuilt.history,
                );
                run_loop::spawn(shared, rebuilt.state, rebuilt.durable, None);
            }
            Err(reason) => {
                // A run that cannot be rebuilt would fail on every worker: fail it for good.
                tracing::error!(run_id = %lease.run_id, %reason, "cannot rebuild a run");
                let end = failed_end(format!(
                    "the run cannot be rebuilt from the store: {reason}"
                ));
                let commit = crate::store::Commit {
                    end: Some(end),
                    ..Default::default()
                };
                let _ = self.store.commit(&lease, commit).await;
            }
        }
    }
}

impl RunExit for Inner {
    fn exited(&self, lease: &Lease) {
        let mut active = lock(&self.active);
        if active
            .get(&lease.run_id)
            .is_some_and(|(epoch, _)| *epoch == lease.epoch)
        {
            active.remove(&lease.run_id);
        }
        drop(active);
        if let Some(watch) = lock(&self.watchers).get(&lease.run_id) {
            watch.committed.notify_waiters();
            watch.ended.notify_waiters();
        }
    }

    fn committed(&self, run_id: &str, finished: bool) {
        if let Some(watch) = lock(&self.watchers).get(run_id) {
            watch.committed.notify_waiters();
            if finished {
                watch.ended.notify_waiters();
            }
        }
    }
}

/// The worker's loop: heartbeats, claims, and wake-ups of runs.
async fn background(inner: std::sync::Weak<Inner>) {
    let (mut wakeups, mut stopping, heartbeat_every, poll) = {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        (
            inner.store.wakeups(),
            inner.stopping.clone(),
            inner.options.lease_ttl / 3,
            inner.options.poll_interval,
        )
    };
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    let mut claim = tokio::time::interval(poll);
    let mut last_beat = tokio::time::Instant::now();
    loop {
        let woken = tokio::select! {
            _ = stopping.changed() => return,
            _ = heartbeat.tick() => {
                let Some(inner) = inner.upgrade() else { return };
                match inner.store.heartbeat(&inner.options.worker_id, &inner.keys).await {
                    Ok(()) => last_beat = tokio::time::Instant::now(),
                    Err(error) => tracing::warn!(%error, "heartbeat failed"),
                }
                continue;
            }
            _ = claim.tick() => None,
            // Missed signals only delay work until the next poll.
            woken = wakeups.recv() => woken.ok(),
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if *inner.stopping.borrow() {
            return;
        }
        // A worker whose own heartbeat is stale looks dead: claiming now would take its own runs
        // (and others') as recoveries. Beat first (after the database was unreachable, say).
        if last_beat.elapsed() > heartbeat_every {
            match inner
                .store
                .heartbeat(&inner.options.worker_id, &inner.keys)
                .await
            {
                Ok(()) => last_beat = tokio::time::Instant::now(),
                Err(_) => continue,
            }
        }
        let options = inner.claim_options();
        match woken {
            Some(run_id) => {
                let signal = lock(&inner.active).get(&run_id).map(|(_, s)| s.clone());
                match signal {
                    Some(signal) => signal.notify_one(),
                    None => {
                        // `claim_run` does not look at the workflow: only runs served here.
                        let served = matches!(
                            inner.store.get_run(&run_id).await,
                            Ok(Some(record)) if inner.keys.contains(&record.workflow)
                        );
                        if served {
                            match inner
                                .store
                                .claim_run(&inner.options.worker_id, &run_id, &options)
                                .await
                            {
                                Ok(Some(claim)) => inner.drive_claimed(claim).await,
                                Ok(None) => {}
                                Err(error) => tracing::warn!(%error, "claim failed"),
                            }
                        }
                    }
                }
            }
            None => match inner.store.claim(&inner.options.worker_id, &options).await {
                Ok(claims) => {
                    for claim in claims {
                        inner.drive_claimed(claim).await;
                    }
                }
                Err(error) => tracing::warn!(%error, "claim failed"),
            },
        }
    }
}
