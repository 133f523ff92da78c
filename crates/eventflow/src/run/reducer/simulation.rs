//! Deterministic simulation of the reducer: step completions, failures and timers happen in
//! random orders chosen by a seeded generator, with no tokio and no clock.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::prelude::*;
use crate::workflow::Workflow;
use crate::{StepState, StepStateChanged};

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Work {
    id: u64,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Done {
    id: u64,
    value: u64,
}

/// A fan-out/fan-in workflow; with `rescue`, `work` has 2 attempts instead of 3 and an error
/// handler, `rescue`, recovers it with the `Done` the failed work would have given. The
/// closures are never called: the simulation computes what each step emits.
fn fan_out(workers: usize, rescue: bool) -> Workflow {
    let attempts = if rescue { 2 } else { 3 };
    let builder = Workflow::builder("sim")
        .add_step("start", |_: StartEvent| async { Vec::<Work>::new() })
        .step(
            Step::new("work", |w: Work| async move { Done { id: w.id, value: 0 } })
                .num_workers(workers)
                .retry(RetryPolicy::fixed(Duration::from_millis(5)).max_attempts(attempts)),
        )
        .step(Step::new("collect", |_: Done| async { None::<StopEvent> }).num_workers(2));
    let builder = if rescue {
        builder.step(
            Step::new("rescue", |f: StepFailedEvent| async move {
                let id = f.input::<Work>().map(|w| w.id).unwrap_or_default();
                Done { id, value: 0 }
            })
            .catch_error(crate::CatchError::for_steps(["work"])),
        )
    } else {
        builder
    };
    builder.build().unwrap()
}

/// What a simulation runs.
#[derive(Clone, Copy, Default)]
struct Sim {
    items: u64,
    workers: usize,
    /// Work attempts fail at random: all but the last (so they are retried), or with `rescue`
    /// any of them (so some are lost to the error handler).
    flaky: bool,
    /// The reducer publishes internal events.
    internal: bool,
    /// `work` has an error handler (see [`fan_out`]).
    rescue: bool,
}

struct Report {
    result: u64,
    collected: Vec<u64>,
    peak_work: usize,
    /// Every command but the internal events.
    commands: usize,
    starts: usize,
    /// The `StepStateChanged` events published, in order (with `internal`).
    states: Vec<StepStateChanged>,
    /// Work items whose last attempt failed, and the error handler's invocations (`rescue`).
    lost: u64,
    rescues: u64,
}

/// Runs the fan-out of `sim.items` events to completion in an order drawn from `seed`.
fn simulate(seed: u64, sim: Sim) -> Report {
    let Sim {
        items,
        workers,
        flaky,
        internal,
        rescue,
    } = sim;
    let workflow = fan_out(workers, rescue);
    let last_attempt = if rescue { 2 } else { 3 };
    let spec = &*workflow.spec;
    let work_step = spec.step_index("work").unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut state = RunState::new(spec, seed);
    state.publish_internal(internal);
    let mut out = Vec::new();
    state.apply(
        spec,
        Tick::Start(AnyEvent::new(StartEvent::new())),
        &mut out,
    );

    let mut starts = 0;
    let mut states = Vec::new();
    let mut running: Vec<(InvocationId, usize, AnyEvent, u32)> = Vec::new();
    let mut timers: Vec<u64> = Vec::new();
    let mut collected: Vec<u64> = Vec::new();
    let mut peak_work = 0;
    let mut commands = 0;
    let (mut lost, mut rescues) = (0, 0);
    let mut result = None;
    loop {
        for command in out.drain(..) {
            if let Command::Publish(event) = &command
                && let Some(changed) = event.downcast_ref::<StepStateChanged>()
            {
                states.push(changed.clone());
                continue;
            }
            commands += 1;
            match command {
                Command::StartStep {
                    invocation,
                    step,
                    event,
                    attempt,
                    ..
                } => {
                    starts += 1;
                    running.push((invocation, step, event, attempt));
                }
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
            "work" if flaky && (rescue || attempt < last_attempt) && rng.bool() => {
                lost += u64::from(attempt == last_attempt);
                Err(StepError::Failed("flaky".into()))
            }
            "work" => {
                let id = event.downcast_ref::<Work>().unwrap().id;
                Ok(vec![AnyEvent::new(Done { id, value: id * 2 })])
            }
            "rescue" => {
                rescues += 1;
                let failed = event.downcast_ref::<StepFailedEvent>().unwrap();
                assert_eq!(failed.attempts, 2);
                let id = failed.input::<Work>().unwrap().id;
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
        let outcome = outcome.map_err(|error| failure(spec, step, attempt, error, &mut rng));
        state.apply(
            spec,
            Tick::StepDone {
                invocation,
                outcome,
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
        starts,
        states,
        lost,
        rescues,
    }
}

/// A failed attempt as the executor reports it: the step's policy decides, where the error is
/// whole.
fn failure(
    spec: &WorkflowSpec,
    step: usize,
    attempt: u32,
    error: StepError,
    rng: &mut fastrand::Rng,
) -> Box<StepFailure> {
    let failed = FailedAttempt {
        attempt,
        elapsed: Duration::ZERO,
        error: &error,
        retryable: None,
    };
    let retry = RetryDecision::ask(&spec.steps[step].retry, &failed, rng);
    Box::new(StepFailure {
        error,
        retry,
        times: None,
    })
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
        let report = simulate(seed, Sim { items, workers, flaky, ..Sim::default() });
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
        let sim = Sim { items, workers: 3, flaky: true, ..Sim::default() };
        let (a, b) = (simulate(seed, sim), simulate(seed, sim));
        prop_assert_eq!(a.collected, b.collected);
        prop_assert_eq!(a.commands, b.commands);
    }

    /// Internal events describe the run and change nothing in it: the same commands with or
    /// without them; each invocation is `running` once and then `not_running` once; an event
    /// that finds every worker busy is `preparing` first.
    #[test]
    fn internal_events_trace_every_invocation_and_change_nothing(
        seed in any::<u64>(),
        items in 1u64..40,
        workers in 1usize..5,
        flaky in any::<bool>(),
    ) {
        let sim = Sim { items, workers, flaky, ..Sim::default() };
        let plain = simulate(seed, sim);
        let traced = simulate(seed, Sim { internal: true, ..sim });
        prop_assert!(plain.states.is_empty());
        prop_assert_eq!(&plain.collected, &traced.collected);
        prop_assert_eq!(plain.commands, traced.commands);

        let mut open: BTreeSet<String> = BTreeSet::new();
        let (mut started, mut ended, mut preparing_work) = (0, 0, 0);
        for changed in &traced.states {
            match changed.step_state {
                StepState::Preparing => {
                    prop_assert_eq!(&changed.worker_id, "");
                    if changed.name == "work" {
                        preparing_work += 1;
                    }
                }
                StepState::Running => {
                    started += 1;
                    prop_assert!(open.insert(changed.worker_id.clone()), "running twice");
                }
                StepState::NotRunning => {
                    ended += 1;
                    prop_assert!(open.remove(&changed.worker_id), "ended before it ran");
                }
            }
        }
        prop_assert_eq!(started, traced.starts);
        // Every work event was collected, so every invocation ended before the stop event.
        prop_assert_eq!(ended, started);
        prop_assert!(open.is_empty());
        // `start` queues every work event at once: those beyond the workers wait.
        prop_assert_eq!(preparing_work, items.saturating_sub(workers as u64));
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
        let allocated = allocation_counter::measure(|| {
            report = Some(simulate(
                1,
                Sim {
                    items,
                    workers: 4,
                    ..Sim::default()
                },
            ))
        });
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
    let workflow = fan_out(2, false);
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
            elapsed: Duration::ZERO,
        },
        &mut out,
    );
    assert!(out.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Whatever fails for good is recovered once by the handler, in any order of completions
    /// and timers: every item is collected once, and the handler ran once per lost item.
    #[test]
    fn a_handler_recovers_each_lost_item_once(seed in any::<u64>(), items in 1u64..40, workers in 1usize..5) {
        let sim = Sim { items, workers, flaky: true, rescue: true, ..Sim::default() };
        let report = simulate(seed, sim);
        prop_assert_eq!(report.result, items * (items - 1));
        let unique: BTreeSet<u64> = report.collected.iter().copied().collect();
        prop_assert_eq!(unique, (0..items).collect::<BTreeSet<u64>>());
        prop_assert_eq!(report.collected.len() as u64, items);
        prop_assert_eq!(report.rescues, report.lost);
    }
}
