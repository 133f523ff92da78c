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
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{AnyEvent, EventJson, EventRole, EventType};
use crate::graph::{NodeId, PathEdge, RunPath};
use crate::step::StepError;
use crate::workflow::WorkflowSpec;

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
        outcome: Result<Vec<AnyEvent>, StepError>,
        /// Whether the step's retry policy accepts this error. Decided where the error is
        /// whole (a journaled error comes back as text), so a replay decides the same.
        retryable: bool,
        /// How long the invocation ran (for metrics; the reducer ignores it).
        elapsed: Duration,
    },
    /// A step invocation began waiting for an event; `prompt` is published if it must wait.
    Wait {
        waiter: u64,
        invocation: InvocationId,
        event_type: EventType,
        requirements: Vec<(String, Value)>,
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
}

struct InFlight {
    step: usize,
    /// Kept so a failed attempt can be retried and a recovery can re-queue it.
    event: AnyEvent,
    attempt: u32,
    key: u64,
    /// Events handed to this invocation's waits: a recovery runs it again from its top, so they
    /// go back to be received again.
    received: Vec<AnyEvent>,
}

struct Waiter {
    id: u64,
    invocation: InvocationId,
    event_type: EventType,
    requirements: Vec<(String, Value)>,
}

impl Waiter {
    fn accepts(&self, event: &AnyEvent) -> bool {
        if event.type_id() != self.event_type.type_id() {
            return false;
        }
        if self.requirements.is_empty() {
            return true;
        }
        let Ok(fields) = event.to_json() else {
            return false;
        };
        self.requirements
            .iter()
            .all(|(key, value)| fields.get(key) == Some(value))
    }
}

/// How often each edge of the graph fired: step -> event emitted, event -> step delivered.
struct PathCounts {
    events: usize,
    emitted: Vec<u64>,
    delivered: Vec<u64>,
}

