//! What the store keeps for a run besides its journal: the messages sent to its inbox and the
//! events it published, typed, and their one JSON form in the backends' columns.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::StoreError;

/// An event as JSON: its name and its fields. The form events take in the store (published
/// events, inbox messages) and in snapshots; the engine encodes its typed events into it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventJson {
    /// The event's stable name.
    #[serde(rename = "type")]
    pub name: String,
    /// The event's fields.
    pub value: Value,
}

/// How a cancel request is spelled in an inbox row. Rows written before the inbox was typed use
/// the same form, so they keep reading as [`Mail::Cancel`]; no workflow event can take the name,
/// since events sent from outside must be of the workflow's own types.
const CANCEL_NAME: &str = "eventflow.cancel";

/// The key of an inbox row that routes its event to one step.
const STEP_KEY: &str = "step";

/// A message to a run's inbox: what [`Store::send`](super::Store::send) queues and
/// [`Store::inbox`](super::Store::inbox) hands back.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Mail {
    /// An event for the run; to one step when `step` names it.
    Event {
        /// The event.
        event: EventJson,
        /// The step it is for; `None` routes it to every step that accepts it.
        step: Option<String>,
    },
    /// Asks the run to cancel.
    Cancel,
}

impl Mail {
    /// An event for whichever steps accept it.
    pub fn event(event: EventJson) -> Self {
        Mail::Event { event, step: None }
    }

    /// The message as a backend stores it: `{"type", "value"}` with `"step"` for a targeted
    /// event, and the cancel request as an event named `eventflow.cancel`. A backend that keeps
    /// this JSON keeps every kind of message, those of later versions included (the enum is
    /// `#[non_exhaustive]`).
    pub fn to_stored(&self) -> Value {
        let (name, value, step) = match self {
            Mail::Event { event, step } => (event.name.as_str(), event.value.clone(), step),
            Mail::Cancel => (CANCEL_NAME, Value::Object(Map::new()), &None),
        };
        let mut fields = Map::new();
        fields.insert("type".into(), Value::String(name.to_owned()));
        fields.insert("value".into(), value);
        if let Some(step) = step {
            fields.insert(STEP_KEY.into(), Value::String(step.clone()));
        }
        Value::Object(fields)
    }

    /// Reads a stored message back (see [`to_stored`](Self::to_stored)); JSON of another shape
    /// is [`StoreError::Corrupt`].
    pub fn from_stored(stored: Value) -> Result<Self, StoreError> {
        let Value::Object(mut fields) = stored else {
            return Err(StoreError::Corrupt(format!(
                "an inbox message is not a JSON object: {stored}"
            )));
        };
        let step = match fields.remove(STEP_KEY) {
            None | Some(Value::Null) => None,
            Some(Value::String(step)) => Some(step),
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "an inbox message names its step with {other}, not a string"
                )));
            }
        };
        let event = stored_event(Value::Object(fields))?;
        Ok(if event.name == CANCEL_NAME {
            Mail::Cancel
        } else {
            Mail::Event { event, step }
        })
    }
}

/// A published event as stored (`{"type", "value"}`).
fn stored_event(stored: Value) -> Result<EventJson, StoreError> {
    serde_json::from_value(stored)
        .map_err(|error| StoreError::Corrupt(format!("a stored event is not an event: {error}")))
}

/// Published events as a backend read them, with their sequences.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn stored_events(rows: Vec<(u64, Value)>) -> Result<Vec<(u64, EventJson)>, StoreError> {
    rows.into_iter()
        .map(|(seq, stored)| Ok((seq, stored_event(stored)?)))
        .collect()
}

/// The JSON of a published event, for a backend's column.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn event_to_stored(event: &EventJson) -> Value {
    serde_json::json!({"type": event.name, "value": event.value})
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(name: &str) -> EventJson {
        EventJson {
            name: name.into(),
            value: json!({"n": 1}),
        }
    }

    #[test]
    fn every_message_reads_back_as_written() {
        for mail in [
            Mail::event(event("Ping")),
            Mail::Event {
                event: event("Ping"),
                step: Some("second".into()),
            },
            Mail::Cancel,
        ] {
            assert_eq!(Mail::from_stored(mail.to_stored()).unwrap(), mail);
        }
    }

    /// Rows written before the inbox was typed must keep their meaning.
    #[test]
    fn rows_of_the_untyped_inbox_read_the_same() {
        let cancel = json!({"type": "eventflow.cancel", "value": {}});
        assert_eq!(Mail::from_stored(cancel.clone()).unwrap(), Mail::Cancel);
        assert_eq!(Mail::Cancel.to_stored(), cancel);
        let targeted = json!({"type": "Ping", "value": {"n": 1}, "step": "second"});
        let mail = Mail::from_stored(targeted.clone()).unwrap();
        assert_eq!(
            mail,
            Mail::Event {
                event: event("Ping"),
                step: Some("second".into())
            }
        );
        assert_eq!(mail.to_stored(), targeted);
    }

    #[test]
    fn a_malformed_row_is_corrupt_data() {
        for stored in [
            json!("Ping"),
            json!({"value": {}}),
            json!({"type": "Ping", "value": {}, "step": 3}),
        ] {
            assert!(matches!(
                Mail::from_stored(stored),
                Err(StoreError::Corrupt(_))
            ));
        }
    }

    #[test]
    fn a_published_event_reads_back_as_written() {
        let stored = event_to_stored(&event("Ping"));
        assert_eq!(stored, json!({"type": "Ping", "value": {"n": 1}}));
        assert_eq!(stored_event(stored).unwrap(), event("Ping"));
    }
}
