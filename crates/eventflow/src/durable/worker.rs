//! The worker behind an [`Engine`]: heartbeats, claims, and the runs it drives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::hook::CommitHook;
use super::rebuild::rebuild;
use super::recorder::{DurableRun, DurableSettings, RunExit, failed_end, retry_transient};
use super::watch::Watchers;
use crate::run::new_run;
use crate::store::{Claim, ClaimOptions, Lease, Store, WorkflowKey};
use crate::workflow::Workflow;

/// Options of a worker; set them through [`EngineBuilder`](super::EngineBuilder).
#[derive(Clone)]
pub(super) struct EngineOptions {
    pub(super) worker_id: String,
    pub(super) lease_ttl: Duration,
    pub(super) poll_interval: Duration,
    pub(super) max_recoveries: u32,
    pub(super) snapshot_every: u64,
    pub(super) claim_batch: usize,
    pub(super) on_commit: Option<Arc<CommitHook>>,
    pub(super) drive_runs: bool,
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("worker_id", &self.worker_id)
            .field("lease_ttl", &self.lease_ttl)
            .finish_non_exhaustive()
    }
}

pub(super) struct Inner {
    pub(super) store: Arc<dyn Store>,
    pub(super) workflows: HashMap<String, Workflow>,
    pub(super) keys: Vec<WorkflowKey>,
    pub(super) options: EngineOptions,
    /// Runs this worker drives now.
    pub(super) active: Mutex<HashMap<String, Active>>,
    /// Wakes the claim loop: a run of a workflow that bounds its concurrent runs was started
    /// here, or ended here (a queued one may take its slot).
    pub(super) claim_now: Arc<Notify>,
    /// Readers waiting on a run's events or result, woken by its commits here (other
    /// processes' commits are seen by polling).
    pub(super) watchers: Arc<Watchers>,
    pub(super) stop: watch::Sender<bool>,
    pub(super) stopping: watch::Receiver<bool>,
    pub(super) background: Mutex<Option<JoinHandle<()>>>,
}

/// A run this worker drives.
pub(super) struct Active {
    /// The epoch of its lease.
    pub(super) epoch: u64,
    /// Notified when its inbox has mail.
    pub(super) signal: Arc<Notify>,
    /// Its workflow, whose concurrent runs it counts for.
    pub(super) workflow: String,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn workflow_key(workflow: &Workflow) -> WorkflowKey {
    WorkflowKey {
        name: workflow.name().to_owned(),
        fingerprint: workflow.fingerprint().to_owned(),
    }
}

impl Inner {
    pub(super) fn settings(&self) -> DurableSettings {
        DurableSettings {
            snapshot_every: self.options.snapshot_every,
            inbox_poll: self.options.poll_interval,
            stopping: self.stopping.clone(),
            on_commit: self.options.on_commit.clone(),
        }
    }

    /// What to claim: runs of the workflows with a free slot (`num_concurrent_runs`), at most
    /// as many as the fullest of them has free; `None` when every workflow is at its bound.
    /// Only the claim loop takes slots, so what it counts here stays true until it claims.
    pub(super) fn claim_options(&self) -> Option<ClaimOptions> {
        let mut limit = self.options.claim_batch;
        let mut workflows = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            match self.free_slots(&key.name) {
                Some(0) => continue,
                Some(free) => limit = limit.min(free),
                None => {}
            }
            workflows.push(key.clone());
        }
        (!workflows.is_empty()).then_some(ClaimOptions {
            workflows,
            limit,
            lease_ttl: self.options.lease_ttl,
            max_recoveries: self.options.max_recoveries,
        })
    }

    /// How many more runs of `workflow` this worker may drive, when it bounds them.
    pub(super) fn free_slots(&self, workflow: &str) -> Option<usize> {
        let limit = self.workflows.get(workflow)?.concurrent_runs_limit()?;
        let active = lock(&self.active);
        let driven = active.values().filter(|a| a.workflow == workflow).count();
        Some(limit.saturating_sub(driven))
    }

    /// Registers a run as driven here; returns its inbox signal.
    pub(super) fn activate(&self, lease: &Lease, workflow: &str) -> Arc<Notify> {
        let signal = Arc::new(Notify::new());
        let active = Active {
            epoch: lease.epoch,
            signal: signal.clone(),
            workflow: workflow.to_owned(),
        };
        lock(&self.active).insert(lease.run_id.clone(), active);
        signal
    }

