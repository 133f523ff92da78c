//! # eventflow-api
//!
//! The wire types of eventflow's HTTP API — the API of LlamaIndex's `llama-agents-server` 0.8,
//! described route by route in `eventflow-server`'s `API.md`: handlers (runs) and their
//! statuses, event envelopes, run and send requests, workflow graphs and the small answers of
//! the other routes.
//!
//! `eventflow-server` serializes them and generates its OpenAPI document (`/openapi.json`) from
//! them ([`utoipa::ToSchema`]); `eventflow-client` deserializes them. So the wire format is
//! written once, and a client does not pull in the engine: this crate depends on serde,
//! serde_json and utoipa only.
//!
//! Every type reads what older and newer servers send: optional and eventflow-only fields have
//! defaults, statuses a reader does not know become `Unknown`, and [`Handler`] and the graph
//! types keep fields they do not know in `extra`.
//!
//! ```
//! use eventflow_api::{EventEnvelope, Handler, HandlerStatus, RunStatus};
//! use serde_json::json;
//!
//! // What `GET /handlers/{handler_id}` answers for a completed run.
//! let handler: Handler = serde_json::from_value(json!({
//!     "handler_id": "h1", "workflow_name": "greet", "run_id": "h1",
//!     "status": "completed", "eventflow_status": "completed",
//!     "result": {"type": "StopEvent", "value": {"result": "Hello, Ada!"},
//!                "qualified_name": "workflows.events.StopEvent", "types": null},
//!     "started_at": "2026-11-24T09:19:34.566000+00:00", "last_sequence": 2
//! }))?;
//! assert_eq!(handler.status, HandlerStatus::Completed);
//! assert_eq!(handler.eventflow_status, Some(RunStatus::Completed));
//! assert_eq!(handler.result_value(), Some(&json!("Hello, Ada!")));
//!
//! // What a client sends to `POST /events/{handler_id}`.
//! let answer = EventEnvelope::new("HumanResponseEvent", json!({"response": "Bob"}));
//! assert_eq!(
//!     serde_json::to_value(&answer)?,
//!     json!({"type": "HumanResponseEvent", "value": {"response": "Bob"},
//!            "qualified_name": null, "types": null})
//! );
//! # Ok::<(), serde_json::Error>(())
//! ```

#![warn(missing_docs)]

mod bodies;
mod envelope;
mod error;
mod graph;
mod handler;
mod status;

pub use bodies::{
    CancelOutcome, ErrorBody, HandlerList, Health, Representation, RunRequest, SendEventRequest,
    SendOutcome, WorkflowEvents, WorkflowList, WorkflowSchema,
};
pub use envelope::{EventEnvelope, TERMINAL_EVENTS};
pub use error::PayloadError;
pub use graph::{GraphEdge, GraphNode, WorkflowGraph};
pub use handler::Handler;
pub use status::{HandlerStatus, RunStatus};

/// Re-exported: the derive behind the types' OpenAPI schemas, for servers that document them.
pub use utoipa;
