//! Events on the wire: `{type, value, qualified_name, types}`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::PayloadError;

/// The names of the events that end a run's stream: the stop event of a `StopEvent` workflow and
/// the terminal events of a failed, timed out or cancelled run.
pub const TERMINAL_EVENTS: [&str; 4] = [
    "StopEvent",
    "RunFailedEvent",
    "RunTimedOutEvent",
    "RunCancelledEvent",
];

/// An event on the wire (`EventEnvelopeWithMetadata` in the reference): what the server streams
/// (a reader keeps the event's sequence in the run, the SSE `id`, in `seq`), what a handler's
/// `result` holds, and what a client sends to `POST /events/{handler_id}`.
///
/// It serializes all four keys, `qualified_name` and `types` as `null` when absent: the Python
/// client's model requires both keys, and servers ignore them in what they receive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventEnvelope {
    /// The event's sequence in its run (from 1, without gaps) when a client read it from an
    /// event stream, where it travels as the SSE `id`; `0` otherwise (a handler's `result`, an
    /// event to send). Not part of the JSON.
    #[serde(skip)]
    pub seq: u64,
    /// The event type's stable name (`StopEvent`, `InputRequiredEvent`, `app.Progress`, ...).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's fields (a JSON object for every event with named fields).
    #[serde(default)]
    pub value: Value,
    /// The Python class path of the events eventflow shares with Python's `workflows.events`
    /// (`workflows.events.StopEvent`), `None` for the others.
    #[serde(default)]
    pub qualified_name: Option<String>,
    /// The Python parent classes (always `None` from eventflow: its events have no
    /// inheritance).
    #[serde(default)]
    pub types: Option<Vec<String>>,
}

impl EventEnvelope {
    /// An event of type `event_type` with the fields `value`.
    pub fn new(event_type: impl Into<String>, value: Value) -> Self {
        EventEnvelope {
            seq: 0,
            event_type: event_type.into(),
            value,
            qualified_name: None,
            types: None,
        }
    }

    /// Whether the event is one that ends a run: a `StopEvent` or the terminal event of a
    /// failed, timed out or cancelled run ([`TERMINAL_EVENTS`]). A workflow with a custom stop
    /// event type ends with an event this does not recognize.
    pub fn is_terminal(&self) -> bool {
        TERMINAL_EVENTS.contains(&self.event_type.as_str())
    }

    /// Decodes the event's fields as a `T` (e.g. your own `#[derive(Deserialize)]` mirror of
    /// the event).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        serde_json::from_value(self.value.clone()).map_err(|source| PayloadError::Decode {
            what: format!("a `{}` event", self.event_type),
            message: source.to_string(),
        })
    }
}
