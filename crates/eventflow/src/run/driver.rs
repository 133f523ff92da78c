//! The tokio driver: feeds ticks to the reducer and carries out its commands.
//!
//! One task per run owns the [`RunState`]; step invocations run as their own tasks and report
//! back through the run's inbox. The driver is the only place that touches tokio, clocks and
//! panics, so the reducer stays pure.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::context::Context;
use crate::durable::{Abandon, DurableRun, finish_end};
use crate::error::WorkflowError;
use crate::event::{AnyEvent, EventJson, RunCancelledEvent, RunFailedEvent, RunTimedOutEvent};
use crate::run::handler::RunOutput;
use crate::run::reducer::{Command, InvocationId, Outcome, RunState, Tick};
use crate::run::{Msg, RunShared, RunSnapshot, WaitRequest};
use crate::step::StepError;
use crate::store::{CommitEnd, RunStatus, StoreError};
use crate::workflow::WorkflowSpec;

/// How a driver begins.
pub(crate) enum Initial {
    /// With a tick (the start event).
    Tick(Tick),
    /// With a restored state whose pending invocations are to be started.
    Resume,
    /// Not at all: the run fails before any step runs.
    Fail(WorkflowError),
}

type ResultSender = oneshot::Sender<Result<RunOutput, WorkflowError>>;

/// A durable run whose only pending work is a retry at least this far away is released until
/// then; a shorter backoff is waited out in memory.
const RELEASE_FOR_TIMERS_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) struct Driver {
    shared: Arc<RunShared>,
    spec: Arc<WorkflowSpec>,
    state: RunState,
    tasks: HashMap<InvocationId, AbortHandle>,
    /// Retry timers, with when they fire.
    timers: HashMap<u64, (AbortHandle, tokio::time::Instant)>,
    waiters: HashMap<u64, (InvocationId, oneshot::Sender<AnyEvent>)>,
    result: Option<ResultSender>,
    commands: Vec<Command>,
    follow_ups: VecDeque<Tick>,
    /// Durable runs apply ticks, commit them, and only then carry out their commands.
    deferred: bool,
    /// How the run ended, for the store.
    end: Option<CommitEnd>,
}

impl Driver {
    pub(crate) fn spawn(
        shared: Arc<RunShared>,
        state: RunState,
        result: ResultSender,
        initial: Initial,
    ) {
        let span = tracing::info_span!(
            "workflow_run",
            workflow = %shared.workflow.name(),
            run_id = %shared.run_id,
        );
        let driver = Driver::new(shared, state, Some(result), false);
        tokio::spawn(driver.run(initial).instrument(span));
    }

    /// Spawns the driver of a durable run: `start` for a new run (its start is journaled
    /// already), `None` for a rebuilt one, whose pending invocations are started after the
    /// inbox is read.
    pub(crate) fn spawn_durable(
        shared: Arc<RunShared>,
        state: RunState,
        durable: DurableRun,
        start: Option<Tick>,
    ) {
        let span = tracing::info_span!(
            "workflow_run",
            workflow = %shared.workflow.name(),
            run_id = %shared.run_id,
            epoch = durable.lease.epoch,
        );
        let driver = Driver::new(shared, state, None, true);
        tokio::spawn(driver.run_durable(durable, start).instrument(span));
    }

    fn new(
        shared: Arc<RunShared>,
        state: RunState,
        result: Option<ResultSender>,
        deferred: bool,
    ) -> Self {
        Driver {
            spec: shared.workflow.spec.clone(),
            shared,
            state,
            tasks: HashMap::new(),
            timers: HashMap::new(),
            waiters: HashMap::new(),
            result,
            commands: Vec::new(),
            follow_ups: VecDeque::new(),
            deferred,
            end: None,
        }
    }

