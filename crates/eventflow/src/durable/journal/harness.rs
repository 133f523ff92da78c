//! What the journal's property test and golden tests share: a workflow whose runs produce every
//! kind of tick, a simulated world that drives the reducer the way the tokio driver would, and
//! the replay of a journal exactly as the durable runner does it.
//!
//! The world holds two copies of a run. The *direct* copy applies each tick to a `RunState`
//! and each step's state writes to a `ContextState`, as an in-memory run does. The *journal* copy
//! records the same tick with the durable runner's own writer (`DurableRun::record`), turns the
//! entry into a JSON string and back, decodes it with [`Entry::from_json`] and applies that.
//! After every tick both copies must agree on the commands given, the reducer's state and the
//! context state; at the end, `rebuild` (snapshot + replay) must agree with them too.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::Context;
use crate::context::{ContextState, PastAttempts, Wait, epoch_millis, from_epoch_millis};
use crate::durable::journal::Entry;
use crate::durable::rebuild::{rebuild, seed_of};
use crate::durable::recorder::{DurableRun, DurableSettings, RunExit};
use crate::event::{AnyEvent, EventJson, EventType};
use crate::run::reducer::{
    AttemptTimes, Command, InvocationId, Outcome, RetryDecision, RunState, StepFailure,
};
use crate::run::{RunShared, Tick, new_run};
use crate::store::{Lease, LoadedRun, MemoryStore};
use crate::workflow::{Workflow, WorkflowSpec};
use crate::{
    HumanResponseEvent, InputRequiredEvent, RetryPolicy, StartEvent, Step, StepError, StopEvent,
    step::FailedAttempt,
};

/// The id of every simulated run: the reducer's seed, and a restart's, derive from it.
pub(super) const RUN_ID: &str = "journal-fixture-run";

/// An item of work fanned out by `start` (or by `nudged`, from outside).
#[derive(crate::Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "fixture.Work")]
struct Work {
    id: u64,
}

/// What `work` makes of an item; `gather` collects them.
#[derive(crate::Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "fixture.Done")]
struct Done {
    id: u64,
}

/// An event from outside the run, so that external emits (broadcast and targeted) occur.
#[derive(crate::Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "fixture.Nudge", external)]
struct Nudge {
    id: u64,
}

/// The run's typed context state, so that typed writes are journaled.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Tally {
    completions: u64,
}

/// The workflow of every simulated run. The step closures never run: the world decides what
/// each invocation returns.
///
/// Do not change it: the golden fixtures were written with it, and their replay (retry delays
/// drawn from the policies below included) depends on it. The fixtures record its fingerprint.
pub(super) fn workflow() -> Workflow {
    Workflow::builder("journal-fixture")
        .add_step("start", |_: StartEvent| async { Vec::<Work>::new() })
        .step(
            Step::new("work", |w: Work| async move { Done { id: w.id } })
                .num_workers(2)
                .retry(
                    RetryPolicy::exponential(Duration::from_millis(10))
                        .max_attempts(3)
                        .jitter(true),
                ),
        )
        .step(
            Step::new("gather", |_: Done| async { None::<StopEvent> })
                .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(2)),
        )
        .add_step("nudged", |n: Nudge| async move { Work { id: n.id } })
        .build()
        .expect("the fixture workflow is valid")
}

/// One command as text: what tests compare and fixtures record (commands are not `Debug`).
pub(super) fn describe(spec: &WorkflowSpec, command: &Command) -> String {
    let json = |event: &AnyEvent| {
        let json = event.to_event_json().expect("fixture events serialize");
        format!("{} {}", json.name, json.value)
    };
    match command {
        Command::StartStep {
            invocation,
            step,
            event,
            attempt,
            key,
            past,
        } => {
            // What the attempt is told of the ones before it, when anything (journals written
            // before failure times were recorded give nothing, and read as they always did).
            let past = past.as_deref().map_or_else(String::new, |past| {
                format!(
                    " (first at {} ms, last failed at {} ms: {})",
                    epoch_millis(past.first_attempt_at),
                    epoch_millis(past.last_failed_at),
                    past.last_error
                )
            });
            format!(
                "start {} #{invocation} attempt {attempt} key {key}{past}: {}",
                spec.steps[*step].name,
                json(event)
            )
        }
        Command::ScheduleRetry { timer, delay } => format!("retry timer {timer} after {delay:?}"),
        Command::Deliver { waiter, event } => {
            format!("deliver to waiter {waiter}: {}", json(event))
        }
        Command::Publish(event) => format!("publish {}", json(event)),
        Command::Finish(outcome) => match outcome {
            Outcome::Stopped(event) => format!("finish stopped: {}", json(event)),
            Outcome::Failed {
                step,
                attempts,
                error,
                ..
            } => format!("finish failed: {step} after {attempts} attempts: {error}"),
            Outcome::TimedOut {
                timeout,
                active_steps,
            } => format!("finish timed out after {timeout:?}: {active_steps:?}"),
            Outcome::Cancelled => "finish cancelled".to_owned(),
            Outcome::Stalled { reason } => format!("finish stalled: {reason}"),
        },
    }
}

