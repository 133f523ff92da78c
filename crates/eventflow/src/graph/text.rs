//! The Graphviz rendering of a workflow graph, and the ids and escaping that drawings share.

use std::fmt::Write;

use super::{Edge, Node, NodeId, WorkflowGraph};
use crate::event::EventRole;

/// A node id safe in Mermaid and DOT: letters, digits and underscores.
pub(super) fn slug(id: &NodeId) -> String {
    match id {
        NodeId::Step(name) => safe_id("step_", name),
        NodeId::Event(name) => safe_id("event_", name),
        NodeId::Outside => "outside".to_owned(),
    }
}

/// `prefix` followed by `name` with every character but ASCII letters and digits written
/// `_<hex>_`: an id that Mermaid and DOT take as is, distinct for distinct names. For the ids
/// of a [`Flowchart`](super::Flowchart) built from a graph that is not a [`WorkflowGraph`] (a
/// server's description of one, say).
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

/// Text safe inside a quoted DOT label.
fn dot_label(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A step's label: its name, followed by `×N` when it has `N` workers and `N` is not the
/// default (the default is not worth printing).
pub(super) fn workers_label(name: &str, num_workers: Option<usize>) -> String {
    match num_workers {
        Some(workers) if workers != crate::step::DEFAULT_NUM_WORKERS => {
            format!("{name} ×{workers}")
        }
        _ => name.to_owned(),
    }
}

fn step_label(node: &Node) -> String {
    workers_label(node.id.name(), node.num_workers)
}

fn edge_label(edge: &Edge) -> Option<String> {
    edge.count.map(|count| format!("{count}×"))
}

impl WorkflowGraph {
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
                None if node.id == NodeId::Outside => writeln!(
                    out,
                    "    {id} [label=\"{}\", shape=hexagon, style=filled, fillcolor=\"{}\"];",
                    node.id.name(),
                    role_fill(EventRole::External)
                ),
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

pub(super) fn role_fill(role: EventRole) -> &'static str {
    match role {
        EventRole::Start => "#e6f4ea",
        EventRole::Stop | EventRole::Terminal => "#fce8e6",
        EventRole::External | EventRole::Outbound => "#f3e8fd",
        EventRole::Plain | EventRole::Internal => "#fef7e0",
    }
}
