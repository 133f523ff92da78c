//! The context a step runs in: the run's shared state, sending events, collecting, waiting.

mod access;
mod path;
mod retry;
mod state;
mod wait;

pub(crate) use access::{RunAccess, WaitRequest};
pub use retry::RetryInfo;
pub(crate) use retry::{PastAttempts, epoch_millis, from_epoch_millis, whole_millis};
pub use state::StateError;
use state::Touch;
pub(crate) use state::{ContextState, StateSnapshot, StateWrites};
pub(crate) use wait::Wait;

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::event::{AnyEvent, Event, EventRole, EventType};

/// The context of one step invocation: a handle on its run.
///
/// Steps receive it as `ctx: &Context` (in `#[workflow]` methods) or `ctx: Context` (in
/// closures). Cloning is cheap.
#[derive(Clone)]
pub struct Context {
    pub(crate) run: Arc<dyn RunAccess>,
    pub(crate) step: usize,
    pub(crate) invocation: u64,
    pub(crate) attempt: u32,
    pub(crate) key: u64,
    /// When this attempt began (monotonic: a first attempt's time since it began needs no
    /// wall clock, and the success path reads none).
    pub(crate) started: Instant,
    /// The attempts before this one, when it is a retry.
    pub(crate) past: Option<Arc<PastAttempts>>,
}

impl Context {
    /// The id of the run.
    pub fn run_id(&self) -> &str {
        self.run.run_id()
    }

    /// The name of the step this context belongs to.
    pub fn step_name(&self) -> &str {
        self.run.step_name(self.step)
    }

    /// The attempt number of the current step invocation: 1 on the first try, 2 on the first
    /// retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// What this invocation knows of the attempts at its input so far: its attempt number,
    /// the time since the first attempt began, and the previous attempt's error and when it
    /// failed. The same in a durable run recovered after a crash as in the live run.
    pub fn retry_info(&self) -> RetryInfo {
        RetryInfo::new(self.attempt, self.started, self.past.as_deref())
    }

    /// A key that names this step's work on its input event: the same for every attempt and
    /// every re-run after a crash, different for every other input. Use it to make side effects
    /// idempotent (as an idempotency key of a payment API, say) in durable runs, where a step
    /// interrupted by a crash runs again.
    pub fn step_key(&self) -> String {
        format!("{}:{}:{}", self.run_id(), self.step_name(), self.key)
    }

    /// Stores `value` under `key` in the run's state, visible at once to every step of the run.
    ///
    /// A dotted key is a path: `ctx.set("user.name", "Ada")` writes the `name` field of the
    /// object under `user` (creating the objects on the way), and `items.0` is the first element
    /// of an array. Writing below a value that is not an object (nor an array with that index)
    /// is [`StateError::NotAContainer`].
    pub fn set<T: Serialize>(&self, key: &str, value: T) -> Result<(), StateError> {
        self.run.state().touch(self.invocation, Touch::Key(key));
        self.run.state().set(key, &value)
    }

