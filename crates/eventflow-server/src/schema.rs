//! JSON Schemas of event types: the one the event type carries ([`EventType::schema`]: the
//! built-in events, and user events deriving `JsonSchema`), one registered on the server, or an
//! honest "unknown".

use std::collections::HashMap;

use eventflow::EventType;
use serde_json::{Value, json};

/// Schemas registered on the server, by event name; they win over the types' own.
#[derive(Clone, Debug, Default)]
pub(crate) struct EventSchemas {
    registered: HashMap<String, Value>,
}

impl EventSchemas {
    /// Registers (or replaces) the schema of the event named `name`.
    pub(crate) fn insert(&mut self, name: &str, mut schema: Value) {
        if let Value::Object(fields) = &mut schema {
            fields
                .entry("title")
                .or_insert_with(|| Value::String(name.to_owned()));
        }
        self.registered.insert(name.to_owned(), schema);
    }

    /// The known schema of an event type, if any.
    pub(crate) fn known(&self, ty: &EventType) -> Option<Value> {
        self.registered
            .get(ty.name())
            .cloned()
            .or_else(|| ty.schema())
            .map(|schema| tag(schema, ty.name()))
    }

    /// The schema of an event type: the known one, or one that claims nothing and says so.
    pub(crate) fn get(&self, ty: &EventType) -> Value {
        self.known(ty).unwrap_or_else(|| unknown(ty.name()))
    }
}

/// Marks a schema with the event type's name.
fn tag(mut schema: Value, name: &str) -> Value {
    if let Value::Object(fields) = &mut schema {
        fields
            .entry("title")
            .or_insert_with(|| Value::String(name.to_owned()));
        fields.insert(
            "x-eventflow-event".to_owned(),
            Value::String(name.to_owned()),
        );
    }
    schema
}

/// The schema of an event type whose shape is unknown: it constrains nothing, and says why.
fn unknown(name: &str) -> Value {
    json!({
        "title": name,
        "description": format!(
            "no JSON Schema is known for the event type `{name}`: derive `JsonSchema` on it \
             (with `#[schemars(crate = \"eventflow::schemars\")]`) or register one with \
             ServerBuilder::event_schema_json"
        ),
        "x-eventflow-schema": "unknown",
        "x-eventflow-event": name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventflow::prelude::*;

    #[derive(Event, Clone, Serialize, Deserialize)]
    struct Opaque {
        text: String,
    }

    #[test]
    fn unknown_event_types_claim_nothing() {
        let mut schemas = EventSchemas::default();
        let opaque = EventType::of::<Opaque>();
        let schema = schemas.get(&opaque);
        assert_eq!(schema["x-eventflow-schema"], "unknown");
        assert!(schema.get("type").is_none());
        assert!(schemas.known(&opaque).is_none());
        // The built-in events carry theirs.
        let stop = schemas.get(&EventType::of::<StopEvent>());
        assert_eq!(stop["required"], json!(["result"]));
        assert_eq!(stop["x-eventflow-event"], "StopEvent");
        // A registered schema wins.
        schemas.insert("Opaque", json!({"type": "object"}));
        let schema = schemas.get(&opaque);
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["title"], "Opaque");
    }
}
