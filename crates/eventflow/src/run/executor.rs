//! The run executor: carries out the reducer's commands for one run.
//!
//! It owns what the reducer must not touch — step tasks, retry timers, waiters, the clock and
//! panics — and finishes a run into one [`RunEnd`]. It decides nothing about *when* commands
//! run: the in-memory loop (`run/in_memory.rs`) carries them out as soon as a tick is applied,
//! the durable loop (`durable/run_loop.rs`) only after the tick is committed to the store.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::context::{Context, PastAttempts, WaitRequest};
use crate::error::SnapshotError;
use crate::event::AnyEvent;
use crate::run::end::RunEnd;
use crate::run::message::Msg;
use crate::run::reducer::{
    AttemptTimes, Command, InvocationId, Outcome, RetryDecision, RunState, StepFailure, Tick,
};
use crate::run::shared::RunShared;
use crate::run::snapshot::{RunImage, RunSnapshot};
use crate::step::{FailedAttempt, RetryPolicy, StepError};
use crate::verbose::{STEP_SPAN, spawn_in_span};
use crate::workflow::WorkflowSpec;

pub(crate) struct Executor {
    pub(crate) shared: Arc<RunShared>,
    pub(crate) spec: Arc<WorkflowSpec>,
    pub(crate) state: RunState,
    tasks: HashMap<InvocationId, AbortHandle>,
    /// Retry timers, with when they fire.
    timers: HashMap<u64, (AbortHandle, tokio::time::Instant)>,
    waiters: HashMap<u64, (InvocationId, oneshot::Sender<AnyEvent>)>,
    /// What the reducer asked for and the executor has not carried out yet.
    commands: Vec<Command>,
    /// Events the reducer handed to a waiter that had just given up: each loop routes them
    /// again its own way.
    undelivered: VecDeque<Tick>,
    end: Option<RunEnd>,
}

impl Executor {
    pub(crate) fn new(shared: Arc<RunShared>, state: RunState) -> Self {
        Executor {
            spec: shared.workflow.spec.clone(),
            shared,
            state,
            tasks: HashMap::new(),
            timers: HashMap::new(),
            waiters: HashMap::new(),
            commands: Vec::new(),
            undelivered: VecDeque::new(),
            end: None,
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.state.is_finished()
    }

    /// Takes in a message: keeps the executor's books (a finished step's task, a new waiter, a
    /// fired timer) and answers snapshot requests. Returns the tick for the loop to apply.
    pub(crate) fn admit(&mut self, message: Msg) -> Option<Tick> {
        match message {
            Msg::Tick(tick) => {
                match &tick {
                    Tick::StepDone { invocation, .. } => {
                        self.tasks.remove(invocation);
                        self.waiters.retain(|_, (owner, _)| owner != invocation);
                    }
                    Tick::WaitEnded { waiter } => {
                        self.waiters.remove(waiter);
                    }
                    Tick::RetryDue { timer } => {
                        self.timers.remove(timer);
                    }
                    _ => {}
                }
                Some(tick)
            }
            Msg::Wait(wait) => {
                let WaitRequest {
                    wait,
                    prompt,
                    reply,
                } = *wait;
                // A wait from an invocation that already ended is dropped with its reply.
                if !self.tasks.contains_key(&wait.invocation) {
                    return None;
                }
                self.waiters.insert(wait.waiter, (wait.invocation, reply));
                Some(Tick::Wait { wait, prompt })
            }
            Msg::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
                None
            }
        }
    }

    /// Applies a tick to the reducer; its commands wait for [`execute`](Self::execute).
    pub(crate) fn apply(&mut self, tick: Tick) {
        self.state
            .publish_internal(self.shared.publishes_internal());
        self.state.apply(&self.spec, tick, &mut self.commands);
    }

    /// Asks a restored reducer for the invocations to start again.
    pub(crate) fn resume(&mut self) {
        self.state
            .publish_internal(self.shared.publishes_internal());
        self.state.resume(&self.spec, &mut self.commands);
    }

    /// An event to route again (see `undelivered`), oldest first.
    pub(crate) fn next_undelivered(&mut self) -> Option<Tick> {
        self.undelivered.pop_front()
    }

