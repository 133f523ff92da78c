//! The errors of model calls and retrieval.

/// A model call or a retrieval operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The request could not be sent or its response read (connection refused, reset, ...).
    #[error("request to {url} failed: {source}")]
    Transport {
        /// The URL called.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The request took longer than the client's timeout.
    #[error("request to {url} timed out after {timeout:?}")]
    Timeout {
        /// The URL called.
        url: String,
        /// The timeout.
        timeout: std::time::Duration,
    },
    /// The server answered with an error status; `message` is the server's own message.
    #[error("{url} answered {status}: {message}")]
    Status {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's error message (from its JSON error body when it has one).
        message: String,
    },
    /// The server's answer could not be understood.
    #[error("unexpected response from {url}: {message}")]
    InvalidResponse {
        /// The URL called.
        url: String,
        /// What was wrong with it.
        message: String,
    },
    /// The client is not configured (no base URL, no model, ...).
    #[error("not configured: {0}")]
    Config(String),
    /// Reading or writing a file (documents, a saved index) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A saved index or another stored value is not valid.
    #[error("invalid data: {0}")]
    InvalidData(String),
}
