//! Snapshots: a run's state at a tick boundary as data ([`RunImage`]), and the whole run as
//! JSON to resume in this process or another ([`RunSnapshot`], which adds the run's identity and
//! its stream). The durable store keeps the same image under its own format version
//! (`durable/recorder.rs`), its events being in the store already.

use serde::{Deserialize, Serialize};

use crate::context::{ContextState, StateSnapshot};
use crate::error::SnapshotError;
use crate::event::EventJson;
use crate::replay::{FormatError, ReplayError, check_format, check_version};
use crate::run::reducer::{ReducerSnapshot, RunState};
use crate::workflow::{Workflow, WorkflowSpec};

/// A run's state at a tick boundary, exactly, as data: the reducer's books (queued and in-flight
/// invocations with their attempts, waiters, unclaimed events, retries, the path) and the
/// context state. Both snapshot forms hold one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunImage {
    reducer: ReducerSnapshot,
    state: StateSnapshot,
}

impl RunImage {
    /// The image of a run whose reducer is `run` and whose context state is `context`.
    pub(crate) fn take(
        spec: &WorkflowSpec,
        run: &RunState,
        context: &ContextState,
    ) -> Result<Self, serde_json::Error> {
        Ok(RunImage {
            reducer: run.snapshot(spec)?,
            state: context.snapshot(spec.step_names())?,
        })
    }

    /// The reducer and the context state back, for `spec`'s workflow.
    pub(crate) fn restore(
        self,
        spec: &WorkflowSpec,
    ) -> Result<(RunState, ContextState), ReplayError> {
        let context = restore_context(self.state, spec)?;
        Ok((RunState::restore(spec, self.reducer)?, context))
    }

    /// A second context state from the image (a durable run keeps the one completed steps
    /// left beside the live one).
    pub(crate) fn context(&self, spec: &WorkflowSpec) -> Result<ContextState, ReplayError> {
        restore_context(self.state.clone(), spec)
    }
}

fn restore_context(state: StateSnapshot, spec: &WorkflowSpec) -> Result<ContextState, ReplayError> {
    ContextState::restore(
        state,
        |name| spec.step_index(name),
        |name| spec.event_by_name(name),
    )
}

/// The snapshot format this build writes and the only one it reads. Version 1 (before
/// snapshots carried the stream's history) is no longer read. Saved snapshots outlive the code
/// that wrote them: a change of format bumps this, keeps reading what it can, and adds a golden
/// fixture (`tests/fixtures/`) rather than editing one.
const FORMAT: u32 = 2;

/// The field holding [`FORMAT`].
const FORMAT_FIELD: &str = "format";

/// What a snapshot is called in errors.
const WHAT: &str = "snapshot";

/// A run frozen at a tick boundary: queued and in-flight step invocations with their attempt
/// numbers, events waiting for a waiter, collect buffers, the context state, the events published
/// so far and the path taken.
///
/// Its serde form is JSON-shaped (parts of it are flattened): store it with
/// [`to_json`](Self::to_json) and read it with [`from_json`](Self::from_json), not with a
/// non-self-describing format such as bincode.
///
/// Take one with `WorkflowHandler::snapshot`, store it as JSON, and resume it with
/// `Workflow::resume` on a workflow of the same shape (checked by fingerprint). Step
/// invocations that were running when it was taken run again from their start, so a step
/// that waits for a human asks again and then receives the answer. Readers of the resumed run's
/// stream get the events published before the snapshot first; stream events of types the
/// workflow does not know (register them with `WorkflowBuilder::event`) come back as JSON under
/// their name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSnapshot {
    format: u32,
    workflow: String,
    fingerprint: String,
    run_id: String,
    /// Every event the run had published, so readers of the resumed run see its whole history
    /// (a question asked before the snapshot included).
    stream: Vec<EventJson>,
    #[serde(flatten)]
    image: RunImage,
}

pub(crate) struct SnapshotParts {
    pub(crate) run_id: String,
    pub(crate) stream: Vec<EventJson>,
    pub(crate) image: RunImage,
}

impl RunSnapshot {
    pub(crate) fn new(
        workflow: &Workflow,
        run_id: &str,
        stream: Vec<EventJson>,
        image: RunImage,
    ) -> Self {
        RunSnapshot {
            format: FORMAT,
            workflow: workflow.name().to_owned(),
            fingerprint: workflow.fingerprint().to_owned(),
            run_id: run_id.to_owned(),
            stream,
            image,
        }
    }

    /// The id of the snapshotted run; a resumed run keeps it.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The name of the workflow the run belongs to.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// The snapshot as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("snapshots hold only JSON values")
    }

    /// Reads a snapshot from JSON. A snapshot of another format version (one written by a
    /// newer eventflow, say) is refused with an error naming its version, before the rest of it
    /// is read.
    pub fn from_json(json: &str) -> Result<Self, SnapshotError> {
        let invalid = |source| FormatError::Invalid { what: WHAT, source };
        let value: serde_json::Value = serde_json::from_str(json).map_err(invalid)?;
        // Without the field, decoding below names it as missing.
        check_format(WHAT, &value, FORMAT_FIELD, FORMAT, FORMAT, FORMAT)?;
        Ok(serde_json::from_value(value).map_err(invalid)?)
    }

    pub(crate) fn into_parts(self, workflow: &Workflow) -> Result<SnapshotParts, SnapshotError> {
        // Checked again for snapshots deserialized with serde directly rather than `from_json`.
        check_version(WHAT, u64::from(self.format), FORMAT, FORMAT)?;
        if self.fingerprint != workflow.fingerprint() {
            return Err(SnapshotError::OtherWorkflow {
                snapshot_workflow: self.workflow,
                snapshot_fingerprint: self.fingerprint,
                workflow: workflow.name().to_owned(),
                fingerprint: workflow.fingerprint().to_owned(),
            });
        }
        Ok(SnapshotParts {
            run_id: self.run_id,
            stream: self.stream,
            image: self.image,
        })
    }
}