    /// Reads the value under `key` (a dotted path, as for [`set`](Self::set)) as a `T`; the error
    /// names the key and the type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, StateError> {
        self.run.state().get(key)
    }

    /// Reads the value under `key`, or `default` when there is none.
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T, StateError> {
        match self.run.state().get(key) {
            Err(StateError::Missing { .. }) => Ok(default),
            other => other,
        }
    }

    /// Whether a value is stored under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.run.state().contains(key)
    }

    /// Removes and returns the value under `key` (a dotted path, as for [`set`](Self::set)).
    pub fn remove(&self, key: &str) -> Option<Value> {
        self.run.state().touch(self.invocation, Touch::Key(key));
        self.run.state().remove(key)
    }

    /// Empties the run's key/value state and resets its typed state (to `Default` on next
    /// use), as the reference's `ctx.store.clear()` does. Called inside an `edit_state`
    /// closure it returns [`StateError::Reentrant`].
    pub fn clear(&self) -> Result<(), StateError> {
        let state = self.run.state();
        for key in state.clear()? {
            state.touch(self.invocation, Touch::Key(&key));
        }
        state.touch(self.invocation, Touch::Typed);
        Ok(())
    }

    /// Edits the run's typed state under its lock and returns what `edit` returns.
    ///
    /// The state is created with `S::default()` on first use. Holding the lock across an
    /// `.await` is impossible by construction; calling `edit_state` again from inside `edit`
    /// returns [`StateError::Reentrant`] rather than deadlocking, and asking for another type
    /// than the run's state returns [`StateError::StateTypeMismatch`].
    pub fn edit_state<S, R>(&self, edit: impl FnOnce(&mut S) -> R) -> Result<R, StateError>
    where
        S: Serialize + DeserializeOwned + Default + Send + 'static,
    {
        self.run.state().touch(self.invocation, Touch::Typed);
        self.run.state().edit(edit)
    }

    /// A copy of the run's typed state.
    pub fn state<S>(&self) -> Result<S, StateError>
    where
        S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
    {
        self.run.state().edit(|state: &mut S| state.clone())
    }

    /// Sends an event to every step that accepts it, as if this step had returned it.
    ///
    /// Declare the type on the step (`#[step(emits(E))]` or [`Step::emits`](crate::Step::emits))
    /// so the workflow's graph and validation know about it.
    pub fn send_event<E: Event>(&self, event: E) -> Result<(), SendEventError> {
        self.run
            .send(AnyEvent::new(event), None, Some(self.invocation))
    }

    /// Sends an event to the step named `step` only.
    pub fn send_event_to<E: Event>(&self, step: &str, event: E) -> Result<(), SendEventError> {
        self.run
            .send(AnyEvent::new(event), Some(step), Some(self.invocation))
    }

    /// Publishes an event on the run's event stream, for whoever watches the run. It is not
    /// routed to steps. After the run has finished, nothing more is published.
    pub fn write_event_to_stream<E: Event>(&self, event: E) {
        self.run.publish(AnyEvent::new(event));
    }

    /// Publishes an already type-erased event on the run's stream (used to forward streams).
    pub fn write_any_to_stream(&self, event: AnyEvent) {
        self.run.publish(event);
    }

    /// Buffers `event` until `count` events of type `E` have arrived at this step, then returns
    /// all of them in arrival order; returns `None` until then.
    ///
    /// The fan-in half of a fan-out: the step that receives the events returns `Option<...>`
    /// and emits only when the set is complete. Each call costs O(1).
    pub fn collect_events<E: Event>(&self, event: E, count: usize) -> Option<Vec<E>> {
        let events = self.run.state().collect(
            Some(self.invocation),
            self.step,
            AnyEvent::new(event),
            &[(EventType::of::<E>(), count)],
        )?;
        Some(
            events
                .into_iter()
                .map(|event| {
                    event
                        .downcast::<E>()
                        .unwrap_or_else(|_| unreachable!("buffered by type"))
                })
                .collect(),
        )
    }

    /// Buffers `event` until one event per entry of `expected` has arrived at this step, then
    /// returns them in the order of `expected` (events of one type in arrival order); returns
    /// `None` until then, and for an event whose type is not in `expected`.
    ///
    /// Each call costs O(`expected.len()`); for many events of one type use
    /// [`collect_events`](Self::collect_events).
    pub fn collect_events_of(
        &self,
        event: impl Into<AnyEvent>,
        expected: &[EventType],
    ) -> Option<Vec<AnyEvent>> {
        let mut runs: Vec<(EventType, usize)> = Vec::new();
        for ty in expected {
            match runs.last_mut() {
                Some((last, count)) if last == ty => *count += 1,
                _ => runs.push((*ty, 1)),
            }
        }
        self.run
            .state()
            .collect(Some(self.invocation), self.step, event.into(), &runs)
    }

    /// Waits for an event of type `E` to be sent into the run, typically a human's answer.
    ///
    /// The returned builder adds field requirements, a timeout (there is none by default) and a
    /// prompt to publish once the wait has begun; `.await` it. An event of type `E` that was sent
    /// before the wait began, and that no step took, is delivered at once.
    ///
    /// ```no_run
    /// # use eventflow::prelude::*;
    /// # async fn step(ctx: &Context) -> Result<StopEvent> {
    /// let answer = ctx
    ///     .wait_for_event::<HumanResponseEvent>()
    ///     .matching("request_id", "r-17")
    ///     .prompt(InputRequiredEvent::new("Approve the draft?").with("request_id", "r-17"))
    ///     .timeout(std::time::Duration::from_secs(3600))
    ///     .await?;
    /// Ok(StopEvent::new(answer.response))
    /// # }
    /// ```
    pub fn wait_for_event<E: Event>(&self) -> WaitForEvent<E> {
        WaitForEvent {
            ctx: self.clone(),
            requirements: Vec::new(),
            timeout: None,
            prompt: None,
            _event: PhantomData,
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("run_id", &self.run_id())
            .field("step", &self.step_name())
            .field("attempt", &self.attempt)
            .finish()
    }
}

