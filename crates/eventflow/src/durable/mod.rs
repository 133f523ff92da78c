//! Durable runs: journaled to a [`Store`](crate::store::Store), resumed after crashes, shared by a cluster of workers.
//!
//! An [`Engine`] is one worker. It serves a set of workflows: it starts runs (recorded in the
//! store before `start` returns), claims runs that need a worker (new ones, ones released while
//! they waited for an event that has now arrived, and ones whose worker died), and drives each
//! with the same reducer as in-memory runs — but every tick is journaled before its commands are
//! carried out. See `docs/DURABILITY.md` for the promise and the tests that prove it.
//!
//! ```no_run
//! use eventflow::prelude::*;
//! use eventflow::durable::Engine;
//! use eventflow::store::SqliteStore;
//!
//! # async fn demo(workflow: Workflow) -> anyhow::Result<()> {
//! let store = SqliteStore::open("eventflow.db").await?;
//! let engine = Engine::builder(store).workflow(workflow).start().await?;
//! let run_id = engine.start("greeter", json!({"name": "Ada"})).await?;
//! let record = engine.wait(&run_id, None).await?;
//! println!("{:?}", record.result);
//! engine.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod builder;
mod engine;
mod error;
mod hook;
mod journal;
mod queries;
mod rebuild;
mod recorder;
mod run_id;
mod run_loop;
mod watch;
mod worker;

/// What [`Engine::builder`] accepts as a store: a store value or a shared one.
pub use crate::store::IntoStore;
pub use builder::EngineBuilder;
pub use engine::{Engine, SequencedEvent, StartOptions, Started};
pub use error::EngineError;
pub use hook::{CommitHook, CommitInfo, CompletedStep};
pub use queries::RunCounts;
pub use run_id::{MAX_RUN_ID_BYTES, check_idempotency_key, check_run_id};
