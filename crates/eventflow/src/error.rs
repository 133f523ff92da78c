//! What goes wrong, by when it happens: building a workflow ([`ValidationErrors`]), running
//! it ([`WorkflowError`]), and taking or resuming a snapshot ([`SnapshotError`]).
//!
//! The validation types live here rather than beside the checks (`workflow/validate.rs`) so
//! that errors sit below the workflow and the two modules do not import each other. The small
//! errors of the calls a step makes (`SendEventError`, `WaitError`, `StateError`) live with
//! `Context`; reading recorded runs back has its own ([`ReplayError`], in `replay.rs`).

use std::fmt;
use std::time::Duration;

use crate::replay::{FormatError, ReplayError};
use crate::step::{CHECK_NAMES, StepError};

/// Why a run did not produce a result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// The run was started with an event that is not the workflow's start event.
    #[error("invalid start event: expected {expected}, got {found}")]
    InvalidStart {
        /// The workflow's start event.
        expected: &'static str,
        /// What was given.
        found: String,
    },
    /// The run took longer than its timeout.
    #[error(
        "run timed out after {timeout:?}; active steps: {}",
        list_or_none(active_steps)
    )]
    Timeout {
        /// The run's timeout.
        timeout: Duration,
        /// The steps that were running or waiting to retry when it expired.
        active_steps: Vec<String>,
    },
    /// A step failed on its last allowed attempt.
    #[error("step `{step}` failed after {attempts} attempt{}: {source}", if *attempts == 1 { "" } else { "s" })]
    StepFailed {
        /// The step's name.
        step: String,
        /// How many attempts were made.
        attempts: u32,
        /// Why the last attempt failed.
        #[source]
        source: StepError,
    },
    /// The run was cancelled.
    #[error("run cancelled")]
    Cancelled,
    /// The run can never make progress again: nothing runs, nothing is queued and nothing can
    /// arrive from outside.
    #[error("run stalled: {reason}")]
    Stalled {
        /// What the run was left with.
        reason: String,
    },
    /// The run's result does not deserialize into the type asked for.
    #[error("the run's result is not a valid `{expected}`: {source}")]
    InvalidResult {
        /// The type asked for.
        expected: &'static str,
        /// Why deserialization failed.
        #[source]
        source: serde_json::Error,
    },
    /// The task driving the run ended without a result (its runtime shut down).
    #[error("the run was lost: its runtime shut down before it finished")]
    RunLost,
    /// The run was started from a context whose run is still going.
    #[error("the context is in use by run `{run_id}`, which has not finished")]
    ContextInUse {
        /// The run using the context.
        run_id: String,
    },
    /// The run was started from the context of a run of another workflow (or of another shape
    /// of this one).
    #[error("the context is of a run of workflow `{workflow}`, whose steps or event types differ")]
    ContextOfOtherWorkflow {
        /// The workflow whose run the context holds.
        workflow: String,
    },
    /// The typed state of the context to start from does not serialize, so it cannot be copied.
    #[error("the context's typed state cannot be copied: {0}")]
    ContextUnserializable(#[source] serde_json::Error),
}

/// Why a snapshot could not be taken, read or resumed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The run has finished: there is nothing left to snapshot.
    #[error("the run has finished: there is nothing to snapshot")]
    Finished,
    /// A value of the run (an event, a state value) does not serialize to JSON.
    #[error("a value of the run does not serialize: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The snapshot is of a workflow of another shape (its steps or event types differ).
    #[error(
        "the snapshot is of workflow `{snapshot_workflow}` (fingerprint {snapshot_fingerprint}) but this is `{workflow}` (fingerprint {fingerprint}): their steps or event types differ"
    )]
    OtherWorkflow {
        /// The workflow the snapshot was taken of.
        snapshot_workflow: String,
        /// That workflow's fingerprint.
        snapshot_fingerprint: String,
        /// The workflow asked to resume it.
        workflow: String,
        /// Its fingerprint.
        fingerprint: String,
    },
    /// The snapshot does not read back: another format version, damaged JSON, or a step or
    /// event this workflow lacks.
    #[error(transparent)]
    Invalid(#[from] ReplayError),
}