/// Why `wait_for_event` returned without an event.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// No matching event arrived within the timeout.
    #[error("no {event} arrived within {timeout:?}")]
    TimedOut {
        /// The event type waited for.
        event: &'static str,
        /// The timeout.
        timeout: Duration,
    },
    /// The run finished while waiting.
    #[error("the run finished while waiting for {event}")]
    RunEnded {
        /// The event type waited for.
        event: &'static str,
    },
}

/// An event could not be sent into a run; the event is handed back.
#[derive(Debug, thiserror::Error)]
pub enum SendEventError {
    /// No step has the name given.
    #[error("cannot send {}: the workflow has no step named `{step}`", event.name())]
    UnknownStep {
        /// The name given.
        step: String,
        /// The event.
        event: AnyEvent,
    },
    /// The step named does not accept this event type.
    #[error("cannot send {} to step `{step}`: it does not accept that event", event.name())]
    NotAccepted {
        /// The step.
        step: String,
        /// The event.
        event: AnyEvent,
    },
    /// No step accepts this event type, and it is not an event from outside.
    #[error("cannot send {}: no step accepts it", event.name())]
    NoConsumer {
        /// The event.
        event: AnyEvent,
    },
    /// The run has already finished.
    #[error("cannot send {}: the run has finished", event.name())]
    RunFinished {
        /// The event.
        event: AnyEvent,
    },
}

impl SendEventError {
    /// The event that was not sent.
    pub fn into_event(self) -> AnyEvent {
        match self {
            Self::UnknownStep { event, .. }
            | Self::NotAccepted { event, .. }
            | Self::NoConsumer { event }
            | Self::RunFinished { event } => event,
        }
    }
}

/// A pending `wait_for_event`; `.await` it. Built by [`Context::wait_for_event`].
#[must_use = "a wait does nothing until awaited"]
#[derive(Debug)]
pub struct WaitForEvent<E> {
    ctx: Context,
    requirements: Vec<(String, Value)>,
    timeout: Option<Duration>,
    prompt: Option<AnyEvent>,
    _event: PhantomData<fn() -> E>,
}

impl<E: Event> WaitForEvent<E> {
    /// Accepts only events whose field `key` equals `value`.
    ///
    /// # Panics
    ///
    /// When `value` does not serialize to JSON.
    pub fn matching(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let key = key.into();
        let value = crate::event::field_value(&key, value);
        self.requirements.push((key, value));
        self
    }

    /// Gives up with [`WaitError::TimedOut`] after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Publishes `prompt` on the run's stream once the wait has begun, so an answer to it can
    /// never arrive before the run listens for it — and only if no matching event is already
    /// there, so a step that runs again (after a durable run was resumed) does not ask twice.
    pub fn prompt(mut self, prompt: impl Event) -> Self {
        self.prompt = Some(AnyEvent::new(prompt));
        self
    }
}

impl<E: Event> IntoFuture for WaitForEvent<E> {
    type Output = Result<E, WaitError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let run = &self.ctx.run;
            let waiter = run.next_waiter();
            let (reply, mut answer) = oneshot::channel();
            // The driver publishes the prompt only if the event is not already there: a step
            // that runs again after a crash does not ask a question that was answered.
            let registered = run.wait(WaitRequest {
                wait: Wait {
                    waiter,
                    invocation: self.ctx.invocation,
                    event_type: EventType::of::<E>(),
                    requirements: self.requirements,
                },
                prompt: self.prompt,
                reply,
            });
            if !registered {
                return Err(WaitError::RunEnded { event: E::NAME });
            }
            let event = match self.timeout {
                None => answer.await,
                Some(timeout) => match tokio::time::timeout(timeout, &mut answer).await {
                    Ok(event) => event,
                    Err(_) => {
                        // Closing first makes a delivery racing with the timeout either land
                        // here or fail in the driver, which then routes the event elsewhere.
                        answer.close();
                        match answer.try_recv() {
                            Ok(event) => Ok(event),
                            Err(_) => {
                                run.end_wait(waiter);
                                return Err(WaitError::TimedOut {
                                    event: E::NAME,
                                    timeout,
                                });
                            }
                        }
                    }
                },
            };
            let event = event.map_err(|_| WaitError::RunEnded { event: E::NAME })?;
            Ok(event
                .downcast::<E>()
                .unwrap_or_else(|_| unreachable!("waiters receive only their event type")))
        })
    }
}

/// Whether an event may be sent without a step to accept it: events from or to the outside.
pub(crate) fn may_lack_consumer(role: EventRole) -> bool {
    matches!(
        role,
        EventRole::External | EventRole::Outbound | EventRole::Stop
    )
}
