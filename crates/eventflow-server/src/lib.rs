//! # eventflow-server
//!
//! The HTTP server of eventflow: registered workflows served over the API of LlamaIndex's
//! `llama-agents-server` 0.8, so its Python client (`llama-agents-client`) works unchanged;
//! every run is a durable run of [`eventflow::durable::Engine`], kept in a store (a SQLite file
//! by default, Postgres for a cluster of servers).
//!
//! One workflow, one line:
//!
//! ```no_run
//! use eventflow::prelude::*;
//! use eventflow_server::{ServerConfig, serve_workflow};
//!
//! # async fn demo(workflow: Workflow) -> Result<(), eventflow_server::ServerError> {
//! serve_workflow(workflow, ServerConfig::default().addr(([127, 0, 0, 1], 8080))).await
//! # }
//! ```
//!
//! Several workflows, a store, auth and the production policies (an address other machines can
//! reach needs a token, or `insecure_no_auth`):
//!
//! ```no_run
//! use eventflow::prelude::*;
//! use eventflow_server::{Server, ServerConfig};
//!
//! # async fn demo(greet: Workflow, approve: Workflow) -> Result<(), eventflow_server::ServerError> {
//! let config = ServerConfig::default()
//!     .store_url("postgres://eventflow@db/eventflow")
//!     .auth_token(std::env::var("EVENTFLOW_TOKEN").unwrap_or_default());
//! Server::builder(config)
//!     .workflow(greet)
//!     .workflow(approve)
//!     .build()
//!     .await?
//!     .serve(([0, 0, 0, 0], 8080))
//!     .await
//! # }
//! ```
//!
//! The routes, payloads and status codes are described in `API.md` next to this crate's
//! `Cargo.toml`, and served as OpenAPI at `/openapi.json`. Beyond the reference: bearer-token
//! auth, a request body limit, configurable CORS, a DNS-rebinding guard on loopback servers
//! without a token ([`ServerConfig::allowed_hosts`]), Prometheus metrics at `/metrics`,
//! structured logs with run ids (request values escaped), and a graceful shutdown that hands
//! runs back to the store.

#![warn(missing_docs)]

mod config;
mod envelope;
mod error;
mod graph;
mod metrics;
mod openapi;
mod routes;
mod schema;
mod server;
mod time;

pub use config::{Cors, ServerConfig, StoreConfig, redact_url};
pub use error::{ApiError, ServerError};
pub use server::{RunningServer, Server, ServerBuilder, shutdown_signal};

/// Serves one workflow on [`ServerConfig::addr`] until SIGINT or SIGTERM, then shuts down
/// gracefully. The workflow may start with `StartEvent` or a typed start event. For several
/// workflows or registered event schemas, use [`Server::builder`].
pub async fn serve_workflow(
    workflow: eventflow::Workflow,
    config: ServerConfig,
) -> Result<(), ServerError> {
    Server::builder(config)
        .workflow(workflow)
        .build()
        .await?
        .serve_configured()
        .await
}

/// The repository README's code (the engine's and the server's), compiled and run as doctests
/// here, the crate that sees both, so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