impl From<FormatError> for SnapshotError {
    fn from(error: FormatError) -> Self {
        SnapshotError::Invalid(error.into())
    }
}

fn list_or_none(steps: &[String]) -> String {
    if steps.is_empty() {
        "none".to_owned()
    } else {
        steps.join(", ")
    }
}

/// One thing wrong with a workflow's graph.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidationProblem {
    /// The workflow has no steps.
    NoSteps,
    /// No step accepts a start event.
    NoStartStep,
    /// Steps accept more than one start event type.
    SeveralStartTypes {
        /// Each start event type with the steps that accept it.
        types: Vec<(String, Vec<String>)>,
    },
    /// No step emits a stop event, so no run could ever finish.
    NoStopEvent,
    /// Steps return more than one stop event type; a run has one result type.
    SeveralStopTypes {
        /// Each stop event type with the steps that return it.
        types: Vec<(String, Vec<String>)>,
    },
    /// A step accepts a stop event; stop events end the run and are never delivered.
    AcceptsStop {
        /// The step.
        step: String,
        /// The stop event type.
        event: String,
    },
    /// Two steps have the same name.
    DuplicateStep {
        /// The name.
        step: String,
    },
    /// Two different Rust types use the same event name.
    DuplicateEventName {
        /// The name.
        event: String,
        /// The two Rust types.
        types: (String, String),
    },
    /// A step accepts no event at all (an empty union).
    NoInput {
        /// The step.
        step: String,
    },
    /// An event is emitted but no step accepts it.
    NotAccepted {
        /// The event type.
        event: String,
        /// The steps that emit it.
        emitted_by: Vec<String>,
    },
    /// An event is accepted but no step emits it and it cannot come from outside.
    NeverProduced {
        /// The event type.
        event: String,
        /// The steps that accept it.
        accepted_by: Vec<String>,
    },
    /// A step can never run: no chain of events leads to it from the start event (or from an
    /// event that comes from outside).
    Unreachable {
        /// The step.
        step: String,
    },
    /// No chain of events leads from a step to a stop event.
    CannotStop {
        /// The step.
        step: String,
    },
    /// A name given to `skip_graph_checks` is not one of [`GraphCheck`](crate::GraphCheck)'s.
    UnknownGraphCheck {
        /// The step it was given for, or `None` when given for the whole workflow.
        step: Option<String>,
        /// The name as given.
        name: String,
    },
    /// An error handler does not accept [`StepFailedEvent`](crate::StepFailedEvent).
    HandlerIgnoresFailure {
        /// The handler.
        handler: String,
    },
    /// An error handler names a step the workflow does not have.
    CatchesUnknownStep {
        /// The handler.
        handler: String,
        /// The name it gave.
        step: String,
    },
    /// An error handler names another handler: a handler's failure fails the run.
    CatchesHandler {
        /// The handler.
        handler: String,
        /// The handler it named.
        step: String,
    },
    /// More than one error handler covers every step.
    SeveralCatchAll {
        /// The wildcard handlers.
        handlers: Vec<String>,
    },
    /// More than one error handler names the same step.
    CaughtTwice {
        /// The step.
        step: String,
        /// The handlers naming it.
        handlers: Vec<String>,
    },
}

