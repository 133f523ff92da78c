//! How a server is set up: where it listens, its store, and its production policies.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eventflow::store::Store;

use crate::error::ServerError;

/// Which origins browsers may call the server from.
///
/// llama-agents-server echoes any origin with credentials, so every web page its user visits can
/// drive it; eventflow sends no CORS headers unless origins are configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cors {
    /// No CORS headers: browsers refuse cross-origin calls. The default.
    #[default]
    Disabled,
    /// Only these origins (e.g. `https://app.example.com`), any method and header, with
    /// credentials.
    Origins(Vec<String>),
    /// Any origin (`Access-Control-Allow-Origin: *`), any method and header, never with
    /// credentials: for a public API whose callers send a bearer token themselves.
    AnyOrigin,
}

/// Where runs are stored.
#[derive(Clone)]
pub enum StoreConfig {
    /// A store URL for [`eventflow::store::open`]: `sqlite:PATH` (the default,
    /// `sqlite:eventflow.db`), `postgres://...` (feature `postgres`: a cluster of servers), or
    /// `memory` (tests: runs die with the process).
    Url(String),
    /// A store opened by the caller.
    Instance(Arc<dyn Store>),
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreConfig::Url(url) => f.debug_tuple("Url").field(&redact_url(url)).finish(),
            StoreConfig::Instance(_) => f.write_str("Instance(..)"),
        }
    }
}

/// A database URL with its password hidden, for logs and messages:
/// `postgres://app:***@db/x`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The server's configuration. Start from [`ServerConfig::default`] and change what you need:
///
/// ```
/// use std::time::Duration;
/// use eventflow_server::{Cors, ServerConfig};
///
/// let config = ServerConfig::default()
///     .addr(([0, 0, 0, 0], 8080))
///     .store_url("sqlite:runs.db")
///     .auth_token("s3cret")
///     .body_limit(256 * 1024)
///     .cors(Cors::Origins(vec!["https://app.example.com".into()]))
///     .sse_heartbeat(Duration::from_secs(10));
/// assert_eq!(config.body_limit_bytes(), 256 * 1024);
/// ```
#[derive(Clone)]
pub struct ServerConfig {
    pub(crate) addr: SocketAddr,
    pub(crate) store: StoreConfig,
    pub(crate) auth_token: Option<String>,
    pub(crate) body_limit: usize,
    pub(crate) cors: Cors,
    pub(crate) sse_heartbeat: Duration,
    pub(crate) cancel_wait: Duration,
    pub(crate) worker_id: Option<String>,
    pub(crate) poll_interval: Option<Duration>,
    pub(crate) lease_ttl: Option<Duration>,
    pub(crate) insecure_no_auth: bool,
    pub(crate) allowed_hosts: Vec<String>,
}

