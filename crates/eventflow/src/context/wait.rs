//! What a step waits for: the one description of a wait, from the step's call
//! (`Context::wait_for_event`) through the run's mailbox and ticks to the reducer's books.
//! Journal entries and snapshots write it in their own JSON forms, which golden fixtures pin.

use serde_json::Value;

use crate::event::{AnyEvent, EventType};

/// A step invocation waiting for an event of one type whose fields match.
#[derive(Clone)]
pub(crate) struct Wait {
    /// The wait's id in its run.
    pub(crate) waiter: u64,
    /// The step invocation that waits.
    pub(crate) invocation: u64,
    /// The event type it waits for.
    pub(crate) event_type: EventType,
    /// Fields the event must have, with these values.
    pub(crate) requirements: Vec<(String, Value)>,
}

impl Wait {
    /// Whether `event` ends this wait: of its type, with the required fields.
    pub(crate) fn accepts(&self, event: &AnyEvent) -> bool {
        if event.type_id() != self.event_type.type_id() {
            return false;
        }
        if self.requirements.is_empty() {
            return true;
        }
        let Ok(fields) = event.to_json() else {
            return false;
        };
        self.requirements
            .iter()
            .all(|(key, value)| fields.get(key) == Some(value))
    }
}
