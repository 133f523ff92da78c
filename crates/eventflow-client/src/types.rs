//! What the client adds to the wire types of `eventflow_api`: filters and options of its
//! calls, and what `run_nowait` returns.

use eventflow_api::{EventEnvelope, Handler, RunStatus};
use serde_json::Value;

/// A run started by [`Client::run_nowait`](crate::Client::run_nowait).
#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    /// The run's handler id.
    pub handler_id: String,
    /// The sequence the run's events come after: stream from it to see every event of this run
    /// (`0` for a new handler; for a handler started again, its previous run's last event).
    pub after_sequence: u64,
    /// The run as recorded.
    pub handler: Handler,
}

/// Which handlers [`Client::handlers`](crate::Client::handlers) lists: runs with any of the
/// statuses and any of the workflows (no status, or no workflow: all of them).
///
/// ```
/// use eventflow_client::{HandlerFilter, RunStatus};
///
/// let filter = HandlerFilter::new()
///     .status(RunStatus::Running)
///     .status(RunStatus::Failed)
///     .workflow("greet");
/// assert_eq!(filter.statuses.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandlerFilter {
    /// The statuses to list (`running` matches running, waiting and parked runs).
    pub statuses: Vec<RunStatus>,
    /// The workflows to list.
    pub workflows: Vec<String>,
}

impl HandlerFilter {
    /// Every handler.
    pub fn new() -> Self {
        HandlerFilter::default()
    }

    /// Also lists runs with `status` (a [`RunStatus`] or a [`HandlerStatus`](crate::HandlerStatus)).
    pub fn status(mut self, status: impl Into<RunStatus>) -> Self {
        self.statuses.push(status.into());
        self
    }

    /// Also lists runs of the workflow `name`.
    pub fn workflow(mut self, name: impl Into<String>) -> Self {
        self.workflows.push(name.into());
        self
    }

    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let statuses = self
            .statuses
            .iter()
            .map(|status| ("status", status.as_str().to_owned()));
        let workflows = self
            .workflows
            .iter()
            .map(|name| ("workflow_name", name.clone()));
        statuses.chain(workflows).collect()
    }
}

/// Options of [`Client::run_with`](crate::Client::run_with) and
/// [`Client::run_nowait_with`](crate::Client::run_nowait_with).
///
/// ```
/// use std::time::Duration;
/// use eventflow_client::RunOptions;
///
/// let options = RunOptions::new()
///     .handler_id("order-1234")
///     .idempotency_key("order-1234")
///     .timeout(Duration::from_secs(300));
/// assert_eq!(options.handler_id.as_deref(), Some("order-1234"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// The handler id (run id) to use. A new id starts a run under it; the id of a finished
    /// handler starts that handler again from the state its last run left; the id of a handler
    /// that has not finished is a [`ClientError::Conflict`](crate::ClientError::Conflict).
    pub handler_id: Option<String>,
    /// An `Idempotency-Key`: a repeated start with the same key returns the first run.
    pub idempotency_key: Option<String>,
    /// How long the request may take. For `run`, which answers when the run has finished, the
    /// default is no limit; for `run_nowait`, the client's request timeout.
    pub timeout: Option<std::time::Duration>,
}

impl RunOptions {
    /// No options.
    pub fn new() -> Self {
        RunOptions::default()
    }

    /// Sets the run id.
    pub fn handler_id(mut self, id: impl Into<String>) -> Self {
        self.handler_id = Some(id.into());
        self
    }

    /// Sets the idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the request's timeout.
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// An event to send to a run, with its options, for
/// [`Client::send_event_with`](crate::Client::send_event_with).
///
/// ```
/// use eventflow_client::SendEvent;
/// use serde_json::json;
///
/// let event = SendEvent::new("HumanResponseEvent", json!({"response": "yes"}))
///     .step("answer")
///     .idempotency_key("approval-42");
/// assert_eq!(event.event.event_type, "HumanResponseEvent");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SendEvent {
    /// The event.
    pub event: EventEnvelope,
    /// The step to deliver it to (it must accept the event); `None`: whoever accepts it.
    pub step: Option<String>,
    /// An `Idempotency-Key`: the same key sent twice is delivered once.
    pub idempotency_key: Option<String>,
}

impl SendEvent {
    /// The event of type `event_type` with the fields `value`.
    pub fn new(event_type: impl Into<String>, value: Value) -> Self {
        SendEvent {
            event: EventEnvelope::new(event_type, value),
            step: None,
            idempotency_key: None,
        }
    }

    /// Delivers the event to `step`.
    pub fn step(mut self, step: impl Into<String>) -> Self {
        self.step = Some(step.into());
        self
    }

    /// Sets the idempotency key (the message id: delivered once however often it is sent).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

impl From<EventEnvelope> for SendEvent {
    fn from(event: EventEnvelope) -> Self {
        SendEvent {
            event,
            step: None,
            idempotency_key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventflow_api::HandlerStatus;

    #[test]
    fn filters_become_repeated_query_keys() {
        let filter = HandlerFilter::new()
            .status(HandlerStatus::Running)
            .status(RunStatus::Waiting)
            .workflow("greet");
        assert_eq!(
            filter.query(),
            vec![
                ("status", "running".to_owned()),
                ("status", "waiting".to_owned()),
                ("workflow_name", "greet".to_owned())
            ]
        );
    }
}
