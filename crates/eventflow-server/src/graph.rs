//! A workflow's graph in the shape of Python's `workflows.representation.WorkflowGraph`.

use std::collections::HashSet;

use eventflow::graph::NodeId;
use eventflow::{EventRole, Workflow};
use eventflow_api::{GraphEdge, GraphNode, WorkflowGraph};
use serde_json::Value;

use crate::schema::EventSchemas;

/// The id of the node standing for the outside world (a human, another system).
const EXTERNAL: &str = "external_step";

/// A node with only the fields every kind has.
fn node(id: String, label: &str, node_type: &str) -> GraphNode {
    GraphNode {
        id,
        label: label.to_owned(),
        node_type: node_type.to_owned(),
        description: None,
        event_type: None,
        event_types: None,
        event_schema: None,
        produced_by: None,
        role: None,
        num_workers: None,
        extra: Default::default(),
    }
}

fn edge(source: String, target: String) -> GraphEdge {
    GraphEdge {
        source,
        target,
        label: None,
    }
}

/// The graph of `workflow`: the engine's graph, its outside world (see
/// `eventflow::graph::NodeId::Outside`) drawn as the reference's `external_step` node.
pub(crate) fn representation(workflow: &Workflow, schemas: &EventSchemas) -> WorkflowGraph {
    let graph = workflow.graph();
    let event_names: HashSet<&str> = graph
        .nodes
        .iter()
        .filter_map(|node| match &node.id {
            NodeId::Event(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    // Python uses bare names as ids; a step named like an event gets a prefix.
    let id = |node: &NodeId| match node {
        NodeId::Step(name) if event_names.contains(name.as_str()) => format!("step:{name}"),
        NodeId::Outside => EXTERNAL.to_owned(),
        other => other.name().to_owned(),
    };
    let nodes = graph
        .nodes
        .iter()
        .map(|node| match &node.id {
            NodeId::Step(name) => GraphNode {
                num_workers: node.num_workers.map(|workers| workers as u64),
                ..self::node(id(&node.id), name, "step")
            },
            NodeId::Event(name) => {
                let produced_by: Vec<String> = graph
                    .edges
                    .iter()
                    .filter(|edge| edge.to == node.id && edge.from != NodeId::Outside)
                    .map(|edge| edge.from.name().to_owned())
                    .collect();
                let schema = workflow.event_type(name).and_then(|ty| schemas.known(&ty));
                GraphNode {
                    event_type: Some(name.clone()),
                    event_types: Some(vec![name.clone()]),
                    // Present on every event node, `null` when unknown.
                    event_schema: Some(schema.unwrap_or(Value::Null)),
                    produced_by: Some(produced_by),
                    role: node.role.and_then(role_name),
                    ..self::node(name.clone(), name, "event")
                }
            }
            _ => self::node(id(&node.id), EXTERNAL, "external"),
        })
        .collect();
    let edges = graph
        .edges
        .iter()
        .map(|edge| self::edge(id(&edge.from), id(&edge.to)))
        .collect();
    WorkflowGraph {
        name: graph.name,
        description: None,
        nodes,
        edges,
        extra: Default::default(),
    }
}

/// A role's name as the engine serializes it (`start`, `stop`, `outbound`, ...).
fn role_name(role: EventRole) -> Option<String> {
    match serde_json::to_value(role) {
        Ok(Value::String(name)) => Some(name),
        _ => None,
    }
}
