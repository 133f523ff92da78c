//! Retry policies: whether a failed step attempt is tried again, and after how long.
//!
//! A policy only answers "retry after how long, if at all". It is asked in the failed attempt's
//! own task, where the error is whole (a durable journal keeps errors as text) and the clock may
//! be read, and its answer travels to the reducer with the failure and into a durable run's
//! journal: a replay repeats the decision instead of asking again. The run loop does the
//! waiting, so attempts and pending retries are part of the run's state and survive a snapshot
//! or a crash.
//!
//! [`RetryPolicy`] is what a step takes. It is built from waits — [`fixed`](RetryPolicy::fixed),
//! [`exponential`](RetryPolicy::exponential), a policy of your own ([`Retry`], through
//! [`custom`](RetryPolicy::custom)) or two policies one after the other
//! ([`then`](RetryPolicy::then)) — and the limits and filters that apply around them: a number
//! of attempts, a total delay, jitter and predicates on the error.

mod waits;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use waits::Backoff;
use waits::Waits;

use super::StepError;

/// A retry policy of your own: whether to try a failed step again, and after how long.
///
/// Make it a [`RetryPolicy`] with [`RetryPolicy::custom`]; the built-in limits, jitter and
/// predicates then apply around it. It is asked in the failed attempt's task with the error as
/// the step returned it, so it may look into the error's type; in a durable run its answer is
/// journaled, so it may also read the clock or draw random numbers without making a replay
/// diverge.
///
/// ```
/// use std::time::Duration;
/// use eventflow::{Retry, RetryPolicy, StepError};
///
/// /// The error of a rate-limited API, saying how long to wait.
/// #[derive(Debug)]
/// struct RateLimited {
///     retry_after: Duration,
/// }
///
/// impl std::fmt::Display for RateLimited {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "rate limited for {:?}", self.retry_after)
///     }
/// }
///
/// impl std::error::Error for RateLimited {}
///
/// /// Waits as long as a rate limit asks; other failures back off linearly; panics are final.
/// struct HonourRateLimits;
///
/// impl Retry for HonourRateLimits {
///     fn next(&self, attempt: u32, _elapsed: Duration, error: &StepError) -> Option<Duration> {
///         match error {
///             StepError::Failed(error) => match error.downcast_ref::<RateLimited>() {
///                 Some(limited) => Some(limited.retry_after),
///                 None => Some(Duration::from_millis(100) * attempt),
///             },
///             StepError::TimedOut(_) => Some(Duration::ZERO),
///             StepError::Panicked(_) => None,
///         }
///     }
/// }
///
/// let policy = RetryPolicy::custom(HonourRateLimits)
///     .max_attempts(5)
///     .max_total_delay(Duration::from_secs(60));
///
/// let limited = StepError::Failed(Box::new(RateLimited { retry_after: Duration::from_secs(7) }));
/// assert_eq!(policy.next(1, Duration::ZERO, &limited), Some(Duration::from_secs(7)));
/// let other = StepError::Failed("connection reset".into());
/// assert_eq!(policy.next(2, Duration::ZERO, &other), Some(Duration::from_millis(200)));
/// // The limits around it: five attempts, and no wait that ends past a minute.
/// assert_eq!(policy.next(5, Duration::ZERO, &other), None);
/// assert_eq!(policy.next(1, Duration::from_secs(55), &limited), None);
/// ```
pub trait Retry: Send + Sync + 'static {
    /// The delay before the next attempt, or `None` to fail the run with `error`.
    ///
    /// `attempt` is the number of the attempt that failed (1 for the first); `elapsed` the
    /// wall-clock time from the start of the first attempt to this failure.
    fn next(&self, attempt: u32, elapsed: Duration, error: &StepError) -> Option<Duration>;
}

type RetryPredicate = Arc<dyn Fn(&StepError) -> bool + Send + Sync>;