/// Every command as text, in order.
fn describe_all(spec: &WorkflowSpec, commands: &[Command]) -> Vec<String> {
    commands.iter().map(|c| describe(spec, c)).collect()
}

/// The workflow's step names by index, as the state store's snapshots and writes want them.
/// The reducer's state as JSON: what the tests compare.
pub(super) fn reducer_json(spec: &WorkflowSpec, state: &RunState) -> Value {
    serde_json::to_value(state.snapshot(spec).expect("fixture events serialize")).unwrap()
}

/// The context state as JSON, its collect buffers sorted (they come from a hash map).
pub(super) fn state_json(spec: &WorkflowSpec, store: &ContextState) -> Value {
    let snapshot = store
        .snapshot(spec.step_names())
        .expect("fixture state serializes");
    let mut json = serde_json::to_value(snapshot).unwrap();
    if let Some(Value::Array(buffers)) = json.get_mut("collect") {
        buffers.sort_by_key(Value::to_string);
    }
    json
}

/// A restored copy of a reducer state, prepared as a new process would (`recover`).
pub(super) fn recovered(spec: &WorkflowSpec, state: &RunState) -> RunState {
    let mut copy = RunState::restore(spec, state.snapshot(spec).unwrap()).unwrap();
    copy.recover();
    copy
}

/// Replays one stored journal entry onto `state` and `store` as `rebuild` does (a restart
/// starts a fresh reducer); returns the commands it gave.
pub(super) fn replay_entry(
    spec: &WorkflowSpec,
    state: &mut RunState,
    store: &ContextState,
    seq: u64,
    json: Value,
) -> Result<Vec<Command>, String> {
    let entry = Entry::from_json(json).map_err(|e| e.to_string())?;
    if matches!(entry, Entry::Restart { .. }) {
        *state = RunState::new(spec, seed_of(&format!("{RUN_ID}/{seq}")));
    }
    let (tick, writes) = entry.decode(spec).map_err(|e| e.to_string())?;
    if !writes.is_empty() {
        store
            .apply_writes(writes, |n| spec.step_index(n), |n| spec.event_by_name(n))
            .map_err(|e| e.to_string())?;
    }
    let mut commands = Vec::new();
    state.apply(spec, tick, &mut commands);
    Ok(commands)
}

/// A run's exits, ignored: the simulated run has no engine.
struct NoEngine;

impl RunExit for NoEngine {
    fn exited(&self, _: &Lease) {}
    fn committed(&self, _: &str, _: bool) {}
}

/// The durable runner's journaling state for a simulated run, over a store it never commits to.
pub(super) fn durable_run(spec: &WorkflowSpec) -> DurableRun {
    let (_, stopping) = tokio::sync::watch::channel(false);
    DurableRun::fresh(
        Arc::new(MemoryStore::new()),
        Lease {
            run_id: RUN_ID.to_owned(),
            owner: "journal-tests".to_owned(),
            epoch: 1,
        },
        DurableSettings {
            snapshot_every: u64::MAX,
            inbox_poll: Duration::from_secs(1),
            stopping,
            on_commit: None,
        },
        Arc::new(Notify::new()),
        Arc::new(NoEngine),
        &spec.name,
    )
}

/// What `rebuild` made of a stored run, as JSON: the recovered reducer state, the context
/// state, the published history and the commands resuming it gives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct RebuiltRun {
    /// The reducer's snapshot after `recover`.
    pub(super) reducer: Value,
    /// The context state (collect buffers sorted).
    pub(super) state: Value,
    /// The names of the published events, in order.
    pub(super) history: Vec<String>,
    /// The commands `resume` gives.
    pub(super) resumed: Vec<String>,
}

