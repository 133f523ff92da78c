//! Running a workflow: the reducer, the executor of its commands, the in-memory loop, the
//! handler and the event stream.
//!
//! The reducer (`reducer.rs`) decides; the [`Executor`] carries out its commands (step tasks,
//! timers, waiters) and ends a run into one [`RunEnd`]; a loop decides when — `in_memory.rs`
//! at once, the durable loop (in `crate::durable`) after each commit.

mod end;
mod executor;
mod handler;
mod in_memory;
mod inbox;
pub(crate) mod reducer;
mod snapshot;
mod stream;
/// std's and tokio's locks and wake-ups, or loom's in the loom models of `inbox` and `stream`.
mod sync;

pub(crate) use end::RunEnd;
pub(crate) use executor::Executor;
pub(crate) use reducer::RunState;

pub use handler::{RunOutput, WorkflowHandler};
pub use snapshot::RunSnapshot;
pub use stream::EventStream;

pub(crate) use reducer::Tick;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::sync::oneshot;

use crate::context::{StateStore, may_lack_consumer};
use crate::error::{SendEventError, WorkflowError};
use crate::event::{AnyEvent, EventType};
use crate::replay::ReplayError;
use crate::workflow::Workflow;
use in_memory::Initial;
use inbox::Inbox;
use reducer::InvocationId;
use stream::StreamLog;

/// A message to a run's driver.
pub(crate) enum Msg {
    Tick(Tick),
    /// A step begins waiting (boxed: waits are rare, and the mailbox holds every message).
    Wait(Box<WaitRequest>),
    Snapshot(oneshot::Sender<Result<RunSnapshot, WorkflowError>>),
}

/// A step begins waiting; the event is handed over through `reply`.
pub(crate) struct WaitRequest {
    pub(crate) waiter: u64,
    pub(crate) invocation: InvocationId,
    pub(crate) event_type: EventType,
    pub(crate) requirements: Vec<(String, Value)>,
    pub(crate) prompt: Option<AnyEvent>,
    pub(crate) reply: oneshot::Sender<AnyEvent>,
}

/// What a run's driver, its steps' contexts and its handler share.
pub(crate) struct RunShared {
    pub(crate) run_id: String,
    pub(crate) workflow: Workflow,
    pub(crate) inbox: Inbox,
    pub(crate) state: StateStore,
    pub(crate) stream: StreamLog,
    children: Mutex<Vec<Arc<RunShared>>>,
    next_waiter: AtomicU64,
}

impl RunShared {
    /// Checks an event against the workflow's steps and hands it to the driver.
    pub(crate) fn send(
        &self,
        event: AnyEvent,
        target: Option<&str>,
        from: Option<InvocationId>,
    ) -> Result<(), SendEventError> {
        let spec = &self.workflow.spec;
        let target = match target {
            Some(name) => {
                let Some(step) = spec.step_index(name) else {
                    return Err(SendEventError::UnknownStep {
                        step: name.to_owned(),
                        event,
                    });
                };
                if !spec.steps[step].accepts.contains(&event.event_type()) {
                    return Err(SendEventError::NotAccepted {
                        step: name.to_owned(),
                        event,
                    });
                }
                Some(step)
            }
            None => {
                if spec.consumers_of(event.type_id()).is_empty() && !may_lack_consumer(event.role())
                {
                    return Err(SendEventError::NoConsumer { event });
                }
                None
            }
        };
        self.inbox
            .send(Msg::Tick(Tick::Emit {
                event,
                target,
                from,
            }))
            .map_err(|rejected| match rejected {
                Msg::Tick(Tick::Emit { event, .. }) => SendEventError::RunFinished { event },
                _ => unreachable!("an Emit was sent"),
            })
    }

    pub(crate) fn next_waiter(&self) -> u64 {
        self.next_waiter.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn cancel(&self) {
        let _ = self.inbox.send(Msg::Tick(Tick::Cancel));
    }

    /// Makes `child` end when this run ends.
    pub(crate) fn adopt(&self, child: Arc<RunShared>) {
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(child);
    }

    pub(crate) fn cancel_children(&self) {
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(PoisonError::into_inner));
        for child in children {
            child.cancel();
        }
    }
}

pub(crate) fn new_run(
    workflow: &Workflow,
    run_id: String,
    state: StateStore,
    history: Vec<AnyEvent>,
) -> Arc<RunShared> {
    Arc::new(RunShared {
        run_id,
        workflow: workflow.clone(),
        inbox: Inbox::new(),
        state,
        stream: StreamLog::new(history),
        children: Mutex::new(Vec::new()),
        next_waiter: AtomicU64::new(1),
    })
}

/// Starts a fresh run.
pub(crate) fn start(
    workflow: &Workflow,
    start: Result<AnyEvent, WorkflowError>,
) -> WorkflowHandler {
    let run_id = uuid::Uuid::new_v4().to_string();
    let seed = fastrand::u64(..);
    let shared = new_run(workflow, run_id, StateStore::default(), Vec::new());
    let initial = match start_tick(workflow, start) {
        Ok(tick) => Initial::Tick(tick),
        Err(error) => Initial::Fail(error),
    };
    let state = RunState::new(&workflow.spec, seed);
    let (handler, result) = WorkflowHandler::new(shared.clone());
    in_memory::spawn(shared, state, result, initial);
    handler
}

/// The first tick of a run of `workflow`, if `start` is an event of its start event's type.
pub(crate) fn start_tick(
    workflow: &Workflow,
    start: Result<AnyEvent, WorkflowError>,
) -> Result<Tick, WorkflowError> {
    let event = start?;
    let expected = workflow.spec.start;
    if event.event_type() != expected {
        return Err(WorkflowError::InvalidStart {
            expected: expected.name(),
            found: event.name().to_owned(),
        });
    }
    Ok(Tick::Start(event))
}

/// Resumes a run from a snapshot.
pub(crate) fn resume(
    workflow: &Workflow,
    snapshot: RunSnapshot,
) -> Result<WorkflowHandler, WorkflowError> {
    let parts = snapshot.into_parts(workflow)?;
    let spec = &workflow.spec;
    let invalid = |error: ReplayError| WorkflowError::InvalidSnapshot(error.to_string());
    let mut state = RunState::restore(spec, parts.reducer).map_err(invalid)?;
    state.recover();
    let store = StateStore::restore(
        parts.state,
        |name| spec.step_index(name),
        |name| spec.event_by_name(name),
    )
    .map_err(invalid)?;
    let history = parts
        .stream
        .into_iter()
        .map(|json| spec.decode_published(json))
        .collect();
    let shared = new_run(workflow, parts.run_id, store, history);
    let (handler, result) = WorkflowHandler::new(shared.clone());
    in_memory::spawn(shared, state, result, Initial::Resume);
    Ok(handler)
}
