//! Events: the typed messages that flow between steps.
//!
//! Every event is a serde type with a stable [`Event::NAME`]. Inside a run, events travel
//! type-erased as [`AnyEvent`] (a cheap, shared handle) and are routed by their exact type; they are
//! serialized only when a run is snapshotted or an event leaves the process.

mod builtin;
mod internal;

pub(crate) use builtin::builtins;
pub use builtin::{
    EventFieldError, HumanResponseEvent, InputRequiredEvent, RunCancelledEvent, RunFailedEvent,
    RunTimedOutEvent, StartEvent, StepFailedEvent, StopEvent,
};
pub use internal::{StepState, StepStateChanged, UnhandledEvent, WorkflowIdleEvent};

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use eventflow_store::EventJson;

/// What part an event type plays in a workflow, as declared by `#[event(...)]`.
///
/// The role drives validation (a workflow needs exactly one start type, a stop type, ...) and
/// what the engine does with an emitted event (a stop event ends the run, an outbound event is
/// published to the stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventRole {
    /// An ordinary event between steps.
    Plain,
    /// The event that starts a run (`StartEvent`, or a type marked `#[event(start)]`).
    Start,
    /// The event that ends a run with its result (`StopEvent`, or `#[event(stop)]`).
    Stop,
    /// An event that comes from outside the run, such as a human's answer
    /// (`HumanResponseEvent`, or `#[event(external)]`). It need not be produced by any step.
    External,
    /// An event addressed to the outside, such as a question for a human
    /// (`InputRequiredEvent`, or `#[event(outbound)]`). It is published to the event stream and
    /// need not be accepted by any step.
    Outbound,
    /// The event published last when a run fails, times out or is cancelled (`RunFailedEvent`,
    /// `RunTimedOutEvent`, `RunCancelledEvent`: the engine's own, marked `#[event(terminal)]`).
    Terminal,
    /// An event about the run's machinery rather than its work (`StepStateChanged`,
    /// `WorkflowIdleEvent`, `UnhandledEvent`, or `#[event(internal)]`): published only when the
    /// run records internal events, and hidden from streams that do not ask for them.
    Internal,
}

/// A typed event: a serde value with a stable name.
///
/// Derive it rather than implementing it by hand:
///
/// ```
/// use eventflow::prelude::*;
///
/// #[derive(Event, Clone, Debug, Serialize, Deserialize)]
/// struct QueryEvent {
///     query: String,
/// }
///
/// #[derive(Event, Clone, Debug, Serialize, Deserialize)]
/// #[event(name = "app.Approval", external)]
/// struct ApprovalEvent {
///     approved: bool,
/// }
///
/// assert_eq!(QueryEvent::NAME, "QueryEvent");
/// assert_eq!(ApprovalEvent::NAME, "app.Approval");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "not an event",
    note = "derive it on a type of yours: `#[derive(Event, Clone, Serialize, Deserialize)]`; to send a type from another crate (`String`, ...), wrap it in a struct"
)]
pub trait Event: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable name of the event type: the routing key, the stream name and the wire name.
    /// By default the type's name; override it with `#[event(name = "...")]`.
    const NAME: &'static str;
    /// The part this event type plays; `#[event(start)]`, `#[event(stop)]`, ... set it.
    const ROLE: EventRole = EventRole::Plain;

    /// The JSON Schema of the event's value, for servers and clients that validate or document
    /// events. `#[derive(Event)]` provides the one given as `#[event(schema = json!({...}))]`,
    /// else the one [`schemars::JsonSchema`](crate::schemars::JsonSchema) derives when the type
    /// derives it; otherwise it is `None` (nothing is claimed about the fields).
    ///
    /// ```
    /// use eventflow::prelude::*;
    /// use eventflow::schemars::{self, JsonSchema};
    ///
    /// #[derive(Event, JsonSchema, Clone, Serialize, Deserialize)]
    /// #[schemars(crate = "eventflow::schemars")]
    /// struct Query { text: String }
    ///
    /// #[derive(Event, Clone, Serialize, Deserialize)]
    /// struct Opaque { text: String }
    ///
    /// let schema = Query::schema().unwrap();
    /// assert_eq!(schema["properties"]["text"]["type"], "string");
    /// assert!(Opaque::schema().is_none());
    /// ```
    fn schema() -> Option<Value> {
        None
    }
}

