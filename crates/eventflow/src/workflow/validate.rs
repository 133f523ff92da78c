//! Validation of a workflow's graph, run once when it is built.
//!
//! Every check runs and every problem is reported, each naming the steps and event types
//! involved, so one build shows the whole list.
//!
//! Three checks of the graph's shape can be skipped, per step or for the whole workflow
//! ([`GraphCheck`]): reachability ([`ValidationProblem::Unreachable`]), dead ends
//! ([`ValidationProblem::CannotStop`]) and terminal events ([`ValidationProblem::NotAccepted`]).
//! The others say the workflow cannot run at all (no steps, no start step or several start
//! types, no stop event or several, a step accepting a stop event or nothing, two steps or two
//! event types with one name, an event accepted that nothing produces) and always apply.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::recovery;
use crate::Event;
use crate::error::ValidationProblem;
use crate::event::{EventRole, EventType, StepFailedEvent};
use crate::step::{GraphCheck, SkippedChecks, Step};

/// Runs every check over `steps`, except those `skipped` for the whole workflow or for a step,
/// and returns all problems found.
pub(crate) fn validate(steps: &[Step], skipped: &SkippedChecks) -> Vec<ValidationProblem> {
    let mut problems = unknown_checks(steps, skipped);
    if steps.is_empty() {
        problems.push(ValidationProblem::NoSteps);
        return problems;
    }
    let (recovered_by, handler_problems) = recovery::plan(steps);
    problems.extend(handler_problems);

    let mut seen = BTreeSet::new();
    for step in steps {
        if !seen.insert(step.name.as_str()) {
            problems.push(ValidationProblem::DuplicateStep {
                step: step.name.clone(),
            });
        }
        if step.accepts.is_empty() {
            problems.push(ValidationProblem::NoInput {
                step: step.name.clone(),
            });
        }
        for ty in &step.accepts {
            if ty.role() == EventRole::Stop {
                problems.push(ValidationProblem::AcceptsStop {
                    step: step.name.clone(),
                    event: ty.name().to_owned(),
                });
            }
        }
    }

    // Event types by name, to catch two types sharing one name.
    let mut by_name: BTreeMap<&str, EventType> = BTreeMap::new();
    let mut accepted_by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut emitted_by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for step in steps {
        for (types, index) in [
            (&step.accepts, &mut accepted_by),
            (&step.emits, &mut emitted_by),
        ] {
            for ty in types {
                match by_name.get(ty.name()) {
                    Some(known) if known != ty => {
                        let problem = ValidationProblem::DuplicateEventName {
                            event: ty.name().to_owned(),
                            types: (known.rust_name().to_owned(), ty.rust_name().to_owned()),
                        };
                        if !problems.contains(&problem) {
                            problems.push(problem);
                        }
                    }
                    _ => {
                        by_name.insert(ty.name(), *ty);
                    }
                }
                let steps = index.entry(ty.name()).or_default();
                if !steps.contains(&step.name) {
                    steps.push(step.name.clone());
                }
            }
        }
    }

    let role_of = |name: &str| by_name[name].role();
    let start_types: Vec<(String, Vec<String>)> = accepted_by
        .iter()
        .filter(|(name, _)| role_of(name) == EventRole::Start)
        .map(|(name, steps)| ((*name).to_owned(), steps.clone()))
        .collect();
    match start_types.len() {
        0 => problems.push(ValidationProblem::NoStartStep),
        1 => {}
        _ => problems.push(ValidationProblem::SeveralStartTypes { types: start_types }),
    }
    let stop_types: Vec<(String, Vec<String>)> = emitted_by
        .iter()
        .filter(|(name, _)| role_of(name) == EventRole::Stop)
        .map(|(name, steps)| ((*name).to_owned(), steps.clone()))
        .collect();
    match stop_types.len() {
        0 => problems.push(ValidationProblem::NoStopEvent),
        1 => {}
        _ => problems.push(ValidationProblem::SeveralStopTypes { types: stop_types }),
    }
    if !skipped.contains(GraphCheck::TerminalEvent) {
        let skips_terminal = |step: &String| {
            steps
                .iter()
                .any(|s| &s.name == step && s.skipped_checks.contains(GraphCheck::TerminalEvent))
        };
        for (name, emitters) in &emitted_by {
            let exempt = matches!(
                role_of(name),
                EventRole::Stop | EventRole::Outbound | EventRole::Terminal
            );
            if exempt || accepted_by.contains_key(name) {
                continue;
            }
            let emitted_by: Vec<String> = emitters
                .iter()
                .filter(|step| !skips_terminal(step))
                .cloned()
                .collect();
            if !emitted_by.is_empty() {
                problems.push(ValidationProblem::NotAccepted {
                    event: (*name).to_owned(),
                    emitted_by,
                });
            }
        }
    }
    // The engine makes the failure events error handlers take.
    let is_handler = |name: &String| steps.iter().any(|s| &s.name == name && s.catches.is_some());
    for (name, acceptors) in &accepted_by {
        let exempt = matches!(
            role_of(name),
            EventRole::Start | EventRole::External | EventRole::Stop
        ) || (*name == StepFailedEvent::NAME && acceptors.iter().all(is_handler));
        if !exempt && !emitted_by.contains_key(name) {
            problems.push(ValidationProblem::NeverProduced {
                event: (*name).to_owned(),
                accepted_by: acceptors.clone(),
            });
        }
    }

    reachability(steps, skipped, &recovered_by, &mut problems);
    problems
}

