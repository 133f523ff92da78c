//! The engine's internal events: what a run's machinery does, for tools that watch it (a
//! debugger highlighting running steps, a UI showing that a run waits for a human).
//!
//! They are published only while a run records internal events — from its start when the
//! workflow asks for them ([`Workflow::internal_events`](crate::Workflow::internal_events)), or
//! from the moment a reader calls
//! [`stream_events_internal`](crate::WorkflowHandler::stream_events_internal) — so a run nobody
//! watches pays nothing for them. Streams that do not ask for them never see them. Their names,
//! field names and values are the reference's (`workflows.events`), so its tools read them.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Event;

/// Where one invocation of a step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Queued: every worker of the step is busy.
    Preparing,
    /// Running now.
    Running,
    /// Ended, whether it returned events, nothing, or failed.
    NotRunning,
}

/// A step invocation was queued, started or ended.
#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(internal, schema = json!({
    "title": "StepStateChanged",
    "type": "object",
    "properties": {
        "name": { "type": "string" },
        "step_state": { "enum": ["preparing", "running", "not_running"] },
        "worker_id": { "type": "string" },
        "input_event_name": { "type": "string" },
        "output_event_name": { "type": ["string", "null"] }
    },
    "required": ["name", "step_state", "worker_id", "input_event_name"]
}))]
pub struct StepStateChanged {
    /// The step's name.
    pub name: String,
    /// Where the invocation is now.
    pub step_state: StepState,
    /// The invocation, unique within the run, so that concurrent invocations of one step can
    /// be told apart; empty while it is only queued.
    pub worker_id: String,
    /// The name of the event the invocation handles.
    pub input_event_name: String,
    /// When it ended: the name of the event it returned (several joined with `, `); `None` when
    /// it returned nothing or failed, and before it ended.
    #[serde(default)]
    pub output_event_name: Option<String>,
}

/// The run has nothing to do until an event comes from outside: nothing is queued or running
/// but steps waiting in `wait_for_event`, and no retry is pending. Published once each time the
/// run becomes idle; a `StepStateChanged` with `running` says it went on.
#[derive(Event, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[event(internal, schema = json!({
    "title": "WorkflowIdleEvent",
    "type": "object"
}))]
pub struct WorkflowIdleEvent {}

/// An event that no step and no waiter took when it arrived. eventflow keeps it for a waiter
/// that may ask for it later (the reference drops it).
#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(internal, schema = json!({
    "title": "UnhandledEvent",
    "type": "object",
    "properties": {
        "event_type": { "type": "string" },
        "qualified_name": { "type": "string" },
        "step_name": { "type": ["string", "null"] },
        "idle": { "type": "boolean" }
    },
    "required": ["event_type", "qualified_name", "idle"]
}))]
pub struct UnhandledEvent {
    /// The name of the event's type.
    pub event_type: String,
    /// Its fully qualified name: eventflow's event names are already unique in a workflow, so
    /// this is the name again.
    pub qualified_name: String,
    /// The step the event was addressed to, if it was.
    #[serde(default)]
    pub step_name: Option<String>,
    /// Whether the run is idle after it (see [`WorkflowIdleEvent`]).
    pub idle: bool,
}
