//! Validation of a workflow's graph, run once when it is built.
//!
//! Every check runs and every problem is reported, each naming the steps and event types
//! involved, so one build shows the whole list.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::error::ValidationProblem;
use crate::event::{EventRole, EventType};
use crate::step::Step;

/// Runs every check over `steps` and returns all problems found.
pub(crate) fn validate(steps: &[Step]) -> Vec<ValidationProblem> {
    let mut problems = Vec::new();
    if steps.is_empty() {
        problems.push(ValidationProblem::NoSteps);
        return problems;
    }

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
    for (name, emitters) in &emitted_by {
        let exempt = matches!(
            role_of(name),
            EventRole::Stop | EventRole::Outbound | EventRole::Terminal
        );
        if !exempt && !accepted_by.contains_key(name) {
            problems.push(ValidationProblem::NotAccepted {
                event: (*name).to_owned(),
                emitted_by: emitters.clone(),
            });
        }
    }
    for (name, acceptors) in &accepted_by {
        let exempt = matches!(
            role_of(name),
            EventRole::Start | EventRole::External | EventRole::Stop
        );
        if !exempt && !emitted_by.contains_key(name) {
            problems.push(ValidationProblem::NeverProduced {
                event: (*name).to_owned(),
                accepted_by: acceptors.clone(),
            });
        }
    }

    reachability(steps, &mut problems);
    problems
}

/// Reports steps no event chain reaches from the start (or from outside), and steps from which
/// no chain reaches a stop event or a step that emits nothing. An outbound event (a question for a human) is taken to lead to
/// the steps that accept external events (the answer).
fn reachability(steps: &[Step], problems: &mut Vec<ValidationProblem>) {
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
        .map(|step| {
            let mut next: Vec<usize> = step
                .emits
                .iter()
                .flat_map(|ty| consumers.get(ty).into_iter().flatten().copied())
                .collect();
            if emits_role(step, EventRole::Outbound) {
                next.extend(&external_acceptors);
            }
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

    for (index, step) in steps.iter().enumerate() {
        if step.accepts.is_empty() {
            continue; // already reported as NoInput
        }
        if !reached[index] {
            problems.push(ValidationProblem::Unreachable {
                step: step.name.clone(),
            });
        } else if !can_stop[index] && any_stopper {
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