    /// Carries out every pending command.
    pub(crate) fn execute(&mut self) {
        let mut commands = std::mem::take(&mut self.commands);
        for command in commands.drain(..) {
            self.carry_out(command);
        }
        self.commands = commands;
    }

    /// Publishes and finishes now, leaving the other commands pending: what a durable run does
    /// before its commit, so that the commit holds the published events and the run's end.
    pub(crate) fn publish_and_finish(&mut self) {
        let commands = std::mem::take(&mut self.commands);
        for command in commands {
            match command {
                Command::Publish(_) | Command::Finish(_) => self.carry_out(command),
                other => self.commands.push(other),
            }
        }
    }

    /// How long until the earliest retry timer fires, counting timers not yet started.
    pub(crate) fn next_timer(&self) -> Option<Duration> {
        let now = tokio::time::Instant::now();
        let pending = self.commands.iter().filter_map(|command| match command {
            Command::ScheduleRetry { delay, .. } => Some(*delay),
            _ => None,
        });
        self.timers
            .values()
            .map(|(_, due)| due.saturating_duration_since(now))
            .chain(pending)
            .min()
    }

    fn carry_out(&mut self, command: Command) {
        match command {
            Command::StartStep {
                invocation,
                step,
                event,
                attempt,
                key,
                past,
            } => self.start_step(invocation, step, event, attempt, key, past),
            Command::ScheduleRetry { timer, delay } => {
                let run = self.shared.clone();
                let task = tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = run.inbox.send(Msg::Tick(Tick::RetryDue { timer }));
                });
                let due = tokio::time::Instant::now() + delay;
                self.timers.insert(timer, (task.abort_handle(), due));
            }
            Command::Deliver { waiter, event } => {
                let undelivered = match self.waiters.remove(&waiter) {
                    Some((_, reply)) => reply.send(event).err(),
                    None => Some(event),
                };
                if let Some(event) = undelivered {
                    self.undelivered.push_back(Tick::Emit {
                        event,
                        target: None,
                        from: None,
                    });
                }
            }
            Command::Publish(event) => {
                self.shared.stream.push(event);
            }
            Command::Finish(outcome) => self.finish(outcome),
        }
    }

    fn start_step(
        &mut self,
        invocation: InvocationId,
        step_index: usize,
        event: AnyEvent,
        attempt: u32,
        key: u64,
        past: Option<Arc<PastAttempts>>,
    ) {
        let step = &self.spec.steps[step_index];
        // Made here, under the run's dispatcher (the executor runs in the run's task).
        let span = tracing::info_span!(
            STEP_SPAN,
            step = %step.name,
            event = %event.name(),
            attempt,
        );
        let first_attempt_at = past.as_ref().map(|past| past.first_attempt_at);
        let body = step.body.clone();
        let timeout = step.timeout;
        let run = self.shared.clone();
        let task = spawn_in_span(self.shared.dispatch.as_ref(), || span, async move {
            tracing::debug!("step started");
            let started = Instant::now();
            let ctx = Context {
                run: run.clone(),
                step: step_index,
                invocation,
                attempt,
                key,
                started,
                past,
            };
            // The body is called inside the guarded future, so a panic while building the
            // step's future is caught like one while polling it.
            let guarded = AssertUnwindSafe(async move { body(ctx, event).await }).catch_unwind();
            let caught = match timeout {
                None => Some(guarded.await),
                Some(limit) => tokio::time::timeout(limit, guarded).await.ok(),
            };
            let outcome = match caught {
                Some(Ok(Ok(events))) => Ok(events),
                Some(Ok(Err(error))) => Err(StepError::Failed(error)),
                Some(Err(panic)) => Err(StepError::Panicked(panic_message(panic.as_ref()))),
                None => Err(StepError::TimedOut(timeout.unwrap_or_default())),
            };
            let step = &run.workflow.spec.steps[step_index];
            let elapsed = started.elapsed();
            match &outcome {
                Ok(events) => {
                    tracing::debug!(?elapsed, emitted = %EventNames(events), "step finished");
                }
                Err(error) => tracing::warn!(?elapsed, %error, "step failed"),
            }
            let outcome = outcome.map_err(|error| {
                report_failure(&step.retry, attempt, first_attempt_at, started, error)
            });
            let _ = run.inbox.send(Msg::Tick(Tick::StepDone {
                invocation,
                outcome,
                elapsed,
            }));
        });
        self.tasks.insert(invocation, task.abort_handle());
    }

    /// Stops everything this process runs for the run — step tasks, timers, waiters, child
    /// runs — without finishing it: the run ends, or goes on from the store.
    pub(crate) fn stop_tasks(&mut self) {
        for (_, task) in self.tasks.drain() {
            task.abort();
        }
        for (_, (timer, _)) in self.timers.drain() {
            timer.abort();
        }
        self.waiters.clear();
        self.shared.cancel_children();
    }

    fn finish(&mut self, outcome: Outcome) {
        self.stop_tasks();
        let outcome = match outcome {
            Outcome::Stalled { mut reason } => {
                for waiting in self
                    .shared
                    .state
                    .describe_waiting_collects(self.spec.step_names())
                {
                    reason.push_str("; ");
                    reason.push_str(&waiting);
                }
                Outcome::Stalled { reason }
            }
            other => other,
        };
        let path = self.state.path(&self.spec);
        self.end_with(RunEnd::new(outcome, &self.shared, path));
    }

    /// Ends the run: its stream closes with the end's terminal event, and the end waits for
    /// its loop in [`take_end`](Self::take_end).
    pub(crate) fn end_with(&mut self, end: RunEnd) {
        match &end.result {
            Ok(output) => tracing::info!(result = ?output.event, "run finished"),
            Err(error) => tracing::warn!(%error, "run failed"),
        }
        self.shared.stream.close_with(end.terminal.clone());
        self.end = Some(end);
    }

    /// How the run ended, once it has.
    pub(crate) fn take_end(&mut self) -> Option<RunEnd> {
        self.end.take()
    }

    fn snapshot(&self) -> Result<RunSnapshot, SnapshotError> {
        if self.state.is_finished() {
            return Err(SnapshotError::Finished);
        }
        let invalid = SnapshotError::Serialize;
        let image = RunImage::take(&self.spec, &self.state, &self.shared.state).map_err(invalid)?;
        Ok(RunSnapshot::new(
            &self.shared.workflow,
            &self.shared.run_id,
            self.shared
                .stream
                .history()
                .iter()
                .map(AnyEvent::to_event_json)
                .collect::<Result<_, _>>()
                .map_err(invalid)?,
            image,
        ))
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // However the run's loop ends (finished, or its runtime shutting down), later sends fail.
        self.shared.inbox.close();
    }
}