/// The names given to `skip_graph_checks` that are no check: the workflow's, then each step's.
fn unknown_checks(steps: &[Step], skipped: &SkippedChecks) -> Vec<ValidationProblem> {
    let workflow = skipped.unknown.iter().map(|unknown| (None, unknown));
    let by_step = steps.iter().flat_map(|step| {
        step.skipped_checks
            .unknown
            .iter()
            .map(|unknown| (Some(step.name.clone()), unknown))
    });
    workflow
        .chain(by_step)
        .map(|(step, unknown)| ValidationProblem::UnknownGraphCheck {
            step,
            name: unknown.name().to_owned(),
        })
        .collect()
}

/// Reports steps no event chain reaches from the start (or from outside), and steps from which
/// no chain reaches a stop event or a step that emits nothing. An outbound event (a question for a human) is taken to lead to
/// the steps that accept external events (the answer).
///
/// A step that skips reachability is not reported as unreachable, but it is not a root either:
/// the steps only it leads to are still reported, as in the reference. It is then checked for
/// a dead end like a reached step, since something outside the graph is expected to reach it.
/// A failing step leads to its error handler (`recovered_by`).
fn reachability(
    steps: &[Step],
    skipped: &SkippedChecks,
    recovered_by: &[Option<usize>],
    problems: &mut Vec<ValidationProblem>,
) {
    let accepts_role =
        |step: &Step, role: EventRole| step.accepts.iter().any(|ty| ty.role() == role);
    let emits_role = |step: &Step, role: EventRole| step.emits.iter().any(|ty| ty.role() == role);
    let mut consumers: HashMap<EventType, Vec<usize>> = HashMap::new();
    for (index, step) in steps.iter().enumerate() {
        for ty in &step.accepts {
            consumers.entry(*ty).or_default().push(index);
        }
    }
    let external_acceptors: Vec<usize> = (0..steps.len())
        .filter(|&i| accepts_role(&steps[i], EventRole::External))
        .collect();
    let successors: Vec<Vec<usize>> = steps
        .iter()
        .zip(recovered_by)
        .map(|(step, handler)| {
            let mut next: Vec<usize> = step
                .emits
                .iter()
                // StepFailedEvent reaches handlers only through the failure edge below.
                .filter(|ty| ty.name() != StepFailedEvent::NAME)
                .flat_map(|ty| consumers.get(ty).into_iter().flatten().copied())
                .collect();
            if emits_role(step, EventRole::Outbound) {
                next.extend(&external_acceptors);
            }
            next.extend(handler);
            next
        })
        .collect();

    let roots = (0..steps.len()).filter(|&i| {
        accepts_role(&steps[i], EventRole::Start) || accepts_role(&steps[i], EventRole::External)
    });
    let reached = closure(steps.len(), roots, |i| successors[i].clone());
    let mut predecessors = vec![Vec::new(); steps.len()];
    for (from, next) in successors.iter().enumerate() {
        for &to in next {
            predecessors[to].push(from);
        }
    }
    // Without any stop event, NoStopEvent already says it all; one line per step would be noise.
    let any_stopper = steps.iter().any(|step| emits_role(step, EventRole::Stop));
    // A chain ends well at a stop event or at a step that emits nothing (its effect is a side
    // effect: state written, a record kept); the reference checks dead ends only for steps
    // that emit events too.
    let ends = (0..steps.len())
        .filter(|&i| emits_role(&steps[i], EventRole::Stop) || steps[i].emits.is_empty());
    let can_stop = closure(steps.len(), ends, |i| predecessors[i].clone());

    let skips = |step: &Step, check: GraphCheck| {
        skipped.contains(check) || step.skipped_checks.contains(check)
    };
    for (index, step) in steps.iter().enumerate() {
        if step.accepts.is_empty() {
            continue; // already reported as NoInput
        }
        if !reached[index] && !skips(step, GraphCheck::Reachability) {
            problems.push(ValidationProblem::Unreachable {
                step: step.name.clone(),
            });
            // An unreachable step is not also called a dead end: one problem per step.
            continue;
        }
        if !can_stop[index] && any_stopper && !skips(step, GraphCheck::DeadEnd) {
            problems.push(ValidationProblem::CannotStop {
                step: step.name.clone(),
            });
        }
    }
}

