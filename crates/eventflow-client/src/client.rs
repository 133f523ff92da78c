//! The client: one method per route.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use eventflow_api::{
    CancelOutcome, Handler, HandlerList, Health, Representation, RunRequest, SendEventRequest,
    SendOutcome, WorkflowEvents, WorkflowGraph, WorkflowList, WorkflowSchema,
};

use crate::error::ClientError;
use crate::stream::{EventStream, StreamConfig};
use crate::types::{HandlerFilter, RunOptions, SendEvent, Started};

/// How long a request may take by default: longer than the server's SSE heartbeat (15 s) and
/// its cancel wait (5 s), so a slow answer is not mistaken for a dead server.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long connecting may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an event stream may stay silent (not even a heartbeat) before the client takes the
/// connection for dead and reconnects: four of the server's default 15 s heartbeats.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times in a row an event stream may fail to reconnect before it gives up.
pub const DEFAULT_MAX_RECONNECTS: u32 = 8;

/// The first delay before reconnecting an event stream; it doubles with every failure in a row,
/// up to [`MAX_RECONNECT_DELAY`].
pub const DEFAULT_RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// The longest delay between two reconnection attempts.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Configures a [`Client`]; see [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    base_url: String,
    token: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    run_timeout: Option<Duration>,
    stream: StreamConfig,
    http: Option<reqwest::Client>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("run_timeout", &self.run_timeout)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Sends `Authorization: Bearer <token>` with every request (the server's `auth_token`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How long a request may take, answer included ([`DEFAULT_TIMEOUT`]). It does not limit
    /// [`Client::run`] (see [`run_timeout`](Self::run_timeout)) nor event streams (see
    /// [`stream_idle_timeout`](Self::stream_idle_timeout)).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting to the server may take ([`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long [`Client::run`], which answers when the run has finished, may take. Default: no
    /// limit (the run is durable: it goes on whatever the client does).
    pub fn run_timeout(mut self, timeout: Duration) -> Self {
        self.run_timeout = Some(timeout);
        self
    }

    /// How long an event stream may go without receiving anything (events or the server's
    /// heartbeats) before the client reconnects ([`DEFAULT_STREAM_IDLE_TIMEOUT`]). Keep it
    /// longer than the server's `sse_heartbeat`.
    pub fn stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.stream.idle_timeout = timeout;
        self
    }

    /// How many failed reconnections in a row an event stream accepts before it ends with the
    /// last error ([`DEFAULT_MAX_RECONNECTS`]; `0`: never reconnect).
    pub fn max_reconnects(mut self, attempts: u32) -> Self {
        self.stream.max_reconnects = attempts;
        self
    }

    /// The first delay before reconnecting an event stream after a failure
    /// ([`DEFAULT_RECONNECT_DELAY`]); it doubles with each failure in a row, up to
    /// [`MAX_RECONNECT_DELAY`].
    pub fn reconnect_delay(mut self, delay: Duration) -> Self {
        self.stream.reconnect_delay = delay;
        self
    }

    /// Uses this reqwest client (proxies, TLS roots, default headers, ...) instead of building
    /// one. Do not give it a total `timeout`: it would also cut event streams and `run`.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, ClientError> {
        let base = Url::parse(self.base_url.trim())
            .map_err(|error| ClientError::Config(format!("base URL {}: {error}", self.base_url)))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::Config(format!(
                "base URL {}: an http:// or https:// URL is required",
                self.base_url
            )));
        }
        if let Some(token) = &self.token
            && HeaderValue::from_str(&format!("Bearer {token}")).is_err()
        {
            return Err(ClientError::Config(
                "the token cannot be sent in an HTTP header (control characters?)".to_owned(),
            ));
        }
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .tcp_keepalive(Duration::from_secs(30))
                .user_agent(concat!("eventflow-client/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(ClientError::Transport)?,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                token: self.token,
                timeout: self.timeout,
                connect_timeout: self.connect_timeout,
                run_timeout: self.run_timeout,
                stream: self.stream,
            }),
        })
    }
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    run_timeout: Option<Duration>,
    stream: StreamConfig,
}

/// A client of an eventflow server (or any llama-agents-server 0.8 compatible server). Cheap to
/// clone: clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("token", &self.inner.token.as_ref().map(|_| "***"))
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// What a request sends.
struct Call<'a> {
    method: Method,
    segments: Vec<&'a str>,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    idempotency_key: Option<&'a str>,
    /// `None`: no limit.
    timeout: Option<Duration>,
    operation: &'a str,
}

