//! Error handlers: which failed steps a handler step recovers, and how often.
//!
//! A handler is an ordinary step that accepts [`StepFailedEvent`](crate::StepFailedEvent) and
//! carries a [`CatchError`]. When a step it covers fails its last allowed attempt, the reducer
//! queues a `StepFailedEvent` for the handler instead of failing the run; what the handler
//! returns is routed like any step's events.

/// How many recoveries one lineage of events gets when not said (the reference's default).
pub const DEFAULT_MAX_RECOVERIES: u32 = 1;

/// What an error handler covers: every step (a wildcard) or the steps it names, and how many
/// recoveries it makes along one lineage of events (the events that led, step after step, from
/// the start to the failure: a recovery's events count one more than the failed step's input).
///
/// ```
/// use eventflow::prelude::*;
/// use eventflow::CatchError;
///
/// let fallback = Step::new("fallback", |failed: StepFailedEvent| async move {
///     StopEvent::new(format!("{} failed: {}", failed.step, failed.error))
/// })
/// .catch_error(CatchError::for_steps(["fetch", "parse"]).max_recoveries(2));
/// assert_eq!(fallback.catches().unwrap().steps(), Some(&["fetch".to_owned(), "parse".to_owned()][..]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatchError {
    steps: Option<Vec<String>>,
    max_recoveries: u32,
}

impl CatchError {
    /// Covers every step that no other handler names (and no handler).
    pub fn any_step() -> Self {
        CatchError {
            steps: None,
            max_recoveries: DEFAULT_MAX_RECOVERIES,
        }
    }

    /// Covers the steps named.
    pub fn for_steps<S: Into<String>>(steps: impl IntoIterator<Item = S>) -> Self {
        CatchError {
            steps: Some(steps.into_iter().map(Into::into).collect()),
            max_recoveries: DEFAULT_MAX_RECOVERIES,
        }
    }

    /// Recovers at most `max` failures along one lineage of events (default
    /// [`DEFAULT_MAX_RECOVERIES`]); the next failure fails the run.
    pub fn max_recoveries(mut self, max: u32) -> Self {
        self.max_recoveries = max;
        self
    }

    /// The steps named, or `None` for a wildcard.
    pub fn steps(&self) -> Option<&[String]> {
        self.steps.as_deref()
    }

    /// The most recoveries along one lineage.
    pub fn recoveries(&self) -> u32 {
        self.max_recoveries
    }
}
