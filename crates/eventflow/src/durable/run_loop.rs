//! The durable loop: one task per run owned by this worker gathers the run's messages,
//! journals them, applies them to the reducer, commits, and only then carries out the
//! commands (journal → apply → commit → execute). A run that can only wait for outside events
//! is snapshotted and released.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::durable::recorder::{Abandon, DurableRun, RecordError, commit_end, failed_end};
use crate::run::{Executor, Msg, RunShared, RunState, Tick};
use crate::store::{CommitEnd, StoreError};
use crate::verbose::{RUN_SPAN, run_span, spawn_in_span};

/// A run whose only pending work is a retry at least this far away is released until then; a
/// shorter backoff is waited out in memory.
const RELEASE_FOR_TIMERS_AFTER: Duration = Duration::from_secs(2);

/// Drives `shared` in a task of its own: `start` for a new run (its start is journaled
/// already), `None` for a rebuilt one, whose pending invocations are started after the inbox
/// is read.
pub(crate) fn spawn(
    shared: Arc<RunShared>,
    state: RunState,
    durable: DurableRun,
    start: Option<Tick>,
) {
    let run_shared = shared.clone();
    let epoch = durable.lease.epoch;
    let span = move || {
        let span = tracing::info_span!(
            RUN_SPAN,
            workflow = %run_shared.workflow.name(),
            run_id = %run_shared.run_id,
            epoch,
            verbose = tracing::field::Empty,
        );
        run_span(span, run_shared.workflow.verbose)
    };
    let dispatch = shared.dispatch.clone();
    let executor = Executor::new(shared, state);
    spawn_in_span(dispatch.as_ref(), span, run(executor, durable, start));
}

async fn run(mut executor: Executor, mut durable: DurableRun, start: Option<Tick>) {
    tracing::debug!("durable run started");
    let shared = executor.shared.clone();
    let spec = executor.spec.clone();
    let recovered = start.is_none();
    let mut start = start;
    let mut batch = VecDeque::new();
    let mut ticks = Vec::new();
    let timeout = shared.workflow.timeout;
    let mut deadline = timeout.map(|timeout| Box::pin(tokio::time::sleep(timeout)));
    let mut first = true;
    let mut stopping = durable.settings.stopping.clone();
    loop {
        let mut hand_back = *stopping.borrow();
        if !first && !hand_back {
            let persisted = durable.persisted_events();
            tokio::select! {
                _ = stopping.changed() => hand_back = true,
                () = shared.inbox.receive(&mut batch) => {}
                () = durable.signal.notified() => durable.inbox_due = true,
                () = tokio::time::sleep(durable.settings.inbox_poll) => durable.inbox_due = true,
                () = shared.stream.grown_beyond(persisted) => {}
                () = async {
                    match deadline.as_mut() {
                        Some(deadline) => deadline.await,
                        None => std::future::pending().await,
                    }
                } => {
                    deadline = None;
                    let timeout = timeout.unwrap_or_default();
                    batch.push_back(Msg::Tick(Tick::TimedOut { timeout }));
                }
            }
        }
        // Journal first: every message becomes an entry of the pending commit.
        let mut messages: Vec<Msg> = Vec::with_capacity(batch.len());
        for message in batch.drain(..) {
            let recorded = match &message {
                Msg::Tick(tick) => {
                    let step = match tick {
                        Tick::StepDone { invocation, .. } => executor.state.step_of(*invocation),
                        _ => None,
                    };
                    durable.record(&spec, &shared.state, tick, step)
                }
                Msg::Wait(wait) => durable.record(
                    &spec,
                    &shared.state,
                    &Tick::Wait {
                        wait: wait.wait.clone(),
                        prompt: wait.prompt.clone(),
                    },
                    None,
                ),
                Msg::Snapshot(_) => Ok(()),
            };
            if let Err(reason) = recorded {
                fail_unrecordable(&mut executor, &mut durable, reason).await;
                return;
            }
            messages.push(message);
        }
        if durable.inbox_due {
            match durable.read_inbox(&spec, &shared.state).await {
                Ok(read) => ticks.extend(read),
                Err(error) => {
                    let_go(&mut executor, &mut durable, error).await;
                    return;
                }
            }
        }
        // Apply: pure, the commands wait for the commit.
        if let Some(tick) = start.take() {
            executor.apply(tick);
        }
        for message in messages {
            if executor.is_finished() {
                break;
            }
            if let Some(tick) = executor.admit(message) {
                executor.apply(tick);
            }
        }
        for tick in ticks.drain(..) {
            executor.apply(tick);
        }
        if first && recovered {
            executor.resume();
        }
        first = false;
        executor.publish_and_finish();
        let ended = executor.take_end();
        let finished = executor.is_finished();
        // Waiting only for outside events, or for a retry far enough away to be worth a
        // reload: the run goes back to the store and wakes when its timer is due.
        let wake_after = executor.next_timer();
        let idle = !finished
            && executor.state.is_idle()
            && wake_after.is_none_or(|after| after >= RELEASE_FOR_TIMERS_AFTER)
            && shared.inbox.is_empty();
        let release = idle || (hand_back && !finished);
        let published = shared.stream.since(durable.persisted_events());
        let prepared = durable
            .take_events(&published)
            .and_then(|()| durable.maybe_snapshot(&spec, &executor.state, release));
        if let Err(reason) = prepared {
            fail_unrecordable(&mut executor, &mut durable, reason).await;
            return;
        }
        let end = if finished {
            // A run always finishes through its executor; a journal that ends a run elsewhere
            // must still not leave it held by a live worker that no longer drives it.
            Some(ended.as_ref().map_or_else(
                || failed_end("the run had finished before it was rebuilt".into()),
                commit_end,
            ))
        } else if release {
            Some(CommitEnd::Release { idle, wake_after })
        } else {
            None
        };
        if let Err(Abandon(error)) = durable.commit(end).await {
            let_go(&mut executor, &mut durable, error).await;
            return;
        }
        if finished {
            return;
        }
        if release {
            tracing::debug!("run released while it waits for events");
            executor.stop_tasks();
            return;
        }
        executor.execute();
        // Through the mailbox, so that an event routed again is journaled like any tick.
        while let Some(tick) = executor.next_undelivered() {
            let _ = shared.inbox.send(Msg::Tick(tick));
        }
    }
}

/// Stops driving the run after the store refused it. Fenced (another worker owns it) or purged:
/// nothing to do. Otherwise the lease may still be ours, and a run held by a live worker that
/// no longer drives it would never be claimed again: hand it back.
async fn let_go(executor: &mut Executor, durable: &mut DurableRun, error: StoreError) {
    executor.stop_tasks();
    match error {
        StoreError::Fenced { .. } | StoreError::UnknownRun { .. } => {
            tracing::info!(error = %crate::store::error_chain(&error), "the run is no longer ours");
        }
        error => {
            tracing::error!(error = %crate::store::error_chain(&error), "the store refused the run; handing it back");
            durable.pending = Default::default();
            let release = CommitEnd::Release {
                idle: false,
                wake_after: None,
            };
            let _ = durable.commit(Some(release)).await;
        }
    }
}

/// A tick or event that cannot be serialized cannot be journaled: the run fails, naming it.
async fn fail_unrecordable(executor: &mut Executor, durable: &mut DurableRun, reason: RecordError) {
    tracing::error!(%reason, "the run cannot be journaled; it fails");
    executor.stop_tasks();
    durable.pending = Default::default();
    let end = failed_end(format!("the run cannot be journaled: {reason}"));
    let _ = durable.commit(Some(end)).await;
}
