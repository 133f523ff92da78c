//! A self-contained HTML page of a workflow graph.

use super::WorkflowGraph;

impl WorkflowGraph {
    /// The graph as a self-contained HTML page (no scripts or assets fetched).
    pub fn to_html(&self) -> String {
        todo!("layered SVG layout")
    }
}
