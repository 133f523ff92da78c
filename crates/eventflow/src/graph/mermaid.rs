//! Flowcharts: what a drawing of a workflow shows, and the one place Mermaid text is written.
//!
//! [`WorkflowGraph::to_mermaid`] draws through a [`Flowchart`], and so does any renderer of a
//! graph that is not a [`WorkflowGraph`] (the `eventflow` command draws the graph a server
//! describes, which has a node for the outside world and labelled edges), so both draw the same
//! shapes, colours and escaping.

use std::fmt::Write;

use super::text::{slug, workers_label};
use super::{NodeId, WorkflowGraph};
use crate::event::EventRole;

/// A graph ready to draw: nodes with their shapes, and edges between their ids.
///
/// ```
/// use eventflow::EventRole;
/// use eventflow::graph::{FlowEdge, FlowEdgeLabel, FlowNode, FlowNodeKind, Flowchart, safe_id};
///
/// let ask = FlowNode {
///     id: safe_id("step_", "ask"),
///     label: "ask".to_owned(),
///     kind: FlowNodeKind::Step { num_workers: Some(1) },
/// };
/// let question = FlowNode {
///     id: safe_id("event_", "InputRequiredEvent"),
///     label: "InputRequiredEvent".to_owned(),
///     kind: FlowNodeKind::Event(EventRole::Outbound),
/// };
/// let edge = FlowEdge {
///     from: ask.id.clone(),
///     to: question.id.clone(),
///     label: FlowEdgeLabel::Text("asks".to_owned()),
/// };
/// let chart = Flowchart { nodes: vec![ask, question], edges: vec![edge] };
/// let mermaid = chart.to_mermaid();
/// assert!(mermaid.contains("    step_ask(\"ask ×1\"):::step\n"));
/// assert!(mermaid.contains("    step_ask -->|\"asks\"| event_InputRequiredEvent\n"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Flowchart {
    /// The nodes, drawn in this order.
    pub nodes: Vec<FlowNode>,
    /// The edges, drawn in this order.
    pub edges: Vec<FlowEdge>,
}

/// A node of a [`Flowchart`].
#[derive(Clone, Debug, PartialEq)]
pub struct FlowNode {
    /// The node's id in the drawing, which edges refer to: ASCII letters, digits and
    /// underscores only, as [`safe_id`](super::safe_id) makes them.
    pub id: String,
    /// What the node shows (any text: it is escaped when drawn).
    pub label: String,
    /// What the node stands for, which gives its shape and colour.
    pub kind: FlowNodeKind,
}

/// What a [`FlowNode`] stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowNodeKind {
    /// A step: a rounded box, its label followed by `×N` when it has a number of workers other
    /// than the default.
    Step {
        /// How many invocations of the step may run at once, if known.
        num_workers: Option<usize>,
    },
    /// An event type: a parallelogram, coloured by its role (start, stop, to or from the outside,
    /// plain).
    Event(EventRole),
    /// The outside world (a human, another system): a hexagon.
    Outside,
}

/// An edge of a [`Flowchart`], between two node ids.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowEdge {
    /// The id of the node it starts from.
    pub from: String,
    /// The id of the node it ends at.
    pub to: String,
    /// What it says.
    pub label: FlowEdgeLabel,
}

/// What a [`FlowEdge`] says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FlowEdgeLabel {
    /// Nothing: a plain arrow.
    #[default]
    None,
    /// How often a run took the edge: `N×` on the arrow, and a dotted arrow for 0.
    Count(u64),
    /// A text on the arrow (escaped when drawn).
    Text(String),
}

impl Flowchart {
    /// The flowchart in Mermaid, top-down: steps as rounded boxes, events as parallelograms
    /// (start and stop events highlighted), the outside world as a hexagon; edges carry their
    /// labels, and an edge a run never took is dotted.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        for node in &self.nodes {
            let id = &node.id;
            let _ = match node.kind {
                FlowNodeKind::Step { num_workers } => writeln!(
                    out,
                    "    {id}(\"{}\"):::step",
                    mermaid_label(&workers_label(&node.label, num_workers))
                ),
                FlowNodeKind::Event(role) => writeln!(
                    out,
                    "    {id}[/\"{}\"/]:::{}",
                    mermaid_label(&node.label),
                    role_class(role)
                ),
                FlowNodeKind::Outside => {
                    writeln!(
                        out,
                        "    {id}{{{{\"{}\"}}}}:::outside",
                        mermaid_label(&node.label)
                    )
                }
            };
        }
        for FlowEdge { from, to, label } in &self.edges {
            let _ = match label {
                FlowEdgeLabel::Count(0) => writeln!(out, "    {from} -.-> {to}"),
                FlowEdgeLabel::Count(count) => writeln!(out, "    {from} -->|{count}×| {to}"),
                FlowEdgeLabel::Text(text) => {
                    writeln!(out, "    {from} -->|\"{}\"| {to}", mermaid_label(text))
                }
                FlowEdgeLabel::None => writeln!(out, "    {from} --> {to}"),
            };
        }
        out.push_str("    classDef step fill:#e8f0fe,stroke:#1a73e8;\n");
        out.push_str("    classDef event fill:#fef7e0,stroke:#f9ab00;\n");
        out.push_str("    classDef start fill:#e6f4ea,stroke:#188038;\n");
        out.push_str("    classDef stop fill:#fce8e6,stroke:#d93025;\n");
        out.push_str("    classDef outside fill:#f3e8fd,stroke:#8430ce;\n");
        out
    }
}

