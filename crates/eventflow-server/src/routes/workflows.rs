//! `/health`, `/workflows` and the routes of one workflow: run, schema, events, representation.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use eventflow::durable::{StartOptions, Started};
use eventflow::store::RunRecord;
use eventflow::{Event as _, EventRole, EventType, StartEvent, StopEvent, Workflow};
use eventflow_api::{
    ErrorBody, Handler, Health, Representation, RunRequest, WorkflowEvents, WorkflowList,
    WorkflowSchema,
};
use serde_json::{Map, Value};

use super::{AppRef, JsonBody, PathParam, handler_data, idempotency_key, load_run, log_run};
use crate::envelope;
use crate::error::ApiError;
use crate::server::AppState;

fn health_status(status: &str) -> Json<Health> {
    Json(Health {
        status: status.to_owned(),
    })
}

/// `GET /health`.
#[utoipa::path(
    get,
    path = "/health",
    summary = "Health check (needs no token)",
    security(()),
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "Unhealthy: the store cannot be read, or the server shuts down", body = Health),
    )
)]
pub(crate) async fn health(State(state): State<AppRef>) -> Response {
    let unhealthy =
        || (StatusCode::SERVICE_UNAVAILABLE, health_status("unhealthy")).into_response();
    if state.is_shutting_down() {
        return unhealthy();
    }
    match state.engine.check_store().await {
        Ok(()) => health_status("healthy").into_response(),
        Err(error) => {
            tracing::warn!(error = %eventflow::store::error_chain(&error), "health check: the store cannot be read");
            unhealthy()
        }
    }
}

/// `GET /workflows`.
#[utoipa::path(
    get,
    path = "/workflows",
    summary = "List workflows",
    responses((status = 200, description = "The served workflows' names, in registration order", body = WorkflowList))
)]
pub(crate) async fn list(State(state): State<AppRef>) -> Json<WorkflowList> {
    let workflows = state
        .workflows
        .iter()
        .map(|workflow| workflow.name().to_owned())
        .collect();
    Json(WorkflowList { workflows })
}

fn served<'a>(state: &'a AppState, name: &str) -> Result<&'a Workflow, ApiError> {
    state
        .served(name)
        .ok_or_else(|| ApiError::WorkflowNotFound {
            name: name.to_owned(),
        })
}

/// Python's truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The start event's JSON value from a run request's body.
fn start_value(workflow: &Workflow, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let start = workflow.start_event().name();
    let kwargs = match body.get("kwargs") {
        None | Some(Value::Null) => None,
        Some(Value::Object(kwargs)) => Some(kwargs.clone()),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Error processing request body: 'kwargs' must be a JSON object, got {other}"
            )));
        }
    };
    let Some(given) = body.get("start_event") else {
        // The reference uses `kwargs` as the start event when there is none.
        return Ok(kwargs.map_or(Value::Null, Value::Object));
    };
    let value = match envelope::destringify(given.clone()) {
        Value::Null => Value::Null,
        Value::Object(fields) if envelope::is_envelope(&fields) => {
            let event =
                envelope::incoming(Value::Object(fields)).map_err(ApiError::InvalidStartEvent)?;
            if event.name != start {
                let known = workflow.event_type(&event.name).is_some();
                return Err(ApiError::InvalidStartEvent(if known {
                    format!(
                        "Start event must be an instance of {start}, got {}",
                        event.name
                    )
                } else {
                    format!("Invalid event type: {}. Expected {start}", event.name)
                }));
            }
            event.value
        }
        fields @ Value::Object(_) => envelope::unwrap_data(fields),
        _ => {
            return Err(ApiError::InvalidStartEvent(
                "Failed to deserialize event. Must be a json object, or stringified json object"
                    .to_owned(),
            ));
        }
    };
    match kwargs {
        None => Ok(value),
        Some(kwargs) if start == StartEvent::NAME => {
            // Both given: merged, the start event's own keys first.
            let mut merged = kwargs;
            if let Value::Object(fields) = value {
                merged.extend(fields);
            }
            Ok(Value::Object(merged))
        }
        Some(_) => Err(ApiError::BadRequest(format!(
            "Error processing request body: 'kwargs' apply to StartEvent only; workflow \
             '{}' starts with {start}: give its fields in 'start_event'",
            workflow.name()
        ))),
    }
}

