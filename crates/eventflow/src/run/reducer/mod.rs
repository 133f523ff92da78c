//! The run loop as a pure reducer: `(RunState, Tick) -> (RunState, Vec<Command>)`.
//!
//! Ticks are the only inputs (a step finished, an event arrived, a timer fired, cancel) and
//! commands the only outputs (start a step, deliver an event to a waiter, publish, finish). The
//! reducer never awaits, never reads a clock and draws randomness only from its own seeded
//! generator, so the same ticks always give the same commands: the tokio driver executes them,
//! tests simulate them, and a durable driver can journal and replay them.
//!
//! State is updated in place; no tick copies the run's state, so a fan-out of N events costs
//! O(N) overall.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::context::{PastAttempts, Wait, epoch_millis};
use crate::event::{
    AnyEvent, EventRole, StepFailedEvent, StepState, StepStateChanged, UnhandledEvent,
    WorkflowIdleEvent,
};
use crate::step::{FailedAttempt, StepError};
use crate::workflow::WorkflowSpec;

mod path;
mod retry;
mod snapshot;

use path::PathCounts;
pub(crate) use retry::{AttemptTimes, RetryDecision, StepFailure};
pub(crate) use snapshot::ReducerSnapshot;

/// Identifies one invocation (one attempt) of a step within a run.
pub(crate) type InvocationId = u64;

/// An input of the reducer.
pub(crate) enum Tick {
    /// The run starts with its start event.
    Start(AnyEvent),
    /// An event sent by a step (`from` its invocation) or from outside (`from: None`),
    /// broadcast or to one step.
    Emit {
        event: AnyEvent,
        target: Option<usize>,
        from: Option<InvocationId>,
    },
    /// A step invocation ended.
    StepDone {
        invocation: InvocationId,
        /// The events it emitted, or its failure with the retry decision and the times its
        /// task made (see `retry.rs`), so that a replay decides the same.
        outcome: Result<Vec<AnyEvent>, Box<StepFailure>>,
        /// How long the invocation ran (for metrics and the failure event; it decides nothing,
        /// and a replayed journal gives zero).
        elapsed: Duration,
    },
    /// A step invocation began waiting for an event; `prompt` is published if it must wait.
    Wait {
        wait: Wait,
        prompt: Option<AnyEvent>,
    },
    /// A waiter gave up (timed out).
    WaitEnded { waiter: u64 },
    /// A retry's backoff elapsed.
    RetryDue { timer: u64 },
    /// The run's timeout expired.
    TimedOut { timeout: Duration },
    /// The run was cancelled.
    Cancel,
}

/// An output of the reducer, for the driver to carry out.
pub(crate) enum Command {
    /// Run step `step` on `event`.
    StartStep {
        invocation: InvocationId,
        step: usize,
        event: AnyEvent,
        attempt: u32,
        /// Stable across retries and recoveries of the same queued event.
        key: u64,
        /// The attempts before this one, for `Context::retry_info`.
        past: Option<Arc<PastAttempts>>,
    },
    /// Feed `Tick::RetryDue { timer }` back after `delay`.
    ScheduleRetry { timer: u64, delay: Duration },
    /// Hand `event` to a waiting step.
    Deliver { waiter: u64, event: AnyEvent },
    /// Publish `event` on the run's stream.
    Publish(AnyEvent),
    /// The run is over: stop everything still running and report the outcome.
    Finish(Outcome),
}

/// How a run ended.
pub(crate) enum Outcome {
    Stopped(AnyEvent),
    Failed {
        step: String,
        attempts: u32,
        error: StepError,
        /// How long the last attempt ran.
        elapsed: Duration,
    },
    TimedOut {
        timeout: Duration,
        active_steps: Vec<String>,
    },
    Cancelled,
    Stalled {
        reason: String,
    },
}

struct Pending {
    event: AnyEvent,
    attempt: u32,
    key: u64,
    /// The attempts before this one (a retry's), when known.
    past: Option<Arc<PastAttempts>>,
    /// How many error handlers recovered failures along the chain of events that led here.
    recoveries: u32,
}

