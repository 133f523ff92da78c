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
    /// Runs this worker drives now: their epoch and the signal that their inbox has mail.
    pub(super) active: Mutex<HashMap<String, (u64, Arc<Notify>)>>,
    /// Readers waiting on a run's events or result, woken by its commits here (other
    /// processes' commits are seen by polling).
    pub(super) watchers: Arc<Watchers>,
    pub(super) stop: watch::Sender<bool>,
    pub(super) stopping: watch::Receiver<bool>,
    pub(super) background: Mutex<Option<JoinHandle<()>>>,
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

    pub(super) fn claim_options(&self) -> ClaimOptions {
        ClaimOptions {
            workflows: self.keys.clone(),
            limit: self.options.claim_batch,
            lease_ttl: self.options.lease_ttl,
            max_recoveries: self.options.max_recoveries,
        }
    }

    /// Registers a run as driven here; returns its inbox signal.
    pub(super) fn activate(&self, lease: &Lease) -> Arc<Notify> {
        let signal = Arc::new(Notify::new());
        lock(&self.active).insert(lease.run_id.clone(), (lease.epoch, signal.clone()));
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
                tracing::warn!(%error, run_id = %lease.run_id, "cannot read a claimed run");
                return;
            }
        };
        let Some(workflow) = self.workflows.get(&record.workflow.name) else {
            return;
        };
        let loaded = match retry_transient(|| self.store.load(&lease)).await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(%error, run_id = %lease.run_id, "cannot load a claimed run");
                return;
            }
        };
        let signal = self.activate(&lease);
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
        if active
            .get(&lease.run_id)
            .is_some_and(|(epoch, _)| *epoch == lease.epoch)
        {
            active.remove(&lease.run_id);
        }
        drop(active);
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
    let (mut wakeups, mut stopping, heartbeat_every, poll) = {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        (
            inner.store.wakeups(),
            inner.stopping.clone(),
            inner.options.lease_ttl / 3,
            inner.options.poll_interval,
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
                    Err(error) => tracing::warn!(%error, "heartbeat failed"),
                }
                continue;
            }
            _ = claim.tick() => None,
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
        let options = inner.claim_options();
        match woken {
            Some(run_id) => {
                let signal = lock(&inner.active).get(&run_id).map(|(_, s)| s.clone());
                match signal {
                    Some(signal) => signal.notify_one(),
                    None => {
                        // `claim_run` does not look at the workflow: only runs served here.
                        let served = matches!(
                            inner.store.get_run(&run_id).await,
                            Ok(Some(record)) if inner.keys.contains(&record.workflow)
                        );
                        if served {
                            match inner
                                .store
                                .claim_run(&inner.options.worker_id, &run_id, &options)
                                .await
                            {
                                Ok(Some(claim)) => inner.drive_claimed(claim).await,
                                Ok(None) => {}
                                Err(error) => tracing::warn!(%error, "claim failed"),
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
                Err(error) => tracing::warn!(%error, "claim failed"),
            },
        }
    }
}
