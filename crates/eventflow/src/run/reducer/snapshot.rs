//! The reducer's state as data, and back: what a snapshot holds of a run's scheduling, and how a
//! restored state is prepared to run again in a new process.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Command, InFlight, InvocationId, Pending, RunState};
use crate::context::{PastAttempts, Wait, epoch_millis, from_epoch_millis};
use crate::event::{AnyEvent, EventJson};
use crate::graph::{NodeId, RunPath};
use crate::replay::ReplayError;
use crate::workflow::WorkflowSpec;

impl RunState {
    /// The run's scheduling state as data, exactly: in-flight invocations, waiters and pending
    /// retries keep their ids, so ticks journaled after the snapshot replay onto it.
    pub(crate) fn snapshot(
        &self,
        spec: &WorkflowSpec,
    ) -> Result<ReducerSnapshot, serde_json::Error> {
        let name = |step: usize| spec.steps[step].name.clone();
        let mut in_flight: Vec<(&InvocationId, &InFlight)> = self.in_flight.iter().collect();
        in_flight.sort_by_key(|(id, _)| **id);
        let encode_all = |events: &mut dyn Iterator<Item = &AnyEvent>| {
            events
                .map(AnyEvent::to_event_json)
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(ReducerSnapshot {
            queued: self
                .queues
                .iter()
                .enumerate()
                .flat_map(|(step, queue)| queue.iter().map(move |p| (step, p)))
                .map(|(step, p)| {
                    Ok(EntrySnapshot {
                        step: name(step),
                        event: p.event.to_event_json()?,
                        attempt: p.attempt,
                        key: p.key,
                        id: 0,
                        received: Vec::new(),
                        past: PastSnapshot::of(&p.past),
                        recoveries: p.recoveries,
                    })
                })
                .collect::<Result<_, serde_json::Error>>()?,
            in_flight: in_flight
                .into_iter()
                .map(|(id, f)| {
                    Ok(EntrySnapshot {
                        step: name(f.step),
                        event: f.event.to_event_json()?,
                        attempt: f.attempt,
                        key: f.key,
                        id: *id,
                        received: encode_all(&mut f.received.iter())?,
                        past: PastSnapshot::of(&f.past),
                        recoveries: f.recoveries,
                    })
                })
                .collect::<Result<_, serde_json::Error>>()?,
            retrying: self
                .retrying
                .iter()
                .map(|(timer, (step, p))| {
                    Ok(EntrySnapshot {
                        step: name(*step),
                        event: p.event.to_event_json()?,
                        attempt: p.attempt,
                        key: p.key,
                        id: *timer,
                        received: Vec::new(),
                        past: PastSnapshot::of(&p.past),
                        recoveries: p.recoveries,
                    })
                })
                .collect::<Result<_, serde_json::Error>>()?,
            waiters: self
                .waiters
                .iter()
                .map(|w| WaiterSnapshot {
                    id: w.waiter,
                    invocation: w.invocation,
                    event: w.event_type.name().to_owned(),
                    requirements: w.requirements.clone(),
                })
                .collect(),
            unclaimed: encode_all(&mut self.unclaimed.iter())?,
            path: self.path(spec),
            next_id: self.next_id,
            rng_seed: self.rng.get_seed(),
        })
    }

    /// Rebuilds the state of a snapshot exactly; [`RunState::recover`] then prepares it to run
    /// in a new process.
    pub(crate) fn restore(
        spec: &WorkflowSpec,
        snapshot: ReducerSnapshot,
    ) -> Result<Self, ReplayError> {
        let mut state = RunState::new(spec, snapshot.rng_seed);
        state.next_id = snapshot.next_id;
        let decode = |json: EventJson| spec.decode_event(json);
        let step_of = |name: &str| spec.step_named(name);
        for entry in snapshot.queued {
            let step = step_of(&entry.step)?;
            state.queues[step].push_back(Pending {
                event: decode(entry.event)?,
                attempt: entry.attempt,
                key: entry.key,
                past: entry.past.map(PastSnapshot::restore),
                recoveries: entry.recoveries,
            });
        }
        for entry in snapshot.in_flight {
            let step = step_of(&entry.step)?;
            state.running[step] += 1;
            let received = entry
                .received
                .into_iter()
                .map(decode)
                .collect::<Result<_, _>>()?;
            state.in_flight.insert(
                entry.id,
                InFlight {
                    step,
                    event: decode(entry.event)?,
                    attempt: entry.attempt,
                    key: entry.key,
                    past: entry.past.map(PastSnapshot::restore),
                    recoveries: entry.recoveries,
                    received,
                },
            );
        }
        for entry in snapshot.retrying {
            let step = step_of(&entry.step)?;
            let pending = Pending {
                event: decode(entry.event)?,
                attempt: entry.attempt,
                key: entry.key,
                past: entry.past.map(PastSnapshot::restore),
                recoveries: entry.recoveries,
            };
            state.retrying.insert(entry.id, (step, pending));
        }
        for waiter in snapshot.waiters {
            let event_type = spec.event_named(&waiter.event)?;
            state.waiters.push(Wait {
                waiter: waiter.id,
                invocation: waiter.invocation,
                event_type,
                requirements: waiter.requirements,
            });
        }
        for event in snapshot.unclaimed {
            state.unclaimed.push_back(decode(event)?);
        }
        for edge in snapshot.path.edges {
            let (step, event, emitted) = match (&edge.from, &edge.to) {
                (NodeId::Step(step), NodeId::Event(event)) => (step, event, true),
                (NodeId::Event(event), NodeId::Step(step)) => (step, event, false),
                _ => continue,
            };
            let (Some(step), Some(event)) = (
                spec.step_index(step),
                spec.event_by_name(event)
                    .and_then(|ty| spec.event_index(ty.type_id())),
            ) else {
                continue;
            };
            let slot = step * state.path.events + event;
            let counts = if emitted {
                &mut state.path.emitted
            } else {
                &mut state.path.delivered
            };
            counts[slot] = edge.count;
        }
        Ok(state)
    }

    /// Prepares a restored state to run in a process where none of its invocations is running:
    /// in-flight invocations and pending retries go back to the front of their queues (they run
    /// again, keeping their attempt number and key), events their waits had received become
    /// unclaimed again so the re-run receives them, and waiters are dropped (the re-run waits
    /// anew). [`RunState::resume`] then starts them.
    pub(crate) fn recover(&mut self) {
        let mut in_flight: Vec<(InvocationId, InFlight)> = self.in_flight.drain().collect();
        in_flight.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
        let retrying = std::mem::take(&mut self.retrying);
        for (_, (step, pending)) in retrying.into_iter().rev() {
            self.queues[step].push_front(pending);
        }
        for (_, f) in in_flight {
            for event in f.received.into_iter().rev() {
                self.unclaimed.push_front(event);
            }
            self.queues[f.step].push_front(Pending {
                event: f.event,
                attempt: f.attempt,
                key: f.key,
                past: f.past,
                recoveries: f.recoveries,
            });
        }
        self.running.iter_mut().for_each(|r| *r = 0);
        self.waiters.clear();
    }

    /// Starts every restored invocation the workers allow.
    pub(crate) fn resume(&mut self, spec: &WorkflowSpec, out: &mut Vec<Command>) {
        for step in 0..spec.steps.len() {
            self.schedule(spec, step, out);
        }
        self.check_stalled(spec, out);
    }
}

/// The reducer's part of a run snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReducerSnapshot {
    queued: Vec<EntrySnapshot>,
    in_flight: Vec<EntrySnapshot>,
    retrying: Vec<EntrySnapshot>,
    waiters: Vec<WaiterSnapshot>,
    unclaimed: Vec<EventJson>,
    path: RunPath,
    next_id: u64,
    rng_seed: u64,
}