/// Rebuilds a stored run with the durable runner's `rebuild`.
pub(super) fn rebuild_run(workflow: &Workflow, loaded: LoadedRun) -> Result<RebuiltRun, String> {
    let spec = &*workflow.spec;
    let mut rebuilt = rebuild(workflow, loaded, durable_run(spec)).map_err(|e| e.to_string())?;
    let reducer = reducer_json(spec, &rebuilt.state);
    let mut resumed = Vec::new();
    rebuilt.state.resume(spec, &mut resumed);
    Ok(RebuiltRun {
        reducer,
        state: state_json(spec, &rebuilt.live),
        history: rebuilt
            .history
            .iter()
            .map(|e| e.name().to_owned())
            .collect(),
        resumed: describe_all(spec, &resumed),
    })
}

/// Which ticks the world may choose on its own.
#[derive(Clone, Copy, Debug)]
pub(super) struct Choices {
    /// Whether it may cancel the run or time it out (else only the caller ends it).
    pub(super) may_end: bool,
}

/// A running step invocation of the simulation.
struct Running {
    /// Its id.
    invocation: InvocationId,
    /// Its step's index.
    step: usize,
    /// The event it runs on.
    event: AnyEvent,
    /// Its attempt number.
    attempt: u32,
    /// The attempts before it, as the reducer handed them over.
    past: Option<Arc<PastAttempts>>,
    /// The waiter it is blocked on, if it waits for an event.
    waiting: Option<u64>,
}

/// The simulated run: see the module docs.
pub(super) struct World {
    workflow: Workflow,
    /// Draws every choice, so that a seed replays the same run.
    rng: fastrand::Rng,
    /// The direct copy: ticks applied as they are made.
    direct: RunState,
    /// The context state completed steps left, applied directly.
    direct_state: ContextState,
    /// The direct copy's run, whose live context state steps write through `Context`.
    direct_live: Arc<RunShared>,
    /// The journal copy: ticks recorded by the runner, then decoded from JSON text.
    durable: DurableRun,
    /// The journal copy's run, written exactly as the direct one.
    journal_live: Arc<RunShared>,
    /// The reducer state replayed from the decoded entries.
    replayed: RunState,
    /// The context state replayed from the decoded entries' writes.
    replayed_state: ContextState,
    /// Every stored journal entry, in order (entry `i` has sequence `i + 1`).
    pub(super) journal: Vec<Value>,
    /// The events the run published, as the runner stores them.
    pub(super) events: Vec<EventJson>,
    /// The commands each tick gave, one line each, prefixed by the tick's sequence.
    pub(super) commands: Vec<String>,
    /// A durable snapshot taken by the runner, with the sequence it covers.
    pub(super) snapshot: Option<(u64, Value)>,
    /// The invocations the reducer started and that have not completed.
    running: Vec<Running>,
    /// Retry timers scheduled and not yet fired.
    timers: Vec<u64>,
    /// The next waiter id (as `RunShared::next_waiter` hands them out).
    next_waiter: u64,
    /// The next item id (see [`World::item`]).
    next_item: u64,
    /// Whether the reducer finished the run.
    finished: bool,
}

impl World {
    /// A run of [`workflow`] started (journal entry 1), its choices drawn from `seed`.
    pub(super) fn start(seed: u64) -> Result<World, String> {
        let workflow = workflow();
        let spec = workflow.spec.clone();
        let spec = &*spec;
        let mut world = World {
            rng: fastrand::Rng::with_seed(seed),
            direct: RunState::new(spec, seed_of(RUN_ID)),
            direct_state: ContextState::default(),
            direct_live: live_run(&workflow, ContextState::default()),
            durable: durable_run(spec),
            journal_live: live_run(&workflow, ContextState::default()),
            replayed: RunState::new(spec, seed_of(RUN_ID)),
            replayed_state: ContextState::default(),
            journal: Vec::new(),
            events: Vec::new(),
            commands: Vec::new(),
            snapshot: None,
            running: Vec::new(),
            timers: Vec::new(),
            next_waiter: 1,
            next_item: 1,
            finished: false,
            workflow,
        };
        let tick = Tick::Start(AnyEvent::new(StartEvent::new().with("seed", seed)));
        // As `Engine::start_with` stores it.
        let entry = Entry::encode(spec, &tick, Default::default())
            .and_then(serde_json::to_value)
            .map_err(|e| e.to_string())?;
        world.apply(tick, entry)?;
        Ok(world)
    }

