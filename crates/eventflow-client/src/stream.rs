//! A run's event stream over SSE that resumes after dropped connections.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Method, StatusCode};

use crate::client::{Client, MAX_RECONNECT_DELAY};
use crate::error::ClientError;
use eventflow_api::EventEnvelope;

/// `last` when no event was delivered and no cursor given.
const NO_CURSOR: u64 = u64::MAX;

fn cursor(last: &AtomicU64) -> Option<u64> {
    match last.load(Ordering::SeqCst) {
        NO_CURSOR => None,
        seq => Some(seq),
    }
}

/// How event streams reconnect.
#[derive(Clone, Debug)]
pub(crate) struct StreamConfig {
    pub(crate) idle_timeout: Duration,
    pub(crate) max_reconnects: u32,
    pub(crate) reconnect_delay: Duration,
}

/// A run's events, in sequence order, without gaps or duplicates across reconnections; see
/// [`Client::events`]. A [`Stream`] of `Result<EventEnvelope, ClientError>`.
pub struct EventStream {
    inner: BoxStream<'static, Result<EventEnvelope, ClientError>>,
    last: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    handler_id: String,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("handler_id", &self.handler_id)
            .field("last_sequence", &self.last_sequence())
            .finish_non_exhaustive()
    }
}

impl EventStream {
    pub(crate) fn new(client: Client, handler_id: String, after: Option<u64>) -> Self {
        let last = Arc::new(AtomicU64::new(match after {
            Some(after) => after.min(NO_CURSOR - 1),
            None => NO_CURSOR,
        }));
        let connections = Arc::new(AtomicU64::new(0));
        let state = State {
            client,
            handler_id: handler_id.clone(),
            last: last.clone(),
            connections: connections.clone(),
            body: None,
            progress: Arc::new(AtomicBool::new(false)),
            failures: 0,
            last_error: None,
            last_was_terminal: false,
            finished: false,
        };
        EventStream {
            inner: futures::stream::unfold(state, State::next).boxed(),
            last,
            connections,
            handler_id,
        }
    }

    /// The run whose events these are.
    pub fn handler_id(&self) -> &str {
        &self.handler_id
    }

    /// The sequence of the last event delivered (or the `after` the stream started from): where
    /// another stream would resume. `None` before the first event of a stream started without
    /// a cursor.
    pub fn last_sequence(&self) -> Option<u64> {
        cursor(&self.last)
    }

    /// How many times the stream has connected to the server (`1` if it never reconnected).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Stream for EventStream {
    type Item = Result<EventEnvelope, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// Why reading a connection's body stopped.
#[derive(Debug)]
enum ReadError {
    Transport(reqwest::Error),
    Idle(Duration),
}

type Frames = BoxStream<'static, Result<eventsource_stream::Event, EventStreamError<ReadError>>>;

/// What opening a stream gave.
enum Opened {
    /// 200: the frames.
    Stream(Frames),
    /// 204: the run has finished and nothing is after the cursor.
    Finished,
}

struct State {
    client: Client,
    handler_id: String,
    /// The last sequence delivered ([`NO_CURSOR`]: none, and no cursor given).
    last: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    body: Option<Frames>,
    /// Set by the body reader when bytes arrive (events or heartbeats): the connection works.
    progress: Arc<AtomicBool>,
    /// Connections in a row that failed or ended without receiving anything.
    failures: u32,
    last_error: Option<ClientError>,
    last_was_terminal: bool,
    finished: bool,
}

impl State {
    async fn next(mut self) -> Option<(Result<EventEnvelope, ClientError>, State)> {
        loop {
            if self.finished {
                return None;
            }
            let Some(body) = self.body.as_mut() else {
                if let Some(error) = self.connect().await {
                    self.finished = true;
                    return Some((Err(error), self));
                }
                continue;
            };
            let frame = body.next().await;
            if self.progress.swap(false, Ordering::SeqCst) {
                self.failures = 0;
            }
            match frame {
                Some(Ok(frame)) => {
                    if frame.event == "error" {
                        // The server failed mid-stream (a store error): resume on a new one.
                        self.lost(ClientError::Stream {
                            handler_id: self.handler_id.clone(),
                            detail: detail_of(&frame.data),
                        });
                        continue;
                    }
                    if !(frame.event.is_empty() || frame.event == "message") {
                        continue;
                    }
                    if let Some(item) = self.event(frame) {
                        return Some((item, self));
                    }
                }
                Some(Err(error)) => {
                    let error = match error {
                        EventStreamError::Transport(ReadError::Transport(error)) => {
                            ClientError::Transport(error)
                        }
                        EventStreamError::Transport(ReadError::Idle(after)) => {
                            ClientError::Timeout {
                                operation: format!(
                                    "reading the event stream of handler '{}'",
                                    self.handler_id
                                ),
                                after,
                            }
                        }
                        EventStreamError::Utf8(error) => ClientError::Stream {
                            handler_id: self.handler_id.clone(),
                            detail: format!("the event stream is not UTF-8: {error}"),
                        },
                        EventStreamError::Parser(error) => ClientError::Stream {
                            handler_id: self.handler_id.clone(),
                            detail: format!("malformed event stream: {error}"),
                        },
                    };
                    self.lost(error);
                }
                None => {
                    if self.last_was_terminal {
                        self.finished = true;
                        return None;
                    }
                    // Closed cleanly before a terminal event: the server shut down, or the run's
                    // stop event has a custom type. Reconnecting tells (204 when finished).
                    self.lost(ClientError::Stream {
                        handler_id: self.handler_id.clone(),
                        detail: "the server closed the stream before the run finished".to_owned(),
                    });
                }
            }
        }
    }

