//! Events on the wire: the `{type, value, qualified_name, types}` envelopes of
//! llama-agents-server, read from clients and written to them.

use eventflow::{
    Event as _, EventJson, HumanResponseEvent, InputRequiredEvent, StartEvent, StepStateChanged,
    StopEvent, UnhandledEvent, WorkflowIdleEvent,
};
use eventflow_api::EventEnvelope;
use serde_json::{Map, Value};

/// The events eventflow shares with Python's `workflows.events`, and their Python paths.
const PYTHON_NAMES: [(&str, &str); 7] = [
    (StartEvent::NAME, "workflows.events.StartEvent"),
    (StopEvent::NAME, "workflows.events.StopEvent"),
    (
        InputRequiredEvent::NAME,
        "workflows.events.InputRequiredEvent",
    ),
    (
        HumanResponseEvent::NAME,
        "workflows.events.HumanResponseEvent",
    ),
    (StepStateChanged::NAME, "workflows.events.StepStateChanged"),
    (
        WorkflowIdleEvent::NAME,
        "workflows.events.WorkflowIdleEvent",
    ),
    (UnhandledEvent::NAME, "workflows.events.UnhandledEvent"),
];

/// The Python qualified name of an event, for the events both engines share.
pub(crate) fn qualified_name(name: &str) -> Option<&'static str> {
    PYTHON_NAMES
        .iter()
        .find(|(ours, _)| *ours == name)
        .map(|(_, python)| *python)
}

/// The envelope a client reads (`EventEnvelopeWithMetadata`).
pub(crate) fn outgoing(event: &EventJson, include_qualified_name: bool) -> EventEnvelope {
    let value = match &event.value {
        // A unit event: the client's model wants an object.
        Value::Null => Value::Object(Map::new()),
        other => other.clone(),
    };
    let mut envelope = EventEnvelope::new(event.name.clone(), value);
    if include_qualified_name {
        envelope.qualified_name = qualified_name(&event.name).map(str::to_owned);
    }
    envelope
}

/// An envelope as stored in a run record (`{"type", "value"}`), as a client reads it.
pub(crate) fn outgoing_value(stored: &Value) -> Option<EventEnvelope> {
    let event: EventJson = serde_json::from_value(stored.clone()).ok()?;
    Some(outgoing(&event, true))
}

/// Python's dict-like events travel as `{"_data": {...}}`: merge the inner object's keys into
/// the value.
pub(crate) fn unwrap_data(value: Value) -> Value {
    match value {
        Value::Object(mut fields) if matches!(fields.get("_data"), Some(Value::Object(_))) => {
            let Some(Value::Object(inner)) = fields.remove("_data") else {
                unreachable!("checked just above")
            };
            for (key, value) in inner {
                fields.entry(key).or_insert(value);
            }
            Value::Object(fields)
        }
        other => other,
    }
}

/// A JSON string holding JSON is read as that JSON (the reference accepts both).
pub(crate) fn destringify(value: Value) -> Value {
    match value {
        Value::String(text) => match serde_json::from_str(&text) {
            Ok(parsed) => parsed,
            Err(_) => Value::String(text),
        },
        other => other,
    }
}

/// Whether a start event given to a run route is an envelope rather than the bare event: it has
/// a `value`, or both a `type` and a `qualified_name` (the reference's rule).
pub(crate) fn is_envelope(fields: &Map<String, Value>) -> bool {
    fields.contains_key("value")
        || (fields.contains_key("type") && fields.contains_key("qualified_name"))
}

/// Reads a client's envelope: the event type's name (from `type`, or the last segment of
/// `qualified_name`) and its value (`value`, or the legacy `data`), with `_data` unwrapped.
pub(crate) fn incoming(data: Value) -> Result<EventJson, String> {
    let Value::Object(mut fields) = destringify(data) else {
        return Err(
            "Failed to deserialize event. Must be a json object, or stringified json object"
                .to_owned(),
        );
    };
    let name = match (fields.get("type"), fields.get("qualified_name")) {
        (Some(Value::String(name)), _) if !name.is_empty() => name.clone(),
        (_, Some(Value::String(qualified))) if !qualified.is_empty() => {
            qualified.rsplit('.').next().unwrap_or(qualified).to_owned()
        }
        (Some(other), _) if !other.is_null() => {
            return Err(format!("Invalid event type: {other}. It must be a string"));
        }
        _ => {
            return Err(
                "Invalid client data. Must have a type or a qualified name, got no `type` field"
                    .to_owned(),
            );
        }
    };
    let value = match fields.remove("value") {
        Some(value) => value,
        None => fields.remove("data").unwrap_or(Value::Null),
    };
    let value = match value {
        Value::Null => Value::Object(Map::new()),
        other => unwrap_data(destringify_object(other)),
    };
    Ok(EventJson { name, value })
}

/// A value given as a string holding a JSON object is that object.
fn destringify_object(value: Value) -> Value {
    match value {
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(parsed @ Value::Object(_)) => parsed,
            _ => Value::String(text),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventflow::{RunCancelledEvent, RunFailedEvent, RunTimedOutEvent};
    use serde_json::json;

    /// The wire crate cannot see the engine, so its list of terminal names is pinned here to the
    /// engine's event types.
    #[test]
    fn the_wire_terminal_names_are_the_engine_event_names() {
        assert_eq!(
            eventflow_api::TERMINAL_EVENTS,
            [
                StopEvent::NAME,
                RunFailedEvent::NAME,
                RunTimedOutEvent::NAME,
                RunCancelledEvent::NAME,
            ]
        );
    }

    #[test]
    fn python_dict_like_values_are_unwrapped() {
        let event = incoming(json!({
            "type": "HumanResponseEvent",
            "value": {"_data": {"response": "Bob"}},
            "qualified_name": null
        }))
        .unwrap();
        assert_eq!(event.name, "HumanResponseEvent");
        assert_eq!(event.value, json!({"response": "Bob"}));
    }

    #[test]
    fn qualified_names_and_legacy_data_are_read() {
        let event = incoming(json!({
            "qualified_name": "workflows.events.HumanResponseEvent",
            "data": {"response": "x"}
        }))
        .unwrap();
        assert_eq!(event.name, "HumanResponseEvent");
        assert_eq!(event.value, json!({"response": "x"}));
    }

    #[test]
    fn stringified_envelopes_are_read() {
        let event = incoming(json!(r#"{"type": "Ping", "value": {"n": 1}}"#)).unwrap();
        assert_eq!(event.name, "Ping");
        assert_eq!(event.value, json!({"n": 1}));
    }

    #[test]
    fn envelopes_without_a_type_are_refused() {
        let error = incoming(json!({"value": {}})).unwrap_err();
        assert!(error.contains("Must have a type"), "{error}");
        let error = incoming(json!([1])).unwrap_err();
        assert!(error.contains("json object"), "{error}");
    }

    #[test]
    fn outgoing_envelopes_name_shared_events_in_python() {
        let stop = EventJson {
            name: "StopEvent".into(),
            value: json!({"result": 1}),
        };
        assert_eq!(
            serde_json::to_value(outgoing(&stop, true)).unwrap(),
            json!({"value": {"result": 1}, "qualified_name": "workflows.events.StopEvent",
                   "type": "StopEvent", "types": null})
        );
        let unit = EventJson {
            name: "app.Done".into(),
            value: Value::Null,
        };
        assert_eq!(outgoing(&unit, true).value, json!({}));
        assert_eq!(outgoing(&unit, true).qualified_name, None);
    }
}
