//! The payloads of the API, as serde types. Every optional or eventflow-only field is
//! `#[serde(default)]` and unknown fields are kept in `extra`, so newer servers (and the
//! reference llama-agents-server) do not break the client.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ClientError;

/// The names of the events that end a run's stream: the stop event of a `StopEvent` workflow and
/// the terminal events of a failed, timed out or cancelled run.
pub const TERMINAL_EVENTS: [&str; 4] = [
    "StopEvent",
    "RunFailedEvent",
    "RunTimedOutEvent",
    "RunCancelledEvent",
];

/// A handler's status as llama-agents clients know it (`status` in `HandlerData`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlerStatus {
    /// Not finished (eventflow's `running`, `waiting` and `parked` runs).
    Running,
    /// Finished with a stop event.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled.
    Cancelled,
    /// A status this client does not know (a newer server).
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
/// [`HandlerStatus::Running`] into running, waiting and parked. Also what
/// [`HandlerFilter::status`] filters on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Running (or queued for a worker). As a filter: every run that has not finished.
    Running,
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
    /// A status this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl RunStatus {
    /// The status as the server writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
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

/// An event on the wire: `{type, value, qualified_name, types}`. What the server streams (then
/// [`seq`](Self::seq) is the event's sequence in the run), what a handler's `result` holds,
/// and what [`Client::send_event`](crate::Client::send_event) sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// The event's sequence in its run (from 1, without gaps) when it was read from an event
    /// stream; `0` otherwise (a handler's `result`, an event to send). Not part of the JSON.
    #[serde(skip)]
    pub seq: u64,
    /// The event type's stable name (`StopEvent`, `InputRequiredEvent`, `app.Progress`, ...).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's fields (a JSON object for every event with named fields).
    #[serde(default)]
    pub value: Value,
    /// The Python class path of the events eventflow shares with Python's `workflows.events`,
    /// `None` for the others.
    #[serde(default)]
    pub qualified_name: Option<String>,
    /// The Python parent classes (always `None` from eventflow).
    #[serde(default, skip_serializing)]
    pub types: Option<Vec<String>>,
}

impl EventEnvelope {
    /// An event of type `event_type` with the fields `value`, to send.
    pub fn new(event_type: impl Into<String>, value: Value) -> Self {
        EventEnvelope {
            seq: 0,
            event_type: event_type.into(),
            value,
            qualified_name: None,
            types: None,
        }
    }

    /// Whether the event is one that ends a run: a `StopEvent` or the terminal event of a
    /// failed, timed out or cancelled run ([`TERMINAL_EVENTS`]). A workflow with a custom stop
    /// event type ends with an event this does not recognize.
    pub fn is_terminal(&self) -> bool {
        TERMINAL_EVENTS.contains(&self.event_type.as_str())
    }

    /// Decodes the event's fields as a `T` (e.g. your own `#[derive(Deserialize)]` mirror of
    /// the event).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_value(self.value.clone()).map_err(|source| ClientError::Decode {
            what: format!("a `{}` event", self.event_type),
            message: source.to_string(),
        })
    }
}

/// A handler (= a run) as the server describes it (`HandlerData`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Handler {
    /// The handler id; eventflow's run id.
    pub handler_id: String,
    /// The workflow the run runs.
    pub workflow_name: String,
    /// The run id (equal to `handler_id` on eventflow).
    #[serde(default)]
    pub run_id: Option<String>,
    /// The status llama-agents clients know.
    pub status: HandlerStatus,
    /// The stop event, once the run completed.
    #[serde(default)]
    pub result: Option<EventEnvelope>,
    /// The reference server's flag for a result it could not serialize.
    #[serde(default)]
    pub result_unreadable: bool,
    /// Why the run failed or was cancelled.
    #[serde(default)]
    pub error: Option<String>,
    /// When the run started, ISO 8601 UTC (`2026-11-24T09:19:34.566000+00:00`).
    #[serde(default)]
    pub started_at: Option<String>,
    /// When the run last changed, ISO 8601 UTC.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// When the run finished, ISO 8601 UTC; `None` while it runs.
    #[serde(default)]
    pub completed_at: Option<String>,
    /// eventflow's exact status (`None` from servers that do not send it).
    #[serde(default)]
    pub eventflow_status: Option<RunStatus>,
    /// The sequence of the last event the handler published (`0`: none yet), across its runs;
    /// `None` from servers that do not send it.
    #[serde(default)]
    pub last_sequence: Option<u64>,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Handler {
    /// Whether the run has finished.
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }

    /// The run's result: the `result` field of a `StopEvent`, or the whole value of another
    /// stop event type; `None` until the run completed.
    pub fn result_value(&self) -> Option<&Value> {
        let stop = self.result.as_ref()?;
        if stop.event_type == "StopEvent" {
            stop.value.get("result").or(Some(&stop.value))
        } else {
            Some(&stop.value)
        }
    }

    /// The run's result ([`result_value`](Self::result_value)) if it completed, or
    /// [`ClientError::RunFailed`] naming its status and error.
    pub fn into_result(self) -> Result<Value, ClientError> {
        if self.status == HandlerStatus::Completed {
            return Ok(self.result_value().cloned().unwrap_or(Value::Null));
        }
        Err(ClientError::RunFailed {
            handler_id: self.handler_id,
            status: self.status,
            error: self.error,
        })
    }

    /// Decodes the run's result ([`result_value`](Self::result_value)) as a `T`; fails with
    /// [`ClientError::RunFailed`] when the run did not complete.
    pub fn decode_result<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        let handler_id = self.handler_id.clone();
        let value = self.into_result()?;
        serde_json::from_value(value).map_err(|source| ClientError::Decode {
            what: format!("the result of handler '{handler_id}'"),
            message: source.to_string(),
        })
    }
}

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

