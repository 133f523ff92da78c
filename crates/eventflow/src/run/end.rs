//! How a run ended, decided once: what its handler, its event stream and its store each learn.

use std::sync::Arc;

use crate::error::WorkflowError;
use crate::event::{AnyEvent, RunCancelledEvent, RunFailedEvent, RunTimedOutEvent};
use crate::graph::RunPath;
use crate::run::context::RunContext;
use crate::run::handler::RunOutput;
use crate::run::reducer::Outcome;
use crate::run::shared::RunShared;
use crate::store::RunStatus;

/// The end of a run.
pub(crate) struct RunEnd {
    /// `Completed`, `Failed` or `Cancelled`: what the store records.
    pub(crate) status: RunStatus,
    /// The last event of the run's stream: its stop event, or the event telling how it failed.
    pub(crate) terminal: AnyEvent,
    /// What the run's handler resolves to.
    pub(crate) result: Result<RunOutput, WorkflowError>,
}

impl RunEnd {
    /// The end the reducer decided on.
    pub(crate) fn new(outcome: Outcome, run: &Arc<RunShared>, path: RunPath) -> Self {
        match outcome {
            Outcome::Stopped(event) => RunEnd {
                status: RunStatus::Completed,
                terminal: event.clone(),
                result: Ok(RunOutput {
                    run_id: run.run_id.clone(),
                    event,
                    path,
                    context: RunContext::of_run(run.clone()),
                }),
            },
            Outcome::Failed {
                step,
                attempts,
                error,
                elapsed,
            } => RunEnd {
                status: RunStatus::Failed,
                terminal: AnyEvent::new(RunFailedEvent {
                    step: Some(step.clone()),
                    error: error.to_string(),
                    attempts: Some(attempts),
                    elapsed_ms: Some(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)),
                }),
                result: Err(WorkflowError::StepFailed {
                    step,
                    attempts,
                    source: error,
                }),
            },
            Outcome::TimedOut {
                timeout,
                active_steps,
            } => RunEnd {
                status: RunStatus::Failed,
                terminal: AnyEvent::new(RunTimedOutEvent {
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    active_steps: active_steps.clone(),
                }),
                result: Err(WorkflowError::Timeout {
                    timeout,
                    active_steps,
                }),
            },
            Outcome::Cancelled => RunEnd {
                status: RunStatus::Cancelled,
                terminal: AnyEvent::new(RunCancelledEvent {}),
                result: Err(WorkflowError::Cancelled),
            },
            Outcome::Stalled { reason } => RunEnd::failed(
                format!("run stalled: {reason}"),
                WorkflowError::Stalled { reason },
            ),
        }
    }

    /// A run that fails outside any step (a bad start, a stall): `message` is what its stream's
    /// last event says.
    pub(crate) fn failed(message: String, error: WorkflowError) -> Self {
        RunEnd {
            status: RunStatus::Failed,
            terminal: AnyEvent::new(RunFailedEvent {
                step: None,
                error: message,
                attempts: None,
                elapsed_ms: None,
            }),
            result: Err(error),
        }
    }

    /// Why the run did not complete, as the store records it.
    pub(crate) fn error(&self) -> Option<String> {
        match &self.result {
            Ok(_) => None,
            Err(WorkflowError::Cancelled) => Some("cancelled".into()),
            Err(error) => Some(error.to_string()),
        }
    }

    /// The stop event of a completed run.
    pub(crate) fn stop_event(&self) -> Option<&AnyEvent> {
        self.result.as_ref().ok().map(|output| &output.event)
    }
}
