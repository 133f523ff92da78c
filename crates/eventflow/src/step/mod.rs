//! Steps: async functions from one event to the events they emit.
//!
//! What a step accepts and emits is read from its type, not from its body: [`StepInput`] says
//! which event types a step's parameter accepts, [`StepOutput`] which ones its return value can
//! carry. [`StepFn`] turns any async function or closure of the supported shapes into a step, the
//! way axum turns functions into handlers, so the `#[workflow]` macro and the builder API produce
//! the very same graph.

mod catch;
mod graph_check;
mod retry;

pub use catch::{CatchError, DEFAULT_MAX_RECOVERIES};
pub(crate) use graph_check::{CHECK_NAMES, SkippedChecks};
pub use graph_check::{GraphCheck, UnknownGraphCheck};
pub(crate) use retry::FailedAttempt;
pub use retry::{Backoff, Retry, RetryPolicy};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::context::Context;
use crate::event::{AnyEvent, Event, EventType};

/// The error type a step may fail with: any error that is `Send + Sync`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why one attempt of a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The step returned an error.
    #[error(transparent)]
    Failed(BoxError),
    /// The step panicked; the panic's message.
    #[error("panicked: {0}")]
    Panicked(String),
    /// The step ran longer than its timeout.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
}

/// What a step accepts: one event type, or a union of event types derived with
/// `#[derive(EventUnion)]` (a step that accepts `StartEvent` or `RefineEvent`, say).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be accepted by a step",
    label = "not an event or a union of events",
    note = "a step accepts one event (`#[derive(Event)]`) or an enum of events (`#[derive(EventUnion)]`)"
)]
pub trait StepInput: Send + 'static {
    /// The event types this input accepts.
    fn accepted_types() -> Vec<EventType>;
    /// Converts a routed event into the input; hands the event back when it is of another type.
    fn from_event(event: AnyEvent) -> Result<Self, AnyEvent>
    where
        Self: Sized;
}

// Not recommended in errors: "other types implement Event" would list every event in scope.
#[diagnostic::do_not_recommend]
impl<E: Event> StepInput for E {
    fn accepted_types() -> Vec<EventType> {
        vec![EventType::of::<E>()]
    }

    fn from_event(event: AnyEvent) -> Result<Self, AnyEvent> {
        event.downcast::<E>()
    }
}

/// What a step emits: an event, `Option<E>` (nothing this time, as when collecting), `Vec<E>`
/// (fan-out), a union derived with `#[derive(EventUnion)]` (branching), or `()` (nothing; for a
/// step that only sends events with `Context::send_event`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not something a step can emit",
    label = "not an event, an `Option`/`Vec` of events, or a union of events",
    note = "a step returns an event, `Option<E>`, `Vec<E>`, an enum of events (`#[derive(EventUnion)]`), `()`, or a `Result` of one of those"
)]
pub trait StepOutput: Send + 'static {
    /// The event types a value of this type can carry.
    fn emitted_types() -> Vec<EventType>;
    /// Appends the carried events to `out`.
    fn into_events(self, out: &mut Vec<AnyEvent>);
}

impl<E: Event> StepOutput for E {
    fn emitted_types() -> Vec<EventType> {
        vec![EventType::of::<E>()]
    }

    fn into_events(self, out: &mut Vec<AnyEvent>) {
        out.push(AnyEvent::new(self));
    }
}

impl<T: StepOutput> StepOutput for Option<T> {
    fn emitted_types() -> Vec<EventType> {
        T::emitted_types()
    }

    fn into_events(self, out: &mut Vec<AnyEvent>) {
        if let Some(inner) = self {
            inner.into_events(out);
        }
    }
}

impl<T: StepOutput> StepOutput for Vec<T> {
    fn emitted_types() -> Vec<EventType> {
        T::emitted_types()
    }

    fn into_events(self, out: &mut Vec<AnyEvent>) {
        out.reserve(self.len());
        for item in self {
            item.into_events(out);
        }
    }
}

impl StepOutput for () {
    fn emitted_types() -> Vec<EventType> {
        Vec::new()
    }

    fn into_events(self, _out: &mut Vec<AnyEvent>) {}
}