    /// The run's workflow (fresh from [`workflow`]).
    pub(super) fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    /// Whether the run has finished (and a tick would change nothing).
    pub(super) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Applies `tick` to the direct copy and `entry` (the stored form of the same tick) to the
    /// journal copy through a JSON string; fails when the two copies disagree.
    fn apply(&mut self, tick: Tick, entry: Value) -> Result<(), String> {
        let spec = &*self.workflow.spec;
        let seq = self.journal.len() as u64 + 1;
        if let Tick::StepDone { invocation, .. } = &tick {
            let writes = self
                .direct_live
                .state
                .take_writes(*invocation, spec.step_names())
                .map_err(|e| e.to_string())?;
            if !writes.is_empty() {
                self.direct_state
                    .apply_writes(writes, |n| spec.step_index(n), |n| spec.event_by_name(n))
                    .map_err(|e| e.to_string())?;
            }
        }
        let mut commands = Vec::new();
        self.direct.apply(spec, tick, &mut commands);

        let text = serde_json::to_string(&entry).map_err(|e| e.to_string())?;
        self.journal.push(entry);
        let stored: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let replayed = replay_entry(spec, &mut self.replayed, &self.replayed_state, seq, stored)?;

        let (direct, replayed) = (describe_all(spec, &commands), describe_all(spec, &replayed));
        if direct != replayed {
            return Err(format!(
                "entry {seq} {text}: applied directly it gave {direct:#?}, replayed {replayed:#?}"
            ));
        }
        let (a, b) = (
            reducer_json(spec, &self.direct),
            reducer_json(spec, &self.replayed),
        );
        if a != b {
            return Err(format!(
                "entry {seq} {text}: reducer state applied directly {a:#}, replayed {b:#}"
            ));
        }
        let (a, b) = (
            state_json(spec, &self.direct_state),
            state_json(spec, &self.replayed_state),
        );
        if a != b {
            return Err(format!(
                "entry {seq} {text}: context state applied directly {a:#}, replayed {b:#}"
            ));
        }
        self.commands
            .extend(direct.iter().map(|line| format!("{seq}: {line}")));
        self.react(commands)
    }

    /// Carries out the commands of the direct copy's last tick in the simulation.
    fn react(&mut self, commands: Vec<Command>) -> Result<(), String> {
        let publish = |event: &AnyEvent| event.to_event_json().map_err(|e| e.to_string());
        for command in commands {
            match command {
                Command::StartStep {
                    invocation,
                    step,
                    event,
                    attempt,
                    past,
                    ..
                } => self.running.push(Running {
                    invocation,
                    step,
                    event,
                    attempt,
                    past,
                    waiting: None,
                }),
                Command::ScheduleRetry { timer, .. } => self.timers.push(timer),
                Command::Deliver { waiter, .. } => {
                    for running in &mut self.running {
                        if running.waiting == Some(waiter) {
                            running.waiting = None;
                        }
                    }
                }
                Command::Publish(event) => self.events.push(publish(&event)?),
                Command::Finish(outcome) => {
                    self.finished = true;
                    self.running.clear();
                    self.timers.clear();
                    if let Outcome::Stopped(event) = outcome {
                        self.events.push(publish(&event)?);
                    }
                }
            }
        }
        Ok(())
    }

    /// Records `tick` with the durable runner's writer, then applies it to both copies.
    fn record(&mut self, tick: Tick) -> Result<(), String> {
        let spec = &*self.workflow.spec;
        let step_of = match &tick {
            Tick::StepDone { invocation, .. } => self.replayed.step_of(*invocation),
            _ => None,
        };
        self.durable
            .record(spec, &self.journal_live.state, &tick, step_of)
            .map_err(|e| e.to_string())?;
        let (_, entry) = self
            .durable
            .pending
            .journal
            .pop()
            .ok_or("the runner journaled nothing")?;
        self.durable.pending.journal.clear();
        self.apply(tick, entry)
    }

    /// Has the durable runner take a snapshot now, as its driver does every so many entries.
    pub(super) fn take_snapshot(&mut self) -> Result<(), String> {
        let spec = &*self.workflow.spec;
        self.durable
            .maybe_snapshot(spec, &self.direct, true)
            .map_err(|e| e.to_string())?;
        let (_, json) = self
            .durable
            .pending
            .snapshot
            .take()
            .ok_or("the runner took no snapshot")?;
        self.snapshot = Some((self.journal.len() as u64, json));
        Ok(())
    }