    /// The connection is gone; the next turn connections.
    fn lost(&mut self, error: ClientError) {
        self.body = None;
        self.failures += 1;
        self.last_error = Some(error);
    }

    /// Reads one SSE frame: `None` for a duplicate.
    fn event(
        &mut self,
        frame: eventsource_stream::Event,
    ) -> Option<Result<EventEnvelope, ClientError>> {
        let last = cursor(&self.last);
        let seq = frame
            .id
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&seq| seq < NO_CURSOR);
        if let Some(seq) = seq {
            if last.is_some_and(|last| seq <= last) {
                return None;
            }
            self.last.store(seq, Ordering::SeqCst);
        }
        let decoded = serde_json::from_str::<EventEnvelope>(&frame.data).map_err(|error| {
            ClientError::Decode {
                what: format!("event {} of handler '{}'", frame.id.trim(), self.handler_id),
                message: error.to_string(),
            }
        });
        Some(decoded.map(|mut envelope| {
            envelope.seq = seq.unwrap_or(0);
            self.last_was_terminal = envelope.is_terminal();
            envelope
        }))
    }

    /// Opens a connection (after a pause when the previous ones failed). `Some(error)` ends the
    /// stream.
    async fn connect(&mut self) -> Option<ClientError> {
        let config = self.client.stream_config().clone();
        if self.failures > 0 {
            if self.failures > config.max_reconnects {
                return Some(
                    self.last_error
                        .take()
                        .unwrap_or_else(|| ClientError::Stream {
                            handler_id: self.handler_id.clone(),
                            detail: "reconnection attempts exhausted".to_owned(),
                        }),
                );
            }
            let doublings = (self.failures - 1).min(16);
            let delay = config
                .reconnect_delay
                .saturating_mul(1 << doublings)
                .min(MAX_RECONNECT_DELAY.max(config.reconnect_delay));
            tokio::time::sleep(delay).await;
        }
        let after = cursor(&self.last);
        let progress = self.progress.clone();
        match open(&self.client, &self.handler_id, after, progress, &config).await {
            Ok(Opened::Stream(frames)) => {
                self.connections.fetch_add(1, Ordering::SeqCst);
                self.body = Some(frames);
                None
            }
            Ok(Opened::Finished) => {
                self.finished = true;
                None
            }
            Err(error) if error.is_transient() => {
                self.failures += 1;
                self.last_error = Some(error);
                None
            }
            Err(error) => Some(error),
        }
    }
}

/// Opens the stream of `handler_id` after the sequence `after`.
async fn open(
    client: &Client,
    handler_id: &str,
    after: Option<u64>,
    progress: Arc<AtomicBool>,
    config: &StreamConfig,
) -> Result<Opened, ClientError> {
    let url = client.url(&["events", handler_id])?;
    let mut request = client
        .request(Method::GET, url)
        .header(ACCEPT, HeaderValue::from_static("text/event-stream"));
    // Without a cursor, the server's default: the handler's current run from its start.
    if let Some(after) = after {
        request = request
            .query(&[("after_sequence", after.to_string())])
            .header("Last-Event-ID", after.to_string());
    }
    let limit = client.timeout();
    let operation = "GET /events/{handler_id}";
    let response = match tokio::time::timeout(limit, request.send()).await {
        Ok(response) => {
            response.map_err(|error| ClientError::transport(error, operation, limit))?
        }
        Err(_) => {
            return Err(ClientError::Timeout {
                operation: operation.to_owned(),
                after: limit,
            });
        }
    };
    let status = response.status();
    if status == StatusCode::NO_CONTENT {
        return Ok(Opened::Finished);
    }
    if !status.is_success() {
        let body = match tokio::time::timeout(limit, response.text()).await {
            Ok(Ok(body)) => body,
            _ => String::new(),
        };
        return Err(ClientError::from_status(status.as_u16(), &body));
    }
    let idle = config.idle_timeout;
    let chunks = futures::stream::unfold(
        (response.bytes_stream().boxed(), false),
        move |(mut chunks, dead)| {
            let progress = progress.clone();
            async move {
                if dead {
                    return None;
                }
                match tokio::time::timeout(idle, chunks.next()).await {
                    Ok(Some(Ok(chunk))) => {
                        progress.store(true, Ordering::SeqCst);
                        Some((Ok(chunk), (chunks, false)))
                    }
                    Ok(Some(Err(error))) => {
                        Some((Err(ReadError::Transport(error)), (chunks, true)))
                    }
                    Ok(None) => None,
                    Err(_) => Some((Err(ReadError::Idle(idle)), (chunks, true))),
                }
            }
        },
    );
    Ok(Opened::Stream(chunks.eventsource().boxed()))
}

/// The `detail` of an `event: error` frame's `{"detail": ...}` data, else the data.
fn detail_of(data: &str) -> String {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|value| {
            value
                .get("detail")
                .and_then(|d| d.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| data.to_owned())
}
