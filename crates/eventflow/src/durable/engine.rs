//! The [`Engine`]: one worker's handle to start, send to, cancel, wait for and read runs.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;

use super::error::EngineError;
use super::journal::Entry;
use super::rebuild::seed_of;
use super::recorder::DurableRun;
use super::run_id::{check_idempotency_key, check_run_id};
use super::worker::{Inner, lock, workflow_key};
use crate::context::ContextState;
use crate::event::{AnyEvent, Event, EventJson};
use crate::run::{RunState, Tick, new_run, start_tick};
use crate::store::{Claim, Created, Mail, NewRun, RunRecord, RunStatus, Sent, StoreError};
use crate::workflow::{StartInput, Workflow};

/// One worker of durable runs; cheap to clone. See the [module docs](crate::durable).
#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

/// The message id of every cancel request: a run is cancelled once, however often asked.
pub(super) const CANCEL_MSG_ID: &str = "eventflow.cancel";

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
    /// This worker's id.
    pub fn worker_id(&self) -> &str {
        &self.inner.options.worker_id
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

    /// [`start`](Self::start) with a run id or an idempotency key. A run id must pass
    /// [`check_run_id`](super::check_run_id).
    pub async fn start_with(
        &self,
        name: &str,
        start: impl StartInput,
        options: StartOptions,
    ) -> Result<Started, EngineError> {
        if let Some(run_id) = &options.run_id {
            check_run_id(run_id)?;
        }
        if let Some(key) = &options.idempotency_key {
            check_idempotency_key(key)?;
        }
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
        // A run of a workflow that bounds its concurrent runs is left to the claim loop, the
        // one place that takes slots: it starts the run now if a slot is free, later if not.
        let bounded = workflow.concurrent_runs_limit().is_some();
        let owner = (!options.detached && !bounded && inner.options.drive_runs)
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
                if bounded && inner.options.drive_runs && !options.detached {
                    inner.claim_now.notify_one();
                }
                if let Some(lease) = lease {
                    let signal = inner.activate(&lease, workflow.name());
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
                        ContextState::default().tracking_writes(),
                        Vec::new(),
                    );
                    let state = RunState::new(&workflow.spec, seed_of(&run_id));
                    super::run_loop::spawn(shared, state, durable, Some(tick));
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
        if owner.is_none() && workflow.concurrent_runs_limit().is_some() {
            self.inner.claim_now.notify_one();
        }
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
    /// must be one of the run's workflow's event types and decode as it. The message id is
    /// stored and indexed like an idempotency key, and must pass
    /// [`check_idempotency_key`](super::check_idempotency_key).
    pub async fn send_json(
        &self,
        run_id: &str,
        msg_id: &str,
        event: EventJson,
        step: Option<&str>,
    ) -> Result<Sent, EngineError> {
        check_idempotency_key(msg_id)?;
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
        check_run_id(run_id)?;
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

    /// The run's record. An id that fails [`check_run_id`](super::check_run_id) names no run
    /// and is refused before the store sees it; every method that reads a run by id starts here
    /// or checks it so.
    pub async fn record(&self, run_id: &str) -> Result<RunRecord, EngineError> {
        check_run_id(run_id)?;
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
        let watching = self.inner.watchers.watch(run_id);
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
        let watching = self.inner.watchers.watch(&run_id);
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
