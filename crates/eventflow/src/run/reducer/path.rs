//! The path a run took: how often each edge of the graph fired, for drawing the run.

use super::RunState;
use crate::graph::{NodeId, PathEdge, RunPath};
use crate::workflow::WorkflowSpec;

/// How often each edge of the graph fired: step -> event emitted, event -> step delivered.
pub(super) struct PathCounts {
    pub(super) events: usize,
    pub(super) emitted: Vec<u64>,
    pub(super) delivered: Vec<u64>,
}

impl RunState {
    /// The edges the run has taken so far, with how often each fired.
    pub(crate) fn path(&self, spec: &WorkflowSpec) -> RunPath {
        let mut edges = Vec::new();
        for (step_index, step) in spec.steps.iter().enumerate() {
            for (event_index, event) in spec.events.iter().enumerate() {
                let slot = step_index * self.path.events + event_index;
                let step_node = || NodeId::Step(step.name.clone());
                let event_node = || NodeId::Event(event.name().to_owned());
                if self.path.emitted[slot] > 0 {
                    edges.push(PathEdge {
                        from: step_node(),
                        to: event_node(),
                        count: self.path.emitted[slot],
                    });
                }
                if self.path.delivered[slot] > 0 {
                    edges.push(PathEdge {
                        from: event_node(),
                        to: step_node(),
                        count: self.path.delivered[slot],
                    });
                }
            }
        }
        RunPath { edges }
    }
}
