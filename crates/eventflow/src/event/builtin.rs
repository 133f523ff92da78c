//! The events every workflow shares: start, stop, human-in-the-loop, the terminal events and
//! the internal ones (defined in `internal.rs`).
//!
//! They derive `Event` like any other event. Their JSON Schemas are given to the derive
//! (`schema = json!(..)`) rather than derived with `JsonSchema`: servers and clients read them
//! as they are, and what schemars derives differs (a `$schema` key, the doc comments as
//! descriptions, `format` on integers, `true` for any value); `StartEvent`'s fields are only known
//! at run time anyway.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::internal::{StepStateChanged, UnhandledEvent, WorkflowIdleEvent};
use crate::{Event, EventJson, EventType};

/// Every built-in event type, in one place: what the engine knows without being told.
pub(crate) fn builtins() -> [EventType; 11] {
    [
        EventType::of::<StartEvent>(),
        EventType::of::<StopEvent>(),
        EventType::of::<InputRequiredEvent>(),
        EventType::of::<HumanResponseEvent>(),
        EventType::of::<RunFailedEvent>(),
        EventType::of::<RunTimedOutEvent>(),
        EventType::of::<RunCancelledEvent>(),
        EventType::of::<StepFailedEvent>(),
        EventType::of::<StepStateChanged>(),
        EventType::of::<WorkflowIdleEvent>(),
        EventType::of::<UnhandledEvent>(),
    ]
}

/// A field of an event could not be read as the type asked for.
#[derive(Debug, thiserror::Error)]
pub enum EventFieldError {
    /// The event has no such field.
    #[error("{event} has no field `{key}` (it has: {available})")]
    Missing {
        /// The event's name.
        event: &'static str,
        /// The field asked for.
        key: String,
        /// The fields the event does have, comma-separated.
        available: String,
    },
    /// The field exists but does not deserialize into the type asked for.
    #[error("{event} field `{key}` is not a valid `{expected}`: {source}")]
    WrongType {
        /// The event's name.
        event: &'static str,
        /// The field asked for.
        key: String,
        /// The Rust type asked for.
        expected: &'static str,
        /// Why deserialization failed.
        #[source]
        source: serde_json::Error,
    },
}

fn read_field<T: DeserializeOwned>(
    event: &'static str,
    fields: &Map<String, Value>,
    key: &str,
) -> Result<T, EventFieldError> {
    let value = fields.get(key).ok_or_else(|| EventFieldError::Missing {
        event,
        key: key.to_owned(),
        available: if fields.is_empty() {
            "no fields".to_owned()
        } else {
            fields
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        },
    })?;
    T::deserialize(value).map_err(|source| EventFieldError::WrongType {
        event,
        key: key.to_owned(),
        expected: std::any::type_name::<T>(),
        source,
    })
}

/// The event that starts a run: the run's keyword arguments as a JSON map.
///
/// ```
/// use eventflow::StartEvent;
/// use serde_json::json;
///
/// let start = StartEvent::from_json(json!({"query": "What is AI?", "top_k": 5})).unwrap();
/// assert_eq!(start.get::<String>("query").unwrap(), "What is AI?");
/// let err = start.get::<String>("top_k").unwrap_err();
/// assert!(err.to_string().contains("`top_k` is not a valid `alloc::string::String`"));
/// ```
#[derive(Event, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
#[event(start, schema = json!({
    "title": "StartEvent",
    "description": "The run's input: any keyword arguments, read by steps with `get`.",
    "type": "object",
    "additionalProperties": true
}))]
pub struct StartEvent {
    kwargs: Map<String, Value>,
}

impl StartEvent {
    /// A start event with no arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// A start event from a JSON object; anything else is handed back.
    pub fn from_json(value: Value) -> Result<Self, Value> {
        match value {
            Value::Object(kwargs) => Ok(StartEvent { kwargs }),
            Value::Null => Ok(StartEvent::default()),
            other => Err(other),
        }
    }

    /// Adds an argument.
    ///
    /// # Panics
    ///
    /// When `value` does not serialize to JSON.
    pub fn with(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let key = key.into();
        let value = super::field_value(&key, value);
        self.kwargs.insert(key, value);
        self
    }

