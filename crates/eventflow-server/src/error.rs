//! The server's errors: what fails a request (mapped to a status code and a `{"detail"}` body)
//! and what fails building or running the server.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventflow::durable::EngineError;
use eventflow::store::{RunStatus, StoreError, error_chain};

/// Why a request failed. Every variant maps to one status code ([`ApiError::status`]) and is
/// answered as JSON `{"detail": "<message>"}`, the body llama-agents-server uses.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request body is not valid JSON (400).
    #[error("Invalid JSON body: {0}")]
    InvalidJson(String),
    /// The request is malformed: a wrong type of body, a bad query parameter (400).
    #[error("{0}")]
    BadRequest(String),
    /// The start event of a run is not valid for the workflow (400).
    #[error("Validation error for 'start_event': {0}")]
    InvalidStartEvent(String),
    /// An event sent to a run is not one of its workflow's types, or does not decode (400).
    #[error("{0}")]
    InvalidEvent(String),
    /// The bearer token is missing or wrong (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// No route has this path (404).
    #[error("{0}")]
    NotFound(String),
    /// No workflow of this name is served (404).
    #[error("Workflow '{name}' not found")]
    WorkflowNotFound {
        /// The name asked for.
        name: String,
    },
    /// No run has this handler id (404).
    #[error("Handler '{handler_id}' not found")]
    HandlerNotFound {
        /// The id asked for.
        handler_id: String,
    },
    /// The run with this handler id has not finished, so the id cannot start another run
    /// (409, as the reference answers).
    #[error(
        "Handler '{handler_id}' is already running ({status}): a handler id starts a new run only once its run has finished"
    )]
    HandlerRunning {
        /// The id.
        handler_id: String,
        /// The run's status.
        status: RunStatus,
    },
    /// The handler id belongs to a run of another workflow (409).
    #[error(
        "Handler '{handler_id}' is a run of workflow '{workflow}': a handler id continues runs of its own workflow only"
    )]
    HandlerOfOtherWorkflow {
        /// The id.
        handler_id: String,
        /// The workflow its run belongs to.
        workflow: String,
    },
    /// The run has finished: it accepts no events, and a completed or failed run cannot be
    /// cancelled (409).
    #[error("Workflow already completed: handler '{handler_id}' is {status}")]
    HandlerFinished {
        /// The run.
        handler_id: String,
        /// How it finished.
        status: RunStatus,
    },
    /// The path exists, but not with this method (405).
    #[error("Method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
    },
    /// The request names a host this server does not answer to: a loopback server without a
    /// token answers only to loopback names and `ServerConfig::allowed_hosts` (403).
    #[error("{0}")]
    HostNotAllowed(String),
    /// A web page of a site the CORS configuration does not allow sent a write (403).
    #[error("{0}")]
    CrossSite(String),
    /// The request body is larger than the configured limit (413).
    #[error("Request body too large: the limit is {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The server is shutting down (503).
    #[error("{0}")]
    Unavailable(String),
    /// The store failed (500, or 503 when the database could not be reached).
    #[error("store error")]
    Store(#[from] StoreError),
    /// Something else failed inside the server (500).
    #[error("Internal server error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The status code the error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::BadRequest(_)
            | ApiError::InvalidStartEvent(_)
            | ApiError::InvalidEvent(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::HostNotAllowed(_) | ApiError::CrossSite(_) => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotFound(_)
            | ApiError::WorkflowNotFound { .. }
            | ApiError::HandlerNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::HandlerRunning { .. }
            | ApiError::HandlerOfOtherWorkflow { .. }
            | ApiError::HandlerFinished { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(error) if error.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Maps an engine error met while serving the run `handler_id` (named in a 500's message).
    pub(crate) fn from_engine(error: EngineError, handler_id: &str) -> Self {
        match ApiError::from(error) {
            ApiError::Internal(message) => {
                ApiError::Internal(format!("handler '{handler_id}': {message}"))
            }
            other => other,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::UnknownRun { run_id } => ApiError::HandlerNotFound { handler_id: run_id },
            EngineError::InvalidRunId { reason } => {
                ApiError::BadRequest(format!("Invalid handler id: {reason}"))
            }
            EngineError::InvalidIdempotencyKey { reason } => {
                ApiError::BadRequest(format!("Invalid Idempotency-Key: {reason}"))
            }
            EngineError::UnknownWorkflow { name } => ApiError::WorkflowNotFound { name },
            EngineError::Start(error) => ApiError::InvalidStartEvent(error_chain(&error)),
            EngineError::UnknownEventType {
                workflow,
                name,
                known,
                ..
            } => ApiError::InvalidEvent(format!(
                "Invalid event type: {name}. Expected one of {} (the event types of workflow \
                 '{workflow}')",
                known.join(", ")
            )),
            EngineError::InvalidEvent { reason, .. } => {
                ApiError::InvalidEvent(format!("Invalid event: {reason}"))
            }
            EngineError::OtherWorkflow { run_id, workflow } => ApiError::HandlerOfOtherWorkflow {
                handler_id: run_id,
                workflow,
            },
            EngineError::Store(StoreError::RunFinished { run_id, status }) => {
                ApiError::HandlerFinished {
                    handler_id: run_id,
                    status,
                }
            }
            EngineError::Store(StoreError::UnknownRun { run_id }) => {
                ApiError::HandlerNotFound { handler_id: run_id }
            }
            EngineError::Store(StoreError::RunActive { run_id, status }) => {
                ApiError::HandlerRunning {
                    handler_id: run_id,
                    status,
                }
            }
            EngineError::Store(StoreError::DuplicateRun { run_id }) => ApiError::HandlerRunning {
                handler_id: run_id,
                status: RunStatus::Running,
            },
            EngineError::Store(error) => ApiError::Store(error),
            error => ApiError::Internal(error_chain(&error)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            // The store's and the server's own failures stay in the log: a database's text
            // names tables, queries and hosts, and is no use to a client. The id ties the
            // answer to the log line. Messages are logged with Debug formatting: they may
            // quote what a client sent (a name, a cursor), and a newline or an escape sequence
            // in it must not forge a log line or reach a terminal.
            ApiError::Store(_) | ApiError::Internal(_) => {
                let error_id = uuid::Uuid::new_v4().simple().to_string();
                let error_id = &error_id[..12];
                tracing::error!(
                    error = ?error_chain(&self),
                    status = status.as_u16(),
                    error_id,
                    "request failed"
                );
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    format!("The store is unavailable; retry later (error id {error_id})")
                } else {
                    format!(
                        "Internal server error (error id {error_id}; the server log has the cause)"
                    )
                }
            }
            _ => {
                if status.is_server_error() {
                    tracing::error!(error = ?error_chain(&self), status = status.as_u16(), "request failed");
                } else {
                    tracing::debug!(error = ?error_chain(&self), status = status.as_u16(), "request refused");
                }
                self.to_string()
            }
        };
        let mut response = (
            status,
            axum::Json(eventflow_api::ErrorBody {
                detail,
                handler_id: None,
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Why the server could not be built or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be opened.
    #[error("cannot open the store")]
    Store(#[from] StoreError),
    /// The durable engine could not start.
    #[error("cannot start the engine")]
    Engine(#[from] EngineError),
    /// Two workflows were registered under one name.
    #[error("two workflows are named `{name}`")]
    DuplicateWorkflow {
        /// The name.
        name: String,
    },
    /// The configuration is invalid (a CORS origin that is not a header value, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Binding or serving the socket failed.
    #[error("binding or serving the socket failed")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_refusals_map_to_the_reference_codes() {
        let map = |error: StoreError| ApiError::from_engine(EngineError::Store(error), "h");
        // A run that finished between reading it and queueing the event: 409, as when the
        // route saw it finished.
        let finished = map(StoreError::RunFinished {
            run_id: "h".into(),
            status: RunStatus::Completed,
        });
        assert_eq!(finished.status(), StatusCode::CONFLICT);
        assert!(
            finished
                .to_string()
                .starts_with("Workflow already completed"),
            "{finished}"
        );
        let running = map(StoreError::RunActive {
            run_id: "h".into(),
            status: RunStatus::Waiting,
        });
        assert_eq!(running.status(), StatusCode::CONFLICT);
        assert!(
            running
                .to_string()
                .starts_with("Handler 'h' is already running"),
            "{running}"
        );
        let unknown = map(StoreError::UnknownRun { run_id: "h".into() });
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    }
}
