//! The in-memory loop: one task per run feeds the run's messages to the reducer and carries out
//! its commands at once, until the run ends. Nothing is recorded, so nothing is paid for it.
//!
//! The public ways into it are here too: `Workflow::run` and `Workflow::resume`, and a step's
//! `Context::run_child`. They are inherent methods of types defined lower down (`workflow`,
//! `context`), written where they are implemented so that those modules need not import this
//! one.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::context::{Context, ContextState};
use crate::error::SnapshotError;
use crate::error::WorkflowError;
use crate::run::context::RunContext;
use crate::run::end::RunEnd;
use crate::run::executor::Executor;
use crate::run::handler::{RunOutput, WorkflowHandler};
use crate::run::message::Msg;
use crate::run::reducer::{RunState, Tick};
use crate::run::shared::{RunShared, new_run, start_tick};
use crate::run::snapshot::RunSnapshot;
use crate::verbose::{RUN_SPAN, run_span, spawn_in_span};
use crate::workflow::{StartInput, Workflow};

impl Workflow {
    /// Starts a run and returns its handler at once; the run proceeds in the background.
    ///
    /// `start` is the start event: a JSON object of keyword arguments for `StartEvent`, a
    /// `StartEvent`, or the workflow's own typed start event.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn run(&self, start: impl StartInput) -> WorkflowHandler {
        let run_id = uuid::Uuid::new_v4().to_string();
        let shared = new_run(self, run_id, ContextState::default(), Vec::new());
        let initial = match start_tick(self, start.into_start_event()) {
            Ok(tick) => Initial::Tick(tick),
            Err(error) => Initial::Fail(error),
        };
        self.start(shared, initial)
    }

    /// Starts a run from a context: the state a finished run left
    /// ([`RunOutput::context`](crate::RunOutput::context)), or one seeded with
    /// [`RunContext::set`]. The run works on a copy of that state, and `context` follows the new
    /// run: reading it reads the run's state, and the next `run_with_context` starts from what
    /// this run leaves — a conversation kept across turns.
    ///
    /// The run fails at once with [`WorkflowError::ContextInUse`] when the context's run is
    /// still going, and with [`WorkflowError::ContextOfOtherWorkflow`] when it was a run of
    /// another workflow.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn run_with_context(
        &self,
        context: &RunContext,
        start: impl StartInput,
    ) -> WorkflowHandler {
        let run_id = uuid::Uuid::new_v4().to_string();
        let fresh = |run_id| new_run(self, run_id, ContextState::default(), Vec::new());
        let tick = match start_tick(self, start.into_start_event()) {
            Ok(tick) => tick,
            // A bad start event leaves the context alone.
            Err(error) => return self.start(fresh(run_id), Initial::Fail(error)),
        };
        let new = |state| new_run(self, run_id.clone(), state, Vec::new());
        match context.hand_to(self, new) {
            Ok(shared) => self.start(shared, Initial::Tick(tick)),
            Err(error) => self.start(fresh(run_id.clone()), Initial::Fail(error)),
        }
    }

    /// Spawns the run of `shared` and returns its handler.
    fn start(&self, shared: Arc<RunShared>, initial: Initial) -> WorkflowHandler {
        let state = RunState::new(&self.spec, fastrand::u64(..));
        let (handler, result) = WorkflowHandler::new(shared.clone());
        spawn(shared, state, result, initial);
        handler
    }

    /// Resumes a run from a snapshot taken with `WorkflowHandler::snapshot`, in this process or
    /// another. Steps that were running when the snapshot was taken run again.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn resume(&self, snapshot: RunSnapshot) -> Result<WorkflowHandler, SnapshotError> {
        let parts = snapshot.into_parts(self)?;
        let spec = &self.spec;
        let (mut state, store) = parts.image.restore(spec)?;
        state.recover();
        let history = parts
            .stream
            .into_iter()
            .map(|json| spec.decode_published(json))
            .collect();
        let shared = new_run(self, parts.run_id, store, history);
        let (handler, result) = WorkflowHandler::new(shared.clone());
        spawn(shared, state, result, Initial::Resume);
        Ok(handler)
    }
}

impl Context {
    /// Starts a run of another workflow as a child of this run: cancelling or finishing this
    /// run cancels the child.
    pub fn run_child(&self, workflow: &Workflow, start: impl StartInput) -> WorkflowHandler {
        let child = workflow.run(start);
        self.run.adopt(child.shared());
        child
    }

    /// Forwards every event the child publishes (but its terminal event) into this run's
    /// stream, in order, until the child finishes.
    pub fn forward_stream(&self, child: &WorkflowHandler) {
        let mut events = child.stream_events();
        let ctx = self.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            while let Some(event) = events.next().await {
                if event.is_terminal() {
                    break;
                }
                ctx.write_any_to_stream(event);
            }
        });
    }
}

