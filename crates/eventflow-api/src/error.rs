//! What reading a payload's content can fail with.

use crate::status::HandlerStatus;

/// A payload does not hold what was asked of it: a run's result when the run did not complete,
/// or fields that do not decode as the type asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The run did not complete, so it has no result.
    #[error("handler '{handler_id}' {status}{}", error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    NotCompleted {
        /// The handler.
        handler_id: String,
        /// Its status.
        status: HandlerStatus,
        /// Why it failed or was cancelled, as the server said.
        error: Option<String>,
    },
    /// A value does not decode as the type asked for.
    #[error("cannot decode {what}: {message}")]
    Decode {
        /// What was decoded (`a `Progress` event`, `the result of handler 'h'`).
        what: String,
        /// serde's message.
        message: String,
    },
}