/// A runtime descriptor of an event type: its name, role and how to decode it from JSON.
///
/// Workflows keep one per event type that appears in a step signature; they are what
/// validation, drawing and snapshot decoding work with.
#[derive(Clone, Copy)]
pub struct EventType {
    name: &'static str,
    role: EventRole,
    type_id: TypeId,
    rust_name: &'static str,
    decode: fn(Value) -> Result<AnyEvent, serde_json::Error>,
    schema: fn() -> Option<Value>,
}

impl EventType {
    /// The descriptor of `E`.
    pub fn of<E: Event>() -> Self {
        EventType {
            name: E::NAME,
            role: E::ROLE,
            type_id: TypeId::of::<E>(),
            rust_name: std::any::type_name::<E>(),
            decode: |value| serde_json::from_value::<E>(value).map(AnyEvent::new),
            schema: E::schema,
        }
    }

    /// The JSON Schema of the event's value ([`Event::schema`]), if the type has one.
    pub fn schema(&self) -> Option<Value> {
        (self.schema)()
    }

    /// The event's stable name ([`Event::NAME`]).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The event's role ([`Event::ROLE`]).
    pub fn role(&self) -> EventRole {
        self.role
    }

    /// The full Rust path of the type, for error messages.
    pub fn rust_name(&self) -> &'static str {
        self.rust_name
    }

    pub(crate) fn type_id(&self) -> TypeId {
        self.type_id
    }

    /// Decodes an event of this type from its JSON value.
    pub fn decode(&self, value: Value) -> Result<AnyEvent, serde_json::Error> {
        (self.decode)(value)
    }
}

impl PartialEq for EventType {
    fn eq(&self, other: &Self) -> bool {
        self.type_id == other.type_id
    }
}

impl Eq for EventType {}