    /// The loop of a durable run: gather messages, journal them, apply them, commit (with the
    /// events published and, when due, a snapshot), and only then start steps. A run that can
    /// only wait for outside events is snapshotted and released.
    async fn run_durable(mut self, mut durable: DurableRun, start: Option<Tick>) {
        tracing::debug!("durable run started");
        let shared = self.shared.clone();
        let spec = self.spec.clone();
        let recovered = start.is_none();
        let mut start = start;
        let mut batch = VecDeque::new();
        let mut ticks = Vec::new();
        let timeout = shared.workflow.timeout;
        let mut deadline = timeout.map(|timeout| Box::pin(tokio::time::sleep(timeout)));
        let mut first = true;
        let mut stopping = durable.settings.stopping.clone();
        loop {
            let mut hand_back = *stopping.borrow();
            if !first && !hand_back {
                let persisted = durable.persisted_events();
                tokio::select! {
                    _ = stopping.changed() => hand_back = true,
                    () = shared.inbox.receive(&mut batch) => {}
                    () = durable.signal.notified() => durable.inbox_due = true,
                    () = tokio::time::sleep(durable.settings.inbox_poll) => durable.inbox_due = true,
                    () = shared.stream.grown_beyond(persisted) => {}
                    () = async {
                        match deadline.as_mut() {
                            Some(deadline) => deadline.await,
                            None => std::future::pending().await,
                        }
                    } => {
                        deadline = None;
                        let timeout = timeout.unwrap_or_default();
                        batch.push_back(Msg::Tick(Tick::TimedOut { timeout }));
                    }
                }
            }
            // Journal first: every message becomes an entry of the pending commit.
            let mut messages: Vec<Msg> = Vec::with_capacity(batch.len());
            for message in batch.drain(..) {
                let recorded = match &message {
                    Msg::Tick(tick) => {
                        let step = match tick {
                            Tick::StepDone { invocation, .. } => self.state.step_of(*invocation),
                            _ => None,
                        };
                        durable.record(&spec, &shared.state, tick, step)
                    }
                    Msg::Wait(wait) => durable.record(
                        &spec,
                        &shared.state,
                        &Tick::Wait {
                            waiter: wait.waiter,
                            invocation: wait.invocation,
                            event_type: wait.event_type,
                            requirements: wait.requirements.clone(),
                            prompt: wait.prompt.clone(),
                        },
                        None,
                    ),
                    Msg::Snapshot(_) => Ok(()),
                };
                if let Err(reason) = recorded {
                    self.fail_unrecordable(&mut durable, reason).await;
                    return;
                }
                messages.push(message);
            }
            if durable.inbox_due {
                match durable.read_inbox(&spec, &shared.state).await {
                    Ok(read) => ticks.extend(read),
                    Err(error) => {
                        self.let_go(&mut durable, error).await;
                        return;
                    }
                }
            }
            // Apply: pure, commands wait for the commit.
            if let Some(tick) = start.take() {
                self.apply(tick);
            }
            for message in messages {
                if self.state.is_finished() {
                    break;
                }
                self.handle(message);
            }
            for tick in ticks.drain(..) {
                self.apply(tick);
            }
            if first && recovered {
                self.state.resume(&spec, &mut self.commands);
            }
            first = false;
            self.execute_before_commit();
            let finished = self.state.is_finished();
            // Waiting only for outside events, or for a retry far enough away to be worth a
            // reload: the run goes back to the store and wakes when its timer is due.
            let now = tokio::time::Instant::now();
            let scheduled = self.commands.iter().filter_map(|command| match command {
                Command::ScheduleRetry { delay, .. } => Some(*delay),
                _ => None,
            });
            let wake_after = self
                .timers
                .values()
                .map(|(_, due)| due.saturating_duration_since(now))
                .chain(scheduled)
                .min();
            let idle = !finished
                && self.state.is_idle()
                && wake_after.is_none_or(|after| after >= RELEASE_FOR_TIMERS_AFTER)
                && shared.inbox.is_empty();
            let release = idle || (hand_back && !finished);
            let published = shared.stream.since(durable.persisted_events());
            let prepared = durable
                .take_events(&published)
                .and_then(|()| durable.maybe_snapshot(&spec, &self.state, release));
            if let Err(reason) = prepared {
                self.fail_unrecordable(&mut durable, reason).await;
                return;
            }
            let end = if finished {
                // A run always finishes through `finish`; a journal that ends a run elsewhere
                // must still not leave it held by a live worker that no longer drives it.
                Some(self.end.take().unwrap_or_else(|| {
                    finish_end(
                        RunStatus::Failed,
                        None,
                        Some("the run had finished before it was rebuilt".into()),
                    )
                }))
            } else if release {
                Some(CommitEnd::Release { idle, wake_after })
            } else {
                None
            };
            if let Err(Abandon(error)) = durable.commit(end).await {
                self.let_go(&mut durable, error).await;
                return;
            }
            if finished {
                return;
            }
            if release {
                tracing::debug!("run released while it waits for events");
                self.abandon();
                return;
            }
            self.execute();
        }
    }

