//! The waits of a retry policy before its limits apply: a built-in backoff, a policy of the
//! user's own, or two policies one after the other.
//!
//! The backoff arithmetic is written here rather than taken from a crate: it is two lines, and
//! the backoff crates (`backon`, `backoff`, `exponential-backoff`) are stateful iterators that
//! own their generator (and some a clock), while a policy here must answer for any attempt from
//! its number alone, drawing jitter from the generator it is handed.

use std::sync::Arc;
use std::time::Duration;

use super::{FailedAttempt, Retry, RetryPolicy};

/// How long to wait before the next attempt, in a built-in policy.
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

impl Backoff {
    /// The delay after failed attempt `attempt` (1-based), before jitter.
    fn delay(&self, attempt: u32) -> Duration {
        match *self {
            Backoff::Fixed(delay) => delay,
            Backoff::Exponential {
                initial,
                factor,
                max,
            } => {
                let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
                let scaled = initial.as_secs_f64() * factor.powi(exponent);
                Duration::from_secs_f64(scaled.min(max.as_secs_f64()))
            }
        }
    }
}

/// Where a policy's delays come from.
#[derive(Clone)]
pub(super) enum Waits {
    /// A built-in backoff.
    Backoff(Backoff),
    /// A policy of the user's own.
    Custom(Arc<dyn Retry>),
    /// The first policy until its attempts are used up, then the second.
    Chain(Arc<(RetryPolicy, RetryPolicy)>),
}

impl Waits {
    /// The delay after `failed`, or `None` when these waits end.
    pub(super) fn delay(
        &self,
        failed: &FailedAttempt<'_>,
        rng: &mut fastrand::Rng,
    ) -> Option<Duration> {
        match self {
            Waits::Backoff(backoff) => Some(backoff.delay(failed.attempt)),
            Waits::Custom(policy) => policy.next(failed.attempt, failed.elapsed, failed.error),
            Waits::Chain(chain) => {
                let (first, then) = &**chain;
                if failed.attempt < first.attempts() {
                    return first.delay_after(failed, rng);
                }
                // The attempt that used up the first policy counts as the second's first.
                let attempt = failed.attempt - first.attempts() + 1;
                then.delay_after(&FailedAttempt { attempt, ..*failed }, rng)
            }
        }
    }
}

impl std::fmt::Debug for Waits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Waits::Backoff(backoff) => backoff.fmt(f),
            Waits::Custom(_) => f.write_str("Custom"),
            Waits::Chain(chain) => f
                .debug_tuple("Chain")
                .field(&chain.0)
                .field(&chain.1)
                .finish(),
        }
    }
}
