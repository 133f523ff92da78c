//! The journal writer of a durable run: what each tick becomes in the journal, the commit that
//! holds it, the published events and snapshots, and how a run's end is recorded. Rebuilding a
//! run from what it wrote is in `rebuild.rs`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;

use crate::context::{ContextState, StateWrites};
use crate::durable::journal::Entry;
use crate::event::AnyEvent;
use crate::replay::{FormatError, check_format};
use crate::run::{RunEnd, RunImage, Tick, reducer::RunState};
use crate::store::{Commit, CommitEnd, Lease, Mail, RunStatus, Store, StoreError};
use crate::workflow::WorkflowSpec;

/// A durable snapshot: the run's image (`RunImage`, with the state completed steps left) under
/// its own format version. Published events are not in it; they are in the store's events, by
/// sequence.
#[derive(Serialize, Deserialize)]
pub(super) struct DurableSnapshot {
    /// [`DURABLE_SNAPSHOT_FORMAT`] when written; snapshots stored before the field existed
    /// have none and are version 1.
    #[serde(default = "first_format")]
    format: u32,
    #[serde(flatten)]
    pub(super) image: RunImage,
}

/// The durable snapshot format this build writes and the newest it reads: stored snapshots
/// outlive the code that wrote them, and one from a newer build must be refused by name rather
/// than misread. A change of format bumps it and adds a golden fixture (`tests/fixtures/`).
pub(crate) const DURABLE_SNAPSHOT_FORMAT: u32 = 1;

/// The version of a snapshot written before snapshots carried one.
fn first_format() -> u32 {
    1
}

impl DurableSnapshot {
    /// Reads a stored snapshot, refusing a format version this build does not know.
    pub(super) fn from_json(json: Value) -> Result<Self, FormatError> {
        const WHAT: &str = "durable snapshot";
        check_format(WHAT, &json, "format", 1, 1, DURABLE_SNAPSHOT_FORMAT)?;
        serde_json::from_value(json).map_err(|source| FormatError::Invalid { what: WHAT, source })
    }
}