    /// Loads a claimed run and starts its driver.
    pub(super) async fn drive_claimed(self: &Arc<Self>, claim: Claim) {
        let lease = claim.lease;
        if claim.recovered {
            tracing::info!(run_id = %lease.run_id, epoch = lease.epoch, "recovering a run whose worker died");
        }
        let record = match retry_transient(|| self.store.get_run(&lease.run_id)).await {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(error = %crate::store::error_chain(&error), run_id = %lease.run_id, "cannot read a claimed run");
                return;
            }
        };
        let Some(workflow) = self.workflows.get(&record.workflow.name) else {
            return;
        };
        let loaded = match retry_transient(|| self.store.load(&lease)).await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(error = %crate::store::error_chain(&error), run_id = %lease.run_id, "cannot load a claimed run");
                return;
            }
        };
        let signal = self.activate(&lease, workflow.name());
        let durable = DurableRun::fresh(
            self.store.clone(),
            lease.clone(),
            self.settings(),
            signal,
            self.clone(),
            workflow.name(),
        );
        match rebuild(workflow, loaded, durable) {
            Ok(rebuilt) => {
                let shared = new_run(
                    workflow,
                    lease.run_id.clone(),
                    rebuilt.live,
                    rebuilt.history,
                );
                super::run_loop::spawn(shared, rebuilt.state, rebuilt.durable, None);
            }
            Err(reason) => {
                // A run that cannot be rebuilt would fail on every worker: fail it for good.
                tracing::error!(run_id = %lease.run_id, %reason, "cannot rebuild a run");
                let end = failed_end(format!(
                    "the run cannot be rebuilt from the store: {reason}"
                ));
                let commit = crate::store::Commit {
                    end: Some(end),
                    ..Default::default()
                };
                let _ = self.store.commit(&lease, commit).await;
            }
        }
    }
}

impl RunExit for Inner {
    fn exited(&self, lease: &Lease) {
        let mut active = lock(&self.active);
        let ended = match active.get(&lease.run_id) {
            Some(run) if run.epoch == lease.epoch => active.remove(&lease.run_id),
            _ => None,
        };
        drop(active);
        let bounded = |run: &Active| {
            let workflow = self.workflows.get(&run.workflow);
            workflow.is_some_and(|w| w.concurrent_runs_limit().is_some())
        };
        if ended.as_ref().is_some_and(bounded) {
            self.claim_now.notify_one();
        }
        if let Some(watch) = self.watchers.get(&lease.run_id) {
            watch.committed.notify_waiters();
            watch.ended.notify_waiters();
        }
    }

    fn committed(&self, run_id: &str, finished: bool) {
        if let Some(watch) = self.watchers.get(run_id) {
            watch.committed.notify_waiters();
            if finished {
                watch.ended.notify_waiters();
            }
        }
    }
}

/// The worker's loop: heartbeats, claims, and wake-ups of runs.
pub(super) async fn background(inner: std::sync::Weak<Inner>) {
    let (mut wakeups, mut stopping, heartbeat_every, poll, claim_now) = {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        (
            inner.store.wakeups(),
            inner.stopping.clone(),
            inner.options.lease_ttl / 3,
            inner.options.poll_interval,
            inner.claim_now.clone(),
        )
    };
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    let mut claim = tokio::time::interval(poll);
    let mut last_beat = tokio::time::Instant::now();
    loop {
        let woken = tokio::select! {
            _ = stopping.changed() => return,
            _ = heartbeat.tick() => {
                let Some(inner) = inner.upgrade() else { return };
                match inner.store.heartbeat(&inner.options.worker_id, &inner.keys).await {
                    Ok(()) => last_beat = tokio::time::Instant::now(),
                    Err(error) => tracing::warn!(error = %crate::store::error_chain(&error), "heartbeat failed"),
                }
                continue;
            }
            _ = claim.tick() => None,
            () = claim_now.notified() => None,
            // Missed signals only delay work until the next poll.
            woken = wakeups.recv() => woken.ok(),
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if *inner.stopping.borrow() {
            return;
        }
        // A worker whose own heartbeat is stale looks dead: claiming now would take its own runs
        // (and others') as recoveries. Beat first (after the database was unreachable, say).
        if last_beat.elapsed() > heartbeat_every {
            match inner
                .store
                .heartbeat(&inner.options.worker_id, &inner.keys)
                .await
            {
                Ok(()) => last_beat = tokio::time::Instant::now(),
                Err(_) => continue,
            }
        }
        let Some(options) = inner.claim_options() else {
            // Every workflow is at its bound; a run that ends here wakes the loop.
            if let Some(run_id) = woken {
                let signal = lock(&inner.active).get(&run_id).map(|a| a.signal.clone());
                if let Some(signal) = signal {
                    signal.notify_one();
                }
            }
            continue;
        };
        match woken {
            Some(run_id) => {
                let signal = lock(&inner.active).get(&run_id).map(|a| a.signal.clone());
                match signal {
                    Some(signal) => signal.notify_one(),
                    None => {
                        // `claim_run` does not look at the workflow: only runs served here,
                        // of a workflow with a free slot.
                        let served = matches!(
                            inner.store.get_run(&run_id).await,
                            Ok(Some(record)) if options.workflows.contains(&record.workflow)
                        );
                        if served {
                            match inner
                                .store
                                .claim_run(&inner.options.worker_id, &run_id, &options)
                                .await
                            {
                                Ok(Some(claim)) => inner.drive_claimed(claim).await,
                                Ok(None) => {}
                                Err(error) => {
                                    tracing::warn!(error = %crate::store::error_chain(&error), "claim failed")
                                }
                            }
                        }
                    }
                }
            }
            None => match inner.store.claim(&inner.options.worker_id, &options).await {
                Ok(claims) => {
                    for claim in claims {
                        inner.drive_claimed(claim).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %crate::store::error_chain(&error), "claim failed")
                }
            },
        }
    }
}