/// What a step function returns: a [`StepOutput`], or a `Result` of one whose error converts
/// into [`BoxError`] (so `?` works on any error, `anyhow::Error` included).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not something a step can return",
    label = "not an event, an `Option`/`Vec` of events, a union of events, or a `Result` of one",
    note = "a step returns an event, `Option<E>`, `Vec<E>`, an enum of events (`#[derive(EventUnion)]`), `()`, or a `Result` of one of those",
    note = "for `Result<T, E>`, `T` must be one of those and `E` an error type (`std::error::Error + Send + Sync`, or `anyhow::Error`)"
)]
pub trait IntoStepResult: Send + 'static {
    /// The events carried on success.
    type Output: StepOutput;
    /// Splits into the output or the step's error.
    fn into_step_result(self) -> Result<Self::Output, BoxError>;
}

impl<T: StepOutput> IntoStepResult for T {
    type Output = T;

    fn into_step_result(self) -> Result<T, BoxError> {
        Ok(self)
    }
}

impl<T: StepOutput, E: Into<BoxError> + Send + 'static> IntoStepResult for Result<T, E> {
    type Output = T;

    fn into_step_result(self) -> Result<T, BoxError> {
        self.map_err(Into::into)
    }
}

/// An async function or closure that can run as a step.
///
/// Implemented for `Fn(E) -> impl Future` and `Fn(Context, E) -> impl Future`, where `E` is a
/// [`StepInput`] and the future's output an [`IntoStepResult`]. `Args` only tells the two shapes
/// apart; you never name it.
///
/// ```
/// use eventflow::prelude::*;
///
/// let workflow = Workflow::builder("echo")
///     .step(Step::new("echo", |ev: StartEvent| async move {
///         Ok::<_, EventFieldError>(StopEvent::new(ev.get::<String>("text")?))
///     }))
///     .build()
///     .unwrap();
/// # let _ = workflow;
/// ```
#[diagnostic::on_unimplemented(
    message = "this is not a step function: a step takes `(event)` or `(Context, event)`",
    label = "expected an async fn or closure taking `(event)` or `(Context, event)`",
    note = "annotate closure parameters with their types: `|ctx: Context, ev: StartEvent| async move {{ ... }}`"
)]
pub trait StepFn<Args>: Send + Sync + 'static {
    /// What the step accepts; [`Step::new`] requires a [`StepInput`].
    type Input;
    /// What the step's future resolves to; [`Step::new`] requires an [`IntoStepResult`].
    type Return;
    /// The step's future.
    type Future: Future<Output = Self::Return>;
    /// Runs the step once.
    fn call(&self, ctx: Context, input: Self::Input) -> Self::Future;
}

impl<F, Fut, I> StepFn<(I,)> for F
where
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future,
{
    type Input = I;
    type Return = Fut::Output;
    type Future = Fut;

    fn call(&self, _ctx: Context, input: I) -> Fut {
        self(input)
    }
}

impl<F, Fut, I> StepFn<(Context, I)> for F
where
    F: Fn(Context, I) -> Fut + Send + Sync + 'static,
    Fut: Future,
{
    type Input = I;
    type Return = Fut::Output;
    type Future = Fut;

    fn call(&self, ctx: Context, input: I) -> Fut {
        self(ctx, input)
    }
}

/// A step's body with its types erased: event in, events out.
pub(crate) type ErasedStep = Arc<
    dyn Fn(Context, AnyEvent) -> BoxFuture<'static, Result<Vec<AnyEvent>, BoxError>> + Send + Sync,
>;

/// The default number of concurrent invocations of a step within one run, as in the reference.
pub const DEFAULT_NUM_WORKERS: usize = 4;

/// A step: a name, what it accepts and emits, its options and its body.
///
/// Built by `#[workflow]` for every `#[step]` method, or by hand for workflows assembled at run
/// time:
///
/// ```
/// use std::time::Duration;
/// use eventflow::prelude::*;
///
/// let step = Step::new("fetch", |ev: StartEvent| async move { StopEvent::new(ev.kwargs().len()) })
///     .num_workers(2)
///     .timeout(Duration::from_secs(5))
///     .retry(RetryPolicy::fixed(Duration::from_millis(100)).max_attempts(3));
/// assert_eq!(step.name(), "fetch");
/// ```
#[derive(Clone)]
pub struct Step {
    pub(crate) name: String,
    pub(crate) accepts: Vec<EventType>,
    pub(crate) emits: Vec<EventType>,
    pub(crate) num_workers: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Option<Duration>,
    /// The graph checks that do not apply to this step.
    pub(crate) skipped_checks: SkippedChecks,
    /// Set on an error handler: the failed steps it recovers.
    pub(crate) catches: Option<CatchError>,
    pub(crate) body: ErasedStep,
}