    /// Reads the argument `key` as a `T`, with an error naming the key and the type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, EventFieldError> {
        read_field(Self::NAME, &self.kwargs, key)
    }

    /// Reads the argument `key` as a `T`, or `None` when it is absent or null.
    pub fn get_opt<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, EventFieldError> {
        match self.kwargs.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.get(key).map(Some),
        }
    }

    /// All arguments.
    pub fn kwargs(&self) -> &Map<String, Value> {
        &self.kwargs
    }
}

impl From<Map<String, Value>> for StartEvent {
    fn from(kwargs: Map<String, Value>) -> Self {
        StartEvent { kwargs }
    }
}

/// The event that ends a run: it carries the run's result as JSON.
///
/// ```
/// use eventflow::StopEvent;
///
/// let stop = StopEvent::new(vec!["a", "b"]);
/// assert_eq!(stop.result::<Vec<String>>().unwrap(), ["a", "b"]);
/// ```
#[derive(Event, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[event(stop, schema = json!({
    "title": "StopEvent",
    "description": "The run's result.",
    "type": "object",
    "properties": { "result": {} },
    "required": ["result"]
}))]
pub struct StopEvent {
    result: Value,
}

impl StopEvent {
    /// A stop event carrying `result`.
    ///
    /// # Panics
    ///
    /// If `result` cannot be represented as JSON (a map with non-string keys, a `Serialize`
    /// implementation that fails); [`StopEvent::try_new`] returns the error instead. Inside a
    /// step the panic fails the run with the step's name, not the process.
    pub fn new(result: impl Serialize) -> Self {
        Self::try_new(result).expect("StopEvent result must serialize to JSON")
    }

    /// A stop event carrying `result`, or the serialization error.
    pub fn try_new(result: impl Serialize) -> Result<Self, serde_json::Error> {
        Ok(StopEvent {
            result: serde_json::to_value(result)?,
        })
    }

    /// The result as a `T`.
    pub fn result<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.result)
    }

    /// The result as JSON.
    pub fn result_json(&self) -> &Value {
        &self.result
    }
}

/// A question for a human: published on the run's event stream, answered with a
/// [`HumanResponseEvent`] sent through the handler.
#[derive(Event, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[event(outbound, schema = json!({
    "title": "InputRequiredEvent",
    "description": "A question for a human; answer it with a HumanResponseEvent.",
    "type": "object",
    "properties": { "prefix": { "type": "string" } },
    "required": ["prefix"],
    "additionalProperties": true
}))]
pub struct InputRequiredEvent {
    /// The text shown to the human.
    pub prefix: String,
    /// Any other fields (a request id, what is to be approved, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl InputRequiredEvent {
    /// A question with the given prompt.
    pub fn new(prefix: impl Into<String>) -> Self {
        InputRequiredEvent {
            prefix: prefix.into(),
            extra: Map::new(),
        }
    }

    /// Adds an extra field.
    ///
    /// # Panics
    ///
    /// When `value` does not serialize to JSON.
    pub fn with(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let key = key.into();
        let value = super::field_value(&key, value);
        self.extra.insert(key, value);
        self
    }

    /// Reads an extra field as a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, EventFieldError> {
        read_field(Self::NAME, &self.extra, key)
    }
}

/// A human's answer, sent into a run from outside.
#[derive(Event, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[event(external, schema = json!({
    "title": "HumanResponseEvent",
    "description": "A human's answer.",
    "type": "object",
    "properties": { "response": { "type": "string" } },
    "required": ["response"],
    "additionalProperties": true
}))]
pub struct HumanResponseEvent {
    /// The answer.
    pub response: String,
    /// Any other fields (the request id it answers, who answered, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl HumanResponseEvent {
    /// An answer.
    pub fn new(response: impl Into<String>) -> Self {
        HumanResponseEvent {
            response: response.into(),
            extra: Map::new(),
        }
    }

    /// Adds an extra field.
    ///
    /// # Panics
    ///
    /// When `value` does not serialize to JSON.
    pub fn with(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let key = key.into();
        let value = super::field_value(&key, value);
        self.extra.insert(key, value);
        self
    }

    /// Reads an extra field as a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, EventFieldError> {
        read_field(Self::NAME, &self.extra, key)
    }
}

