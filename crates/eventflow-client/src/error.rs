//! What a call can fail with.

use std::time::Duration;

use eventflow_api::{HandlerStatus, PayloadError};

/// Why a call failed. Errors the server answered carry its `detail` message, which names the
/// workflow, run, event type, field or step at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// 400: the request was refused (a start event or event that does not decode, an unknown
    /// event type or step, a bad filter, ...).
    #[error("bad request (400): {detail}")]
    BadRequest {
        /// The server's message.
        detail: String,
    },
    /// 401: the bearer token is missing or wrong.
    #[error("unauthorized (401): {detail}")]
    Unauthorized {
        /// The server's message.
        detail: String,
    },
    /// 404: no such workflow, handler or route.
    #[error("not found (404): {detail}")]
    NotFound {
        /// The server's message.
        detail: String,
    },
    /// 409: the handler id is taken, or the run has finished (it takes no more events; a
    /// completed or failed run cannot be cancelled).
    #[error("conflict (409): {detail}")]
    Conflict {
        /// The server's message.
        detail: String,
    },
    /// Any other error status (413 body too large, 500, 503 while the server shuts down, ...).
    #[error("HTTP {status}: {detail}")]
    Http {
        /// The status code.
        status: u16,
        /// The server's message (or the body, when it is not `{"detail": ...}`).
        detail: String,
    },
    /// The run finished without completing
    /// ([`Handler::into_result`](crate::Handler::into_result), converted from
    /// [`PayloadError::NotCompleted`]).
    #[error(
        "handler '{handler_id}' {status}{}",
        error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
    )]
    RunFailed {
        /// The run.
        handler_id: String,
        /// How it finished (`failed`, `cancelled`, or not at all).
        status: HandlerStatus,
        /// The server's account of the failure.
        error: Option<String>,
    },
    /// A request, or a [`Client::wait`](crate::Client::wait), did not finish in time.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What timed out.
        operation: String,
        /// The limit.
        after: Duration,
    },
    /// The server could not be reached, or the connection failed.
    #[error("transport error")]
    Transport(#[source] reqwest::Error),
    /// An event stream ended with an error the server reported (`event: error`), or could not
    /// be resumed within the reconnection budget.
    #[error("event stream of handler '{handler_id}' failed: {detail}")]
    Stream {
        /// The run.
        handler_id: String,
        /// What went wrong.
        detail: String,
    },
    /// A start event or event could not be serialized as JSON.
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// What was encoded.
        what: String,
        /// The encoder's message.
        message: String,
    },
    /// A response did not decode as expected.
    #[error("cannot decode {what}: {message}")]
    Decode {
        /// What was decoded.
        what: String,
        /// The decoder's message.
        message: String,
    },
    /// The client's configuration is not usable: the base URL is not an `http(s)://` URL, or
    /// the token cannot be sent in a header.
    #[error("invalid client configuration: {0}")]
    Config(String),
}

/// A payload's content that is not what was asked: [`PayloadError::NotCompleted`] is
/// [`ClientError::RunFailed`], [`PayloadError::Decode`] is [`ClientError::Decode`], so
/// `handler.decode_result()?` works in a function that returns a `ClientError`.
impl From<PayloadError> for ClientError {
    fn from(error: PayloadError) -> Self {
        match error {
            PayloadError::NotCompleted {
                handler_id,
                status,
                error,
            } => ClientError::RunFailed {
                handler_id,
                status,
                error,
            },
            PayloadError::Decode { what, message } => ClientError::Decode { what, message },
            // A kind of payload error this client does not know yet.
            other => ClientError::Decode {
                what: "a payload".to_owned(),
                message: other.to_string(),
            },
        }
    }
}

impl ClientError {
    /// The HTTP status the server answered with, for errors the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::BadRequest { .. } => Some(400),
            ClientError::Unauthorized { .. } => Some(401),
            ClientError::NotFound { .. } => Some(404),
            ClientError::Conflict { .. } => Some(409),
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `detail` message, for errors the server answered.
    pub fn detail(&self) -> Option<&str> {
        match self {
            ClientError::BadRequest { detail }
            | ClientError::Unauthorized { detail }
            | ClientError::NotFound { detail }
            | ClientError::Conflict { detail }
            | ClientError::Http { detail, .. }
            | ClientError::Stream { detail, .. } => Some(detail),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: the server could not be reached, timed out, or
    /// answered 502, 503 (shutting down, store unreachable) or 504.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport(_) | ClientError::Timeout { .. } => true,
            ClientError::Http { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }

    /// The error for an error status and its body.
    pub(crate) fn from_status(status: u16, body: &str) -> Self {
        let detail = detail_of(body);
        match status {
            400 => ClientError::BadRequest { detail },
            401 => ClientError::Unauthorized { detail },
            404 => ClientError::NotFound { detail },
            409 => ClientError::Conflict { detail },
            status => ClientError::Http { status, detail },
        }
    }

    /// Wraps a reqwest error, telling timeouts apart.
    pub(crate) fn transport(error: reqwest::Error, operation: &str, limit: Duration) -> Self {
        if error.is_timeout() {
            ClientError::Timeout {
                operation: operation.to_owned(),
                after: limit,
            }
        } else {
            ClientError::Transport(error)
        }
    }
}

/// The `detail` of a `{"detail": ...}` body (a string, or other JSON as text), else the body.
fn detail_of(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut fields)) => match fields.remove("detail") {
            Some(serde_json::Value::String(detail)) => detail,
            Some(other) => other.to_string(),
            None => body.to_owned(),
        },
        _ if body.trim().is_empty() => "(empty body)".to_owned(),
        _ => body.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_variants_with_the_detail() {
        let error = ClientError::from_status(404, r#"{"detail": "Workflow 'nope' not found"}"#);
        assert!(matches!(&error, ClientError::NotFound { detail } if detail.contains("nope")));
        assert_eq!(error.status(), Some(404));
        let error = ClientError::from_status(422, r#"{"detail": [{"loc": ["body"]}]}"#);
        assert_eq!(error.detail(), Some(r#"[{"loc":["body"]}]"#));
        let error = ClientError::from_status(502, "Bad Gateway");
        assert_eq!(error.detail(), Some("Bad Gateway"));
        assert!(error.is_transient());
        let error = ClientError::RunFailed {
            handler_id: "h".into(),
            status: HandlerStatus::Failed,
            error: Some("kaboom".into()),
        };
        assert_eq!(error.to_string(), "handler 'h' failed: kaboom");
    }
}
