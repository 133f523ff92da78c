//! A workflow's graph in the shape of Python's `workflows.representation.WorkflowGraph`.

use std::collections::HashSet;

use eventflow::graph::NodeId;
use eventflow::{EventRole, Workflow};
use serde_json::{Value, json};

use crate::schema::EventSchemas;

/// The id of the node standing for the outside world (a human, another system).
const EXTERNAL: &str = "external_step";

/// `{"name", "nodes", "edges", "description"}` of `workflow`.
pub(crate) fn representation(workflow: &Workflow, schemas: &EventSchemas) -> Value {
    let graph = workflow.graph();
    let event_names: HashSet<&str> = graph
        .nodes
        .iter()
        .filter_map(|node| match &node.id {
            NodeId::Event(name) => Some(name.as_str()),
            NodeId::Step(_) => None,
        })
        .collect();
    // Python uses bare names as ids; a step named like an event gets a prefix.
    let id = |node: &NodeId| match node {
        NodeId::Step(name) if event_names.contains(name.as_str()) => format!("step:{name}"),
        other => other.name().to_owned(),
    };
    let role_of = |name: &str| {
        graph.nodes.iter().find_map(|node| match &node.id {
            NodeId::Event(event) if event == name => node.role,
            _ => None,
        })
    };
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let mut external = false;
    for node in &graph.nodes {
        match &node.id {
            NodeId::Step(name) => nodes.push(json!({
                "id": id(&node.id),
                "label": name,
                "node_type": "step",
                "description": Value::Null,
                "num_workers": node.num_workers,
            })),
            NodeId::Event(name) => {
                let produced_by: Vec<&str> = graph
                    .edges
                    .iter()
                    .filter(|edge| edge.to == node.id)
                    .map(|edge| edge.from.name())
                    .collect();
                if node.role == Some(EventRole::Outbound) && !produced_by.is_empty() {
                    external = true;
                }
                nodes.push(json!({
                    "id": name,
                    "label": name,
                    "node_type": "event",
                    "event_type": name,
                    "event_types": [name],
                    "event_schema": workflow
                        .event_type(name)
                        .and_then(|ty| schemas.known(&ty)),
                    "produced_by": produced_by,
                    "role": node.role,
                }));
            }
        }
    }
    if external {
        nodes.push(json!({"id": EXTERNAL, "label": EXTERNAL, "node_type": "external"}));
    }
    let mut outside: HashSet<(String, String)> = HashSet::new();
    for edge in &graph.edges {
        edges.push(json!({"source": id(&edge.from), "target": id(&edge.to), "label": Value::Null}));
        if !external {
            continue;
        }
        let extra = match (&edge.from, &edge.to) {
            (NodeId::Step(_), NodeId::Event(event))
                if role_of(event) == Some(EventRole::Outbound) =>
            {
                Some((event.clone(), EXTERNAL.to_owned()))
            }
            (NodeId::Event(event), NodeId::Step(_))
                if role_of(event) == Some(EventRole::External) =>
            {
                Some((EXTERNAL.to_owned(), event.clone()))
            }
            _ => None,
        };
        if let Some((source, target)) = extra
            && outside.insert((source.clone(), target.clone()))
        {
            edges.push(json!({"source": source, "target": target, "label": Value::Null}));
        }
    }
    json!({
        "name": graph.name,
        "nodes": nodes,
        "edges": edges,
        "description": Value::Null,
    })
}
