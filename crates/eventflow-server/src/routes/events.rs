//! `/events/{handler_id}`: a run's event stream (SSE or NDJSON), and events sent into a run.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventflow::durable::{EngineError, SequencedEvent};
use eventflow::store::{RunRecord, Sent};
use eventflow::{
    Event as _, EventRole, RunCancelledEvent, RunFailedEvent, RunTimedOutEvent, StepStateChanged,
    UnhandledEvent, WorkflowIdleEvent,
};
use eventflow_api::{ErrorBody, EventEnvelope, SendEventRequest, SendOutcome};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

use super::{
    AppRef, JsonBody, PathParam, idempotency_key, load_run, log_run, query_flag, query_pairs,
    query_value,
};
use crate::envelope;
use crate::error::ApiError;
use crate::metrics::StreamGuard;

/// `GET /events/{handler_id}?sse=&after_sequence=&include_qualified_name=`.
#[utoipa::path(
    get,
    path = "/events/{handler_id}",
    summary = "Stream a run's events (SSE, or NDJSON with sse=false)",
    params(
        ("handler_id" = String, Path, description = "Handler id (= run id)."),
        ("sse" = Option<bool>, Query, description = "`false`: NDJSON instead of SSE (default `true`)."),
        ("after_sequence" = Option<String>, Query,
         description = "Events after this sequence (an integer; `0`: every run of the handler); default and negative values: the events of the handler's current run; `now`: only new events."),
        ("include_internal" = Option<bool>, Query, description = "`true`: with the engine's internal events (`StepStateChanged`, `WorkflowIdleEvent`, `UnhandledEvent`), which runs of workflows built with `internal_events(true)` publish (default `false`)."),
        ("include_qualified_name" = Option<bool>, Query, description = "`false`: `qualified_name` is `null` (default `true`)."),
        ("Last-Event-ID" = Option<String>, Header, description = "SSE resume: overrides after_sequence."),
    ),
    responses(
        (status = 200, description = "The stream; closes after the run's last event. SSE frames are `id: <seq>` and `data: <EventEnvelope>`, with `: heartbeat` comments while idle; NDJSON has one EventEnvelope per line.",
         content(
            (String = "text/event-stream"),
            (EventEnvelope = "application/x-ndjson"),
         )),
        (status = 204, description = "The run has finished and no event is after the cursor"),
        (status = 400, description = "Invalid after_sequence", body = ErrorBody),
        (status = 404, description = "Unknown handler", body = ErrorBody),
    )
)]
pub(crate) async fn stream(
    State(state): State<AppRef>,
    PathParam(handler_id): PathParam,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(query.as_deref());
    let sse = query_flag(&pairs, "sse", true);
    let include_qualified_name = query_flag(&pairs, "include_qualified_name", true);
    let include_internal = query_flag(&pairs, "include_internal", false);
    let record = load_run(&state, &handler_id).await?;
    log_run(&record.run_id, &record.workflow.name);
    let mut after = match query_value(&pairs, "after_sequence") {
        Some(now) if now.trim().eq_ignore_ascii_case("now") => record.last_event_seq,
        Some(text) => match text.trim().parse::<i64>() {
            Ok(sequence) if sequence >= 0 => sequence.unsigned_abs(),
            // `-1`, the Python client's "from the beginning": the current run's events.
            Ok(_) => current_run_start(&state, &record).await?,
            Err(_) => {
                return Err(ApiError::BadRequest(format!(
                    "Invalid after_sequence: '{text}'"
                )));
            }
        },
        // A fresh reader gets the current run's events (the reference starts at "now").
        None => current_run_start(&state, &record).await?,
    };
    if sse
        && let Some(last) = headers
            .get("last-event-id")
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<i64>().ok())
    {
        // Negative, like `after_sequence`: the current run's events.
        after = match u64::try_from(last) {
            Ok(sequence) => sequence,
            Err(_) => current_run_start(&state, &record).await?,
        };
    }
    if record.status.is_terminal() && after >= record.last_event_seq {
        // Finished, and nothing left after the cursor.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    tracing::debug!(run_id = %handler_id, after, sse, "streaming events");
    let mut events = state.engine.events(&handler_id, after);
    if !include_internal {
        let internal = internal_event_names(&state, &record.workflow.name);
        events = Box::pin(events.filter(move |item| {
            let keep = !matches!(item, Ok(e) if internal.contains(&e.event.name.as_str()));
            std::future::ready(keep)
        }));
    }
    let frames = Frames {
        events,
        shutdown: Box::pin(state.shutting_down()),
        heartbeat: sse.then_some(state.config.sse_heartbeat),
        sse,
        include_qualified_name,
        done: false,
        _guard: state.metrics.stream_opened(),
    };
    let body = Body::from_stream(futures::stream::unfold(frames, Frames::next));
    let content_type = if sse {
        "text/event-stream"
    } else {
        "application/x-ndjson"
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The names of the internal events a run of `workflow` may publish: the engine's and the
/// workflow's own `#[event(internal)]` types.
fn internal_event_names(state: &AppRef, workflow: &str) -> Vec<&'static str> {
    let engine = [
        StepStateChanged::NAME,
        WorkflowIdleEvent::NAME,
        UnhandledEvent::NAME,
    ];
    let own = state.served(workflow).into_iter().flat_map(|workflow| {
        workflow
            .known_event_types()
            .into_iter()
            .filter(|ty| ty.role() == EventRole::Internal)
            .map(|ty| ty.name())
    });
    engine.into_iter().chain(own).collect()
}

/// The sequence after which the current run of a handler published its events: 0 for a handler
/// that ran once; for a finished run started again with its handler id, the sequence of the
/// terminal event (stop event, `RunFailedEvent`, `RunTimedOutEvent`, `RunCancelledEvent`) that
/// ended the run before. Found by reading the run's events.
async fn current_run_start(state: &AppRef, record: &RunRecord) -> Result<u64, ApiError> {
    let workflow = state.served(&record.workflow.name);
    let terminal = |name: &str| {
        [
            RunFailedEvent::NAME,
            RunTimedOutEvent::NAME,
            RunCancelledEvent::NAME,
        ]
        .contains(&name)
            || workflow
                .and_then(|workflow| workflow.event_type(name))
                .is_some_and(|ty| matches!(ty.role(), EventRole::Stop | EventRole::Terminal))
    };
    // The last terminal event, and the one before it, up to the record's last event (events
    // published since the record was read belong to the state read, or to a later run).
    let end = record.last_event_seq;
    let (mut last, mut before_last) = (0, 0);
    let mut after = 0;
    while after < end {
        let page = state
            .engine
            .events_page(&record.run_id, after, 1000)
            .await
            .map_err(|error| ApiError::from_engine(error, &record.run_id))?;
        if page.is_empty() {
            break;
        }
        for event in page.iter().filter(|event| event.seq <= end) {
            if terminal(&event.event.name) {
                before_last = last;
                last = event.seq;
            }
        }
        after = page.last().map_or(end, |event| event.seq);
    }
    Ok(if record.status.is_terminal() && last == end {
        // The run has finished: its own terminal event is the last one.
        before_last
    } else {
        last
    })
}

/// The state of one event stream.
struct Frames {
    events: BoxStream<'static, Result<SequencedEvent, EngineError>>,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    heartbeat: Option<Duration>,
    sse: bool,
    include_qualified_name: bool,
    done: bool,
    _guard: StreamGuard,
}

impl Frames {
    /// The next chunk of the body; `None` ends the stream.
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        if self.done {
            return None;
        }
        let heartbeat = self.heartbeat;
        let events = &mut self.events;
        let next = async move {
            match heartbeat {
                Some(every) => tokio::time::timeout(every, events.next()).await.ok(),
                None => Some(events.next().await),
            }
        };
        let item = tokio::select! {
            () = &mut self.shutdown => return None,
            item = next => item,
        };
        let chunk = match item {
            // Silent for a heartbeat interval.
            None => Bytes::from_static(b": heartbeat\n\n"),
            // The run has finished and every event was sent.
            Some(None) => return None,
            Some(Some(Ok(event))) => {
                let envelope = envelope::outgoing(&event.event, self.include_qualified_name);
                let data = serde_json::to_string(&envelope).unwrap_or_default();
                if self.sse {
                    Bytes::from(format!("id: {}\ndata: {data}\n\n", event.seq))
                } else {
                    Bytes::from(format!("{data}\n"))
                }
            }
            Some(Some(Err(error))) => {
                tracing::error!(error = ?eventflow::store::error_chain(&error), "event stream failed");
                self.done = true;
                let data = serde_json::to_string(&ErrorBody {
                    detail: format!(
                        "event stream failed: {}",
                        eventflow::store::error_chain(&error)
                    ),
                    handler_id: None,
                })
                .unwrap_or_default();
                if self.sse {
                    Bytes::from(format!("event: error\ndata: {data}\n\n"))
                } else {
                    Bytes::from(format!("{data}\n"))
                }
            }
        };
        Some((Ok(chunk), self))
    }
}

