//! A workflow graph, as the server describes it (`GET /workflows/{name}/representation`), as
//! the engine's [`Flowchart`], so that `eventflow draw` draws with the engine's Mermaid renderer.

use std::collections::HashMap;

use eventflow::EventRole;
use eventflow::graph::{FlowEdge, FlowEdgeLabel, FlowNode, FlowNodeKind, Flowchart, safe_id};
use eventflow_client::{GraphNode, WorkflowGraph};

/// A drawing-safe id for the node `id` of kind `node_type`. The wire ids are unique across
/// kinds, but the prefix keeps the drawing's ids those of the engine's own drawing.
fn slug(node_type: &str, id: &str) -> String {
    let prefix = match node_type {
        "step" => "step_",
        "event" => "event_",
        _ => "node_",
    };
    safe_id(prefix, id)
}

/// What the node stands for. An event's role is eventflow's extension of the wire format:
/// another server's events have none, and are drawn as plain events.
fn kind(node: &GraphNode) -> FlowNodeKind {
    match node.node_type.as_str() {
        "step" => FlowNodeKind::Step {
            num_workers: node.num_workers.and_then(|n| usize::try_from(n).ok()),
        },
        "event" => FlowNodeKind::Event(
            node.role
                .as_deref()
                .and_then(|role| serde_json::from_value(role.into()).ok())
                .unwrap_or(EventRole::Plain),
        ),
        _ => FlowNodeKind::Outside,
    }
}

/// The graph as a flowchart: its nodes in order (labelled by their label, else their id), and
/// its edges with their labels.
pub(crate) fn flowchart(graph: &WorkflowGraph) -> Flowchart {
    let mut ids: HashMap<&str, String> = HashMap::new();
    let mut nodes = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let id = slug(&node.node_type, &node.id);
        ids.insert(node.id.as_str(), id.clone());
        let label = if node.label.is_empty() {
            &node.id
        } else {
            &node.label
        };
        nodes.push(FlowNode {
            id,
            label: label.clone(),
            kind: kind(node),
        });
    }
    // An edge may name a node the graph does not list: Mermaid draws it as a plain box.
    let id_of = |node: &str| ids.get(node).cloned().unwrap_or_else(|| slug("node", node));
    let edges = graph
        .edges
        .iter()
        .map(|edge| FlowEdge {
            from: id_of(&edge.source),
            to: id_of(&edge.target),
            label: match edge.label.as_deref().filter(|l| !l.is_empty()) {
                Some(text) => FlowEdgeLabel::Text(text.to_owned()),
                None => FlowEdgeLabel::None,
            },
        })
        .collect();
    Flowchart { nodes, edges }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_server_graph_becomes_a_flowchart() {
        let graph: WorkflowGraph = serde_json::from_value(json!({
            "name": "approve", "description": null,
            "nodes": [
                {"id": "ask", "label": "ask", "node_type": "step", "num_workers": 4},
                {"id": "answer", "label": "answer", "node_type": "step", "num_workers": 1},
                {"id": "StartEvent", "label": "StartEvent", "node_type": "event", "role": "start"},
                {"id": "InputRequiredEvent", "label": "InputRequiredEvent", "node_type": "event",
                 "role": "outbound"},
                {"id": "HumanResponseEvent", "label": "HumanResponseEvent", "node_type": "event",
                 "role": "external"},
                {"id": "StopEvent", "label": "StopEvent", "node_type": "event", "role": "stop"},
                {"id": "Note", "node_type": "event"},
                {"id": "external_step", "label": "external_step", "node_type": "external"}
            ],
            "edges": [
                {"source": "StartEvent", "target": "ask", "label": null},
                {"source": "ask", "target": "InputRequiredEvent", "label": null},
                {"source": "InputRequiredEvent", "target": "external_step", "label": null},
                {"source": "external_step", "target": "HumanResponseEvent", "label": null},
                {"source": "HumanResponseEvent", "target": "answer", "label": "a \"label\""},
                {"source": "answer", "target": "StopEvent", "label": null}
            ]
        }))
        .unwrap();
        let mermaid = flowchart(&graph).to_mermaid();
        assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
        for line in [
            "    step_ask(\"ask\"):::step",
            "    step_answer(\"answer ×1\"):::step",
            "    event_StartEvent[/\"StartEvent\"/]:::start",
            "    event_StopEvent[/\"StopEvent\"/]:::stop",
            "    event_HumanResponseEvent[/\"HumanResponseEvent\"/]:::outside",
            // Another server's event: no label (the id is shown) and no role (a plain event).
            "    event_Note[/\"Note\"/]:::event",
            "    node_external_5f_step{{\"external_step\"}}:::outside",
            "    event_StartEvent --> step_ask",
            "    event_InputRequiredEvent --> node_external_5f_step",
            "    event_HumanResponseEvent -->|\"a #quot;label#quot;\"| step_answer",
        ] {
            assert!(mermaid.lines().any(|l| l == line), "{line} in\n{mermaid}");
        }
    }
}
