//! The one error type of a run, and the small errors of the calls steps make.

use std::time::Duration;

use crate::event::AnyEvent;
use crate::step::StepError;
use crate::workflow::ValidationErrors;

/// Why a workflow could not be built, or why a run did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The workflow's graph is invalid; every problem is listed.
    #[error(transparent)]
    Validation(ValidationErrors),
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
    /// A snapshot could not be taken or resumed.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
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
}

fn list_or_none(steps: &[String]) -> String {
    if steps.is_empty() {
        "none".to_owned()
    } else {
        steps.join(", ")
    }
}

/// An event could not be sent into a run; the event is handed back.
#[derive(Debug, thiserror::Error)]
pub enum SendEventError {
    /// No step has the name given.
    #[error("cannot send {}: the workflow has no step named `{step}`", event.name())]
    UnknownStep {
        /// The name given.
        step: String,
        /// The event.
        event: AnyEvent,
    },
    /// The step named does not accept this event type.
    #[error("cannot send {} to step `{step}`: it does not accept that event", event.name())]
    NotAccepted {
        /// The step.
        step: String,
        /// The event.
        event: AnyEvent,
    },
    /// No step accepts this event type, and it is not an event from outside.
    #[error("cannot send {}: no step accepts it", event.name())]
    NoConsumer {
        /// The event.
        event: AnyEvent,
    },
    /// The run has already finished.
    #[error("cannot send {}: the run has finished", event.name())]
    RunFinished {
        /// The event.
        event: AnyEvent,
    },
}

impl SendEventError {
    /// The event that was not sent.
    pub fn into_event(self) -> AnyEvent {
        match self {
            Self::UnknownStep { event, .. }
            | Self::NotAccepted { event, .. }
            | Self::NoConsumer { event }
            | Self::RunFinished { event } => event,
        }
    }
}