/// `POST /events/{handler_id}` with `{"event": {type, value}, "step"?}`.
#[utoipa::path(
    post,
    path = "/events/{handler_id}",
    summary = "Send an event to a run",
    params(
        ("handler_id" = String, Path, description = "Handler id (= run id)."),
        ("Idempotency-Key" = Option<String>, Header, description = "Message id: the same key is delivered once."),
    ),
    request_body = SendEventRequest,
    responses(
        (status = 200, description = "Queued for the run", body = SendOutcome),
        (status = 400, description = "Malformed JSON, missing event, unknown event type, invalid fields, or unknown step", body = ErrorBody),
        (status = 404, description = "Unknown handler", body = ErrorBody),
        (status = 409, description = "The run has finished", body = ErrorBody),
        (status = 413, description = "Request body too large", body = ErrorBody),
    )
)]
pub(crate) async fn send(
    State(state): State<AppRef>,
    PathParam(handler_id): PathParam,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<SendOutcome>, ApiError> {
    let body = match body {
        Some(Value::Object(body)) => body,
        None => return Err(ApiError::BadRequest("Event data is required".to_owned())),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "Error processing request: the body must be a JSON object".to_owned(),
            ));
        }
    };
    let event = match body.get("event") {
        None | Some(Value::Null) => {
            return Err(ApiError::BadRequest("Event data is required".to_owned()));
        }
        Some(Value::String(text)) if text.is_empty() => {
            return Err(ApiError::BadRequest("Event data is required".to_owned()));
        }
        Some(Value::Object(fields)) if fields.is_empty() => {
            return Err(ApiError::BadRequest("Event data is required".to_owned()));
        }
        Some(event) => event.clone(),
    };
    let step = match body.get("step") {
        None | Some(Value::Null) => None,
        Some(Value::String(step)) if step.is_empty() => None,
        Some(Value::String(step)) => Some(step.clone()),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "'step' must be a step name, got {other}"
            )));
        }
    };
    let record = load_run(&state, &handler_id).await?;
    log_run(&record.run_id, &record.workflow.name);
    if record.status.is_terminal() {
        return Err(ApiError::HandlerFinished {
            handler_id,
            status: record.status,
        });
    }
    let event = envelope::incoming(event).map_err(ApiError::InvalidEvent)?;
    let msg_id =
        idempotency_key(&headers)?.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let name = event.name.clone();
    match state
        .engine
        .send_json(&handler_id, &msg_id, event, step.as_deref())
        .await
    {
        Ok(sent) => {
            let duplicate = sent == Sent::Duplicate;
            tracing::info!(run_id = %handler_id, event = %name, duplicate, "event sent");
            Ok(Json(SendOutcome {
                status: "sent".to_owned(),
                duplicate,
            }))
        }
        Err(error) => Err(ApiError::from_engine(error, &handler_id)),
    }
}