    /// The run as the store holds it: everything, or the snapshot and the journal after it.
    pub(super) fn stored(&self, from_snapshot: bool) -> LoadedRun {
        let (snapshot, after) = match (&self.snapshot, from_snapshot) {
            (Some((seq, json)), true) => (Some((*seq, json.clone())), *seq),
            _ => (None, 0),
        };
        LoadedRun {
            snapshot,
            journal: (after + 1..)
                .zip(self.journal[after as usize..].iter().cloned())
                .collect(),
            events: (1..).zip(self.events.iter().cloned()).collect(),
        }
    }

    /// What rebuilding the run must give, from the direct copy.
    pub(super) fn expected_rebuild(&self) -> RebuiltRun {
        let spec = &*self.workflow.spec;
        let mut state = recovered(spec, &self.direct);
        let reducer = reducer_json(spec, &state);
        let mut resumed = Vec::new();
        state.resume(spec, &mut resumed);
        RebuiltRun {
            reducer,
            state: state_json(spec, &self.direct_state),
            history: self.events.iter().map(|event| event.name.clone()).collect(),
            resumed: describe_all(spec, &resumed),
        }
    }

    /// The direct copy's reducer and context state, as JSON.
    pub(super) fn direct_json(&self) -> (Value, Value) {
        let spec = &*self.workflow.spec;
        (
            reducer_json(spec, &self.direct),
            state_json(spec, &self.direct_state),
        )
    }

    /// Cancels the run.
    pub(super) fn cancel(&mut self) -> Result<(), String> {
        self.record(Tick::Cancel)
    }

    /// Times the run out.
    pub(super) fn time_out(&mut self) -> Result<(), String> {
        self.record(Tick::TimedOut {
            timeout: Duration::from_millis(1500),
        })
    }

    /// Starts the finished run again under its id (`Engine::start_with` with
    /// `continue_finished`): a `Restart` entry, a fresh reducer, the context state kept.
    pub(super) fn restart(&mut self) -> Result<(), String> {
        let spec = &*self.workflow.spec;
        let seq = self.journal.len() as u64 + 1;
        let start = AnyEvent::new(StartEvent::new().with("restart", seq));
        let entry = serde_json::to_value(Entry::Restart {
            event: start.to_event_json().map_err(|e| e.to_string())?,
        })
        .map_err(|e| e.to_string())?;
        self.direct = RunState::new(spec, seed_of(&format!("{RUN_ID}/{seq}")));
        // A continued run is rebuilt from the store: its live state is what was committed.
        let names = spec.step_names();
        let restore = |store: &ContextState| {
            ContextState::restore(
                store.snapshot(names).unwrap(),
                |n| spec.step_index(n),
                |n| spec.event_by_name(n),
            )
            .map(|state| live_run(&self.workflow, state))
        };
        self.direct_live = restore(&self.direct_state).map_err(|e| e.to_string())?;
        self.journal_live = restore(&self.replayed_state).map_err(|e| e.to_string())?;
        self.running.clear();
        self.timers.clear();
        self.finished = false;
        self.apply(Tick::Start(start), entry)
    }

