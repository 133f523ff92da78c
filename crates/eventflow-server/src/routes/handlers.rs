//! `/handlers`: listing runs, reading one, cancelling and purging; `/results` (deprecated).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eventflow::store::{RunFilter, RunRecord, RunStatus};
use serde_json::{Value, json};

use super::{AppRef, handler_data, load_run, log_run, query_flag, query_pairs};
use crate::error::ApiError;

/// `GET /handlers?status=...&workflow_name=...`.
pub(crate) async fn list(
    State(state): State<AppRef>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
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
    filter.workflow = values("workflow_name")
        .into_iter()
        .map(str::to_owned)
        .collect();
    let runs = state.engine.store().list_runs(&filter).await?;
    let handlers: Vec<Value> = runs.iter().map(handler_data).collect();
    Ok(Json(json!({ "handlers": handlers })))
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
pub(crate) async fn get(
    State(state): State<AppRef>,
    Path(handler_id): Path<String>,
) -> Result<Response, ApiError> {
    let record = load_run(&state, &handler_id).await?;
    log_run(&record.run_id, &record.workflow.name);
    Ok((status_code(&record), Json(handler_data(&record))).into_response())
}

/// `GET /results/{handler_id}`: as `/handlers/{id}`, with the stop event's result unwrapped.
pub(crate) async fn result(
    State(state): State<AppRef>,
    Path(handler_id): Path<String>,
) -> Result<Response, ApiError> {
    let record = load_run(&state, &handler_id).await?;
    let mut data = handler_data(&record);
    let result = match &record.result {
        Some(stored) if stored["type"] == "StopEvent" => stored["value"]["result"].clone(),
        Some(stored) => stored["value"].clone(),
        None => Value::Null,
    };
    data["result"] = result;
    Ok((status_code(&record), Json(data)).into_response())
}

/// `POST /handlers/{handler_id}/cancel?purge=true|false`.
pub(crate) async fn cancel(
    State(state): State<AppRef>,
    Path(handler_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let purge = query_flag(&query_pairs(query.as_deref()), "purge", false);
    let record = load_run(&state, &handler_id).await?;
    log_run(&record.run_id, &record.workflow.name);
    let engine = &state.engine;
    if purge {
        if !record.status.is_terminal() {
            match engine.cancel(&handler_id).await {
                Ok(_) => {}
                Err(eventflow::durable::EngineError::UnknownRun { .. }) => {}
                Err(error) => return Err(ApiError::from_engine(error, &handler_id)),
            }
        }
        if !engine.store().purge(&handler_id).await? {
            return Err(ApiError::HandlerNotFound { handler_id });
        }
        tracing::info!(run_id = %handler_id, "run purged");
        return Ok(Json(json!({"status": "deleted"})));
    }
    match record.status {
        // Idempotent: cancelling a cancelled run is what was asked.
        RunStatus::Cancelled => {
            return Ok(Json(
                json!({"status": "cancelled", "run_status": "cancelled"}),
            ));
        }
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
        status => Ok(Json(
            json!({"status": "cancelled", "run_status": status.as_str()}),
        )),
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