/// The answer of `GET /health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `healthy` or `unhealthy`.
    pub status: String,
}

impl Health {
    /// Whether the server said `healthy`.
    pub fn is_healthy(&self) -> bool {
        self.status == "healthy"
    }
}

/// The JSON Schemas of a workflow's start and stop events (`GET /workflows/{name}/schema`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSchema {
    /// The start event's schema.
    #[serde(default)]
    pub start: Value,
    /// The stop event's schema.
    #[serde(default)]
    pub stop: Value,
}

/// A workflow's graph (`GET /workflows/{name}/representation`), the model of Python's
/// `workflows.representation.WorkflowGraph`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowGraph {
    /// The workflow's name.
    #[serde(default)]
    pub name: String,
    /// A description, when the server has one.
    #[serde(default)]
    pub description: Option<String>,
    /// Steps, events and the outside world.
    #[serde(default)]
    pub nodes: Vec<GraphNode>,
    /// Who accepts and emits what.
    #[serde(default)]
    pub edges: Vec<GraphEdge>,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A node of a [`WorkflowGraph`]: a step, an event type, or `external_step` (the outside
/// world).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    /// The node's id (a step or event name; `step:<name>` for a step named like an event).
    pub id: String,
    /// What to display.
    #[serde(default)]
    pub label: String,
    /// `step`, `event` or `external`.
    #[serde(default)]
    pub node_type: String,
    /// A description, when the server has one.
    #[serde(default)]
    pub description: Option<String>,
    /// Event nodes: the event type's name.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Event nodes: the event types the node stands for.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Event nodes: the known JSON Schema of the event, if any.
    #[serde(default)]
    pub event_schema: Option<Value>,
    /// Event nodes: the steps that emit the event.
    #[serde(default)]
    pub produced_by: Option<Vec<String>>,
    /// Event nodes (eventflow): `start`, `stop`, `outbound`, `external`, ...
    #[serde(default)]
    pub role: Option<String>,
    /// Step nodes (eventflow): how many copies of the step may run at once.
    #[serde(default)]
    pub num_workers: Option<u64>,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An edge of a [`WorkflowGraph`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphEdge {
    /// The source node's id.
    pub source: String,
    /// The target node's id.
    pub target: String,
    /// A label, when the server has one.
    #[serde(default)]
    pub label: Option<String>,
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

    /// Also lists runs with `status` (a [`RunStatus`] or a [`HandlerStatus`]).
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

/// What [`Client::cancel`](crate::Client::cancel) did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOutcome {
    /// `cancelled`, or `deleted` with `purge`.
    pub status: String,
    /// eventflow: the run's status when the server answered (the server waits a few seconds
    /// for the run to stop).
    #[serde(default)]
    pub run_status: Option<RunStatus>,
}

impl CancelOutcome {
    /// Whether the run was purged (deleted with its events).
    pub fn is_deleted(&self) -> bool {
        self.status == "deleted"
    }
}

/// What [`Client::send_event`](crate::Client::send_event) did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendOutcome {
    /// `sent`.
    pub status: String,
    /// eventflow: the idempotency key was seen before, so the event was not queued again.
    #[serde(default)]
    pub duplicate: bool,
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
    /// that has not finished is a [`ClientError::Conflict`].
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
    use serde_json::json;

    #[test]
    fn handler_data_decodes_with_unknown_and_missing_fields() {
        let handler: Handler = serde_json::from_value(json!({
            "handler_id": "h", "workflow_name": "greet", "run_id": "h", "error": null,
            "result": {"value": {"result": "Hi"}, "qualified_name": "workflows.events.StopEvent",
                       "type": "StopEvent", "types": null},
            "result_unreadable": false, "status": "completed",
            "started_at": "2026-11-24T09:19:34.566000+00:00",
            "updated_at": "2026-11-24T09:19:34.569000+00:00",
            "completed_at": "2026-11-24T09:19:34.569000+00:00",
            "eventflow_status": "completed", "last_sequence": 2, "brand_new": [1]
        }))
        .unwrap();
        assert_eq!(handler.status, HandlerStatus::Completed);
        assert_eq!(handler.result_value(), Some(&json!("Hi")));
        assert_eq!(handler.extra["brand_new"], json!([1]));
        assert_eq!(handler.clone().into_result().unwrap(), json!("Hi"));

        // The reference server's minimum, and a status from the future.
        let handler: Handler = serde_json::from_value(json!({
            "handler_id": "h", "workflow_name": "w", "status": "sleeping"
        }))
        .unwrap();
        assert_eq!(handler.status, HandlerStatus::Unknown);
        assert_eq!(handler.last_sequence, None);
        assert!(matches!(
            handler.into_result(),
            Err(ClientError::RunFailed { .. })
        ));
    }

    #[test]
    fn envelopes_serialize_without_sequence_or_types() {
        let event = EventEnvelope::new("HumanResponseEvent", json!({"response": "Bob"}));
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"type": "HumanResponseEvent", "value": {"response": "Bob"},
                   "qualified_name": null})
        );
    }

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