    /// Makes one random tick happen, of the kinds a run really produces; false when the run
    /// has finished.
    pub(super) fn step(&mut self, choices: Choices) -> Result<bool, String> {
        if self.finished {
            return Ok(false);
        }
        let spec = self.workflow.spec.clone();
        let free: Vec<usize> = (0..self.running.len())
            .filter(|&i| self.running[i].waiting.is_none())
            .collect();
        let waiting: Vec<usize> = (0..self.running.len())
            .filter(|&i| self.running[i].waiting.is_some())
            .collect();
        let pick = |rng: &mut fastrand::Rng, from: &[usize]| from[rng.usize(..from.len())];
        let tick = match self.rng.u32(0..100) {
            0..45 if !free.is_empty() => {
                let at = pick(&mut self.rng, &free);
                self.complete(at)?
            }
            45..51 if !free.is_empty() => {
                let at = pick(&mut self.rng, &free);
                self.fail(at)
            }
            55..63 if !free.is_empty() => {
                let at = pick(&mut self.rng, &free);
                let waiter = self.next_waiter;
                self.next_waiter += 1;
                self.running[at].waiting = Some(waiter);
                Tick::Wait {
                    wait: Wait {
                        waiter,
                        invocation: self.running[at].invocation,
                        event_type: EventType::of::<HumanResponseEvent>(),
                        requirements: if self.rng.bool() {
                            vec![("ticket".to_owned(), json!(waiter))]
                        } else {
                            Vec::new()
                        },
                    },
                    prompt: self.rng.bool().then(|| {
                        AnyEvent::new(InputRequiredEvent::new("Approve?").with("ticket", waiter))
                    }),
                }
            }
            63..68 if !free.is_empty() => {
                let at = pick(&mut self.rng, &free);
                let from = Some(self.running[at].invocation);
                let id = self.item();
                match self.rng.u8(0..3) {
                    0 => Tick::Emit {
                        event: AnyEvent::new(Work { id }),
                        target: None,
                        from,
                    },
                    1 => Tick::Emit {
                        event: AnyEvent::new(Work { id }),
                        target: spec.step_index("work"),
                        from,
                    },
                    _ => Tick::Emit {
                        event: AnyEvent::new(InputRequiredEvent::new("FYI").with("item", id)),
                        target: None,
                        from,
                    },
                }
            }
            68..73 if !waiting.is_empty() => {
                let at = pick(&mut self.rng, &waiting);
                let waiter = self.running[at].waiting.take().expect("waiting");
                Tick::WaitEnded { waiter }
            }
            73..81 if !self.timers.is_empty() => {
                let timer = self.timers.swap_remove(self.rng.usize(..self.timers.len()));
                Tick::RetryDue { timer }
            }
            81 if choices.may_end => Tick::Cancel,
            82 if choices.may_end => Tick::TimedOut {
                timeout: Duration::from_millis(1500),
            },
            _ => {
                let id = self.item();
                let (event, target) = match self.rng.u8(0..4) {
                    0 => (AnyEvent::new(Nudge { id }), None),
                    1 => (AnyEvent::new(Nudge { id }), spec.step_index("nudged")),
                    2 => (AnyEvent::new(Work { id }), spec.step_index("work")),
                    _ => {
                        let ticket = self.rng.u64(1..self.next_waiter + 1);
                        let answer = HumanResponseEvent::new("yes").with("ticket", ticket);
                        (AnyEvent::new(answer), None)
                    }
                };
                Tick::Emit {
                    event,
                    target,
                    from: None,
                }
            }
        };
        self.record(tick)?;
        Ok(!self.finished)
    }

    /// The context of the invocation at `at`, in `run`.
    fn context(&self, run: &Arc<RunShared>, at: usize) -> Context {
        let running = &self.running[at];
        Context {
            run: run.clone(),
            step: running.step,
            invocation: running.invocation,
            attempt: 1,
            key: 0,
            started: std::time::Instant::now(),
            past: None,
        }
    }

    /// A fresh item id, so that every `Work`, `Nudge` and answer is told apart in the journal.
    fn item(&mut self) -> u64 {
        let id = self.next_item;
        self.next_item += 1;
        id
    }

    /// Some writes of the invocation at `at` to the context state, made on both copies' live
    /// states as a step's `Context` makes them.
    fn random_writes(&mut self, at: usize) {
        if self.rng.bool() {
            return;
        }
        for _ in 0..self.rng.u8(1..3) {
            let key = ["alpha", "beta", "gamma"][self.rng.usize(..3)];
            let write = match self.rng.u8(0..4) {
                0 => Write::Remove(key),
                1 => Write::Typed,
                _ => Write::Set(key, json!(self.rng.u64(..1000))),
            };
            write.perform(&self.context(&self.direct_live, at));
            write.perform(&self.context(&self.journal_live, at));
        }
    }

