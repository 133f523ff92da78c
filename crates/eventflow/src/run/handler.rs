//! The handler of a run: its result, its event streams, events in, cancel and snapshot.
//!
//! `EventStream` is here rather than beside the log it reads (`stream.rs`) because a reader
//! keeps the run's shared part alive, and that part holds the log: the log stays a primitive
//! that knows nothing of runs.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures::Stream;
use futures::stream::BoxStream;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::context::{RunAccess, SendEventError};
use crate::error::{SnapshotError, WorkflowError};
use crate::event::{AnyEvent, Event, EventRole, StopEvent};
use crate::graph::RunPath;
use crate::run::context::RunContext;
use crate::run::message::Msg;
use crate::run::shared::RunShared;
use crate::run::snapshot::RunSnapshot;

/// The result of a run that finished with a stop event.
#[derive(Clone, Debug)]
pub struct RunOutput {
    pub(crate) run_id: String,
    pub(crate) event: AnyEvent,
    pub(crate) path: RunPath,
    /// A handle on this run's state, never handed out: it keeps pointing at this run.
    pub(crate) context: RunContext,
}

impl RunOutput {
    /// The run's result as a `T`: the result of a [`StopEvent`], or a typed stop event itself
    /// (read through its JSON, so `result::<MyStopEvent>()` works too).
    pub fn result<T: DeserializeOwned>(&self) -> Result<T, WorkflowError> {
        let invalid = |source| WorkflowError::InvalidResult {
            expected: std::any::type_name::<T>(),
            source,
        };
        match self.event.downcast_ref::<StopEvent>() {
            Some(stop) => stop.result().map_err(invalid),
            None => {
                let json = self.event.to_json().map_err(invalid)?;
                T::deserialize(json).map_err(invalid)
            }
        }
    }

    /// The stop event that ended the run.
    pub fn event(&self) -> &AnyEvent {
        &self.event
    }

    /// The typed stop event, when the run ended with an `E`; the event is handed back otherwise.
    pub fn into_event<E: Event>(self) -> Result<E, AnyEvent> {
        self.event.downcast()
    }

    /// The path the run took through the graph.
    pub fn path(&self) -> &RunPath {
        &self.path
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The context state the run left, to read, or to start the next run from with
    /// [`Workflow::run_with_context`](crate::Workflow::run_with_context). Each call gives a
    /// new handle on this run's state, so each can start a run of its own.
    pub fn context(&self) -> RunContext {
        self.context.detached()
    }
}

/// A running workflow: `.await` it for the result, stream its events, send it events, cancel
/// it or snapshot it.
///
/// Dropping the handler does not stop the run; [`cancel`](Self::cancel) does. The handler is
/// `Unpin`, so `(&mut handler).await` gives the result and keeps the handler (to open a stream
/// afterwards, say).
///
/// ```
/// use eventflow::prelude::*;
/// use futures::StreamExt;
///
/// #[derive(Event, Clone, Serialize, Deserialize)]
/// struct Progress { percent: u8 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let workflow = Workflow::builder("progress")
///     .add_step("work", |ctx: Context, _: StartEvent| async move {
///         ctx.write_event_to_stream(Progress { percent: 50 });
///         StopEvent::new("done")
///     })
///     .build()?;
/// let handler = workflow.run(json!({}));
/// let mut events = handler.stream_events();
/// let first = events.next().await.unwrap();
/// assert_eq!(first.downcast_ref::<Progress>().unwrap().percent, 50);
/// assert!(events.next().await.unwrap().is::<StopEvent>());
/// assert_eq!(handler.await?.result::<String>()?, "done");
/// # Ok(())
/// # }
/// ```
#[must_use = "a handler does nothing unless awaited, streamed or kept to send events"]
pub struct WorkflowHandler {
    shared: Arc<RunShared>,
    result: oneshot::Receiver<Result<RunOutput, WorkflowError>>,
}

impl WorkflowHandler {
    pub(crate) fn new(
        shared: Arc<RunShared>,
    ) -> (Self, oneshot::Sender<Result<RunOutput, WorkflowError>>) {
        let (sender, result) = oneshot::channel();
        (WorkflowHandler { shared, result }, sender)
    }

    pub(crate) fn shared(&self) -> Arc<RunShared> {
        self.shared.clone()
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.shared.run_id
    }

    /// The name of the workflow being run.
    pub fn workflow_name(&self) -> &str {
        self.shared.workflow.name()
    }

    /// A stream of every event the run publishes, from its first, ending with its terminal
    /// event. Any number of streams may be open at once. The engine's internal events are left
    /// out; [`stream_events_internal`](Self::stream_events_internal) has them.
    pub fn stream_events(&self) -> EventStream {
        EventStream::follow(self.shared.clone(), false)
    }

