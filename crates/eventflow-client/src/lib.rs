//! # eventflow-client
//!
//! The typed Rust client of `eventflow-server`, over its HTTP API (the API of LlamaIndex's
//! `llama-agents-server` 0.8, described in the server crate's `API.md`): health, workflows and
//! their schemas and graphs, runs that wait or not, handlers, cancelling, sending events into a
//! run (human in the loop), following a run's events with a stream that resumes by itself after
//! a dropped connection, and waiting for a result with a timeout.
//!
//! It depends on the wire format only (`eventflow-api`, whose types the server serializes and
//! this client reads, re-exported here), not on the eventflow engine: start events and events
//! are anything that serializes to their JSON fields, and results decode into your own types.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use eventflow_client::{Client, ClientError, HandlerStatus};
//! use futures::StreamExt;
//! use serde_json::json;
//!
//! # async fn demo() -> Result<(), ClientError> {
//! let client = Client::builder("http://127.0.0.1:8080")
//!     .token(std::env::var("EVENTFLOW_TOKEN").unwrap_or_default())
//!     .timeout(Duration::from_secs(30))
//!     .build()?;
//!
//! // Run and wait for the result.
//! let greeting: String = client.run("greet", json!({"name": "Ada"})).await?.decode_result()?;
//! println!("{greeting}");
//!
//! // Start a run, follow its events, answer its question.
//! let started = client.run_nowait("ask", json!({})).await?;
//! let mut events = client.events(&started.handler_id, Some(started.after_sequence));
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     println!("#{} {}: {}", event.seq, event.event_type, event.value);
//!     if event.event_type == "InputRequiredEvent" {
//!         let answer = json!({"response": "Ada"});
//!         client
//!             .send_event(&started.handler_id, "HumanResponseEvent", answer, None)
//!             .await?;
//!     }
//! }
//!
//! // Or wait at most a minute for the run to finish.
//! let handler = client.wait(&started.handler_id, Duration::from_secs(60)).await?;
//! assert_eq!(handler.status, HandlerStatus::Completed);
//! # Ok(())
//! # }
//! ```
//!
//! Errors the server answers carry its `{"detail": ...}` message ([`ClientError::detail`]);
//! `404`, `401`, `409` and `400` have their own variants.
//!
//! Timeouts: a request may take [`DEFAULT_TIMEOUT`] (60 s, longer than the server's 15 s SSE
//! heartbeat and 5 s cancel wait); [`Client::run`], which answers when the run has finished,
//! has no limit unless [`ClientBuilder::run_timeout`] sets one; an event stream has no total
//! limit, only an idle one ([`DEFAULT_STREAM_IDLE_TIMEOUT`]: silence without even a heartbeat
//! means a dead connection, and the stream reconnects).

#![warn(missing_docs)]

mod client;
mod error;
mod stream;
mod types;

pub use client::{
    Client, ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RECONNECTS,
    DEFAULT_RECONNECT_DELAY, DEFAULT_STREAM_IDLE_TIMEOUT, DEFAULT_TIMEOUT, MAX_RECONNECT_DELAY,
};
pub use error::ClientError;
pub use stream::EventStream;
pub use types::{HandlerFilter, RunOptions, SendEvent, Started};

/// The wire types, shared with the server (`eventflow-api`).
pub use eventflow_api::{
    CancelOutcome, EventEnvelope, GraphEdge, GraphNode, Handler, HandlerStatus, Health,
    PayloadError, RunStatus, SendOutcome, TERMINAL_EVENTS, WorkflowGraph, WorkflowSchema,
};

/// Re-exported: the JSON values start events, events and results travel as.
pub use serde_json;
