//! `/handlers`: listing runs, reading one, cancelling and purging; `/results` (deprecated).

use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eventflow::store::{RunFilter, RunRecord, RunStatus};
use eventflow_api::{CancelOutcome, ErrorBody, Handler, HandlerList};
use serde_json::Value;

use super::{
    AppRef, PathParam, handler_data, load_run, log_run, query_flag, query_pairs, wire_status,
};
use crate::error::ApiError;

/// `GET /handlers?status=...&workflow_name=...`.
#[utoipa::path(
    get,
    path = "/handlers",
    summary = "List handlers (runs), oldest first",
    params(
        ("status" = Option<Vec<eventflow_api::RunStatus>>, Query, style = Form, explode,
         description = "Only runs with one of these statuses (repeat the key); `running` matches running, waiting and parked runs."),
        ("workflow_name" = Option<Vec<String>>, Query, style = Form, explode,
         description = "Only runs of one of these workflows (repeat the key)."),
    ),
    responses(
        (status = 200, description = "The handlers, oldest first", body = HandlerList),
        (status = 400, description = "Unknown status value", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppRef>,
    RawQuery(query): RawQuery,
) -> Result<Json<HandlerList>, ApiError> {
    let pairs = query_pairs(query.as_deref());
    let mut filter = RunFilter::default();
    let values = |key: &str| {
        pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
            .collect::<Vec<&str>>()
    };
    for status in values("status") {
        let matching: &[RunStatus] = match status {
            // Clients know four statuses: `running` is every run that has not finished.
            "running" => &[RunStatus::Running, RunStatus::Waiting, RunStatus::Parked],
            "waiting" => &[RunStatus::Waiting],
            "parked" => &[RunStatus::Parked],
            "completed" => &[RunStatus::Completed],
            "failed" => &[RunStatus::Failed],
            "cancelled" => &[RunStatus::Cancelled],
            other => {
                return Err(ApiError::BadRequest(format!(
                    "Invalid status filter: '{other}'. Expected one of running, completed, \
                     failed, cancelled (or eventflow's waiting, parked)"
                )));
            }
        };
        for status in matching {
            if !filter.status.contains(status) {
                filter.status.push(*status);
            }
        }
    }
    for name in values("workflow_name") {
        // No workflow name holds one, and Postgres cannot even compare text holding NUL: a
        // 400 here rather than the database's refusal.
        if let Some((at, control)) = name.char_indices().find(|(_, c)| c.is_control()) {
            return Err(ApiError::BadRequest(format!(
                "Invalid workflow_name filter: it holds the control character U+{:04X} at byte \
                 {at}",
                u32::from(control)
            )));
        }
        filter.workflow.push(name.to_owned());
    }
    let runs = state.engine.runs(&filter, 0, None).await?;
    let handlers = runs.iter().map(handler_data).collect();
    Ok(Json(HandlerList { handlers }))
}

/// 200 completed, 202 running, 500 failed or cancelled: the reference's codes.
fn status_code(record: &RunRecord) -> StatusCode {
    match record.status {
        RunStatus::Completed => StatusCode::OK,
        RunStatus::Running | RunStatus::Waiting | RunStatus::Parked => StatusCode::ACCEPTED,
        RunStatus::Failed | RunStatus::Cancelled => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `GET /handlers/{handler_id}`.
#[utoipa::path(
    get,
    path = "/handlers/{handler_id}",
    summary = "A handler (run)",
    params(("handler_id" = String, Path, description = "Handler id (= run id).")),
    responses(
        (status = 200, description = "Completed", body = Handler),
        (status = 202, description = "Still running", body = Handler),
        (status = 404, description = "Unknown handler", body = ErrorBody),
        (status = 500, description = "Failed or cancelled", body = Handler),
    )
)]
pub(crate) async fn get(
    State(state): State<AppRef>,
    PathParam(handler_id): PathParam,
) -> Result<Response, ApiError> {
    let record = load_run(&state, &handler_id).await?;
    log_run(&record.run_id, &record.workflow.name);
    Ok((status_code(&record), Json(handler_data(&record))).into_response())
}

/// `GET /results/{handler_id}`: as `/handlers/{id}`, with the stop event's result unwrapped.
#[utoipa::path(
    get,
    path = "/results/{handler_id}",
    summary = "A handler with its bare result (deprecated: use /handlers/{handler_id})",
    description = "As `GET /handlers/{handler_id}`, but `result` is the stop event's `result` field for `StopEvent` (the whole value for other stop events), not an envelope.",
    params(("handler_id" = String, Path, description = "Handler id (= run id).")),
    responses(
        (status = 200, description = "Completed", body = Handler),
        (status = 202, description = "Still running", body = Handler),
        (status = 404, description = "Unknown handler", body = ErrorBody),
        (status = 500, description = "Failed or cancelled", body = Handler),
    )
)]
#[deprecated = "the reference deprecates `/results`: use `/handlers/{handler_id}`"]
pub(crate) async fn result(
    State(state): State<AppRef>,
    PathParam(handler_id): PathParam,
) -> Result<Response, ApiError> {
    let record = load_run(&state, &handler_id).await?;
    let mut data = serde_json::to_value(handler_data(&record))
        .map_err(|error| ApiError::Internal(format!("handler '{handler_id}': {error}")))?;
    let result = match &record.result {
        Some(stored) if stored["type"] == "StopEvent" => stored["value"]["result"].clone(),
        Some(stored) => stored["value"].clone(),
        None => Value::Null,
    };
    data["result"] = result;
    Ok((status_code(&record), Json(data)).into_response())
}