impl fmt::Display for ValidationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSteps => write!(f, "the workflow has no steps"),
            Self::NoStartStep => write!(
                f,
                "no step accepts a start event (StartEvent, or a type marked #[event(start)])"
            ),
            Self::SeveralStartTypes { types } => {
                write!(f, "steps accept more than one start event type:")?;
                for (event, steps) in types {
                    write!(f, " {event} (by {})", steps.join(", "))?;
                }
                write!(f, "; a workflow has exactly one")
            }
            Self::NoStopEvent => write!(
                f,
                "no step emits a stop event (StopEvent, or a type marked #[event(stop)]), so no run could finish"
            ),
            Self::SeveralStopTypes { types } => {
                write!(f, "steps return more than one stop event type:")?;
                for (event, steps) in types {
                    write!(f, " {event} (by {})", steps.join(", "))?;
                }
                write!(f, "; a workflow has exactly one, the type of its result")
            }
            Self::AcceptsStop { step, event } => write!(
                f,
                "step `{step}` accepts {event}, a stop event; stop events end the run and are never delivered to steps"
            ),
            Self::DuplicateStep { step } => write!(f, "two steps are named `{step}`"),
            Self::DuplicateEventName { event, types } => write!(
                f,
                "the event name `{event}` is used by two types, {} and {}; rename one with #[event(name = \"...\")]",
                types.0, types.1
            ),
            Self::NoInput { step } => write!(f, "step `{step}` accepts no event"),
            Self::NotAccepted { event, emitted_by } => write!(
                f,
                "{event} is emitted by {} but no step accepts it",
                list_steps(emitted_by)
            ),
            Self::NeverProduced { event, accepted_by } => write!(
                f,
                "{event} is accepted by {} but no step emits it; declare #[step(emits({event}))] on a step that sends it with ctx.send_event, or mark it #[event(external)] if it comes from outside",
                list_steps(accepted_by)
            ),
            Self::Unreachable { step } => write!(
                f,
                "step `{step}` can never run: no chain of events leads to it from the start event; if that is intended, skip the check with skip_graph_checks(reachability)"
            ),
            Self::CannotStop { step } => write!(
                f,
                "no chain of events leads from step `{step}` to a stop event; if it sends events with ctx.send_event, declare them with #[step(emits(...))]; if it is intended, skip the check with skip_graph_checks(dead_end)"
            ),
            Self::HandlerIgnoresFailure { handler } => write!(
                f,
                "error handler `{handler}` does not accept StepFailedEvent; take `ev: StepFailedEvent`"
            ),
            Self::CatchesUnknownStep { handler, step } => write!(
                f,
                "error handler `{handler}` names step `{step}`, which the workflow does not have"
            ),
            Self::CatchesHandler { handler, step } => write!(
                f,
                "error handler `{handler}` names `{step}`, another error handler; a handler's failure fails the run"
            ),
            Self::SeveralCatchAll { handlers } => write!(
                f,
                "{} error handlers catch every step ({}); keep one, and name the steps of the others with for_steps",
                handlers.len(),
                handlers.join(", ")
            ),
            Self::CaughtTwice { step, handlers } => write!(
                f,
                "step `{step}` is named by {} error handlers ({}); name it in one",
                handlers.len(),
                handlers.join(", ")
            ),
            Self::UnknownGraphCheck { step, name } => {
                write!(f, "unknown graph check `{name}`")?;
                if let Some(step) = step {
                    write!(f, " skipped by step `{step}`")?;
                }
                write!(f, "; the checks are {CHECK_NAMES}")
            }
        }
    }
}

fn list_steps(steps: &[String]) -> String {
    let quoted: Vec<String> = steps.iter().map(|s| format!("`{s}`")).collect();
    match quoted.len() {
        1 => format!("step {}", quoted[0]),
        _ => format!("steps {}", quoted.join(", ")),
    }
}

/// Everything wrong with a workflow, found when it was built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationErrors {
    workflow: String,
    problems: Vec<ValidationProblem>,
}

impl ValidationErrors {
    pub(crate) fn new(workflow: String, problems: Vec<ValidationProblem>) -> Self {
        ValidationErrors { workflow, problems }
    }

    /// The problems, in the order the checks found them.
    pub fn problems(&self) -> &[ValidationProblem] {
        &self.problems
    }

    /// The name of the workflow.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "workflow `{}` is invalid ({count} problem{}):",
            self.workflow,
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}