/// Why a run cannot be journaled: a value in it does not serialize. The run fails, naming it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// A tick (a step's completion, an event) does not serialize.
    #[error("cannot journal {what}: {source}")]
    Tick {
        /// What it was.
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// What a step wrote to the context state does not serialize, or read back.
    #[error("cannot record a step's state: {0}")]
    State(String),
    /// An event the run published does not serialize.
    #[error("cannot persist a published event: {0}")]
    Published(#[source] serde_json::Error),
    /// The run's state does not serialize into a snapshot.
    #[error("cannot snapshot the run: {0}")]
    Snapshot(#[source] serde_json::Error),
}

/// Tells the engine a run's driver has stopped, however it stopped.
pub(crate) trait RunExit: Send + Sync {
    fn exited(&self, lease: &Lease);
    /// A commit of this run reached the store (events readers may want); `finished` when it
    /// finished the run.
    fn committed(&self, run_id: &str, finished: bool);
}

/// How often a driver snapshots, polls and retries; set by the engine.
#[derive(Clone)]
pub(crate) struct DurableSettings {
    pub(crate) snapshot_every: u64,
    pub(crate) inbox_poll: Duration,
    /// Becomes true when the engine shuts down: hand the run back.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
    pub(crate) on_commit: Option<Arc<super::hook::CommitHook>>,
}

/// The journaling state of one run held by this process.
pub(crate) struct DurableRun {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) lease: Lease,
    pub(crate) settings: DurableSettings,
    /// The engine's signal that the run's inbox may hold messages.
    pub(crate) signal: Arc<Notify>,
    pub(crate) exit: Arc<dyn RunExit>,
    /// The run's workflow, for the commit hook.
    workflow: String,
    /// The state as completed steps left it: what a replay of the journal gives, and what
    /// snapshots record (the live state also holds writes of steps still running).
    committed: ContextState,
    journal_seq: u64,
    persisted_events: usize,
    since_snapshot: u64,
    pub(crate) pending: Commit,
    /// Whether the next commit must carry a snapshot (after a recovery, whose re-queued
    /// invocations are not in the journal).
    snapshot_due: bool,
    pub(crate) inbox_due: bool,
    /// The step completions the pending commit records (for the commit hook).
    completed: Vec<super::hook::CompletedStep>,
}

/// Why a durable driver stops holding its run without finishing it: another worker owns the
/// run now, or it was purged.
#[derive(Debug)]
pub(crate) struct Abandon(pub(crate) StoreError);

impl Drop for DurableRun {
    fn drop(&mut self) {
        self.exit.exited(&self.lease);
    }
}

impl DurableRun {
    /// Goes on journaling a rebuilt run: after entry `journal_seq` and `persisted_events`
    /// published events, from the `committed` context state. Its first commit carries a
    /// snapshot (the recovered queues are in no journal entry), and it reads its inbox first.
    pub(super) fn resume_after(
        &mut self,
        committed: ContextState,
        journal_seq: u64,
        persisted_events: usize,
    ) {
        self.committed = committed;
        self.journal_seq = journal_seq;
        self.persisted_events = persisted_events;
        self.since_snapshot = 0;
        self.snapshot_due = true;
        self.inbox_due = true;
    }

    /// The journaling state of a new run whose start (entry 1) is already stored.
    pub(crate) fn fresh(
        store: Arc<dyn Store>,
        lease: Lease,
        settings: DurableSettings,
        signal: Arc<Notify>,
        exit: Arc<dyn RunExit>,
        workflow: &str,
    ) -> Self {
        DurableRun {
            store,
            lease,
            settings,
            signal,
            exit,
            workflow: workflow.to_owned(),
            committed: ContextState::default(),
            journal_seq: 1,
            persisted_events: 0,
            since_snapshot: 1,
            pending: Commit::default(),
            snapshot_due: false,
            // Nothing can be sent to a run before its id is known; later messages signal.
            inbox_due: false,
            completed: Vec::new(),
        }
    }

    /// Records a tick in the pending commit; a `StepDone` carries what its step wrote.
    pub(crate) fn record(
        &mut self,
        spec: &WorkflowSpec,
        live: &ContextState,
        tick: &Tick,
        step_of: Option<(usize, u32)>,
    ) -> Result<(), RecordError> {
        let writes = match tick {
            Tick::StepDone {
                invocation,
                outcome,
                elapsed,
                ..
            } => {
                if self.settings.on_commit.is_some()
                    && let Some((step, attempt)) = step_of
                {
                    self.completed.push(super::hook::CompletedStep {
                        step: spec.steps[step].name.clone(),
                        attempt,
                        duration: *elapsed,
                        failed: outcome.is_err(),
                    });
                }
                live.take_writes(*invocation, spec.step_names())
                    .map_err(|e| RecordError::State(e.to_string()))?
            }
            _ => StateWrites::default(),
        };
        if !writes.is_empty() {
            self.committed
                .apply_writes(
                    writes.clone(),
                    |name| spec.step_index(name),
                    |name| spec.event_by_name(name),
                )
                .map_err(|e| RecordError::State(e.to_string()))?;
        }
        let entry = Entry::encode(spec, tick, writes)
            .and_then(serde_json::to_value)
            .map_err(|source| {
                let what = match (tick, step_of) {
                    (Tick::StepDone { .. }, Some((step, _))) => {
                        format!("the completion of step `{}`", spec.steps[step].name)
                    }
                    (Tick::Emit { event, .. }, _) => format!("event {}", event.name()),
                    _ => "a tick".to_owned(),
                };
                RecordError::Tick { what, source }
            })?;
        self.journal_seq += 1;
        self.since_snapshot += 1;
        self.pending.journal.push((self.journal_seq, entry));
        Ok(())
    }

    /// Turns the run's unconsumed inbox messages into ticks, recorded and marked consumed in
    /// the pending commit.
    pub(crate) async fn read_inbox(
        &mut self,
        spec: &WorkflowSpec,
        live: &ContextState,
    ) -> Result<Vec<Tick>, StoreError> {
        self.inbox_due = false;
        let messages = retry_transient(|| self.store.inbox(&self.lease)).await?;
        let mut ticks = Vec::new();
        for message in messages {
            if self.pending.consumed.contains(&message.id) {
                continue;
            }
            self.pending.consumed.push(message.id);
            let Some(tick) = inbox_tick(spec, message.mail) else {
                tracing::warn!(msg_id = %message.msg_id, "dropped an inbox message the workflow cannot decode");
                continue;
            };
            if let Err(error) = self.record(spec, live, &tick, None) {
                tracing::warn!(error = %crate::store::error_chain(&error), "dropped an inbox message that cannot be journaled");
                continue;
            }
            ticks.push(tick);
        }
        Ok(ticks)
    }

    /// How many of the run's published events are persisted (or pending).
    pub(crate) fn persisted_events(&self) -> usize {
        self.persisted_events
    }

    /// The published events not yet persisted (`new`, after the first
    /// [`persisted_events`](Self::persisted_events)), added to the pending commit.
    pub(crate) fn take_events(&mut self, new: &[AnyEvent]) -> Result<(), RecordError> {
        for event in new {
            self.persisted_events += 1;
            let json = event.to_event_json().map_err(RecordError::Published)?;
            self.pending
                .events
                .push((self.persisted_events as u64, json));
        }
        Ok(())
    }

    /// Adds a snapshot of `state` to the pending commit when one is due (or `force`).
    pub(crate) fn maybe_snapshot(
        &mut self,
        spec: &WorkflowSpec,
        state: &RunState,
        force: bool,
    ) -> Result<(), RecordError> {
        if !(force || self.snapshot_due || self.since_snapshot >= self.settings.snapshot_every) {
            return Ok(());
        }
        let snapshot = DurableSnapshot {
            format: DURABLE_SNAPSHOT_FORMAT,
            image: RunImage::take(spec, state, &self.committed).map_err(RecordError::Snapshot)?,
        };
        let json = serde_json::to_value(snapshot).map_err(RecordError::Snapshot)?;
        self.pending.snapshot = Some((self.journal_seq, json));
        self.since_snapshot = 0;
        self.snapshot_due = false;
        Ok(())
    }

    /// Writes the pending commit, retrying while the database is unreachable. Fails only when
    /// the run is no longer this worker's.
    pub(crate) async fn commit(&mut self, end: Option<CommitEnd>) -> Result<(), Abandon> {
        let mut commit = std::mem::take(&mut self.pending);
        let completed = std::mem::take(&mut self.completed);
        let finished = match &end {
            Some(CommitEnd::Finish { status, .. }) => Some(*status),
            _ => None,
        };
        commit.end = end;
        if commit.is_empty() {
            return Ok(());
        }
        let mut delay = Duration::from_millis(20);
        loop {
            match self.store.commit(&self.lease, commit.clone()).await {
                Ok(()) => {
                    self.exit.committed(&self.lease.run_id, finished.is_some());
                    if let Some(hook) = &self.settings.on_commit {
                        hook(&super::hook::CommitInfo {
                            run_id: self.lease.run_id.clone(),
                            workflow: self.workflow.clone(),
                            completed,
                            finished,
                        });
                    }
                    return Ok(());
                }
                Err(error) if error.is_transient() => {
                    tracing::warn!(error = %crate::store::error_chain(&error), "commit failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(error) => return Err(Abandon(error)),
            }
        }
    }
}

/// Calls `operation` until it succeeds or fails for a reason other than an unreachable database.
pub(crate) async fn retry_transient<T, F, Fut>(mut operation: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(20);
    let mut tries = 0;
    loop {
        match operation().await {
            Err(error) if error.is_transient() && tries < 200 => {
                tracing::warn!(error = %crate::store::error_chain(&error), "store unreachable; retrying");
                tries += 1;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

/// The tick of an inbox message: an event for the run (to one step, when it names one), or
/// cancel. `None` when the workflow has no such step or event.
fn inbox_tick(spec: &WorkflowSpec, mail: Mail) -> Option<Tick> {
    let (event, step) = match mail {
        Mail::Cancel => return Some(Tick::Cancel),
        Mail::Event { event, step } => (event, step),
        // A kind of message this engine does not know is not for it.
        _ => return None,
    };
    let target = match step {
        Some(name) => Some(spec.step_index(&name)?),
        None => None,
    };
    let event = spec.decode_event(event).ok()?;
    Some(Tick::Emit {
        event,
        target,
        from: None,
    })
}

/// The store's record of how a run ended.
pub(crate) fn commit_end(end: &RunEnd) -> CommitEnd {
    CommitEnd::Finish {
        status: end.status,
        result: end
            .stop_event()
            .and_then(|event| event.to_event_json().ok())
            .and_then(|json| serde_json::to_value(json).ok()),
        error: end.error(),
    }
}

/// The store's record of a run that failed outside its reducer (it cannot be journaled or
/// rebuilt): `error` says why.
pub(crate) fn failed_end(error: String) -> CommitEnd {
    CommitEnd::Finish {
        status: RunStatus::Failed,
        result: None,
        error: Some(error),
    }
}