impl Default for ServerConfig {
    /// Listens on `127.0.0.1:8080`, stores runs in `sqlite:eventflow.db`, no auth, 1 MiB bodies,
    /// no CORS headers, SSE heartbeats every 15 s, cancel waits up to 5 s.
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            store: StoreConfig::Url("sqlite:eventflow.db".to_owned()),
            auth_token: None,
            body_limit: 1024 * 1024,
            cors: Cors::Disabled,
            sse_heartbeat: Duration::from_secs(15),
            cancel_wait: Duration::from_secs(5),
            worker_id: None,
            poll_interval: None,
            lease_ttl: None,
            insecure_no_auth: false,
            allowed_hosts: Vec::new(),
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("addr", &self.addr)
            .field("store", &self.store)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "***"))
            .field("body_limit", &self.body_limit)
            .field("cors", &self.cors)
            .field("sse_heartbeat", &self.sse_heartbeat)
            .field("cancel_wait", &self.cancel_wait)
            .field("worker_id", &self.worker_id)
            .field("insecure_no_auth", &self.insecure_no_auth)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// The address [`crate::serve_workflow`] and [`crate::Server::serve_configured`] listen on.
    pub fn addr(mut self, addr: impl Into<SocketAddr>) -> Self {
        self.addr = addr.into();
        self
    }

    /// The store, by URL: `sqlite:PATH`, `postgres://...` or `memory`.
    pub fn store_url(mut self, url: impl Into<String>) -> Self {
        self.store = StoreConfig::Url(url.into());
        self
    }

    /// A store opened by the caller (shared with other engines, a Postgres schema, ...).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = StoreConfig::Instance(store);
        self
    }

    /// Requires `Authorization: Bearer <token>` on every route but `/health`. An empty token
    /// is no token (an unset variable read with `unwrap_or_default` must not open the server
    /// to anyone sending `Bearer `).
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.auth_token = (!token.is_empty()).then_some(token);
        self
    }

    /// Serves on an address other machines can reach without an auth token. Without this, the
    /// server refuses to listen on a non-loopback address when no token is set: anyone on the
    /// network could start, read and cancel its runs.
    pub fn insecure_no_auth(mut self, allow: bool) -> Self {
        self.insecure_no_auth = allow;
        self
    }

    /// Host names a loopback server without a token answers to, besides `localhost`,
    /// `127.0.0.1` and `[::1]` (repeatable; `eventflow serve --allowed-host NAME`).
    ///
    /// Such a server refuses (403) a request whose `Host` header names anything else: otherwise
    /// a web page could point a name of its own at 127.0.0.1 (DNS rebinding) and drive the
    /// server from the browser of anyone who runs it. Allow the names you reach it by, e.g.
    /// through a proxy or a tunnel: `name` allows it on any port, `name:port` on that port only.
    /// Names are compared without regard to case. A server with a token does not check names.
    pub fn allowed_hosts<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.allowed_hosts.extend(
            names
                .into_iter()
                .map(|name| name.into().to_ascii_lowercase()),
        );
        self
    }

    /// Fails with [`ServerError::Config`] when serving on `addr` would let other machines in
    /// with nothing to stop them (see [`insecure_no_auth`](Self::insecure_no_auth)). The
    /// `serve` and `bind` methods of [`crate::Server`] check it; check it yourself before
    /// binding a listener of your own.
    pub fn check_exposure(&self, addr: SocketAddr) -> Result<(), ServerError> {
        if addr.ip().is_loopback() || self.auth_token.is_some() || self.insecure_no_auth {
            return Ok(());
        }
        Err(ServerError::Config(format!(
            "refusing to serve on {addr} without an auth token: any machine that reaches it \
             could start, read and cancel runs. Set a token (`--token` or `EVENTFLOW_TOKEN`; \
             `ServerConfig::auth_token`), listen on 127.0.0.1, or accept the risk \
             (`--insecure-no-auth`; `ServerConfig::insecure_no_auth`)"
        )))
    }

    /// The largest request body accepted, in bytes; larger ones get 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The configured body limit, in bytes.
    pub fn body_limit_bytes(&self) -> usize {
        self.body_limit
    }

    /// Which origins browsers may call from.
    pub fn cors(mut self, cors: Cors) -> Self {
        self.cors = cors;
        self
    }

    /// How long an SSE stream may stay silent before a `: heartbeat` comment is sent.
    pub fn sse_heartbeat(mut self, every: Duration) -> Self {
        self.sse_heartbeat = every;
        self
    }

    /// How long `POST /handlers/{id}/cancel` waits for the run to stop before answering.
    pub fn cancel_wait(mut self, wait: Duration) -> Self {
        self.cancel_wait = wait;
        self
    }

    /// The engine's worker id in the store (default: a random UUID).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// How often the engine polls the store for work and new events when no signal came
    /// (engine default: 500 ms).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = Some(every);
        self
    }

    /// How long the engine's worker may go without a heartbeat before other servers take its
    /// runs over (engine default: 10 s).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url as redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:hunter2@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("sqlite:runs.db"), "sqlite:runs.db");
    }
}