struct InFlight {
    step: usize,
    /// Kept so a failed attempt can be retried and a recovery can re-queue it.
    event: AnyEvent,
    attempt: u32,
    key: u64,
    past: Option<Arc<PastAttempts>>,
    recoveries: u32,
    /// Events handed to this invocation's waits: a recovery runs it again from its top, so they
    /// go back to be received again.
    received: Vec<AnyEvent>,
}

/// Where a routed event comes from: the step that emitted it, and the recoveries along its
/// chain (which the events it leads to inherit).
#[derive(Clone, Copy)]
struct Origin {
    step: usize,
    recoveries: u32,
}

/// The scheduling state of one run.
pub(crate) struct RunState {
    finished: bool,
    queues: Vec<VecDeque<Pending>>,
    running: Vec<usize>,
    in_flight: HashMap<InvocationId, InFlight>,
    retrying: BTreeMap<u64, (usize, Pending)>,
    waiters: Vec<Wait>,
    /// Events from outside that no step or waiter took yet; a later waiter may.
    unclaimed: VecDeque<AnyEvent>,
    next_id: u64,
    rng: fastrand::Rng,
    path: PathCounts,
    /// Whether to publish internal events (`StepStateChanged`, ...): an input the driver sets,
    /// so a run nobody watches builds none of them. Not part of a snapshot.
    internal: bool,
    /// Whether the run was idle after the last tick, so `WorkflowIdleEvent` is published once
    /// each time it becomes idle.
    was_idle: bool,
}

impl RunState {
    pub(crate) fn new(spec: &WorkflowSpec, seed: u64) -> Self {
        let steps = spec.steps.len();
        let events = spec.events.len();
        RunState {
            finished: false,
            queues: (0..steps).map(|_| VecDeque::new()).collect(),
            running: vec![0; steps],
            in_flight: HashMap::new(),
            retrying: BTreeMap::new(),
            waiters: Vec::new(),
            unclaimed: VecDeque::new(),
            next_id: 1,
            rng: fastrand::Rng::with_seed(seed),
            path: PathCounts {
                events,
                emitted: vec![0; steps * events],
                delivered: vec![0; steps * events],
            },
            internal: false,
            was_idle: false,
        }
    }