    /// Stops driving the run after the store refused it. Fenced (another worker owns it) or
    /// purged: nothing to do. Otherwise the lease may still be ours, and a run held by a live
    /// worker that no longer drives it would never be claimed again: hand it back.
    async fn let_go(&mut self, durable: &mut DurableRun, error: StoreError) {
        self.abandon();
        match error {
            StoreError::Fenced { .. } | StoreError::UnknownRun { .. } => {
                tracing::info!(%error, "the run is no longer ours");
            }
            error => {
                tracing::error!(%error, "the store refused the run; handing it back");
                durable.pending = Default::default();
                let release = CommitEnd::Release {
                    idle: false,
                    wake_after: None,
                };
                let _ = durable.commit(Some(release)).await;
            }
        }
    }

    /// A tick or event that cannot be serialized cannot be journaled: the run fails, naming it.
    async fn fail_unrecordable(&mut self, durable: &mut DurableRun, reason: String) {
        tracing::error!(%reason, "the run cannot be journaled; it fails");
        self.abandon();
        durable.pending = Default::default();
        let end = finish_end(
            RunStatus::Failed,
            None,
            Some(format!("the run cannot be journaled: {reason}")),
        );
        let _ = durable.commit(Some(end)).await;
    }

    /// Stops everything this process runs for the run, without finishing it: the run goes on
    /// from the store, here or elsewhere.
    fn abandon(&mut self) {
        self.stop_tasks();
        if let Some(sender) = self.result.take() {
            let _ = sender.send(Err(WorkflowError::RunLost));
        }
    }

    /// Publishes and finishes now, so that the commit holds the events and the run's end;
    /// leaves the other commands for after the commit.
    fn execute_before_commit(&mut self) {
        let mut commands = std::mem::take(&mut self.commands);
        let mut later = Vec::with_capacity(commands.len());
        for command in commands.drain(..) {
            match command {
                Command::Publish(event) => {
                    self.shared.stream.push(event);
                }
                Command::Finish(outcome) => self.finish(outcome),
                other => later.push(other),
            }
        }
        self.commands = later;
    }