impl std::hash::Hash for EventType {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.type_id.hash(state)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The object-safe face of an event, so events of any type can share one queue.
trait DynEvent: Any + Send + Sync {
    fn name(&self) -> &str;
    fn event_type(&self) -> EventType;
    fn to_json(&self) -> Result<Value, serde_json::Error>;
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<E: Event> DynEvent for E {
    fn name(&self) -> &str {
        E::NAME
    }

    fn event_type(&self) -> EventType {
        EventType::of::<E>()
    }

    fn to_json(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// An event of any type: what the engine routes and what event streams yield.
///
/// Cloning is cheap (a reference count). Look inside with [`AnyEvent::downcast_ref`] or
/// [`AnyEvent::is`], or take it apart with [`AnyEvent::downcast`].
///
/// ```
/// use eventflow::{AnyEvent, StopEvent};
///
/// let event = AnyEvent::new(StopEvent::new(42));
/// assert_eq!(event.name(), "StopEvent");
/// assert_eq!(event.downcast_ref::<StopEvent>().unwrap().result::<i32>().unwrap(), 42);
/// ```
#[derive(Clone)]
pub struct AnyEvent(Arc<dyn DynEvent>);

impl AnyEvent {
    /// Wraps a typed event.
    pub fn new<E: Event>(event: E) -> Self {
        AnyEvent(Arc::new(event))
    }

    /// The event's stable name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// The event's type descriptor.
    pub fn event_type(&self) -> EventType {
        self.0.event_type()
    }

    /// The event's role.
    pub fn role(&self) -> EventRole {
        self.0.event_type().role()
    }

    /// Whether this is the last event of a run's stream: a stop event, or the event published
    /// when a run fails, times out or is cancelled.
    pub fn is_terminal(&self) -> bool {
        matches!(self.role(), EventRole::Stop | EventRole::Terminal)
    }

    /// Whether the event is of type `E`.
    pub fn is<E: Event>(&self) -> bool {
        self.0.as_any().is::<E>()
    }

    /// A reference to the event as `E`, if it is one.
    pub fn downcast_ref<E: Event>(&self) -> Option<&E> {
        self.0.as_any().downcast_ref::<E>()
    }

    /// The event as an owned `E`. Moves it out when this is the only handle, clones it otherwise;
    /// hands the event back unchanged when it is not an `E`.
    pub fn downcast<E: Event>(self) -> Result<E, AnyEvent> {
        if !self.is::<E>() {
            return Err(self);
        }
        let any = self.0.into_any();
        let typed = any
            .downcast::<E>()
            .unwrap_or_else(|_| unreachable!("the type was checked just above"));
        Ok(Arc::try_unwrap(typed).unwrap_or_else(|shared| (*shared).clone()))
    }

    /// The event's JSON value (its fields, without the name).
    pub fn to_json(&self) -> Result<Value, serde_json::Error> {
        self.0.to_json()
    }

    /// The event as its name and fields: the form the store keeps and snapshots hold.
    pub fn to_event_json(&self) -> Result<EventJson, serde_json::Error> {
        Ok(EventJson {
            name: self.name().to_owned(),
            value: self.to_json()?,
        })
    }

    pub(crate) fn type_id(&self) -> TypeId {
        self.0.as_any().type_id()
    }
}

/// An event restored from JSON whose type this process does not know: it keeps its name and
/// fields, can be streamed and serialized, but not downcast or routed.
struct OpaqueEvent {
    name: String,
    value: Value,
}

impl OpaqueEvent {
    fn event_type() -> EventType {
        EventType {
            name: "OpaqueEvent",
            role: EventRole::Plain,
            type_id: TypeId::of::<OpaqueEvent>(),
            rust_name: "eventflow::OpaqueEvent",
            decode: |value| {
                Ok(AnyEvent(Arc::new(OpaqueEvent {
                    name: "OpaqueEvent".to_owned(),
                    value,
                })))
            },
            schema: || None,
        }
    }
}

impl DynEvent for OpaqueEvent {
    fn name(&self) -> &str {
        &self.name
    }

    fn event_type(&self) -> EventType {
        OpaqueEvent::event_type()
    }

    fn to_json(&self) -> Result<Value, serde_json::Error> {
        Ok(self.value.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl AnyEvent {
    /// An event of a type this process does not know, as JSON under its name.
    pub(crate) fn opaque(json: EventJson) -> Self {
        AnyEvent(Arc::new(OpaqueEvent {
            name: json.name,
            value: json.value,
        }))
    }
}

impl<E: Event> From<E> for AnyEvent {
    fn from(event: E) -> Self {
        AnyEvent::new(event)
    }
}

impl fmt::Debug for AnyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_json() {
            Ok(value) => write!(f, "{}({})", self.name(), value),
            Err(_) => write!(f, "{}(<unserializable>)", self.name()),
        }
    }
}

/// The JSON value of a field given to a builder (`with`, `matching`).
///
/// # Panics
///
/// When `value` cannot be represented as JSON (a map with non-string keys, a failing
/// `Serialize`): a programming error at the call site, reported there rather than stored as null.
pub(crate) fn field_value(key: &str, value: impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_else(|error| {
        panic!("the value for field `{key}` does not serialize to JSON: {error}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {
        n: u32,
    }

    #[test]
    fn downcast_moves_unique_and_clones_shared() {
        let event = AnyEvent::new(Ping { n: 1 });
        let other = event.clone();
        assert_eq!(event.downcast::<Ping>().unwrap(), Ping { n: 1 });
        assert_eq!(other.downcast::<Ping>().unwrap(), Ping { n: 1 });
    }

    #[test]
    fn downcast_to_the_wrong_type_hands_the_event_back() {
        let event = AnyEvent::new(Ping { n: 7 });
        let back = event.downcast::<StopEvent>().unwrap_err();
        assert_eq!(back.downcast_ref::<Ping>(), Some(&Ping { n: 7 }));
    }

    #[test]
    fn an_opaque_event_keeps_its_name_and_fields() {
        let event = AnyEvent::opaque(EventJson {
            name: "app.Progress".into(),
            value: serde_json::json!({"percent": 50}),
        });
        assert_eq!(event.name(), "app.Progress");
        assert_eq!(event.to_json().unwrap(), serde_json::json!({"percent": 50}));
        assert!(!event.is::<Ping>());
        assert!(!event.is_terminal());
        assert_eq!(format!("{event:?}"), r#"app.Progress({"percent":50})"#);
    }

    #[test]
    fn decode_round_trips_through_json() {
        let event = AnyEvent::new(Ping { n: 3 });
        let json = event.to_event_json().unwrap();
        assert_eq!(json.name, "Ping");
        let back = EventType::of::<Ping>().decode(json.value).unwrap();
        assert_eq!(back.downcast_ref::<Ping>(), Some(&Ping { n: 3 }));
    }
}
