//! The statuses of a handler (run).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A handler's status as llama-agents clients know it (`status` in `HandlerData`: the
/// reference's `Status` literal).
///
/// Non-exhaustive: the reference may add statuses; a reader that meets one it does not know
/// gets [`HandlerStatus::Unknown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HandlerStatus {
    /// Not finished (eventflow's `running`, `waiting` and `parked` runs).
    Running,
    /// Finished with a stop event.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled.
    Cancelled,
    /// A status this reader does not know (a newer server); written back as `unknown`.
    /// Servers never send it (and `GET /handlers` refuses it as a filter).
    #[serde(other)]
    Unknown,
}

impl HandlerStatus {
    /// The status as the server writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerStatus::Running => "running",
            HandlerStatus::Completed => "completed",
            HandlerStatus::Failed => "failed",
            HandlerStatus::Cancelled => "cancelled",
            HandlerStatus::Unknown => "unknown",
        }
    }

    /// Whether the run has finished (completed, failed or cancelled).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            HandlerStatus::Completed | HandlerStatus::Failed | HandlerStatus::Cancelled
        )
    }
}

impl std::fmt::Display for HandlerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// eventflow's exact run status (`eventflow_status` in `HandlerData`), which splits
/// [`HandlerStatus::Running`] into running, queued, waiting and parked. Also what `GET /handlers`
/// filters on (`status=`).
///
/// Non-exhaustive: the engine may grow statuses; a reader that meets one it does not know gets
/// [`RunStatus::Unknown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RunStatus {
    /// Running. As a filter: every run that has not finished (queued ones included).
    Running,
    /// Not finished, and held by no worker: waiting for a worker to take it — a run of a
    /// workflow at its bound of concurrent runs (`num_concurrent_runs`), a run handed back by
    /// a worker that shut down, or one recorded for other nodes to run.
    Queued,
    /// Released while waiting for an outside event (human in the loop).
    Waiting,
    /// Crashed its workers too often; waits for an operator.
    Parked,
    /// Finished with a stop event.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled.
    Cancelled,
    /// A status this reader does not know (a newer server); written back as `unknown`.
    /// Servers never send it (and `GET /handlers` refuses it as a filter).
    #[serde(other)]
    Unknown,
}

impl RunStatus {
    /// The status as the server writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Queued => "queued",
            RunStatus::Waiting => "waiting",
            RunStatus::Parked => "parked",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Unknown => "unknown",
        }
    }

    /// Whether the run has finished (completed, failed or cancelled).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// The status llama-agents clients know: `waiting` and `parked` runs are `running`.
    pub fn public(self) -> HandlerStatus {
        match self {
            RunStatus::Running | RunStatus::Queued | RunStatus::Waiting | RunStatus::Parked => {
                HandlerStatus::Running
            }
            RunStatus::Completed => HandlerStatus::Completed,
            RunStatus::Failed => HandlerStatus::Failed,
            RunStatus::Cancelled => HandlerStatus::Cancelled,
            RunStatus::Unknown => HandlerStatus::Unknown,
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<HandlerStatus> for RunStatus {
    fn from(status: HandlerStatus) -> Self {
        match status {
            HandlerStatus::Running => RunStatus::Running,
            HandlerStatus::Completed => RunStatus::Completed,
            HandlerStatus::Failed => RunStatus::Failed,
            HandlerStatus::Cancelled => RunStatus::Cancelled,
            HandlerStatus::Unknown => RunStatus::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_unknown_values_and_map_to_the_public_four() {
        let status: RunStatus = serde_json::from_str("\"sleeping\"").unwrap();
        assert_eq!(status, RunStatus::Unknown);
        let status: RunStatus = serde_json::from_str("\"parked\"").unwrap();
        assert_eq!(status.public(), HandlerStatus::Running);
        assert_eq!(
            serde_json::to_string(&RunStatus::Waiting).unwrap(),
            "\"waiting\""
        );
        assert_eq!(
            RunStatus::from(HandlerStatus::Cancelled),
            RunStatus::Cancelled
        );
        assert!(HandlerStatus::Failed.is_terminal() && !HandlerStatus::Running.is_terminal());
        // Whatever a reader did not know, it writes back as `unknown`, and reads again so.
        let status: HandlerStatus = serde_json::from_str("\"sleeping\"").unwrap();
        assert_eq!(serde_json::to_string(&status).unwrap(), "\"unknown\"");
        let status: HandlerStatus = serde_json::from_str("\"unknown\"").unwrap();
        assert_eq!(status, HandlerStatus::Unknown);
    }
}
