//! Journal entries: the reducer's ticks as JSON, and back.
//!
//! A tick names steps by name and events by their stable name, so a journal reads on its own
//! and decodes in any process running a workflow of the same fingerprint.
//!
//! Stored journals outlive the code that wrote them, so entries carry a format version (see
//! [`JOURNAL_FORMAT`]) and are read with [`Entry::from_json`], which refuses a version it does
//! not know with a [`FormatError`] naming it. The golden files in `tests/fixtures/` (checked by
//! the `golden` module) hold journals written by earlier builds that must keep replaying.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{StateWrites, Wait, epoch_millis, from_epoch_millis};
use crate::event::{AnyEvent, EventJson};
use crate::replay::{FormatError, ReplayError, check_format};
use crate::run::Tick;
use crate::run::reducer::{AttemptTimes, RetryDecision, StepFailure};
use crate::step::StepError;
use crate::workflow::WorkflowSpec;

/// The journal entry format this build writes and the newest it reads.
///
/// Version 1 is the format from before entries carried a version, so an entry without a `"v"`
/// field is version 1, and version-1 entries are written without it: every journal stored
/// before the version existed reads unchanged, and the journal (one entry per tick) grows by no
/// byte. A later format writes `"v": 2` (and so on) in every entry and adds a golden fixture.
pub(crate) const JOURNAL_FORMAT: u32 = 1;

/// The field of a journal entry holding its format version.
const VERSION_FIELD: &str = "v";

/// One journaled tick.
///
/// Read stored entries with [`Entry::from_json`] (which checks the format version), not with
/// serde directly: the derived `Deserialize` ignores the version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "tick", rename_all = "snake_case")]
pub(crate) enum Entry {
    Start {
        event: EventJson,
    },
    /// A finished run starts again under its id, with the context state it left: the reducer
    /// starts afresh with this start event.
    Restart {
        event: EventJson,
    },
    Emit {
        event: EventJson,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<u64>,
    },
    StepDone {
        invocation: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        events: Option<Vec<EventJson>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorJson>,
        /// Whether the step is retried (before `retry_after_ms` existed: whether its policy's
        /// predicates accepted the error, the policy being asked again on replay).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        retryable: bool,
        #[serde(default, skip_serializing_if = "StateWrites::is_empty")]
        writes: StateWrites,
        /// The delay before the retry, as the step's policy decided it when the step failed.
        /// Added to format 1 later: an entry without it is replayed by asking the policy.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// When the first attempt at the input began, in milliseconds since the Unix epoch
        /// (failures only; added to format 1 later, like `failed_at_ms`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_attempt_at_ms: Option<u64>,
        /// When the attempt failed, in milliseconds since the Unix epoch (failures only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failed_at_ms: Option<u64>,
    },
    Wait {
        waiter: u64,
        invocation: u64,
        event: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        requirements: Vec<(String, Value)>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prompt: Option<EventJson>,
    },
    WaitEnded {
        waiter: u64,
    },
    RetryDue {
        timer: u64,
    },
    TimedOut {
        timeout_ms: u64,
    },
    Cancel,
}