    /// Whether ticks from now on publish internal events.
    pub(crate) fn publish_internal(&mut self, on: bool) {
        self.internal = on;
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The step and attempt of an in-flight invocation.
    pub(crate) fn step_of(&self, invocation: InvocationId) -> Option<(usize, u32)> {
        self.in_flight.get(&invocation).map(|f| (f.step, f.attempt))
    }

    /// The number of step invocations running now.
    #[cfg(test)]
    pub(crate) fn running(&self, step: usize) -> usize {
        self.running[step]
    }

    /// Applies one tick, appending the commands it gives to `out`.
    pub(crate) fn apply(&mut self, spec: &WorkflowSpec, tick: Tick, out: &mut Vec<Command>) {
        if self.finished {
            return;
        }
        match tick {
            Tick::Start(event) => self.route(spec, event, None, None, out),
            Tick::Emit {
                event,
                target,
                from,
            } => {
                let origin = from.and_then(|id| self.in_flight.get(&id)).map(|f| Origin {
                    step: f.step,
                    recoveries: f.recoveries,
                });
                self.route(spec, event, target, origin, out);
            }
            Tick::StepDone {
                invocation,
                outcome,
                elapsed,
            } => self.step_done(spec, invocation, outcome, elapsed, out),
            Tick::Wait { wait, prompt } => {
                if !self.in_flight.contains_key(&wait.invocation) {
                    return;
                }
                match self.unclaimed.iter().position(|event| wait.accepts(event)) {
                    Some(index) => {
                        let event = self.unclaimed.remove(index).expect("index is in range");
                        self.deliver(wait.waiter, wait.invocation, event, out);
                    }
                    None => {
                        // Parked: like the reference's step, which ends and is run again with
                        // the event, it is not running until the event comes.
                        self.publish_waiting(spec, wait.invocation, StepState::NotRunning, out);
                        self.waiters.push(wait);
                        if let Some(prompt) = prompt {
                            out.push(Command::Publish(prompt));
                        }
                    }
                }
            }
            Tick::WaitEnded { waiter } => {
                if let Some(position) = self.waiters.iter().position(|w| w.waiter == waiter) {
                    let wait = self.waiters.remove(position);
                    self.publish_waiting(spec, wait.invocation, StepState::Running, out);
                }
            }
            Tick::RetryDue { timer } => {
                if let Some((step, pending)) = self.retrying.remove(&timer) {
                    self.queues[step].push_front(pending);
                    self.schedule(spec, step, out);
                }
            }
            Tick::TimedOut { timeout } => {
                let mut active_steps: Vec<String> = self
                    .in_flight
                    .values()
                    .map(|f| f.step)
                    .chain(self.retrying.values().map(|(step, _)| *step))
                    .map(|step| spec.steps[step].name.clone())
                    .collect();
                active_steps.sort();
                active_steps.dedup();
                self.finish(
                    Outcome::TimedOut {
                        timeout,
                        active_steps,
                    },
                    out,
                );
            }
            Tick::Cancel => self.finish(Outcome::Cancelled, out),
        }
        self.check_stalled(spec, out);
        if self.internal {
            let idle = self.waits_for_outside();
            if idle && !self.was_idle {
                out.push(Command::Publish(AnyEvent::new(WorkflowIdleEvent {})));
            }
            self.was_idle = idle;
        }
    }

    /// Queues an event for every step that accepts it (or the one targeted), unless a waiter
    /// takes it first; a stop event ends the run.
    fn route(
        &mut self,
        spec: &WorkflowSpec,
        event: AnyEvent,
        target: Option<usize>,
        origin: Option<Origin>,
        out: &mut Vec<Command>,
    ) {
        if self.finished {
            return;
        }
        let event_index = spec.event_index(event.type_id());
        if let (Some(origin), Some(index)) = (origin, event_index) {
            self.path.emitted[origin.step * self.path.events + index] += 1;
        }
        let recoveries = origin.map_or(0, |origin| origin.recoveries);
        if event.role() == EventRole::Stop {
            self.finish(Outcome::Stopped(event), out);
            return;
        }
        if target.is_none()
            && let Some(position) = self.waiters.iter().position(|w| w.accepts(&event))
        {
            let wait = self.waiters.remove(position);
            self.publish_waiting(spec, wait.invocation, StepState::Running, out);
            self.deliver(wait.waiter, wait.invocation, event, out);
            return;
        }
        let outbound = event.role() == EventRole::Outbound;
        if outbound {
            out.push(Command::Publish(event.clone()));
        }
        let consumers = match &target {
            Some(step) => std::slice::from_ref(step),
            None => match event_index {
                Some(index) => spec.consumers[index].as_slice(),
                None => &[],
            },
        };
        if consumers.is_empty() {
            if !outbound {
                if self.internal {
                    let unhandled = UnhandledEvent {
                        event_type: event.name().to_owned(),
                        qualified_name: event.name().to_owned(),
                        step_name: None,
                        idle: self.waits_for_outside(),
                    };
                    out.push(Command::Publish(AnyEvent::new(unhandled)));
                }
                self.unclaimed.push_back(event);
            }
            return;
        }
        let (last, rest) = consumers.split_last().expect("not empty");
        for &step in rest {
            self.enqueue(spec, step, event.clone(), event_index, recoveries, out);
        }
        self.enqueue(spec, *last, event, event_index, recoveries, out);
    }

    fn deliver(
        &mut self,
        waiter: u64,
        invocation: InvocationId,
        event: AnyEvent,
        out: &mut Vec<Command>,
    ) {
        if let Some(in_flight) = self.in_flight.get_mut(&invocation) {
            in_flight.received.push(event.clone());
        }
        out.push(Command::Deliver { waiter, event });
    }

    fn enqueue(
        &mut self,
        spec: &WorkflowSpec,
        step: usize,
        event: AnyEvent,
        event_index: Option<usize>,
        recoveries: u32,
        out: &mut Vec<Command>,
    ) {
        if let Some(index) = event_index {
            self.path.delivered[step * self.path.events + index] += 1;
        }
        let key = self.next_id();
        let input = self.internal.then(|| event.name().to_owned());
        self.queues[step].push_back(Pending {
            event,
            attempt: 1,
            key,
            past: None,
            recoveries,
        });
        self.schedule(spec, step, out);
        if let Some(input) = input
            && !self.queues[step].is_empty()
        {
            let queued = StepState::Preparing;
            self.publish_step_state(spec, step, queued, None, &input, None, out);
        }
    }

    /// Publishes that an invocation parked in `wait_for_event` stopped (`NotRunning`) or went on
    /// (`Running`), when the run publishes internal events.
    fn publish_waiting(
        &self,
        spec: &WorkflowSpec,
        invocation: InvocationId,
        state: StepState,
        out: &mut Vec<Command>,
    ) {
        if let (true, Some(f)) = (self.internal, self.in_flight.get(&invocation)) {
            let input = f.event.name();
            self.publish_step_state(spec, f.step, state, Some(invocation), input, None, out);
        }
    }

    /// Publishes a `StepStateChanged` (when the run publishes internal events).
    #[allow(clippy::too_many_arguments)]
    fn publish_step_state(
        &self,
        spec: &WorkflowSpec,
        step: usize,
        state: StepState,
        invocation: Option<InvocationId>,
        input: &str,
        output: Option<String>,
        out: &mut Vec<Command>,
    ) {
        let changed = StepStateChanged {
            name: spec.steps[step].name.clone(),
            step_state: state,
            worker_id: invocation.map(|id| id.to_string()).unwrap_or_default(),
            input_event_name: input.to_owned(),
            output_event_name: output,
        };
        out.push(Command::Publish(AnyEvent::new(changed)));
    }

    /// Starts queued invocations of `step` while it has free workers.
    fn schedule(&mut self, spec: &WorkflowSpec, step: usize, out: &mut Vec<Command>) {
        let workers = spec.steps[step].num_workers;
        while self.running[step] < workers {
            let Some(pending) = self.queues[step].pop_front() else {
                break;
            };
            let invocation = self.next_id();
            self.running[step] += 1;
            if self.internal {
                let input = pending.event.name();
                let running = StepState::Running;
                self.publish_step_state(spec, step, running, Some(invocation), input, None, out);
            }
            self.in_flight.insert(
                invocation,
                InFlight {
                    step,
                    event: pending.event.clone(),
                    attempt: pending.attempt,
                    key: pending.key,
                    past: pending.past.clone(),
                    recoveries: pending.recoveries,
                    received: Vec::new(),
                },
            );
            out.push(Command::StartStep {
                invocation,
                step,
                event: pending.event,
                attempt: pending.attempt,
                key: pending.key,
                past: pending.past,
            });
        }
    }

    fn step_done(
        &mut self,
        spec: &WorkflowSpec,
        invocation: InvocationId,
        outcome: Result<Vec<AnyEvent>, Box<StepFailure>>,
        elapsed: Duration,
        out: &mut Vec<Command>,
    ) {
        let Some(done) = self.in_flight.remove(&invocation) else {
            return;
        };
        self.running[done.step] -= 1;
        if !self.waiters.is_empty() {
            self.waiters.retain(|w| w.invocation != invocation);
        }
        if self.internal {
            let output = match &outcome {
                Ok(events) if !events.is_empty() => Some(
                    events
                        .iter()
                        .map(AnyEvent::name)
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                _ => None,
            };
            let (step, input) = (done.step, done.event.name());
            let ended = StepState::NotRunning;
            self.publish_step_state(spec, step, ended, Some(invocation), input, output, out);
        }
        match outcome {
            Ok(events) => {
                let origin = Origin {
                    step: done.step,
                    recoveries: done.recoveries,
                };
                for event in events {
                    self.route(spec, event, None, Some(origin), out);
                    if self.finished {
                        return;
                    }
                }
            }
            Err(failure) => {
                let StepFailure {
                    error,
                    retry,
                    times,
                } = *failure;
                let step = &spec.steps[done.step];
                let delay = match retry {
                    RetryDecision::Stop => None,
                    RetryDecision::After(delay) => Some(delay),
                    RetryDecision::Undecided { retryable } => {
                        let failed = FailedAttempt {
                            attempt: done.attempt,
                            elapsed: Duration::ZERO,
                            error: &error,
                            retryable: Some(retryable),
                        };
                        step.retry.delay_after(&failed, &mut self.rng)
                    }
                };
                let Some(delay) = delay else {
                    if self.hand_to_handler(spec, &done, &error, times.as_ref(), elapsed, out) {
                        self.schedule(spec, done.step, out);
                        return;
                    }
                    let outcome = Outcome::Failed {
                        step: step.name.clone(),
                        attempts: done.attempt,
                        error,
                        elapsed,
                    };
                    self.finish(outcome, out);
                    return;
                };
                let retry = Pending {
                    event: done.event,
                    attempt: done.attempt + 1,
                    key: done.key,
                    past: times.map(|times| times.past(&error)),
                    recoveries: done.recoveries,
                };
                if delay.is_zero() {
                    self.queues[done.step].push_front(retry);
                } else {
                    let timer = self.next_id();
                    self.retrying.insert(timer, (done.step, retry));
                    out.push(Command::ScheduleRetry { timer, delay });
                }
            }
        }
        self.schedule(spec, done.step, out);
    }

    /// Hands a step's last failure to its error handler, if it has one and the chain of events
    /// that led to the failure has recoveries left; false when the run is to fail.
    fn hand_to_handler(
        &mut self,
        spec: &WorkflowSpec,
        failed: &InFlight,
        error: &StepError,
        times: Option<&AttemptTimes>,
        elapsed: Duration,
        out: &mut Vec<Command>,
    ) -> bool {
        let Some(handler) = spec.recovered_by[failed.step] else {
            return false;
        };
        let catches = spec.steps[handler].catches.as_ref();
        if catches.is_none_or(|catches| failed.recoveries >= catches.recoveries()) {
            return false;
        }
        let Ok(input_event) = failed.event.to_event_json() else {
            return false;
        };
        let event = StepFailedEvent {
            step: spec.steps[failed.step].name.clone(),
            input_event,
            error: error.to_string(),
            attempts: failed.attempt,
            elapsed_ms: u64::try_from(times.map_or(elapsed, AttemptTimes::elapsed).as_millis())
                .unwrap_or(u64::MAX),
            failed_at_ms: times.map(|times| epoch_millis(times.failed_at)),
        };
        let event = AnyEvent::new(event);
        let event_index = spec.event_index(event.type_id());
        self.enqueue(
            spec,
            handler,
            event,
            event_index,
            failed.recoveries + 1,
            out,
        );
        true
    }

    /// Fails the run when it can never make progress again.
    fn check_stalled(&mut self, spec: &WorkflowSpec, out: &mut Vec<Command>) {
        if self.finished
            || !self.in_flight.is_empty()
            || !self.retrying.is_empty()
            || spec.accepts_external
            || self.queues.iter().any(|q| !q.is_empty())
        {
            return;
        }
        let mut reason = String::from(
            "no step is running or queued, no retry is pending, and no step accepts events from outside",
        );
        if !self.unclaimed.is_empty() {
            let names: Vec<&str> = self.unclaimed.iter().map(AnyEvent::name).collect();
            reason.push_str(&format!("; events no step took: {}", names.join(", ")));
        }
        self.finish(Outcome::Stalled { reason }, out);
    }

    fn finish(&mut self, outcome: Outcome, out: &mut Vec<Command>) {
        self.finished = true;
        self.queues.iter_mut().for_each(VecDeque::clear);
        self.retrying.clear();
        self.waiters.clear();
        out.push(Command::Finish(outcome));
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Whether the run waits for the outside and nothing else (what `WorkflowIdleEvent` says):
    /// idle, and no retry is pending.
    fn waits_for_outside(&self) -> bool {
        self.retrying.is_empty() && self.is_idle()
    }

    /// Whether the run can only move on when an event arrives from outside or a retry timer
    /// fires: nothing queued, and every running invocation is blocked in `wait_for_event`.
    pub(crate) fn is_idle(&self) -> bool {
        !self.finished
            && self.queues.iter().all(VecDeque::is_empty)
            && self
                .in_flight
                .keys()
                .all(|id| self.waiters.iter().any(|w| w.invocation == *id))
    }
}

#[cfg(test)]
mod simulation;
