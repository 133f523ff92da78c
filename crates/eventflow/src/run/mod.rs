//! Running a workflow: the reducer, the executor of its commands, the in-memory loop, the
//! handler and the event stream.
//!
//! The reducer (`reducer.rs`) decides; the [`Executor`] carries out its commands (step tasks,
//! timers, waiters) and ends a run into one [`RunEnd`]; a loop decides when — `in_memory.rs`
//! at once, the durable loop (in `crate::durable`) after each commit. Below the executor sit
//! what a run shares with its steps and handler (`shared.rs`), its mailbox (`message.rs`,
//! `inbox.rs`) and its stream log (`stream.rs`). This file only declares and re-exports; the
//! order the files import each other in is checked by `tests/architecture.rs`.

mod context;
mod end;
mod executor;
mod handler;
mod in_memory;
mod inbox;
mod message;
pub(crate) mod reducer;
mod shared;
mod snapshot;
mod stream;
/// std's and tokio's locks and wake-ups, or loom's in the loom models of `inbox` and `stream`.
mod sync;

pub(crate) use end::RunEnd;
pub(crate) use executor::Executor;
pub(crate) use message::Msg;
pub(crate) use reducer::{RunState, Tick};
pub(crate) use shared::{RunShared, new_run, start_tick};

pub use context::RunContext;
pub use handler::{EventStream, RunOutput, WorkflowHandler};
pub(crate) use snapshot::RunImage;
pub use snapshot::RunSnapshot;
