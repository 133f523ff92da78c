//! What a commit held, for the engine's commit hook (metrics, fault tests).

use std::time::Duration;

use crate::store::RunStatus;

/// A function called after each commit of a run reaches the store; see
/// [`EngineBuilder::on_commit`](super::EngineBuilder::on_commit).
pub type CommitHook = dyn Fn(&CommitInfo) + Send + Sync;

/// What a commit held, for [`EngineBuilder::on_commit`](super::EngineBuilder::on_commit).
#[derive(Clone, Debug)]
pub struct CommitInfo {
    /// The run.
    pub run_id: String,
    /// The run's workflow.
    pub workflow: String,
    /// The step completions the commit recorded, in journal order.
    pub completed: Vec<CompletedStep>,
    /// How the run finished, when the commit finished it.
    pub finished: Option<RunStatus>,
}

/// A step completion recorded by a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedStep {
    /// The step's name.
    pub step: String,
    /// The attempt that completed (1 for the first).
    pub attempt: u32,
    /// How long the attempt ran.
    pub duration: Duration,
    /// Whether the attempt failed (it may be retried).
    pub failed: bool,
}
