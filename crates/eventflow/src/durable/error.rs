//! What can go wrong with a durable engine's operations.

use std::time::Duration;

use crate::error::WorkflowError;
use crate::store::StoreError;

/// A durable-engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No workflow of this name is registered with the engine.
    #[error("no workflow named `{name}` is served here")]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
    },
    /// No run has this id.
    #[error("no run with id `{run_id}`")]
    UnknownRun {
        /// The id asked for.
        run_id: String,
    },
    /// A run id given by a caller is not one eventflow stores (see
    /// [`check_run_id`](super::check_run_id)).
    #[error("invalid run id: {reason}")]
    InvalidRunId {
        /// What is wrong with it (the id itself is not repeated: it may be huge or hostile).
        reason: String,
    },
    /// An idempotency key given by a caller is not one eventflow stores (see
    /// [`check_idempotency_key`](super::check_idempotency_key)).
    #[error("invalid idempotency key: {reason}")]
    InvalidIdempotencyKey {
        /// What is wrong with it (the key itself is not repeated).
        reason: String,
    },
    /// The start event is not the workflow's.
    #[error(transparent)]
    Start(WorkflowError),
    /// An event sent to a run is of a type its workflow does not know.
    #[error("workflow `{workflow}` has no event type `{name}` (it knows: {})", known.join(", "))]
    UnknownEventType {
        /// The run.
        run_id: String,
        /// The run's workflow.
        workflow: String,
        /// The type asked for.
        name: String,
        /// The types the workflow knows.
        known: Vec<&'static str>,
    },
    /// An event sent to a run does not decode as its type, or a step does not accept it.
    #[error("invalid event for run `{run_id}`: {reason}")]
    InvalidEvent {
        /// The run.
        run_id: String,
        /// What is wrong with the event.
        reason: String,
    },
    /// A run id given to continue belongs to a run of another workflow.
    #[error("run `{run_id}` is a run of workflow `{workflow}`")]
    OtherWorkflow {
        /// The run.
        run_id: String,
        /// Its workflow.
        workflow: String,
    },
    /// The run did not finish within the time given to [`Engine::wait`](super::Engine::wait).
    #[error("run `{run_id}` did not finish within {waited:?}")]
    WaitTimedOut {
        /// The run.
        run_id: String,
        /// How long was waited.
        waited: Duration,
    },
}
