//! Which error handler recovers each step, worked out once when a workflow is built.
//!
//! A handler names its steps (`for_steps`) or covers every step no other handler names (at most
//! one such wildcard). Handlers are not covered: a handler that fails fails the run.

use std::collections::BTreeMap;

use crate::error::ValidationProblem;
use crate::event::{EventType, StepFailedEvent};
use crate::step::Step;

/// The handler of each step (`by_step[i]`: the index of the step that recovers step `i`), and
/// the problems of the handlers' declarations, all of them.
pub(crate) fn plan(steps: &[Step]) -> (Vec<Option<usize>>, Vec<ValidationProblem>) {
    let mut problems = Vec::new();
    let mut by_step: Vec<Option<usize>> = vec![None; steps.len()];
    let handlers: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i].catches.is_some())
        .collect();
    let index_of = |name: &str| steps.iter().position(|step| step.name == name);
    let failed = EventType::of::<StepFailedEvent>();

    let mut claims: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut wildcards = Vec::new();
    for &handler in &handlers {
        let step = &steps[handler];
        if !step.accepts.contains(&failed) {
            problems.push(ValidationProblem::HandlerIgnoresFailure {
                handler: step.name.clone(),
            });
        }
        let catches = step.catches.as_ref().expect("a handler");
        let Some(names) = catches.steps() else {
            wildcards.push(handler);
            continue;
        };
        for name in names {
            match index_of(name) {
                None => problems.push(ValidationProblem::CatchesUnknownStep {
                    handler: step.name.clone(),
                    step: name.clone(),
                }),
                Some(caught) if steps[caught].catches.is_some() => {
                    problems.push(ValidationProblem::CatchesHandler {
                        handler: step.name.clone(),
                        step: name.clone(),
                    });
                }
                Some(caught) => {
                    let by = claims.entry(caught).or_default();
                    if !by.contains(&handler) {
                        by.push(handler);
                    }
                }
            }
        }
    }
    if wildcards.len() > 1 {
        problems.push(ValidationProblem::SeveralCatchAll {
            handlers: wildcards.iter().map(|&i| steps[i].name.clone()).collect(),
        });
    }
    for (&caught, by) in &claims {
        if by.len() > 1 {
            problems.push(ValidationProblem::CaughtTwice {
                step: steps[caught].name.clone(),
                handlers: by.iter().map(|&i| steps[i].name.clone()).collect(),
            });
        }
        by_step[caught] = Some(by[0]);
    }
    if let [wildcard] = wildcards[..] {
        for (index, step) in steps.iter().enumerate() {
            if step.catches.is_none() && by_step[index].is_none() {
                by_step[index] = Some(wildcard);
            }
        }
    }
    (by_step, problems)
}