    /// The invocation at `at` returns what its step makes of its event.
    fn complete(&mut self, at: usize) -> Result<Tick, String> {
        self.random_writes(at);
        let running = self.running.swap_remove(at);
        let name = self.workflow.spec.steps[running.step].name.clone();
        let events = match name.as_str() {
            "start" => (0..self.rng.u64(1..4))
                .map(|_| AnyEvent::new(Work { id: self.item() }))
                .collect(),
            "work" => {
                let work = running
                    .event
                    .downcast_ref::<Work>()
                    .ok_or("work takes Work")?;
                vec![AnyEvent::new(Done { id: work.id })]
            }
            "nudged" => {
                let nudge = running
                    .event
                    .downcast_ref::<Nudge>()
                    .ok_or("nudged takes Nudge")?;
                vec![AnyEvent::new(Work { id: nudge.id })]
            }
            "gather" => {
                let done = running
                    .event
                    .downcast_ref::<Done>()
                    .ok_or("gather takes Done")?;
                let collect = Write::Collect(done.clone());
                let context = |run: &Arc<RunShared>| Context {
                    run: run.clone(),
                    step: running.step,
                    invocation: running.invocation,
                    attempt: 1,
                    key: 0,
                    started: std::time::Instant::now(),
                    past: None,
                };
                collect.perform(&context(&self.journal_live));
                match collect.perform(&context(&self.direct_live)) {
                    Some(pair) if self.rng.u8(0..3) == 0 => {
                        let ids: Vec<u64> = pair.iter().map(|done| done.id).collect();
                        vec![AnyEvent::new(StopEvent::new(ids))]
                    }
                    _ => Vec::new(),
                }
            }
            other => return Err(format!("unknown step {other}")),
        };
        Ok(Tick::StepDone {
            invocation: running.invocation,
            outcome: Ok(events),
            elapsed: Duration::from_millis(self.rng.u64(..50)),
        })
    }

    /// The invocation at `at` fails: an error, a panic or its step's timeout. Most failures
    /// carry the decision of the step's policy and the attempts' times, as the executor makes
    /// them; some are refused outright, and some are undecided, as journals written before
    /// decisions were journaled hold them (a run continued by a newer build mixes both).
    fn fail(&mut self, at: usize) -> Tick {
        self.random_writes(at);
        let running = self.running.swap_remove(at);
        let error = match self.rng.u8(0..3) {
            0 => StepError::Failed(format!("item {} failed", running.invocation).into()),
            1 => StepError::Panicked("index out of bounds".to_owned()),
            _ => StepError::TimedOut(Duration::from_millis(250)),
        };
        // A clock that only moves forward: the first attempt began when its invocation was
        // numbered, each failure some milliseconds after it.
        let first_attempt_at = running.past.as_ref().map_or_else(
            || from_epoch_millis(1_700_000_000_000 + running.invocation * 1_000),
            |past| past.first_attempt_at,
        );
        let failed_at = first_attempt_at
            + Duration::from_millis(u64::from(running.attempt) * 100 + self.rng.u64(..100));
        let times = AttemptTimes::new(first_attempt_at, failed_at);
        let (retry, times) = match self.rng.u8(0..8) {
            0 => (RetryDecision::Stop, Some(times)),
            1 => {
                let retryable = self.rng.bool();
                (RetryDecision::Undecided { retryable }, None)
            }
            _ => {
                let failed = FailedAttempt {
                    attempt: running.attempt,
                    elapsed: times.elapsed(),
                    error: &error,
                    retryable: None,
                };
                let policy = &self.workflow.spec.steps[running.step].retry;
                (
                    RetryDecision::ask(policy, &failed, &mut self.rng),
                    Some(times),
                )
            }
        };
        Tick::StepDone {
            invocation: running.invocation,
            outcome: Err(Box::new(StepFailure {
                error,
                retry,
                times,
            })),
            elapsed: Duration::from_millis(self.rng.u64(..50)),
        }
    }
}

/// A write of a step invocation to the run's context state.
enum Write {
    /// `Context::set` of a key.
    Set(&'static str, Value),
    /// `Context::remove` of a key.
    Remove(&'static str),
    /// `Context::edit_state` of the typed state.
    Typed,
    /// `collect_events` of a `Done`, expecting two.
    Collect(Done),
}

impl Write {
    /// Writes through the step's `Context`, as a step does (which notes the write for the
    /// journal); a completed collect gives its events.
    fn perform(&self, ctx: &Context) -> Option<Vec<Done>> {
        match self {
            Write::Set(key, value) => ctx.set(key, value).expect("JSON values serialize"),
            Write::Remove(key) => {
                ctx.remove(key);
            }
            Write::Typed => ctx
                .edit_state(|tally: &mut Tally| tally.completions += 1)
                .expect("the typed state is a Tally"),
            Write::Collect(done) => return ctx.collect_events(done.clone(), 2),
        }
        None
    }
}

/// A run whose context state steps write to, tracking each invocation's writes as a durable
/// run's does; it is never driven.
fn live_run(workflow: &Workflow, state: ContextState) -> Arc<RunShared> {
    new_run(
        workflow,
        RUN_ID.to_owned(),
        state.tracking_writes(),
        Vec::new(),
    )
}