/// The scheduling state of one run.
pub(crate) struct RunState {
    finished: bool,
    queues: Vec<VecDeque<Pending>>,
    running: Vec<usize>,
    in_flight: HashMap<InvocationId, InFlight>,
    retrying: BTreeMap<u64, (usize, Pending)>,
    waiters: Vec<Waiter>,
    /// Events from outside that no step or waiter took yet; a later waiter may.
    unclaimed: VecDeque<AnyEvent>,
    next_id: u64,
    rng: fastrand::Rng,
    path: PathCounts,
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
        }
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
                let from_step = from.and_then(|id| self.in_flight.get(&id)).map(|f| f.step);
                self.route(spec, event, target, from_step, out);
            }
            Tick::StepDone {
                invocation,
                outcome,
                retryable,
                ..
            } => self.step_done(spec, invocation, outcome, retryable, out),
            Tick::Wait {
                waiter,
                invocation,
                event_type,
                requirements,
                prompt,
            } => {
                if !self.in_flight.contains_key(&invocation) {
                    return;
                }
                let waiter = Waiter {
                    id: waiter,
                    invocation,
                    event_type,
                    requirements,
                };
                match self
                    .unclaimed
                    .iter()
                    .position(|event| waiter.accepts(event))
                {
                    Some(index) => {
                        let event = self.unclaimed.remove(index).expect("index is in range");
                        self.deliver(waiter.id, invocation, event, out);
                    }
                    None => {
                        self.waiters.push(waiter);
                        if let Some(prompt) = prompt {
                            out.push(Command::Publish(prompt));
                        }
                    }
                }
            }
            Tick::WaitEnded { waiter } => self.waiters.retain(|w| w.id != waiter),
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
    }

    /// Queues an event for every step that accepts it (or the one targeted), unless a waiter
    /// takes it first; a stop event ends the run.
    fn route(
        &mut self,
        spec: &WorkflowSpec,
        event: AnyEvent,
        target: Option<usize>,
        from_step: Option<usize>,
        out: &mut Vec<Command>,
    ) {
        if self.finished {
            return;
        }
        let event_index = spec.event_index(event.type_id());
        if let (Some(step), Some(index)) = (from_step, event_index) {
            self.path.emitted[step * self.path.events + index] += 1;
        }
        if event.role() == EventRole::Stop {
            self.finish(Outcome::Stopped(event), out);
            return;
        }
        if target.is_none()
            && let Some(position) = self.waiters.iter().position(|w| w.accepts(&event))
        {
            let waiter = self.waiters.remove(position);
            self.deliver(waiter.id, waiter.invocation, event, out);
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
                self.unclaimed.push_back(event);
            }
            return;
        }
        let (last, rest) = consumers.split_last().expect("not empty");
        for &step in rest {
            self.enqueue(spec, step, event.clone(), event_index, out);
        }
        self.enqueue(spec, *last, event, event_index, out);
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
        out: &mut Vec<Command>,
    ) {
        if let Some(index) = event_index {
            self.path.delivered[step * self.path.events + index] += 1;
        }
        let key = self.next_id();
        self.queues[step].push_back(Pending {
            event,
            attempt: 1,
            key,
        });
        self.schedule(spec, step, out);
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
            self.in_flight.insert(
                invocation,
                InFlight {
                    step,
                    event: pending.event.clone(),
                    attempt: pending.attempt,
                    key: pending.key,
                    received: Vec::new(),
                },
            );
            out.push(Command::StartStep {
                invocation,
                step,
                event: pending.event,
                attempt: pending.attempt,
                key: pending.key,
            });
        }
    }

    fn step_done(
        &mut self,
        spec: &WorkflowSpec,
        invocation: InvocationId,
        outcome: Result<Vec<AnyEvent>, StepError>,
        retryable: bool,
        out: &mut Vec<Command>,
    ) {
        let Some(done) = self.in_flight.remove(&invocation) else {
            return;
        };
        self.running[done.step] -= 1;
        if !self.waiters.is_empty() {
            self.waiters.retain(|w| w.invocation != invocation);
        }
        match outcome {
            Ok(events) => {
                for event in events {
                    self.route(spec, event, None, Some(done.step), out);
                    if self.finished {
                        return;
                    }
                }
            }
            Err(error) => {
                let step = &spec.steps[done.step];
                match step
                    .retry
                    .delay_after(done.attempt, retryable, &mut self.rng)
                {
                    None => {
                        let outcome = Outcome::Failed {
                            step: step.name.clone(),
                            attempts: done.attempt,
                            error,
                        };
                        self.finish(outcome, out);
                        return;
                    }
                    Some(delay) => {
                        let retry = Pending {
                            event: done.event,
                            attempt: done.attempt + 1,
                            key: done.key,
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
            }
        }
        self.schedule(spec, done.step, out);
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

    /// The edges the run has taken so far, with how often each fired.
    pub(crate) fn path(&self, spec: &WorkflowSpec) -> RunPath {
        let mut edges = Vec::new();
        for (step_index, step) in spec.steps.iter().enumerate() {
            for (event_index, event) in spec.events.iter().enumerate() {
                let slot = step_index * self.path.events + event_index;
                let step_node = || NodeId::Step(step.name.clone());
                let event_node = || NodeId::Event(event.name().to_owned());
                if self.path.emitted[slot] > 0 {
                    edges.push(PathEdge {
                        from: step_node(),
                        to: event_node(),
                        count: self.path.emitted[slot],
                    });
                }
                if self.path.delivered[slot] > 0 {
                    edges.push(PathEdge {
                        from: event_node(),
                        to: step_node(),
                        count: self.path.delivered[slot],
                    });
                }
            }
        }
        RunPath { edges }
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

    /// The run's scheduling state as data, exactly: in-flight invocations, waiters and pending
    /// retries keep their ids, so ticks journaled after the snapshot replay onto it.
    pub(crate) fn snapshot(
        &self,
        spec: &WorkflowSpec,
    ) -> Result<ReducerSnapshot, serde_json::Error> {
        let name = |step: usize| spec.steps[step].name.clone();
        let mut in_flight: Vec<(&InvocationId, &InFlight)> = self.in_flight.iter().collect();
        in_flight.sort_by_key(|(id, _)| **id);
        let encode_all = |events: &mut dyn Iterator<Item = &AnyEvent>| {
            events
                .map(AnyEvent::to_event_json)
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(ReducerSnapshot {
            queued: self
                .queues
                .iter()
                .enumerate()
                .flat_map(|(step, queue)| queue.iter().map(move |p| (step, p)))
                .map(|(step, p)| {
                    Ok(EntrySnapshot {
                        step: name(step),
                        event: p.event.to_event_json()?,
                        attempt: p.attempt,
                        key: p.key,
                        id: 0,
                        received: Vec::new(),
                    })
                })
                .collect::<Result<_, serde_json::Error>>()?,
            in_flight: in_flight
                .into_iter()
                .map(|(id, f)| {
                    Ok(EntrySnapshot {
                        step: name(f.step),
                        event: f.event.to_event_json()?,
                        attempt: f.attempt,
                        key: f.key,
                        id: *id,
                        received: encode_all(&mut f.received.iter())?,
                    })
                })
                .collect::<Result<_, serde_json::Error>>()?,
            retrying: self
                .retrying
                .iter()
                .map(|(timer, (step, p))| {
                    Ok(EntrySnapshot {
                        step: name(*step),
                        event: p.event.to_event_json()?,
                        attempt: p.attempt,
                        key: p.key,
                        id: *timer,
                        received: Vec::new(),
                    })
                })
                .collect::<Result<_, serde_json::Error>>()?,
            waiters: self
                .waiters
                .iter()
                .map(|w| WaiterSnapshot {
                    id: w.id,
                    invocation: w.invocation,
                    event: w.event_type.name().to_owned(),
                    requirements: w.requirements.clone(),
                })
                .collect(),
            unclaimed: encode_all(&mut self.unclaimed.iter())?,
            path: self.path(spec),
            next_id: self.next_id,
            rng_seed: self.rng.get_seed(),
        })
    }

    /// Rebuilds the state of a snapshot exactly; [`RunState::recover`] then prepares it to run
    /// in a new process.
    pub(crate) fn restore(spec: &WorkflowSpec, snapshot: ReducerSnapshot) -> Result<Self, String> {
        let mut state = RunState::new(spec, snapshot.rng_seed);
        state.next_id = snapshot.next_id;
        let decode = |json: EventJson| -> Result<AnyEvent, String> {
            let ty = spec
                .event_by_name(&json.name)
                .ok_or_else(|| format!("the workflow has no event type named `{}`", json.name))?;
            ty.decode(json.value)
                .map_err(|e| format!("cannot decode {}: {e}", json.name))
        };
        let step_of = |name: &str| {
            spec.step_index(name)
                .ok_or_else(|| format!("the workflow has no step named `{name}`"))
        };
        for entry in snapshot.queued {
            let step = step_of(&entry.step)?;
            state.queues[step].push_back(Pending {
                event: decode(entry.event)?,
                attempt: entry.attempt,
                key: entry.key,
            });
        }
        for entry in snapshot.in_flight {
            let step = step_of(&entry.step)?;
            state.running[step] += 1;
            let received = entry
                .received
                .into_iter()
                .map(decode)
                .collect::<Result<_, _>>()?;
            state.in_flight.insert(
                entry.id,
                InFlight {
                    step,
                    event: decode(entry.event)?,
                    attempt: entry.attempt,
                    key: entry.key,
                    received,
                },
            );
        }
        for entry in snapshot.retrying {
            let step = step_of(&entry.step)?;
            let pending = Pending {
                event: decode(entry.event)?,
                attempt: entry.attempt,
                key: entry.key,
            };
            state.retrying.insert(entry.id, (step, pending));
        }
        for waiter in snapshot.waiters {
            let event_type = spec.event_by_name(&waiter.event).ok_or_else(|| {
                format!("the workflow has no event type named `{}`", waiter.event)
            })?;
            state.waiters.push(Waiter {
                id: waiter.id,
                invocation: waiter.invocation,
                event_type,
                requirements: waiter.requirements,
            });
        }
        for event in snapshot.unclaimed {
            state.unclaimed.push_back(decode(event)?);
        }
        for edge in snapshot.path.edges {
            let (step, event, emitted) = match (&edge.from, &edge.to) {
                (NodeId::Step(step), NodeId::Event(event)) => (step, event, true),
                (NodeId::Event(event), NodeId::Step(step)) => (step, event, false),
                _ => continue,
            };
            let (Some(step), Some(event)) = (
                spec.step_index(step),
                spec.event_by_name(event)
                    .and_then(|ty| spec.event_index(ty.type_id())),
            ) else {
                continue;
            };
            let slot = step * state.path.events + event;
            let counts = if emitted {
                &mut state.path.emitted
            } else {
                &mut state.path.delivered
            };
            counts[slot] = edge.count;
        }
        Ok(state)
    }

    /// Prepares a restored state to run in a process where none of its invocations is running:
    /// in-flight invocations and pending retries go back to the front of their queues (they run
    /// again, keeping their attempt number and key), events their waits had received become
    /// unclaimed again so the re-run receives them, and waiters are dropped (the re-run waits
    /// anew). [`RunState::resume`] then starts them.
    pub(crate) fn recover(&mut self) {
        let mut in_flight: Vec<(InvocationId, InFlight)> = self.in_flight.drain().collect();
        in_flight.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
        let retrying = std::mem::take(&mut self.retrying);
        for (_, (step, pending)) in retrying.into_iter().rev() {
            self.queues[step].push_front(pending);
        }
        for (_, f) in in_flight {
            for event in f.received.into_iter().rev() {
                self.unclaimed.push_front(event);
            }
            self.queues[f.step].push_front(Pending {
                event: f.event,
                attempt: f.attempt,
                key: f.key,
            });
        }
        self.running.iter_mut().for_each(|r| *r = 0);
        self.waiters.clear();
    }

    /// Starts every restored invocation the workers allow.
    pub(crate) fn resume(&mut self, spec: &WorkflowSpec, out: &mut Vec<Command>) {
        for step in 0..spec.steps.len() {
            self.schedule(spec, step, out);
        }
        self.check_stalled(spec, out);
    }
}

/// The reducer's part of a run snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReducerSnapshot {
    queued: Vec<EntrySnapshot>,
    in_flight: Vec<EntrySnapshot>,
    retrying: Vec<EntrySnapshot>,
    waiters: Vec<WaiterSnapshot>,
    unclaimed: Vec<EventJson>,
    path: RunPath,
    next_id: u64,
    rng_seed: u64,
}

/// A queued, in-flight (`id`: the invocation) or retry-pending (`id`: the timer) step input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct EntrySnapshot {
    step: String,
    event: EventJson,
    attempt: u32,
    key: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    id: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    received: Vec<EventJson>,
}

fn is_zero(id: &u64) -> bool {
    *id == 0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct WaiterSnapshot {
    id: u64,
    invocation: InvocationId,
    event: String,
    requirements: Vec<(String, Value)>,
}

#[cfg(test)]
mod simulation {
    //! Deterministic simulation of the reducer: step completions, failures and timers happen in
    //! random orders chosen by a seeded generator, with no tokio and no clock.

    use std::collections::BTreeSet;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::prelude::*;
    use crate::workflow::Workflow;

    #[derive(Event, Clone, Debug, Serialize, Deserialize)]
    struct Work {
        id: u64,
    }

    #[derive(Event, Clone, Debug, Serialize, Deserialize)]
    struct Done {
        id: u64,
        value: u64,
    }

    /// A fan-out/fan-in workflow. The closures are never called: the simulation computes what
    /// each step emits.
    fn fan_out(workers: usize) -> Workflow {
        Workflow::builder("sim")
            .add_step("start", |_: StartEvent| async { Vec::<Work>::new() })
            .step(
                Step::new("work", |w: Work| async move { Done { id: w.id, value: 0 } })
                    .num_workers(workers)
                    .retry(RetryPolicy::fixed(Duration::from_millis(5)).max_attempts(3)),
            )
            .step(Step::new("collect", |_: Done| async { None::<StopEvent> }).num_workers(2))
            .build()
            .unwrap()
    }

    struct Report {
        result: u64,
        collected: Vec<u64>,
        peak_work: usize,
        commands: usize,
    }

    /// Runs the fan-out of `items` events to completion in an order drawn from `seed`; with
    /// `flaky`, work attempts fail at random (and are retried).
    fn simulate(seed: u64, items: u64, workers: usize, flaky: bool) -> Report {
        let workflow = fan_out(workers);
        let spec = &*workflow.spec;
        let work_step = spec.step_index("work").unwrap();
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut state = RunState::new(spec, seed);
        let mut out = Vec::new();
        state.apply(
            spec,
            Tick::Start(AnyEvent::new(StartEvent::new())),
            &mut out,
        );

        let mut running: Vec<(InvocationId, usize, AnyEvent, u32)> = Vec::new();
        let mut timers: Vec<u64> = Vec::new();
        let mut collected: Vec<u64> = Vec::new();
        let mut peak_work = 0;
        let mut commands = 0;
        let mut result = None;
        loop {
            for command in out.drain(..) {
                commands += 1;
                match command {
                    Command::StartStep {
                        invocation,
                        step,
                        event,
                        attempt,
                        ..
                    } => running.push((invocation, step, event, attempt)),
                    Command::ScheduleRetry { timer, .. } => timers.push(timer),
                    Command::Finish(Outcome::Stopped(stop)) => {
                        result = Some(
                            stop.downcast_ref::<StopEvent>()
                                .unwrap()
                                .result::<u64>()
                                .unwrap(),
                        );
                    }
                    Command::Finish(_) => panic!("the run must stop with a result"),
                    Command::Deliver { .. } | Command::Publish(_) => {
                        unreachable!("no waiters or outbound events")
                    }
                }
            }
            let work_running = running.iter().filter(|r| r.1 == work_step).count();
            assert!(
                work_running <= workers,
                "{work_running} work invocations with {workers} workers"
            );
            assert_eq!(work_running, state.running(work_step));
            peak_work = peak_work.max(work_running);
            if result.is_some() {
                assert!(state.is_finished());
                break;
            }
            let choices = running.len() + timers.len();
            assert!(choices > 0, "the run stalled without finishing");
            let pick = rng.usize(..choices);
            if pick >= running.len() {
                let timer = timers.swap_remove(pick - running.len());
                state.apply(spec, Tick::RetryDue { timer }, &mut out);
                continue;
            }
            let (invocation, step, event, attempt) = running.swap_remove(pick);
            let outcome = match spec.steps[step].name.as_str() {
                "start" => Ok((0..items).map(|id| AnyEvent::new(Work { id })).collect()),
                "work" if flaky && attempt < 3 && rng.bool() => {
                    Err(StepError::Failed("flaky".into()))
                }
                "work" => {
                    let id = event.downcast_ref::<Work>().unwrap().id;
                    Ok(vec![AnyEvent::new(Done { id, value: id * 2 })])
                }
                "collect" => {
                    let done = event.downcast_ref::<Done>().unwrap();
                    collected.push(done.id);
                    let sum: u64 = collected.len() as u64;
                    if sum == items {
                        let total: u64 = collected.iter().map(|id| id * 2).sum();
                        Ok(vec![AnyEvent::new(StopEvent::new(total))])
                    } else {
                        Ok(Vec::new())
                    }
                }
                other => unreachable!("unknown step {other}"),
            };
            state.apply(
                spec,
                Tick::StepDone {
                    invocation,
                    outcome,
                    retryable: true,
                    elapsed: Duration::ZERO,
                },
                &mut out,
            );
        }
        Report {
            result: result.unwrap(),
            collected,
            peak_work,
            commands,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn any_completion_order_delivers_every_event_once(
            seed in any::<u64>(),
            items in 1u64..60,
            workers in 1usize..6,
            flaky in any::<bool>(),
        ) {
            let report = simulate(seed, items, workers, flaky);
            // Same result whatever the order: the sum of 2*id.
            prop_assert_eq!(report.result, items * (items - 1));
            // No event lost, none delivered twice.
            let unique: BTreeSet<u64> = report.collected.iter().copied().collect();
            prop_assert_eq!(unique.len(), report.collected.len());
            prop_assert_eq!(unique, (0..items).collect::<BTreeSet<u64>>());
            // Workers are used eagerly up to the limit, and never beyond it.
            prop_assert_eq!(report.peak_work, workers.min(items as usize));
        }

        #[test]
        fn the_same_seed_gives_the_same_run(seed in any::<u64>(), items in 1u64..30) {
            let a = simulate(seed, items, 3, true);
            let b = simulate(seed, items, 3, true);
            prop_assert_eq!(a.collected, b.collected);
            prop_assert_eq!(a.commands, b.commands);
        }
    }

    /// The reducer updates its state in place, so a fan-out of N events costs O(N): the bytes
    /// allocated per event (the simulation's own bookkeeping included) stay flat from N to 8N.
    /// Counting commands would not see a tick that copies its queues (O(queue) per tick,
    /// O(N^2) per run, the same commands); counting allocated bytes does, whether the copy is
    /// kept or dropped within the tick.
    #[test]
    fn fan_out_cost_is_linear() {
        let bytes_per_event = |items: u64| {
            let mut report = None;
            let allocated =
                allocation_counter::measure(|| report = Some(simulate(1, items, 4, false)));
            assert_eq!(report.map(|r| r.collected.len()), Some(items as usize));
            allocated.bytes_total as f64 / items as f64
        };
        let (small, large) = (bytes_per_event(2_000), bytes_per_event(16_000));
        // In place: the same at both sizes, give or take the doubling of growing buffers.
        // Copying a queue per tick: thousands of bytes per event, growing 8-fold.
        assert!(
            large < small * 1.5,
            "{large:.0} bytes per event at 16,000 events, {small:.0} at 2,000"
        );
    }

    #[test]
    fn ticks_after_the_end_are_ignored() {
        let workflow = fan_out(2);
        let spec = &*workflow.spec;
        let mut state = RunState::new(spec, 1);
        let mut out = Vec::new();
        state.apply(
            spec,
            Tick::Start(AnyEvent::new(StartEvent::new())),
            &mut out,
        );
        state.apply(spec, Tick::Cancel, &mut out);
        assert!(matches!(
            out.last(),
            Some(Command::Finish(Outcome::Cancelled))
        ));
        out.clear();
        state.apply(
            spec,
            Tick::StepDone {
                invocation: 1,
                outcome: Ok(vec![AnyEvent::new(Work { id: 1 })]),
                retryable: true,
                elapsed: Duration::ZERO,
            },
            &mut out,
        );
        assert!(out.is_empty());
    }
}