/// How a failed step attempt is retried: the waits between attempts, and the limits and
/// filters around them.
///
/// ```
/// use std::time::Duration;
/// use eventflow::{Retry, RetryPolicy, StepError};
///
/// let policy = RetryPolicy::exponential(Duration::from_millis(100))
///     .max_attempts(5)
///     .max_delay(Duration::from_secs(2))
///     .max_total_delay(Duration::from_secs(10))
///     .jitter(true)
///     .retry_if(|err| !matches!(err, StepError::Panicked(_)));
/// assert_eq!(policy.attempts(), 5);
///
/// // Asking it (as a run does when an attempt fails): jitter draws below 100 ms * 2^(n - 1).
/// let failed = StepError::Failed("flaky".into());
/// let delay = policy.next(3, Duration::from_secs(1), &failed).unwrap();
/// assert!(delay < Duration::from_millis(400));
/// assert_eq!(policy.next(1, Duration::ZERO, &StepError::Panicked("bug".into())), None);
/// ```
///
/// Policies chain: a few quick retries, then slower ones.
///
/// ```
/// use std::time::Duration;
/// use eventflow::{Retry, RetryPolicy, StepError};
///
/// let ms = Duration::from_millis;
/// let policy = RetryPolicy::fixed(ms(10))
///     .max_attempts(3)
///     .then(RetryPolicy::exponential(ms(1000)).max_attempts(4));
/// assert_eq!(policy.attempts(), 6);
/// let error = StepError::Failed("down".into());
/// let waits: Vec<_> = (1..=6).map(|n| policy.next(n, Duration::ZERO, &error)).collect();
/// assert_eq!(waits, [Some(ms(10)), Some(ms(10)), Some(ms(1000)), Some(ms(2000)), Some(ms(4000)), None]);
/// ```
#[derive(Clone)]
pub struct RetryPolicy {
    waits: Waits,
    max_attempts: u32,
    max_total_delay: Option<Duration>,
    jitter: bool,
    predicate: Option<RetryPredicate>,
}

/// A failed attempt, as a policy sees it.
#[derive(Clone, Copy)]
pub(crate) struct FailedAttempt<'a> {
    /// Its number: 1 for the first.
    pub(crate) attempt: u32,
    /// From the start of the first attempt to this failure.
    pub(crate) elapsed: Duration,
    /// Its error.
    pub(crate) error: &'a StepError,
    /// What the predicates said, when that is all that was recorded (journals written before
    /// decisions were journaled): it stands in for them, since the error is text there.
    pub(crate) retryable: Option<bool>,
}

impl RetryPolicy {
    /// One attempt, no retry: the default.
    pub fn none() -> Self {
        RetryPolicy {
            waits: Waits::Backoff(Backoff::Fixed(Duration::ZERO)),
            max_attempts: 1,
            max_total_delay: None,
            jitter: false,
            predicate: None,
        }
    }

    /// Up to 3 attempts (change with [`max_attempts`](Self::max_attempts)), `delay` apart.
    pub fn fixed(delay: Duration) -> Self {
        RetryPolicy {
            waits: Waits::Backoff(Backoff::Fixed(delay)),
            max_attempts: 3,
            ..Self::none()
        }
    }

    /// Up to 3 attempts, the delay doubling from `initial` up to 30 s (change with
    /// [`factor`](Self::factor) and [`max_delay`](Self::max_delay)).
    pub fn exponential(initial: Duration) -> Self {
        RetryPolicy {
            waits: Waits::Backoff(Backoff::Exponential {
                initial,
                factor: 2.0,
                max: Duration::from_secs(30),
            }),
            max_attempts: 3,
            ..Self::none()
        }
    }

    /// A policy of your own: it decides every wait and when to stop, with no limit on attempts
    /// until one is set with [`max_attempts`](Self::max_attempts).
    pub fn custom(policy: impl Retry) -> Self {
        RetryPolicy {
            waits: Waits::Custom(Arc::new(policy)),
            max_attempts: u32::MAX,
            ..Self::none()
        }
    }