/// A queued, in-flight (`id`: the invocation) or retry-pending (`id`: the timer) step input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct EntrySnapshot {
    step: String,
    event: EventJson,
    attempt: u32,
    key: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    id: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    received: Vec<EventJson>,
    /// The attempts before this one; absent on first attempts and in snapshots written before
    /// it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    past: Option<PastSnapshot>,
    /// The error handlers' recoveries along its chain of events; absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    recoveries: u32,
}

/// [`PastAttempts`] as a snapshot holds it: times in milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PastSnapshot {
    first_attempt_at_ms: u64,
    last_error: String,
    last_failed_at_ms: u64,
}

impl PastSnapshot {
    fn of(past: &Option<Arc<PastAttempts>>) -> Option<Self> {
        past.as_deref().map(|past| PastSnapshot {
            first_attempt_at_ms: epoch_millis(past.first_attempt_at),
            last_error: past.last_error.clone(),
            last_failed_at_ms: epoch_millis(past.last_failed_at),
        })
    }

    fn restore(self) -> Arc<PastAttempts> {
        Arc::new(PastAttempts {
            first_attempt_at: from_epoch_millis(self.first_attempt_at_ms),
            last_error: self.last_error,
            last_failed_at: from_epoch_millis(self.last_failed_at_ms),
        })
    }
}

fn is_zero<N: Default + PartialEq>(n: &N) -> bool {
    *n == N::default()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct WaiterSnapshot {
    id: u64,
    invocation: InvocationId,
    event: String,
    requirements: Vec<(String, Value)>,
}