    async fn run(mut self, initial: Initial) {
        tracing::debug!("run started");
        match initial {
            Initial::Tick(tick) => self.apply(tick),
            Initial::Resume => {
                self.state.resume(&self.spec, &mut self.commands);
                self.execute();
            }
            Initial::Fail(error) => {
                self.shared.stream.close_with(AnyEvent::new(RunFailedEvent {
                    step: None,
                    error: error.to_string(),
                }));
                self.report(Err(error));
                return;
            }
        }
        let shared = self.shared.clone();
        let timeout = shared.workflow.timeout;
        // Only runs with a timeout pay for a timer.
        let mut deadline = timeout.map(|timeout| Box::pin(tokio::time::sleep(timeout)));
        let mut batch = VecDeque::new();
        while !self.state.is_finished() {
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
                if self.state.is_finished() {
                    break;
                }
                self.handle(message);
                // A long batch (a fan-out of a million events) must not hog the worker thread.
                tokio::task::consume_budget().await;
            }
            batch.clear();
        }
    }

    fn handle(&mut self, message: Msg) {
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
                self.apply(tick);
            }
            Msg::Wait(wait) => {
                let WaitRequest {
                    waiter,
                    invocation,
                    event_type,
                    requirements,
                    prompt,
                    reply,
                } = *wait;
                // A wait from an invocation that already ended is dropped with its reply.
                if self.tasks.contains_key(&invocation) {
                    self.waiters.insert(waiter, (invocation, reply));
                    self.apply(Tick::Wait {
                        waiter,
                        invocation,
                        event_type,
                        requirements,
                        prompt,
                    });
                }
            }
            Msg::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
        }
    }

    /// Applies a tick and carries out its commands, and the ticks those give, until quiet. A
    /// durable run only applies: its commands wait for the commit.
    fn apply(&mut self, tick: Tick) {
        if self.deferred {
            self.state.apply(&self.spec, tick, &mut self.commands);
            return;
        }
        self.follow_ups.push_back(tick);
        while let Some(tick) = self.follow_ups.pop_front() {
            self.state.apply(&self.spec, tick, &mut self.commands);
            self.execute();
        }
    }

    fn execute(&mut self) {
        let mut commands = std::mem::take(&mut self.commands);
        for command in commands.drain(..) {
            match command {
                Command::StartStep {
                    invocation,
                    step,
                    event,
                    attempt,
                    key,
                } => self.start_step(invocation, step, event, attempt, key),
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
                    // The waiter gave up just now: the event goes back to be routed again.
                    if let Some(event) = undelivered {
                        let tick = Tick::Emit {
                            event,
                            target: None,
                            from: None,
                        };
                        if self.deferred {
                            // Through the mailbox, so that it is journaled like any tick.
                            let _ = self.shared.inbox.send(Msg::Tick(tick));
                        } else {
                            self.follow_ups.push_back(tick);
                        }
                    }
                }
                Command::Publish(event) => {
                    self.shared.stream.push(event);
                }
                Command::Finish(outcome) => self.finish(outcome),
            }
        }
        self.commands = commands;
    }

    fn start_step(
        &mut self,
        invocation: InvocationId,
        step_index: usize,
        event: AnyEvent,
        attempt: u32,
        key: u64,
    ) {
        let step = &self.spec.steps[step_index];
        let span = tracing::info_span!(
            "step",
            step = %step.name,
            event = %event.name(),
            attempt,
        );
        let verbose = self.shared.workflow.verbose;
        if verbose {
            println!(
                "[{}] step `{}` started on {} (attempt {attempt})",
                short_id(&self.shared.run_id),
                step.name,
                event.name()
            );
        }
        let ctx = Context {
            run: self.shared.clone(),
            step: step_index,
            invocation,
            attempt,
            key,
        };
        let body = step.body.clone();
        let timeout = step.timeout;
        let run = self.shared.clone();
        let task = tokio::spawn(
            async move {
                let started = Instant::now();
                // The body is called inside the guarded future, so a panic while building the
                // step's future is caught like one while polling it.
                let guarded =
                    AssertUnwindSafe(async move { body(ctx, event).await }).catch_unwind();
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
                let name = &step.name;
                let run_id = &run.run_id;
                let elapsed = started.elapsed();
                match &outcome {
                    Ok(events) => {
                        tracing::debug!(?elapsed, emitted = events.len(), "step finished");
                        if verbose {
                            let names: Vec<&str> = events.iter().map(AnyEvent::name).collect();
                            println!(
                                "[{}] step `{name}` finished in {elapsed:.1?} -> {}",
                                short_id(run_id),
                                if names.is_empty() {
                                    "nothing".to_owned()
                                } else {
                                    names.join(", ")
                                }
                            );
                        }
                    }
                    Err(error) => {
                        tracing::warn!(?elapsed, %error, "step failed");
                        if verbose {
                            println!(
                                "[{}] step `{name}` failed on attempt {attempt}: {error}",
                                short_id(run_id)
                            );
                        }
                    }
                }
                let retryable = match &outcome {
                    Ok(_) => false,
                    Err(error) => step.retry.allows(error),
                };
                let _ = run.inbox.send(Msg::Tick(Tick::StepDone {
                    invocation,
                    outcome,
                    retryable,
                    elapsed,
                }));
            }
            .instrument(span),
        );
        self.tasks.insert(invocation, task.abort_handle());
    }

    /// Aborts the run's step tasks and timers, drops its waiters, cancels its child runs.
    fn stop_tasks(&mut self) {
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
        let path = self.state.path(&self.spec);
        let (terminal, result) = match outcome {
            Outcome::Stopped(event) => (
                event.clone(),
                Ok(RunOutput {
                    run_id: self.shared.run_id.clone(),
                    event,
                    path,
                }),
            ),
            Outcome::Failed {
                step,
                attempts,
                error,
            } => (
                AnyEvent::new(RunFailedEvent {
                    step: Some(step.clone()),
                    error: error.to_string(),
                }),
                Err(WorkflowError::StepFailed {
                    step,
                    attempts,
                    source: error,
                }),
            ),
            Outcome::TimedOut {
                timeout,
                active_steps,
            } => (
                AnyEvent::new(RunTimedOutEvent {
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    active_steps: active_steps.clone(),
                }),
                Err(WorkflowError::Timeout {
                    timeout,
                    active_steps,
                }),
            ),
            Outcome::Cancelled => (
                AnyEvent::new(RunCancelledEvent {}),
                Err(WorkflowError::Cancelled),
            ),
            Outcome::Stalled { mut reason } => {
                let step_names: Vec<String> =
                    self.spec.steps.iter().map(|s| s.name.clone()).collect();
                for waiting in self.shared.state.describe_waiting_collects(&step_names) {
                    reason.push_str("; ");
                    reason.push_str(&waiting);
                }
                (
                    AnyEvent::new(RunFailedEvent {
                        step: None,
                        error: format!("run stalled: {reason}"),
                    }),
                    Err(WorkflowError::Stalled { reason }),
                )
            }
        };
        if self.deferred {
            self.end = Some(match &result {
                Ok(output) => finish_end(RunStatus::Completed, Some(&output.event), None),
                Err(WorkflowError::Cancelled) => {
                    finish_end(RunStatus::Cancelled, None, Some("cancelled".into()))
                }
                Err(error) => finish_end(RunStatus::Failed, None, Some(error.to_string())),
            });
        }
        self.shared.stream.close_with(terminal);
        self.report(result);
    }

    fn report(&mut self, result: Result<RunOutput, WorkflowError>) {
        match &result {
            Ok(output) => {
                tracing::info!(result = ?output.event, "run finished");
                if self.shared.workflow.verbose {
                    println!(
                        "[{}] run finished: {:?}",
                        short_id(&self.shared.run_id),
                        output.event
                    );
                }
            }
            Err(error) => {
                tracing::warn!(%error, "run failed");
                if self.shared.workflow.verbose {
                    println!("[{}] run failed: {error}", short_id(&self.shared.run_id));
                }
            }
        }
        if let Some(sender) = self.result.take() {
            let _ = sender.send(result);
        }
    }

    fn snapshot(&self) -> Result<RunSnapshot, WorkflowError> {
        if self.state.is_finished() {
            return Err(WorkflowError::InvalidSnapshot(
                "the run has finished".into(),
            ));
        }
        let invalid = |e: serde_json::Error| WorkflowError::InvalidSnapshot(e.to_string());
        let reducer = self.state.snapshot(&self.spec).map_err(invalid)?;
        let step_names: Vec<String> = self.spec.steps.iter().map(|s| s.name.clone()).collect();
        let state = self.shared.state.snapshot(&step_names).map_err(invalid)?;
        Ok(RunSnapshot::new(
            &self.shared.workflow,
            &self.shared.run_id,
            self.shared
                .stream
                .history()
                .iter()
                .map(EventJson::encode)
                .collect::<Result<_, _>>()
                .map_err(invalid)?,
            reducer,
            state,
        ))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // However the driver ends (finished, or its runtime shutting down), later sends fail.
        self.shared.inbox.close();
    }
}

fn short_id(run_id: &str) -> &str {
    run_id.get(..8).unwrap_or(run_id)
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
