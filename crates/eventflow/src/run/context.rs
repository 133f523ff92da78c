//! A run's context state as a value a caller holds: seeded before a run, read after it, and
//! carried into the next run — a chat's memory across turns.
//!
//! It is a handle on the state of the last run started from it (or on the seed, before any):
//! `run_with_context` starts the next run from a copy of that state and points the handle at
//! the new run. The durable engine does the same for a finished run started again under its id
//! (`StartOptions::continue_finished`), with the store holding the state.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::{ContextState, StateError};
use crate::error::WorkflowError;
use crate::run::shared::RunShared;
use crate::workflow::Workflow;

/// The context state of a run — its key/value pairs, typed state and collect buffers — to
/// seed before a run, read after it, and start the next run from.
///
/// Cloning gives another handle on the same context. Get one with [`RunContext::new`] (empty,
/// to seed), [`RunOutput::context`](crate::RunOutput::context) or
/// [`WorkflowHandler::context`](crate::WorkflowHandler::context); start a run from it with
/// [`Workflow::run_with_context`].
///
/// ```
/// use eventflow::prelude::*;
/// use eventflow::RunContext;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let counter = Workflow::builder("counter")
///     .add_step("count", |ctx: Context, _: StartEvent| async move {
///         let n = ctx.get_or::<u32>("n", 0)? + 1;
///         ctx.set("n", n)?;
///         Ok::<_, BoxError>(StopEvent::new(n))
///     })
///     .build()?;
/// let context = RunContext::new();
/// context.set("n", 10)?;
/// for expected in [11, 12, 13] {
///     let output = counter.run_with_context(&context, json!({})).await?;
///     assert_eq!(output.result::<u32>()?, expected);
/// }
/// assert_eq!(context.get::<u32>("n")?, 13);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RunContext {
    holder: Arc<Mutex<Holder>>,
}

#[derive(Clone)]
enum Holder {
    /// No run has used it yet: the state seeded with `set` and `edit_state`.
    Seed(Arc<ContextState>),
    /// The state of the last run started from it: live while the run goes on, as the run
    /// left it once it has finished.
    Run(Arc<RunShared>),
}

impl RunContext {
    /// An empty context, to seed with [`set`](Self::set) and [`edit_state`](Self::edit_state).
    pub fn new() -> Self {
        RunContext {
            holder: Arc::new(Mutex::new(Holder::Seed(Arc::default()))),
        }
    }

    /// The context of a run: its live state while it goes on, the state it left after.
    pub(crate) fn of_run(run: Arc<RunShared>) -> Self {
        RunContext {
            holder: Arc::new(Mutex::new(Holder::Run(run))),
        }
    }

    /// A new handle on the run this one holds (for `RunOutput::context`, whose own handle is
    /// always on its run): a run started from the new handle moves only the new handle. A
    /// seed is not shared: the new handle of a seed is empty.
    pub(crate) fn detached(&self) -> Self {
        match &*self.lock() {
            Holder::Run(run) => RunContext::of_run(run.clone()),
            Holder::Seed(_) => RunContext::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Holder> {
        self.holder.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the state through `read`, without holding this handle's lock (`read` may be a
    /// user's closure that uses the handle again).
    fn with_state<R>(&self, read: impl FnOnce(&ContextState) -> R) -> R {
        let holder = self.lock().clone();
        match &holder {
            Holder::Run(run) => read(&run.state),
            Holder::Seed(state) => read(state),
        }
    }

    /// Stores `value` under `key` (a dotted path reaches into nested objects, as
    /// [`Context::set`](crate::Context::set) does). On the context of a run still going, the
    /// run's steps see it.
    pub fn set<T: Serialize>(&self, key: &str, value: T) -> Result<(), StateError> {
        self.with_state(|state| state.set(key, &value))
    }

    /// The value under `key`, as a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, StateError> {
        self.with_state(|state| state.get(key))
    }

    /// Runs `edit` on the typed state (created with `Default` when there is none), as
    /// [`Context::edit_state`](crate::Context::edit_state) does.
    pub fn edit_state<S, R>(&self, edit: impl FnOnce(&mut S) -> R) -> Result<R, StateError>
    where
        S: Serialize + DeserializeOwned + Default + Send + 'static,
    {
        self.with_state(|state| state.edit(edit))
    }

    /// The id of the run using this context now, if one is still going.
    pub fn running(&self) -> Option<String> {
        match &*self.lock() {
            Holder::Run(run) if !run.stream.is_closed() => Some(run.run_id.clone()),
            _ => None,
        }
    }

    /// Takes the state a new run of `workflow` starts from, and points this context at that
    /// run (made by `start` from the state).
    pub(crate) fn hand_to(
        &self,
        workflow: &Workflow,
        start: impl FnOnce(ContextState) -> Arc<RunShared>,
    ) -> Result<Arc<RunShared>, WorkflowError> {
        let mut holder = self.lock();
        if let Holder::Run(run) = &*holder {
            if !run.stream.is_closed() {
                return Err(WorkflowError::ContextInUse {
                    run_id: run.run_id.clone(),
                });
            }
            if run.workflow.fingerprint() != workflow.fingerprint() {
                return Err(WorkflowError::ContextOfOtherWorkflow {
                    workflow: run.workflow.name().to_owned(),
                });
            }
        }
        let state = match &mut *holder {
            Holder::Seed(seed) => {
                // Shared only while a `set` or `get` on another thread is in flight.
                match Arc::try_unwrap(std::mem::take(seed)) {
                    Ok(state) => state,
                    Err(shared) => match shared.copy() {
                        Ok(state) => state,
                        Err(source) => {
                            *seed = shared;
                            return Err(WorkflowError::ContextUnserializable(source));
                        }
                    },
                }
            }
            // The finished run keeps its state, for its output to read.
            Holder::Run(run) => run
                .state
                .copy()
                .map_err(WorkflowError::ContextUnserializable)?,
        };
        let run = start(state);
        *holder = Holder::Run(run.clone());
        Ok(run)
    }
}

impl Default for RunContext {
    fn default() -> Self {
        RunContext::new()
    }
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("RunContext");
        if let Holder::Run(run) = &*self.lock() {
            debug.field("run_id", &run.run_id);
        }
        debug.finish_non_exhaustive()
    }
}
