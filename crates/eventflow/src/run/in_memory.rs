//! The in-memory loop: one task per run feeds the run's messages to the reducer and carries out
//! its commands at once, until the run ends. Nothing is recorded, so nothing is paid for it.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::Instrument;

use crate::error::WorkflowError;
use crate::run::end::RunEnd;
use crate::run::executor::Executor;
use crate::run::handler::RunOutput;
use crate::run::reducer::{RunState, Tick};
use crate::run::{Msg, RunShared};

/// How a run begins.
pub(crate) enum Initial {
    /// With a tick (the start event).
    Tick(Tick),
    /// With a restored state whose pending invocations are to be started.
    Resume,
    /// Not at all: the run fails before any step runs.
    Fail(WorkflowError),
}

type ResultSender = oneshot::Sender<Result<RunOutput, WorkflowError>>;

/// Runs `shared` in a task of its own; its result goes to `result`.
pub(crate) fn spawn(
    shared: Arc<RunShared>,
    state: RunState,
    result: ResultSender,
    initial: Initial,
) {
    let span = tracing::info_span!(
        "workflow_run",
        workflow = %shared.workflow.name(),
        run_id = %shared.run_id,
    );
    let executor = Executor::new(shared, state);
    tokio::spawn(run(executor, result, initial).instrument(span));
}

async fn run(mut executor: Executor, result: ResultSender, initial: Initial) {
    tracing::debug!("run started");
    match initial {
        Initial::Tick(tick) => apply(&mut executor, tick),
        Initial::Resume => {
            executor.resume();
            execute(&mut executor);
        }
        Initial::Fail(error) => {
            executor.end_with(RunEnd::failed(error.to_string(), error));
            report(&mut executor, result);
            return;
        }
    }
    let shared = executor.shared.clone();
    let timeout = shared.workflow.timeout;
    // Only runs with a timeout pay for a timer.
    let mut deadline = timeout.map(|timeout| Box::pin(tokio::time::sleep(timeout)));
    let mut batch = VecDeque::new();
    while !executor.is_finished() {
        tokio::select! {
            () = shared.inbox.receive(&mut batch) => {}
            () = async {
                match deadline.as_mut() {
                    Some(deadline) => deadline.await,
                    None => std::future::pending().await,
                }
            } => {
                let timeout = timeout.unwrap_or_default();
                batch.push_back(Msg::Tick(Tick::TimedOut { timeout }));
            }
        }
        while let Some(message) = batch.pop_front() {
            if executor.is_finished() {
                break;
            }
            if let Some(tick) = executor.admit(message) {
                apply(&mut executor, tick);
            }
            // A long batch (a fan-out of a million events) must not hog the worker thread.
            tokio::task::consume_budget().await;
        }
        batch.clear();
    }
    report(&mut executor, result);
}

fn report(executor: &mut Executor, result: ResultSender) {
    if let Some(end) = executor.take_end() {
        let _ = result.send(end.result);
    }
}

/// Applies a tick and carries out its commands, and those of the ticks they give, until quiet.
fn apply(executor: &mut Executor, tick: Tick) {
    executor.apply(tick);
    execute(executor);
}

/// Carries out the pending commands; events a waiter gave up on are routed again at once.
fn execute(executor: &mut Executor) {
    executor.execute();
    while let Some(tick) = executor.next_undelivered() {
        executor.apply(tick);
        executor.execute();
    }
}
