//! What a run's driver, its steps' contexts and its handler share, and how a run begins.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::context::{ContextState, RunAccess, SendEventError, WaitRequest, may_lack_consumer};
use crate::error::WorkflowError;
use crate::event::{AnyEvent, EventType, StartEvent};
use crate::run::inbox::Inbox;
use crate::run::message::Msg;
use crate::run::reducer::{InvocationId, Tick};
use crate::run::stream::StreamLog;
use crate::verbose;
use crate::workflow::Workflow;

/// What a run's driver, its steps' contexts and its handler share.
pub(crate) struct RunShared {
    pub(crate) run_id: String,
    pub(crate) workflow: Workflow,
    pub(crate) inbox: Inbox,
    pub(crate) state: ContextState,
    pub(crate) stream: StreamLog,
    /// The `tracing` dispatcher of a verbose run in a process without one (see
    /// `verbose::run_dispatch`): the run's tasks report to it.
    pub(crate) dispatch: Option<tracing::Dispatch>,
    /// Whether the run publishes internal events: from its start when the workflow asks, or
    /// once a reader asks for them.
    internal: AtomicBool,
    /// Whether the run waits for a slot (`Workflow::num_concurrent_runs`).
    queued: AtomicBool,
    children: Mutex<Vec<Arc<dyn RunAccess>>>,
    next_waiter: AtomicU64,
}

impl RunShared {
    pub(crate) fn publishes_internal(&self) -> bool {
        self.internal.load(Ordering::Relaxed)
    }

    pub(crate) fn is_queued(&self) -> bool {
        self.queued.load(Ordering::Relaxed)
    }

    pub(crate) fn set_queued(&self, queued: bool) {
        self.queued.store(queued, Ordering::Relaxed);
    }

    /// Publishes internal events from the next tick on.
    pub(crate) fn start_publishing_internal(&self) {
        self.internal.store(true, Ordering::Relaxed);
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
    state: ContextState,
    history: Vec<AnyEvent>,
) -> Arc<RunShared> {
    Arc::new(RunShared {
        run_id,
        workflow: workflow.clone(),
        inbox: Inbox::new(),
        state,
        stream: StreamLog::new(history),
        dispatch: verbose::run_dispatch(workflow.verbose),
        internal: AtomicBool::new(workflow.internal_events),
        queued: AtomicBool::new(false),
        children: Mutex::new(Vec::new()),
        next_waiter: AtomicU64::new(1),
    })
}

/// The first tick of a run of `workflow`, if `start` is an event of its start event's type. A
/// plain `StartEvent` given to a workflow with a typed start event holds its arguments: they are
/// decoded into the typed event (as the reference's `run(**kwargs)` does).
pub(crate) fn start_tick(
    workflow: &Workflow,
    start: Result<AnyEvent, WorkflowError>,
) -> Result<Tick, WorkflowError> {
    let mut event = start?;
    let expected = workflow.spec.start;
    if event.is::<StartEvent>() && expected != EventType::of::<StartEvent>() {
        let arguments = event
            .to_json()
            .map_err(|error| WorkflowError::InvalidStart {
                expected: expected.name(),
                found: format!("arguments that do not serialize: {error}"),
            })?;
        event = expected
            .decode(arguments)
            .map_err(|error| WorkflowError::InvalidStart {
                expected: expected.name(),
                found: format!("arguments that do not decode: {error}"),
            })?;
    }
    if event.event_type() != expected {
        return Err(WorkflowError::InvalidStart {
            expected: expected.name(),
            found: event.name().to_owned(),
        });
    }
    Ok(Tick::Start(event))
}

// The checks and messages steps need are here, with the types they touch; the handler calls
// the same methods (`send`, `cancel`) for events and cancellation from outside.
impl RunAccess for RunShared {
    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn step_name(&self, step: usize) -> &str {
        &self.workflow.spec.steps[step].name
    }

    fn state(&self) -> &ContextState {
        &self.state
    }

    fn send(
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
                if spec.consumers_of(event.type_id()).is_empty()
                    && !may_lack_consumer(event.role())
                    && !spec.is_registered(event.event_type())
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

    fn publish(&self, event: AnyEvent) {
        self.stream.push(event);
    }

    fn next_waiter(&self) -> u64 {
        self.next_waiter.fetch_add(1, Ordering::Relaxed)
    }

    fn wait(&self, request: WaitRequest) -> bool {
        self.inbox.send(Msg::Wait(Box::new(request))).is_ok()
    }

    fn end_wait(&self, waiter: u64) {
        let _ = self.inbox.send(Msg::Tick(Tick::WaitEnded { waiter }));
    }

    fn adopt(&self, child: Arc<dyn RunAccess>) {
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(child);
    }

    fn cancel(&self) {
        let _ = self.inbox.send(Msg::Tick(Tick::Cancel));
    }
}
