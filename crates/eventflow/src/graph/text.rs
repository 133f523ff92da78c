//! Mermaid and Graphviz renderings of a workflow graph.

use std::fmt::Write;

use super::{Edge, Node, NodeId, WorkflowGraph};
use crate::event::EventRole;

/// A node id safe in Mermaid and DOT: letters, digits and underscores.
pub(super) fn slug(id: &NodeId) -> String {
    match id {
        NodeId::Step(name) => safe_id("step_", name),
        NodeId::Event(name) => safe_id("event_", name),
    }
}

/// `prefix` followed by `name` with every character but ASCII letters and digits written
/// `_<hex>_`: an id that Mermaid and DOT take as is, distinct for distinct names. For renderers
/// of graphs that are not a [`WorkflowGraph`] (a server's description of one, say).
pub fn safe_id(prefix: &str, name: &str) -> String {
    let mut slug = String::from(prefix);
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else {
            let _ = write!(slug, "_{:x}_", u32::from(c));
        }
    }
    slug
}

/// `text` with each character found in `table` replaced by its entity.
pub(super) fn replace_chars(text: &str, table: &[(char, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match table.iter().find(|(from, _)| *from == c) {
            Some((_, entity)) => out.push_str(entity),
            None => out.push(c),
        }
    }
    out
}

/// Text safe inside a quoted Mermaid label: Mermaid renders labels as HTML, and takes entity
/// codes written `#name;`.
pub fn mermaid_label(text: &str) -> String {
    replace_chars(
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

/// Text safe inside a quoted DOT label.
fn dot_label(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn step_label(node: &Node) -> String {
    match node.num_workers {
        Some(workers) if workers != crate::step::DEFAULT_NUM_WORKERS => {
            format!("{} ×{workers}", node.id.name())
        }
        _ => node.id.name().to_owned(),
    }
}

fn edge_label(edge: &Edge) -> Option<String> {
    edge.count.map(|count| format!("{count}×"))
}

impl WorkflowGraph {
    /// The graph as a Mermaid flowchart: steps as rounded boxes, events as parallelograms
    /// (start and stop events highlighted); with a run's path, edges carry how often they fired
    /// and unused edges are dotted.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        for node in &self.nodes {
            let id = slug(&node.id);
            let label = mermaid_label(&match node.role {
                None => step_label(node),
                Some(_) => node.id.name().to_owned(),
            });
            let _ = match node.role {
                None => writeln!(out, "    {id}(\"{label}\"):::step"),
                Some(role) => writeln!(out, "    {id}[/\"{label}\"/]:::{}", role_class(role)),
            };
        }
        for edge in &self.edges {
            let (from, to) = (slug(&edge.from), slug(&edge.to));
            let _ = match (edge.count, edge_label(edge)) {
                (Some(0), _) => writeln!(out, "    {from} -.-> {to}"),
                (_, Some(label)) => writeln!(out, "    {from} -->|{label}| {to}"),
                (_, None) => writeln!(out, "    {from} --> {to}"),
            };
        }
        out.push_str("    classDef step fill:#e8f0fe,stroke:#1a73e8;\n");
        out.push_str("    classDef event fill:#fef7e0,stroke:#f9ab00;\n");
        out.push_str("    classDef start fill:#e6f4ea,stroke:#188038;\n");
        out.push_str("    classDef stop fill:#fce8e6,stroke:#d93025;\n");
        out.push_str("    classDef outside fill:#f3e8fd,stroke:#8430ce;\n");
        out
    }

    /// The graph in Graphviz DOT: steps as boxes, events as ellipses; with a run's path, edges
    /// carry how often they fired and unused edges are dashed.
    pub fn to_dot(&self) -> String {
        let mut out = format!(
            "digraph \"{}\" {{\n    rankdir=TB;\n",
            dot_label(&self.name)
        );
        for node in &self.nodes {
            let id = slug(&node.id);
            let _ = match node.role {
                None => writeln!(
                    out,
                    "    {id} [label=\"{}\", shape=box, style=\"rounded,filled\", fillcolor=\"#e8f0fe\"];",
                    dot_label(&step_label(node))
                ),
                Some(role) => writeln!(
                    out,
                    "    {id} [label=\"{}\", shape=ellipse, style=filled, fillcolor=\"{}\"];",
                    dot_label(node.id.name()),
                    role_fill(role)
                ),
            };
        }
        for edge in &self.edges {
            let (from, to) = (slug(&edge.from), slug(&edge.to));
            let _ = match (edge.count, edge_label(edge)) {
                (Some(0), _) => writeln!(out, "    {from} -> {to} [style=dashed, color=gray];"),
                (_, Some(label)) => {
                    writeln!(out, "    {from} -> {to} [label=\"{label}\", penwidth=2];")
                }
                (_, None) => writeln!(out, "    {from} -> {to};"),
            };
        }
        out.push_str("}\n");
        out
    }
}

pub(super) fn role_class(role: EventRole) -> &'static str {
    match role {
        EventRole::Start => "start",
        EventRole::Stop | EventRole::Terminal => "stop",
        EventRole::External | EventRole::Outbound => "outside",
        EventRole::Plain => "event",
    }
}

pub(super) fn role_fill(role: EventRole) -> &'static str {
    match role {
        EventRole::Start => "#e6f4ea",
        EventRole::Stop | EventRole::Terminal => "#fce8e6",
        EventRole::External | EventRole::Outbound => "#f3e8fd",
        EventRole::Plain => "#fef7e0",
    }
}