/// A step's error as recorded: its kind and message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum ErrorJson {
    Failed { message: String },
    Panicked { message: String },
    TimedOut { timeout_ms: u64 },
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Entry {
    /// Reads a stored entry, refusing a format version this build does not know.
    pub(crate) fn from_json(json: Value) -> Result<Entry, FormatError> {
        const WHAT: &str = "journal entry";
        check_format(WHAT, &json, VERSION_FIELD, 1, 1, JOURNAL_FORMAT)?;
        serde_json::from_value(json).map_err(|source| FormatError::Invalid { what: WHAT, source })
    }

    /// The entry of `tick`; `writes` are the state writes of a `StepDone`'s invocation.
    pub(crate) fn encode(
        spec: &WorkflowSpec,
        tick: &Tick,
        writes: StateWrites,
    ) -> Result<Entry, serde_json::Error> {
        Ok(match tick {
            Tick::Start(event) => Entry::Start {
                event: event.to_event_json()?,
            },
            Tick::Emit {
                event,
                target,
                from,
            } => Entry::Emit {
                event: event.to_event_json()?,
                target: target.map(|step| spec.steps[step].name.clone()),
                from: *from,
            },
            Tick::StepDone {
                invocation,
                outcome,
                ..
            } => {
                let (events, failure) = match outcome {
                    Ok(events) => (
                        Some(
                            events
                                .iter()
                                .map(AnyEvent::to_event_json)
                                .collect::<Result<_, _>>()?,
                        ),
                        None,
                    ),
                    Err(failure) => (None, Some(&**failure)),
                };
                let error = failure.map(|f| ErrorJson::of(&f.error));
                let (retryable, retry_after_ms) = match failure.map(|f| f.retry) {
                    None | Some(RetryDecision::Stop) => (false, None),
                    Some(RetryDecision::After(delay)) => (true, Some(millis(delay))),
                    Some(RetryDecision::Undecided { retryable }) => (retryable, None),
                };
                let times = failure.and_then(|f| f.times);
                Entry::StepDone {
                    invocation: *invocation,
                    events,
                    error,
                    retryable,
                    writes,
                    retry_after_ms,
                    first_attempt_at_ms: times.map(|t| epoch_millis(t.first_attempt_at)),
                    failed_at_ms: times.map(|t| epoch_millis(t.failed_at)),
                }
            }
            Tick::Wait { wait, prompt } => Entry::Wait {
                waiter: wait.waiter,
                invocation: wait.invocation,
                event: wait.event_type.name().to_owned(),
                requirements: wait.requirements.clone(),
                prompt: prompt.as_ref().map(AnyEvent::to_event_json).transpose()?,
            },
            Tick::WaitEnded { waiter } => Entry::WaitEnded { waiter: *waiter },
            Tick::RetryDue { timer } => Entry::RetryDue { timer: *timer },
            Tick::TimedOut { timeout } => Entry::TimedOut {
                timeout_ms: millis(*timeout),
            },
            Tick::Cancel => Entry::Cancel,
        })
    }

    /// The tick of this entry, and the state writes to apply with it.
    pub(crate) fn decode(self, spec: &WorkflowSpec) -> Result<(Tick, StateWrites), ReplayError> {
        let event = |json: EventJson| spec.decode_event(json);
        let tick = match self {
            Entry::Start { event: json } | Entry::Restart { event: json } => {
                Tick::Start(event(json)?)
            }
            Entry::Emit {
                event: json,
                target,
                from,
            } => Tick::Emit {
                event: event(json)?,
                target: target.map(|name| spec.step_named(&name)).transpose()?,
                from,
            },
            Entry::StepDone {
                invocation,
                events,
                error,
                retryable,
                writes,
                retry_after_ms,
                first_attempt_at_ms,
                failed_at_ms,
            } => {
                let retry = match (retryable, retry_after_ms) {
                    (true, Some(ms)) => RetryDecision::After(Duration::from_millis(ms)),
                    (true, None) => RetryDecision::Undecided { retryable },
                    (false, _) => RetryDecision::Stop,
                };
                let times = match (first_attempt_at_ms, failed_at_ms) {
                    (Some(first), Some(failed)) => Some(AttemptTimes::new(
                        from_epoch_millis(first),
                        from_epoch_millis(failed),
                    )),
                    _ => None,
                };
                let outcome = match (events, error) {
                    (_, Some(error)) => Err(Box::new(StepFailure {
                        error: error.into_step_error(),
                        retry,
                        times,
                    })),
                    (events, None) => Ok(events
                        .unwrap_or_default()
                        .into_iter()
                        .map(event)
                        .collect::<Result<_, _>>()?),
                };
                return Ok((
                    Tick::StepDone {
                        invocation,
                        outcome,
                        elapsed: Duration::ZERO,
                    },
                    writes,
                ));
            }
            Entry::Wait {
                waiter,
                invocation,
                event: name,
                requirements,
                prompt,
            } => Tick::Wait {
                wait: Wait {
                    waiter,
                    invocation,
                    event_type: spec.event_named(&name)?,
                    requirements,
                },
                prompt: prompt.map(event).transpose()?,
            },
            Entry::WaitEnded { waiter } => Tick::WaitEnded { waiter },
            Entry::RetryDue { timer } => Tick::RetryDue { timer },
            Entry::TimedOut { timeout_ms } => Tick::TimedOut {
                timeout: Duration::from_millis(timeout_ms),
            },
            Entry::Cancel => Tick::Cancel,
        };
        Ok((tick, StateWrites::default()))
    }
}

impl ErrorJson {
    fn of(error: &StepError) -> Self {
        match error {
            StepError::Failed(error) => ErrorJson::Failed {
                message: error.to_string(),
            },
            StepError::Panicked(message) => ErrorJson::Panicked {
                message: message.clone(),
            },
            StepError::TimedOut(timeout) => ErrorJson::TimedOut {
                timeout_ms: millis(*timeout),
            },
        }
    }

    fn into_step_error(self) -> StepError {
        match self {
            ErrorJson::Failed { message } => StepError::Failed(message.into()),
            ErrorJson::Panicked { message } => StepError::Panicked(message),
            ErrorJson::TimedOut { timeout_ms } => {
                StepError::TimedOut(Duration::from_millis(timeout_ms))
            }
        }
    }
}

/// Golden journals and durable snapshots from earlier builds that must keep replaying.
#[cfg(test)]
mod golden;
/// A simulated run journaled by the durable journal writer, shared by the tests below and above.
#[cfg(test)]
mod harness;
/// The property test: journaled ticks replay to the state of ticks applied directly.
#[cfg(test)]
mod roundtrip;
