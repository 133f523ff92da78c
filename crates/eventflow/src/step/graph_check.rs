//! The graph checks a step or a whole workflow may opt out of, named as in the reference
//! (`skip_graph_checks=["reachability"]` there, `#[step(skip_graph_checks(reachability))]` or
//! `.skip_graph_checks([GraphCheck::Reachability])` here).
//!
//! Only the checks that judge the *shape* of the graph can be skipped: a workflow whose start
//! step, stop event or event names are wrong cannot run at all, so those checks stay on.

use std::fmt;
use std::str::FromStr;

/// A check of a workflow's graph that can be skipped, for one step or for the whole workflow.
///
/// The names (`as_str`, `FromStr`) are the reference's: `reachability`, `dead_end` and
/// `terminal_event`.
///
/// ```
/// use eventflow::prelude::*;
///
/// assert_eq!("dead_end".parse::<GraphCheck>(), Ok(GraphCheck::DeadEnd));
/// assert_eq!(GraphCheck::TerminalEvent.as_str(), "terminal_event");
/// let unknown = "reachable".parse::<GraphCheck>().unwrap_err();
/// assert_eq!(unknown.name(), "reachable");
/// ```
///
/// [`Step::skip_graph_checks`](crate::Step::skip_graph_checks) skips checks for one step,
/// [`WorkflowBuilder::skip_graph_checks`](crate::WorkflowBuilder::skip_graph_checks) for all;
/// `#[step(skip_graph_checks(..))]` and `#[workflow(skip_graph_checks(..))]` are the same for
/// the macros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum GraphCheck {
    /// Every step is reached by some chain of events from the start event (or from an event
    /// that comes from outside). Skipped for a step, that step is not reported as unreachable;
    /// the steps only it leads to still are.
    Reachability,
    /// From every step some chain of events leads to a stop event (or to a step that emits
    /// nothing). Skipped for a step, that step is not reported as a dead end.
    DeadEnd,
    /// Every emitted event is accepted by some step, unless it is meant for the outside (a stop,
    /// outbound or terminal event). Skipped for a step, the events that step emits may go
    /// unaccepted; skipped for the workflow, any event may.
    TerminalEvent,
}

impl GraphCheck {
    /// Every check, in the order the names are listed in messages.
    pub const ALL: [GraphCheck; 3] = [
        GraphCheck::Reachability,
        GraphCheck::DeadEnd,
        GraphCheck::TerminalEvent,
    ];

    /// The check's name, as written in `skip_graph_checks(...)`.
    pub fn as_str(self) -> &'static str {
        match self {
            GraphCheck::Reachability => "reachability",
            GraphCheck::DeadEnd => "dead_end",
            GraphCheck::TerminalEvent => "terminal_event",
        }
    }
}

impl fmt::Display for GraphCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GraphCheck {
    type Err = UnknownGraphCheck;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        GraphCheck::ALL
            .into_iter()
            .find(|check| check.as_str() == name)
            .ok_or_else(|| UnknownGraphCheck {
                name: name.to_owned(),
            })
    }
}

impl TryFrom<&str> for GraphCheck {
    type Error = UnknownGraphCheck;

    fn try_from(name: &str) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl TryFrom<String> for GraphCheck {
    type Error = UnknownGraphCheck;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

/// The checks' names, as messages list them.
pub(crate) const CHECK_NAMES: &str = "`reachability`, `dead_end` and `terminal_event`";

/// A name given to `skip_graph_checks` that is not one of [`GraphCheck`]'s.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown graph check `{name}`; the checks are {CHECK_NAMES}")]
pub struct UnknownGraphCheck {
    name: String,
}

impl UnknownGraphCheck {
    /// The name as it was given.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Lets `skip_graph_checks` take [`GraphCheck`]s, whose conversion cannot fail, and names, whose
/// conversion can, with one bound (`C::Error: Into<UnknownGraphCheck>`).
impl From<std::convert::Infallible> for UnknownGraphCheck {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// The checks a step or a workflow skips, and the names given that are no check, kept until
/// the workflow is built so they are reported with every other problem.
#[derive(Clone, Debug, Default)]
pub(crate) struct SkippedChecks {
    known: Vec<GraphCheck>,
    pub(crate) unknown: Vec<UnknownGraphCheck>,
}

impl SkippedChecks {
    /// Adds each of `checks`, once.
    pub(crate) fn extend<C>(&mut self, checks: impl IntoIterator<Item = C>)
    where
        C: TryInto<GraphCheck>,
        C::Error: Into<UnknownGraphCheck>,
    {
        for check in checks {
            match check.try_into() {
                Ok(check) if !self.known.contains(&check) => self.known.push(check),
                Ok(_) => {}
                Err(unknown) => self.unknown.push(unknown.into()),
            }
        }
    }

    /// Whether `check` is skipped.
    pub(crate) fn contains(&self, check: GraphCheck) -> bool {
        self.known.contains(&check)
    }

    /// The skipped checks, in the order they were first given.
    pub(crate) fn as_slice(&self) -> &[GraphCheck] {
        &self.known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_checks() {
        for check in GraphCheck::ALL {
            assert_eq!(check.as_str().parse::<GraphCheck>(), Ok(check));
            assert_eq!(check.to_string(), check.as_str());
        }
        let error = "reachable".parse::<GraphCheck>().unwrap_err();
        assert_eq!(error.name(), "reachable");
        assert_eq!(
            error.to_string(),
            "unknown graph check `reachable`; the checks are `reachability`, `dead_end` and `terminal_event`"
        );
        // The list is spelled out once; keep it in step with `ALL`.
        for check in GraphCheck::ALL {
            assert!(CHECK_NAMES.contains(&format!("`{check}`")));
        }
    }

    #[test]
    fn skipped_checks_are_kept_once_and_unknown_names_apart() {
        let mut skipped = SkippedChecks::default();
        skipped.extend([GraphCheck::DeadEnd, GraphCheck::DeadEnd]);
        skipped.extend(["reachability", "dead_end", "dead-end"]);
        assert_eq!(
            skipped.as_slice(),
            [GraphCheck::DeadEnd, GraphCheck::Reachability]
        );
        assert!(!skipped.contains(GraphCheck::TerminalEvent));
        assert_eq!(skipped.unknown.len(), 1);
        assert_eq!(skipped.unknown[0].name(), "dead-end");
    }
}