/// How a run begins.
enum Initial {
    /// With a tick (the start event).
    Tick(Tick),
    /// With a restored state whose pending invocations are to be started.
    Resume,
    /// Not at all: the run fails before any step runs.
    Fail(WorkflowError),
}

type ResultSender = oneshot::Sender<Result<RunOutput, WorkflowError>>;

/// Runs `shared` in a task of its own; its result goes to `result`.
fn spawn(shared: Arc<RunShared>, state: RunState, result: ResultSender, initial: Initial) {
    let run_shared = shared.clone();
    let span = move || {
        let span = tracing::info_span!(
            RUN_SPAN,
            workflow = %run_shared.workflow.name(),
            run_id = %run_shared.run_id,
            verbose = tracing::field::Empty,
        );
        run_span(span, run_shared.workflow.verbose)
    };
    let dispatch = shared.dispatch.clone();
    let executor = Executor::new(shared, state);
    spawn_in_span(dispatch.as_ref(), span, run(executor, result, initial));
}

async fn run(mut executor: Executor, result: ResultSender, initial: Initial) {
    tracing::debug!("run started");
    // Messages that came while the run waited for a slot: handled once it has started.
    let mut held = VecDeque::new();
    let _slot = match initial {
        Initial::Fail(_) => None,
        _ => match take_slot(&executor.shared, &mut held).await {
            Ok(slot) => slot,
            Err(Cancelled) => {
                apply(&mut executor, Tick::Cancel);
                report(&mut executor, result);
                return;
            }
        },
    };
    match initial {
        Initial::Tick(tick) => apply(&mut executor, tick),
        Initial::Resume => {
            executor.resume();
            execute(&mut executor);
        }
        Initial::Fail(error) => {
            executor.end_with(RunEnd::failed(error.to_string(), error));
            report(&mut executor, result);
            return;
        }
    }
    for message in held {
        handle(&mut executor, message);
    }
    let shared = executor.shared.clone();
    let timeout = shared.workflow.timeout;
    // Only runs with a timeout pay for a timer.
    let mut deadline = timeout.map(|timeout| Box::pin(tokio::time::sleep(timeout)));
    let mut batch = VecDeque::new();
    while !executor.is_finished() {
        tokio::select! {
            () = shared.inbox.receive(&mut batch) => {}
            () = async {
                match deadline.as_mut() {
                    Some(deadline) => deadline.await,
                    None => std::future::pending().await,
                }
            } => {
                let timeout = timeout.unwrap_or_default();
                batch.push_back(Msg::Tick(Tick::TimedOut { timeout }));
            }
        }
        while let Some(message) = batch.pop_front() {
            if executor.is_finished() {
                break;
            }
            handle(&mut executor, message);
            // A long batch (a fan-out of a million events) must not hog the worker thread.
            tokio::task::consume_budget().await;
        }
        batch.clear();
    }
    report(&mut executor, result);
}

/// The run was cancelled while it waited for a slot.
struct Cancelled;

/// Waits for a slot when the workflow bounds its concurrent runs, keeping the messages that
/// arrive meanwhile in `held`; the run is queued while it waits.
async fn take_slot(
    shared: &RunShared,
    held: &mut VecDeque<Msg>,
) -> Result<Option<OwnedSemaphorePermit>, Cancelled> {
    let Some(slots) = &shared.workflow.run_slots else {
        return Ok(None);
    };
    let acquire = slots.permits.clone().acquire_owned();
    tokio::pin!(acquire);
    if let Some(permit) = futures::FutureExt::now_or_never(&mut acquire) {
        return Ok(permit.ok());
    }
    shared.set_queued(true);
    tracing::debug!("run queued: the workflow's concurrent runs are all taken");
    let mut batch = VecDeque::new();
    let slot = loop {
        tokio::select! {
            permit = &mut acquire => break Ok(permit.ok()),
            () = shared.inbox.receive(&mut batch) => {
                let cancelled = batch.iter().any(|m| matches!(m, Msg::Tick(Tick::Cancel)));
                held.append(&mut batch);
                if cancelled {
                    break Err(Cancelled);
                }
            }
        }
    };
    shared.set_queued(false);
    slot
}

/// Takes in one message and applies the tick it gives.
fn handle(executor: &mut Executor, message: Msg) {
    if let Some(tick) = executor.admit(message) {
        apply(executor, tick);
    }
}

fn report(executor: &mut Executor, result: ResultSender) {
    if let Some(end) = executor.take_end() {
        let _ = result.send(end.result);
    }
}

/// Applies a tick and carries out its commands, and those of the ticks they give, until quiet.
fn apply(executor: &mut Executor, tick: Tick) {
    executor.apply(tick);
    execute(executor);
}

/// Carries out the pending commands; events a waiter gave up on are routed again at once.
fn execute(executor: &mut Executor) {
    executor.execute();
    while let Some(tick) = executor.next_undelivered() {
        executor.apply(tick);
        executor.execute();
    }
}
