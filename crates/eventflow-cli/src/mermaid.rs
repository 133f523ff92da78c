//! A workflow graph, as the server describes it (`GET /workflows/{name}/representation`), drawn
//! as a Mermaid flowchart in the style of `eventflow::graph::WorkflowGraph::to_mermaid`.

use std::collections::HashMap;
use std::fmt::Write;

use eventflow::graph::{mermaid_label as label, safe_id};
use eventflow_client::{GraphNode, WorkflowGraph};

/// How many workers a step has unless it says otherwise; not worth printing.
const DEFAULT_NUM_WORKERS: u64 = 4;

/// A Mermaid-safe node id for the node `id` of kind `node_type`.
fn slug(node_type: &str, id: &str) -> String {
    let prefix = match node_type {
        "step" => "step_",
        "event" => "event_",
        _ => "node_",
    };
    safe_id(prefix, id)
}

/// The CSS class of an event node, by its role (`start`, `stop`, ...).
fn event_class(node: &GraphNode) -> &'static str {
    match node.role.as_deref() {
        Some("start") => "start",
        Some("stop" | "terminal") => "stop",
        Some("external" | "outbound") => "outside",
        _ => "event",
    }
}

/// The graph as a Mermaid flowchart: steps as rounded boxes, events as parallelograms (start
/// and stop events highlighted), the outside world (`external_step`) as a hexagon.
pub fn to_mermaid(graph: &WorkflowGraph) -> String {
    let mut out = String::from("flowchart TD\n");
    let mut ids: HashMap<&str, String> = HashMap::new();
    for node in &graph.nodes {
        let id = slug(&node.node_type, &node.id);
        let text = if node.label.is_empty() {
            &node.id
        } else {
            &node.label
        };
        let _ = match node.node_type.as_str() {
            "step" => {
                let text = match node.num_workers {
                    Some(workers) if workers != DEFAULT_NUM_WORKERS => {
                        format!("{text} ×{workers}")
                    }
                    _ => text.clone(),
                };
                writeln!(out, "    {id}(\"{}\"):::step", label(&text))
            }
            "event" => writeln!(
                out,
                "    {id}[/\"{}\"/]:::{}",
                label(text),
                event_class(node)
            ),
            _ => writeln!(out, "    {id}{{{{\"{}\"}}}}:::outside", label(text)),
        };
        ids.insert(node.id.as_str(), id);
    }
    for edge in &graph.edges {
        let id_of = |node: &str| ids.get(node).cloned().unwrap_or_else(|| slug("node", node));
        let (from, to) = (id_of(&edge.source), id_of(&edge.target));
        let _ = match edge.label.as_deref().filter(|l| !l.is_empty()) {
            Some(text) => writeln!(out, "    {from} -->|\"{}\"| {to}", label(text)),
            None => writeln!(out, "    {from} --> {to}"),
        };
    }
    out.push_str("    classDef step fill:#e8f0fe,stroke:#1a73e8;\n");
    out.push_str("    classDef event fill:#fef7e0,stroke:#f9ab00;\n");
    out.push_str("    classDef start fill:#e6f4ea,stroke:#188038;\n");
    out.push_str("    classDef stop fill:#fce8e6,stroke:#d93025;\n");
    out.push_str("    classDef outside fill:#f3e8fd,stroke:#8430ce;\n");
    out
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
        let mermaid = to_mermaid(&graph);
        assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
        for line in [
            "    step_ask(\"ask\"):::step",
            "    step_answer(\"answer ×1\"):::step",
            "    event_StartEvent[/\"StartEvent\"/]:::start",
            "    event_StopEvent[/\"StopEvent\"/]:::stop",
            "    event_HumanResponseEvent[/\"HumanResponseEvent\"/]:::outside",
            "    node_external_5f_step{{\"external_step\"}}:::outside",
            "    event_StartEvent --> step_ask",
            "    event_InputRequiredEvent --> node_external_5f_step",
            "    event_HumanResponseEvent -->|\"a #quot;label#quot;\"| step_answer",
        ] {
            assert!(mermaid.lines().any(|l| l == line), "{line} in\n{mermaid}");
        }
    }
}