    /// Like [`stream_events`](Self::stream_events), with the engine's internal events
    /// ([`StepStateChanged`](crate::StepStateChanged), [`WorkflowIdleEvent`](crate::WorkflowIdleEvent),
    /// [`UnhandledEvent`](crate::UnhandledEvent)) in their place among the others. A run of a
    /// workflow without [`Workflow::internal_events`](crate::Workflow::internal_events) starts
    /// publishing them now, so the stream has those of the ticks from here on.
    pub fn stream_events_internal(&self) -> EventStream {
        self.shared.start_publishing_internal();
        EventStream::follow(self.shared.clone(), true)
    }

    /// Sends an event into the run from outside (a [`HumanResponseEvent`](crate::HumanResponseEvent),
    /// say), to every step that accepts it or the first step waiting for it.
    pub fn send_event<E: Event>(&self, event: E) -> Result<(), SendEventError> {
        self.shared.send(AnyEvent::new(event), None, None)
    }

    /// Sends an event into the run, to the step named `step` only.
    pub fn send_event_to<E: Event>(&self, step: &str, event: E) -> Result<(), SendEventError> {
        self.shared.send(AnyEvent::new(event), Some(step), None)
    }

    /// Sends a type-erased event into the run, optionally to one step.
    pub fn send_any(&self, event: AnyEvent, step: Option<&str>) -> Result<(), SendEventError> {
        self.shared.send(event, step, None)
    }

    /// Cancels the run: running steps are stopped, child runs cancelled, and the run ends with
    /// [`WorkflowError::Cancelled`]. Cancelling a finished run does nothing.
    pub fn cancel(&self) {
        self.shared.cancel();
    }

    /// The run's context state: live while the run goes on (a run started from it before
    /// this one finishes fails with [`WorkflowError::ContextInUse`]), as the run left it after.
    pub fn context(&self) -> RunContext {
        RunContext::of_run(self.shared.clone())
    }

    /// Whether the run waits for a slot: its workflow bounds its concurrent runs
    /// ([`Workflow::num_concurrent_runs`](crate::Workflow::num_concurrent_runs)) and that many
    /// are running. Its steps start once one ends.
    pub fn is_queued(&self) -> bool {
        self.shared.is_queued()
    }

    /// Whether the run has finished (its terminal event is published).
    pub fn is_finished(&self) -> bool {
        self.shared.stream.is_closed()
    }

    /// A snapshot of the run as it is now, between two ticks; the run goes on.
    pub async fn snapshot(&self) -> Result<RunSnapshot, SnapshotError> {
        let (reply, snapshot) = oneshot::channel();
        if self.shared.inbox.send(Msg::Snapshot(reply)).is_err() {
            return Err(SnapshotError::Finished);
        }
        snapshot.await.unwrap_or(Err(SnapshotError::Finished))
    }
}

impl Future for WorkflowHandler {
    type Output = Result<RunOutput, WorkflowError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.result)
            .poll(cx)
            .map(|result| result.unwrap_or(Err(WorkflowError::RunLost)))
    }
}

impl std::fmt::Debug for WorkflowHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowHandler")
            .field("run_id", &self.run_id())
            .field("workflow", &self.workflow_name())
            .finish()
    }
}

/// Where a reader is.
struct Cursor {
    run: Arc<RunShared>,
    next: usize,
    buffer: VecDeque<AnyEvent>,
}

/// A stream of the events a run publishes, from its first event to its terminal one.
///
/// Each reader gets every event, in order, whenever it subscribed; the last item is the run's
/// terminal event (its stop event, or the event of a failure, timeout or cancellation), after
/// which the stream ends.
pub struct EventStream {
    inner: BoxStream<'static, AnyEvent>,
}

impl EventStream {
    /// Follows the run's stream; internal events are in it when `internal` is true.
    pub(crate) fn follow(run: Arc<RunShared>, internal: bool) -> Self {
        let cursor = Cursor {
            run,
            next: 0,
            buffer: VecDeque::new(),
        };
        let inner = futures::stream::unfold(cursor, move |mut cursor| async move {
            loop {
                if cursor.buffer.is_empty() {
                    let Cursor { run, next, buffer } = &mut cursor;
                    if !run.stream.read_after(next, buffer).await {
                        return None;
                    }
                }
                let event = cursor
                    .buffer
                    .pop_front()
                    .expect("read_after filled the buffer");
                if internal || event.role() != EventRole::Internal {
                    return Some((event, cursor));
                }
            }
        });
        EventStream {
            inner: Box::pin(inner),
        }
    }
}

impl Stream for EventStream {
    type Item = AnyEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<AnyEvent>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}
