//! A handler (= a run) as the server describes it: `HandlerData`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::envelope::EventEnvelope;
use crate::error::PayloadError;
use crate::status::{HandlerStatus, RunStatus};

/// A handler (= a run) as the server describes it (`HandlerData`; `Handler` in the
/// reference's OpenAPI), in the answers of the run routes and `/handlers`.
///
/// The reference's client requires every key up to `completed_at`; eventflow sends them all,
/// plus `eventflow_status` and `last_sequence` (and `after_sequence` from `run-nowait`).
/// Reading, every key but `handler_id`, `workflow_name` and `status` may be missing, and keys
/// this reader does not know are kept in `extra`, so the reference server's answers and newer
/// servers' read too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Handler {
    /// The handler id; eventflow's run id.
    pub handler_id: String,
    /// The workflow the run runs.
    pub workflow_name: String,
    /// The run id (equal to `handler_id` on eventflow).
    #[serde(default)]
    pub run_id: Option<String>,
    /// The status llama-agents clients know.
    pub status: HandlerStatus,
    /// The stop event, once the run completed.
    #[serde(default)]
    pub result: Option<EventEnvelope>,
    /// The reference server's flag for a result it could not serialize (always false from
    /// eventflow).
    #[serde(default)]
    pub result_unreadable: bool,
    /// Why the run failed or was cancelled.
    #[serde(default)]
    pub error: Option<String>,
    /// When the run started, ISO 8601 UTC with microseconds, as Python writes it
    /// (`2026-11-24T09:19:34.566000+00:00`).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// When the run last changed, ISO 8601 UTC.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
    /// When the run finished, ISO 8601 UTC; `None` while it runs.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
    /// eventflow's exact status (`None` from servers that do not send it).
    #[serde(default)]
    pub eventflow_status: Option<RunStatus>,
    /// The sequence of the last event the handler published (`0`: none yet), across its runs;
    /// `None` from servers that do not send it.
    #[serde(default)]
    pub last_sequence: Option<u64>,
    /// `run-nowait` only (eventflow): the sequence the new run's events come after, to stream
    /// from (`0` for a new handler; for a finished handler started again, the sequence its
    /// previous run ended at). Absent from every other answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_sequence: Option<u64>,
    /// Fields this reader does not know (a newer server's).
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

impl Handler {
    /// Whether the run has finished.
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }

    /// The run's result: the `result` field of a `StopEvent`, or the whole value of another
    /// stop event type; `None` until the run completed.
    pub fn result_value(&self) -> Option<&Value> {
        let stop = self.result.as_ref()?;
        if stop.event_type == "StopEvent" {
            stop.value.get("result").or(Some(&stop.value))
        } else {
            Some(&stop.value)
        }
    }

    /// The run's result ([`result_value`](Self::result_value)) if it completed, or
    /// [`PayloadError::NotCompleted`] naming its status and error.
    pub fn into_result(self) -> Result<Value, PayloadError> {
        if self.status == HandlerStatus::Completed {
            return Ok(self.result_value().cloned().unwrap_or(Value::Null));
        }
        Err(PayloadError::NotCompleted {
            handler_id: self.handler_id,
            status: self.status,
            error: self.error,
        })
    }

    /// Decodes the run's result ([`result_value`](Self::result_value)) as a `T`; fails with
    /// [`PayloadError::NotCompleted`] when the run did not complete.
    pub fn decode_result<T: DeserializeOwned>(self) -> Result<T, PayloadError> {
        let handler_id = self.handler_id.clone();
        let value = self.into_result()?;
        serde_json::from_value(value).map_err(|source| PayloadError::Decode {
            what: format!("the result of handler '{handler_id}'"),
            message: source.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn handler_data_reads_unknown_and_missing_fields() {
        let handler: Handler = serde_json::from_value(json!({
            "handler_id": "h", "workflow_name": "greet", "run_id": "h", "error": null,
            "result": {"value": {"result": "Hi"}, "qualified_name": "workflows.events.StopEvent",
                       "type": "StopEvent", "types": null},
            "result_unreadable": false, "status": "completed",
            "started_at": "2026-11-24T09:19:34.566000+00:00",
            "updated_at": "2026-11-24T09:19:34.569000+00:00",
            "completed_at": "2026-11-24T09:19:34.569000+00:00",
            "eventflow_status": "completed", "last_sequence": 2, "brand_new": [1]
        }))
        .unwrap();
        assert_eq!(handler.status, HandlerStatus::Completed);
        assert_eq!(handler.result_value(), Some(&json!("Hi")));
        assert_eq!(handler.extra["brand_new"], json!([1]));
        assert_eq!(handler.after_sequence, None);
        assert_eq!(handler.clone().into_result().unwrap(), json!("Hi"));
        // Written back, nothing is lost, and `after_sequence` stays absent.
        let written = serde_json::to_value(&handler).unwrap();
        assert_eq!(written["brand_new"], json!([1]));
        assert!(written.get("after_sequence").is_none());

        // The reference server's minimum, and a status from the future.
        let handler: Handler = serde_json::from_value(json!({
            "handler_id": "h", "workflow_name": "w", "status": "sleeping"
        }))
        .unwrap();
        assert_eq!(handler.status, HandlerStatus::Unknown);
        assert_eq!(handler.last_sequence, None);
        assert!(matches!(
            handler.into_result(),
            Err(PayloadError::NotCompleted { .. })
        ));
    }

    #[test]
    fn results_decode_into_the_type_asked_for() {
        let handler: Handler = serde_json::from_value(json!({
            "handler_id": "h", "workflow_name": "w", "status": "completed",
            "result": {"type": "Priced", "value": {"total": 6}}
        }))
        .unwrap();
        assert_eq!(handler.result_value(), Some(&json!({"total": 6})));
        let error = handler.decode_result::<String>().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot decode the result of handler 'h'"),
            "{error}"
        );
    }
}
