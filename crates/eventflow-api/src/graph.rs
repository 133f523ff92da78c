//! A workflow's graph: the model of Python's `workflows.representation.WorkflowGraph`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A workflow's graph (`GET /workflows/{name}/representation`), the model of Python's
/// `workflows.representation.WorkflowGraph`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
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
    /// Fields this reader does not know.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

/// A node of a [`WorkflowGraph`]: a step, an event type, or `external_step` (the outside
/// world). Python's model is a union of one class per `node_type`; here one struct holds the
/// fields of every kind, and a kind's fields are absent (`None`, not written) on the others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GraphNode {
    /// The node's id (a step or event name; `step:<name>` for a step named like an event).
    pub id: String,
    /// What to display.
    #[serde(default)]
    pub label: String,
    /// `step`, `event` or `external` (Python knows more: `resource`, `agent`, ...).
    #[serde(default)]
    pub node_type: String,
    /// A description, when the server has one (written as `null` otherwise).
    #[serde(default)]
    pub description: Option<String>,
    /// Event nodes: the event type's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Event nodes: the event types the node stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    /// Event nodes: the known JSON Schema of the event. A server writes `Some(Value::Null)`
    /// for an event node whose schema is unknown (the key is present, `null`); a reader gets
    /// `None` for both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_schema: Option<Value>,
    /// Event nodes: the steps that emit the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced_by: Option<Vec<String>>,
    /// Event nodes (eventflow): `start`, `stop`, `plain`, `outbound`, `external`, `terminal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Step nodes (eventflow): how many invocations of the step may run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_workers: Option<u64>,
    /// Fields this reader does not know.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

/// An edge of a [`WorkflowGraph`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GraphEdge {
    /// The source node's id.
    pub source: String,
    /// The target node's id.
    pub target: String,
    /// A label, when the server has one.
    #[serde(default)]
    pub label: Option<String>,
}
