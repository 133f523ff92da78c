//! Retry policies: how many attempts a step gets and how long to wait between them.
//!
//! A policy only answers "retry after how long, if at all"; the run loop does the waiting, so
//! attempts and pending retries are part of the run's state and survive a snapshot.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::StepError;

/// How long to wait before the next attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backoff {
    /// The same delay every time.
    Fixed(Duration),
    /// `initial * factor^(attempt - 1)`, capped at `max`.
    Exponential {
        /// The delay before the second attempt.
        initial: Duration,
        /// The growth factor between attempts.
        factor: f64,
        /// The longest delay.
        max: Duration,
    },
}

type RetryPredicate = Arc<dyn Fn(&StepError) -> bool + Send + Sync>;

/// How a failed step attempt is retried.
///
/// ```
/// use std::time::Duration;
/// use eventflow::{RetryPolicy, StepError};
///
/// let policy = RetryPolicy::exponential(Duration::from_millis(100))
///     .max_attempts(5)
///     .max_delay(Duration::from_secs(2))
///     .jitter(true)
///     .retry_if(|err| !matches!(err, StepError::Panicked(_)));
/// assert_eq!(policy.attempts(), 5);
/// ```
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff: Backoff,
    jitter: bool,
    predicate: Option<RetryPredicate>,
}

impl RetryPolicy {
    /// One attempt, no retry: the default.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Backoff::Fixed(Duration::ZERO),
            jitter: false,
            predicate: None,
        }
    }

    /// Up to 3 attempts (change with [`max_attempts`](Self::max_attempts)), `delay` apart.
    pub fn fixed(delay: Duration) -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::Fixed(delay),
            ..Self::none()
        }
    }

    /// Up to 3 attempts, the delay doubling from `initial` up to 30 s.
    pub fn exponential(initial: Duration) -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::Exponential {
                initial,
                factor: 2.0,
                max: Duration::from_secs(30),
            },
            ..Self::none()
        }
    }

    /// The total number of attempts, the first included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The growth factor of an exponential backoff.
    pub fn factor(mut self, factor: f64) -> Self {
        if let Backoff::Exponential { factor: f, .. } = &mut self.backoff {
            *f = factor.max(1.0);
        }
        self
    }

    /// The longest delay of an exponential backoff.
    pub fn max_delay(mut self, max: Duration) -> Self {
        if let Backoff::Exponential { max: m, .. } = &mut self.backoff {
            *m = max;
        }
        self
    }

    /// Full jitter: each delay is drawn uniformly between zero and the computed delay, so many
    /// runs failing together do not retry together.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Retries only errors for which `predicate` is true; others fail the run at once.
    pub fn retry_if(
        mut self,
        predicate: impl Fn(&StepError) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicate = Some(Arc::new(predicate));
        self
    }

    /// The total number of attempts allowed.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The backoff between attempts.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The delay before the attempt after `failed_attempt` (1-based), or `None` when the step
    /// must not be retried.
    /// Whether the policy's predicate (if any) accepts retrying after `error`.
    pub(crate) fn allows(&self, error: &StepError) -> bool {
        self.predicate
            .as_ref()
            .is_none_or(|predicate| predicate(error))
    }

    /// The delay before the next attempt, or `None` when there is none: `retryable` is
    /// [`RetryPolicy::allows`] of the error.
    pub(crate) fn delay_after(
        &self,
        failed_attempt: u32,
        retryable: bool,
        rng: &mut fastrand::Rng,
    ) -> Option<Duration> {
        if failed_attempt >= self.max_attempts || !retryable {
            return None;
        }
        let delay = match self.backoff {
            Backoff::Fixed(delay) => delay,
            Backoff::Exponential {
                initial,
                factor,
                max,
            } => {
                let exponent = i32::try_from(failed_attempt - 1).unwrap_or(i32::MAX);
                let scaled = initial.as_secs_f64() * factor.powi(exponent);
                Duration::from_secs_f64(scaled.min(max.as_secs_f64()))
            }
        };
        Some(if self.jitter {
            delay.mul_f64(rng.f64())
        } else {
            delay
        })
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::none()
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("jitter", &self.jitter)
            .field("predicate", &self.predicate.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> StepError {
        StepError::Failed("boom".into())
    }

    #[test]
    fn exponential_grows_and_caps() {
        let policy = RetryPolicy::exponential(Duration::from_millis(100))
            .max_attempts(10)
            .max_delay(Duration::from_millis(500));
        let mut rng = fastrand::Rng::with_seed(1);
        let delays: Vec<_> = (1..10)
            .map(|a| policy.delay_after(a, true, &mut rng).unwrap().as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 400, 500, 500, 500, 500, 500, 500]);
        assert_eq!(policy.delay_after(10, true, &mut rng), None);
    }

    /// Jittered delays of `policy` after attempt `attempt`, `draws` of them from a seeded rng,
    /// checked to lie strictly below `ceiling` (the delay the policy computes without jitter).
    /// Returns how many distinct values they took.
    fn jittered(policy: &RetryPolicy, attempt: u32, ceiling: Duration, draws: usize) -> usize {
        let mut rng = fastrand::Rng::with_seed(7);
        let delays: std::collections::BTreeSet<Duration> = (0..draws)
            .map(|_| policy.delay_after(attempt, true, &mut rng).unwrap())
            .inspect(|delay| {
                assert!(
                    *delay < ceiling,
                    "attempt {attempt}: {delay:?} is not below {ceiling:?}"
                );
            })
            .collect();
        // Full jitter spreads over the whole range, not only near its top.
        assert!(*delays.first().unwrap() < ceiling / 10, "{delays:?}");
        assert!(*delays.last().unwrap() > ceiling * 9 / 10, "{delays:?}");
        delays.len()
    }

    /// Jitter draws each delay anew below the computed one: many distinct values, every one
    /// strictly below it and spread over the range. (Only asserting `<=` also passes with the
    /// jitter removed, since the plain delay equals its own ceiling.)
    #[test]
    fn jitter_varies_below_the_delay() {
        let ceiling = Duration::from_millis(100);
        let policy = RetryPolicy::fixed(ceiling).max_attempts(2).jitter(true);
        assert_eq!(jittered(&policy, 1, ceiling, 200), 200);
    }

    /// With exponential backoff the jitter applies to each attempt's computed delay after the
    /// cap: below `initial * factor^(attempt - 1)` while it grows, below `max` once capped.
    #[test]
    fn jitter_varies_below_each_exponential_delay() {
        let plain = RetryPolicy::exponential(Duration::from_millis(100))
            .max_attempts(10)
            .max_delay(Duration::from_millis(500));
        let policy = plain.clone().jitter(true);
        let mut rng = fastrand::Rng::with_seed(1);
        for attempt in 1..10 {
            let ceiling = plain.delay_after(attempt, true, &mut rng).unwrap();
            assert_eq!(
                jittered(&policy, attempt, ceiling, 200),
                200,
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn predicate_refuses_retry() {
        let policy =
            RetryPolicy::fixed(Duration::ZERO).retry_if(|e| matches!(e, StepError::TimedOut(_)));
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(!policy.allows(&failure()));
        assert!(policy.allows(&StepError::TimedOut(Duration::ZERO)));
        assert_eq!(
            policy.delay_after(1, policy.allows(&failure()), &mut rng),
            None
        );
    }
}
