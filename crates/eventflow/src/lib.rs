//! # eventflow
//!
//! An event-driven workflow engine for AI applications: the programming model of LlamaIndex
//! Workflows, typed at compile time and run by a pure reducer on tokio.
//!
//! A workflow is a set of **steps**, async functions that each accept one event type (or a union)
//! and emit events. What a step accepts and emits is read from its signature, so the graph is
//! known, validated and drawable before anything runs.
//!
//! ```
//! use eventflow::prelude::*;
//!
//! #[derive(Event, Clone, Debug, Serialize, Deserialize)]
//! struct Draft { text: String }
//!
//! struct Writer;
//!
//! #[workflow]
//! impl Writer {
//!     #[step]
//!     async fn write(&self, ev: StartEvent) -> Result<Draft> {
//!         let topic: String = ev.get("topic")?;
//!         Ok(Draft { text: format!("A few words on {topic}.") })
//!     }
//!
//!     #[step]
//!     async fn publish(&self, ctx: &Context, ev: Draft) -> Result<StopEvent> {
//!         ctx.set("length", ev.text.len())?;
//!         Ok(StopEvent::new(ev.text))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let workflow = Writer.into_workflow()?;
//! let output = workflow.run(json!({"topic": "rust"})).await?;
//! assert_eq!(output.result::<String>()?, "A few words on rust.");
//! # Ok(())
//! # }
//! ```
//!
//! See the crate's README for the map from LlamaIndex Workflows to eventflow, and
//! `docs/ARCHITECTURE.md` for how runs are executed.

#![warn(missing_docs)]

// Lets the derive macros, which name `::eventflow`, be used inside this crate too.
extern crate self as eventflow;

mod context;
pub mod durable;
mod error;
mod event;
pub mod graph;
mod replay;
mod run;
mod step;
mod verbose;
mod workflow;

/// Where durable runs live: the `eventflow-store` crate (the `Store` trait, its backends, and
/// `store::open` for a URL). The engine depends on the trait only.
pub use eventflow_store as store;

pub use context::{Context, RetryInfo, SendEventError, StateError, WaitError, WaitForEvent};
pub use error::{SnapshotError, ValidationErrors, ValidationProblem, WorkflowError};
pub use event::{
    AnyEvent, Event, EventFieldError, EventJson, EventRole, EventType, HumanResponseEvent,
    InputRequiredEvent, RunCancelledEvent, RunFailedEvent, RunTimedOutEvent, StartEvent,
    StepFailedEvent, StepState, StepStateChanged, StopEvent, UnhandledEvent, WorkflowIdleEvent,
};
pub use eventflow_macros::{Event, EventUnion, catch_error, step, workflow};
pub use graph::{RunPath, WorkflowGraph};
pub use replay::{FormatError, ReplayError};
pub use run::{EventStream, RunContext, RunOutput, RunSnapshot, WorkflowHandler};
pub use step::{
    Backoff, BoxError, CatchError, DEFAULT_MAX_RECOVERIES, DEFAULT_NUM_WORKERS, GraphCheck,
    IntoStepResult, Retry, RetryPolicy, Step, StepError, StepFn, StepInput, StepOutput,
    UnknownGraphCheck,
};
pub use verbose::VerboseLayer;
pub use workflow::{IntoWorkflow, StartInput, Workflow, WorkflowBuilder};

/// Re-exported so that events can derive `JsonSchema` without a direct dependency (use
/// `#[schemars(crate = "eventflow::schemars")]`).
pub use schemars;

#[doc(hidden)]
pub mod __private {
    //! Used by the derive macros; not public API.

    use std::marker::PhantomData;

    pub use serde_json;
    use serde_json::Value;

    /// Picks `JsonSchema` when the probed type implements it (autoref specialization: the
    /// derive calls `(&&Probe::<Self>::new()).schema()` on a concrete type).
    pub struct Probe<T>(PhantomData<T>);

    impl<T> std::fmt::Debug for Probe<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Probe")
        }
    }

    impl<T> Probe<T> {
        /// A probe of `T`.
        pub fn new() -> Self {
            Probe(PhantomData)
        }
    }

    impl<T> Default for Probe<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// Chosen when the type implements `JsonSchema`.
    pub trait ViaJsonSchema {
        /// The schema.
        fn schema(&self) -> Option<Value>;
    }

    impl<T: schemars::JsonSchema> ViaJsonSchema for &Probe<T> {
        fn schema(&self) -> Option<Value> {
            Some(schemars::schema_for!(T).to_value())
        }
    }

    /// The fallback: no schema.
    pub trait WithoutSchema {
        /// No schema.
        fn schema(&self) -> Option<Value>;
    }

    impl<T> WithoutSchema for Probe<T> {
        fn schema(&self) -> Option<Value> {
            None
        }
    }
}

/// The result type of steps: any error converts into [`BoxError`] with `?`.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// Everything a workflow author needs, in one import.
pub mod prelude {
    pub use crate::{
        AnyEvent, BoxError, Context, Event, EventFieldError, EventType, EventUnion, GraphCheck,
        HumanResponseEvent, InputRequiredEvent, IntoWorkflow, Result, RetryPolicy, SnapshotError,
        StartEvent, StateError, Step, StepError, StepFailedEvent, StopEvent, ValidationErrors,
        WaitError, Workflow, WorkflowError, WorkflowHandler, catch_error, step, workflow,
    };
    pub use serde::{Deserialize, Serialize};
    pub use serde_json::json;
}