/// The set of nodes reachable from `roots` following `next`.
fn closure(
    nodes: usize,
    roots: impl Iterator<Item = usize>,
    next: impl Fn(usize) -> Vec<usize>,
) -> Vec<bool> {
    let mut seen = vec![false; nodes];
    let mut stack: Vec<usize> = roots.collect();
    while let Some(node) = stack.pop() {
        if std::mem::replace(&mut seen[node], true) {
            continue;
        }
        stack.extend(next(node));
    }
    seen
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::event::{StartEvent, StopEvent};
    use crate::{Event, EventUnion};

    #[derive(Event, Clone, Serialize, Deserialize)]
    struct Ping;
    #[derive(Event, Clone, Serialize, Deserialize)]
    struct Pong;

    #[derive(EventUnion)]
    enum PingOrStop {
        Ping(Ping),
        Stop(StopEvent),
    }

    #[derive(EventUnion)]
    enum Fork {
        Ping(Ping),
        Pong(Pong),
        Stop(StopEvent),
    }

    fn start() -> Step {
        Step::new("start", |_: StartEvent| async { StopEvent::new(()) })
    }

    /// `start` forks into pings, pongs or the end.
    fn forking_start() -> Step {
        Step::new("start", |_: StartEvent| async {
            Fork::Stop(StopEvent::new(()))
        })
    }

    /// `ping` and `pong` answer each other, but no chain of events leads to them from the start.
    fn island() -> [Step; 2] {
        [
            Step::new("ping", |_: Ping| async { Pong }),
            Step::new("pong", |_: Pong| async {
                PingOrStop::Stop(StopEvent::new(()))
            }),
        ]
    }

    fn check(steps: &[Step], workflow_skips: &[GraphCheck]) -> Vec<ValidationProblem> {
        let mut skipped = SkippedChecks::default();
        skipped.extend(workflow_skips.iter().copied());
        validate(steps, &skipped)
    }

    fn unreachable(step: &str) -> ValidationProblem {
        ValidationProblem::Unreachable { step: step.into() }
    }

    fn dead_end(step: &str) -> ValidationProblem {
        ValidationProblem::CannotStop { step: step.into() }
    }

    #[test]
    fn reachability_skipped_by_a_step_spares_that_step_only() {
        let [ping, pong] = island();
        assert_eq!(
            check(&[start(), ping.clone(), pong.clone()], &[]),
            [unreachable("ping"), unreachable("pong")]
        );
        let ping = ping.skip_graph_checks([GraphCheck::Reachability]);
        // `pong` is reached only through `ping`: skipping `ping` does not make it a root.
        assert_eq!(
            check(&[start(), ping.clone(), pong.clone()], &[]),
            [unreachable("pong")]
        );
        let pong = pong.skip_graph_checks([GraphCheck::Reachability]);
        assert_eq!(check(&[start(), ping, pong], &[]), []);
    }

    #[test]
    fn reachability_skipped_by_the_workflow_spares_every_step() {
        let [ping, pong] = island();
        assert_eq!(
            check(&[start(), ping, pong], &[GraphCheck::Reachability]),
            []
        );
    }

    #[test]
    fn dead_end_skipped_by_a_step_spares_that_step_only() {
        let echo = || Step::new("echo", |_: Ping| async { Ping });
        let volley = || Step::new("volley", |_: Pong| async { Pong });
        assert_eq!(
            check(&[forking_start(), echo(), volley()], &[]),
            [dead_end("echo"), dead_end("volley")]
        );
        let echo = echo().skip_graph_checks([GraphCheck::DeadEnd]);
        assert_eq!(
            check(&[forking_start(), echo.clone(), volley()], &[]),
            [dead_end("volley")]
        );
        let volley = volley().skip_graph_checks([GraphCheck::DeadEnd]);
        assert_eq!(check(&[forking_start(), echo, volley], &[]), []);
    }

    #[test]
    fn dead_end_skipped_by_the_workflow_spares_every_step() {
        let steps = [
            forking_start(),
            Step::new("echo", |_: Ping| async { Ping }),
            Step::new("volley", |_: Pong| async { Pong }),
        ];
        assert_eq!(check(&steps, &[GraphCheck::DeadEnd]), []);
    }

    #[test]
    fn a_step_that_skips_reachability_is_still_checked_for_a_dead_end() {
        // Reached from outside the graph, it had better lead somewhere.
        let echo = Step::new("echo", |_: Ping| async { Ping });
        let skipping = |checks: &[GraphCheck]| {
            check(
                &[start(), echo.clone().skip_graph_checks(checks.to_vec())],
                &[],
            )
        };
        assert_eq!(skipping(&[]), [unreachable("echo")]);
        assert_eq!(skipping(&[GraphCheck::Reachability]), [dead_end("echo")]);
        assert_eq!(
            skipping(&[GraphCheck::Reachability, GraphCheck::DeadEnd]),
            []
        );
    }

    #[test]
    fn terminal_event_skipped_by_a_step_spares_the_events_it_emits() {
        // Ping is accepted by no step; `start` and `relay` emit it.
        let relay = || {
            Step::new("relay", |_: Pong| async {
                PingOrStop::Stop(StopEvent::new(()))
            })
        };
        let not_accepted = |emitted_by: &[&str]| ValidationProblem::NotAccepted {
            event: "Ping".into(),
            emitted_by: emitted_by.iter().map(|&s| s.to_owned()).collect(),
        };
        assert_eq!(
            check(&[forking_start(), relay()], &[]),
            [not_accepted(&["start", "relay"])]
        );
        let relay = relay().skip_graph_checks([GraphCheck::TerminalEvent]);
        assert_eq!(
            check(&[forking_start(), relay.clone()], &[]),
            [not_accepted(&["start"])]
        );
        let start = forking_start().skip_graph_checks([GraphCheck::TerminalEvent]);
        assert_eq!(check(&[start, relay], &[]), []);
    }

    #[test]
    fn terminal_event_skipped_by_the_workflow_spares_every_event() {
        let steps = [
            forking_start(),
            Step::new("relay", |_: Pong| async {
                PingOrStop::Stop(StopEvent::new(()))
            }),
        ];
        assert_eq!(check(&steps, &[GraphCheck::TerminalEvent]), []);
    }

    #[test]
    fn the_checks_that_say_a_workflow_cannot_run_are_never_skipped() {
        let steps = [Step::new("lonely", |_: Ping| async { Pong })];
        let problems = check(&steps, &GraphCheck::ALL);
        assert_eq!(
            problems,
            [
                ValidationProblem::NoStartStep,
                ValidationProblem::NoStopEvent,
                ValidationProblem::NeverProduced {
                    event: "Ping".into(),
                    accepted_by: vec!["lonely".into()],
                },
            ]
        );
        assert_eq!(check(&[], &GraphCheck::ALL), [ValidationProblem::NoSteps]);
    }

    #[test]
    fn unknown_check_names_are_reported_first_with_the_other_problems() {
        let mut skipped = SkippedChecks::default();
        skipped.extend(["reachabilty"]);
        let [ping, pong] = island();
        let ping = ping.skip_graph_checks(["dead-end".to_owned()]);
        let problems = validate(&[start(), ping, pong], &skipped);
        assert_eq!(
            problems,
            [
                ValidationProblem::UnknownGraphCheck {
                    step: None,
                    name: "reachabilty".into(),
                },
                ValidationProblem::UnknownGraphCheck {
                    step: Some("ping".into()),
                    name: "dead-end".into(),
                },
                unreachable("ping"),
                unreachable("pong"),
            ]
        );
        assert_eq!(
            problems[1].to_string(),
            "unknown graph check `dead-end` skipped by step `ping`; the checks are `reachability`, `dead_end` and `terminal_event`"
        );
        // Even a workflow without steps says what else is wrong with it.
        assert_eq!(
            validate(&[], &skipped),
            [problems[0].clone(), ValidationProblem::NoSteps]
        );
    }
}
