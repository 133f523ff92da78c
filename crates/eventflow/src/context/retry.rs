//! What a step invocation knows of the attempts at its input before it: [`RetryInfo`], read with
//! `ctx.retry_info()`.
//!
//! The reducer keeps the previous attempts' story ([`PastAttempts`]) with each queued retry and
//! hands it to the retry's context. Its times are wall-clock times stamped by the failed
//! attempt's task (the reducer reads no clock), in whole milliseconds: that is what the journal
//! and snapshots hold, so a run recovered from them tells its step exactly what the live run
//! would have.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a step invocation knows of the attempts at its input so far, from
/// [`Context::retry_info`](crate::Context::retry_info).
///
/// ```
/// use eventflow::prelude::*;
///
/// async fn fetch(ctx: Context, _: StartEvent) -> Result<StopEvent> {
///     let info = ctx.retry_info();
///     if let Some(error) = &info.last_error {
///         eprintln!("attempt {} after: {error}", info.attempt);
///     }
///     Ok(StopEvent::new(info.attempt))
/// }
/// # let _ = Step::new("fetch", fetch);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryInfo {
    /// This attempt's number: 1 on the first try, 2 on the first retry, and so on. A durable run
    /// recovered after a crash hands the interrupted attempt the same number again.
    pub attempt: u32,
    /// Time from the start of the first attempt to the call of `retry_info`: wall-clock time
    /// on a retry (zero if the clock went back, or runs behind the first attempt's machine's).
    pub since_first_attempt: Duration,
    /// The previous attempt's error, as text (`Display` of its [`StepError`](crate::StepError)):
    /// `None` on the first attempt. Text because the error may have been raised in another
    /// process: a durable run keeps it in its journal.
    pub last_error: Option<String>,
    /// When the previous attempt failed (whole milliseconds): `None` on the first attempt.
    pub last_failed_at: Option<SystemTime>,
}

/// The attempts before a retried one: kept by the reducer with the retry, handed to its context.
///
/// Retries replayed from journals written before eventflow recorded failure times have none;
/// their steps see the right attempt number, and no last error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PastAttempts {
    /// When the first attempt began.
    pub(crate) first_attempt_at: SystemTime,
    /// The last attempt's error, as text.
    pub(crate) last_error: String,
    /// When the last attempt failed.
    pub(crate) last_failed_at: SystemTime,
}

impl RetryInfo {
    /// The retry information of attempt `attempt` that began at `started`, after `past`: a
    /// first attempt counts on the monotonic clock, a retry from the wall-clock time the first
    /// attempt began (which may have been in another process).
    pub(crate) fn new(attempt: u32, started: Instant, past: Option<&PastAttempts>) -> Self {
        let since_first_attempt = match past {
            None => started.elapsed(),
            Some(past) => SystemTime::now()
                .duration_since(past.first_attempt_at)
                .unwrap_or_default(),
        };
        RetryInfo {
            attempt,
            since_first_attempt,
            last_error: past.map(|past| past.last_error.clone()),
            last_failed_at: past.map(|past| past.last_failed_at),
        }
    }
}

/// `time` as milliseconds since the Unix epoch (zero before it): how journals and snapshots
/// hold wall-clock times.
pub(crate) fn epoch_millis(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// The time `millis` milliseconds after the Unix epoch.
pub(crate) fn from_epoch_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// `time` cut to whole milliseconds, as a journal would give it back.
pub(crate) fn whole_millis(time: SystemTime) -> SystemTime {
    from_epoch_millis(epoch_millis(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_attempt_has_no_past() {
        let info = RetryInfo::new(1, Instant::now(), None);
        assert_eq!(info.attempt, 1);
        assert_eq!(info.last_error, None);
        assert_eq!(info.last_failed_at, None);
        assert!(info.since_first_attempt < Duration::from_secs(5));
    }

    #[test]
    fn a_retry_counts_from_the_first_attempt() {
        let now = SystemTime::now();
        let past = PastAttempts {
            first_attempt_at: now - Duration::from_secs(60),
            last_error: "boom".to_owned(),
            last_failed_at: now - Duration::from_secs(1),
        };
        // The retry's own start does not matter: the first attempt's does.
        let info = RetryInfo::new(3, Instant::now(), Some(&past));
        assert_eq!(info.attempt, 3);
        assert!(info.since_first_attempt >= Duration::from_secs(60));
        assert_eq!(info.last_error.as_deref(), Some("boom"));
        assert_eq!(info.last_failed_at, Some(past.last_failed_at));
    }

    #[test]
    fn a_first_attempt_in_the_future_is_zero_time_ago() {
        let past = PastAttempts {
            first_attempt_at: SystemTime::now() + Duration::from_secs(3600),
            last_error: "from a machine whose clock runs ahead".to_owned(),
            last_failed_at: SystemTime::now(),
        };
        let info = RetryInfo::new(2, Instant::now(), Some(&past));
        assert_eq!(info.since_first_attempt, Duration::ZERO);
    }

    #[test]
    fn times_round_trip_through_whole_milliseconds() {
        let time = from_epoch_millis(1_700_000_000_123) + Duration::from_micros(456);
        assert_eq!(epoch_millis(time), 1_700_000_000_123);
        assert_eq!(whole_millis(time), from_epoch_millis(1_700_000_000_123));
        assert_eq!(epoch_millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
