//! What a step's context may do to its run, as a trait the run implements.
//!
//! `Context` sits below steps (a step takes one) and the run sits above workflows (it holds
//! one, whose steps take contexts). A context holding the run's concrete type would make the
//! context module import the run module and the run module import it back; holding
//! `Arc<dyn RunAccess>` instead keeps the imports one way — `run` implements this trait for
//! its shared part — while the values still point at each other through `Arc`s.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{ContextState, SendEventError, Wait};
use crate::event::AnyEvent;

/// A run as its steps' contexts see it.
pub(crate) trait RunAccess: Send + Sync + 'static {
    /// The run's id.
    fn run_id(&self) -> &str;

    /// The name of the workflow's step at index `step`.
    fn step_name(&self, step: usize) -> &str;

    /// The run's live context state.
    fn state(&self) -> &ContextState;

    /// Checks `event` against the workflow's steps (`target`, if given, must accept it) and
    /// hands it to the run; `from` is the sending invocation, `None` from outside.
    fn send(
        &self,
        event: AnyEvent,
        target: Option<&str>,
        from: Option<u64>,
    ) -> Result<(), SendEventError>;

    /// Publishes `event` on the run's stream; after the run has ended, does nothing.
    fn publish(&self, event: AnyEvent);

    /// A waiter id not used before in this run.
    fn next_waiter(&self) -> u64;

    /// Hands a wait to the run's driver; `false` when the run has ended.
    fn wait(&self, request: WaitRequest) -> bool;

    /// Tells the driver that the wait `waiter` gave up (timed out).
    fn end_wait(&self, waiter: u64);

    /// Makes `child` end when this run ends.
    fn adopt(&self, child: Arc<dyn RunAccess>);

    /// Cancels the run.
    fn cancel(&self);
}

/// A step begins waiting; the event is handed over through `reply`.
pub(crate) struct WaitRequest {
    pub(crate) wait: Wait,
    /// Published when the wait begins, unless an event it accepts is already there.
    pub(crate) prompt: Option<AnyEvent>,
    pub(crate) reply: oneshot::Sender<AnyEvent>,
}