/// What an error handler (`#[catch_error]`, [`Step::catch_error`](crate::Step::catch_error))
/// receives when a step it covers has failed its last allowed attempt. The handler returns any
/// event to recover the run — often a stop event — or fails, which fails the run.
#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(schema = json!({
    "title": "StepFailedEvent",
    "type": "object",
    "properties": {
        "step": { "type": "string" },
        "input_event": {
            "type": "object",
            "properties": { "type": { "type": "string" }, "value": {} },
            "required": ["type", "value"]
        },
        "error": { "type": "string" },
        "attempts": { "type": "integer", "minimum": 1 },
        "elapsed_ms": { "type": "integer", "minimum": 0 },
        "failed_at_ms": { "type": ["integer", "null"], "minimum": 0 }
    },
    "required": ["step", "input_event", "error", "attempts", "elapsed_ms"]
}))]
pub struct StepFailedEvent {
    /// The step that failed.
    pub step: String,
    /// The event it failed on; [`input`](Self::input) reads it as its type.
    pub input_event: EventJson,
    /// The last attempt's error.
    pub error: String,
    /// How many attempts the step made.
    pub attempts: u32,
    /// From the start of the first attempt to the last failure, in milliseconds (the last
    /// attempt's duration for a durable run recorded before attempt times were kept).
    pub elapsed_ms: u64,
    /// When the last attempt failed, in milliseconds since the Unix epoch; `None` for a durable
    /// run recorded before attempt times were kept.
    #[serde(default)]
    pub failed_at_ms: Option<u64>,
}

impl StepFailedEvent {
    /// The event the step failed on, as an `E`.
    pub fn input<E: Event>(&self) -> Result<E, serde_json::Error> {
        E::deserialize(&self.input_event.value)
    }
}

/// Published last when a run fails: a step failed after its retries, or the run stalled.
#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(terminal, schema = json!({
    "title": "RunFailedEvent",
    "type": "object",
    "properties": {
        "step": { "type": ["string", "null"] },
        "error": { "type": "string" },
        "attempts": { "type": "integer", "minimum": 1 },
        "elapsed_ms": { "type": "integer", "minimum": 0 }
    },
    "required": ["error"]
}))]
pub struct RunFailedEvent {
    /// The step that failed, when a step did.
    pub step: Option<String>,
    /// What went wrong.
    pub error: String,
    /// How many attempts the failed step made, when a step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// How long the failed step's last attempt ran, in milliseconds, when a step failed (0 when
    /// the failure was replayed from a durable journal, which does not keep durations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
}

/// Published last when a run exceeds its timeout.
#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(terminal, schema = json!({
    "title": "RunTimedOutEvent",
    "type": "object",
    "properties": {
        "timeout_ms": { "type": "integer", "minimum": 0 },
        "active_steps": { "type": "array", "items": { "type": "string" } }
    },
    "required": ["timeout_ms", "active_steps"]
}))]
pub struct RunTimedOutEvent {
    /// The run's timeout, in milliseconds.
    pub timeout_ms: u64,
    /// The steps that were running when it expired.
    pub active_steps: Vec<String>,
}

/// Published last when a run is cancelled.
#[derive(Event, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[event(terminal, schema = json!({
    "title": "RunCancelledEvent",
    "type": "object"
}))]
pub struct RunCancelledEvent {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AnyEvent;
    use crate::event::internal::StepState;
    use serde_json::json;

    /// What the outside sees of a built-in event: recorded from the hand-written implementations
    /// these types had before they derived `Event`, and compared byte for byte, because the
    /// server's API, its clients and the golden fixtures read these names, roles, schemas and
    /// values.
    struct Pinned {
        ty: EventType,
        name: &'static str,
        role: &'static str,
        schema: &'static str,
        /// Events of the type and their JSON values.
        samples: Vec<(AnyEvent, &'static str)>,
    }