/// The workflow's start event decoded from its JSON value (`null` is an empty `StartEvent`).
fn decode_start(workflow: &Workflow, value: Value) -> Result<eventflow::AnyEvent, ApiError> {
    let ty = workflow.start_event();
    let value = match value {
        Value::Null if ty.name() == StartEvent::NAME => Value::Object(Map::new()),
        Value::Object(_) | Value::Null => value,
        other if ty.name() == StartEvent::NAME => {
            return Err(ApiError::InvalidStartEvent(format!(
                "StartEvent must be a JSON object of keyword arguments, got {other}"
            )));
        }
        other => other,
    };
    ty.decode(value).map_err(|error| {
        ApiError::InvalidStartEvent(format!("{} does not decode: {error}", ty.name()))
    })
}

/// Starts a run from a run request; returns its record once it is stored, and what the engine
/// did (`after_seq`: the sequence the run's events come after).
///
/// A `handler_id` of a finished run starts that run again under the same id, with the context
/// state it left (the reference's semantics); one of a run that has not finished is a 409.
async fn start(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    body: Option<Value>,
) -> Result<(RunRecord, Started), ApiError> {
    let workflow = served(state, name)?;
    let body = match body {
        None => Map::new(),
        Some(Value::Object(body)) => body,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Error processing request body: it must be a JSON object, got {}",
                kind(&other)
            )));
        }
    };
    if body.get("context").is_some_and(truthy) {
        return Err(ApiError::BadRequest(
            "The Context API is not supported: eventflow runs keep their state in the store \
             (start a finished handler again with its 'handler_id' to continue from its state). \
             Send an empty 'context' or none."
                .to_owned(),
        ));
    }
    let handler_id = match body.get("handler_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if id.is_empty() => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Error processing request body: 'handler_id' must be a string, got {other}"
            )));
        }
    };
    let start = decode_start(workflow, start_value(workflow, &body)?)?;
    let idempotency_key = idempotency_key(headers)?.map(str::to_owned);
    let options = StartOptions {
        run_id: handler_id.clone(),
        idempotency_key,
        continue_finished: true,
        ..StartOptions::default()
    };
    let started = state
        .engine
        .start_with(name, start, options)
        .await
        .map_err(|error| ApiError::from_engine(error, handler_id.as_deref().unwrap_or("")))?;
    log_run(&started.run_id, name);
    if started.existing {
        tracing::info!(run_id = %started.run_id, workflow = name, "idempotent start: the run exists");
    } else {
        state.metrics.run_started(name);
        if started.after_seq > 0 {
            tracing::info!(
                run_id = %started.run_id,
                workflow = name,
                after_seq = started.after_seq,
                "finished run started again"
            );
        } else {
            tracing::info!(run_id = %started.run_id, workflow = name, "run started");
        }
    }
    let record = load_run(state, &started.run_id).await?;
    Ok((record, started))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `POST /workflows/{name}/run`: starts a run and answers when it has finished.
#[utoipa::path(
    post,
    path = "/workflows/{name}/run",
    summary = "Run a workflow and wait for its result",
    params(
        ("name" = String, Path, description = "Registered workflow name."),
        ("Idempotency-Key" = Option<String>, Header, description = "Starting twice with the same key returns the first run."),
    ),
    request_body(content = Option<RunRequest>, description = "Every key optional; an empty body is an empty object."),
    responses(
        (status = 200, description = "The run completed", body = Handler),
        (status = 400, description = "Malformed JSON, invalid start event, or a non-empty context", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "Unknown workflow", body = ErrorBody),
        (status = 409, description = "The run of this handler_id has not finished, or belongs to another workflow", body = ErrorBody),
        (status = 413, description = "Request body too large", body = ErrorBody),
        (status = 500, description = "The run failed or was cancelled (the body says why)", body = Handler),
        (status = 503, description = "The server shut down while waiting; the run goes on (`handler_id` names it)", body = ErrorBody),
    )
)]
pub(crate) async fn run(
    State(state): State<AppRef>,
    PathParam(name): PathParam,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (record, _) = start(&state, &name, &headers, body).await?;
    let run_id = record.run_id;
    let record = tokio::select! {
        finished = state.engine.wait(&run_id, None) => {
            finished.map_err(|error| ApiError::from_engine(error, &run_id))?
        }
        () = state.shutting_down() => {
            // The run goes on: say which, so a client can follow it elsewhere.
            let detail = format!(
                "The server is shutting down; run '{run_id}' goes on: GET /handlers/{run_id}"
            );
            let body = ErrorBody { detail, handler_id: Some(run_id) };
            return Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response());
        }
    };
    let status = if record.status == eventflow::store::RunStatus::Completed {
        StatusCode::OK
    } else {
        tracing::warn!(
            run_id = %record.run_id,
            workflow = %name,
            status = %record.status,
            error = record.error.as_deref().unwrap_or(""),
            "run did not complete"
        );
        StatusCode::INTERNAL_SERVER_ERROR
    };
    Ok((status, Json(handler_data(&record))).into_response())
}

