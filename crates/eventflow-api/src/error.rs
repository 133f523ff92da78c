//! What reading a payload's content can fail with.

use crate::status::HandlerStatus;

/// A payload does not hold what was asked of it: a run's result when the run did not complete,
/// or fields that do not decode as the type asked for.
///
/// `Display` and `Error` are written out here rather than derived because this crate keeps to
/// serde, serde_json and utoipa: clients depend on it and nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadError {
    /// The run did not complete, so it has no result.
    NotCompleted {
        /// The handler.
        handler_id: String,
        /// Its status.
        status: HandlerStatus,
        /// Why it failed or was cancelled, as the server said.
        error: Option<String>,
    },
    /// A value does not decode as the type asked for.
    Decode {
        /// What was decoded (`a `Progress` event`, `the result of handler 'h'`).
        what: String,
        /// serde's message.
        message: String,
    },
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayloadError::NotCompleted {
                handler_id,
                status,
                error,
            } => {
                write!(f, "handler '{handler_id}' {status}")?;
                match error {
                    Some(error) => write!(f, ": {error}"),
                    None => Ok(()),
                }
            }
            PayloadError::Decode { what, message } => write!(f, "cannot decode {what}: {message}"),
        }
    }
}

impl std::error::Error for PayloadError {}