impl Step {
    /// A step named `name` running `f`.
    pub fn new<Args, F>(name: impl Into<String>, f: F) -> Self
    where
        F: StepFn<Args>,
        F::Input: StepInput,
        F::Return: IntoStepResult,
        F::Future: Send + 'static,
    {
        let name = name.into();
        let f = Arc::new(f);
        let body: ErasedStep =
            Arc::new(
                move |ctx: Context, event: AnyEvent| match F::Input::from_event(event) {
                    Ok(input) => {
                        let fut = f.call(ctx, input);
                        Box::pin(async move {
                            let output = fut.await.into_step_result()?;
                            let mut events = Vec::new();
                            output.into_events(&mut events);
                            Ok(events)
                        })
                    }
                    Err(event) => {
                        let message = format!(
                            "step was routed an event it does not accept: {}",
                            event.name()
                        );
                        Box::pin(async move { Err(message.into()) })
                    }
                },
            );
        Step {
            name,
            accepts: F::Input::accepted_types(),
            emits: <F::Return as IntoStepResult>::Output::emitted_types(),
            num_workers: DEFAULT_NUM_WORKERS,
            retry: RetryPolicy::none(),
            timeout: None,
            skipped_checks: SkippedChecks::default(),
            catches: None,
            body,
        }
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The event types the step accepts.
    pub fn accepts(&self) -> &[EventType] {
        &self.accepts
    }

    /// The event types the step can emit (from its return type and [`Step::emits`]).
    pub fn emitted(&self) -> &[EventType] {
        &self.emits
    }

    /// How many invocations of this step may run at once within one run (at least 1; default 4).
    pub fn num_workers(mut self, num_workers: usize) -> Self {
        self.num_workers = num_workers.max(1);
        self
    }

    /// How failed attempts are retried (default: not at all).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How long one attempt may run before it fails with [`StepError::TimedOut`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Exempts this step from graph checks, by [`GraphCheck`] or by name (`"reachability"`,
    /// `"dead_end"`, `"terminal_event"`); a name that is no check is reported when the workflow
    /// is built, with every other problem. The graph and its drawing are unchanged.
    ///
    /// `echo` below answers pings forever, on purpose: no chain of events leads from it to a
    /// stop event, which the build reports unless it skips the dead-end check.
    ///
    /// ```
    /// use eventflow::prelude::*;
    ///
    /// #[derive(Event, Clone, Serialize, Deserialize)]
    /// struct Ping;
    ///
    /// let workflow = Workflow::builder("pings")
    ///     .step(
    ///         Step::new("start", |ctx: Context, _: StartEvent| async move {
    ///             let _ = ctx.send_event(Ping);
    ///             StopEvent::new(())
    ///         })
    ///         .emits::<Ping>(),
    ///     )
    ///     .step(Step::new("echo", |_: Ping| async { Ping }).skip_graph_checks([GraphCheck::DeadEnd]))
    ///     .build();
    /// assert!(workflow.is_ok());
    /// ```
    pub fn skip_graph_checks<C>(mut self, checks: impl IntoIterator<Item = C>) -> Self
    where
        C: TryInto<GraphCheck>,
        C::Error: Into<UnknownGraphCheck>,
    {
        self.skipped_checks.extend(checks);
        self
    }

    /// The graph checks this step skips, in the order given.
    pub fn skipped_graph_checks(&self) -> &[GraphCheck] {
        self.skipped_checks.as_slice()
    }

    /// Makes this step an error handler (the reference's `@catch_error`): when a step it
    /// covers fails its last allowed attempt, this step receives a
    /// [`StepFailedEvent`](crate::StepFailedEvent) — so it must accept one — and what it returns
    /// goes on in the run in place of the failure. It is not invoked for the run's own timeout
    /// or for cancellation, and a handler's own failure fails the run.
    pub fn catch_error(mut self, catches: CatchError) -> Self {
        self.catches = Some(catches);
        self
    }

    /// What this step catches, when it is an error handler.
    pub fn catches(&self) -> Option<&CatchError> {
        self.catches.as_ref()
    }

    /// Declares that the step sends events of type `E` with `Context::send_event`, so the graph,
    /// validation and drawing know about them.
    pub fn emits<E: Event>(mut self) -> Self {
        let ty = EventType::of::<E>();
        if !self.emits.contains(&ty) {
            self.emits.push(ty);
        }
        self
    }
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("accepts", &self.accepts)
            .field("emits", &self.emits)
            .field("num_workers", &self.num_workers)
            .field("timeout", &self.timeout)
            .field("skipped_graph_checks", &self.skipped_checks.as_slice())
            .field("catches", &self.catches)
            .finish_non_exhaustive()
    }
}
