//! Drawing: a workflow as a graph of steps and events, and the path a run took through it.

mod html;
mod mermaid;
mod text;

pub use mermaid::{FlowEdge, FlowEdgeLabel, FlowNode, FlowNodeKind, Flowchart};
pub use text::safe_id;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::{EventRole, EventType, InputRequiredEvent};
use crate::workflow::{Workflow, WorkflowSpec};

/// A node of a workflow graph: a step or an event type, by name, or the outside world.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeId {
    /// A step.
    Step(String),
    /// An event type.
    Event(String),
    /// The outside world (a human, another system): what a question for it (an outbound
    /// event) leads to, and where answers (external events) come from.
    Outside,
}

impl NodeId {
    /// The step's or event's name; `outside` for the outside world.
    pub fn name(&self) -> &str {
        match self {
            NodeId::Step(name) | NodeId::Event(name) => name,
            NodeId::Outside => "outside",
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeId::Step(name) => write!(f, "step:{name}"),
            NodeId::Event(name) => write!(f, "event:{name}"),
            NodeId::Outside => f.write_str("outside"),
        }
    }
}

/// A node with what it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// The node.
    pub id: NodeId,
    /// For an event node, its role; `None` for a step and the outside world.
    pub role: Option<EventRole>,
    /// For a step node, its number of workers.
    pub num_workers: Option<usize>,
}

/// An edge: an event type accepted by a step (event -> step) or emitted by one (step -> event),
/// or a question leaving for the outside world (outbound event -> outside) and an answer coming
/// back (outside -> external event).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// Where the edge starts.
    pub from: NodeId,
    /// Where it ends.
    pub to: NodeId,
    /// How often a run fired it, when the graph carries a run's path.
    pub count: Option<u64>,
}

/// An edge a run took, and how often.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathEdge {
    /// Where the edge starts.
    pub from: NodeId,
    /// Where it ends.
    pub to: NodeId,
    /// How many times it fired.
    pub count: u64,
}

/// The path a run took: every edge that fired, with how often.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPath {
    /// The edges that fired at least once.
    pub edges: Vec<PathEdge>,
}

impl RunPath {
    /// How often the edge `from -> to` fired (0 if never).
    pub fn count(&self, from: &NodeId, to: &NodeId) -> u64 {
        self.edges
            .iter()
            .find(|edge| &edge.from == from && &edge.to == to)
            .map_or(0, |edge| edge.count)
    }

    /// How many times the step named `step` was given an event (retries not counted).
    pub fn step_runs(&self, step: &str) -> u64 {
        self.edges
            .iter()
            .filter(|edge| matches!(&edge.to, NodeId::Step(name) if name == step))
            .map(|edge| edge.count)
            .sum()
    }
}

/// A workflow drawn as a graph, built from the step signatures alone.
///
/// ```
/// use eventflow::prelude::*;
///
/// #[derive(Event, Clone, Serialize, Deserialize)]
/// struct Middle;
///
/// let workflow = Workflow::builder("two")
///     .add_step("first", |_: StartEvent| async { Middle })
///     .add_step("second", |_: Middle| async { StopEvent::new(()) })
///     .build()
///     .unwrap();
/// let mermaid = workflow.graph().to_mermaid();
/// assert!(mermaid.contains("flowchart"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowGraph {
    /// The workflow's name.
    pub name: String,
    /// Steps first, in the order they were added, then event types, then the outside world
    /// when a human is in the loop (a step accepts an external event, or asks a question with
    /// `InputRequiredEvent`).
    pub nodes: Vec<Node>,
    /// Event -> step for what steps accept, step -> event for what they emit; then
    /// outbound event -> outside -> external event, so that a graph with a human in the loop
    /// connects its start to its stop.
    pub edges: Vec<Edge>,
}

// Drawing is this module's concern, so `Workflow::graph` is defined here: the workflow module
// does not know how it is drawn (and does not import this one, which reads its spec).
impl Workflow {
    /// The workflow as a graph of steps and events, for drawing.
    pub fn graph(&self) -> WorkflowGraph {
        WorkflowGraph::of(&self.spec)
    }
}

impl WorkflowGraph {
    pub(crate) fn of(spec: &WorkflowSpec) -> Self {
        let mut nodes: Vec<Node> = spec
            .steps
            .iter()
            .map(|step| Node {
                id: NodeId::Step(step.name.clone()),
                role: None,
                num_workers: Some(step.num_workers),
            })
            .collect();
        nodes.extend(spec.events.iter().map(|ty| Node {
            id: NodeId::Event(ty.name().to_owned()),
            role: Some(ty.role()),
            num_workers: None,
        }));
        let mut edges = Vec::new();
        for step in &spec.steps {
            for ty in &step.accepts {
                edges.push(Edge {
                    from: NodeId::Event(ty.name().to_owned()),
                    to: NodeId::Step(step.name.clone()),
                    count: None,
                });
            }
            for ty in &step.emits {
                edges.push(Edge {
                    from: NodeId::Step(step.name.clone()),
                    to: NodeId::Event(ty.name().to_owned()),
                    count: None,
                });
            }
        }
        // The outside world, when a human (or another system) is in the loop: a step accepts an
        // answer from outside, or asks a question (`InputRequiredEvent`). What steps send out
        // goes to it, answers come from it.
        let emitted = |ty: &EventType| spec.steps.iter().any(|step| step.emits.contains(ty));
        let accepted = |ty: &EventType| spec.steps.iter().any(|step| step.accepts.contains(ty));
        let asked: Vec<_> = spec
            .events
            .iter()
            .filter(|ty| ty.role() == EventRole::Outbound && emitted(ty))
            .collect();
        let answers: Vec<_> = spec
            .events
            .iter()
            .filter(|ty| ty.role() == EventRole::External && accepted(ty))
            .collect();
        let question = EventType::of::<InputRequiredEvent>();
        if !answers.is_empty() || asked.contains(&&question) {
            nodes.push(Node {
                id: NodeId::Outside,
                role: None,
                num_workers: None,
            });
            for ty in asked {
                edges.push(Edge {
                    from: NodeId::Event(ty.name().to_owned()),
                    to: NodeId::Outside,
                    count: None,
                });
            }
            for ty in answers {
                edges.push(Edge {
                    from: NodeId::Outside,
                    to: NodeId::Event(ty.name().to_owned()),
                    count: None,
                });
            }
        }
        WorkflowGraph {
            name: spec.name.clone(),
            nodes,
            edges,
        }
    }

    /// The same graph with each edge labelled by how often `path` fired it (edges to and from
    /// the outside world stay unlabelled: what happens there is not the run's).
    pub fn with_path(mut self, path: &RunPath) -> Self {
        for edge in &mut self.edges {
            if edge.from != NodeId::Outside && edge.to != NodeId::Outside {
                edge.count = Some(path.count(&edge.from, &edge.to));
            }
        }
        self
    }

    /// The node with this id.
    pub fn node(&self, id: &NodeId) -> Option<&Node> {
        self.nodes.iter().find(|node| &node.id == id)
    }
}