/// A failed attempt's report to the reducer: the retry decision and the times are made here, in
/// the attempt's task, where the error is whole and the clock may be read; the reducer only
/// follows them (see `run/reducer/retry.rs`).
/// `first_attempt_at` is `None` on a first attempt, which began at `started`: the wall clock
/// is read only here, on failure.
fn report_failure(
    policy: &RetryPolicy,
    attempt: u32,
    first_attempt_at: Option<SystemTime>,
    started: Instant,
    error: StepError,
) -> Box<StepFailure> {
    let now = SystemTime::now();
    let first_attempt_at =
        first_attempt_at.unwrap_or_else(|| now.checked_sub(started.elapsed()).unwrap_or(now));
    let times = AttemptTimes::new(first_attempt_at, now);
    let failed = FailedAttempt {
        attempt,
        elapsed: times.elapsed(),
        error: &error,
        retryable: None,
    };
    // Any generator will do: the decision is journaled, not drawn again. A policy that panics
    // (user code) ends the retries, not the task: the run would wait for a completion that
    // never comes.
    let mut rng = fastrand::Rng::new();
    let ask = AssertUnwindSafe(|| RetryDecision::ask(policy, &failed, &mut rng));
    let retry = std::panic::catch_unwind(ask).unwrap_or_else(|panic| {
        let panic = panic_message(panic.as_ref());
        tracing::warn!(%panic, "the retry policy panicked: no retry");
        RetryDecision::Stop
    });
    Box::new(StepFailure {
        error,
        retry,
        times: Some(times),
    })
}

/// The names of the events a step emitted, for its `step finished` event: `A, B`, or
/// `nothing`. Formatted only when a subscriber wants the event.
struct EventNames<'a>(&'a [AnyEvent]);

impl std::fmt::Display for EventNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("nothing");
        }
        for (index, event) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            f.write_str(event.name())?;
        }
        Ok(())
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
