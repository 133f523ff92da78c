//! The run's shared state: key/value pairs, one typed state struct, and collect buffers.
//!
//! Each part has its own lock, and only the typed state runs user code while holding it (the
//! closure given to `edit_state`). A nested edit on the same thread is refused with
//! [`StateError::Reentrant`] instead of deadlocking.

use std::any::Any;
use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::path::{self, NotAContainer};
use crate::event::{AnyEvent, EventJson, EventType};
use crate::replay::ReplayError;

/// A context state operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// No value is stored under the key.
    #[error("no value is stored under key `{key}`")]
    Missing {
        /// The key.
        key: String,
    },
    /// The stored value does not deserialize into the type asked for.
    #[error("the value under key `{key}` is not a valid `{expected}`: {source}")]
    WrongType {
        /// The key.
        key: String,
        /// The type asked for.
        expected: &'static str,
        /// Why deserialization failed.
        #[source]
        source: serde_json::Error,
    },
    /// The value could not be serialized to JSON.
    #[error("the value for key `{key}` cannot be stored: {source}")]
    Unserializable {
        /// The key.
        key: String,
        /// Why serialization failed.
        #[source]
        source: serde_json::Error,
    },
    /// The typed state is of another type than the one asked for.
    #[error("the typed state is a `{found}`, not a `{expected}`")]
    StateTypeMismatch {
        /// The type asked for.
        expected: &'static str,
        /// The type the run's state holds.
        found: &'static str,
    },
    /// The typed state restored from a snapshot does not deserialize into the type asked for.
    #[error("the typed state is not a valid `{expected}`: {source}")]
    InvalidState {
        /// The type asked for.
        expected: &'static str,
        /// Why deserialization failed.
        #[source]
        source: serde_json::Error,
    },
    /// A write along a path met a value that is not an object (nor an array with that index).
    #[error("cannot set `{key}`: the value at `{at}` is not an object")]
    NotAContainer {
        /// The path written.
        key: String,
        /// The prefix of the path that holds another value.
        at: String,
    },
    /// The typed state was accessed from inside an `edit_state` closure of the same run.
    #[error(
        "the typed state is already being edited on this thread (edit_state called inside edit_state)"
    )]
    Reentrant,
}