    /// Goes on with `next` once this policy's attempts are used up: the attempt that uses them
    /// up counts as `next`'s first, so the chain makes `self.attempts() + next.attempts() - 1`
    /// attempts in all. Each part keeps its own predicates, jitter and total delay; limits set
    /// on the chain apply to the whole. A policy without a limit on attempts (a custom one)
    /// never hands over.
    pub fn then(self, next: RetryPolicy) -> Self {
        RetryPolicy {
            max_attempts: self.max_attempts.saturating_add(next.max_attempts - 1),
            waits: Waits::Chain(Arc::new((self, next))),
            ..Self::none()
        }
    }

    /// The total number of attempts, the first included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// No retry whose wait would end later than `limit` after the first attempt began: the
    /// run fails instead. The time counted is wall-clock time, the attempts' own included.
    pub fn max_total_delay(mut self, limit: Duration) -> Self {
        self.max_total_delay = Some(limit);
        self
    }

    /// The growth factor of an exponential backoff (at least 1; other policies ignore it).
    pub fn factor(mut self, factor: f64) -> Self {
        if let Waits::Backoff(Backoff::Exponential { factor: f, .. }) = &mut self.waits {
            *f = factor.max(1.0);
        }
        self
    }

    /// The longest delay of an exponential backoff (other policies ignore it).
    pub fn max_delay(mut self, max: Duration) -> Self {
        if let Waits::Backoff(Backoff::Exponential { max: m, .. }) = &mut self.waits {
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

    /// Retries only errors for which `predicate` is true; others fail the run at once. With
    /// several predicates, all must accept the error.
    pub fn retry_if(
        mut self,
        predicate: impl Fn(&StepError) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicate = Some(match self.predicate.take() {
            None => Arc::new(predicate),
            Some(earlier) => Arc::new(move |error| earlier(error) && predicate(error)),
        });
        self
    }

    /// The total number of attempts allowed (`u32::MAX` for a custom policy without a limit).
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The backoff between attempts of a built-in policy; `None` for a custom policy or a
    /// chain.
    pub fn backoff(&self) -> Option<Backoff> {
        match &self.waits {
            Waits::Backoff(backoff) => Some(*backoff),
            Waits::Custom(_) | Waits::Chain(_) => None,
        }
    }

    /// The delay before the attempt after `failed`, or `None` when there is none. Jitter
    /// draws from `rng`; nothing else here is random.
    pub(crate) fn delay_after(
        &self,
        failed: &FailedAttempt<'_>,
        rng: &mut fastrand::Rng,
    ) -> Option<Duration> {
        if failed.attempt >= self.max_attempts {
            return None;
        }
        let retryable = failed.retryable.unwrap_or_else(|| {
            self.predicate
                .as_ref()
                .is_none_or(|predicate| predicate(failed.error))
        });
        if !retryable {
            return None;
        }
        let delay = self.waits.delay(failed, rng)?;
        let delay = if self.jitter {
            delay.mul_f64(rng.f64())
        } else {
            delay
        };
        match self.max_total_delay {
            Some(limit) if failed.elapsed.saturating_add(delay) > limit => None,
            _ => Some(delay),
        }
    }
}

/// A `RetryPolicy` answers as it does in a run, its jitter drawn from a fresh generator: what
/// tests of a policy (and policies wrapping one) call.
impl Retry for RetryPolicy {
    fn next(&self, attempt: u32, elapsed: Duration, error: &StepError) -> Option<Duration> {
        let failed = FailedAttempt {
            attempt,
            elapsed,
            error,
            retryable: None,
        };
        self.delay_after(&failed, &mut fastrand::Rng::new())
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
            .field("waits", &self.waits)
            .field("max_attempts", &self.max_attempts)
            .field("max_total_delay", &self.max_total_delay)
            .field("jitter", &self.jitter)
            .field("predicate", &self.predicate.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn failure() -> StepError {
        StepError::Failed("boom".into())
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// What `policy` decides after attempt `attempt`, `elapsed` after the first began.
    fn decide(
        policy: &RetryPolicy,
        attempt: u32,
        elapsed: Duration,
        error: &StepError,
        rng: &mut fastrand::Rng,
    ) -> Option<Duration> {
        let failed = FailedAttempt {
            attempt,
            elapsed,
            error,
            retryable: None,
        };
        policy.delay_after(&failed, rng)
    }

    /// The delays of `policy` after attempts 1, 2, ... up to `last`, no time elapsed.
    fn waits(policy: &RetryPolicy, last: u32) -> Vec<Option<Duration>> {
        let mut rng = fastrand::Rng::with_seed(1);
        (1..=last)
            .map(|attempt| decide(policy, attempt, Duration::ZERO, &failure(), &mut rng))
            .collect()
    }

    #[test]
    fn none_never_retries() {
        assert_eq!(waits(&RetryPolicy::none(), 2), [None, None]);
        assert_eq!(RetryPolicy::default().attempts(), 1);
    }

    #[test]
    fn fixed_waits_the_same_until_its_attempts_are_used_up() {
        let policy = RetryPolicy::fixed(ms(50));
        assert_eq!(policy.attempts(), 3);
        assert_eq!(waits(&policy, 3), [Some(ms(50)), Some(ms(50)), None]);
    }

    #[test]
    fn exponential_grows_and_caps() {
        let policy = RetryPolicy::exponential(ms(100))
            .max_attempts(10)
            .max_delay(ms(500));
        let delays: Vec<_> = waits(&policy, 10)
            .into_iter()
            .map(|d| d.map(|d| d.as_millis()))
            .collect();
        let expected = [100, 200, 400, 500, 500, 500, 500, 500, 500].map(Some);
        assert_eq!(delays[..9], expected);
        assert_eq!(delays[9], None);
        let tripling = RetryPolicy::exponential(ms(10)).factor(3.0);
        assert_eq!(waits(&tripling, 2), [Some(ms(10)), Some(ms(30))]);
    }

    /// Jittered delays of `policy` after attempt `attempt`, `draws` of them from a seeded rng,
    /// checked to lie strictly below `ceiling` (the delay the policy computes without jitter).
    /// Returns how many distinct values they took.
    fn jittered(policy: &RetryPolicy, attempt: u32, ceiling: Duration, draws: usize) -> usize {
        let mut rng = fastrand::Rng::with_seed(7);
        let delays: BTreeSet<Duration> = (0..draws)
            .map(|_| decide(policy, attempt, Duration::ZERO, &failure(), &mut rng).unwrap())
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
        let ceiling = ms(100);
        let policy = RetryPolicy::fixed(ceiling).max_attempts(2).jitter(true);
        assert_eq!(jittered(&policy, 1, ceiling, 200), 200);
    }

    /// With exponential backoff the jitter applies to each attempt's computed delay after the
    /// cap: below `initial * factor^(attempt - 1)` while it grows, below `max` once capped.
    #[test]
    fn jitter_varies_below_each_exponential_delay() {
        let plain = RetryPolicy::exponential(ms(100))
            .max_attempts(10)
            .max_delay(ms(500));
        let policy = plain.clone().jitter(true);
        for (attempt, ceiling) in (1..10).zip(waits(&plain, 9)) {
            let ceiling = ceiling.unwrap();
            assert_eq!(
                jittered(&policy, attempt, ceiling, 200),
                200,
                "attempt {attempt}"
            );
        }
    }

    /// The same seed draws the same jitter, one number per decision: what replaying a journal
    /// written before decisions were journaled relies on.
    #[test]
    fn jitter_is_one_draw_from_the_generator_per_decision() {
        let policy = RetryPolicy::exponential(ms(100))
            .max_attempts(4)
            .jitter(true);
        let mut rng = fastrand::Rng::with_seed(42);
        let mut reference = fastrand::Rng::with_seed(42);
        for (attempt, base) in [(1, 100), (2, 200), (3, 400)] {
            let delay = decide(&policy, attempt, Duration::ZERO, &failure(), &mut rng);
            assert_eq!(delay, Some(ms(base).mul_f64(reference.f64())));
        }
        // No retry left: nothing drawn.
        assert_eq!(
            decide(&policy, 4, Duration::ZERO, &failure(), &mut rng),
            None
        );
        assert_eq!(rng.u64(..), reference.u64(..));
    }

    #[test]
    fn predicate_refuses_retry() {
        let policy =
            RetryPolicy::fixed(Duration::ZERO).retry_if(|e| matches!(e, StepError::TimedOut(_)));
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(
            decide(&policy, 1, Duration::ZERO, &failure(), &mut rng),
            None
        );
        let timed_out = StepError::TimedOut(Duration::ZERO);
        assert_eq!(
            decide(&policy, 1, Duration::ZERO, &timed_out, &mut rng),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn predicates_compose_all_must_accept() {
        let policy = RetryPolicy::fixed(ms(1))
            .retry_if(|e| !matches!(e, StepError::Panicked(_)))
            .retry_if(|e| e.to_string() != "fatal");
        let mut rng = fastrand::Rng::with_seed(1);
        let mut decide = |error: StepError| decide(&policy, 1, Duration::ZERO, &error, &mut rng);
        assert_eq!(decide(failure()), Some(ms(1)));
        assert_eq!(decide(StepError::Failed("fatal".into())), None);
        assert_eq!(decide(StepError::Panicked("bug".into())), None);
    }

    /// A recorded verdict of the predicates stands in for them: the error it comes with is
    /// only text.
    #[test]
    fn a_recorded_verdict_stands_in_for_the_predicates() {
        let policy = RetryPolicy::fixed(ms(5)).retry_if(|_| false);
        let mut rng = fastrand::Rng::with_seed(1);
        let error = failure();
        let recorded = |retryable| FailedAttempt {
            attempt: 1,
            elapsed: Duration::ZERO,
            error: &error,
            retryable: Some(retryable),
        };
        assert_eq!(policy.delay_after(&recorded(true), &mut rng), Some(ms(5)));
        assert_eq!(policy.delay_after(&recorded(false), &mut rng), None);
    }

    #[test]
    fn max_total_delay_refuses_a_wait_that_would_end_past_it() {
        let policy = RetryPolicy::fixed(ms(100))
            .max_attempts(10)
            .max_total_delay(ms(1000));
        let mut rng = fastrand::Rng::with_seed(1);
        let mut after = |elapsed| decide(&policy, 2, ms(elapsed), &failure(), &mut rng);
        assert_eq!(after(0), Some(ms(100)));
        assert_eq!(after(900), Some(ms(100)), "ends exactly at the limit");
        assert_eq!(after(901), None);
        assert_eq!(after(5000), None);
    }

    /// A custom policy that records what it was asked and answers from a table.
    struct Scripted {
        asked: std::sync::Mutex<Vec<(u32, Duration, String)>>,
    }

    impl Retry for Arc<Scripted> {
        fn next(&self, attempt: u32, elapsed: Duration, error: &StepError) -> Option<Duration> {
            self.asked
                .lock()
                .unwrap()
                .push((attempt, elapsed, error.to_string()));
            match error {
                // The error is whole: its type can be looked at.
                StepError::Failed(e) if e.downcast_ref::<std::fmt::Error>().is_some() => None,
                _ => Some(ms(u64::from(attempt) * 7)),
            }
        }
    }

    #[test]
    fn a_custom_policy_sees_the_attempt_the_elapsed_time_and_the_whole_error() {
        let scripted = Arc::new(Scripted {
            asked: Default::default(),
        });
        let policy = RetryPolicy::custom(scripted.clone());
        assert_eq!(policy.attempts(), u32::MAX);
        assert_eq!(policy.backoff(), None);
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(
            decide(&policy, 4, ms(30), &failure(), &mut rng),
            Some(ms(28))
        );
        let typed = StepError::Failed(Box::new(std::fmt::Error));
        assert_eq!(decide(&policy, 5, ms(40), &typed, &mut rng), None);
        assert_eq!(
            *scripted.asked.lock().unwrap(),
            [
                (4, ms(30), "boom".to_owned()),
                (
                    5,
                    ms(40),
                    "an error occurred when formatting an argument".to_owned()
                )
            ]
        );
    }

    #[test]
    fn limits_jitter_and_predicates_apply_around_a_custom_policy() {
        let scripted = Arc::new(Scripted {
            asked: Default::default(),
        });
        let policy = RetryPolicy::custom(scripted.clone())
            .max_attempts(3)
            .jitter(true)
            .retry_if(|e| !matches!(e, StepError::Panicked(_)));
        let mut rng = fastrand::Rng::with_seed(3);
        let delay = decide(&policy, 2, Duration::ZERO, &failure(), &mut rng).unwrap();
        assert!(delay < ms(14), "{delay:?}");
        assert_eq!(
            decide(&policy, 3, Duration::ZERO, &failure(), &mut rng),
            None
        );
        let panicked = StepError::Panicked("bug".into());
        assert_eq!(
            decide(&policy, 1, Duration::ZERO, &panicked, &mut rng),
            None
        );
        // Neither the exhausted attempt nor the refused error reached the custom policy.
        assert_eq!(scripted.asked.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_chain_hands_over_when_the_first_policy_is_used_up() {
        let policy = RetryPolicy::fixed(ms(10))
            .max_attempts(3)
            .then(RetryPolicy::exponential(ms(1000)).max_attempts(4));
        assert_eq!(policy.attempts(), 6);
        assert_eq!(policy.backoff(), None);
        assert_eq!(
            waits(&policy, 7),
            [
                Some(ms(10)),
                Some(ms(10)),
                Some(ms(1000)),
                Some(ms(2000)),
                Some(ms(4000)),
                None,
                None
            ]
        );
        // Chains chain.
        let three = policy.then(RetryPolicy::fixed(ms(1)).max_attempts(2));
        assert_eq!(three.attempts(), 7);
        assert_eq!(waits(&three, 7)[5..], [Some(ms(1)), None]);
    }

    #[test]
    fn each_part_of_a_chain_keeps_its_own_filters_and_the_chain_its_limits() {
        let picky = RetryPolicy::fixed(ms(10))
            .max_attempts(2)
            .retry_if(|e| e.to_string() == "boom");
        let policy = picky
            .then(RetryPolicy::fixed(ms(20)).max_attempts(10))
            .max_attempts(4);
        let mut rng = fastrand::Rng::with_seed(1);
        let other = StepError::Failed("other".into());
        // The first part refuses `other`; the second takes any error.
        assert_eq!(decide(&policy, 1, Duration::ZERO, &other, &mut rng), None);
        assert_eq!(
            decide(&policy, 2, Duration::ZERO, &other, &mut rng),
            Some(ms(20))
        );
        // The chain's own limit: four attempts, not 2 + 10 - 1.
        assert_eq!(waits(&policy, 4)[2..], [Some(ms(20)), None]);
    }

    #[test]
    fn a_policy_without_a_limit_never_hands_over() {
        let policy = RetryPolicy::custom(Arc::new(Scripted {
            asked: Default::default(),
        }))
        .then(RetryPolicy::fixed(ms(1)));
        assert_eq!(policy.attempts(), u32::MAX);
        assert_eq!(waits(&policy, 100)[99], Some(ms(700)));
    }

    #[test]
    fn asked_as_a_retry_a_policy_answers_as_in_a_run() {
        let policy = RetryPolicy::fixed(ms(3)).max_attempts(2);
        assert_eq!(policy.next(1, Duration::ZERO, &failure()), Some(ms(3)));
        assert_eq!(policy.next(2, Duration::ZERO, &failure()), None);
    }
}