/// `POST /workflows/{name}/run-nowait`: starts a run and answers once it is stored.
#[utoipa::path(
    post,
    path = "/workflows/{name}/run-nowait",
    summary = "Start a workflow run",
    params(
        ("name" = String, Path, description = "Registered workflow name."),
        ("Idempotency-Key" = Option<String>, Header, description = "Starting twice with the same key returns the first run."),
    ),
    request_body(content = Option<RunRequest>, description = "Every key optional; an empty body is an empty object."),
    responses(
        (status = 200, description = "The run is recorded and started; `after_sequence` says where its events start", body = Handler),
        (status = 400, description = "Malformed JSON, invalid start event, or a non-empty context", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "Unknown workflow", body = ErrorBody),
        (status = 409, description = "The run of this handler_id has not finished, or belongs to another workflow", body = ErrorBody),
        (status = 413, description = "Request body too large", body = ErrorBody),
    )
)]
pub(crate) async fn run_nowait(
    State(state): State<AppRef>,
    PathParam(name): PathParam,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<Handler>, ApiError> {
    let (record, started) = start(&state, &name, &headers, body).await?;
    Ok(Json(Handler {
        after_sequence: Some(started.after_seq),
        ..handler_data(&record)
    }))
}

/// `GET /workflows/{name}/schema`: the start and stop events' JSON Schemas.
#[utoipa::path(
    get,
    path = "/workflows/{name}/schema",
    summary = "JSON Schemas of the start and stop events",
    params(("name" = String, Path, description = "Registered workflow name.")),
    responses(
        (status = 200, description = "Schemas under start and stop", body = WorkflowSchema),
        (status = 404, description = "Unknown workflow", body = ErrorBody),
    )
)]
pub(crate) async fn schema(
    State(state): State<AppRef>,
    PathParam(name): PathParam,
) -> Result<Json<WorkflowSchema>, ApiError> {
    let workflow = served(&state, &name)?;
    let start = workflow.start_event();
    let stop = workflow
        .event_types()
        .iter()
        .find(|ty| ty.role() == EventRole::Stop)
        .copied()
        .unwrap_or_else(EventType::of::<StopEvent>);
    Ok(Json(WorkflowSchema {
        start: state.schemas.get(&start),
        stop: state.schemas.get(&stop),
    }))
}

/// `GET /workflows/{name}/events`: the JSON Schemas of the event types runs of the workflow
/// know ([`Workflow::known_event_types`]: its step signatures, the types registered on it and
/// the built-in events), sorted by name.
#[utoipa::path(
    get,
    path = "/workflows/{name}/events",
    summary = "JSON Schemas of the event types runs of the workflow know",
    params(("name" = String, Path, description = "Registered workflow name.")),
    responses(
        (status = 200, description = "One schema per event type, sorted by name", body = WorkflowEvents),
        (status = 404, description = "Unknown workflow", body = ErrorBody),
    )
)]
pub(crate) async fn events(
    State(state): State<AppRef>,
    PathParam(name): PathParam,
) -> Result<Json<WorkflowEvents>, ApiError> {
    let workflow = served(&state, &name)?;
    let events = workflow
        .known_event_types()
        .iter()
        .map(|ty| state.schemas.get(ty))
        .collect();
    Ok(Json(WorkflowEvents { events }))
}

/// `GET /workflows/{name}/representation`: the workflow's graph.
#[utoipa::path(
    get,
    path = "/workflows/{name}/representation",
    summary = "The workflow as a graph of steps and events",
    params(("name" = String, Path, description = "Registered workflow name.")),
    responses(
        (status = 200, description = "The graph", body = Representation),
        (status = 404, description = "Unknown workflow", body = ErrorBody),
    )
)]
pub(crate) async fn representation(
    State(state): State<AppRef>,
    PathParam(name): PathParam,
) -> Result<Json<Representation>, ApiError> {
    let workflow = served(&state, &name)?;
    Ok(Json(Representation {
        graph: crate::graph::representation(workflow, &state.schemas),
    }))
}
