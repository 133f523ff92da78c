//! What a failed attempt tells the reducer beside its error: the retry decision and the
//! wall-clock times of the attempts, both made in the attempt's task.
//!
//! Why there: the reducer is pure (no clock; randomness only from its seeded generator), and a
//! durable run replays its journal through it. A decision the reducer made would see the error
//! only as the journal keeps it (text), and a policy that looks at the time or the error's type
//! could decide differently on replay. So the task — where the error is whole and the clock
//! may be read — asks the step's policy, stamps the times, and the tick carries the answer,
//! which the journal records and a replay repeats. Delays and times are whole milliseconds,
//! the journal's unit, so a replayed run holds exactly what the live one held.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::context::{PastAttempts, whole_millis};
use crate::step::{FailedAttempt, RetryPolicy, StepError};

/// A failed attempt as its task reports it: the error, what the step's policy decided, and the
/// attempts' times. Boxed in `Tick::StepDone`: failures are rare, and a tick is moved several
/// times on every step.
#[derive(Debug)]
pub(crate) struct StepFailure {
    pub(crate) error: StepError,
    pub(crate) retry: RetryDecision,
    /// `None` in journals written before the times were recorded.
    pub(crate) times: Option<AttemptTimes>,
}

/// Whether, and when, a failed attempt is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryDecision {
    /// No retry: the run fails (or the attempt did not fail).
    Stop,
    /// Try again after this delay (whole milliseconds).
    After(Duration),
    /// Not decided: a journal entry from before decisions were journaled, which recorded only
    /// whether the policy's predicates accepted the error. The reducer asks the policy, drawing
    /// jitter from its seeded generator as the build that wrote the entry did.
    Undecided { retryable: bool },
}

impl RetryDecision {
    /// What `policy` decides after `failed`, asked where the error is whole: a delay rounded up
    /// to whole milliseconds (so a wait never becomes no wait).
    pub(crate) fn ask(
        policy: &RetryPolicy,
        failed: &FailedAttempt<'_>,
        rng: &mut fastrand::Rng,
    ) -> Self {
        match policy.delay_after(failed, rng) {
            None => RetryDecision::Stop,
            Some(delay) => {
                let millis = delay.as_nanos().div_ceil(1_000_000);
                RetryDecision::After(Duration::from_millis(
                    u64::try_from(millis).unwrap_or(u64::MAX),
                ))
            }
        }
    }
}

/// When the first attempt at an input began and when the latest one failed (wall clock, whole
/// milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AttemptTimes {
    pub(crate) first_attempt_at: SystemTime,
    pub(crate) failed_at: SystemTime,
}

impl AttemptTimes {
    /// The times, cut to whole milliseconds.
    pub(crate) fn new(first_attempt_at: SystemTime, failed_at: SystemTime) -> Self {
        AttemptTimes {
            first_attempt_at: whole_millis(first_attempt_at),
            failed_at: whole_millis(failed_at),
        }
    }

    /// From the start of the first attempt to the failure (zero if the clock went back).
    pub(crate) fn elapsed(&self) -> Duration {
        self.failed_at
            .duration_since(self.first_attempt_at)
            .unwrap_or_default()
    }

    /// What the retry after this failure is told of the attempts before it.
    pub(crate) fn past(&self, error: &StepError) -> Arc<PastAttempts> {
        Arc::new(PastAttempts {
            first_attempt_at: self.first_attempt_at,
            last_error: error.to_string(),
            last_failed_at: self.failed_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::from_epoch_millis;

    fn ask(policy: &RetryPolicy) -> RetryDecision {
        let error = StepError::Failed("boom".into());
        let failed = FailedAttempt {
            attempt: 1,
            elapsed: Duration::ZERO,
            error: &error,
            retryable: None,
        };
        RetryDecision::ask(policy, &failed, &mut fastrand::Rng::with_seed(1))
    }

    #[test]
    fn a_decided_delay_is_rounded_up_to_whole_milliseconds() {
        let after = |delay| ask(&RetryPolicy::fixed(delay));
        assert_eq!(
            after(Duration::from_micros(1)),
            RetryDecision::After(Duration::from_millis(1)),
            "a wait stays a wait"
        );
        assert_eq!(
            after(Duration::from_micros(2500)),
            RetryDecision::After(Duration::from_millis(3))
        );
        assert_eq!(after(Duration::ZERO), RetryDecision::After(Duration::ZERO));
        assert_eq!(ask(&RetryPolicy::none()), RetryDecision::Stop);
    }

    #[test]
    fn times_are_whole_milliseconds_and_elapsed_never_negative() {
        let first = from_epoch_millis(1_000) + Duration::from_micros(700);
        let times = AttemptTimes::new(first, from_epoch_millis(3_500));
        assert_eq!(times.first_attempt_at, from_epoch_millis(1_000));
        assert_eq!(times.elapsed(), Duration::from_millis(2_500));
        let backwards = AttemptTimes::new(from_epoch_millis(9_000), from_epoch_millis(1_000));
        assert_eq!(backwards.elapsed(), Duration::ZERO);
        let past = times.past(&StepError::Panicked("oops".into()));
        assert_eq!(past.last_error, "panicked: oops");
        assert_eq!(past.last_failed_at, from_epoch_millis(3_500));
    }
}
