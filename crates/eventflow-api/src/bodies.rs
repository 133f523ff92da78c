//! Request bodies, and the answers of the routes other than the handler routes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::envelope::EventEnvelope;
use crate::graph::WorkflowGraph;
use crate::handler::Handler;
use crate::status::RunStatus;

/// An error answer: `{"detail": "<message>"}`, the body llama-agents-server uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, naming the workflow, run, event type, field or step at fault.
    pub detail: String,
    /// `POST /workflows/{name}/run` interrupted by a server shutdown: the run, which goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler_id: Option<String>,
}

/// The answer of `GET /health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `healthy`, or `unhealthy` (with status 503).
    pub status: String,
}

impl Health {
    /// Whether the server said `healthy`.
    pub fn is_healthy(&self) -> bool {
        self.status == "healthy"
    }
}

/// The answer of `GET /workflows`: the served workflows' names, in registration order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowList {
    /// The names.
    pub workflows: Vec<String>,
}

/// The JSON Schemas of a workflow's start and stop events (`GET /workflows/{name}/schema`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowSchema {
    /// The start event's schema.
    #[serde(default)]
    pub start: Value,
    /// The stop event's schema.
    #[serde(default)]
    pub stop: Value,
}

/// The answer of `GET /workflows/{name}/events`: one JSON Schema per event type a run of the
/// workflow knows, sorted by name; eventflow marks each with `"x-eventflow-event": <name>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowEvents {
    /// The schemas.
    pub events: Vec<Value>,
}

/// The answer of `GET /workflows/{name}/representation`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Representation {
    /// The workflow's graph.
    pub graph: WorkflowGraph,
}

/// The answer of `GET /handlers`: the handlers the query selects, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HandlerList {
    /// The handlers.
    pub handlers: Vec<Handler>,
}

/// The body of `POST /workflows/{name}/run` and `run-nowait` (every key optional).
///
/// This is the form clients write. Servers read it leniently, as the reference does: a
/// `start_event` may also be an [`EventEnvelope`] naming the start event type (or a string
/// holding JSON of either), and `_data` wrappers are unwrapped (see `API.md`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunRequest {
    /// The start event's fields (`null`: an empty start event).
    #[serde(default)]
    pub start_event: Value,
    /// `StartEvent` keyword arguments, used when `start_event` is absent (merged under it
    /// when both are given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kwargs: Option<Map<String, Value>>,
    /// The run id to use. A new id starts a run under it; the id of a finished run starts that
    /// run again with the context state it left; the id of a run that has not finished is a
    /// 409.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler_id: Option<String>,
    /// A serialized Context: must be empty or absent on eventflow (runs keep their state in the
    /// store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
}

/// The body of `POST /events/{handler_id}`: an event to queue for the run.
///
/// Servers also accept `event` as a string holding the envelope's JSON, an envelope naming its
/// type by `qualified_name` only, and the legacy `data` for `value` (see `API.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SendEventRequest {
    /// The event.
    pub event: EventEnvelope,
    /// The step to deliver it to (it must accept the event); absent: whoever accepts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// The answer of `POST /handlers/{handler_id}/cancel`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CancelOutcome {
    /// `cancelled`, or `deleted` with `purge=true`.
    pub status: String,
    /// eventflow: the run's status when the server answered (it waits a few seconds for the run
    /// to stop); absent after a purge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_status: Option<RunStatus>,
}

impl CancelOutcome {
    /// Whether the run was purged (deleted with its events).
    pub fn is_deleted(&self) -> bool {
        self.status == "deleted"
    }
}

/// The answer of `POST /events/{handler_id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SendOutcome {
    /// `sent`.
    pub status: String,
    /// eventflow: the idempotency key was seen before, so the event was not queued again.
    #[serde(default)]
    pub duplicate: bool,
}