trait ErasedState: Any + Send {
    fn to_json(&self) -> Result<Value, serde_json::Error>;
    fn type_name(&self) -> &'static str;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Serialize + Send + 'static> ErasedState for T {
    fn to_json(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

enum TypedState {
    /// Restored from a snapshot, not yet read with a type.
    Json(Value),
    Live(Box<dyn ErasedState>),
}

thread_local! {
    /// The typed states being edited on this thread, by address.
    static EDITING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

struct EditingGuard(usize);

impl EditingGuard {
    fn enter(address: usize) -> Result<Self, StateError> {
        EDITING.with_borrow_mut(|editing| {
            if editing.contains(&address) {
                Err(StateError::Reentrant)
            } else {
                editing.push(address);
                Ok(EditingGuard(address))
            }
        })
    }
}

impl Drop for EditingGuard {
    fn drop(&mut self) {
        EDITING.with_borrow_mut(|editing| editing.retain(|a| *a != self.0));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a step fails that step; the state stays usable for the rest of the run.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The state one run's steps share.
#[derive(Default)]
pub(crate) struct ContextState {
    kv: Mutex<HashMap<String, Value>>,
    typed: Mutex<Option<TypedState>>,
    collect: Mutex<HashMap<(usize, u64), CollectBuffer>>,
    /// For durable runs: what each running invocation wrote, recorded with its completion.
    touched: Option<Mutex<HashMap<u64, Touched>>>,
}

/// The parts of the state one invocation wrote.
#[derive(Default)]
struct Touched {
    keys: BTreeSet<String>,
    typed: bool,
    /// The events it added to collect buffers, in order.
    collected: Vec<Collected>,
}

/// An event added to the collect buffer of `step` expecting `expected`.
struct Collected {
    step: usize,
    expected: Vec<(EventType, usize)>,
    event: AnyEvent,
}

/// A part of the state an invocation writes (collect buffers record themselves).
pub(crate) enum Touch<'a> {
    Key(&'a str),
    Typed,
}

/// What one step invocation wrote: the values of the keys and typed state at its completion,
/// and the events it added to collect buffers. Replayed in journal order, these rebuild the
/// state that completed steps left.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StateWrites {
    /// Keys set (`Some`) or removed (`None`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    kv: Vec<(String, Option<Value>)>,
    /// The typed state as the invocation left it: absent when untouched, `null` when cleared
    /// (`Context::clear`), a value otherwise.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    typed: Option<Option<Value>>,
    /// The events added to collect buffers, each with its buffer (a buffer's expected events
    /// name it): replaying them is O(events), where recording whole buffers was quadratic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    collected: Vec<CollectedEvent>,
}

/// Reads a field that is present, `null` included, as `Some` (serde reads a present `null`
/// into `Option<Option<_>>` as `None`, which would make a cleared typed state untouched).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<Value>>, D::Error> {
    Option::<Value>::deserialize(deserializer).map(Some)
}

/// One event added to a collect buffer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CollectedEvent {
    step: String,
    expected: Vec<(String, usize)>,
    event: EventJson,
}

impl StateWrites {
    pub(crate) fn is_empty(&self) -> bool {
        self.kv.is_empty() && self.typed.is_none() && self.collected.is_empty()
    }
}

impl ContextState {
    /// A store that records what each invocation writes (for durable runs).
    pub(crate) fn tracking_writes(mut self) -> Self {
        self.touched = Some(Mutex::new(HashMap::new()));
        self
    }

    /// Notes that `invocation` wrote `part`; free unless writes are tracked.
    pub(crate) fn touch(&self, invocation: u64, part: Touch<'_>) {
        let Some(touched) = &self.touched else {
            return;
        };
        let mut touched = lock(touched);
        let entry = touched.entry(invocation).or_default();
        match part {
            // A write below a key journals the whole top-level value.
            Touch::Key(key) => {
                entry.keys.insert(path::top_key(key).to_owned());
            }
            Touch::Typed => entry.typed = true,
        }
    }

    /// The values `invocation` wrote, as they are now; forgets the invocation.
    pub(crate) fn take_writes(
        &self,
        invocation: u64,
        step_names: &[String],
    ) -> Result<StateWrites, serde_json::Error> {
        let Some(touched) = self
            .touched
            .as_ref()
            .and_then(|t| lock(t).remove(&invocation))
        else {
            return Ok(StateWrites::default());
        };
        let kv = {
            let kv = lock(&self.kv);
            touched
                .keys
                .into_iter()
                .map(|key| {
                    let value = kv.get(&key).cloned();
                    (key, value)
                })
                .collect()
        };
        let typed = if touched.typed {
            // `Some(None)`: cleared since (`Context::clear`).
            Some(self.typed_json()?)
        } else {
            None
        };
        let collected = touched
            .collected
            .iter()
            .map(
                |Collected {
                     step,
                     expected,
                     event,
                 }| {
                    Ok(CollectedEvent {
                        step: step_names[*step].clone(),
                        expected: expected
                            .iter()
                            .map(|(ty, n)| (ty.name().to_owned(), *n))
                            .collect(),
                        event: event.to_event_json()?,
                    })
                },
            )
            .collect::<Result<_, serde_json::Error>>()?;
        Ok(StateWrites {
            kv,
            typed,
            collected,
        })
    }

    /// Applies what a completed invocation wrote (replaying a journal).
    pub(crate) fn apply_writes(
        &self,
        writes: StateWrites,
        step_index: impl Fn(&str) -> Option<usize>,
        event_type: impl Fn(&str) -> Option<EventType>,
    ) -> Result<(), ReplayError> {
        {
            let mut kv = lock(&self.kv);
            for (key, value) in writes.kv {
                match value {
                    Some(value) => kv.insert(key, value),
                    None => kv.remove(&key),
                };
            }
        }
        match writes.typed {
            None => {}
            Some(None) => *lock(&self.typed) = None,
            Some(Some(typed)) => *lock(&self.typed) = Some(TypedState::Json(typed)),
        }
        for collected in writes.collected {
            self.push_collected(
                &collected.step,
                &collected.expected,
                [collected.event],
                &step_index,
                &event_type,
            )?;
        }
        Ok(())
    }

    /// A copy of the state, for another run to start from: the pairs, the typed state (as
    /// JSON, read back with a type on first use) and the collect buffers, writes untracked.
    pub(crate) fn copy(&self) -> Result<ContextState, serde_json::Error> {
        Ok(ContextState {
            kv: Mutex::new(lock(&self.kv).clone()),
            typed: Mutex::new(self.typed_json()?.map(TypedState::Json)),
            collect: Mutex::new(lock(&self.collect).clone()),
            touched: None,
        })
    }

    fn typed_json(&self) -> Result<Option<Value>, serde_json::Error> {
        Ok(match &*lock(&self.typed) {
            None => None,
            Some(TypedState::Json(value)) => Some(value.clone()),
            Some(TypedState::Live(state)) => Some(state.to_json()?),
        })
    }

    pub(crate) fn set<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StateError> {
        let value = serde_json::to_value(value).map_err(|source| StateError::Unserializable {
            key: key.to_owned(),
            source,
        })?;
        path::insert(&mut lock(&self.kv), key, value).map_err(|NotAContainer { at }| {
            StateError::NotAContainer {
                key: key.to_owned(),
                at,
            }
        })
    }

    pub(crate) fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, StateError> {
        let kv = lock(&self.kv);
        let value = path::lookup(&kv, key).ok_or_else(|| StateError::Missing {
            key: key.to_owned(),
        })?;
        T::deserialize(value).map_err(|source| StateError::WrongType {
            key: key.to_owned(),
            expected: std::any::type_name::<T>(),
            source,
        })
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        path::lookup(&lock(&self.kv), key).is_some()
    }

    pub(crate) fn remove(&self, key: &str) -> Option<Value> {
        path::remove(&mut lock(&self.kv), key)
    }

    /// Empties the key/value state and resets the typed state (to its `Default` on next use);
    /// returns the keys there were, for the journal.
    pub(crate) fn clear(&self) -> Result<Vec<String>, StateError> {
        // The typed state's lock is held while an `edit_state` closure runs.
        let _editing = EditingGuard::enter(std::ptr::from_ref(self) as usize)?;
        *lock(&self.typed) = None;
        Ok(std::mem::take(&mut *lock(&self.kv)).into_keys().collect())
    }

    pub(crate) fn edit<S, R>(&self, f: impl FnOnce(&mut S) -> R) -> Result<R, StateError>
    where
        S: Serialize + DeserializeOwned + Default + Send + 'static,
    {
        let _editing = EditingGuard::enter(std::ptr::from_ref(self) as usize)?;
        let mut typed = lock(&self.typed);
        let state = match typed.take() {
            None => Box::new(S::default()) as Box<dyn ErasedState>,
            Some(TypedState::Json(value)) => match S::deserialize(&value) {
                Ok(state) => Box::new(state),
                Err(source) => {
                    *typed = Some(TypedState::Json(value));
                    return Err(StateError::InvalidState {
                        expected: std::any::type_name::<S>(),
                        source,
                    });
                }
            },
            Some(TypedState::Live(state)) => state,
        };
        let state = typed.insert(TypedState::Live(state));
        let TypedState::Live(state) = state else {
            unreachable!("just inserted")
        };
        let found = state.type_name();
        let state =
            state
                .as_any_mut()
                .downcast_mut::<S>()
                .ok_or(StateError::StateTypeMismatch {
                    expected: std::any::type_name::<S>(),
                    found,
                })?;
        Ok(f(state))
    }

    /// Adds `event` to the buffer for `expected` and, when the buffer holds every expected
    /// event, drains them in expected order.
    /// `invocation` is the step invocation collecting (whose writes are tracked), or `None` when
    /// replaying.
    pub(crate) fn collect(
        &self,
        invocation: Option<u64>,
        step: usize,
        event: AnyEvent,
        expected: &[(EventType, usize)],
    ) -> Option<Vec<AnyEvent>> {
        // Nothing to wait for: the set is complete at once, and the event is not kept (it
        // would pile up, and grow every snapshot, for nothing).
        if expected.iter().all(|(_, count)| *count == 0) {
            return Some(Vec::new());
        }
        if let (Some(touched), Some(invocation)) = (&self.touched, invocation) {
            lock(touched)
                .entry(invocation)
                .or_default()
                .collected
                .push(Collected {
                    step,
                    expected: expected.to_vec(),
                    event: event.clone(),
                });
        }
        let mut hasher = DefaultHasher::new();
        for (ty, count) in expected {
            ty.type_id().hash(&mut hasher);
            count.hash(&mut hasher);
        }
        let mut buffers = lock(&self.collect);
        let buffer = buffers
            .entry((step, hasher.finish()))
            .or_insert_with(|| CollectBuffer::new(expected));
        if !buffer.push(event) {
            return None;
        }
        buffer.take_complete()
    }

    pub(crate) fn snapshot(
        &self,
        step_names: &[String],
    ) -> Result<StateSnapshot, serde_json::Error> {
        let kv: Map<String, Value> = lock(&self.kv)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let typed = self.typed_json()?;
        let collect = self.collect_snapshot(step_names)?;
        Ok(StateSnapshot { kv, typed, collect })
    }

    fn collect_snapshot(
        &self,
        step_names: &[String],
    ) -> Result<Vec<CollectSnapshot>, serde_json::Error> {
        let mut collect = Vec::new();
        for ((step, _), buffer) in lock(&self.collect).iter() {
            if buffer.buffered.iter().all(|(_, events)| events.is_empty()) {
                continue;
            }
            collect.push(CollectSnapshot {
                step: step_names[*step].clone(),
                expected: buffer
                    .expected
                    .iter()
                    .map(|(ty, n)| (ty.name().to_owned(), *n))
                    .collect(),
                events: buffer
                    .buffered
                    .iter()
                    .flat_map(|(_, events)| events.iter().map(AnyEvent::to_event_json))
                    .collect::<Result<_, _>>()?,
            });
        }
        Ok(collect)
    }

    pub(crate) fn restore(
        snapshot: StateSnapshot,
        step_index: impl Fn(&str) -> Option<usize>,
        event_type: impl Fn(&str) -> Option<EventType>,
    ) -> Result<Self, ReplayError> {
        let store = ContextState::default();
        *lock(&store.kv) = snapshot.kv.into_iter().collect();
        *lock(&store.typed) = snapshot.typed.map(TypedState::Json);
        store.restore_collect(snapshot.collect, step_index, event_type)?;
        Ok(store)
    }

    /// Replaces every collect buffer with `buffers`.
    fn restore_collect(
        &self,
        buffers: Vec<CollectSnapshot>,
        step_index: impl Fn(&str) -> Option<usize>,
        event_type: impl Fn(&str) -> Option<EventType>,
    ) -> Result<(), ReplayError> {
        lock(&self.collect).clear();
        for buffer in buffers {
            self.push_collected(
                &buffer.step,
                &buffer.expected,
                buffer.events,
                &step_index,
                &event_type,
            )?;
        }
        Ok(())
    }

    /// Adds recorded events to the collect buffer of the step named `step` expecting
    /// `expected` (by name), as the step did when it ran.
    fn push_collected(
        &self,
        step: &str,
        expected: &[(String, usize)],
        events: impl IntoIterator<Item = EventJson>,
        step_index: impl Fn(&str) -> Option<usize>,
        event_type: impl Fn(&str) -> Option<EventType>,
    ) -> Result<(), ReplayError> {
        let step_at = step_index(step).ok_or_else(|| ReplayError::UnknownStep(step.to_owned()))?;
        let known =
            |name: &str| event_type(name).ok_or_else(|| ReplayError::UnknownEvent(name.to_owned()));
        let expected = expected
            .iter()
            .map(|(name, n)| Ok((known(name)?, *n)))
            .collect::<Result<Vec<_>, ReplayError>>()?;
        for event in events {
            let ty = known(&event.name)?;
            let event = ty
                .decode(event.value)
                .map_err(|source| ReplayError::Decode {
                    name: event.name,
                    source,
                })?;
            self.collect(None, step_at, event, &expected);
        }
        Ok(())
    }

    /// A description of the collect buffers still waiting, for the message of a stalled run.
    pub(crate) fn describe_waiting_collects(&self, step_names: &[String]) -> Vec<String> {
        lock(&self.collect)
            .iter()
            .filter_map(|((step, _), buffer)| {
                let have: usize = buffer.buffered.iter().map(|(_, events)| events.len()).sum();
                if have == 0 {
                    return None;
                }
                let want: usize = buffer.expected.iter().map(|(_, n)| n).sum();
                let types: Vec<&str> = buffer.expected.iter().map(|(ty, _)| ty.name()).collect();
                Some(format!(
                    "step `{}` collected {have} of {want} events ({})",
                    step_names[*step],
                    types.join(", ")
                ))
            })
            .collect()
    }
}

/// Events buffered by `collect_events` until the expected set is complete.
#[derive(Clone)]
struct CollectBuffer {
    /// The expected events in order, run-length encoded: `[A, A, B]` is `[(A, 2), (B, 1)]`.
    expected: Vec<(EventType, usize)>,
    /// Arrived events by type, with how many of that type complete the set.
    buffered: Vec<(EventType, VecDeque<AnyEvent>)>,
    needed: Vec<usize>,
}

impl CollectBuffer {
    fn new(expected: &[(EventType, usize)]) -> Self {
        let mut buffered: Vec<(EventType, VecDeque<AnyEvent>)> = Vec::new();
        let mut needed: Vec<usize> = Vec::new();
        for (ty, count) in expected {
            match buffered.iter().position(|(known, _)| known == ty) {
                Some(index) => needed[index] += count,
                None => {
                    buffered.push((*ty, VecDeque::new()));
                    needed.push(*count);
                }
            }
        }
        CollectBuffer {
            expected: expected.to_vec(),
            buffered,
            needed,
        }
    }

    /// Buffers the event; false when it is of a type this buffer does not expect.
    fn push(&mut self, event: AnyEvent) -> bool {
        let type_id = event.type_id();
        match self
            .buffered
            .iter_mut()
            .find(|(ty, _)| ty.type_id() == type_id)
        {
            Some((_, events)) => {
                events.push_back(event);
                true
            }
            None => false,
        }
    }

    fn take_complete(&mut self) -> Option<Vec<AnyEvent>> {
        let complete = self
            .buffered
            .iter()
            .zip(&self.needed)
            .all(|((_, events), needed)| events.len() >= *needed);
        if !complete {
            return None;
        }
        let mut out = Vec::with_capacity(self.needed.iter().sum());
        for (ty, count) in &self.expected {
            let (_, events) = self
                .buffered
                .iter_mut()
                .find(|(known, _)| known == ty)
                .expect("every expected type has a buffer");
            out.extend(events.drain(..*count));
        }
        Some(out)
    }
}

/// The serialized context state of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StateSnapshot {
    kv: Map<String, Value>,
    typed: Option<Value>,
    collect: Vec<CollectSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CollectSnapshot {
    step: String,
    expected: Vec<(String, usize)>,
    events: Vec<EventJson>,
}