    fn pinned() -> Vec<Pinned> {
        vec![
            Pinned {
                ty: EventType::of::<StartEvent>(),
                name: "StartEvent",
                role: r#""start""#,
                schema: r#"{"additionalProperties":true,"description":"The run's input: any keyword arguments, read by steps with `get`.","title":"StartEvent","type":"object"}"#,
                samples: vec![
                    (StartEvent::new().into(), "{}"),
                    (
                        StartEvent::new()
                            .with("query", "What is AI?")
                            .with("top_k", 5)
                            .into(),
                        r#"{"query":"What is AI?","top_k":5}"#,
                    ),
                ],
            },
            Pinned {
                ty: EventType::of::<StopEvent>(),
                name: "StopEvent",
                role: r#""stop""#,
                schema: r#"{"description":"The run's result.","properties":{"result":{}},"required":["result"],"title":"StopEvent","type":"object"}"#,
                samples: vec![
                    (StopEvent::default().into(), r#"{"result":null}"#),
                    (
                        StopEvent::new(json!({"answer": 42, "sources": ["a"]})).into(),
                        r#"{"result":{"answer":42,"sources":["a"]}}"#,
                    ),
                ],
            },
            Pinned {
                ty: EventType::of::<InputRequiredEvent>(),
                name: "InputRequiredEvent",
                role: r#""outbound""#,
                schema: r#"{"additionalProperties":true,"description":"A question for a human; answer it with a HumanResponseEvent.","properties":{"prefix":{"type":"string"}},"required":["prefix"],"title":"InputRequiredEvent","type":"object"}"#,
                samples: vec![(
                    InputRequiredEvent::new("Approve?")
                        .with("request_id", 7)
                        .into(),
                    r#"{"prefix":"Approve?","request_id":7}"#,
                )],
            },
            Pinned {
                ty: EventType::of::<HumanResponseEvent>(),
                name: "HumanResponseEvent",
                role: r#""external""#,
                schema: r#"{"additionalProperties":true,"description":"A human's answer.","properties":{"response":{"type":"string"}},"required":["response"],"title":"HumanResponseEvent","type":"object"}"#,
                samples: vec![(
                    HumanResponseEvent::new("yes").with("user", "ada").into(),
                    r#"{"response":"yes","user":"ada"}"#,
                )],
            },
            Pinned {
                ty: EventType::of::<RunFailedEvent>(),
                name: "RunFailedEvent",
                role: r#""terminal""#,
                schema: r#"{"properties":{"attempts":{"minimum":1,"type":"integer"},"elapsed_ms":{"minimum":0,"type":"integer"},"error":{"type":"string"},"step":{"type":["string","null"]}},"required":["error"],"title":"RunFailedEvent","type":"object"}"#,
                samples: vec![
                    (
                        RunFailedEvent {
                            step: Some("fetch".into()),
                            error: "disk full".into(),
                            attempts: Some(3),
                            elapsed_ms: Some(12),
                        }
                        .into(),
                        r#"{"attempts":3,"elapsed_ms":12,"error":"disk full","step":"fetch"}"#,
                    ),
                    (
                        RunFailedEvent {
                            step: None,
                            error: "stalled".into(),
                            attempts: None,
                            elapsed_ms: None,
                        }
                        .into(),
                        r#"{"error":"stalled","step":null}"#,
                    ),
                ],
            },
            Pinned {
                ty: EventType::of::<RunTimedOutEvent>(),
                name: "RunTimedOutEvent",
                role: r#""terminal""#,
                schema: r#"{"properties":{"active_steps":{"items":{"type":"string"},"type":"array"},"timeout_ms":{"minimum":0,"type":"integer"}},"required":["timeout_ms","active_steps"],"title":"RunTimedOutEvent","type":"object"}"#,
                samples: vec![(
                    RunTimedOutEvent {
                        timeout_ms: 1500,
                        active_steps: vec!["slow".into()],
                    }
                    .into(),
                    r#"{"active_steps":["slow"],"timeout_ms":1500}"#,
                )],
            },
            Pinned {
                ty: EventType::of::<RunCancelledEvent>(),
                name: "RunCancelledEvent",
                role: r#""terminal""#,
                schema: r#"{"title":"RunCancelledEvent","type":"object"}"#,
                samples: vec![(RunCancelledEvent {}.into(), "{}")],
            },
            Pinned {
                ty: EventType::of::<StepFailedEvent>(),
                name: "StepFailedEvent",
                role: r#""plain""#,
                schema: r#"{"properties":{"attempts":{"minimum":1,"type":"integer"},"elapsed_ms":{"minimum":0,"type":"integer"},"error":{"type":"string"},"failed_at_ms":{"minimum":0,"type":["integer","null"]},"input_event":{"properties":{"type":{"type":"string"},"value":{}},"required":["type","value"],"type":"object"},"step":{"type":"string"}},"required":["step","input_event","error","attempts","elapsed_ms"],"title":"StepFailedEvent","type":"object"}"#,
                samples: vec![(
                    StepFailedEvent {
                        step: "fetch".into(),
                        input_event: EventJson {
                            name: "StartEvent".into(),
                            value: json!({"url": "x"}),
                        },
                        error: "timed out".into(),
                        attempts: 3,
                        elapsed_ms: 1200,
                        failed_at_ms: Some(1_700_000_000_000),
                    }
                    .into(),
                    r#"{"attempts":3,"elapsed_ms":1200,"error":"timed out","failed_at_ms":1700000000000,"input_event":{"type":"StartEvent","value":{"url":"x"}},"step":"fetch"}"#,
                )],
            },
            Pinned {
                ty: EventType::of::<StepStateChanged>(),
                name: "StepStateChanged",
                role: r#""internal""#,
                schema: r#"{"properties":{"input_event_name":{"type":"string"},"name":{"type":"string"},"output_event_name":{"type":["string","null"]},"step_state":{"enum":["preparing","running","not_running"]},"worker_id":{"type":"string"}},"required":["name","step_state","worker_id","input_event_name"],"title":"StepStateChanged","type":"object"}"#,
                samples: vec![
                    (
                        StepStateChanged {
                            name: "fetch".into(),
                            step_state: StepState::NotRunning,
                            worker_id: "7".into(),
                            input_event_name: "StartEvent".into(),
                            output_event_name: Some("StopEvent".into()),
                        }
                        .into(),
                        r#"{"input_event_name":"StartEvent","name":"fetch","output_event_name":"StopEvent","step_state":"not_running","worker_id":"7"}"#,
                    ),
                    (
                        StepStateChanged {
                            name: "fetch".into(),
                            step_state: StepState::Preparing,
                            worker_id: String::new(),
                            input_event_name: "StartEvent".into(),
                            output_event_name: None,
                        }
                        .into(),
                        r#"{"input_event_name":"StartEvent","name":"fetch","output_event_name":null,"step_state":"preparing","worker_id":""}"#,
                    ),
                ],
            },
            Pinned {
                ty: EventType::of::<WorkflowIdleEvent>(),
                name: "WorkflowIdleEvent",
                role: r#""internal""#,
                schema: r#"{"title":"WorkflowIdleEvent","type":"object"}"#,
                samples: vec![(WorkflowIdleEvent {}.into(), "{}")],
            },
            Pinned {
                ty: EventType::of::<UnhandledEvent>(),
                name: "UnhandledEvent",
                role: r#""internal""#,
                schema: r#"{"properties":{"event_type":{"type":"string"},"idle":{"type":"boolean"},"qualified_name":{"type":"string"},"step_name":{"type":["string","null"]}},"required":["event_type","qualified_name","idle"],"title":"UnhandledEvent","type":"object"}"#,
                samples: vec![(
                    UnhandledEvent {
                        event_type: "Note".into(),
                        qualified_name: "Note".into(),
                        step_name: None,
                        idle: true,
                    }
                    .into(),
                    r#"{"event_type":"Note","idle":true,"qualified_name":"Note","step_name":null}"#,
                )],
            },
        ]
    }

    #[test]
    fn built_in_names_roles_schemas_and_values_are_unchanged() {
        // Every built-in is pinned: a new one is added here too.
        let pinned_types: Vec<EventType> = pinned().iter().map(|p| p.ty).collect();
        assert_eq!(pinned_types, builtins());
        for pinned in pinned() {
            let ty = pinned.ty;
            assert_eq!(ty.name(), pinned.name);
            let role = serde_json::to_string(&ty.role()).unwrap();
            assert_eq!(role, pinned.role, "role of {}", pinned.name);
            let schema = serde_json::to_string(&ty.schema()).unwrap();
            assert_eq!(schema, pinned.schema, "schema of {}", pinned.name);
            for (event, json) in pinned.samples {
                assert_eq!(event.name(), pinned.name);
                let value = event.to_json().unwrap();
                assert_eq!(serde_json::to_string(&value).unwrap(), json);
                // And the value reads back as the same event.
                let back = ty.decode(serde_json::from_str(json).unwrap()).unwrap();
                assert_eq!(back.to_json().unwrap(), value, "{} round trip", pinned.name);
                assert_eq!(back.event_type(), ty);
            }
        }
    }
}