impl WorkflowGraph {
    /// The graph as a [`Flowchart`]: a node per step and event type, an edge per accepted or
    /// emitted event type, labelled with how often a run took it when the graph carries a run's
    /// path ([`with_path`](WorkflowGraph::with_path)).
    pub fn flowchart(&self) -> Flowchart {
        let nodes = self
            .nodes
            .iter()
            .map(|node| FlowNode {
                id: slug(&node.id),
                label: node.id.name().to_owned(),
                kind: match (&node.id, node.role) {
                    (NodeId::Event(_), Some(role)) => FlowNodeKind::Event(role),
                    // An event node without a role is only possible in a hand-built graph.
                    (NodeId::Event(_), None) => FlowNodeKind::Event(EventRole::Plain),
                    (NodeId::Outside, _) => FlowNodeKind::Outside,
                    _ => FlowNodeKind::Step {
                        num_workers: node.num_workers,
                    },
                },
            })
            .collect();
        let edges = self
            .edges
            .iter()
            .map(|edge| FlowEdge {
                from: slug(&edge.from),
                to: slug(&edge.to),
                label: edge.count.map_or(FlowEdgeLabel::None, FlowEdgeLabel::Count),
            })
            .collect();
        Flowchart { nodes, edges }
    }

    /// The graph as a Mermaid flowchart: steps as rounded boxes, events as parallelograms
    /// (start and stop events highlighted); with a run's path, edges carry how often they fired
    /// and unused edges are dotted. The same as `self.flowchart().to_mermaid()`.
    pub fn to_mermaid(&self) -> String {
        self.flowchart().to_mermaid()
    }
}

/// Text safe inside a quoted Mermaid label: Mermaid renders labels as HTML, and takes entity
/// codes written `#name;`.
fn mermaid_label(text: &str) -> String {
    super::text::replace_chars(
        text,
        &[
            ('"', "#quot;"),
            ('<', "#lt;"),
            ('>', "#gt;"),
            ('&', "#amp;"),
            ('#', "#35;"),
        ],
    )
}

/// The Mermaid class (colour) of an event of this role.
fn role_class(role: EventRole) -> &'static str {
    match role {
        EventRole::Start => "start",
        EventRole::Stop | EventRole::Terminal => "stop",
        EventRole::External | EventRole::Outbound => "outside",
        EventRole::Plain | EventRole::Internal => "event",
    }
}

#[cfg(test)]
mod tests {
    use super::super::safe_id;
    use super::*;

    fn node(prefix: &str, name: &str, kind: FlowNodeKind) -> FlowNode {
        FlowNode {
            id: safe_id(prefix, name),
            label: name.to_owned(),
            kind,
        }
    }

    fn edge(from: &FlowNode, to: &FlowNode, label: FlowEdgeLabel) -> FlowEdge {
        FlowEdge {
            from: from.id.clone(),
            to: to.id.clone(),
            label,
        }
    }

    #[test]
    fn every_kind_of_node_and_label_is_drawn_and_escaped() {
        let ask = node(
            "step_",
            "ask",
            FlowNodeKind::Step {
                num_workers: Some(4),
            },
        );
        let answer = node(
            "step_",
            "answer",
            FlowNodeKind::Step {
                num_workers: Some(1),
            },
        );
        let start = node(
            "event_",
            "StartEvent",
            FlowNodeKind::Event(EventRole::Start),
        );
        let reply = node(
            "event_",
            "HumanResponseEvent",
            FlowNodeKind::Event(EventRole::External),
        );
        let done = node(
            "event_",
            "Done<T>",
            FlowNodeKind::Event(EventRole::Terminal),
        );
        let plain = node("event_", "Note", FlowNodeKind::Event(EventRole::Plain));
        let outside = node("node_", "external_step", FlowNodeKind::Outside);
        let chart = Flowchart {
            edges: vec![
                edge(&start, &ask, FlowEdgeLabel::None),
                edge(&outside, &reply, FlowEdgeLabel::Count(2)),
                edge(
                    &reply,
                    &answer,
                    FlowEdgeLabel::Text("a \"label\" & #1".to_owned()),
                ),
                edge(&answer, &done, FlowEdgeLabel::Count(0)),
            ],
            nodes: vec![ask, answer, start, reply, done, plain, outside],
        };
        let mermaid = chart.to_mermaid();
        let expected = "flowchart TD\n\
            \x20   step_ask(\"ask\"):::step\n\
            \x20   step_answer(\"answer ×1\"):::step\n\
            \x20   event_StartEvent[/\"StartEvent\"/]:::start\n\
            \x20   event_HumanResponseEvent[/\"HumanResponseEvent\"/]:::outside\n\
            \x20   event_Done_3c_T_3e_[/\"Done#lt;T#gt;\"/]:::stop\n\
            \x20   event_Note[/\"Note\"/]:::event\n\
            \x20   node_external_5f_step{{\"external_step\"}}:::outside\n\
            \x20   event_StartEvent --> step_ask\n\
            \x20   node_external_5f_step -->|2×| event_HumanResponseEvent\n\
            \x20   event_HumanResponseEvent -->|\"a #quot;label#quot; #amp; #35;1\"| step_answer\n\
            \x20   step_answer -.-> event_Done_3c_T_3e_\n";
        assert!(mermaid.starts_with(expected), "{mermaid}");
        assert_eq!(
            mermaid.lines().filter(|l| l.contains("classDef")).count(),
            5
        );
    }
}