/// `POST /handlers/{handler_id}/cancel?purge=true|false`.
#[utoipa::path(
    post,
    path = "/handlers/{handler_id}/cancel",
    summary = "Cancel a run, or delete it with purge=true",
    params(
        ("handler_id" = String, Path, description = "Handler id (= run id)."),
        ("purge" = Option<bool>, Query, description = "`true`: cancel the run if it runs, then delete it with its journal and events."),
    ),
    responses(
        (status = 200, description = "Cancelled (idempotent) or deleted", body = CancelOutcome),
        (status = 404, description = "Unknown handler", body = ErrorBody),
        (status = 409, description = "The run already completed or failed", body = ErrorBody),
    )
)]
pub(crate) async fn cancel(
    State(state): State<AppRef>,
    PathParam(handler_id): PathParam,
    RawQuery(query): RawQuery,
) -> Result<Json<CancelOutcome>, ApiError> {
    let purge = query_flag(&query_pairs(query.as_deref()), "purge", false);
    let record = load_run(&state, &handler_id).await?;
    log_run(&record.run_id, &record.workflow.name);
    let engine = &state.engine;
    if purge {
        engine
            .purge(&handler_id)
            .await
            .map_err(|error| ApiError::from_engine(error, &handler_id))?;
        tracing::info!(run_id = %handler_id, "run purged");
        return Ok(Json(CancelOutcome {
            status: "deleted".to_owned(),
            run_status: None,
        }));
    }
    match record.status {
        // Idempotent: cancelling a cancelled run is what was asked.
        RunStatus::Cancelled => return Ok(Json(cancelled(RunStatus::Cancelled))),
        status @ (RunStatus::Completed | RunStatus::Failed) => {
            return Err(ApiError::HandlerFinished { handler_id, status });
        }
        RunStatus::Running | RunStatus::Waiting | RunStatus::Parked => {}
    }
    let status = engine
        .cancel(&handler_id)
        .await
        .map_err(|error| ApiError::from_engine(error, &handler_id))?;
    tracing::info!(run_id = %handler_id, "cancel requested");
    let status = if status.is_terminal() {
        status
    } else {
        wait_terminal(&state, &handler_id, state.config.cancel_wait).await
    };
    match status {
        status @ (RunStatus::Completed | RunStatus::Failed) => {
            Err(ApiError::HandlerFinished { handler_id, status })
        }
        status => Ok(Json(cancelled(status))),
    }
}

/// The answer to a cancel, with the run's status when answering.
fn cancelled(status: RunStatus) -> CancelOutcome {
    CancelOutcome {
        status: "cancelled".to_owned(),
        run_status: Some(wire_status(status)),
    }
}

/// The run's status once terminal, or as it is after `wait`.
async fn wait_terminal(state: &AppRef, run_id: &str, wait: Duration) -> RunStatus {
    match state.engine.wait(run_id, Some(wait)).await {
        Ok(record) => record.status,
        Err(_) => match state.engine.record(run_id).await {
            Ok(record) => record.status,
            Err(_) => RunStatus::Running,
        },
    }
}