impl<'a> Call<'a> {
    fn new(method: Method, segments: &[&'a str], operation: &'a str, client: &Client) -> Self {
        Call {
            method,
            segments: segments.to_vec(),
            query: Vec::new(),
            body: None,
            idempotency_key: None,
            timeout: Some(client.inner.timeout),
            operation,
        }
    }
}

impl Client {
    /// A client of the server at `base_url` (`http://127.0.0.1:8080`; a path prefix such as
    /// `https://host/eventflow` is kept), with the default timeouts and no token.
    pub fn new(base_url: impl Into<String>) -> Result<Client, ClientError> {
        Client::builder(base_url).build()
    }

    /// A builder for a client of the server at `base_url`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            token: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            run_timeout: None,
            stream: StreamConfig {
                idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
                max_reconnects: DEFAULT_MAX_RECONNECTS,
                reconnect_delay: DEFAULT_RECONNECT_DELAY,
            },
            http: None,
        }
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// `GET /health`: `healthy`, or `unhealthy` (503) when the server's runtime or store is
    /// down or it shuts down. Needs no token.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let (status, body) = self
            .execute(Call::new(Method::GET, &["health"], "GET /health", self))
            .await?;
        if status == StatusCode::SERVICE_UNAVAILABLE
            && let Ok(health) = serde_json::from_str::<Health>(&body)
        {
            return Ok(health);
        }
        decode(status, &body, "the health status")
    }

    /// `GET /workflows`: the names of the served workflows, in registration order.
    pub async fn workflows(&self) -> Result<Vec<String>, ClientError> {
        let (status, body) = self
            .execute(Call::new(
                Method::GET,
                &["workflows"],
                "GET /workflows",
                self,
            ))
            .await?;
        decode::<WorkflowList>(status, &body, "the workflow list").map(|list| list.workflows)
    }

    /// `GET /workflows/{name}/schema`: the JSON Schemas of the workflow's start and stop events.
    pub async fn workflow_schema(&self, workflow: &str) -> Result<WorkflowSchema, ClientError> {
        let (status, body) = self
            .execute(Call::new(
                Method::GET,
                &["workflows", workflow, "schema"],
                "GET /workflows/{name}/schema",
                self,
            ))
            .await?;
        decode(status, &body, "the workflow's schema")
    }

    /// `GET /workflows/{name}/events`: one JSON Schema per event type of the workflow (eventflow
    /// marks each with `"x-eventflow-event": <type name>`).
    pub async fn workflow_events(&self, workflow: &str) -> Result<Vec<Value>, ClientError> {
        let (status, body) = self
            .execute(Call::new(
                Method::GET,
                &["workflows", workflow, "events"],
                "GET /workflows/{name}/events",
                self,
            ))
            .await?;
        decode::<WorkflowEvents>(status, &body, "the workflow's events").map(|events| events.events)
    }

    /// `GET /workflows/{name}/representation`: the workflow's graph.
    pub async fn workflow_representation(
        &self,
        workflow: &str,
    ) -> Result<WorkflowGraph, ClientError> {
        let (status, body) = self
            .execute(Call::new(
                Method::GET,
                &["workflows", workflow, "representation"],
                "GET /workflows/{name}/representation",
                self,
            ))
            .await?;
        decode::<Representation>(status, &body, "the workflow's graph").map(|r| r.graph)
    }

    /// `POST /workflows/{name}/run`: runs `workflow` from the start event `start` and answers
    /// when the run has finished. `start` is anything that serializes to the start event's
    /// fields: keyword arguments (`json!({"name": "Ada"})`) for a `StartEvent` workflow, a typed
    /// start event's fields otherwise; `()` or `Value::Null` is an empty start event. With
    /// [`RunOptions::handler_id`] of a finished handler, that handler is started again from the
    /// state its last run left.
    ///
    /// A run that failed or was cancelled is `Ok` too, with that status and its `error`: use
    /// [`Handler::into_result`] to turn it into an error.
    pub async fn run(&self, workflow: &str, start: impl Serialize) -> Result<Handler, ClientError> {
        self.run_with(workflow, start, &RunOptions::default()).await
    }

    /// [`run`](Self::run) with a handler id, an idempotency key or a timeout.
    pub async fn run_with(
        &self,
        workflow: &str,
        start: impl Serialize,
        options: &RunOptions,
    ) -> Result<Handler, ClientError> {
        let mut call = Call::new(
            Method::POST,
            &["workflows", workflow, "run"],
            "POST /workflows/{name}/run",
            self,
        );
        call.body = Some(start_body(start, options)?);
        call.idempotency_key = options.idempotency_key.as_deref();
        call.timeout = options.timeout.or(self.inner.run_timeout);
        let (status, body) = self.execute(call).await?;
        decode_handler(status, &body)
    }

    /// `POST /workflows/{name}/run-nowait`: starts a run of `workflow` (see [`run`](Self::run)
    /// for `start`) and answers as soon as it is recorded. Follow it with
    /// [`events`](Self::events) from [`Started::after_sequence`], or [`wait`](Self::wait).
    pub async fn run_nowait(
        &self,
        workflow: &str,
        start: impl Serialize,
    ) -> Result<Started, ClientError> {
        self.run_nowait_with(workflow, start, &RunOptions::default())
            .await
    }

    /// [`run_nowait`](Self::run_nowait) with a handler id, an idempotency key or a timeout.
    pub async fn run_nowait_with(
        &self,
        workflow: &str,
        start: impl Serialize,
        options: &RunOptions,
    ) -> Result<Started, ClientError> {
        let mut call = Call::new(
            Method::POST,
            &["workflows", workflow, "run-nowait"],
            "POST /workflows/{name}/run-nowait",
            self,
        );
        call.body = Some(start_body(start, options)?);
        call.idempotency_key = options.idempotency_key.as_deref();
        if let Some(timeout) = options.timeout {
            call.timeout = Some(timeout);
        }
        let (status, body) = self.execute(call).await?;
        let handler: Handler = decode(status, &body, "the started handler")?;
        // Servers that do not say (the reference): the handler is new.
        let after_sequence = handler.after_sequence.unwrap_or(0);
        Ok(Started {
            handler_id: handler.handler_id.clone(),
            after_sequence,
            handler,
        })
    }

    /// `GET /handlers`: the handlers `filter` selects, oldest first
    /// (`&HandlerFilter::new()`: all of them).
    pub async fn handlers(&self, filter: &HandlerFilter) -> Result<Vec<Handler>, ClientError> {
        let mut call = Call::new(Method::GET, &["handlers"], "GET /handlers", self);
        call.query = filter.query();
        let (status, body) = self.execute(call).await?;
        decode::<HandlerList>(status, &body, "the handler list").map(|list| list.handlers)
    }

    /// `GET /handlers/{handler_id}`: the run as it is now, whatever its status (the server's
    /// 202 for a running run and 500 for a failed or cancelled one are not errors here).
    pub async fn handler(&self, handler_id: &str) -> Result<Handler, ClientError> {
        let (status, body) = self
            .execute(Call::new(
                Method::GET,
                &["handlers", handler_id],
                "GET /handlers/{handler_id}",
                self,
            ))
            .await?;
        decode_handler(status, &body)
    }

    /// `POST /handlers/{handler_id}/cancel`: cancels the run (idempotent on eventflow), or with
    /// `purge` cancels it if it runs and deletes it with its events. A run that completed or
    /// failed cannot be cancelled: [`ClientError::Conflict`].
    pub async fn cancel(
        &self,
        handler_id: &str,
        purge: bool,
    ) -> Result<CancelOutcome, ClientError> {
        let mut call = Call::new(
            Method::POST,
            &["handlers", handler_id, "cancel"],
            "POST /handlers/{handler_id}/cancel",
            self,
        );
        if purge {
            call.query = vec![("purge", "true".to_owned())];
        }
        let (status, body) = self.execute(call).await?;
        decode(status, &body, "the cancel outcome")
    }

    /// `POST /events/{handler_id}`: sends the event `event_type` with the fields `value` to the
    /// run, to the step `step` if given (it must accept the event). The run must not have
    /// finished ([`ClientError::Conflict`]); an unknown type or a value that does not decode is
    /// [`ClientError::BadRequest`].
    pub async fn send_event(
        &self,
        handler_id: &str,
        event_type: &str,
        value: impl Serialize,
        step: Option<&str>,
    ) -> Result<SendOutcome, ClientError> {
        let value = serde_json::to_value(value).map_err(|error| ClientError::Encode {
            what: format!("a `{event_type}` event"),
            message: error.to_string(),
        })?;
        let mut event = SendEvent::new(event_type, value);
        event.step = step.map(str::to_owned);
        self.send_event_with(handler_id, &event).await
    }

    /// [`send_event`](Self::send_event) with an envelope, a step and an idempotency key.
    pub async fn send_event_with(
        &self,
        handler_id: &str,
        event: &SendEvent,
    ) -> Result<SendOutcome, ClientError> {
        let request = SendEventRequest {
            event: event.event.clone(),
            step: event.step.clone(),
        };
        let body = serde_json::to_value(&request).map_err(|error| ClientError::Encode {
            what: format!("a `{}` event", event.event.event_type),
            message: error.to_string(),
        })?;
        let mut call = Call::new(
            Method::POST,
            &["events", handler_id],
            "POST /events/{handler_id}",
            self,
        );
        call.body = Some(body);
        call.idempotency_key = event.idempotency_key.as_deref();
        let (status, body) = self.execute(call).await?;
        decode(status, &body, "the send outcome")
    }

    /// `GET /events/{handler_id}` over SSE: the handler's events after the sequence `after`, as
    /// they are published, until its run finishes. `None`: the events of the handler's current
    /// run (the server's default); `Some(0)`: every event, of every run of a handler that was
    /// started again; [`Started::after_sequence`]: the events of the run just started.
    ///
    /// The stream reconnects by itself when the connection drops, the server restarts or the
    /// stream goes silent for longer than [`ClientBuilder::stream_idle_timeout`], resuming
    /// after the last sequence it delivered (`Last-Event-ID`), so no event is lost or repeated.
    ///
    /// It ends when the server closes the stream after a terminal event
    /// ([`TERMINAL_EVENTS`](crate::TERMINAL_EVENTS)) or answers that the finished run has
    /// nothing more (after a custom stop event type, the client reconnects once to learn that);
    /// it ends with an error when the server refuses it (unknown handler: 404, wrong token:
    /// 401) or after [`ClientBuilder::max_reconnects`] failed attempts in a row. An event whose
    /// data does not decode is an `Err(`[`ClientError::Decode`]`)` item, and the stream goes on.
    pub fn events(&self, handler_id: &str, after: Option<u64>) -> EventStream {
        EventStream::new(self.clone(), handler_id.to_owned(), after)
    }

    /// Waits until the run has finished and returns it, following its event stream; at most
    /// `timeout` (`None`: as long as it takes), else [`ClientError::Timeout`]. The run goes on
    /// after a timeout. A failed or cancelled run is `Ok` (see [`Handler::into_result`]).
    pub async fn wait(
        &self,
        handler_id: &str,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Handler, ClientError> {
        let waiting = self.wait_forever(handler_id);
        match timeout.into() {
            None => waiting.await,
            Some(limit) => tokio::time::timeout(limit, waiting)
                .await
                .unwrap_or_else(|_| {
                    Err(ClientError::Timeout {
                        operation: format!("waiting for handler '{handler_id}'"),
                        after: limit,
                    })
                }),
        }
    }

    async fn wait_forever(&self, handler_id: &str) -> Result<Handler, ClientError> {
        let mut pause = Duration::from_millis(20);
        loop {
            let handler = self.handler(handler_id).await?;
            if handler.is_terminal() {
                return Ok(handler);
            }
            // The stream ends once the run has finished and every event was read.
            let mut events = self.events(handler_id, handler.last_sequence);
            while let Some(event) = events.next().await {
                match event {
                    // An event this client cannot read does not stop the wait.
                    Ok(_) | Err(ClientError::Decode { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
            // Servers that finish the stream before the status is visible: poll gently.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// `GET /openapi.json` (eventflow): the OpenAPI document of the server's routes.
    pub async fn openapi(&self) -> Result<Value, ClientError> {
        let (status, body) = self
            .execute(Call::new(
                Method::GET,
                &["openapi.json"],
                "GET /openapi.json",
                self,
            ))
            .await?;
        decode(status, &body, "the OpenAPI document")
    }

    /// `GET /metrics` (eventflow): the server's metrics in the Prometheus text format.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let (status, body) = self
            .execute(Call::new(Method::GET, &["metrics"], "GET /metrics", self))
            .await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(ClientError::from_status(status.as_u16(), &body))
        }
    }

    /// The URL of a route: the base URL with `segments` appended (each percent-encoded).
    pub(crate) fn url(&self, segments: &[&str]) -> Result<Url, ClientError> {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .map_err(|()| ClientError::Config(format!("base URL {}", self.inner.base)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// A request with the token.
    pub(crate) fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.inner.http.request(method, url);
        match &self.inner.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub(crate) fn stream_config(&self) -> &StreamConfig {
        &self.inner.stream
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Sends a call; returns the status and the body (any status).
    async fn execute(&self, call: Call<'_>) -> Result<(StatusCode, String), ClientError> {
        let url = self.url(&call.segments)?;
        let mut request = self
            .request(call.method, url)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        if let Some(key) = call.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(timeout) = call.timeout {
            request = request.timeout(timeout);
        }
        // Without a request timeout, only connecting can time out.
        let limit = call.timeout.unwrap_or(self.inner.connect_timeout);
        let response = request
            .send()
            .await
            .map_err(|error| ClientError::transport(error, call.operation, limit))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|error| ClientError::transport(error, call.operation, limit))?;
        Ok((status, body))
    }
}

/// The body of a run request: `{"start_event": <fields>, "handler_id"?}`.
fn start_body(start: impl Serialize, options: &RunOptions) -> Result<Value, ClientError> {
    let encode = |error: serde_json::Error| ClientError::Encode {
        what: "the start event".to_owned(),
        message: error.to_string(),
    };
    let start = match serde_json::to_value(start).map_err(encode)? {
        // Fields the server would read as an envelope (`value`, or `type` with
        // `qualified_name`) or as Python's `_data` wrapper travel wrapped in `_data`, which the
        // server unwraps one level.
        Value::Object(fields) if looks_wrapped(&fields) => json!({ "_data": fields }),
        other => other,
    };
    let request = RunRequest {
        start_event: start,
        handler_id: options.handler_id.clone(),
        ..RunRequest::default()
    };
    serde_json::to_value(&request).map_err(encode)
}

fn looks_wrapped(fields: &Map<String, Value>) -> bool {
    fields.contains_key("value")
        || (fields.contains_key("type") && fields.contains_key("qualified_name"))
        || matches!(fields.get("_data"), Some(Value::Object(_)))
}

/// Decodes a successful answer, or turns an error status into its error.
fn decode<T: DeserializeOwned>(
    status: StatusCode,
    body: &str,
    what: &str,
) -> Result<T, ClientError> {
    if !status.is_success() {
        return Err(ClientError::from_status(status.as_u16(), body));
    }
    serde_json::from_str(body).map_err(|error| ClientError::Decode {
        what: what.to_owned(),
        message: error.to_string(),
    })
}

/// A `HandlerData` answer: 200, 202, and 500 when its body is the failed run.
fn decode_handler(status: StatusCode, body: &str) -> Result<Handler, ClientError> {
    if status == StatusCode::INTERNAL_SERVER_ERROR
        && let Ok(handler) = serde_json::from_str::<Handler>(body)
    {
        return Ok(handler);
    }
    decode(status, body, "the handler")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_prefixes_and_encode_segments() {
        let client = Client::new("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            client.url(&["handlers", "a/b c"]).unwrap().as_str(),
            "http://127.0.0.1:8080/handlers/a%2Fb%20c"
        );
        let client = Client::new("https://example.com/api/eventflow").unwrap();
        assert_eq!(
            client.url(&["workflows"]).unwrap().as_str(),
            "https://example.com/api/eventflow/workflows"
        );
        assert!(matches!(
            Client::new("not a url"),
            Err(ClientError::Config(_))
        ));
        assert!(matches!(
            Client::new("mailto:a@b"),
            Err(ClientError::Config(_))
        ));
    }

    #[test]
    fn start_events_that_look_like_envelopes_are_wrapped() {
        let options = RunOptions::new().handler_id("h");
        assert_eq!(
            start_body(json!({"name": "Ada"}), &options).unwrap(),
            json!({"start_event": {"name": "Ada"}, "handler_id": "h"})
        );
        assert_eq!(
            start_body(json!({"value": 3}), &RunOptions::new()).unwrap(),
            json!({"start_event": {"_data": {"value": 3}}})
        );
        assert_eq!(
            start_body((), &RunOptions::new()).unwrap(),
            json!({"start_event": null})
        );
    }

    #[test]
    fn the_token_is_not_printed() {
        let client = Client::builder("http://localhost:1")
            .token("s3cret")
            .build()
            .unwrap();
        assert!(!format!("{client:?}").contains("s3cret"));
        assert!(matches!(
            Client::builder("http://localhost:1").token("a\nb").build(),
            Err(ClientError::Config(_))
        ));
    }
}
